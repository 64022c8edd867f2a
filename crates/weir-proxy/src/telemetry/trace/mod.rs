//! OpenTelemetry tracing (`tracing` in the settings): one server span per request and one
//! client span per backend call, exported over OTLP.
//!
//! - Off by default, and then nothing here runs: the request entry checks one flag
//!   ([`crate::server::Shared::tracer`]) and no span, context or id is made.
//! - W3C `traceparent`/`tracestate` from the client are continued (the `opentelemetry`
//!   propagator reads them); sampling is parent-based, with the SDK's `TraceIdRatioBased`
//!   rule at `sampleRatio` for new traces. Every backend call gets the `traceparent` of its
//!   client span (`upstream/build.rs` forwards the client's own when tracing is off).
//! - A request that is not sampled gets ids and passes them on, and nothing else
//!   ([`TraceScope::Unsampled`]). A sampled one records its spans as plain values
//!   (`record.rs`): names and keys are `'static`, the route, template, URI and request id
//!   are shared clones. The SDK's span objects are not used: they cost a sampled request
//!   more CPU than proxying it (BENCHMARKS.md, "Tracing without the SDK's spans").
//! - Finished spans wait in a bounded queue (full: dropped and counted in
//!   `weir_trace_spans_dropped_total`). One exporter thread (`export.rs`) takes them per
//!   batch, writes the OTLP protobuf body itself (`otlp.rs`) and posts it over OTLP/HTTP or
//!   OTLP/gRPC, never on a proxy worker. A collector that is down costs a warning (at most
//!   one per [`EXPORT_LOG_WINDOW`]) and `weir_trace_exports_total{result="failed"}`.
//! - A changed `tracing` section builds a new [`Tracer`] on reload; the old one's exporter
//!   flushes what it holds and stops on its own once its last request is done.

mod export;
mod otlp;
mod record;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use tokio::time::Instant;

use weir_model::{self as model, TracingSettings};

use crate::error::BackendError;
use crate::plan::CompiledBackend;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::write_hex;
use export::{Counters, Exporter};
use record::{now_ns, ClientDetail, Detail, EventRecord, Queue, ServerDetail, SpanRecord};

/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context).
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// How long one export may take (connect, send, answer).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans waiting for export; beyond this they are dropped and counted.
pub const QUEUE: usize = 4096;
/// Spans per export request.
pub const BATCH: usize = 512;
/// Longest wait before queued spans are exported.
pub const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// At most one export-failure warning per this window (with the count of the others).
pub const EXPORT_LOG_WINDOW: Duration = Duration::from_secs(30);
/// How long a stopping tracer may take to export what it still holds.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The exporter's thread could not start.
    #[error("cannot start the trace exporter's thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The collector's address is not a URL the exporter can post to.
    #[error("cannot export traces to {endpoint}: {source}")]
    Endpoint {
        /// The collector.
        endpoint: String,
        /// Why the URL was refused.
        #[source]
        source: http::uri::InvalidUri,
    },
}

/// A running tracer: its span queue, its exporter thread, and what requests need to make
/// spans.
pub struct Tracer {
    queue: Arc<Queue>,
    exporter: Exporter,
    propagator: TraceContextPropagator,
    ids: RandomIdGenerator,
    settings: TracingSettings,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// Starts the exporter for `settings`.
    pub fn start(settings: &TracingSettings, metrics: &Metrics) -> Result<Arc<Self>, TraceError> {
        settings
            .endpoint
            .parse::<Uri>()
            .map_err(|source| TraceError::Endpoint {
                endpoint: settings.endpoint.clone(),
                source,
            })?;
        let queue = Arc::new(Queue::new(QUEUE, BATCH));
        let (ok, failed) = metrics.trace_export_counters();
        let counters = Counters {
            ok,
            failed,
            spans: metrics.trace_spans_exported(),
            dropped: metrics.trace_spans_dropped(),
        };
        let target = export::Target {
            headers: export::env_headers(),
            protocol: settings.protocol,
            endpoint: settings.endpoint.clone(),
            service: settings.service_name.clone(),
        };
        let exporter =
            Exporter::start(queue.clone(), target, counters).map_err(TraceError::Runtime)?;
        Ok(Arc::new(Self {
            queue,
            exporter,
            propagator: TraceContextPropagator::new(),
            ids: RandomIdGenerator::default(),
            settings: settings.clone(),
        }))
    }

