//! no-op bodies stream: the client gets the first bytes while the backend is still sending.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn no_op_streams_the_body_instead_of_buffering_it() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let slow = raw_backend(move |mut s| {
        let mut release = release_rx.clone();
        async move {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(b"6\r\nfirst \r\n").await;
            let _ = s.flush().await;
            // Hold the rest until the test has seen the first chunk (or 5 s pass).
            let _ = tokio::time::timeout(Duration::from_secs(5), release.wait_for(|r| *r)).await;
            let _ = s.write_all(b"4\r\nlast\r\n0\r\n\r\n").await;
        }
    })
    .await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /file\n  timeout: 10s\n  outputEncoding: no-op\n  backends:\n  - hosts: [\"http://{slow}\"]\n    urlPattern: /f\n"
    ))
    .await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(3),
        client.get(gw.url("/file").parse().unwrap()),
    )
    .await
    .expect("headers arrive while the backend still holds the body")
    .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(3), body.frame())
        .await
        .expect("the first chunk arrives before the backend finishes")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first ");
    assert!(started.elapsed() < Duration::from_secs(3));
    release_tx.send(true).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"last");
}

#[tokio::test]
async fn no_op_forwards_a_streamed_request_body() {
    let echo = backend(|r| async move { reply(200, "text/plain", r.body) }).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /up\n  method: POST\n  outputEncoding: no-op\n  backends:\n  - hosts: [{}]\n    urlPattern: /u\n",
        echo.url()
    ))
    .await;
    let payload = "x".repeat(256 * 1024);
    let r = send(
        "POST",
        &gw.url("/up"),
        &[("content-type", "text/plain")],
        payload.clone(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), payload.len());
    assert_eq!(echo.requests()[0].body.len(), payload.len());
}
