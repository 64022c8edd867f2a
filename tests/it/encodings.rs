//! Backend encodings (how an answer is decoded) and output encodings (how the merged
//! answer is rendered), per docs/semantics.md.

use crate::support::*;

use serde_json::{json, Value};

async fn gw(config: Value) -> Gw {
    gateway(&config.to_string()).await
}

/// A backend answering 200 with this content type and body.
async fn body_backend(content_type: &'static str, body: &'static str) -> Backend {
    backend(move |_| async move { reply(200, content_type, body) }).await
}

/// One endpoint `/e`: one backend with `encoding` (None = default), endpoint
/// `outputEncoding` (None = default).
fn endpoint(b: &Backend, encoding: Option<&str>, output: Option<&str>) -> Value {
    let mut backend = json!({"hosts": [b.url()], "urlPattern": "/x"});
    if let Some(e) = encoding {
        backend["encoding"] = json!(e);
    }
    let mut ep = json!({"path": "/e", "backends": [backend]});
    if let Some(o) = output {
        ep["outputEncoding"] = json!(o);
    }
    json!({ "endpoints": [ep] })
}

fn content_type(r: &Resp) -> &str {
    r.header("content-type").unwrap_or("")
}

// ---- backend encodings ------------------------------------------------------------------

#[tokio::test]
async fn json_backend_object_is_passed_as_is() {
    let b = body_backend("application/json", r#"{"a":{"b":[1,2]},"s":"x"}"#).await;
    let gw = gw(endpoint(&b, Some("json"), None)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": {"b": [1, 2]}, "s": "x"}));
}

#[tokio::test]
async fn json_is_the_default_backend_encoding() {
    let b = body_backend("application/json", r#"{"a":1}"#).await;
    let gw = gw(endpoint(&b, None, None)).await;
    assert_eq!(get(&gw.url("/e")).await.json(), json!({"a": 1}));
}

#[tokio::test]
async fn json_backend_array_without_is_collection_is_a_failed_backend() {
    let b = body_backend("application/json", "[1,2,3]").await;
    let gw = gw(endpoint(&b, Some("json"), None)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn safejson_array_becomes_collection() {
    let b = body_backend("application/json", r#"[{"id":1},{"id":2}]"#).await;
    let gw = gw(endpoint(&b, Some("safejson"), None)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"collection": [{"id": 1}, {"id": 2}]}));
}

#[tokio::test]
async fn safejson_scalar_becomes_content() {
    let b = body_backend("application/json", "42").await;
    let gw = gw(endpoint(&b, Some("safejson"), None)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"content": 42}));
}

#[tokio::test]
async fn safejson_string_scalar_becomes_content() {
    let b = body_backend("application/json", r#""hello""#).await;
    let gw = gw(endpoint(&b, Some("safejson"), None)).await;
    assert_eq!(get(&gw.url("/e")).await.json(), json!({"content": "hello"}));
}

#[tokio::test]
async fn safejson_object_is_passed_as_is() {
    let b = body_backend("application/json", r#"{"a":1}"#).await;
    let gw = gw(endpoint(&b, Some("safejson"), None)).await;
    assert_eq!(get(&gw.url("/e")).await.json(), json!({"a": 1}));
}

#[tokio::test]
async fn xml_backend_decodes_mxj_style_with_dash_attributes() {
    let b = body_backend(
        "application/xml",
        r#"<user type="admin"><name>E</name></user>"#,
    )
    .await;
    let gw = gw(endpoint(&b, Some("xml"), None)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200, "body: {:?}", r.text());
    assert_eq!(r.json(), json!({"user": {"-type": "admin", "name": "E"}}));
}

#[tokio::test]
async fn xml_backend_invalid_xml_is_a_failed_backend() {
    let b = body_backend("application/xml", "<user><name>E</user>").await;
    let gw = gw(endpoint(&b, Some("xml"), None)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn string_backend_becomes_content() {
    let b = body_backend("text/plain", "just some text {not json}").await;
    let gw = gw(endpoint(&b, Some("string"), None)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"content": "just some text {not json}"}));
}

// ---- output encodings -------------------------------------------------------------------

#[tokio::test]
async fn json_output_is_application_json() {
    let b = body_backend("application/json", r#"{"a":1}"#).await;
    let gw = gw(endpoint(&b, None, Some("json"))).await;
    let r = get(&gw.url("/e")).await;
    assert!(
        content_type(&r).starts_with("application/json"),
        "{}",
        content_type(&r)
    );
    assert_eq!(r.json(), json!({"a": 1}));
}

#[tokio::test]
async fn json_collection_output_is_top_level_array_from_collection() {
    let b = body_backend("application/json", r#"[{"id":1},{"id":2}]"#).await;
    let mut config = endpoint(&b, None, Some("json-collection"));
    config["endpoints"][0]["backends"][0]["isCollection"] = json!(true);
    let gw = gw(config).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert!(
        content_type(&r).starts_with("application/json"),
        "{}",
        content_type(&r)
    );
    assert_eq!(r.json(), json!([{"id": 1}, {"id": 2}]));
}

#[tokio::test]
async fn json_collection_output_without_collection_is_empty_array() {
    let b = body_backend("application/json", r#"{"a":1}"#).await;
    let gw = gw(endpoint(&b, None, Some("json-collection"))).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([]));
}

#[tokio::test]
async fn string_output_is_the_content_string_as_text_plain() {
    let b = body_backend("text/plain", "hello world").await;
    let gw = gw(endpoint(&b, Some("string"), Some("string"))).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello world");
    assert!(
        content_type(&r).starts_with("text/plain"),
        "{}",
        content_type(&r)
    );
}

#[tokio::test]
async fn xml_output_has_application_xml_content_type() {
    let b = body_backend("application/json", r#"{"user":{"name":"E"}}"#).await;
    let gw = gw(endpoint(&b, None, Some("xml"))).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert!(
        content_type(&r).starts_with("application/xml"),
        "{}",
        content_type(&r)
    );
}

#[tokio::test]
async fn xml_output_single_key_object_uses_key_as_root() {
    let b = body_backend("application/json", r#"{"user":{"name":"E"}}"#).await;
    let gw = gw(endpoint(&b, None, Some("xml"))).await;
    let text = get(&gw.url("/e")).await.text();
    let compact: String = text.split_whitespace().collect();
    assert!(compact.contains("<user><name>E</name></user>"), "{text}");
    assert!(!text.contains("<doc>"), "{text}");
}

#[tokio::test]
async fn xml_output_multi_key_object_renders_under_doc() {
    let b = body_backend("application/json", r#"{"a":"1","b":"x"}"#).await;
    let gw = gw(endpoint(&b, None, Some("xml"))).await;
    let text = get(&gw.url("/e")).await.text();
    let compact: String = text.split_whitespace().collect();
    assert!(
        compact.starts_with("<doc>") || compact.contains("?><doc>"),
        "{text}"
    );
    assert!(compact.ends_with("</doc>"), "{text}");
    assert!(compact.contains("<a>1</a>"), "{text}");
    assert!(compact.contains("<b>x</b>"), "{text}");
}

#[tokio::test]
async fn xml_output_dash_keys_become_attributes() {
    let b = body_backend(
        "application/json",
        r#"{"user":{"-type":"admin","name":"E"}}"#,
    )
    .await;
    let gw = gw(endpoint(&b, None, Some("xml"))).await;
    let text = get(&gw.url("/e")).await.text();
    assert!(text.contains(r#"<user type="admin">"#), "{text}");
    assert!(text.contains("<name>E</name>"), "{text}");
}

#[tokio::test]
async fn yaml_output_is_application_x_yaml_with_the_same_data() {
    let b = body_backend("application/json", r#"{"a":1,"b":{"c":"x"},"l":[1,2]}"#).await;
    let gw = gw(endpoint(&b, None, Some("yaml"))).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert!(
        content_type(&r).starts_with("application/x-yaml"),
        "{}",
        content_type(&r)
    );
    let parsed: Value = serde_saphyr::from_str(&r.text()).expect("valid YAML");
    assert_eq!(parsed, json!({"a": 1, "b": {"c": "x"}, "l": [1, 2]}));
}

// ---- negotiate --------------------------------------------------------------------------

async fn negotiated(accept: Option<&str>) -> Resp {
    let b = body_backend("application/json", r#"{"a":1}"#).await;
    let gw = gw(endpoint(&b, None, Some("negotiate"))).await;
    let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    send("GET", &gw.url("/e"), &headers, "").await
}

#[tokio::test]
async fn negotiate_accept_application_xml_gives_xml() {
    let r = negotiated(Some("application/xml")).await;
    assert_eq!(r.status, 200);
    assert!(
        content_type(&r).starts_with("application/xml"),
        "{}",
        content_type(&r)
    );
}

#[tokio::test]
async fn negotiate_accept_text_plain_gives_yaml() {
    let r = negotiated(Some("text/plain")).await;
    assert_eq!(r.status, 200);
    assert!(
        content_type(&r).starts_with("application/x-yaml"),
        "{}",
        content_type(&r)
    );
    let parsed: Value = serde_saphyr::from_str(&r.text()).expect("valid YAML");
    assert_eq!(parsed, json!({"a": 1}));
}

#[tokio::test]
async fn negotiate_accept_application_json_gives_json() {
    let r = negotiated(Some("application/json")).await;
    assert!(
        content_type(&r).starts_with("application/json"),
        "{}",
        content_type(&r)
    );
    assert_eq!(r.json(), json!({"a": 1}));
}

#[tokio::test]
async fn negotiate_without_accept_gives_json() {
    let r = negotiated(None).await;
    assert!(
        content_type(&r).starts_with("application/json"),
        "{}",
        content_type(&r)
    );
    assert_eq!(r.json(), json!({"a": 1}));
}
