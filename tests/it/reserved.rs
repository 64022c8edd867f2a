//! The reserved endpoints: health (+ live/ready), debug, echo, stats; on and off; admin port.

use crate::support::*;

fn cfg(settings: &str, backend: &Backend) -> String {
    format!(
        "{settings}\nendpoints:\n- path: /x\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
        backend.url()
    )
}

#[tokio::test]
async fn health_is_on_by_default() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&cfg("", &b)).await;
    for p in ["/__health", "/__health/live", "/__health/ready"] {
        let r = get(&gw.url(p)).await;
        assert_eq!(r.status, 200, "{p}");
        let v = r.json();
        assert_eq!(v["status"], "ok", "{p}");
        assert!(v["now"].as_str().unwrap().contains('T'), "{p}: {v}");
    }
}

#[tokio::test]
async fn health_can_move_or_be_disabled() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&cfg("health: {path: /healthz}", &b)).await;
    assert_eq!(get(&gw.url("/healthz")).await.status, 200);
    assert_eq!(get(&gw.url("/healthz/ready")).await.status, 200);
    assert_eq!(get(&gw.url("/__health")).await.status, 404);
    let gw = gateway(&cfg("health: {enabled: false}", &b)).await;
    assert_eq!(get(&gw.url("/__health")).await.status, 404);
}

#[tokio::test]
async fn debug_and_echo_are_off_by_default() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&cfg("", &b)).await;
    assert_eq!(get(&gw.url("/__debug/")).await.status, 404);
    assert_eq!(get(&gw.url("/__echo/")).await.status, 404);
    assert_eq!(get(&gw.url("/__stats")).await.status, 404);
}

#[tokio::test]
async fn debug_answers_pong_when_enabled() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&cfg("debug: true", &b)).await;
    for p in ["/__debug/", "/__debug/some/path", "/__debug"] {
        let r = get(&gw.url(p)).await;
        assert_eq!(
            (r.status, r.json()),
            (200, serde_json::json!({"message": "pong"})),
            "{p}"
        );
    }
    let r = send("POST", &gw.url("/__debug/x"), &[], "body").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn echo_reflects_the_request_when_enabled() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&cfg("echo: true", &b)).await;
    let r = send(
        "PUT",
        &gw.url("/__echo/a/b?x=1&x=2&y=z"),
        &[("X-Test", "yes")],
        "payload",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["uri"], "/__echo/a/b?x=1&x=2&y=z");
    assert_eq!(v["query"]["x"], serde_json::json!(["1", "2"]));
    assert_eq!(v["headers"]["x-test"], serde_json::json!(["yes"]));
    assert_eq!(v["body"], "payload");
}

#[tokio::test]
async fn admin_port_moves_reserved_endpoints_off_the_proxy_port() {
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let admin = closed_port().await.port();
    let gw = gateway(&cfg(&format!("adminPort: {admin}\ndebug: true"), &b)).await;
    assert_eq!(get(&gw.url("/__health")).await.status, 404);
    assert_eq!(get(&gw.url("/__debug/")).await.status, 404);
    assert_eq!(get(&gw.url("/x")).await.status, 200);
    assert_eq!(get(&gw.admin_url("/__health")).await.status, 200);
    assert_eq!(get(&gw.admin_url("/__debug/")).await.status, 200);
    assert_eq!(get(&gw.admin_url("/x")).await.status, 404);
}

#[tokio::test]
async fn readiness_turns_503_when_draining() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&cfg("", &b)).await;
    gw.gw.handle.shared().begin_drain();
    assert_eq!(get(&gw.url("/__health/ready")).await.status, 503);
    assert_eq!(get(&gw.url("/__health")).await.status, 503);
    assert_eq!(get(&gw.url("/__health/live")).await.status, 200);
}
