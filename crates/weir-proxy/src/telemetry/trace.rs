//! OpenTelemetry tracing (`tracing` in the settings): one server span per request and one
//! client span per backend call, exported over OTLP.
//!
//! - Off by default, and then nothing here runs: the request entry checks one flag
//!   ([`crate::server::Shared::tracer`]) and no span, context or id is made.
//! - W3C `traceparent`/`tracestate` from the client are continued; sampling is parent-based
//!   with `sampleRatio` for new traces. Every backend call gets the `traceparent` of its
//!   client span (`upstream/build.rs` forwards the client's own when tracing is off).
//! - The sampling decision is taken here, before the SDK is entered: a request that is not
//!   sampled (most of them at a low `sampleRatio`) gets ids and passes them on, and nothing
//!   else: no SDK span, no context, no attribute ([`TraceScope::Unsampled`]). Only sampled
//!   requests pay for spans.
//! - Export is batched on the SDK's batch thread (a bounded queue: when it is full, spans
//!   are dropped, never waited for), and the exporter itself (hyper or tonic) runs on a
//!   runtime of its own, never on a proxy worker. A collector that is down costs a warning
//!   (at most one per [`EXPORT_LOG_WINDOW`]) and `weir_trace_exports_total{result="failed"}`.
//! - A changed `tracing` section builds a new [`Tracer`] on reload; the old one flushes and
//!   stops on a thread of its own once its last request is done.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler,
    SamplingDecision, SdkTracer, SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
};
use opentelemetry_sdk::Resource;
use prometheus::IntCounter;
use tokio::time::Instant;
use tracing::warn;

use weir_model::{OtlpProtocol, TracingSettings};

use crate::error::BackendError;
use crate::plan::CompiledBackend;
use crate::telemetry::log::{chain, LogGate};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::write_hex;

/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context).
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// How long one export may take (connect, send, answer), retries included.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans waiting for export; beyond this they are dropped (the SDK counts and reports them
/// at shutdown).
pub const QUEUE: usize = 4096;
/// Spans per export request.
pub const BATCH: usize = 512;
/// Longest wait before queued spans are exported.
pub const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// At most one export-failure warning per this window (with the count of the others).
pub const EXPORT_LOG_WINDOW: Duration = Duration::from_secs(30);
/// How long a stopping tracer may take to export what it still holds.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from a collector.
const MAX_COLLECTOR_ANSWER: usize = 1024 * 1024;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The exporter's runtime thread could not start.
    #[error("cannot start the trace exporter's thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The OTLP exporter refused its configuration.
    #[error("cannot set up the OTLP exporter for {endpoint}: {source}")]
    Exporter {
        /// The collector.
        endpoint: String,
        /// The exporter's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The exporter's runtime. Dropped without waiting (a plain drop blocks, which a runtime
/// refuses inside another one): by then the provider has exported what it held.
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A running tracer: the SDK provider, its exporter's runtime, and what requests need to
/// make spans.
pub struct Tracer {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    runtime: Option<ExportRuntime>,
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

impl Drop for Tracer {
    fn drop(&mut self) {
        // The last request on a replaced tracer may end on a proxy worker, and flushing
        // blocks: it happens on a thread of its own (a no-op when `shutdown` already ran).
        let provider = self.provider.clone();
        let runtime = self.runtime.take();
        let _ = std::thread::Builder::new()
            .name("weir-otlp-stop".into())
            .spawn(move || {
                let _ = provider.shutdown_with_timeout(FLUSH_TIMEOUT);
                drop(runtime);
            });
    }
}

impl Tracer {
    /// Starts the exporter and the batch processor for `settings`.
    pub fn start(settings: &TracingSettings, metrics: &Metrics) -> Result<Arc<Self>, TraceError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-otlp")
            .enable_all()
            .build()
            .map_err(TraceError::Runtime)?;
        let handle = runtime.handle().clone();
        let runtime = ExportRuntime(Some(runtime));
        let exporter = {
            // tonic's channel spawns its connection task where it is built: on this runtime.
            let _on_runtime = handle.enter();
            build_exporter(settings).map_err(|source| TraceError::Exporter {
                endpoint: settings.endpoint.clone(),
                source,
            })?
        };
        let (ok, failed) = metrics.trace_export_counters();
        let exporter = Detached {
            inner: Arc::new(exporter),
            runtime: handle,
            endpoint: settings.endpoint.clone(),
            failures: LogGate::new(1, EXPORT_LOG_WINDOW),
            ok,
            failed,
            spans: metrics.trace_spans_exported(),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_max_export_batch_size(BATCH)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        // New traces are sampled by `TraceScope` before the SDK sees them: what reaches it
        // is sampled already.
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("weir");
        Ok(Arc::new(Self {
            tracer,
            provider,
            runtime: Some(runtime),
            propagator: TraceContextPropagator::new(),
            ids: RandomIdGenerator::default(),
            settings: settings.clone(),
        }))
    }

    /// The settings it was started with.
    pub fn settings(&self) -> &TracingSettings {
        &self.settings
    }

    /// Exports what is queued and stops (blocks up to [`FLUSH_TIMEOUT`]; call it off the
    /// proxy workers).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            if !matches!(e, OTelSdkError::AlreadyShutdown) {
                warn!(error = %e, "trace export at shutdown did not finish");
            }
        }
    }

    /// Starts the trace of a request: a child of the client's `traceparent` when it sent a
    /// valid one (sampled when the client's was), else a new trace, sampled with
    /// `sampleRatio`. Only a sampled trace gets an SDK span (the server span).
    pub fn server_span(self: &Arc<Self>, headers: &HeaderMap, method: &Method) -> TraceScope {
        // Most requests carry no trace context: no propagator, no context for them.
        let parent = headers
            .contains_key(TRACEPARENT)
            .then(|| self.propagator.extract(&Headers(headers)));
        let remote = parent
            .as_ref()
            .map(|cx| cx.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let unsampled = match remote {
            Some(sc) => (!sc.is_sampled()).then(|| (sc.trace_id(), sc.trace_state().clone())),
            None => {
                let id = self.ids.new_trace_id();
                (!sample_new_trace(self.settings.sample_ratio, id))
                    .then_some((id, TraceState::NONE))
            }
        };
        if let Some((trace_id, state)) = unsampled {
            return TraceScope::Unsampled(Unsampled { trace_id, state });
        }
        let parent = parent.unwrap_or_default();
        let span = self
            .tracer
            .span_builder(method_name(method))
            .with_kind(SpanKind::Server)
            .with_start_time(SystemTime::now())
            .start_with_context(&self.tracer, &parent);
        let context = span.span_context().clone();
        TraceScope::Recorded(Recorded {
            tracer: self.clone(),
            cx: parent.with_span(span),
            method: method_name(method),
            context,
        })
    }
}

