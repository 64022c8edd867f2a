//! The OTLP export body (`ExportTraceServiceRequest`, protobuf), written straight from span
//! records into one reused buffer.
//!
//! Why by hand: the SDK path turned every span into `SpanData`, then into
//! `opentelemetry-proto` messages (a `String` per key and per value), then into bytes; at
//! `sampleRatio: 1.0` that cost more than the request itself (BENCHMARKS.md). The messages
//! and field numbers are those of `opentelemetry/proto/trace/v1/trace.proto` and
//! `common/v1/common.proto`; the tests decode the output with `opentelemetry-proto`.

use std::fmt::Write as _;

use super::record::{ClientDetail, Detail, EventRecord, SpanRecord};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// The instrumentation scope's name.
const SCOPE: &str = "weir";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Writes export bodies; keeps its buffers between batches.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The body: room for the messages around the spans, then the spans (each with its
    /// tag and length, `ScopeSpans.spans`).
    buf: Vec<u8>,
    /// The resource and scope messages (the header in front of the spans is made of
    /// them and of two lengths).
    head: Vec<u8>,
    /// One span's body, before its length is known.
    one: Vec<u8>,
    text: String,
}

impl Encoder {
    /// The body of one export of `spans`, for a resource named `service`.
    pub fn encode(&mut self, service: &str, spans: &[SpanRecord]) -> &[u8] {
        let Self {
            buf,
            head,
            one,
            text,
        } = self;
        // ResourceSpans.resource, then ScopeSpans.scope (name, version).
        head.clear();
        message(head, 1, |b| {
            attr_str(b, 1, "service.name", service);
            attr_str(b, 1, "service.version", VERSION);
        });
        let resource = head.len();
        message(head, 1, |b| {
            string(b, 1, SCOPE.as_bytes());
            string(b, 2, VERSION.as_bytes());
        });
        // The two messages around the spans need their lengths, known only once the spans
        // are written: room for them is kept in front (two tags, two varints of at most 10
        // bytes), and they are written right-aligned into it at the end. Each span is
        // written on its own and copied after its length (a span is longer than the one
        // byte `message` keeps for a length). Moving bodies up to make room cost more than
        // writing them.
        let room = head.len() + 2 + 20;
        buf.clear();
        buf.resize(room, 0);
        for s in spans {
            one.clear();
            span(one, s, text);
            tag(buf, 2, LEN);
            varint(buf, one.len() as u64);
            buf.extend_from_slice(one);
        }
        let scope_spans = (head.len() - resource) + (buf.len() - room);
        let resource_spans = resource + 1 + varint_len(scope_spans as u64) + scope_spans;
        let (resource_msg, scope_msg) = head.split_at(resource);
        let mut front = Vec::with_capacity(room);
        // ExportTraceServiceRequest.resource_spans
        tag(&mut front, 1, LEN);
        varint(&mut front, resource_spans as u64);
        front.extend_from_slice(resource_msg);
        // ResourceSpans.scope_spans
        tag(&mut front, 2, LEN);
        varint(&mut front, scope_spans as u64);
        front.extend_from_slice(scope_msg);
        let at = room - front.len();
        buf[at..room].copy_from_slice(&front);
        &buf[at..]
    }
}

