//! The YAML renderer (crates/weir-proxy/src/codec/yaml.rs).
//!
//! Invariants: rendering any JSON value never panics, and what it writes is YAML that a YAML
//! parser (serde-saphyr, YAML 1.2 core-schema booleans) reads back as the same value (numbers
//! compared as `f64`: integers beyond `i64` are written through a float).
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use weir_proxy::codec::yaml;

/// Containers deep: well inside serde-saphyr's default nesting budget.
const DEPTH: u32 = 12;

/// Equal as data: numbers by value, everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let value = if mode & 1 == 0 {
        // A backend answer as the pipeline holds it: JSON text, any shape.
        match serde_json::from_slice::<Value>(rest) {
            Ok(v) => v,
            Err(_) => return,
        }
    } else {
        let mut u = Unstructured::new(rest);
        match weir_fuzz::value(&mut u, DEPTH) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    let text = yaml::to_yaml(&value);
    let deep = depth(&value) > DEPTH as usize + 1;
    // YAML 1.2 core-schema booleans (only `true`/`false`), as yaml.v3 reads them: the
    // parser's lenient default also reads `ofF` as false, which no YAML schema does (the
    // renderer still quotes YAML 1.1's `yes`/`no`/`on`/`off` for old readers).
    let options = serde_saphyr::options! { strict_booleans: true };
    match serde_saphyr::from_str_with_options::<Value>(&text, options) {
        Ok(back) => assert!(
            same(&back, &value),
            "YAML does not read back as the value\nvalue: {value}\nyaml:\n{text}\nread: {back}"
        ),
        // Deep JSON documents may pass the parser's nesting budget: not the renderer's fault.
        Err(_) if deep => {}
        Err(e) => panic!("rendered YAML does not parse: {e}\nvalue: {value}\nyaml:\n{text}"),
    }
});

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
