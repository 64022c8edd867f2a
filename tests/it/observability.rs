//! Observability: OpenTelemetry spans received by an OTLP collector in the test (HTTP and
//! gRPC), W3C trace context through to the backends, request ids, the new metrics, JSON
//! logs from the binary, and the chart's dashboard against a live `/__stats`.

mod collector;
mod dashboard;
mod logs;

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use crate::support::*;
use collector::{Collector, Received};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const OTHER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn sampled_parent() -> String {
    format!("00-{TRACE_ID}-{PARENT}-01")
}

fn tracing_settings(collector: &str, ratio: f64) -> String {
    format!("tracing:\n  otlpEndpoint: {collector}\n  sampleRatio: {ratio}\n")
}

fn echo_backend(answer: &'static str) -> impl std::future::Future<Output = Backend> {
    backend(move |_| async move { reply(200, "application/json", answer) })
}

/// `00-TRACE-SPAN-FLAGS` → (trace, span, flags).
fn parse_traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00", "{v}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn client_spans(spans: &[Received]) -> Vec<&Received> {
    spans.iter().filter(|s| s.is_client()).collect()
}

#[tokio::test]
async fn a_client_traceparent_continues_into_the_server_span_and_every_backend_call() {
    let (collector, addr) = Collector::http().await;
    let users = echo_backend(r#"{"user":1}"#).await;
    let orders = echo_backend(r#"{"orders":[]}"#).await;
    // No inputHeaders: the whitelist forwards nothing, the trace context goes anyway.
    let gw = gateway(&format!(
        "{}endpoints:
- path: /profile/{{id}}
  backends:
  - {{hosts: [{}], urlPattern: \"/users/{{id}}\"}}
  - {{hosts: [{}], urlPattern: /orders}}
",
        tracing_settings(&format!("http://{addr}"), 1.0),
        users.url(),
        orders.url()
    ))
    .await;
    let tp = sampled_parent();
    let r = send(
        "GET",
        &gw.url("/profile/7"),
        &[("traceparent", &tp), ("tracestate", "vendor=abc")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let request_id = r.header("x-request-id").expect("an id").to_string();
    let spans = collector.wait_spans(3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let server: Vec<&Received> = spans.iter().filter(|s| s.is_server()).collect();
    assert_eq!(server.len(), 1, "one server span: {spans:#?}");
    let server = server[0];
    assert_eq!(server.service, "weir");
    assert_eq!(server.trace_id(), TRACE_ID);
    assert_eq!(server.parent_id(), PARENT, "continues the client's span");
    assert_eq!(server.span.name, "GET /profile/{id}");
    assert_eq!(server.attr("http.route"), json!("/profile/{id}"));
    assert_eq!(server.attr("http.request.method"), json!("GET"));
    assert_eq!(server.attr("url.path"), json!("/profile/7"));
    assert_eq!(server.attr("http.response.status_code"), json!(200));
    assert_eq!(server.attr("weir.completed"), json!(true));
    assert_eq!(server.attr("weir.request_id"), json!(request_id));
    let clients = client_spans(&spans);
    assert_eq!(clients.len(), 2, "one client span per backend");
    for c in &clients {
        assert_eq!(c.trace_id(), TRACE_ID);
        assert_eq!(c.parent_id(), server.span_id());
        assert_eq!(c.attr("weir.backend.outcome"), json!("ok"));
        assert_eq!(c.attr("http.response.status_code"), json!(200));
    }
    let client_ids: HashSet<String> = clients.iter().map(|c| c.span_id()).collect();
    let mut seen = HashSet::new();
    for b in [&users, &orders] {
        let got = &b.requests()[0];
        let (trace, span, flags) = parse_traceparent(got.header("traceparent").unwrap());
        assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "01"));
        assert!(client_ids.contains(&span), "{span} is not a client span");
        seen.insert(span);
        assert_eq!(got.header("tracestate"), Some("vendor=abc"));
        assert_eq!(got.header("x-request-id"), Some(request_id.as_str()));
    }
    assert_eq!(seen.len(), 2, "each backend call has its own span");
}

#[tokio::test]
async fn client_spans_say_how_each_backend_call_ended() {
    let (collector, addr) = Collector::http().await;
    let fast = echo_backend(r#"{"a":1}"#).await;
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        reply(200, "application/json", "{}")
    })
    .await;
    let broken = json_backend(500, "{}").await;
    let gw = gateway(&format!(
        "{}endpoints:
- path: /mixed
  timeout: 300ms
  backends:
  - {{hosts: [{fast}], urlPattern: /fast}}
  - {{hosts: [{slow}], urlPattern: /slow}}
  - {{hosts: [{fast}], urlPattern: /limited, rateLimit: {{maxRate: 1, every: 1h}}}}
  - hosts: [{broken}]
    urlPattern: /broken
    circuitBreaker: {{interval: 60s, timeout: 60s, maxErrors: 0}}
- path: /client-limited
  rateLimit: {{clientMaxRate: 1, every: 1h}}
  backends: [{{hosts: [{fast}], urlPattern: /fast}}]
",
        tracing_settings(&format!("http://{addr}"), 1.0),
        fast = fast.url(),
        slow = slow.url(),
        broken = broken.url()
    ))
    .await;
    for _ in 0..2 {
        let r = get(&gw.url("/mixed")).await;
        assert_eq!((r.status, r.completed()), (200, Some("false")));
    }
    assert_eq!(get(&gw.url("/client-limited")).await.status, 200);
    assert_eq!(get(&gw.url("/client-limited")).await.status, 429);
    // 2 × (server + 4 clients) + 2 servers + 1 client.
    let spans = collector.wait_spans(13).await;
    let outcomes = |pattern: &str| -> Vec<String> {
        let mut v: Vec<String> = client_spans(&spans)
            .iter()
            .filter(|s| s.attr("url.template") == json!(pattern))
            .map(|s| s.attr("weir.backend.outcome").as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(outcomes("/fast")[..2], ["ok", "ok"]);
    assert_eq!(outcomes("/slow"), ["timeout", "timeout"]);
    assert_eq!(outcomes("/limited"), ["ok", "rate-limited"]);
    assert_eq!(outcomes("/broken"), ["breaker-open", "failed"]);
    let failed = client_spans(&spans)
        .into_iter()
        .find(|s| s.attr("weir.backend.outcome") == json!("failed"))
        .unwrap();
    assert_eq!(failed.attr("http.response.status_code"), json!(500));
    assert_eq!(failed.attr("error.type"), json!("failed_status"));
    assert_eq!(
        failed.span.status.as_ref().map(|s| s.code),
        Some(2),
        "error"
    );
    let mixed: Vec<&Received> = spans
        .iter()
        .filter(|s| s.is_server() && s.attr("http.route") == json!("/mixed"))
        .collect();
    assert_eq!(mixed.len(), 2);
    assert!(mixed
        .iter()
        .all(|s| s.attr("weir.completed") == json!(false)));
    let rejected: Vec<&Received> = spans
        .iter()
        .filter(|s| s.is_server() && s.attr("http.response.status_code") == json!(429))
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].event_names(), ["rate_limit.rejected"]);
    let event = &rejected[0].span.events[0];
    assert_eq!(event.attributes[0].key, "weir.rate_limit.scope");
}

#[tokio::test]
async fn an_auth_rejection_is_an_event_of_the_server_span() {
    let (collector, addr) = Collector::http().await;
    let b = echo_backend("{}").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "k-reader reader\nk-ops ops\n").unwrap();
    let gw = gateway(&format!(
        "{}endpoints:\n- path: /a\n  auth: {{apiKeys: {{file: '{}', roles: [reader]}}}}\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        tracing_settings(&format!("http://{addr}"), 1.0),
        keys.display(),
        b.url()
    ))
    .await;
    let get = |key: &'static str| {
        let url = gw.url("/a");
        async move { send("GET", &url, &[("x-api-key", key)], Bytes::new()).await }
    };
    assert_eq!(get("k-unknown").await.status, 401);
    assert_eq!(get("k-ops").await.status, 403);
    assert_eq!(get("k-reader").await.status, 200);
    let spans = collector.wait_spans(4).await;
    let servers: Vec<&Received> = spans.iter().filter(|s| s.is_server()).collect();
    assert_eq!(servers.len(), 3, "{spans:#?}");
    let reason = |status: i64| -> Vec<(String, String)> {
        let s = servers
            .iter()
            .find(|s| s.attr("http.response.status_code") == json!(status))
            .unwrap();
        s.span
            .events
            .iter()
            .map(|e| {
                assert_eq!(e.attributes.len(), 1, "{e:?}");
                let value = match e.attributes[0].value.as_ref().and_then(|v| v.value.clone()) {
                    Some(collector::Any::StringValue(v)) => v,
                    other => panic!("{other:?}"),
                };
                assert_eq!(e.attributes[0].key, "weir.auth.reason");
                (e.name.clone(), value)
            })
            .collect()
    };
    assert_eq!(
        reason(401),
        [("auth.rejected".to_string(), "api_key".to_string())]
    );
    assert_eq!(
        reason(403),
        [("auth.rejected".to_string(), "role".to_string())]
    );
    assert_eq!(reason(200), []);
    // The accepted request's backend call is its only client span.
    assert_eq!(client_spans(&spans).len(), 1);
}

#[tokio::test]
async fn an_unsampled_new_trace_is_not_exported_but_a_sampled_parent_is() {
    let (collector, addr) = Collector::http().await;
    let b = echo_backend("{}").await;
    let gw = gateway(&format!(
        "{}endpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        tracing_settings(&format!("http://{addr}"), 0.0),
        b.url()
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/a")).await.status, 200);
    }
    let tp = sampled_parent();
    let r = send("GET", &gw.url("/a"), &[("traceparent", &tp)], Bytes::new()).await;
    assert_eq!(r.status, 200);
    // A client's trace that its caller did not sample is continued unsampled.
    let unsampled = format!("00-{OTHER_TRACE}-{PARENT}-00");
    let r = send(
        "GET",
        &gw.url("/a"),
        &[("traceparent", &unsampled), ("tracestate", "k=v")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    // Stopping the tracer exports whatever is queued: after it, nothing else can arrive.
    let shared = gw.gw.handle.shared().clone();
    tokio::task::spawn_blocking(move || shared.stop_tracing())
        .await
        .unwrap();
    let spans = collector.spans();
    assert_eq!(
        spans.len(),
        2,
        "only the sampled request's spans: {spans:#?}"
    );
    assert!(spans.iter().all(|s| s.trace_id() == TRACE_ID));
    // The unsampled calls still carried a trace context, marked not sampled.
    let recorded = b.requests();
    for got in &recorded[..5] {
        let (trace, _, flags) = parse_traceparent(got.header("traceparent").unwrap());
        assert_eq!(flags, "00");
        assert_ne!(trace, TRACE_ID);
    }
    let (trace, _, flags) = parse_traceparent(recorded[5].header("traceparent").unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE_ID, "01"));
    let (trace, span, flags) = parse_traceparent(recorded[6].header("traceparent").unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (OTHER_TRACE, "00"));
    assert_ne!(span, PARENT, "the gateway's call is a span of its own");
    assert_eq!(recorded[6].header("tracestate"), Some("k=v"));
}

#[tokio::test]
async fn a_collector_that_is_down_fails_exports_not_requests() {
    let down = closed_port().await;
    let b = echo_backend(r#"{"ok":true}"#).await;
    let gw = gateway(&format!(
        "stats: {{enabled: true}}\n{}endpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        tracing_settings(&format!("http://{down}"), 1.0),
        b.url()
    ))
    .await;
    for _ in 0..20 {
        let r = get(&gw.url("/a")).await;
        assert_eq!((r.status, r.completed()), (200, Some("true")));
    }
    // The exporter tries, fails and says so (the warning is checked through the binary
    // in `logs`); the failure is counted.
    let failed = "weir_trace_exports_total{result=\"failed\"}";
    for _ in 0..200 {
        let t = get(&gw.url("/__stats")).await.text();
        if metric(&t, failed).is_some_and(|v| v >= 1.0) {
            assert_eq!(
                metric(&t, "weir_trace_exports_total{result=\"ok\"}"),
                Some(0.0)
            );
            assert_eq!(get(&gw.url("/a")).await.status, 200);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no failed export counted within 10s");
}

#[tokio::test]
async fn spans_are_exported_over_grpc_with_the_configured_service_name() {
    let (collector, addr) = Collector::grpc().await;
    let b = echo_backend("{}").await;
    let gw = gateway(&format!(
        "tracing:\n  otlpEndpoint: grpc://{addr}\n  serviceName: edge-gw\nendpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        b.url()
    ))
    .await;
    assert_eq!(get(&gw.url("/a")).await.status, 200);
    let spans = collector.wait_spans(2).await;
    assert!(spans.iter().all(|s| s.service == "edge-gw"), "{spans:#?}");
    assert_eq!(spans.iter().filter(|s| s.is_server()).count(), 1);
}

#[tokio::test]
async fn tracing_starts_and_stops_with_a_reload() {
    let (collector, addr) = Collector::http().await;
    let b = echo_backend("{}").await;
    let endpoints = format!(
        "endpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        b.url()
    );
    let gw = gateway(&endpoints).await;
    assert_eq!(get(&gw.url("/a")).await.status, 200);
    assert!(gw.gw.handle.shared().tracer().is_none());
    let before = gw.generation();
    gw.rewrite(&format!(
        "{}{endpoints}",
        tracing_settings(&format!("http://{addr}"), 1.0)
    ));
    gw.wait_generation_above(before).await;
    assert_eq!(get(&gw.url("/a")).await.status, 200);
    let spans = collector.wait_spans(2).await;
    assert_eq!(spans.len(), 2);
    let before = gw.generation();
    gw.rewrite(&endpoints);
    gw.wait_generation_above(before).await;
    assert!(gw.gw.handle.shared().tracer().is_none());
}

#[tokio::test]
async fn the_client_trace_context_reaches_backends_when_tracing_is_off() {
    let b = echo_backend("{}").await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /a\n  inputHeaders: [X-Only]\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        b.url()
    ))
    .await;
    let tp = sampled_parent();
    let r = send(
        "GET",
        &gw.url("/a"),
        &[("traceparent", &tp), ("tracestate", "k=v")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = &b.requests()[0];
    assert_eq!(got.header("traceparent"), Some(tp.as_str()));
    assert_eq!(got.header("tracestate"), Some("k=v"));
}

#[tokio::test]
async fn request_ids_are_generated_kept_or_replaced_and_sent_to_backends() {
    let b = echo_backend("{}").await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n- path: /raw\n  outputEncoding: no-op\n  backends: [{{hosts: [{}], urlPattern: /raw, encoding: no-op}}]\n",
        b.url(),
        b.url()
    ))
    .await;
    let generated = |v: &str| v.len() == 32 && v.bytes().all(|c| c.is_ascii_hexdigit());
    let too_long = "x".repeat(129);
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: [Case; 4] = [
        (&[], None),
        (&[("x-request-id", "abc-123.4_5:6")], Some("abc-123.4_5:6")),
        (&[("x-request-id", "has space")], None),
        (&[("x-request-id", &too_long)], None),
    ];
    let mut ids = HashSet::new();
    for (i, (headers, kept)) in cases.iter().enumerate() {
        for path in ["/a", "/raw"] {
            let r = send("GET", &gw.url(path), headers, Bytes::new()).await;
            assert_eq!(r.status, 200);
            let id = r.header("x-request-id").expect("returned").to_string();
            match kept {
                Some(k) => assert_eq!(&id, k),
                None => assert!(generated(&id), "case {i}: {id:?}"),
            }
            let sent = b.requests().last().unwrap().clone();
            assert_eq!(sent.header("x-request-id"), Some(id.as_str()), "case {i}");
            ids.insert(id);
        }
    }
    // Generated ids differ; the kept one is the same for both requests.
    assert_eq!(ids.len(), 7);
    // Refused or unrouted requests get one too.
    let r = get(&gw.url("/nope")).await;
    assert!(generated(r.header("x-request-id").unwrap()));
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn partial_answers_bytes_connections_and_grpc_statuses_are_counted() {
    let ok = echo_backend(r#"{"a":1}"#).await;
    let bad = json_backend(500, "{}").await;
    let (_, receiver) = Collector::grpc().await;
    let gw = gateway(&format!(
        "stats: {{enabled: true}}
endpoints:
- path: /partial
  backends:
  - {{hosts: [{ok}], urlPattern: /a}}
  - {{hosts: [{bad}], urlPattern: /b}}
- path: /post
  method: POST
  backends: [{{hosts: [{ok}], urlPattern: /a}}]
- path: /raw
  outputEncoding: no-op
  method: POST
  backends: [{{hosts: [{ok}], urlPattern: /a, encoding: no-op}}]
- path: /opentelemetry.proto.collector.trace.v1.TraceService/Export
  method: POST
  outputEncoding: no-op
  backends:
  - hosts: [http://{receiver}]
    urlPattern: /opentelemetry.proto.collector.trace.v1.TraceService/Export
    encoding: no-op
    http2: true
",
        ok = ok.url(),
        bad = bad.url(),
    ))
    .await;
    let r = get(&gw.url("/partial")).await;
    assert_eq!((r.status, r.completed()), (200, Some("false")));
    assert_eq!(get(&gw.url("/partial")).await.status, 200);
    let post = send("POST", &gw.url("/post"), &[], "0123456789").await;
    assert_eq!(post.status, 200);
    let raw = send("POST", &gw.url("/raw"), &[], "abcde").await;
    assert_eq!(raw.status, 200);
    assert_eq!(
        collector::export_through(gw.addr(), 1).await,
        tonic::Code::Ok
    );
    assert_eq!(
        collector::export_through(gw.addr(), 0).await,
        tonic::Code::InvalidArgument
    );
    let t = get(&gw.url("/__stats")).await.text();
    let m = |s: &str| metric(&t, s);
    assert_eq!(
        m("weir_partial_responses_total{endpoint=\"/partial\"}"),
        Some(2.0),
        "{t}"
    );
    assert_eq!(
        m("weir_request_bytes_total{endpoint=\"/post\"}"),
        Some(10.0)
    );
    assert_eq!(m("weir_request_bytes_total{endpoint=\"/raw\"}"), Some(5.0));
    assert_eq!(
        m("weir_response_bytes_total{endpoint=\"/post\"}"),
        Some(post.body.len() as f64)
    );
    assert_eq!(
        m("weir_response_bytes_total{endpoint=\"/raw\"}"),
        Some(raw.body.len() as f64)
    );
    let grpc = |code: &str| {
        m(&format!(
            "weir_grpc_calls_total{{endpoint=\"/opentelemetry.proto.collector.trace.v1.TraceService/Export\",grpc_status=\"{code}\"}}"
        ))
    };
    assert_eq!(
        (grpc("0"), grpc("3"), grpc("14")),
        (Some(1.0), Some(1.0), Some(0.0))
    );
    // Backends were reached over pooled connections: some opened, none refused.
    let opened = m("weir_upstream_connections_opened_total").unwrap();
    assert!(opened >= 3.0, "{t}");
    assert!(m("weir_upstream_connections_open").unwrap() >= 1.0);
    assert_eq!(m("weir_upstream_connect_errors_total"), Some(0.0));
}

#[tokio::test]
async fn failed_upstream_connections_are_counted() {
    let down = closed_port().await;
    let gw = gateway(&format!(
        "stats: {{enabled: true}}\nendpoints:\n- path: /a\n  backends: [{{hosts: [\"http://{down}\"], urlPattern: /a}}]\n"
    ))
    .await;
    assert_eq!(get(&gw.url("/a")).await.status, 500);
    let t = get(&gw.url("/__stats")).await.text();
    assert_eq!(
        metric(&t, "weir_upstream_connect_errors_total"),
        Some(1.0),
        "{t}"
    );
}

fn load(yaml: &str) -> Result<weir::model::Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml).unwrap();
    weir::config::load(&path)
        .map(|l| l.gateway.settings)
        .map_err(|e| e.to_string())
}

#[test]
fn observability_settings_are_parsed_and_checked() {
    use weir::model::{LogFormat, OtlpProtocol};
    let s = load("logFormat: json\naccessLog: {format: json}\ntracing: {otlpEndpoint: \"http://collector:4318\"}\n").unwrap();
    assert_eq!(
        (s.log_format, s.access_log, s.access_log_format),
        (LogFormat::Json, true, LogFormat::Json)
    );
    let t = s.tracing.unwrap();
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(t.endpoint, "http://collector:4318/v1/traces");
    assert_eq!((t.sample_ratio, t.service_name.as_str()), (1.0, "weir"));
    let s = load("accessLog: false\ntracing: {otlpEndpoint: \"https://c.example/otlp/traces\", sampleRatio: 0.25, serviceName: edge}\n").unwrap();
    assert!(!s.access_log);
    let t = s.tracing.unwrap();
    assert_eq!(t.endpoint, "https://c.example/otlp/traces");
    assert_eq!((t.sample_ratio, t.service_name.as_str()), (0.25, "edge"));
    let t = load("tracing: {otlpEndpoint: \"grpc://collector:4317\"}\n")
        .unwrap()
        .tracing
        .unwrap();
    assert_eq!(
        (t.protocol, t.endpoint.as_str()),
        (OtlpProtocol::Grpc, "http://collector:4317")
    );
    let s = load("accessLog: true\n").unwrap();
    assert_eq!(
        (s.access_log, s.access_log_format, s.tracing),
        (true, LogFormat::Text, None)
    );
    let err = load("tracing: {otlpEndpoint: \"ftp://x:1\", sampleRatio: 1.5, serviceName: \"\"}\n")
        .unwrap_err();
    for want in [
        "tracing.otlpEndpoint",
        "tracing.sampleRatio",
        "tracing.serviceName",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
    assert!(load("logFormat: yaml\n").unwrap_err().contains("logFormat"));
    assert!(load("accessLog: {format: xml}\n").is_err());
}
