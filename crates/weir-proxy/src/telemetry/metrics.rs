//! Prometheus metrics. One [`Metrics`] (one registry) is built at start-up and passed down;
//! per-endpoint and per-backend handles are resolved when a table is compiled, so the
//! request path never hashes label values. Labels are bounded by the configuration: the
//! endpoint label is the path template, never the raw URL.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};

use crate::auth::Reason as AuthReason;
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label value for requests that matched no endpoint.
pub const UNMATCHED: &str = "";
/// Label value for the reserved endpoints.
pub const RESERVED: &str = "__reserved";

use super::series::{self, BackendSeries, Counter, MethodSeries, Series, TemplateSeries};
pub use super::series::{LATENCY_BUCKETS, OUTCOMES};

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    client_evictions: IntCounterVec,
    auth_rejections: IntCounterVec,
    breaker_state: IntGaugeVec,
    /// Requests being served now.
    pub in_flight: IntGauge,
    reloads: IntCounterVec,
    /// Generation of the table serving now.
    pub generation: IntGauge,
    /// Endpoints in the table serving now.
    pub endpoints: IntGauge,
    /// Access-log lines dropped because the log writer fell behind.
    pub access_log_dropped: IntCounter,
    tls_handshakes: [IntCounter; 2],
    cert_reloads: [IntCounter; 2],
    websocket_total: IntCounter,
    websocket_open: IntGauge,
    grpc_calls: IntCounterVec,
    upstream: UpstreamConnections,
    trace_exports: [IntCounter; 2],
    trace_spans: IntCounter,
    trace_dropped: IntCounter,
    /// The per-endpoint series (see `series.rs`); `requests` above keeps only the rare
    /// ones of its family (unusual statuses, unmatched and reserved paths).
    series: Series,
    /// Endpoint templates that have per-endpoint series. Series are created on first use,
    /// so most departing endpoints of a large table never had one; forgetting those must
    /// not cost a walk over every series of the registry.
    with_series: Mutex<HashSet<String>>,
    /// How many times `forget_endpoints` walked the registry (what the tests count).
    #[cfg(test)]
    forget_walks: std::sync::atomic::AtomicUsize,
}

/// Upstream connection counters, shared by every worker's connectors.
#[derive(Clone, Debug)]
pub struct UpstreamConnections {
    /// TCP connections opened to backends (TLS ones count once the TCP connect succeeded).
    pub opened: IntCounter,
    /// Backend connections open now: idle in a pool or carrying a request.
    pub open: IntGauge,
    /// Connection attempts that failed (refused, unreachable, connect timeout).
    pub failed: IntCounter,
}

impl UpstreamConnections {
    /// Counters registered nowhere, for clients built without the process's registry.
    pub fn detached() -> Self {
        Self {
            opened: must(IntCounter::new("detached_opened", "-")),
            open: must(IntGauge::new("detached_open", "-")),
            failed: must(IntCounter::new("detached_failed", "-")),
        }
    }
}

/// gRPC status codes 0 (OK) to 16 (UNAUTHENTICATED): the `grpc_status` label values.
pub const GRPC_CODES: usize = 17;
/// UNKNOWN: what a status outside 0..=16, or none at all, counts as.
pub const GRPC_UNKNOWN: usize = 2;
/// CANCELLED: a call whose stream was dropped before it ended.
pub const GRPC_CANCELLED: usize = 1;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The labels of one series, by name.
struct Labels<'a>(&'a [(&'a str, &'a str)]);

impl Labels<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// Removes the series of `vec` whose labels `gone` picks.
fn drop_series<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    gone: &dyn Fn(&Labels<'_>) -> bool,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let pairs: Vec<(&str, &str)> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if gone(&Labels(&pairs)) {
                let labels: std::collections::HashMap<&str, &str> = pairs.iter().copied().collect();
                // Only fails for a series already gone: nothing to do then.
                let _ = vec.remove(&labels);
            }
        }
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Only fails for invalid names or duplicate registration: programming errors caught by
    // the tests, not run-time conditions.
    r.expect("metric definitions are valid")
}