/// Whether a new trace is sampled at `ratio`: the SDK's own `TraceIdRatioBased` rule (by
/// the trace id, so the same id always gets the same answer), asked here because the SDK
/// only sees the traces that are sampled.
fn sample_new_trace(ratio: f64, id: TraceId) -> bool {
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

fn build_exporter(
    settings: &TracingSettings,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    match settings.protocol {
        OtlpProtocol::HttpProtobuf => builder
            .with_http()
            .with_http_client(CollectorClient::new())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        OtlpProtocol::Grpc => builder
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    }
}

/// The OTLP/HTTP transport: the hyper client already in the tree (http and https, public
/// roots), instead of the reqwest one the exporter defaults to.
#[derive(Debug, Clone)]
struct CollectorClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl CollectorClient {
    fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(EXPORT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for CollectorClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(body));
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_COLLECTOR_ANSWER)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
        };
        tokio::time::timeout(EXPORT_TIMEOUT, exchange)
            .await
            .map_err(|_| "the collector did not answer in time".into())
            .and_then(|r| r)
    }
}

/// Runs every export on the exporter's own runtime (the batch thread only waits for it),
/// and turns failures into a rate-limited warning and a counter.
#[derive(Debug)]
struct Detached<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
    endpoint: String,
    failures: LogGate,
    ok: IntCounter,
    failed: IntCounter,
    spans: IntCounter,
}

