//! The OTLP export body (`ExportTraceServiceRequest`, protobuf), written straight from span
//! records into one reused buffer.
//!
//! Why by hand: the SDK path turned every span into `SpanData`, then into
//! `opentelemetry-proto` messages (a `String` per key and per value), then into bytes; at
//! `sampleRatio: 1.0` that cost more than the request itself (BENCHMARKS.md). The messages
//! and field numbers are those of `opentelemetry/proto/trace/v1/trace.proto` and
//! `common/v1/common.proto`; the tests decode the output with `opentelemetry-proto`.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use weir_model as model;

use super::record::{ClientDetail, Detail, EventRecord, SpanRecord};
use crate::telemetry::write_ip;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// The instrumentation scope's name.
const SCOPE: &str = "weir";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Endpoints whose spans' fixed parts are kept encoded, at most; the spans of others are
/// written in full.
const CACHED_ENDPOINTS: usize = 10_000;
/// Per backend, the call targets (scheme and authority) kept encoded, at most.
const CACHED_TARGETS: usize = 16;

/// Writes export bodies; keeps its buffers between batches.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The body: room for the messages around the spans, then the spans (each with its
    /// tag and length, `ScopeSpans.spans`).
    buf: Vec<u8>,
    /// The resource and scope messages (the header in front of the spans is made of
    /// them and of two lengths).
    head: Vec<u8>,
    /// Scratch for a peer's address.
    text: Vec<u8>,
    cache: Cache,
}

impl Encoder {
    /// The body of one export of `spans`, for a resource named `service`.
    #[cfg(test)]
    pub fn encode(&mut self, service: &str, spans: &[SpanRecord]) -> &[u8] {
        let at = self.write(service, spans, 0);
        &self.buf[at..]
    }

    /// The same body as [`Encoder::encode`], handed over without a copy (in a gRPC
    /// message's frame with `grpc`). Give it back with [`Encoder::recycle`] once sent:
    /// a batch's body is a hundred KiB or more, and allocating, copying and freeing one
    /// per export was a visible part of tracing's cost.
    pub fn body(&mut self, service: &str, spans: &[SpanRecord], grpc: bool) -> Bytes {
        let frame = if grpc { 5 } else { 0 };
        let mut at = self.write(service, spans, frame);
        if grpc {
            // Not compressed (0), then the message's length (big-endian u32).
            let len = u32::try_from(self.buf.len() - at).unwrap_or(u32::MAX);
            at -= frame;
            self.buf[at] = 0;
            self.buf[at + 1..at + 5].copy_from_slice(&len.to_be_bytes());
        }
        let mut body = Bytes::from(std::mem::take(&mut self.buf));
        body.advance(at);
        body
    }

    /// Takes back the storage of a body [`Encoder::body`] handed out, when nothing else
    /// holds it any more.
    pub fn recycle(&mut self, body: Bytes) {
        if let Ok(mut storage) = body.try_into_mut() {
            storage.clear();
            self.buf = storage.into();
        }
    }

    /// Writes the body into `buf` with at least `prefix` bytes free in front of it;
    /// returns where it starts.
    fn write(&mut self, service: &str, spans: &[SpanRecord], prefix: usize) -> usize {
        let Self {
            buf,
            head,
            text,
            cache,
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
        // bytes), and they are written right-aligned into it at the end. Moving bodies up
        // to make room cost more than writing them.
        let room = prefix + head.len() + 2 + 20;
        buf.clear();
        buf.resize(room, 0);
        for s in spans {
            // Two bytes for the span's length: what a span of 128 bytes to 16 KiB needs.
            sized(buf, 2, 2, |b| span(b, s, text, cache));
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
        at
    }

    /// Forgets the encoded parts of endpoints no route table holds any more (only this
    /// cache still does). Called between batches, once their records are dropped.
    pub fn evict(&mut self) {
        self.cache
            .endpoints
            .retain(|_, fixed| Arc::strong_count(&fixed.endpoint) > 1);
    }
}

/// The parts of spans that only configuration decides, encoded the first time an
/// endpoint's span is exported, then copied: most of a span's attributes are these, and
/// writing them field by field was most of the exporter's work.
#[derive(Debug)]
struct Cache {
    /// By the endpoint's address (its `Arc`, held by the entry, keeps the address from
    /// being reused while the entry lives).
    endpoints: crate::FastMap<usize, Fixed>,
    /// At most this many endpoints.
    limit: usize,
    /// `http.response.status_code` attributes, by status.
    statuses: Encoded<u16>,
    /// `weir.backend.outcome` attributes, by outcome.
    outcomes: Encoded<&'static str>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            endpoints: crate::FastMap::default(),
            limit: CACHED_ENDPOINTS,
            statuses: Vec::new(),
            outcomes: Vec::new(),
        }
    }
}

