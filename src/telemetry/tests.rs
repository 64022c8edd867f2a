use std::sync::Arc;

use http::HeaderValue;
use serde_json::{json, Map, Value};

use super::*;

#[test]
fn text_lines_escape_inner_line_breaks() {
    let line = text_line(b"ERROR reload rejected: a.yaml: x\nb.yaml: y\r\n");
    assert_eq!(line, b"ERROR reload rejected: a.yaml: x\\nb.yaml: y\\r\n");
}

#[tokio::test]
async fn lines_written_for_a_request_carry_its_labels() {
    let labels = Arc::new(request_id::Labels {
        request_id: HeaderValue::from_static("req-7"),
        trace_id: Some(0x0af7651916cd43dd8448eb211c80319c_u128.to_be_bytes()),
    });
    let line = request_id::Scoped::new(labels.clone(), async {
        text_line(b"WARN backend failed\n")
    })
    .await;
    assert_eq!(
        String::from_utf8(line).unwrap(),
        "WARN backend failed request_id=req-7 trace_id=0af7651916cd43dd8448eb211c80319c\n"
    );
    assert_eq!(text_line(b"INFO outside\n"), b"INFO outside\n");
}

#[test]
fn json_lines_are_one_object_with_time_level_message_and_fields() {
    let mut fields = Map::new();
    fields.insert("message".into(), json!("backend failed"));
    fields.insert("endpoint".into(), json!("/a"));
    fields.insert("error".into(), json!("decoding failed:\nline two"));
    fields.insert("status".into(), json!(502));
    let labels = request_id::Labels {
        request_id: HeaderValue::from_static("req-1"),
        trace_id: None,
    };
    let now = time::macros::datetime!(2026-01-02 03:04:05.678 UTC);
    let line = json_line(
        now,
        "WARN",
        "weir_proxy::pipeline::merge",
        fields,
        vec![json!({"name": "worker", "id": 0})],
        Some(&labels),
    );
    let text = String::from_utf8(line).unwrap();
    assert_eq!(text.matches('\n').count(), 1, "{text}");
    assert!(text.starts_with("{\"time\":\"2026-01-02T03:04:05.678Z\",\"level\":\"WARN\""));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["message"], "backend failed");
    assert_eq!(v["endpoint"], "/a");
    assert_eq!(v["status"], 502);
    assert_eq!(v["error"], "decoding failed:\nline two");
    assert_eq!(v["request_id"], "req-1");
    assert!(v.get("trace_id").is_none());
    assert_eq!(v["spans"][0]["name"], "worker");
}