impl Metrics {
    /// Builds the registry with every metric (and process metrics on Linux).
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = must(IntCounterVec::new(
            Opts::new(series::REQUESTS.0, series::REQUESTS.1),
            &["endpoint", "method", "status"],
        ));
        let client_evictions = must(IntCounterVec::new(
            Opts::new(
                "weir_rate_limit_client_evictions_total",
                "Clients dropped from a per-client rate limiter to stay within its bound, by endpoint.",
            ),
            &["endpoint"],
        ));
        let auth_rejections = must(IntCounterVec::new(
            Opts::new(
                "weir_auth_rejections_total",
                "Requests refused by authentication, by endpoint and reason (missing, malformed, algorithm, unknown_key, no_keys, signature, expired, issuer, audience, api_key, claim: 401; role, scope: 403).",
            ),
            &["endpoint", "reason"],
        ));
        let breaker_state = must(IntGaugeVec::new(
            Opts::new(
                "weir_circuit_breaker_state",
                "Circuit breaker state by backend: 0 closed, 1 open, 2 half-open.",
            ),
            &["endpoint", "backend"],
        ));
        let in_flight = must(IntGauge::new(
            "weir_requests_in_flight",
            "Requests being served.",
        ));
        let reloads = must(IntCounterVec::new(
            Opts::new(
                "weir_config_reloads_total",
                "Configuration reloads by result (applied, unchanged, rejected).",
            ),
            &["result"],
        ));
        let generation = must(IntGauge::new(
            "weir_config_generation",
            "Generation of the serving table.",
        ));
        let endpoints = must(IntGauge::new(
            "weir_endpoints_served",
            "Endpoints in the serving table.",
        ));
        let access_log_dropped = must(IntCounter::new(
            "weir_access_log_dropped_lines_total",
            "Access-log lines dropped because stdout could not keep up (requests are never slowed by the log).",
        ));
        let tls_handshakes = must(IntCounterVec::new(
            Opts::new(
                "weir_tls_handshakes_total",
                "TLS handshakes on the proxy port by result (ok, failed).",
            ),
            &["result"],
        ));
        let cert_reloads = must(IntCounterVec::new(
            Opts::new(
                "weir_tls_certificate_reloads_total",
                "Reloads of the proxy port's certificate files by result (applied, rejected).",
            ),
            &["result"],
        ));
        let websocket_total = must(IntCounter::new(
            "weir_websocket_sessions_total",
            "WebSocket connections passed through (upgraded) since start.",
        ));
        let websocket_open = must(IntGauge::new(
            "weir_websocket_sessions_open",
            "WebSocket connections open now.",
        ));
        let grpc_calls = must(IntCounterVec::new(
            Opts::new(
                "weir_grpc_calls_total",
                "gRPC calls through no-op endpoints, by endpoint and grpc-status (0-16).",
            ),
            &["endpoint", "grpc_status"],
        ));
        let upstream_opened = must(IntCounter::new(
            "weir_upstream_connections_opened_total",
            "Connections opened to backends (a pool that keeps its connections opens few).",
        ));
        let upstream_open = must(IntGauge::new(
            "weir_upstream_connections_open",
            "Backend connections open now, idle in a pool or in use, across all workers.",
        ));
        let upstream_failed = must(IntCounter::new(
            "weir_upstream_connect_errors_total",
            "Backend connection attempts that failed (refused, unreachable, timed out).",
        ));
        let trace_exports = must(IntCounterVec::new(
            Opts::new(
                "weir_trace_exports_total",
                "OTLP span exports by result (ok, failed); a failed export drops its spans.",
            ),
            &["result"],
        ));
        let trace_spans = must(IntCounter::new(
            "weir_trace_spans_exported_total",
            "Spans the collector accepted.",
        ));
        let trace_dropped = must(IntCounter::new(
            "weir_trace_spans_dropped_total",
            "Sampled spans never exported: the export queue was full, or their export failed.",
        ));
        for c in [
            Box::new(grpc_calls.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(upstream_opened.clone()),
            Box::new(upstream_open.clone()),
            Box::new(upstream_failed.clone()),
            Box::new(trace_exports.clone()),
            Box::new(trace_spans.clone()),
            Box::new(trace_dropped.clone()),
            Box::new(websocket_total.clone()),
            Box::new(websocket_open.clone()),
            Box::new(tls_handshakes.clone()),
            Box::new(cert_reloads.clone()),
            Box::new(access_log_dropped.clone()),
            Box::new(requests.clone()),
            Box::new(client_evictions.clone()),
            Box::new(auth_rejections.clone()),
            Box::new(breaker_state.clone()),
            Box::new(in_flight.clone()),
            Box::new(reloads.clone()),
            Box::new(generation.clone()),
            Box::new(endpoints.clone()),
        ] {
            must(registry.register(c));
        }
        #[cfg(target_os = "linux")]
        must(registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        let series = Series::default();
        must(registry.register(Box::new(series.clone())));
        Self {
            registry,
            requests,
            client_evictions,
            auth_rejections,
            breaker_state,
            in_flight,
            reloads,
            generation,
            endpoints,
            access_log_dropped,
            tls_handshakes: ["ok", "failed"].map(|r| tls_handshakes.with_label_values(&[r])),
            cert_reloads: ["applied", "rejected"].map(|r| cert_reloads.with_label_values(&[r])),
            websocket_total,
            websocket_open,
            grpc_calls,
            upstream: UpstreamConnections {
                opened: upstream_opened,
                open: upstream_open,
                failed: upstream_failed,
            },
            trace_exports: ["ok", "failed"].map(|r| trace_exports.with_label_values(&[r])),
            trace_spans,
            trace_dropped,
            series,
            with_series: Mutex::default(),
            #[cfg(test)]
            forget_walks: Default::default(),
        }
    }

    /// Notes that `template` now has series (called where a per-endpoint series is created:
    /// once per endpoint and kind, never per request).
    fn has_series(&self, template: &str) {
        let mut set = self.with_series.lock().unwrap_or_else(|e| e.into_inner());
        if !set.contains(template) {
            set.insert(template.to_string());
        }
    }

    /// The upstream connection counters (for each worker's connectors).
    pub fn upstream_connections(&self) -> UpstreamConnections {
        self.upstream.clone()
    }

    /// The trace exporter's counters: exports that succeeded, and that failed.
    pub fn trace_export_counters(&self) -> (IntCounter, IntCounter) {
        (self.trace_exports[0].clone(), self.trace_exports[1].clone())
    }

    /// Spans the collector accepted.
    pub fn trace_spans_exported(&self) -> IntCounter {
        self.trace_spans.clone()
    }

    /// Sampled spans that were never exported.
    pub fn trace_spans_dropped(&self) -> IntCounter {
        self.trace_dropped.clone()
    }

    /// A WebSocket tunnel opened.
    pub fn websocket_opened(&self) {
        self.websocket_total.inc();
        self.websocket_open.inc();
    }

    /// A WebSocket tunnel closed.
    pub fn websocket_closed(&self) {
        self.websocket_open.dec();
    }

    /// Counts one TLS handshake.
    pub fn tls_handshake(&self, ok: bool) {
        self.tls_handshakes[usize::from(!ok)].inc();
    }

    /// Counts one reload of the certificate files.
    pub fn count_cert_reload(&self, applied: bool) {
        self.cert_reloads[usize::from(!applied)].inc();
    }

    /// Handles for one endpoint, created on its first use: a table with thousands of
    /// endpoints costs no series (and no memory) for the idle ones.
    pub fn endpoint(self: &Arc<Self>, template: &str, method: &'static str) -> EndpointMetrics {
        EndpointMetrics {
            metrics: self.clone(),
            template: template.into(),
            method,
            handles: OnceLock::new(),
            auth_handles: OnceLock::new(),
            grpc: OnceLock::new(),
        }
    }

    /// Handles for one backend of an endpoint, created on first use.
    pub fn backend(self: &Arc<Self>, template: &str, backend: &str) -> BackendMetrics {
        BackendMetrics {
            metrics: self.clone(),
            template: template.into(),
            backend: backend.into(),
            handles: OnceLock::new(),
            log_gate: crate::telemetry::log::LogGate::default(),
        }
    }

    /// The breaker-state gauge of one backend (created at once: breakers are few, and the
    /// state should be visible before the first call).
    pub fn breaker_gauge(&self, template: &str, backend: &str) -> IntGauge {
        self.has_series(template);
        self.breaker_state.with_label_values(&[template, backend])
    }

    /// The client-eviction counter of one endpoint, for its per-client rate limiter
    /// (created with the limiter: only endpoints with `clientMaxRate` have one).
    pub fn client_evictions(&self, template: &str) -> IntCounter {
        self.has_series(template);
        self.client_evictions.with_label_values(&[template])
    }

    /// Counts a request that matched no endpoint, or a reserved one.
    pub fn count_other(&self, endpoint: &str, method: &http::Method, status: u16) {
        let method = weir_model::Method::parse(method.as_str()).map_or("OTHER", |m| m.as_str());
        self.requests
            .with_label_values(&[endpoint, method, &status_label(status)])
            .inc();
    }

    /// Drops the series of endpoints that left the table, so that creating and deleting
    /// routes does not grow the registry: `pairs` are the (template, method) pairs no
    /// endpoint serves any more, `templates` the templates no endpoint has any more (the
    /// series labelled by template only).
    pub fn forget_endpoints(&self, pairs: &[(String, String)], templates: &[String]) {
        self.series.forget(pairs, templates);
        // Only endpoints that ever had a series: the walk below visits every series of the
        // registry, which would make each reload pay for the traffic of all routes.
        let (pairs, templates): (Vec<_>, Vec<_>) = {
            let mut set = self.with_series.lock().unwrap_or_else(|e| e.into_inner());
            let pairs = pairs
                .iter()
                .filter(|(t, _)| set.contains(t))
                .cloned()
                .collect();
            let templates = templates
                .iter()
                .filter(|t| set.remove(*t))
                .cloned()
                .collect();
            (pairs, templates)
        };
        if pairs.is_empty() && templates.is_empty() {
            return;
        }
        #[cfg(test)]
        self.forget_walks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let by_pair = |labels: &Labels<'_>| {
            let (Some(e), Some(m)) = (labels.get("endpoint"), labels.get("method")) else {
                return false;
            };
            pairs.iter().any(|(t, pm)| t == e && pm == m)
        };
        let by_template = |labels: &Labels<'_>| {
            labels
                .get("endpoint")
                .is_some_and(|e| templates.iter().any(|t| t == e))
        };
        drop_series(&self.requests, &by_pair);
        for vec in [
            &self.client_evictions,
            &self.auth_rejections,
            &self.grpc_calls,
        ] {
            drop_series(vec, &by_template);
        }
        drop_series(&self.breaker_state, &by_template);
    }

    /// Counts one reload by result: `applied`, `unchanged` or `rejected`.
    pub fn count_reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for valid metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The `status` label: the code itself; anything outside 100..=599 folds into `other`, so