/// The bytes `varint` writes for `v`.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn span(b: &mut Vec<u8>, s: &SpanRecord, text: &mut String) {
    string(b, 1, &s.trace_id);
    string(b, 2, &s.span_id);
    let state = s.state.header();
    if !state.is_empty() {
        string(b, 3, state.as_bytes());
    }
    if let Some(parent) = &s.parent {
        string(b, 4, parent);
    }
    // name: the method, then the route or the backend's template when there is one.
    let rest = match &s.detail {
        Detail::Server(d) => d.route.as_ref().map(|ep| ep.path.as_str()),
        Detail::Abandoned => None,
        Detail::Client(d) => template(d),
    };
    text.clear();
    text.push_str(s.method);
    if let Some(rest) = rest {
        text.push(' ');
        text.push_str(rest);
    }
    string(b, 5, text.as_bytes());
    // SpanKind: SERVER = 2, CLIENT = 3.
    let kind = if matches!(s.detail, Detail::Client(_)) {
        3
    } else {
        2
    };
    uint(b, 6, kind);
    fixed64(b, 7, s.start);
    fixed64(b, 8, s.end);
    attr_str(b, 9, "http.request.method", s.method);
    match &s.detail {
        Detail::Server(d) => {
            attr_str(b, 9, "url.path", d.uri.path());
            attr_int(b, 9, "http.response.status_code", i64::from(d.status));
            text.clear();
            write_ip(text, d.peer);
            attr_str(b, 9, "client.address", text);
            // Request ids are visible ASCII (checked where they are made).
            attr_str(
                b,
                9,
                "weir.request_id",
                d.request_id.to_str().unwrap_or("-"),
            );
            if let Some(ep) = &d.route {
                attr_str(b, 9, "http.route", ep.path.as_str());
            }
            if let Some(completed) = d.completed {
                attr_bool(b, 9, "weir.completed", completed);
            }
        }
        Detail::Abandoned => {}
        Detail::Client(d) => {
            attr_str(b, 9, "url.template", template(d).unwrap_or(""));
            attr_str(b, 9, "weir.backend", &d.label);
            if let Some(uri) = &d.uri {
                if let Some(host) = uri.host() {
                    attr_str(b, 9, "server.address", host);
                }
                let port = uri.port_u16().or(match uri.scheme_str() {
                    Some("https") => Some(443),
                    Some("http") => Some(80),
                    _ => None,
                });
                if let Some(port) = port {
                    attr_int(b, 9, "server.port", i64::from(port));
                }
                // Without the query: it may carry what a trace store should not keep.
                text.clear();
                text.push_str(uri.scheme_str().unwrap_or("http"));
                text.push_str("://");
                text.push_str(uri.authority().map_or("", |a| a.as_str()));
                text.push_str(uri.path());
                attr_str(b, 9, "url.full", text);
            }
            attr_str(b, 9, "weir.backend.outcome", d.outcome);
            if let Some(status) = d.status {
                attr_int(b, 9, "http.response.status_code", i64::from(status));
            }
            if let Some(kind) = d.error_type {
                attr_str(b, 9, "error.type", kind);
            }
        }
    }
    for e in &s.events {
        message(b, 11, |b| event(b, e));
    }
    if let Some(message_text) = &s.error {
        // Status: message = 2, code = 3 (STATUS_CODE_ERROR = 2).
        message(b, 15, |b| {
            string(b, 2, message_text.as_bytes());
            uint(b, 3, 2);
        });
    }
}

/// `ip` as text; an IPv4 address (the usual peer) without the formatting machinery.
fn write_ip(text: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(text, "{v6}");
        }
    }
}

fn template(d: &ClientDetail) -> Option<&str> {
    d.endpoint
        .backends
        .get(d.index)
        .map(|b| b.url_pattern.as_str())
}

fn event(b: &mut Vec<u8>, e: &EventRecord) {
    fixed64(b, 1, e.time);
    string(b, 2, e.name.as_bytes());
    for (key, value) in &e.attrs {
        attr_str(b, 3, key, value);
    }
}

/// A `KeyValue` in field `field`, its `AnyValue` written by `value`
/// (`string_value` = 1, `bool_value` = 2, `int_value` = 3).
fn attr(b: &mut Vec<u8>, field: u32, key: &str, value: impl FnOnce(&mut Vec<u8>)) {
    message(b, field, |b| {
        string(b, 1, key.as_bytes());
        message(b, 2, value);
    });
}

/// A string attribute, its lengths computed first and its bytes written in one go (most of
/// a span's bytes are these).
fn attr_str(b: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    let (key, value) = (key.as_bytes(), value.as_bytes());
    // AnyValue { string_value = 1 }
    let any = 1 + varint_len(value.len() as u64) + value.len();
    // KeyValue { key = 1, value = 2 }
    let kv = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any as u64) + any;
    b.reserve(kv + 15);
    tag(b, field, LEN);
    varint(b, kv as u64);
    string(b, 1, key);
    tag(b, 2, LEN);
    varint(b, any as u64);
    string(b, 1, value);
}

fn attr_bool(b: &mut Vec<u8>, field: u32, key: &str, value: bool) {
    attr(b, field, key, |b| uint(b, 2, u64::from(value)));
}

fn attr_int(b: &mut Vec<u8>, field: u32, key: &str, value: i64) {
    // int64 travels as its two's complement.
    attr(b, field, key, |b| uint(b, 3, value as u64));
}

