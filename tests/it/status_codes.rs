//! docs/semantics.md "Status codes" table, row by row, against real loopback backends.
//! (The endpoint `maxRate` / `clientMaxRate` rows are not implemented yet and not tested.)

use crate::support::*;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// A gateway from a JSON value (JSON is valid YAML, so it is written as the gateway file).
async fn gw(config: Value) -> Gw {
    gateway(&config.to_string()).await
}

/// A backend entry for `b` at `/x`.
fn be(b: &Backend) -> Value {
    json!({"hosts": [b.url()], "urlPattern": "/x"})
}

/// One endpoint at `/e` with these backends.
fn one_endpoint(backends: Vec<Value>) -> Value {
    json!({"endpoints": [{"path": "/e", "backends": backends}]})
}

/// A backend answering `status` with a text body.
async fn status_backend(status: u16, body: &'static str) -> Backend {
    backend(move |_| async move { reply(status, "text/plain", body) }).await
}

/// Asserts the "every backend failed" answer: 500, empty body, not completed.
fn assert_empty_500(r: &Resp) {
    assert_eq!(r.status, 500, "body: {:?}", r.text());
    assert_eq!(
        r.text(),
        "",
        "the 500 body must be empty without returnErrorMessage"
    );
    assert_eq!(r.completed(), Some("false"));
}

async fn only_backend_status_gives_empty_500(status: u16, body: &'static str) {
    let b = status_backend(status, body).await;
    let gw = gw(one_endpoint(vec![be(&b)])).await;
    let r = get(&gw.url("/e")).await;
    assert_empty_500(&r);
    assert_eq!(b.hits(), 1);
}

// ---- 200 / 201 ------------------------------------------------------------------------

#[tokio::test]
async fn backend_200_gives_200_with_body_and_completed_true() {
    let b = json_backend(200, r#"{"a":1}"#).await;
    let gw = gw(one_endpoint(vec![be(&b)])).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1}));
    assert_eq!(r.completed(), Some("true"));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        r.header("content-type")
    );
}

#[tokio::test]
async fn backend_201_becomes_200_and_completed_true() {
    let b = json_backend(201, r#"{"created":true}"#).await;
    let gw = gw(one_endpoint(vec![be(&b)])).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"created": true}));
    assert_eq!(r.completed(), Some("true"));
}

#[tokio::test]
async fn completed_true_when_every_backend_succeeded() {
    let a = json_backend(200, r#"{"a":1}"#).await;
    let b = json_backend(201, r#"{"b":2}"#).await;
    let gw = gw(one_endpoint(vec![be(&a), be(&b)])).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1, "b": 2}));
    assert_eq!(r.completed(), Some("true"));
}

// ---- every backend failed --------------------------------------------------------------

#[tokio::test]
async fn only_backend_204_gives_empty_500() {
    only_backend_status_gives_empty_500(204, "").await;
}

#[tokio::test]
async fn only_backend_301_without_location_gives_empty_500() {
    only_backend_status_gives_empty_500(301, "moved somewhere").await;
}

#[tokio::test]
async fn only_backend_304_not_followed_gives_empty_500() {
    only_backend_status_gives_empty_500(304, "").await;
}

#[tokio::test]
async fn only_backend_400_gives_empty_500() {
    only_backend_status_gives_empty_500(400, "bad request").await;
}

#[tokio::test]
async fn only_backend_404_gives_empty_500() {
    only_backend_status_gives_empty_500(404, "not found").await;
}

#[tokio::test]
async fn only_backend_500_gives_empty_500() {
    only_backend_status_gives_empty_500(500, "boom").await;
}

#[tokio::test]
async fn every_backend_failing_gives_empty_500() {
    let a = status_backend(404, "nope").await;
    let b = status_backend(503, "down").await;
    let gw = gw(one_endpoint(vec![be(&a), be(&b)])).await;
    let r = get(&gw.url("/e")).await;
    assert_empty_500(&r);
}

