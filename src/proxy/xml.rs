//! TEMPORARY placeholder, replaced by the real module.
use serde_json::{Map, Value};
/// placeholder
#[derive(Debug, thiserror::Error)]
#[error("xml")]
pub struct XmlError;
/// placeholder
pub fn xml_to_map(_b: &[u8]) -> Result<Map<String, Value>, XmlError> { Err(XmlError) }
/// placeholder
pub fn map_to_xml(_d: &Map<String, Value>) -> String { String::new() }
/// placeholder
pub fn to_yaml(v: &Value) -> String { serde_yaml::to_string(v).unwrap_or_default() }
