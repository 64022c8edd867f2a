//! Hostile clients and backends (issue 10): each test reproduces a defect an adversarial
//! pass found, through real sockets.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

// ------------------------------------------------------------- traversal through nginx

const NGINX_LOCATIONS: &str = "
    location = /internal/secret { return 200 'SECRET'; }
    location /raw/ { return 200 'raw'; }
";

#[tokio::test]
async fn encoded_traversal_never_reaches_a_normalising_backend() {
    let Some(nginx) = nginx::start(NGINX_LOCATIONS) else {
        return;
    };
    // The backend really is vulnerable: asked directly, nginx decodes and normalises.
    let direct = get(&format!("{}/raw/..%2Finternal%2Fsecret", nginx.url())).await;
    assert_eq!(
        direct.text(),
        "SECRET",
        "nginx normalises %2F and dot segments"
    );
    let gw = gateway(&format!(
        "endpoints:\n- path: /files/{{name}}\n  backends:\n  - hosts: [{0}]\n    urlPattern: /raw/{{name}}\n    encoding: string\n\
         - path: /tree/{{*rest}}\n  backends:\n  - hosts: [{0}]\n    urlPattern: /raw/{{rest}}\n    encoding: string\n",
        nginx.url()
    ))
    .await;
    assert_eq!(get(&gw.url("/files/ok")).await.json()["content"], "raw");
    for attack in [
        "/files/..%2Finternal%2Fsecret",
        "/files/%2e%2e%2Finternal%2Fsecret",
        "/files/%2E%2E",
        "/tree/a/%2e%2e/%2e%2e/internal/secret",
        "/tree/a/../../internal/secret",
        "/tree/..%2Finternal%2Fsecret",
    ] {
        let r = get(&gw.url(attack)).await;
        assert_eq!(r.status, 400, "{attack}: {}", r.text());
        assert!(!r.text().contains("SECRET"), "{attack}");
    }
    // A catch-all keeps its slashes, each segment encoded.
    let r = get(&gw.url("/tree/a/b%20c")).await;
    assert_eq!((r.status, r.json()["content"].as_str()), (200, Some("raw")));
}

// ------------------------------------------------------------- placeholders past the router

fn many_placeholders(n: usize) -> String {
    (0..n).map(|i| format!("/{{p{i}}}")).collect()
}

#[tokio::test]
async fn too_many_placeholders_are_refused_by_check_and_reload_and_the_watcher_lives_on() {
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let valid = |path: &str| {
        format!(
            "endpoints:\n- path: {path}\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
            b.url()
        )
    };
    // `weir check` says why instead of "valid".
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(&file, valid(&many_placeholders(30))).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("at most 16 are allowed"), "{stderr}");

    let gw = gateway(&valid("/a")).await;
    let generation = gw.generation();
    let rejected = gw.rejected_reloads();
    gw.rewrite(&valid(&many_placeholders(30)));
    gw.wait_rejected_above(rejected).await;
    assert_eq!(gw.generation(), generation, "the bad table is not served");
    // The watcher survived: a later valid edit is applied, and readiness tells the truth.
    gw.rewrite(&valid("/b"));
    gw.wait_generation_above(generation).await;
    assert_eq!(get(&gw.url("/b")).await.status, 200);
    assert_eq!(get(&gw.url("/__health/ready")).await.status, 200);
}

// ------------------------------------------------------------- no-op streams that stall

/// A no-op gateway in front of a raw backend that writes `head` and then `behaviour`.
async fn stalling(head: &'static str, close: bool) -> Gw {
    let addr = raw_backend(move |mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(head.as_bytes()).await;
        if close {
            return;
        }
        // Stall with the connection open.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    gateway(&format!(
        "endpoints:\n- path: /s\n  timeout: 300ms\n  outputEncoding: no-op\n  backends:\n  - hosts: [http://{addr}]\n    urlPattern: /s\n    encoding: no-op\n"
    ))
    .await
}

