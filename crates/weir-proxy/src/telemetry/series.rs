//! The per-endpoint series, kept as plain atomics rather than as the `prometheus` crate's
//! children.
//!
//! Every child the crate makes carries its own copy of its family's descriptor (name, help
//! text, label names) and its label pairs as protobuf messages: about 11 KB for the 18
//! series a served one-backend endpoint has, which at 10,000 served endpoints is more than
//! the rest of the gateway. Here one endpoint's series are a few atomics (well under 1 KB
//! with the map entry, see `tests/alloc_budget.rs`) in a map keyed by the endpoint's
//! template; the protobuf is built only when `/__stats` is scraped.
//!
//! [`Series`] is a collector without descriptors (an "unchecked" collector, in the Go
//! client's words). The registry merges families by name, so `weir_requests_total` is
//! this collector's 200 and 500 series plus the `prometheus` vector that keeps the rare
//! ones (other statuses, unmatched and reserved paths).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The backend-call outcomes, in a fixed order (the `outcome` label values).
pub const OUTCOMES: [&str; 8] = [
    "ok",
    "failed_status",
    "timeout",
    "decode_error",
    "connection_error",
    "body_error",
    "rate_limited",
    "breaker_open",
];

/// The rate-limit scopes, in [`TemplateSeries::rejected`]'s order (the `scope` values).
pub const SCOPES: [&str; 3] = ["endpoint", "client", "backend"];

/// A family's name and help text (shared with the `prometheus` vector of the same name).
pub type Family = (&'static str, &'static str);

/// `weir_requests_total{endpoint, method, status}`.
pub const REQUESTS: Family = (
    "weir_requests_total",
    "Requests answered, by endpoint template, method and status.",
);
/// `weir_request_duration_seconds{endpoint, method}`.
pub const REQUEST_DURATION: Family = ("weir_request_duration_seconds", "Time to answer a request.");
/// `weir_rate_limit_rejections_total{endpoint, scope}`.
pub const REJECTIONS: Family = (
    "weir_rate_limit_rejections_total",
    "Requests or backend calls refused by a rate limit, by endpoint and scope (endpoint, client, backend).",
);
/// `weir_partial_responses_total{endpoint}`.
pub const PARTIAL: Family = (
    "weir_partial_responses_total",
    "Answers built from some backends while others failed (200, X-Weir-Completed: false), by endpoint.",
);
/// `weir_request_bytes_total{endpoint}`.
pub const REQUEST_BYTES: Family = (
    "weir_request_bytes_total",
    "Request body bytes received from clients, by endpoint.",
);
/// `weir_response_bytes_total{endpoint}`.
pub const RESPONSE_BYTES: Family = (
    "weir_response_bytes_total",
    "Response body bytes sent to clients, by endpoint (streamed bodies as they go).",
);
/// `weir_backend_calls_total{endpoint, backend, outcome}`.
pub const BACKEND_CALLS: Family = (
    "weir_backend_calls_total",
    "Backend calls by endpoint, backend and outcome.",
);
/// `weir_backend_duration_seconds{endpoint, backend}`.
pub const BACKEND_DURATION: Family = (
    "weir_backend_duration_seconds",
    "Duration of completed backend calls.",
);

/// A counter that can be handed on (to a response body that counts its bytes).
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A latency histogram over [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative), the last one above every bound.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        // Never fails: the closure always returns a value.
        let _ = self.sum.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + v).to_bits())
        });
    }

    fn proto(&self) -> proto::Histogram {
        let mut h = proto::Histogram::default();
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (count, bound) in self.counts.iter().zip(LATENCY_BUCKETS) {
            cumulative += count.load(Relaxed);
            let mut b = proto::Bucket::default();
            b.set_cumulative_count(cumulative);
            b.set_upper_bound(*bound);
            buckets.push(b);
        }
        // The count is the buckets' sum, so that it always equals the `+Inf` bucket even
        // while requests are being counted.
        cumulative += self.counts[LATENCY_BUCKETS.len()].load(Relaxed);
        h.set_bucket(buckets);
        h.set_sample_count(cumulative);
        h.set_sample_sum(f64::from_bits(self.sum.load(Relaxed)));
        h
    }
}