fn varint(b: &mut Vec<u8>, mut v: u64) {
    if v < 0x80 {
        b.push(v as u8);
        return;
    }
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn tag(b: &mut Vec<u8>, field: u32, wire: u8) {
    // Every field number here is below 16: its tag is one byte.
    if field < 16 {
        b.push(((field as u8) << 3) | wire);
    } else {
        varint(b, (u64::from(field) << 3) | u64::from(wire));
    }
}

fn string(b: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(b, field, LEN);
    varint(b, bytes.len() as u64);
    b.extend_from_slice(bytes);
}

fn uint(b: &mut Vec<u8>, field: u32, v: u64) {
    tag(b, field, VARINT);
    varint(b, v);
}

fn fixed64(b: &mut Vec<u8>, field: u32, v: u64) {
    tag(b, field, FIXED64);
    b.extend_from_slice(&v.to_le_bytes());
}

/// A length-delimited message: one byte is kept for its length, which most messages
/// (attributes, events) fit; a longer one moves its body up to make room.
fn message(b: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    tag(b, field, LEN);
    let at = b.len();
    b.push(0);
    body(b);
    let len = b.len() - at - 1;
    if len < 0x80 {
        b[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        b.splice(at..=at, prefix);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::trace::TraceState;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message as _;
    use weir_model as model;

    use super::super::record::{ServerDetail, SpanRecord};
    use super::*;

    fn endpoint() -> Arc<model::Endpoint> {
        let spec: model::spec::EndpointSpec = serde_json::from_value(serde_json::json!({
            "path": "/users/{id}",
            "backends": [
                {"hosts": ["http://a:1"], "urlPattern": "/a"},
                {"hosts": ["http://b:2"], "urlPattern": "/v1/users/{id}"}
            ]
        }))
        .unwrap();
        let settings = model::Settings::default();
        let defaults = model::convert::Defaults {
            settings: &settings,
            namespace: None,
        };
        Arc::new(model::convert::endpoint_to_model(&spec, &defaults, "test").unwrap())
    }

    fn record(n: u8, detail: Detail) -> SpanRecord {
        SpanRecord {
            trace_id: [n; 16],
            span_id: [n + 1; 8],
            parent: (n != 1).then_some([9; 8]),
            state: if n == 2 {
                TraceState::from_key_value([("vendor", "x")]).unwrap()
            } else {
                TraceState::NONE
            },
            start: 1_700_000_000_000_000_000 + u64::from(n),
            end: 1_700_000_000_000_000_100 + u64::from(n),
            method: "GET",
            detail,
            events: vec![EventRecord {
                time: 5,
                name: "rate_limit.rejected",
                attrs: vec![("weir.rate_limit.scope", "client")],
            }],
            error: (n == 3).then(|| "timeout".to_string()),
        }
    }

    type Attrs = Vec<(String, Option<Any>)>;

    fn s_(x: &str) -> Option<Any> {
        Some(Any::StringValue(x.to_string()))
    }

    #[test]
    fn varint_len_is_what_varint_writes_and_ips_read_as_displayed() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(varint_len(v), b.len(), "{v}");
        }
        for ip in ["0.0.0.0", "127.0.0.1", "10.200.9.255", "::1", "2001:db8::7"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut text = String::new();
            write_ip(&mut text, ip);
            assert_eq!(text, ip.to_string());
        }
    }

    #[test]
    fn what_it_writes_decodes_as_an_otlp_export() {
        let ep = endpoint();
        let uri: http::Uri = "https://api.example:8443/v1/users/7?secret=1"
            .parse()
            .unwrap();
        // A long label pushes its messages over one length byte (the moved-body case).
        let long: Arc<str> = Arc::from("l".repeat(300).as_str());
        let server = |n| {
            record(
                n,
                Detail::Server(ServerDetail {
                    uri: "/users/7?q=1".parse().unwrap(),
                    status: 503,
                    peer: [127, 0, 0, 1].into(),
                    request_id: http::HeaderValue::from_static("abc"),
                    route: Some(ep.clone()),
                    completed: Some(false),
                }),
            )
        };
        let spans = vec![
            record(1, Detail::Abandoned),
            server(2),
            record(
                3,
                Detail::Client(ClientDetail {
                    endpoint: ep.clone(),
                    index: 1,
                    label: long.clone(),
                    uri: Some(uri),
                    outcome: "timeout",
                    status: None,
                    error_type: Some("timeout"),
                }),
            ),
            record(
                4,
                Detail::Client(ClientDetail {
                    endpoint: ep.clone(),
                    index: 0,
                    label: Arc::from("http://a:1/a"),
                    uri: Some("http://a/a".parse().unwrap()),
                    outcome: "ok",
                    status: Some(200),
                    error_type: None,
                }),
            ),
        ];
        let mut enc = Encoder::default();
        // Twice: the buffers are reused, the second body must be the same.
        let first = enc.encode("edge", &spans).to_vec();
        let body = enc.encode("edge", &spans).to_vec();
        assert_eq!(first, body);
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let res: Attrs = rs
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().and_then(|v| v.value.clone()),
                )
            })
            .collect();
        assert_eq!(
            res,
            [
                ("service.name".to_string(), s_("edge")),
                ("service.version".to_string(), s_(VERSION))
            ]
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "weir");
        assert_eq!(ss.spans.len(), 4);
        for (s, n) in ss.spans.iter().zip(1u8..) {
            assert_eq!(s.trace_id, vec![n; 16]);
            assert_eq!(s.span_id, vec![n + 1; 8]);
            let parent = if n == 1 { vec![] } else { vec![9; 8] };
            assert_eq!(s.parent_span_id, parent);
            assert_eq!(s.trace_state, if n == 2 { "vendor=x" } else { "" });
            assert_eq!(
                s.start_time_unix_nano,
                1_700_000_000_000_000_000 + u64::from(n)
            );
            assert_eq!(
                s.end_time_unix_nano,
                1_700_000_000_000_000_100 + u64::from(n)
            );
            assert_eq!(s.events.len(), 1);
            assert_eq!(s.events[0].name, "rate_limit.rejected");
            assert_eq!(s.events[0].time_unix_nano, 5);
            assert_eq!(s.events[0].attributes[0].key, "weir.rate_limit.scope");
            let status = s.status.clone().unwrap_or_default();
            if n == 3 {
                assert_eq!((status.code, status.message.as_str()), (2, "timeout"));
            } else {
                assert_eq!(status.code, 0);
            }
        }
        let attrs = |i: usize| -> Attrs {
            ss.spans[i]
                .attributes
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().and_then(|v| v.value.clone()),
                    )
                })
                .collect()
        };
        let names: Vec<(&str, i32)> = ss.spans.iter().map(|s| (s.name.as_str(), s.kind)).collect();
        assert_eq!(
            names,
            [
                ("GET", 2),
                ("GET /users/{id}", 2),
                ("GET /v1/users/{id}", 3),
                ("GET /a", 3)
            ]
        );
        let m = ("http.request.method".to_string(), s_("GET"));
        assert_eq!(attrs(0), std::slice::from_ref(&m));
        assert_eq!(
            attrs(1),
            [
                m.clone(),
                ("url.path".into(), s_("/users/7")),
                ("http.response.status_code".into(), Some(Any::IntValue(503))),
                ("client.address".into(), s_("127.0.0.1")),
                ("weir.request_id".into(), s_("abc")),
                ("http.route".into(), s_("/users/{id}")),
                ("weir.completed".into(), Some(Any::BoolValue(false))),
            ]
        );
        assert_eq!(
            attrs(2),
            [
                m.clone(),
                ("url.template".into(), s_("/v1/users/{id}")),
                ("weir.backend".into(), s_(&long)),
                ("server.address".into(), s_("api.example")),
                ("server.port".into(), Some(Any::IntValue(8443))),
                ("url.full".into(), s_("https://api.example:8443/v1/users/7")),
                ("weir.backend.outcome".into(), s_("timeout")),
                ("error.type".into(), s_("timeout")),
            ]
        );
        assert_eq!(
            attrs(3),
            [
                m,
                ("url.template".into(), s_("/a")),
                ("weir.backend".into(), s_("http://a:1/a")),
                ("server.address".into(), s_("a")),
                ("server.port".into(), Some(Any::IntValue(80))),
                ("url.full".into(), s_("http://a/a")),
                ("weir.backend.outcome".into(), s_("ok")),
                ("http.response.status_code".into(), Some(Any::IntValue(200))),
            ]
        );
    }

    #[test]
    fn negative_integers_travel_as_twos_complement() {
        let mut b = Vec::new();
        attr_int(&mut b, 1, "k", -7);
        let kv = opentelemetry_proto::tonic::common::v1::KeyValue::decode(&b[2..]).unwrap();
        assert_eq!(kv.value.unwrap().value, Some(Any::IntValue(-7)));
    }

    #[test]
    fn lengths_of_every_size_are_written_as_varints() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut b = Vec::new();
            message(&mut b, 5, |b| b.extend(std::iter::repeat_n(7u8, len)));
            let mut expect = Vec::new();
            tag(&mut expect, 5, LEN);
            varint(&mut expect, len as u64);
            expect.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(b, expect, "length {len}");
        }
    }
}