    /// The settings it was started with.
    pub fn settings(&self) -> &TracingSettings {
        &self.settings
    }

    /// Exports what is queued and stops (blocks up to [`FLUSH_TIMEOUT`] for the last
    /// export; call it off the proxy workers).
    pub fn shutdown(&self) {
        self.exporter.stop(true);
    }

    /// Starts the trace of a request: a child of the client's `traceparent` when it sent a
    /// valid one (sampled when the client's was), else a new trace, sampled with
    /// `sampleRatio`. Only a sampled trace records spans.
    pub fn server_span(self: &Arc<Self>, headers: &HeaderMap, method: &Method) -> TraceScope {
        // Most requests carry no trace context: no propagator, no context for them.
        let remote = headers
            .contains_key(TRACEPARENT)
            .then(|| self.propagator.extract(&Headers(headers)))
            .map(|cx| cx.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let (trace_id, parent, state, sampled) = match remote {
            Some(sc) => (
                sc.trace_id(),
                Some(sc.span_id()),
                sc.trace_state().clone(),
                sc.is_sampled(),
            ),
            None => {
                let id = self.ids.new_trace_id();
                let sampled = sample_new_trace(self.settings.sample_ratio, id);
                (id, None, TraceState::NONE, sampled)
            }
        };
        if !sampled {
            return TraceScope::Unsampled(Unsampled { trace_id, state });
        }
        TraceScope::Recorded(Arc::new(Recorded {
            tracer: self.clone(),
            trace_id,
            span_id: self.ids.new_span_id(),
            parent,
            state,
            method: method_name(method),
            start: now_ns(),
            events: Mutex::new(Vec::new()),
            finished: AtomicBool::new(false),
        }))
    }
}

/// Whether a new trace is sampled at `ratio`: the SDK's own `TraceIdRatioBased` rule (by
/// the trace id, so the same id always gets the same answer).
fn sample_new_trace(ratio: f64, id: TraceId) -> bool {
    if ratio >= 1.0 {
        // What the rule answers for every id at 1.0, without building a sampler.
        return true;
    }
    Sampler::TraceIdRatioBased(ratio)
        .should_sample(None, id, "", &SpanKind::Server, &[], &[])
        .decision
        == SamplingDecision::RecordAndSample
}

/// The method as semantic conventions name it: the known ones, else `_OTHER`.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

struct Headers<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// A trace id as its 32 hex digits, held inline (a `String` would be an allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceHex([u8; 32]);

impl TraceHex {
    /// The digits of the trace id `bytes`.
    pub fn of(bytes: [u8; 16]) -> Self {
        let mut out = [0u8; 32];
        write_hex(&bytes, &mut out);
        Self(out)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // Only ever hex digits (ASCII): `write_hex` makes them.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for TraceHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request's trace, shared by the pipeline (client spans are children of its server
/// span; rejections are its events). Handed by the request entry to the pipeline, which
/// keeps it in [`crate::pipeline::inbound::Inbound`].
#[derive(Clone)]
pub enum TraceScope {
    /// Sampled: the server span and every client span are recorded.
    Recorded(Arc<Recorded>),
    /// Not sampled: only the ids that backends are given.
    Unsampled(Unsampled),
}

/// A sampled request's server span, while the request runs.
pub struct Recorded {
    tracer: Arc<Tracer>,
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    state: TraceState,
    method: &'static str,
    start: u64,
    events: Mutex<Vec<EventRecord>>,
    finished: AtomicBool,
}

impl Recorded {
    fn record(&self, detail: Detail, error: Option<String>) {
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()));
        self.tracer.queue.push(SpanRecord {
            trace_id: self.trace_id.to_bytes(),
            span_id: self.span_id.to_bytes(),
            parent: self.parent.map(|p| p.to_bytes()),
            state: self.state.clone(),
            start: self.start,
            end: now_ns(),
            method: self.method,
            detail,
            events,
            error,
        });
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        // A request dropped before it answered (the client left): its span still ends.
        if !self.finished.swap(true, Ordering::Relaxed) {
            self.record(Detail::Abandoned, None);
        }
    }
}

/// A request that is not sampled: its trace id (the client's, or a new one) and the
/// client's `tracestate`, passed on to backends with the sampled flag off.
#[derive(Clone)]
pub struct Unsampled {
    trace_id: TraceId,
    state: TraceState,
}

impl std::fmt::Debug for TraceScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceScope::Recorded(r) => f
                .debug_struct("TraceScope")
                .field("trace", &r.trace_id)
                .field("span", &r.span_id)
                .finish(),
            TraceScope::Unsampled(u) => f
                .debug_struct("TraceScope")
                .field("unsampled", &u.trace_id)
                .finish(),
        }
    }
}