/// The series of one endpoint template and method.
#[derive(Debug, Default)]
pub struct MethodSeries {
    /// `weir_requests_total{status="200"}`.
    pub ok: AtomicU64,
    /// `weir_requests_total{status="500"}`.
    pub server_error: AtomicU64,
    /// `weir_request_duration_seconds`.
    pub duration: Histogram,
}

/// The series of one endpoint template (shared by its methods).
#[derive(Debug, Default)]
pub struct TemplateSeries {
    /// `weir_rate_limit_rejections_total`, by [`SCOPES`].
    pub rejected: [AtomicU64; SCOPES.len()],
    /// `weir_partial_responses_total`.
    pub partial: AtomicU64,
    /// `weir_request_bytes_total`.
    pub request_bytes: Counter,
    /// `weir_response_bytes_total`.
    pub response_bytes: Counter,
}

/// The series of one backend of an endpoint template.
#[derive(Debug, Default)]
pub struct BackendSeries {
    /// `weir_backend_calls_total`, by [`OUTCOMES`].
    pub calls: [AtomicU64; OUTCOMES.len()],
    /// `weir_backend_duration_seconds`.
    pub duration: Histogram,
}

/// Everything one template has: made when one of its endpoints first serves.
#[derive(Debug, Default)]
struct Entry {
    template: Option<Arc<TemplateSeries>>,
    methods: Vec<(&'static str, Arc<MethodSeries>)>,
    backends: Vec<(Arc<str>, Arc<BackendSeries>)>,
}

/// The per-endpoint series of the process, by template (clones share them: one is the
/// registry's collector, one is where the handles are made).
#[derive(Debug, Default, Clone)]
pub struct Series {
    entries: Arc<Mutex<HashMap<Arc<str>, Entry>>>,
}

impl Series {
    fn with_entry<T>(&self, template: &Arc<str>, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = match entries.get_mut(&**template) {
            Some(e) => e,
            None => entries.entry(template.clone()).or_default(),
        };
        f(entry)
    }

    /// The series of `template` and `method`, made if new (once per endpoint, never per
    /// request: the handles keep them).
    pub fn method(&self, template: &Arc<str>, method: &'static str) -> Arc<MethodSeries> {
        self.with_entry(template, |e| find_or_add(&mut e.methods, method))
    }

    /// The series of `template`, made if new.
    pub fn template(&self, template: &Arc<str>) -> Arc<TemplateSeries> {
        self.with_entry(template, |e| e.template.get_or_insert_default().clone())
    }

    /// The series of `backend` of `template`, made if new.
    pub fn backend(&self, template: &Arc<str>, backend: &Arc<str>) -> Arc<BackendSeries> {
        self.with_entry(template, |e| find_or_add(&mut e.backends, backend.clone()))
    }

    /// Drops the series of the (template, method) `pairs` and of the `templates` no
    /// endpoint has any more.
    pub fn forget(&self, pairs: &[(String, String)], templates: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (template, method) in pairs {
            if let Some(e) = entries.get_mut(template.as_str()) {
                e.methods.retain(|(m, _)| m != method);
            }
        }
        for template in templates {
            entries.remove(template.as_str());
        }
    }
}

/// The series of `key` in a template's short list, added if new.
fn find_or_add<K: PartialEq, S: Default>(list: &mut Vec<(K, Arc<S>)>, key: K) -> Arc<S> {
    if let Some((_, s)) = list.iter().find(|(k, _)| *k == key) {
        return s.clone();
    }
    let s = Arc::<S>::default();
    // Most templates have one method and one backend: room for one more, not four.
    list.reserve_exact(1);
    list.push((key, s.clone()));
    s
}

fn family((name, help): Family, kind: MetricType) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f
}