#[tokio::test]
async fn return_error_message_puts_invalid_status_code_text_in_500_body() {
    let b = status_backend(404, "backend says no").await;
    let mut config = one_endpoint(vec![be(&b)]);
    config["returnErrorMessage"] = json!(true);
    let gw = gw(config).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "invalid status code");
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        r.header("content-type")
    );
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn return_error_message_on_connection_refused_gives_non_empty_500() {
    let port = closed_port().await;
    let config = json!({
        "returnErrorMessage": true,
        "endpoints": [{"path": "/e", "backends": [
            {"hosts": [format!("http://{port}")], "urlPattern": "/x"}
        ]}]
    });
    let gw = gw(config).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 500);
    assert!(
        !r.text().is_empty(),
        "the error text is expected in the body"
    );
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
}

#[tokio::test]
async fn invalid_json_from_only_backend_gives_empty_500() {
    let b = backend(|_| async { reply(200, "application/json", "{not json") }).await;
    let gw = gw(one_endpoint(vec![be(&b)])).await;
    assert_empty_500(&get(&gw.url("/e")).await);
}

// ---- partial answers --------------------------------------------------------------------

#[tokio::test]
async fn one_of_two_backends_failing_gives_200_with_merged_part_and_completed_false() {
    let ok = json_backend(200, r#"{"a":1}"#).await;
    let bad = status_backend(500, "boom").await;
    let gw = gw(one_endpoint(vec![be(&ok), be(&bad)])).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1}));
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn partial_answer_has_no_cache_control_even_with_cache_ttl() {
    let ok = json_backend(200, r#"{"a":1}"#).await;
    let bad = status_backend(404, "nope").await;
    let mut config = one_endpoint(vec![be(&ok), be(&bad)]);
    config["endpoints"][0]["cacheTTL"] = json!("30s");
    let gw = gw(config).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(r.header("cache-control"), None);
}

#[tokio::test]
async fn complete_answer_with_cache_ttl_has_cache_control() {
    let a = json_backend(200, r#"{"a":1}"#).await;
    let b = json_backend(200, r#"{"b":2}"#).await;
    let mut config = one_endpoint(vec![be(&a), be(&b)]);
    config["endpoints"][0]["cacheTTL"] = json!("30s");
    let gw = gw(config).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
}

#[tokio::test]
async fn settings_cache_ttl_applies_to_endpoints_without_their_own() {
    let a = json_backend(200, r#"{"a":1}"#).await;
    let mut config = one_endpoint(vec![be(&a)]);
    config["cacheTTL"] = json!("1m");
    let gw = gw(config).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
}

#[tokio::test]
async fn no_cache_control_without_cache_ttl() {
    let a = json_backend(200, r#"{"a":1}"#).await;
    let gw = gw(one_endpoint(vec![be(&a)])).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), None);
}

#[tokio::test]
async fn connection_refused_only_backend_gives_empty_500() {
    let port = closed_port().await;
    let gw = gw(one_endpoint(vec![
        json!({"hosts": [format!("http://{port}")], "urlPattern": "/x"}),
    ]))
    .await;
    assert_empty_500(&get(&gw.url("/e")).await);
}

#[tokio::test]
async fn connection_refused_backend_counts_as_failed_next_to_ok_one() {
    let port = closed_port().await;
    let ok = json_backend(200, r#"{"a":1}"#).await;
    let gw = gw(one_endpoint(vec![
        be(&ok),
        json!({"hosts": [format!("http://{port}")], "urlPattern": "/x"}),
    ]))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1}));
    assert_eq!(r.completed(), Some("false"));
}

// ---- no-op ------------------------------------------------------------------------------

fn no_op_endpoint(b: &Backend) -> Value {
    json!({"endpoints": [{"path": "/e", "outputEncoding": "no-op", "backends": [be(b)]}]})
}

async fn cookie_backend(status: u16) -> Backend {
    backend(move |_| async move {
        let mut r = Response::new(Full::new(Bytes::from_static(b"raw <body> not json")));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        let h = r.headers_mut();
        h.insert("content-type", HeaderValue::from_static("text/weird"));
        h.insert("x-custom", HeaderValue::from_static("kept"));
        h.append("set-cookie", HeaderValue::from_static("a=1; Path=/"));
        h.append("set-cookie", HeaderValue::from_static("b=2; HttpOnly"));
        r
    })
    .await
}

#[tokio::test]
async fn no_op_passes_backend_404_status_and_body_through() {
    let b = cookie_backend(404).await;
    let gw = gw(no_op_endpoint(&b)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "raw <body> not json");
    assert_eq!(r.header("content-type"), Some("text/weird"));
}

#[tokio::test]
async fn no_op_passes_backend_201_status_through_unchanged() {
    let b = cookie_backend(201).await;
    let gw = gw(no_op_endpoint(&b)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), "raw <body> not json");
}