/// How a request ended, for its server span.
#[derive(Debug)]
pub struct ServerOutcome<'a> {
    /// The endpoint that matched, if one did.
    pub endpoint: Option<&'a Arc<model::Endpoint>>,
    /// The request's URI.
    pub uri: &'a Uri,
    /// The status answered.
    pub status: StatusCode,
    /// `X-Weir-Completed`, when the answer carries it.
    pub completed: Option<bool>,
    /// The client's address.
    pub peer: std::net::IpAddr,
    /// The request id.
    pub request_id: &'a HeaderValue,
}

impl TraceScope {
    /// The trace id; its digits ([`TraceHex::of`]) are written only when a log line
    /// needs them.
    pub fn trace_id(&self) -> [u8; 16] {
        match self {
            TraceScope::Recorded(r) => r.trace_id,
            TraceScope::Unsampled(u) => u.trace_id,
        }
        .to_bytes()
    }

    /// Whether this trace is recorded and exported.
    pub fn sampled(&self) -> bool {
        matches!(self, TraceScope::Recorded(_))
    }

    /// Adds an event (a rate-limit or auth rejection) to the server span of a sampled
    /// request. Events Weir records: `rate_limit.rejected` (`weir.rate_limit.scope`:
    /// client or endpoint) and `auth.rejected` (`weir.auth.reason`).
    pub fn event(&self, name: &'static str, attributes: &[(&'static str, &'static str)]) {
        if let TraceScope::Recorded(r) = self {
            r.events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(EventRecord {
                    time: now_ns(),
                    name,
                    attrs: attributes.to_vec(),
                });
        }
    }

    /// Ends the server span (once; later calls do nothing).
    pub fn finish(&self, how: ServerOutcome<'_>) {
        let TraceScope::Recorded(r) = self else {
            return;
        };
        if r.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        let error = how
            .status
            .is_server_error()
            .then(|| how.status.as_str().to_string());
        let detail = Detail::Server(ServerDetail {
            uri: how.uri.clone(),
            status: how.status.as_u16(),
            peer: how.peer,
            request_id: how.request_id.clone(),
            route: how.endpoint.cloned(),
            completed: how.completed,
        });
        r.record(detail, error);
    }

    /// The span of one backend call: a child of the server span, or, for a request that is
    /// not sampled, only a new span id under the same trace.
    pub fn client_span(
        &self,
        backend: &CompiledBackend,
        method: &Method,
        deadline: Instant,
    ) -> ClientSpan {
        match self {
            TraceScope::Recorded(r) => {
                ClientSpan(Some(ClientKind::Recorded(Box::new(ClientInner {
                    server: r.clone(),
                    span_id: r.tracer.ids.new_span_id(),
                    start: now_ns(),
                    method: method_name(method),
                    endpoint: backend.endpoint().clone(),
                    index: backend.index(),
                    label: backend.label.clone(),
                    uri: None,
                    status: None,
                    deadline,
                }))))
            }
            TraceScope::Unsampled(u) => ClientSpan(Some(ClientKind::Unsampled {
                trace_id: u.trace_id,
                span_id: RandomIdGenerator::default().new_span_id(),
                state: u.state.clone(),
            })),
        }
    }
}

