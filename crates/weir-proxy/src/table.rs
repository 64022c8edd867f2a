//! The RouteTable: one immutable snapshot of everything the data plane needs (router,
//! compiled endpoints, clients), built off the request path and published at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::HeaderValue;

use weir_model::{self as model, BaseUrl, Gateway, NameFilter};

use super::qos::{CircuitBreaker, ClientLimiter, Limiter};
use super::router::{RouteError, Router};
use crate::telemetry::metrics::{BackendMetrics, EndpointMetrics, Metrics};

/// A backend ready to be called.
pub struct CompiledBackend {
    /// The validated backend.
    pub model: model::Backend,
    /// `host + urlPattern` of the first host, for logs.
    pub label: String,
    /// Effective header filter: the endpoint's, filtered again by the backend's.
    pub headers: NameFilter,
    /// Effective query filter: the endpoint's, filtered again by the backend's.
    pub query: NameFilter,
    /// Backend rate limit.
    pub limiter: Option<Arc<Limiter>>,
    /// Circuit breaker.
    pub breaker: Option<Arc<CircuitBreaker>>,
    /// Metric handles.
    pub metrics: BackendMetrics,
    next_host: AtomicUsize,
}

impl CompiledBackend {
    /// Picks the next host, round-robin.
    pub fn pick_host(&self) -> &BaseUrl {
        let hosts = &self.model.hosts;
        if hosts.len() == 1 {
            return &hosts[0];
        }
        let i = self.next_host.fetch_add(1, Ordering::Relaxed);
        &hosts[i % hosts.len()]
    }
}

/// An endpoint ready to serve.
pub struct CompiledEndpoint {
    /// The validated endpoint (shared with the model it came from).
    pub model: Arc<model::Endpoint>,
    /// Its backends, in configuration order.
    pub backends: Vec<CompiledBackend>,
    /// Precomputed `Cache-Control` value for complete answers.
    pub cache_control: Option<HeaderValue>,
    /// Endpoint `maxRate`.
    pub limiter: Option<Arc<Limiter>>,
    /// `clientMaxRate`.
    pub client_limiter: Option<Arc<ClientLimiter>>,
    /// Metric handles.
    pub metrics: EndpointMetrics,
}

/// One configuration, compiled.
pub struct RouteTable {
    /// Increases with every published table.
    pub generation: u64,
    /// Gateway-wide settings.
    settings: model::Settings,
    /// Every endpoint, in configuration order (each owns its model: no second copy).
    pub endpoints: Vec<Arc<CompiledEndpoint>>,
    /// Host/path/method lookup.
    pub router: Router<CompiledEndpoint>,
    /// Every endpoint by [`model::Endpoint::route_key`].
    pub by_key: HashMap<model::RouteKey, Arc<CompiledEndpoint>>,
}