/// Label pairs, given in the order of their names (as the crate's own children have them).
fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut l = proto::LabelPair::default();
            l.set_name(name.to_string());
            l.set_value(value.to_string());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], value: u64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(value as f64);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn histogram(pairs: &[(&str, &str)], h: &Histogram) -> proto::Metric {
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_histogram(h.proto());
    m
}

impl Collector for Series {
    /// None: see the module's documentation.
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut requests = family(REQUESTS, MetricType::COUNTER);
        let mut duration = family(REQUEST_DURATION, MetricType::HISTOGRAM);
        let mut rejections = family(REJECTIONS, MetricType::COUNTER);
        let mut partial = family(PARTIAL, MetricType::COUNTER);
        let mut request_bytes = family(REQUEST_BYTES, MetricType::COUNTER);
        let mut response_bytes = family(RESPONSE_BYTES, MetricType::COUNTER);
        let mut calls = family(BACKEND_CALLS, MetricType::COUNTER);
        let mut backend_duration = family(BACKEND_DURATION, MetricType::HISTOGRAM);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (t, e) in entries.iter() {
            let t = &**t;
            for (m, s) in &e.methods {
                for (status, n) in [("200", &s.ok), ("500", &s.server_error)] {
                    let pairs = [("endpoint", t), ("method", m), ("status", status)];
                    requests.mut_metric().push(counter(&pairs, n.load(Relaxed)));
                }
                let pairs = [("endpoint", t), ("method", m)];
                duration.mut_metric().push(histogram(&pairs, &s.duration));
            }
            if let Some(s) = &e.template {
                for (scope, n) in SCOPES.iter().zip(&s.rejected) {
                    let pairs = [("endpoint", t), ("scope", scope)];
                    rejections
                        .mut_metric()
                        .push(counter(&pairs, n.load(Relaxed)));
                }
                let pairs = [("endpoint", t)];
                partial
                    .mut_metric()
                    .push(counter(&pairs, s.partial.load(Relaxed)));
                request_bytes
                    .mut_metric()
                    .push(counter(&pairs, s.request_bytes.get()));
                response_bytes
                    .mut_metric()
                    .push(counter(&pairs, s.response_bytes.get()));
            }
            for (b, s) in &e.backends {
                for (outcome, n) in OUTCOMES.iter().zip(&s.calls) {
                    let pairs = [("backend", &**b), ("endpoint", t), ("outcome", outcome)];
                    calls.mut_metric().push(counter(&pairs, n.load(Relaxed)));
                }
                let pairs = [("backend", &**b), ("endpoint", t)];
                backend_duration
                    .mut_metric()
                    .push(histogram(&pairs, &s.duration));
            }
        }
        vec![
            requests,
            duration,
            rejections,
            partial,
            request_bytes,
            response_bytes,
            calls,
            backend_duration,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    fn text(registry: &Registry) -> String {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// The same observations through these series and through the `prometheus` crate's
    /// own vectors give the same exposition, byte for byte.
    #[test]
    fn the_exposition_is_the_crates_own() {
        let ours = Registry::new();
        let series = Series::default();
        ours.register(Box::new(series.clone())).unwrap();

        let theirs = Registry::new();
        let counter = |(name, help): Family, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name, help), labels).unwrap();
            theirs.register(Box::new(v.clone())).unwrap();
            v
        };
        let histogram = |(name, help): Family, labels: &[&str]| {
            let v = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .unwrap();
            theirs.register(Box::new(v.clone())).unwrap();
            v
        };
        let requests = counter(REQUESTS, &["endpoint", "method", "status"]);
        let duration = histogram(REQUEST_DURATION, &["endpoint", "method"]);
        let rejections = counter(REJECTIONS, &["endpoint", "scope"]);
        let partial = counter(PARTIAL, &["endpoint"]);
        let request_bytes = counter(REQUEST_BYTES, &["endpoint"]);
        let response_bytes = counter(RESPONSE_BYTES, &["endpoint"]);
        let calls = counter(BACKEND_CALLS, &["endpoint", "backend", "outcome"]);
        let backend_duration = histogram(BACKEND_DURATION, &["endpoint", "backend"]);