struct ClientInner {
    server: Arc<Recorded>,
    span_id: SpanId,
    start: u64,
    method: &'static str,
    endpoint: Arc<model::Endpoint>,
    index: usize,
    label: Arc<str>,
    uri: Option<Uri>,
    status: Option<StatusCode>,
    deadline: Instant,
}

/// One backend call's span; does nothing when tracing is off. Ended by [`ClientSpan::finish`],
/// or, when the call is dropped half-way, as `timeout` (the deadline passed) or `cancelled`
/// (the client left, or another of `concurrentCalls` won).
pub struct ClientSpan(Option<ClientKind>);

enum ClientKind {
    /// A span that is recorded (boxed: a call's future carries this inline, and most
    /// calls are not sampled).
    Recorded(Box<ClientInner>),
    /// A call of a request that is not sampled: ids for its `traceparent`, nothing else.
    Unsampled {
        trace_id: TraceId,
        span_id: SpanId,
        state: TraceState,
    },
}

/// `traceparent` for a span: `00-<trace id>-<span id>-<flags>`, written without `format!`.
fn traceparent(trace_id: TraceId, span_id: SpanId, flags: u8) -> HeaderValue {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    write_hex(&trace_id.to_bytes(), &mut out[3..35]);
    write_hex(&span_id.to_bytes(), &mut out[36..52]);
    write_hex(&[flags], &mut out[53..55]);
    // Hex digits and dashes are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

impl ClientSpan {
    /// No span (tracing off).
    pub const fn none() -> Self {
        ClientSpan(None)
    }

    /// Starts the span of a call to `backend` when the request is traced.
    pub fn start(
        scope: Option<&TraceScope>,
        backend: &CompiledBackend,
        method: &Method,
        deadline: Instant,
    ) -> Self {
        match scope {
            Some(s) => s.client_span(backend, method, deadline),
            None => Self::none(),
        }
    }

    /// Writes this span's `traceparent` (and the trace's `tracestate`) into the backend
    /// request.
    pub fn inject(&self, headers: &mut HeaderMap) {
        let (parent, state) = match &self.0 {
            None => return,
            Some(ClientKind::Recorded(inner)) => (
                traceparent(inner.server.trace_id, inner.span_id, 1),
                &inner.server.state,
            ),
            Some(ClientKind::Unsampled {
                trace_id,
                span_id,
                state,
            }) => (traceparent(*trace_id, *span_id, 0), state),
        };
        headers.insert(TRACEPARENT, parent);
        // The client's `tracestate` was not copied (`upstream/build.rs`): the trace's own,
        // when it has one, is the only one.
        if *state != TraceState::NONE {
            let state = state.header();
            if !state.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&state) {
                    headers.insert(TRACESTATE, v);
                }
            }
        }
    }

    fn recorded(&mut self) -> Option<&mut ClientInner> {
        match &mut self.0 {
            Some(ClientKind::Recorded(inner)) => Some(inner),
            _ => None,
        }
    }

    fn take_recorded(&mut self) -> Option<Box<ClientInner>> {
        match self.0.take() {
            Some(ClientKind::Recorded(inner)) => Some(inner),
            _ => None,
        }
    }

    /// Records where the call goes.
    pub fn target(&mut self, uri: &Uri) {
        if let Some(inner) = self.recorded() {
            inner.uri = Some(uri.clone());
        }
    }

    /// Records the status the backend answered.
    pub fn status(&mut self, status: StatusCode) {
        if let Some(inner) = self.recorded() {
            inner.status = Some(status);
        }
    }

    /// Ends the span of a pass-through call with the status the backend answered (`ok`
    /// says whether that status counts as a success).
    pub fn finish_status(mut self, status: StatusCode, ok: bool) {
        if let Some(mut inner) = self.take_recorded() {
            inner.status = Some(status);
            end_client(*inner, if ok { "ok" } else { "failed" }, None);
        }
    }

    /// Ends the span: `None` for a good answer, else why the call failed.
    pub fn finish(mut self, error: Option<&BackendError>) {
        if let Some(inner) = self.take_recorded() {
            let (outcome, detail) = match error {
                None => ("ok", None),
                Some(e) => (outcome_of(e), Some(e)),
            };
            end_client(*inner, outcome, detail);
        }
    }
}