/// Encoded attributes (or a span's fixed fields) by what decides them.
type Encoded<K> = Vec<(K, Box<[u8]>)>;

/// One endpoint's encoded parts.
#[derive(Debug)]
struct Fixed {
    endpoint: Arc<model::Endpoint>,
    /// The server span's name, `http.request.method` and `http.route`, per method.
    server: Encoded<&'static str>,
    /// Per backend (by index), per method: a client span's name, `http.request.method`,
    /// `url.template` and `weir.backend`.
    clients: Vec<Encoded<&'static str>>,
    /// Per backend (by index): `scheme://authority` of a call's target, with its
    /// `server.address` and `server.port` encoded.
    targets: Vec<Encoded<Box<str>>>,
}

impl Cache {
    fn fixed(&mut self, ep: &Arc<model::Endpoint>) -> Option<&mut Fixed> {
        let full = self.endpoints.len() >= self.limit;
        match self.endpoints.entry(Arc::as_ptr(ep) as usize) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(_) if full => None,
            Entry::Vacant(v) => Some(v.insert(Fixed {
                endpoint: ep.clone(),
                server: Vec::new(),
                clients: vec![Vec::new(); ep.backends.len()],
                targets: vec![Vec::new(); ep.backends.len()],
            })),
        }
    }
}

/// Writes into `b` the bytes `write` makes: copied from `list` when one of its entries
/// matches (`hit`), else written and kept there under `key()` while `list` has fewer than
/// `limit` entries. Without a list (an endpoint past the cache's bound) they are written
/// every time.
fn copy_cached<K>(
    b: &mut Vec<u8>,
    list: Option<&mut Encoded<K>>,
    hit: impl Fn(&K) -> bool,
    key: impl FnOnce() -> K,
    limit: usize,
    write: impl FnOnce(&mut Vec<u8>),
) {
    let Some(list) = list else {
        return write(b);
    };
    if let Some((_, bytes)) = list.iter().find(|(k, _)| hit(k)) {
        b.extend_from_slice(bytes);
    } else if list.len() < limit {
        let mut bytes = Vec::new();
        write(&mut bytes);
        b.extend_from_slice(&bytes);
        list.push((key(), bytes.into_boxed_slice()));
    } else {
        write(b);
    }
}