impl RouteTable {
    /// Compiles a validated gateway. An endpoint that is the same as one in `previous`
    /// (the same shared model, or an equal one) reuses its compiled form as is; for the
    /// others, limiter and breaker state is carried over wherever the limit settings did
    /// not change.
    pub fn compile(
        gateway: &Gateway,
        generation: u64,
        previous: Option<&RouteTable>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, RouteError> {
        let mut router = Router::default();
        let mut by_key = HashMap::with_capacity(gateway.endpoints.len());
        let mut endpoints = Vec::with_capacity(gateway.endpoints.len());
        for ep in &gateway.endpoints {
            let key = ep.route_key();
            let old = previous.and_then(|p| p.by_key.get(&key));
            let compiled = match old {
                Some(o) if Arc::ptr_eq(&o.model, ep) || o.model == *ep => o.clone(),
                _ => Arc::new(compile_endpoint(
                    ep.clone(),
                    old.map(|o| o.as_ref()),
                    metrics,
                )),
            };
            let m = &compiled.model;
            router.insert(
                m.host.as_deref(),
                m.method,
                m.path.as_str(),
                compiled.clone(),
            )?;
            by_key.insert(key, compiled.clone());
            endpoints.push(compiled);
        }
        Ok(Self {
            generation,
            settings: gateway.settings.clone(),
            endpoints,
            router,
            by_key,
        })
    }

    /// Whether `gateway` would compile to this very table (a reload to skip).
    pub fn same_model(&self, gateway: &Gateway) -> bool {
        self.settings == gateway.settings
            && self.endpoints.len() == gateway.endpoints.len()
            && self
                .endpoints
                .iter()
                .zip(&gateway.endpoints)
                .all(|(compiled, model)| {
                    Arc::ptr_eq(&compiled.model, model) || compiled.model == *model
                })
    }

    /// Drops per-client limiter state of clients that have been idle long enough for
    /// their bucket to refill. Run periodically.
    pub fn forget_idle_clients(&self) {
        for ep in self.by_key.values() {
            if let Some(c) = &ep.client_limiter {
                c.forget_idle();
            }
        }
    }

    /// Gateway-wide settings of this snapshot.
    pub fn settings(&self) -> &model::Settings {
        &self.settings
    }
}

fn compile_endpoint(
    model: Arc<model::Endpoint>,
    old: Option<&CompiledEndpoint>,
    metrics: &Arc<Metrics>,
) -> CompiledEndpoint {
    let ep = &model;
    let template = ep.path.as_str();
    let backends = ep
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let label = format!(
                "{}{}",
                b.hosts.first().map(ToString::to_string).unwrap_or_default(),
                b.url_pattern.as_str()
            );
            // The same backend (same place in the list, same address and pattern) keeps
            // its limiter and breaker when their settings did not change.
            let same = old
                .and_then(|o| o.backends.get(i))
                .filter(|o| o.model.hosts == b.hosts && o.model.url_pattern == b.url_pattern);
            let limiter = b.rate_limit.map(|rate| {
                same.and_then(|o| o.limiter.clone())
                    .filter(|l| l.rate == rate)
                    .unwrap_or_else(|| Arc::new(Limiter::new(rate)))
            });
            let backend_metrics = metrics.backend(template, &label);
            let breaker = b.circuit_breaker.map(|cb| {
                same.and_then(|o| o.breaker.clone())
                    .filter(|old| old.config == cb)
                    .unwrap_or_else(|| {
                        let gauge = metrics.breaker_gauge(template, &label);
                        Arc::new(CircuitBreaker::new(cb, label.clone(), Some(gauge)))
                    })
            });
            CompiledBackend {
                headers: match &b.input_headers {
                    Some(second) => ep.input_headers.intersect(second),
                    None => ep.input_headers.clone(),
                },
                query: match &b.input_query_strings {
                    Some(second) => ep.input_query_strings.intersect(second),
                    None => ep.input_query_strings.clone(),
                },
                limiter,
                breaker,
                metrics: backend_metrics,
                label,
                next_host: AtomicUsize::new(0),
                model: b.clone(),
            }
        })
        .collect();
    let limiter = ep.rate_limit.endpoint.map(|rate| {
        old.and_then(|o| o.limiter.clone())
            .filter(|l| l.rate == rate)
            .unwrap_or_else(|| Arc::new(Limiter::new(rate)))
    });
    let client_limiter = ep.rate_limit.client.as_ref().map(|(rate, key)| {
        old.and_then(|o| o.client_limiter.clone())
            .filter(|l| l.rate == *rate && l.key == *key)
            .unwrap_or_else(|| Arc::new(ClientLimiter::new(*rate, key.clone())))
    });
    let secs = ep.cache_ttl.as_secs();
    CompiledEndpoint {
        cache_control: (secs > 0).then(|| {
            HeaderValue::from_str(&format!("public, max-age={secs}"))
                .expect("digits are a valid header value")
        }),
        backends,
        limiter,
        client_limiter,
        metrics: metrics.endpoint(template, ep.method.as_str()),
        model,
    }
}