/// The status and whether the body ended in an error (an aborted connection).
async fn body_outcome(gw: &Gw) -> (u16, bool) {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(gw.url("/s").parse().unwrap()),
    )
    .await
    .expect("headers within 10s")
    .expect("headers arrive");
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the stream ends (cut) rather than hanging");
    (status, body.is_err())
}

#[tokio::test]
async fn a_stalled_no_op_stream_is_aborted_not_left_hanging() {
    let gw = stalling(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n",
        false,
    )
    .await;
    assert_eq!(body_outcome(&gw).await, (200, true));
}

#[tokio::test]
async fn a_short_no_op_body_is_aborted_whether_the_backend_stalls_or_closes() {
    let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345";
    assert_eq!(
        body_outcome(&stalling(head, false).await).await,
        (200, true)
    );
    assert_eq!(body_outcome(&stalling(head, true).await).await, (200, true));
}

// ------------------------------------------------------------- open redirect

#[tokio::test]
async fn the_trailing_slash_redirect_never_points_at_another_host() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /{{name}}\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
        b.url()
    ))
    .await;
    // `/\evil.example/` minus its slash is routed (`/{name}`), but `/\evil.example` is read by
    // browsers as another host.
    let head = raw_exchange(
        gw.addr(),
        b"GET /\\evil.example/ HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("location:"), "{head}");
    // An ordinary trailing slash still redirects.
    let head = raw_exchange(
        gw.addr(),
        b"GET /users/ HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(head.contains("location: /users\r\n"), "{head}");
}

// ------------------------------------------------------------- redirect loops

#[tokio::test]
async fn a_backend_redirecting_into_the_gateway_is_stopped_by_via() {
    // The backend redirects every call to the gateway's own endpoint: without loop detection
    // every pass calls the backend again.
    let gw_addr = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let target = gw_addr.clone();
    let b = backend(move |_| {
        let target = target.clone();
        async move {
            let mut r = reply(302, "text/plain", "");
            r.headers_mut().insert(
                "location",
                format!("{}/loop", target.get().unwrap()).parse().unwrap(),
            );
            r
        }
    })
    .await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /loop\n  timeout: 5s\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
        b.url()
    ))
    .await;
    gw_addr.set(format!("http://{}", gw.addr())).unwrap();
    let r = get(&gw.url("/loop")).await;
    assert_eq!(r.status, 500);
    // One call per pass through the gateway; the pass that finds 5 Weirs in Via answers
    // 508 without calling the backend.
    assert_eq!(b.hits(), 5, "backend calls for one client request");
}