        let observations = [0.0001, 0.0005, 0.003, 0.2, 7.5, 11.0, 0.0005];
        for (t, m, b) in [
            ("/a/{id}", "GET", "http://x:1"),
            ("/a/{id}", "POST", "http://x:1"),
            ("/b", "GET", "https://y"),
        ] {
            let template: Arc<str> = t.into();
            let backend: Arc<str> = b.into();
            let (ms, ts) = (series.method(&template, m), series.template(&template));
            let bs = series.backend(&template, &backend);
            for (i, v) in observations.iter().enumerate() {
                let status = if i % 3 == 0 { "500" } else { "200" };
                let (cell, n) = if i % 3 == 0 {
                    (&ms.server_error, 1)
                } else {
                    (&ms.ok, 1)
                };
                cell.fetch_add(n, Relaxed);
                requests.with_label_values(&[t, m, status]).inc();
                ms.duration.observe(*v);
                duration.with_label_values(&[t, m]).observe(*v);
                bs.calls[i % OUTCOMES.len()].fetch_add(1, Relaxed);
                calls
                    .with_label_values(&[t, b, OUTCOMES[i % OUTCOMES.len()]])
                    .inc();
                bs.duration.observe(v * 2.0);
                backend_duration.with_label_values(&[t, b]).observe(v * 2.0);
            }
            ts.rejected[1].fetch_add(2, Relaxed);
            ts.partial.fetch_add(1, Relaxed);
            ts.request_bytes.inc_by(10);
            ts.response_bytes.inc_by(1234);
            // The template's series once, whichever method made them first.
            if m == "GET" {
                for (i, scope) in SCOPES.iter().enumerate() {
                    rejections
                        .with_label_values(&[t, scope])
                        .inc_by(if i == 1 { 2 } else { 0 });
                }
                partial.with_label_values(&[t]).inc();
                request_bytes.with_label_values(&[t]).inc_by(10);
                response_bytes.with_label_values(&[t]).inc_by(1234);
                // Every outcome shows, also those never counted.
                for o in OUTCOMES {
                    calls.with_label_values(&[t, b, o]);
                }
            } else {
                rejections.with_label_values(&[t, SCOPES[1]]).inc_by(2);
                partial.with_label_values(&[t]).inc();
                request_bytes.with_label_values(&[t]).inc_by(10);
                response_bytes.with_label_values(&[t]).inc_by(1234);
            }
        }
        let (ours, theirs) = (text(&ours), text(&theirs));
        assert!(
            ours.contains("weir_backend_duration_seconds_bucket"),
            "{ours}"
        );
        assert_eq!(ours, theirs);
    }

    #[test]
    fn forgetting_drops_a_method_or_a_whole_template() {
        let registry = Registry::new();
        let series = Series::default();
        registry.register(Box::new(series.clone())).unwrap();
        let (a, b): (Arc<str>, Arc<str>) = ("/a".into(), "/b".into());
        series.method(&a, "GET").ok.fetch_add(1, Relaxed);
        series.method(&a, "POST").ok.fetch_add(1, Relaxed);
        series.template(&a);
        series.backend(&b, &"http://x".into()).calls[0].fetch_add(1, Relaxed);
        series.forget(&[("/a".into(), "POST".into())], &["/b".into()]);
        let out = text(&registry);
        assert!(out.contains(r#"endpoint="/a",method="GET""#), "{out}");
        assert!(!out.contains(r#"method="POST""#), "{out}");
        assert!(
            out.contains(r#"weir_partial_responses_total{endpoint="/a"} 0"#),
            "{out}"
        );
        assert!(!out.contains(r#"endpoint="/b""#), "{out}");
        // What is made again starts from zero.
        assert_eq!(series.method(&a, "POST").ok.load(Relaxed), 0);
        assert_eq!(series.method(&a, "GET").ok.load(Relaxed), 1);
    }
}