impl<E: SpanExporter + 'static> SpanExporter for Detached<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = self.inner.clone();
        let n = batch.len() as u64;
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        async move {
            let result = match task.await {
                Ok(r) => r,
                Err(e) => Err(OTelSdkError::InternalFailure(e.to_string())),
            };
            match &result {
                Ok(()) => {
                    self.ok.inc();
                    self.spans.inc_by(n);
                }
                Err(e) => {
                    self.failed.inc();
                    if let Some(suppressed) = self.failures.admit() {
                        warn!(
                            collector = %self.endpoint,
                            error = %chain(e),
                            spans = n,
                            suppressed,
                            "trace export failed; spans dropped"
                        );
                    }
                }
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once while the provider is built, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
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

/// A request's trace, shared by the pipeline (client spans are children of its server
/// span; rejections are its events). Travels in the request's extensions to
/// [`crate::pipeline::inbound::Inbound`].
#[derive(Clone)]
pub enum TraceScope {
    /// Sampled: the SDK records the server span and every client span.
    Recorded(Recorded),
    /// Not sampled: only the ids that backends are given.
    Unsampled(Unsampled),
}

/// A sampled request's server span.
#[derive(Clone)]
pub struct Recorded {
    tracer: Arc<Tracer>,
    cx: Context,
    method: &'static str,
    context: SpanContext,
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
                .field("span", &r.context)
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
    /// The endpoint's path template, when one matched.
    pub route: Option<&'a str>,
    /// The request path.
    pub path: &'a str,
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
    /// The trace id (32 hex digits).
    pub fn trace_id(&self) -> String {
        let id = match self {
            TraceScope::Recorded(r) => r.context.trace_id(),
            TraceScope::Unsampled(u) => u.trace_id,
        };
        let mut out = [0u8; 32];
        write_hex(&id.to_bytes(), &mut out);
        // Hex digits are ASCII.
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whether this trace is recorded and exported.
    pub fn sampled(&self) -> bool {
        matches!(self, TraceScope::Recorded(_))
    }

    /// Adds an event (a rate-limit or auth rejection) to the server span of a sampled
    /// request; `attributes` are only built for one.
    pub fn event(&self, name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if let TraceScope::Recorded(r) = self {
            r.cx.span().add_event(name, attributes());
        }
    }

    /// Ends the server span.
    pub fn finish(&self, how: ServerOutcome<'_>) {
        let TraceScope::Recorded(r) = self else {
            return;
        };
        let span = r.cx.span();
        if span.is_recording() {
            let method = r.method;
            if let Some(route) = how.route {
                span.update_name(format!("{method} {route}"));
            }
            let mut attributes = vec![
                KeyValue::new("http.request.method", method),
                KeyValue::new("url.path", how.path.to_string()),
                KeyValue::new("http.response.status_code", i64::from(how.status.as_u16())),
                KeyValue::new("client.address", how.peer.to_string()),
                KeyValue::new(
                    "weir.request_id",
                    String::from_utf8_lossy(how.request_id.as_bytes()).into_owned(),
                ),
            ];
            if let Some(route) = how.route {
                attributes.push(KeyValue::new("http.route", route.to_string()));
            }
            if let Some(completed) = how.completed {
                attributes.push(KeyValue::new("weir.completed", completed));
            }
            span.set_attributes(attributes);
            if how.status.is_server_error() {
                span.set_status(Status::error(how.status.as_str().to_string()));
            }
        }
        span.end();
    }

    /// The span of one backend call: a child of the server span, or, for a request that is
    /// not sampled, only a new span id under the same trace.
    pub fn client_span(
        &self,
        backend: &CompiledBackend,
        method: &Method,
        deadline: Instant,
    ) -> ClientSpan {
        let r = match self {
            TraceScope::Recorded(r) => r,
            TraceScope::Unsampled(u) => {
                return ClientSpan(Some(ClientKind::Unsampled {
                    trace_id: u.trace_id,
                    span_id: RandomIdGenerator::default().new_span_id(),
                    state: u.state.clone(),
                }));
            }
        };
        let name = method_name(method);
        let template = backend.model().url_pattern.as_str();
        let span = r
            .tracer
            .tracer
            .span_builder(format!("{name} {template}"))
            .with_attributes([
                KeyValue::new("http.request.method", name),
                KeyValue::new("url.template", template.to_string()),
                KeyValue::new("weir.backend", backend.label.clone()),
            ])
            .with_kind(SpanKind::Client)
            .start_with_context(&r.tracer.tracer, &r.cx);
        ClientSpan(Some(ClientKind::Recorded(ClientInner {
            span,
            deadline,
            status: None,
        })))
    }
}

struct ClientInner {
    span: opentelemetry_sdk::trace::Span,
    deadline: Instant,
    status: Option<StatusCode>,
}

/// One backend call's span; does nothing when tracing is off. Ended by [`ClientSpan::finish`],
/// or, when the call is dropped half-way, as `timeout` (the deadline passed) or `cancelled`
/// (the client left, or another of `concurrentCalls` won).
pub struct ClientSpan(Option<ClientKind>);

// Not boxed: the call's future held the SDK span inline before the unsampled variant was
// added, and a box would cost every sampled call an allocation.
#[allow(clippy::large_enum_variant)]
enum ClientKind {
    /// A span the SDK records.
    Recorded(ClientInner),
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
            Some(ClientKind::Recorded(inner)) => {
                let sc = inner.span.span_context();
                if !sc.is_valid() {
                    return;
                }
                (
                    traceparent(sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()),
                    sc.trace_state(),
                )
            }
            Some(ClientKind::Unsampled {
                trace_id,
                span_id,
                state,
            }) => (traceparent(*trace_id, *span_id, 0), state),
        };
        headers.insert(TRACEPARENT, parent);
        let state = state.header();
        match HeaderValue::from_str(&state) {
            Ok(v) if !state.is_empty() => {
                headers.insert(TRACESTATE, v);
            }
            _ => {
                headers.remove(TRACESTATE);
            }
        }
    }

    fn recorded(&mut self) -> Option<&mut ClientInner> {
        match &mut self.0 {
            Some(ClientKind::Recorded(inner)) => Some(inner),
            _ => None,
        }
    }

    fn take_recorded(&mut self) -> Option<ClientInner> {
        match self.0.take() {
            Some(ClientKind::Recorded(inner)) => Some(inner),
            _ => None,
        }
    }

    /// Records where the call goes.
    pub fn target(&mut self, uri: &Uri) {
        let Some(inner) = self.recorded() else { return };
        if !inner.span.is_recording() {
            return;
        }
        let mut attributes = Vec::with_capacity(3);
        if let Some(host) = uri.host() {
            attributes.push(KeyValue::new("server.address", host.to_string()));
        }
        if let Some(port) = uri.port_u16().or_else(|| match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        }) {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        // Without the query: it may carry what a trace backend should not keep.
        attributes.push(KeyValue::new(
            "url.full",
            format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("http"),
                uri.authority().map_or("", |a| a.as_str()),
                uri.path()
            ),
        ));
        inner.span.set_attributes(attributes);
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
            end_client(inner, if ok { "ok" } else { "failed" }, None);
        }
    }

    /// Ends the span: `None` for a good answer, else why the call failed.
    pub fn finish(mut self, error: Option<&BackendError>) {
        if let Some(inner) = self.take_recorded() {
            let (outcome, detail) = match error {
                None => ("ok", None),
                Some(e) => (outcome_of(e), Some(e)),
            };
            end_client(inner, outcome, detail);
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
            end_client(inner, outcome, None);
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

fn end_client(mut inner: ClientInner, outcome: &'static str, error: Option<&BackendError>) {
    let span = &mut inner.span;
    if span.is_recording() {
        let status = inner.status.or(match error {
            Some(BackendError::Status { status, .. }) => Some(*status),
            _ => None,
        });
        let mut attributes = vec![KeyValue::new("weir.backend.outcome", outcome)];
        if let Some(s) = status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(s.as_u16()),
            ));
        }
        if outcome != "ok" {
            let kind = error.map_or(outcome, BackendError::outcome);
            attributes.push(KeyValue::new("error.type", kind));
            span.set_status(Status::error(
                error.map_or_else(|| outcome.to_string(), |e| e.to_string()),
            ));
        }
        span.set_attributes(attributes);
    }
    span.end();
}

/// Adds an event to the request's server span, when it is traced: for a rejection decided
/// before the pipeline has an [`crate::pipeline::inbound::Inbound`]. Events Weir records:
/// `rate_limit.rejected` (`weir.rate_limit.scope`: client or endpoint) and `auth.rejected`
/// (`weir.auth.reason`).
pub fn event(
    extensions: &http::Extensions,
    name: &'static str,
    attributes: &[(&'static str, &'static str)],
) {
    if let Some(scope) = extensions.get::<TraceScope>() {
        scope.event(name, || {
            attributes
                .iter()
                .map(|(k, v)| KeyValue::new(*k, *v))
                .collect()
        });
    }
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
            assert_eq!(scope.trace_id(), t.to_string());
            assert!(!scope.sampled());
        }
    }
}