#[tokio::test]
async fn follow_redirects_and_same_host_only_are_honoured() {
    let target = json_backend(200, r#"{"moved":true}"#).await;
    let location = format!("{}/new", target.url());
    let redirector = backend(move |_| {
        let location = location.clone();
        async move {
            let mut r = reply(302, "text/plain", "");
            r.headers_mut()
                .insert("location", location.parse().unwrap());
            r
        }
    })
    .await;
    let cfg = |extra: &str| {
        format!(
            "endpoints:\n- path: /r\n  backends:\n  - hosts: [{}]\n    urlPattern: /old\n{extra}",
            redirector.url()
        )
    };
    let gw = gateway(&cfg("")).await;
    assert_eq!(
        get(&gw.url("/r")).await.json()["moved"],
        true,
        "followed by default"
    );
    let gw = gateway(&cfg("    followRedirects: false\n")).await;
    assert_eq!(
        get(&gw.url("/r")).await.status,
        500,
        "a 3xx not followed fails"
    );
    let gw = gateway(&cfg("    redirectSameHostOnly: true\n")).await;
    assert_eq!(
        get(&gw.url("/r")).await.status,
        500,
        "another port is another origin"
    );
    assert_eq!(
        target.hits(),
        1,
        "only the default configuration reached the target"
    );
}

// ------------------------------------------------------------- smaller ones

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_at_once() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /up\n  method: POST\n  timeout: 10s\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
        b.url()
    ))
    .await;
    // Only the head is sent: the answer must not wait for 100 MB (or the 10 s timeout).
    let head = raw_exchange(
        gw.addr(),
        b"POST /up HTTP/1.1\r\nhost: gw\r\ncontent-length: 104857600\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn ambiguous_hosts_are_refused() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /h\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
        b.url()
    ))
    .await;
    let two = raw_exchange(
        gw.addr(),
        b"GET /h HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
    let absolute = raw_exchange(
        gw.addr(),
        b"GET http://evil.example/h HTTP/1.1\r\nhost: a.example\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 400"), "{absolute}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn client_identity_headers_are_believed_only_from_trusted_proxies() {
    let b = json_backend(200, "{}").await;
    let cfg = |settings: &str| {
        format!(
            "{settings}endpoints:\n- path: /f\n  inputHeaders: ['*']\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
            b.url()
        )
    };
    let spoof = [
        ("forwarded", "for=6.6.6.6"),
        ("x-real-ip", "6.6.6.6"),
        ("x-forwarded-for", "6.6.6.6"),
    ];
    let gw = gateway(&cfg("")).await;
    assert_eq!(send("GET", &gw.url("/f"), &spoof, "").await.status, 200);
    let got = b.requests().pop().unwrap();
    assert_eq!(got.header("forwarded"), None);
    assert_eq!(got.header("x-real-ip"), None);
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));

    let gw = gateway(&cfg("trustedProxies: [127.0.0.0/8]\n")).await;
    assert_eq!(send("GET", &gw.url("/f"), &spoof, "").await.status, 200);
    let got = b.requests().pop().unwrap();
    assert_eq!(got.header("forwarded"), Some("for=6.6.6.6"));
    assert_eq!(got.header("x-real-ip"), Some("6.6.6.6"));
    assert_eq!(got.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
}

#[test]
fn a_busy_port_is_an_error_naming_the_port_and_the_flag_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(&file, "endpoints: []\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--port", &port.to_string(), "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let needle = format!("proxy port {port} is already in use");
    assert_eq!(stderr.matches(&needle).count(), 1, "{stderr}");
    assert!(stderr.contains("--port"), "{stderr}");
}

// ------------------------------------------------------------- CPU-bound decoding

#[tokio::test]
async fn hostile_xml_is_decoded_off_the_worker_and_the_deadline_still_fires() {
    // 200,000 attributes: 147 s of one worker before the codec became linear.
    let mut doc = String::from("<r ");
    for i in 0..200_000 {
        doc.push_str(&format!("a{i}=\"{i}\" "));
    }
    doc.push_str("/>");
    let doc: &'static str = Box::leak(doc.into_boxed_str());
    let hostile = backend(move |_| async move { reply(200, "application/xml", doc) }).await;
    let fast = json_backend(200, r#"{"fast":true}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /xml\n  timeout: 2s\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n    encoding: xml\n\
         - path: /fast\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
        hostile.url(),
        fast.url()
    ))
    .await;
    let slow = tokio::spawn({
        let url = gw.url("/xml");
        async move { get(&url).await.status }
    });
    // Other clients keep being served while the document is decoded.
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/fast")).await.status, 200);
    }
    let status = slow.await.unwrap();
    assert!(
        matches!(status, 200 | 500),
        "answered in time or cut by the deadline: {status}"
    );
}

#[tokio::test]
async fn max_response_size_bounds_decoded_answers() {
    let big: &'static str =
        Box::leak(format!("{{\"blob\":\"{}\"}}", "x".repeat(11 * 1024 * 1024)).into_boxed_str());
    let b = backend(move |_| async move { reply(200, "application/json", big) }).await;
    let cfg = |extra: &str| {
        format!(
            // A generous deadline: 11 MiB through a debug build on a busy machine.
            "endpoints:\n- path: /big\n  timeout: 30s\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n{extra}",
            b.url()
        )
    };
    let gw = gateway(&cfg("")).await;
    assert_eq!(
        get(&gw.url("/big")).await.status,
        500,
        "over the 10 MiB default"
    );
    let gw = gateway(&cfg("    maxResponseSize: 20000000\n")).await;
    assert_eq!(get(&gw.url("/big")).await.status, 200, "raised per backend");
}