impl Drop for ClientSpan {
    fn drop(&mut self) {
        if let Some(inner) = self.take_recorded() {
            let outcome = if Instant::now() >= inner.deadline {
                "timeout"
            } else {
                "cancelled"
            };
            end_client(*inner, outcome, None);
        }
    }
}

/// The client span's `weir.backend.outcome`: ok, failed, timeout, rate-limited,
/// breaker-open (and cancelled, for a call dropped before the deadline).
pub fn outcome_of(e: &BackendError) -> &'static str {
    match e {
        BackendError::Timeout => "timeout",
        BackendError::RateLimited => "rate-limited",
        BackendError::BreakerOpen => "breaker-open",
        _ => "failed",
    }
}

fn end_client(inner: ClientInner, outcome: &'static str, error: Option<&BackendError>) {
    let status = inner.status.or(match error {
        Some(BackendError::Status { status, .. }) => Some(*status),
        _ => None,
    });
    let mut failure = None;
    let mut error_type = None;
    if outcome != "ok" {
        error_type = Some(error.map_or(outcome, BackendError::outcome));
        failure = Some(error.map_or_else(|| outcome.to_string(), |e| e.to_string()));
    }
    let server = &inner.server;
    server.tracer.queue.push(SpanRecord {
        trace_id: server.trace_id.to_bytes(),
        span_id: inner.span_id.to_bytes(),
        parent: Some(server.span_id.to_bytes()),
        state: server.state.clone(),
        start: inner.start,
        end: now_ns(),
        method: inner.method,
        detail: Detail::Client(ClientDetail {
            endpoint: inner.endpoint,
            index: inner.index,
            label: inner.label,
            uri: inner.uri,
            outcome,
            status: status.map(|s| s.as_u16()),
            error_type,
        }),
        events: Vec::new(),
        error: failure,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_traces_are_sampled_at_the_ratio_and_by_their_id() {
        let ids = RandomIdGenerator::default();
        let drawn: Vec<TraceId> = (0..10_000).map(|_| ids.new_trace_id()).collect();
        let count = |ratio| {
            drawn
                .iter()
                .filter(|id| sample_new_trace(ratio, **id))
                .count()
        };
        assert_eq!(count(1.0), 10_000);
        assert_eq!(count(0.0), 0);
        // Binomial(10,000, 0.25): 5 standard deviations are ±217.
        let quarter = count(0.25);
        assert!(
            (2_283..=2_717).contains(&quarter),
            "{quarter} of 10,000 at 0.25"
        );
        // The same id always gets the same answer, and a lower ratio keeps a subset.
        for id in &drawn {
            assert_eq!(sample_new_trace(0.25, *id), sample_new_trace(0.25, *id));
            assert!(!sample_new_trace(0.1, *id) || sample_new_trace(0.25, *id));
        }
    }

    #[test]
    fn traceparent_and_trace_ids_are_written_as_w3c_says() {
        let ids = RandomIdGenerator::default();
        for flags in [0u8, 1, 0xff] {
            let (t, s) = (ids.new_trace_id(), ids.new_span_id());
            assert_eq!(
                traceparent(t, s, flags).to_str().unwrap(),
                format!("00-{t}-{s}-{flags:02x}")
            );
            let scope = TraceScope::Unsampled(Unsampled {
                trace_id: t,
                state: TraceState::NONE,
            });
            assert_eq!(TraceHex::of(scope.trace_id()).as_str(), t.to_string());
            assert!(!scope.sampled());
        }
    }
}