#[tokio::test]
async fn no_op_passes_every_set_cookie_and_custom_headers() {
    let b = cookie_backend(200).await;
    let gw = gw(no_op_endpoint(&b)).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-custom"), Some("kept"));
    assert_eq!(
        r.header_all("set-cookie"),
        vec!["a=1; Path=/".to_string(), "b=2; HttpOnly".to_string()]
    );
    assert!(
        r.completed().is_some(),
        "every handled response carries the completed header"
    );
}

// ---- errors.returnCode / errors.returnDetails -------------------------------------------

#[tokio::test]
async fn return_code_passes_single_backend_418() {
    let b = status_backend(418, "teapot").await;
    let gw = gw(one_endpoint(vec![json!({
        "hosts": [b.url()], "urlPattern": "/x", "errors": {"returnCode": true}
    })]))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 418);
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn without_return_code_418_becomes_500() {
    let b = status_backend(418, "teapot").await;
    let gw = gw(one_endpoint(vec![be(&b)])).await;
    assert_empty_500(&get(&gw.url("/e")).await);
}

#[tokio::test]
async fn return_details_next_to_ok_backend_adds_error_object() {
    let ok = json_backend(200, r#"{"a":1}"#).await;
    let bad = status_backend(404, "no such thing").await;
    let gw = gw(one_endpoint(vec![
        be(&ok),
        json!({"hosts": [bad.url()], "urlPattern": "/x", "errors": {"returnDetails": "A"}}),
    ]))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(
        r.json(),
        json!({
            "a": 1,
            "error_A": {
                "http_status_code": 404,
                "http_body": "no such thing",
                "http_body_encoding": "text/plain"
            }
        })
    );
}

#[tokio::test]
async fn return_details_on_only_backend_still_gives_200_with_error_object() {
    let bad = status_backend(404, "no such thing").await;
    let gw = gw(one_endpoint(vec![json!({
        "hosts": [bad.url()], "urlPattern": "/x", "errors": {"returnDetails": "A"}
    })]))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(
        r.json(),
        json!({
            "error_A": {
                "http_status_code": 404,
                "http_body": "no such thing",
                "http_body_encoding": "text/plain"
            }
        })
    );
}

// ---- routing ------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_path_gives_404() {
    let b = json_backend(200, r#"{"a":1}"#).await;
    let gw = gw(one_endpoint(vec![be(&b)])).await;
    let r = get(&gw.url("/nowhere")).await;
    assert_eq!(r.status, 404);
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn known_path_with_other_method_gives_405() {
    let b = json_backend(200, r#"{"a":1}"#).await;
    let gw = gw(one_endpoint(vec![be(&b)])).await;
    let r = send("POST", &gw.url("/e"), &[], "{}").await;
    assert_eq!(r.status, 405);
    assert_eq!(b.hits(), 0);
}

// ---- merge order --------------------------------------------------------------------------

#[tokio::test]
async fn answers_merge_in_arrival_order_slower_backend_wins() {
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        reply(200, "application/json", r#"{"shared":"slow","s":1}"#)
    })
    .await;
    let fast = json_backend(200, r#"{"shared":"fast","f":1}"#).await;
    // The slow backend is listed first: arrival order, not declaration order, decides.
    let gw = gw(one_endpoint(vec![be(&slow), be(&fast)])).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"shared": "slow", "s": 1, "f": 1}));
}

#[tokio::test]
async fn answers_merge_in_arrival_order_when_slow_backend_is_listed_last() {
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        reply(200, "application/json", r#"{"shared":"slow"}"#)
    })
    .await;
    let fast = json_backend(200, r#"{"shared":"fast"}"#).await;
    let gw = gw(one_endpoint(vec![be(&fast), be(&slow)])).await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.json(), json!({"shared": "slow"}));
}