/// Whether two method or outcome names are the same: they are literals, so the same one
/// is at the same address (a comparison of the text is the fallback).
fn same_literal(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// The bytes `varint` writes for `v`.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// `name` (the method, then the route or template when there is one).
fn name(b: &mut Vec<u8>, method: &str, rest: Option<&str>) {
    match rest {
        Some(rest) => {
            let len = method.len() + 1 + rest.len();
            tag(b, 5, LEN);
            varint(b, len as u64);
            b.extend_from_slice(method.as_bytes());
            b.push(b' ');
            b.extend_from_slice(rest.as_bytes());
        }
        None => string(b, 5, method.as_bytes()),
    }
}

fn server_fixed(b: &mut Vec<u8>, method: &str, ep: &model::Endpoint) {
    name(b, method, Some(ep.path.as_str()));
    attr_str(b, 9, "http.request.method", method);
    attr_str(b, 9, "http.route", ep.path.as_str());
}

fn client_fixed(b: &mut Vec<u8>, method: &str, d: &ClientDetail) {
    let template = template(d);
    name(b, method, template);
    attr_str(b, 9, "http.request.method", method);
    attr_str(b, 9, "url.template", template.unwrap_or(""));
    attr_str(b, 9, "weir.backend", &d.label);
}

/// `http.response.status_code`: the same few statuses over and over.
fn status(b: &mut Vec<u8>, cache: &mut Cache, code: u16) {
    copy_cached(
        b,
        Some(&mut cache.statuses),
        |k| *k == code,
        || code,
        32,
        |b| attr_int(b, 9, "http.response.status_code", i64::from(code)),
    );
}

/// `server.address` and `server.port` of a call to `uri`.
fn target_fixed(b: &mut Vec<u8>, uri: &http::Uri) {
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
}

fn span(b: &mut Vec<u8>, s: &SpanRecord, text: &mut Vec<u8>, cache: &mut Cache) {
    // The fields every span has, laid out in one array and written at once (field by
    // field, each write checked the capacity and most copied through `memcpy`): trace id
    // (1), span id (2), kind (6), start (7), end (8), then the parent (4) when there is one.
    let mut head = [0u8; 58];
    head[..2].copy_from_slice(&[1 << 3 | LEN, 16]);
    head[2..18].copy_from_slice(&s.trace_id);
    head[18..20].copy_from_slice(&[2 << 3 | LEN, 8]);
    head[20..28].copy_from_slice(&s.span_id);
    // SpanKind: SERVER = 2, CLIENT = 3.
    let kind = if matches!(s.detail, Detail::Client(_)) {
        3
    } else {
        2
    };
    head[28..31].copy_from_slice(&[6 << 3 | VARINT, kind, 7 << 3 | FIXED64]);
    head[31..39].copy_from_slice(&s.start.to_le_bytes());
    head[39] = 8 << 3 | FIXED64;
    head[40..48].copy_from_slice(&s.end.to_le_bytes());
    let mut n = 48;
    if let Some(parent) = &s.parent {
        head[48..50].copy_from_slice(&[4 << 3 | LEN, 8]);
        head[50..58].copy_from_slice(parent);
        n = 58;
    }
    b.extend_from_slice(&head[..n]);
    if s.state != opentelemetry::trace::TraceState::NONE {
        let state = s.state.header();
        if !state.is_empty() {
            string(b, 3, state.as_bytes());
        }
    }
    // Fields in any order make the same message: the fixed parts (name, method, route or
    // template, backend) are copied first, then the request's own attributes.
    let method = s.method;
    match &s.detail {
        Detail::Server(d) => {
            match &d.route {
                Some(ep) => copy_cached(
                    b,
                    cache.fixed(ep).map(|f| &mut f.server),
                    |k| same_literal(k, method),
                    || method,
                    10,
                    |b| server_fixed(b, method, ep),
                ),
                None => {
                    name(b, method, None);
                    attr_str(b, 9, "http.request.method", method);
                }
            }
            attr_str(b, 9, "url.path", d.uri.path());
            status(b, cache, d.status);
            text.clear();
            write_ip(text, d.peer);
            attr_str_parts(b, 9, b"client.address", &[text]);
            // Request ids are visible ASCII (`request_id::is_sane`, checked where they are
            // made): valid UTF-8 as they are, without `to_str` checking each byte again.
            attr_str_parts(b, 9, b"weir.request_id", &[d.request_id.as_bytes()]);
            if let Some(completed) = d.completed {
                attr_bool(b, 9, "weir.completed", completed);
            }
        }
        Detail::Abandoned => {
            name(b, method, None);
            attr_str(b, 9, "http.request.method", method);
        }
        Detail::Client(d) => {
            // Each backend's lists, by its index (within bounds: the endpoint is the one
            // the index was taken from).
            let (clients, targets) = match cache.fixed(&d.endpoint) {
                Some(f) if d.index < f.clients.len() => {
                    (Some(&mut f.clients[d.index]), Some(&mut f.targets[d.index]))
                }
                _ => (None, None),
            };
            copy_cached(
                b,
                clients,
                |k| same_literal(k, method),
                || method,
                10,
                |b| client_fixed(b, method, d),
            );
            if let Some(uri) = &d.uri {
                let scheme = uri.scheme_str().unwrap_or("http");
                let authority = uri.authority().map_or("", |a| a.as_str());
                copy_cached(
                    b,
                    targets,
                    |k| {
                        k.strip_prefix(scheme)
                            .and_then(|k| k.strip_prefix("://"))
                            .is_some_and(|k| k == authority)
                    },
                    || format!("{scheme}://{authority}").into(),
                    CACHED_TARGETS,
                    |b| target_fixed(b, uri),
                );
                // Without the query: it may carry what a trace store should not keep.
                let full = [scheme, "://", authority, uri.path()].map(str::as_bytes);
                attr_str_parts(b, 9, b"url.full", &full);
            }
            copy_cached(
                b,
                Some(&mut cache.outcomes),
                |k| same_literal(k, d.outcome),
                || d.outcome,
                16,
                |b| attr_str(b, 9, "weir.backend.outcome", d.outcome),
            );
            if let Some(code) = d.status {
                status(b, cache, code);
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

/// A string attribute (most of a span's bytes are these).
#[inline]
fn attr_str(b: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    attr_str_parts(b, field, key.as_bytes(), &[value.as_bytes()]);
}

/// A string attribute whose value is the concatenation of `parts`: its lengths computed
/// first, then its bytes written in few pieces.
#[inline]
fn attr_str_parts(b: &mut Vec<u8>, field: u32, key: &[u8], parts: &[&[u8]]) {
    let value_len: usize = parts.iter().map(|p| p.len()).sum();
    // AnyValue { string_value = 1 }
    let any = 1 + varint_len(value_len as u64) + value_len;
    // KeyValue { key = 1, value = 2 }
    let kv = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any as u64) + any;
    b.reserve(kv + 15);
    if kv < 0x80 && field < 16 {
        // Every length fits one byte: two four-byte headers, and the strings.
        b.extend_from_slice(&[
            (field as u8) << 3 | LEN,
            kv as u8,
            1 << 3 | LEN,
            key.len() as u8,
        ]);
        b.extend_from_slice(key);
        b.extend_from_slice(&[2 << 3 | LEN, any as u8, 1 << 3 | LEN, value_len as u8]);
    } else {
        tag(b, field, LEN);
        varint(b, kv as u64);
        string(b, 1, key);
        tag(b, 2, LEN);
        varint(b, any as u64);
        tag(b, 1, LEN);
        varint(b, value_len as u64);
    }
    for p in parts {
        b.extend_from_slice(p);
    }
}

fn attr_bool(b: &mut Vec<u8>, field: u32, key: &str, value: bool) {
    // AnyValue { bool_value = 2 }
    attr_scalar(b, field, key, 2, u64::from(value));
}

fn attr_int(b: &mut Vec<u8>, field: u32, key: &str, value: i64) {
    // AnyValue { int_value = 3 }; int64 travels as its two's complement.
    attr_scalar(b, field, key, 3, value as u64);
}

/// A `KeyValue` whose `AnyValue` is the varint `v` in field `any_field`.
fn attr_scalar(b: &mut Vec<u8>, field: u32, key: &str, any_field: u32, v: u64) {
    let key = key.as_bytes();
    let any = 1 + varint_len(v);
    // KeyValue { key = 1, value = 2 }; `any` is at most 11 bytes.
    let kv = 1 + varint_len(key.len() as u64) + key.len() + 2 + any;
    b.reserve(kv + 11);
    tag(b, field, LEN);
    varint(b, kv as u64);
    string(b, 1, key);
    b.push(2 << 3 | LEN);
    b.push(any as u8);
    uint(b, any_field, v);
}

#[inline]
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

#[inline]
fn tag(b: &mut Vec<u8>, field: u32, wire: u8) {
    // Every field number here is below 16: its tag is one byte.
    if field < 16 {
        b.push(((field as u8) << 3) | wire);
    } else {
        varint(b, (u64::from(field) << 3) | u64::from(wire));
    }
}

#[inline]
fn string(b: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(b, field, LEN);
    varint(b, bytes.len() as u64);
    b.extend_from_slice(bytes);
}

#[inline]
fn uint(b: &mut Vec<u8>, field: u32, v: u64) {
    tag(b, field, VARINT);
    varint(b, v);
}

#[inline]
fn fixed64(b: &mut Vec<u8>, field: u32, v: u64) {
    tag(b, field, FIXED64);
    b.extend_from_slice(&v.to_le_bytes());
}

/// A length-delimited message: one byte is kept for its length, which most messages
/// (attributes, events) fit; a longer one moves its body up to make room.
fn message(b: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    sized(b, field, 1, body);
}

/// A length-delimited message with `kept` bytes kept for its length (the varint of a
/// length below 128 to the power `kept`); a length of another size moves the body.
fn sized(b: &mut Vec<u8>, field: u32, kept: usize, body: impl FnOnce(&mut Vec<u8>)) {
    tag(b, field, LEN);
    let at = b.len();
    b.resize(at + kept, 0);
    body(b);
    let len = b.len() - at - kept;
    if varint_len(len as u64) == kept {
        let mut v = len;
        for (i, byte) in b[at..at + kept].iter_mut().enumerate() {
            let more = if i + 1 < kept { 0x80 } else { 0 };
            *byte = (v as u8 & 0x7f) | more;
            v >>= 7;
        }
    } else {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        b.splice(at..at + kept, prefix);
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
    fn varint_len_is_what_varint_writes() {
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
        // Twice: the buffers are reused and the fixed parts are copied from the cache the
        // first body filled; the second body must be the same.
        let first = enc.encode("edge", &spans).to_vec();
        let body = enc.encode("edge", &spans).to_vec();
        assert_eq!(first, body);
        assert_eq!(enc.cache.endpoints.len(), 1);
        // And the same as written without the cache (an encoder whose cache is full).
        let mut uncached = Encoder::default();
        uncached.cache.limit = 0;
        assert_eq!(uncached.encode("edge", &spans), body.as_slice());
        assert!(uncached.cache.endpoints.is_empty());
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
        // Attributes by key: their order in a span means nothing.
        let attrs = |i: usize| -> Attrs {
            let mut a: Attrs = ss.spans[i]
                .attributes
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().and_then(|v| v.value.clone()),
                    )
                })
                .collect();
            a.sort_by(|x, y| x.0.cmp(&y.0));
            a
        };
        let sorted = |mut a: Attrs| {
            a.sort_by(|x, y| x.0.cmp(&y.0));
            a
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
            sorted(vec![
                m.clone(),
                ("url.path".into(), s_("/users/7")),
                ("http.response.status_code".into(), Some(Any::IntValue(503))),
                ("client.address".into(), s_("127.0.0.1")),
                ("weir.request_id".into(), s_("abc")),
                ("http.route".into(), s_("/users/{id}")),
                ("weir.completed".into(), Some(Any::BoolValue(false))),
            ])
        );
        assert_eq!(
            attrs(2),
            sorted(vec![
                m.clone(),
                ("url.template".into(), s_("/v1/users/{id}")),
                ("weir.backend".into(), s_(&long)),
                ("server.address".into(), s_("api.example")),
                ("server.port".into(), Some(Any::IntValue(8443))),
                ("url.full".into(), s_("https://api.example:8443/v1/users/7")),
                ("weir.backend.outcome".into(), s_("timeout")),
                ("error.type".into(), s_("timeout")),
            ])
        );
        assert_eq!(
            attrs(3),
            sorted(vec![
                m,
                ("url.template".into(), s_("/a")),
                ("weir.backend".into(), s_("http://a:1/a")),
                ("server.address".into(), s_("a")),
                ("server.port".into(), Some(Any::IntValue(80))),
                ("url.full".into(), s_("http://a/a")),
                ("weir.backend.outcome".into(), s_("ok")),
                ("http.response.status_code".into(), Some(Any::IntValue(200))),
            ])
        );
    }

    #[test]
    fn bodies_are_handed_over_framed_and_their_storage_comes_back() {
        let ep = endpoint();
        let spans: Vec<SpanRecord> = (1..=3)
            .map(|n| {
                record(
                    n,
                    Detail::Server(ServerDetail {
                        uri: "/users/7".parse().unwrap(),
                        status: 200,
                        peer: [10, 0, 0, 1].into(),
                        request_id: http::HeaderValue::from_static("r"),
                        route: Some(ep.clone()),
                        completed: None,
                    }),
                )
            })
            .collect();
        let mut enc = Encoder::default();
        let plain = enc.encode("edge", &spans).to_vec();
        let body = enc.body("edge", &spans, false);
        assert_eq!(body, plain);
        let storage = body.as_ptr();
        enc.recycle(body);
        let framed = enc.body("edge", &spans, true);
        // Framed in the same storage (five more bytes were kept in front of the body).
        assert_eq!(framed.as_ptr(), storage);
        assert_eq!(framed[0], 0);
        assert_eq!(&framed[1..5], (plain.len() as u32).to_be_bytes());
        assert_eq!(&framed[5..], plain);
        // Still held elsewhere (a request being written): not taken back.
        let held = framed.clone();
        enc.recycle(framed);
        assert_eq!(enc.encode("edge", &spans), plain);
        assert_ne!(enc.buf.as_ptr(), held.as_ptr());
    }

    #[test]
    fn cached_parts_go_with_their_endpoint_and_follow_method_and_target() {
        let ep = endpoint();
        let client = |method, uri: &str| SpanRecord {
            method,
            ..record(
                4,
                Detail::Client(ClientDetail {
                    endpoint: ep.clone(),
                    index: 0,
                    label: Arc::from("http://a:1/a"),
                    uri: Some(uri.parse().unwrap()),
                    outcome: "ok",
                    status: Some(200),
                    error_type: None,
                }),
            )
        };
        let spans = vec![
            client("GET", "http://a:1/a"),
            client("POST", "http://a:1/a"),
            client("GET", "https://b/a?x=1"),
        ];
        let mut enc = Encoder::default();
        let body = enc.encode("edge", &spans).to_vec();
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let got: Vec<(String, String, String)> = req.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| {
                let attr = |k: &str| {
                    s.attributes
                        .iter()
                        .find(|kv| kv.key == k)
                        .and_then(|kv| kv.value.as_ref()?.value.clone())
                };
                let Some(Any::StringValue(full)) = attr("url.full") else {
                    panic!("no url.full")
                };
                let Some(Any::StringValue(method)) = attr("http.request.method") else {
                    panic!("no method")
                };
                assert_eq!(
                    attr("server.port"),
                    Some(Any::IntValue(if full.starts_with("https") {
                        443
                    } else {
                        1
                    }))
                );
                (s.name.clone(), method, full)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("GET /a".into(), "GET".into(), "http://a:1/a".into()),
                ("POST /a".into(), "POST".into(), "http://a:1/a".into()),
                ("GET /a".into(), "GET".into(), "https://b/a".into()),
            ]
        );
        let fixed = &enc.cache.endpoints[&(Arc::as_ptr(&ep) as usize)];
        assert_eq!((fixed.clients[0].len(), fixed.targets[0].len()), (2, 2));
        // Kept while a table (here: the test) holds the endpoint; forgotten once only the
        // cache does.
        drop(spans);
        enc.evict();
        assert_eq!(enc.cache.endpoints.len(), 1);
        drop(ep);
        enc.evict();
        assert!(enc.cache.endpoints.is_empty());
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
        for kept in [1, 2] {
            for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
                let mut b = vec![3u8];
                sized(&mut b, 5, kept, |b| b.extend(std::iter::repeat_n(7u8, len)));
                let mut expect = vec![3u8];
                tag(&mut expect, 5, LEN);
                varint(&mut expect, len as u64);
                expect.extend(std::iter::repeat_n(7u8, len));
                assert_eq!(b, expect, "length {len}, {kept} bytes kept");
            }
        }
    }
}