/// the label stays bounded whatever a backend sends through a no-op endpoint.
fn status_label(status: u16) -> String {
    if (100..600).contains(&status) {
        status.to_string()
    } else {
        "other".to_string()
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Endpoint `maxRate` (503).
    Endpoint,
    /// `clientMaxRate` (429).
    Client,
    /// Backend `rateLimit`.
    Backend,
}

struct EndpointHandles {
    method: Arc<MethodSeries>,
    template: Arc<TemplateSeries>,
    /// Whether a rare status of this endpoint was counted (in the registry's vector):
    /// its template is then noted for `forget_endpoints`, once, not per request.
    rare_noted: std::sync::atomic::AtomicBool,
}

/// One endpoint's `weir_grpc_calls_total` series, indexed by status code.
pub type GrpcCounters = Arc<[IntCounter; GRPC_CODES]>;

/// Per-endpoint handles, resolved on first use.
pub struct EndpointMetrics {
    metrics: Arc<Metrics>,
    template: Arc<str>,
    method: &'static str,
    // Boxed, here and below: most endpoints of a large table never serve a request, and
    // an unset handle set should cost a pointer, not its ~80-120 bytes, per endpoint.
    handles: OnceLock<Box<EndpointHandles>>,
    /// Resolved apart: endpoints without authentication never create these series.
    auth_handles: OnceLock<Box<[IntCounter; AuthReason::ALL.len()]>>,
    grpc: OnceLock<GrpcCounters>,
}

impl EndpointMetrics {
    fn handles(&self) -> &EndpointHandles {
        self.handles.get_or_init(|| {
            let series = &self.metrics.series;
            Box::new(EndpointHandles {
                method: series.method(&self.template, self.method),
                template: series.template(&self.template),
                rare_noted: Default::default(),
            })
        })
    }

    /// Counts an answer some backends failed to contribute to.
    pub fn partial(&self) {
        self.handles().template.partial.fetch_add(1, Relaxed);
    }

    /// The counter of request body bytes.
    pub fn request_bytes(&self) -> &Counter {
        &self.handles().template.request_bytes
    }

    /// The counter of response body bytes.
    pub fn response_bytes(&self) -> &Counter {
        &self.handles().template.response_bytes
    }

    /// The gRPC status counters (created on the endpoint's first gRPC call: only no-op
    /// endpoints that carry gRPC have these series).
    pub fn grpc(&self) -> &GrpcCounters {
        self.grpc.get_or_init(|| {
            self.metrics.has_series(&self.template);
            let t = &*self.template;
            Arc::new(std::array::from_fn(|code| {
                self.metrics
                    .grpc_calls
                    .with_label_values(&[t, &code.to_string()])
            }))
        })
    }

    /// Counts one answered request.
    pub fn observe(&self, status: u16, seconds: f64) {
        let h = self.handles();
        match status {
            200 => {
                h.method.ok.fetch_add(1, Relaxed);
            }
            500 => {
                h.method.server_error.fetch_add(1, Relaxed);
            }
            other => {
                // Rare statuses live in the registry's own vector.
                if !h.rare_noted.swap(true, Relaxed) {
                    self.metrics.has_series(&self.template);
                }
                self.metrics
                    .requests
                    .with_label_values(&[&*self.template, self.method, &status_label(other)])
                    .inc();
            }
        }
        h.method.duration.observe(seconds);
    }

    /// Counts one authentication rejection.
    pub fn reject_auth(&self, reason: AuthReason) {
        let handles = self.auth_handles.get_or_init(|| {
            self.metrics.has_series(&self.template);
            Box::new(AuthReason::ALL.map(|r| {
                self.metrics
                    .auth_rejections
                    .with_label_values(&[&*self.template, r.label()])
            }))
        });
        if let Some(i) = AuthReason::ALL.iter().position(|r| *r == reason) {
            handles[i].inc();
        }
    }

    /// Counts one rate-limit rejection.
    pub fn reject(&self, scope: Scope) {
        self.handles().template.rejected[scope as usize].fetch_add(1, Relaxed);
    }
}

/// Per-backend handles, resolved on first use.
pub struct BackendMetrics {
    metrics: Arc<Metrics>,
    template: Arc<str>,
    backend: Arc<str>,
    handles: OnceLock<Arc<BackendSeries>>,
    /// Rate limit of this backend's failure warnings (kept with its other per-backend
    /// telemetry, and like it rebuilt when the endpoint is).
    pub log_gate: crate::telemetry::log::LogGate,
}

impl BackendMetrics {
    fn handles(&self) -> &BackendSeries {
        self.handles
            .get_or_init(|| self.metrics.series.backend(&self.template, &self.backend))
    }

    /// Counts one call by outcome (one of [`OUTCOMES`]).
    pub fn count(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.handles().calls[i].fetch_add(1, Relaxed);
        }
    }

    /// Records the duration of a completed call.
    pub fn observe_duration(&self, seconds: f64) {
        self.handles().duration.observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn client_evictions_are_exported_per_endpoint() {
        let m = Metrics::new();
        m.client_evictions("/r/{id}").inc_by(3);
        let text = m.render();
        assert!(
            text.contains("weir_rate_limit_client_evictions_total{endpoint=\"/r/{id}\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn rare_statuses_and_unmatched_requests_share_the_family_of_the_plain_series() {
        let m = Arc::new(Metrics::new());
        let ep = m.endpoint("/a", "GET");
        ep.observe(200, 0.1);
        ep.observe(404, 0.1);
        m.count_other(UNMATCHED, &http::Method::GET, 404);
        let text = m.render();
        // One family: one HELP line, and the plain (200, 500) and the registry's own
        // series under it.
        assert_eq!(
            text.matches("# HELP weir_requests_total ").count(),
            1,
            "{text}"
        );
        for line in [
            "weir_requests_total{endpoint=\"\",method=\"GET\",status=\"404\"} 1",
            "weir_requests_total{endpoint=\"/a\",method=\"GET\",status=\"200\"} 1",
            "weir_requests_total{endpoint=\"/a\",method=\"GET\",status=\"404\"} 1",
            "weir_requests_total{endpoint=\"/a\",method=\"GET\",status=\"500\"} 0",
            "weir_request_duration_seconds_count{endpoint=\"/a\",method=\"GET\"} 2",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn departed_endpoints_leave_the_registry() {
        let m = Arc::new(Metrics::new());
        for (t, meth) in [("/a", "GET"), ("/a", "POST"), ("/b", "GET")] {
            m.endpoint(t, meth).observe(200, 0.1);
            m.backend(t, "http://x").count("ok");
        }
        m.client_evictions("/b").inc();
        // POST /a left, /a still has GET: only the POST series go.
        m.forget_endpoints(&[("/a".into(), "POST".into())], &[]);
        let text = m.render();
        assert!(!text.contains("endpoint=\"/a\",method=\"POST\""), "{text}");
        assert!(text.contains("endpoint=\"/a\",method=\"GET\""), "{text}");
        assert!(
            text.contains("weir_backend_calls_total{backend=\"http://x\",endpoint=\"/a\""),
            "{text}"
        );
        // /b left entirely: every series labelled with it goes.
        m.forget_endpoints(&[("/b".into(), "GET".into())], &["/b".into()]);
        let text = m.render();
        assert!(!text.contains("endpoint=\"/b\""), "{text}");
        assert!(text.contains("endpoint=\"/a\""), "{text}");
        // Only /b had series in the registry's vectors (its client evictions): one walk.
        assert_eq!(m.forget_walks.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn endpoints_that_never_had_a_series_are_forgotten_without_a_walk() {
        let m = Arc::new(Metrics::new());
        // A 404 is kept in the registry's own vector (200 and 500 are not: `series.rs`).
        m.endpoint("/used", "GET").observe(404, 0.1);
        // Compiled (handles made) but never requested: no series, nothing to walk for.
        let _idle = m.endpoint("/idle", "GET");
        m.forget_endpoints(&[("/idle".into(), "GET".into())], &["/idle".into()]);
        assert_eq!(m.forget_walks.load(Ordering::Relaxed), 0);
        assert!(m.render().contains("endpoint=\"/used\""));
        // A departed template is no longer remembered: it costs nothing the next time.
        m.forget_endpoints(&[("/used".into(), "GET".into())], &["/used".into()]);
        assert_eq!(m.forget_walks.load(Ordering::Relaxed), 1);
        assert!(!m.render().contains("endpoint=\"/used\""));
        m.forget_endpoints(&[("/used".into(), "GET".into())], &["/used".into()]);
        assert_eq!(m.forget_walks.load(Ordering::Relaxed), 1);
    }
}
