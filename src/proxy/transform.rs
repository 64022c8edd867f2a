//! TEMPORARY placeholder, replaced by the real module.
use crate::model::FlatmapOp;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
/// placeholder
pub fn target(data: Map<String, Value>, _path: &str) -> Map<String, Value> { data }
/// placeholder
pub fn allow(data: Map<String, Value>, _paths: &[String]) -> Map<String, Value> { data }
/// placeholder
pub fn deny(_data: &mut Map<String, Value>, _paths: &[String]) {}
/// placeholder
pub fn mapping(_data: &mut Map<String, Value>, _m: &BTreeMap<String, String>) {}
/// placeholder
pub fn group(data: Map<String, Value>, key: &str) -> Map<String, Value> { let mut m = Map::new(); m.insert(key.into(), Value::Object(data)); m }
/// placeholder
pub fn flatmap(_data: &mut Map<String, Value>, _ops: &[FlatmapOp]) {}
