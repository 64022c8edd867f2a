//! The endpoint deadline bounds the whole pipeline: slow backends fail, fast ones still
//! count, late calls are cancelled, and the settings timeout is the default.

use crate::support::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn slow_backend(delay: Duration, body: &'static str) -> Backend {
    backend(move |_| async move {
        tokio::time::sleep(delay).await;
        reply(200, "application/json", body)
    })
    .await
}

#[tokio::test]
async fn slow_backend_alone_fails_at_the_endpoint_timeout() {
    let slow = slow_backend(Duration::from_secs(2), r#"{"slow":true}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /t\n  timeout: 200ms\n  backends:\n  - hosts: [{}]\n    urlPattern: /slow\n",
        slow.url()
    ))
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/t")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty(), "{:?}", r.text());
    assert_eq!(r.completed(), Some("false"));
    assert!(
        took >= Duration::from_millis(150),
        "answered before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 200ms timeout"
    );
    assert_eq!(slow.hits(), 1, "the slow backend was called");
}

#[tokio::test]
async fn timeout_with_return_error_message_says_deadline_or_timeout() {
    let slow = slow_backend(Duration::from_secs(2), r#"{"slow":true}"#).await;
    let gw = gateway(&format!(
        "returnErrorMessage: true\nendpoints:\n- path: /t\n  timeout: 200ms\n  backends:\n  - hosts: [{}]\n    urlPattern: /slow\n",
        slow.url()
    ))
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/t")).await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(r.status, 500);
    let text = r.text().to_ascii_lowercase();
    assert!(
        text.contains("deadline") || text.contains("timeout") || text.contains("timed out"),
        "error text does not mention the timeout: {text:?}"
    );
}

#[tokio::test]
async fn fast_and_slow_backends_give_the_fast_part_incomplete() {
    let fast = json_backend(200, r#"{"fast":1}"#).await;
    let slow = slow_backend(Duration::from_secs(2), r#"{"slow":2}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /t\n  timeout: 200ms\n  backends:\n  - hosts: [{}]\n    urlPattern: /fast\n  - hosts: [{}]\n    urlPattern: /slow\n",
        fast.url(),
        slow.url()
    ))
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/t")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(r.json(), serde_json::json!({"fast": 1}));
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 200ms timeout"
    );
}

#[tokio::test]
async fn backends_finishing_in_time_are_complete() {
    let a = slow_backend(Duration::from_millis(50), r#"{"a":1}"#).await;
    let b = slow_backend(Duration::from_millis(100), r#"{"b":2}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /t\n  timeout: 1500ms\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n  - hosts: [{}]\n    urlPattern: /b\n",
        a.url(),
        b.url()
    ))
    .await;
    let r = get(&gw.url("/t")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(r.json(), serde_json::json!({"a": 1, "b": 2}));
}

/// A raw backend that reads the request, never answers, and records whether the gateway
/// closed the connection within 3 s.
async fn hanging_backend() -> (String, Arc<AtomicUsize>, Arc<AtomicBool>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let (acc, cl) = (accepted.clone(), closed.clone());
    let addr = raw_backend(move |mut stream: TcpStream| {
        let (acc, cl) = (acc.clone(), cl.clone());
        async move {
            acc.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            // Read the request head, then wait for the peer to go away.
            loop {
                match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Err(_) => return, // still open after 3 s: not cancelled
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        if head.windows(4).any(|w| w == b"\r\n\r\n") {
                            cl.store(true, Ordering::SeqCst);
                        }
                        return;
                    }
                    Ok(Ok(n)) => head.extend_from_slice(&buf[..n]),
                }
            }
        }
    })
    .await;
    (format!("http://{addr}"), accepted, closed)
}

#[tokio::test]
async fn late_backend_call_is_cancelled_at_the_deadline() {
    let (hang_url, accepted, closed) = hanging_backend().await;
    let fast = json_backend(200, r#"{"fast":1}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /t\n  timeout: 200ms\n  backends:\n  - hosts: [{hang_url}]\n    urlPattern: /hang\n  - hosts: [{}]\n    urlPattern: /fast\n",
        fast.url()
    ))
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/t")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(r.json(), serde_json::json!({"fast": 1}));
    assert!(started.elapsed() < Duration::from_millis(1500));
    // The hanging backend must see its connection closed well before its own 3 s limit.
    for _ in 0..250 {
        if closed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "backend called once");
    assert!(
        closed.load(Ordering::SeqCst),
        "the late backend call was not cancelled (connection still open {:?} after the request)",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn settings_timeout_is_the_default_endpoint_timeout() {
    let slow = slow_backend(Duration::from_secs(2), r#"{"slow":true}"#).await;
    let gw = gateway(&format!(
        "timeout: 200ms\nendpoints:\n- path: /t\n  backends:\n  - hosts: [{}]\n    urlPattern: /slow\n",
        slow.url()
    ))
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/t")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 500);
    assert_eq!(r.completed(), Some("false"));
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 200ms settings timeout"
    );
}

#[tokio::test]
async fn endpoint_timeout_overrides_a_shorter_settings_timeout() {
    let slow = slow_backend(Duration::from_millis(600), r#"{"slow":true}"#).await;
    let gw = gateway(&format!(
        "timeout: 200ms\nendpoints:\n- path: /t\n  timeout: 3s\n  backends:\n  - hosts: [{}]\n    urlPattern: /slow\n",
        slow.url()
    ))
    .await;
    let r = get(&gw.url("/t")).await;
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(r.json(), serde_json::json!({"slow": true}));
}

#[tokio::test]
async fn endpoint_timeout_overrides_a_longer_settings_timeout() {
    let slow = slow_backend(Duration::from_secs(2), r#"{"slow":true}"#).await;
    let gw = gateway(&format!(
        "timeout: 5s\nendpoints:\n- path: /t\n  timeout: 200ms\n  backends:\n  - hosts: [{}]\n    urlPattern: /slow\n",
        slow.url()
    ))
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/t")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 500);
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 200ms endpoint timeout"
    );
}

#[tokio::test]
async fn sequential_pipeline_is_bounded_by_the_endpoint_timeout() {
    let first = slow_backend(Duration::from_millis(150), r#"{"first":1}"#).await;
    let second = slow_backend(Duration::from_secs(2), r#"{"second":2}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /t\n  timeout: 400ms\n  sequential: true\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n  - hosts: [{}]\n    urlPattern: /b\n",
        first.url(),
        second.url()
    ))
    .await;
    let started = Instant::now();
    let r = get(&gw.url("/t")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(r.json(), serde_json::json!({"first": 1}));
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} with a 400ms timeout"
    );
}
