//! Misbehaving backends: each one counts as a failed backend (alone → 500 with an empty
//! body; next to a healthy backend → 200 with the healthy part), never hangs and never
//! takes the gateway down.

use crate::support::*;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTHY: &str = r#"{"healthy":true}"#;

/// Reads the request head (up to the blank line), bounded in size and time.
async fn read_head(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
}

/// Checks that the backend at `bad_url` (with `extra` backend fields, each line indented
/// four spaces) is a failed backend, alone and next to a healthy one, and that the gateway
/// keeps serving afterwards.
async fn assert_failed_backend(bad_url: &str, extra: &str) {
    let healthy = json_backend(200, HEALTHY).await;
    let gw = gateway(&format!(
        "endpoints:\n\
         - path: /alone\n  backends:\n  - hosts: [{bad_url}]\n    urlPattern: /bad\n{extra}\
         - path: /partial\n  backends:\n  - hosts: [{bad_url}]\n    urlPattern: /bad\n{extra}  - hosts: [{h}]\n    urlPattern: /ok\n\
         - path: /healthy\n  backends:\n  - hosts: [{h}]\n    urlPattern: /ok\n",
        h = healthy.url()
    ))
    .await;

    let started = Instant::now();
    let r = get(&gw.url("/alone")).await;
    assert_eq!(r.status, 500, "alone: {:?}", r.text());
    assert!(r.body.is_empty(), "500 body must be empty: {:?}", r.text());
    assert_eq!(r.completed(), Some("false"));

    let r = get(&gw.url("/partial")).await;
    assert_eq!(r.status, 200, "partial: {:?}", r.text());
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(r.json(), serde_json::json!({"healthy": true}));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed backends took {:?}",
        started.elapsed()
    );

    // The gateway keeps serving, on the same endpoints and on others.
    let r = get(&gw.url("/healthy")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(r.json(), serde_json::json!({"healthy": true}));
    let r = get(&gw.url("/alone")).await;
    assert_eq!(r.status, 500);
    let r = get(&gw.url("/partial")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"healthy": true}));
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[tokio::test]
async fn invalid_json_is_a_failed_backend() {
    let b = json_backend(200, "this is not json {").await;
    assert_failed_backend(&b.url(), "").await;
}

#[tokio::test]
async fn truncated_json_is_a_failed_backend() {
    let b = json_backend(200, r#"{"a": [1, 2, {"b": "#).await;
    assert_failed_backend(&b.url(), "").await;
}

#[tokio::test]
async fn empty_body_is_a_failed_backend() {
    let b = json_backend(200, "").await;
    assert_failed_backend(&b.url(), "").await;
}

#[tokio::test]
async fn json_array_without_is_collection_is_a_failed_backend() {
    let b = json_backend(200, r#"[1,2,3]"#).await;
    assert_failed_backend(&b.url(), "").await;
}

#[tokio::test]
async fn json_array_with_is_collection_is_wrapped_in_collection() {
    let b = json_backend(200, r#"[1,{"a":2},"x"]"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /c\n  backends:\n  - hosts: [{}]\n    urlPattern: /c\n    isCollection: true\n",
        b.url()
    ))
    .await;
    let r = get(&gw.url("/c")).await;
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(
        r.json(),
        serde_json::json!({"collection": [1, {"a": 2}, "x"]})
    );
}

#[tokio::test]
async fn invalid_xml_is_a_failed_backend() {
    let b = backend(|_| async { reply(200, "application/xml", "<a><b>1</a></b") }).await;
    assert_failed_backend(&b.url(), "    encoding: xml\n").await;
}

#[tokio::test]
async fn connection_refused_is_a_failed_backend() {
    let addr = closed_port().await;
    assert_failed_backend(&url(addr), "").await;
}

#[tokio::test]
async fn connection_closed_on_accept_is_a_failed_backend() {
    let addr = raw_backend(|stream| async move { drop(stream) }).await;
    assert_failed_backend(&url(addr), "").await;
}

#[tokio::test]
async fn connection_reset_after_request_is_a_failed_backend() {
    let addr = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream.set_zero_linger();
        drop(stream); // RST
    })
    .await;
    assert_failed_backend(&url(addr), "").await;
}

#[tokio::test]
async fn partial_response_head_then_close_is_a_failed_backend() {
    let addr = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Ty").await;
        let _ = stream.flush().await;
    })
    .await;
    assert_failed_backend(&url(addr), "").await;
}

#[tokio::test]
async fn short_body_for_content_length_is_a_failed_backend() {
    let addr = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":1234",
            )
            .await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    })
    .await;
    assert_failed_backend(&url(addr), "").await;
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_failed_backend() {
    let addr = raw_backend(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        let _ = stream.shutdown().await;
    })
    .await;
    assert_failed_backend(&url(addr), "").await;
}

/// Writes a chunked body that never ends (bounded to ~10 s so the test cannot leak forever).
async fn endless_chunked(mut stream: TcpStream) {
    read_head(&mut stream).await;
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n";
    if stream.write_all(head).await.is_err() {
        return;
    }
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if stream.write_all(b"1\r\n \r\n").await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn endless_body_is_cut_by_the_endpoint_timeout() {
    let addr = raw_backend(endless_chunked).await;
    let healthy = json_backend(200, HEALTHY).await;
    let gw = gateway(&format!(
        "endpoints:\n\
         - path: /alone\n  timeout: 300ms\n  backends:\n  - hosts: [{b}]\n    urlPattern: /bad\n\
         - path: /partial\n  timeout: 300ms\n  backends:\n  - hosts: [{b}]\n    urlPattern: /bad\n  - hosts: [{h}]\n    urlPattern: /ok\n\
         - path: /healthy\n  backends:\n  - hosts: [{h}]\n    urlPattern: /ok\n",
        b = url(addr),
        h = healthy.url()
    ))
    .await;

    let started = Instant::now();
    let r = get(&gw.url("/alone")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty(), "{:?}", r.text());
    assert_eq!(r.completed(), Some("false"));
    assert!(
        took >= Duration::from_millis(250),
        "answered before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 300ms timeout"
    );

    let started = Instant::now();
    let r = get(&gw.url("/partial")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(r.json(), serde_json::json!({"healthy": true}));
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 300ms timeout"
    );

    let r = get(&gw.url("/healthy")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
}

#[tokio::test]
async fn backend_error_status_is_a_failed_backend() {
    let b = json_backend(503, r#"{"error":"down"}"#).await;
    assert_failed_backend(&b.url(), "").await;
}
