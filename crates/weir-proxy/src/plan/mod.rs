//! The compiled request plan: everything derivable from configuration, turned into typed
//! values when a table is built, so that a request only walks it. URL templates become
//! parts with indices ([`url`]), whitelists become sets of `HeaderName`s ([`filter`]), the
//! client key knows its header or parameter index ([`client_key`]), transforms have their
//! paths split and allow trees built ([`crate::transform::TransformPlan`]), metric handles
//! are resolved per endpoint and backend, static data is shared.

pub mod client_key;
pub mod cors;
pub mod filter;
pub mod url;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use weir_model::{self as model, StaticStrategy};

use crate::auth::signer::SignerPlan;
use crate::auth::{AuthPlan, AuthRegistry, ClaimRef};
use crate::qos::{CircuitBreaker, ClientLimiter, Limiter};
use crate::telemetry::metrics::{BackendMetrics, EndpointMetrics, Metrics};
use crate::transform::TransformPlan;
use crate::upstream::Profile;
use client_key::ClientKeyPlan;
use filter::{HeaderFilter, QueryFilter};
use url::{HostPlan, UrlPlan};

/// A backend ready to be called.
pub struct CompiledBackend {
    /// The endpoint's model, shared (a copy of the backend's part per compiled backend
    /// would double what a large table keeps); [`CompiledBackend::model`] reads it.
    endpoint: Arc<model::Endpoint>,
    /// Its place in `endpoint.backends`.
    index: usize,
    /// `host + urlPattern` of the first host, for logs, metric labels and spans (shared:
    /// a traced call's span keeps it until export).
    pub label: Arc<str>,
    /// The compiled `urlPattern`.
    pub url: UrlPlan,
    /// Upstream method; `None` = the client's (`method: ANY` endpoints).
    pub method: Option<http::Method>,
    /// Effective header whitelist (endpoint's, filtered again by the backend's).
    pub headers: HeaderFilter,
    /// Effective query whitelist.
    pub query: QueryFilter,
    /// Whether the client's own `Accept-Encoding` reaches this backend.
    pub forwards_accept_encoding: bool,
    /// Transforms in order.
    pub transform: TransformPlan,
    /// Backend rate limit.
    pub limiter: Option<Arc<Limiter>>,
    /// Circuit breaker.
    pub breaker: Option<Arc<CircuitBreaker>>,
    /// Metric handles.
    pub metrics: BackendMetrics,
    /// Its own connection settings (TLS, HTTP/2), or `None` for the default client.
    pub profile: Option<Arc<Profile>>,
    hosts: Vec<HostPlan>,
    next_host: AtomicUsize,
}

impl CompiledBackend {
    /// The validated backend this was compiled from.
    pub fn model(&self) -> &model::Backend {
        &self.endpoint.backends[self.index]
    }

    /// The endpoint's shared model.
    pub fn endpoint(&self) -> &Arc<model::Endpoint> {
        &self.endpoint
    }

    /// Its place in the endpoint's `backends`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Picks the next host, round-robin.
    pub fn pick_host(&self) -> &HostPlan {
        let hosts = &self.hosts;
        if hosts.len() == 1 {
            return &hosts[0];
        }
        let i = self.next_host.fetch_add(1, Ordering::Relaxed);
        &hosts[i % hosts.len()]
    }
}

/// Static data and when it is merged.
pub struct StaticPlan {
    /// When.
    pub strategy: StaticStrategy,
    /// What (shared, never deep-cloned per request).
    pub data: Arc<Map<String, Value>>,
}

impl StaticPlan {
    /// Whether the data is merged into an answer that is `completed` or not.
    pub fn applies(&self, completed: bool) -> bool {
        match self.strategy {
            StaticStrategy::Always => true,
            StaticStrategy::Success | StaticStrategy::Complete => completed,
            StaticStrategy::Errored | StaticStrategy::Incomplete => !completed,
        }
    }
}

/// An endpoint ready to serve.
pub struct CompiledEndpoint {
    /// The validated endpoint (shared with the model it came from).
    pub model: Arc<model::Endpoint>,
    /// Its route, computed once.
    pub route: Arc<model::RouteKey>,
    /// Its backends, in configuration order.
    pub backends: Vec<CompiledBackend>,
    /// Precomputed `Cache-Control` value for complete answers.
    pub cache_control: Option<HeaderValue>,
    /// Endpoint `maxRate`.
    pub limiter: Option<Arc<Limiter>>,
    /// `clientMaxRate` and how the client is told apart.
    pub client_limiter: Option<(Arc<ClientLimiter>, ClientKeyPlan)>,
    /// Endpoint parameters placed into some backend's path: checked for traversal.
    pub path_params: Vec<usize>,
    /// Whether those parameters may hold `/`.
    pub allow_encoded_slashes: bool,
    /// Static data merged by strategy.
    pub static_data: Option<StaticPlan>,
    /// `X-Weir-Completed` or `X-KrakenD-Completed`.
    pub completed_header: HeaderName,
    /// Authentication, checked before the rate limits.
    pub auth: Option<Arc<AuthPlan>>,
    /// Fields of the answer signed as JWTs (boxed: few endpoints sign, and the plan
    /// inline would cost every endpoint ~100 bytes).
    pub signer: Option<Box<SignerPlan>>,
    /// Metric handles.
    pub metrics: EndpointMetrics,
}

/// Compiles one endpoint. `old` is the endpoint of the same route in the previous table:
/// limiter and breaker state carry over wherever their settings did not change. Key sets
/// and key files come from `auth` (shared, surviving reloads). Fails when a backend's TLS
/// files cannot be used (field and reason).
pub fn compile_endpoint(
    model: Arc<model::Endpoint>,
    route: Arc<model::RouteKey>,
    old: Option<&CompiledEndpoint>,
    flavor: model::Flavor,
    metrics: &Arc<Metrics>,
    auth: &AuthRegistry,
) -> Result<CompiledEndpoint, (String, String)> {
    let ep = &model;
    let template = ep.path.as_str();
    // Collected into a Vec of exactly the backends' count: `collect` over a fallible
    // iterator does not know the length and starts at 4 slots, and a CompiledBackend is
    // ~1 KB, so most endpoints (one backend) would carry 3 KB of empty slots (30 MB at
    // 10,000 endpoints).
    let mut backends: Vec<CompiledBackend> = Vec::with_capacity(ep.backends.len());
    let compiled = ep
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| -> Result<CompiledBackend, (String, String)> {
            let profile = Profile::compile(b)
                .map_err(|e| (format!("backends[{i}].tls"), e.to_string()))?;
            if b.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
                tracing::warn!(
                    endpoint = %ep.path,
                    backend = i,
                    "insecureSkipVerify is on: this backend's certificate is not verified, so anyone on the network path can impersonate it"
                );
            }
            let label: Arc<str> = format!(
                "{}{}",
                b.hosts.first().map(ToString::to_string).unwrap_or_default(),
                b.url_pattern.as_str()
            )
            .into();
            // The same backend (same place in the list, same address and pattern) keeps
            // its limiter and breaker when their settings did not change.
            let same = old
                .and_then(|o| o.backends.get(i))
                .filter(|o| o.model().hosts == b.hosts && o.model().url_pattern == b.url_pattern);
            let limiter = b.rate_limit.map(|rate| {
                same.and_then(|o| o.limiter.clone())
                    .filter(|l| l.rate == rate)
                    .unwrap_or_else(|| Arc::new(Limiter::new(rate)))
            });
            let breaker = b.circuit_breaker.map(|cb| {
                same.and_then(|o| o.breaker.clone())
                    .filter(|old| old.config == cb)
                    .unwrap_or_else(|| {
                        let gauge = metrics.breaker_gauge(template, &label);
                        Arc::new(CircuitBreaker::new(cb, label.clone(), Some(gauge)))
                    })
            });
            let headers = HeaderFilter::compile(&ep.input_headers, b.input_headers.as_ref());
            let hosts = b
                .hosts
                .iter()
                .map(|h| {
                    HostPlan::compile(h).ok_or_else(|| {
                        (format!("backends[{i}].hosts"), format!("invalid host {h}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if hosts.is_empty() {
                return Err((format!("backends[{i}].hosts"), "no host".into()));
            }
            Ok(CompiledBackend {
                hosts,
                url: UrlPlan::compile(&b.url_pattern, &ep.path),
                method: b.method.to_http(),
                forwards_accept_encoding: headers.allows(&http::header::ACCEPT_ENCODING),
                headers,
                query: QueryFilter::compile(
                    &ep.input_query_strings,
                    b.input_query_strings.as_ref(),
                ),
                transform: TransformPlan::compile(b),
                limiter,
                breaker,
                metrics: metrics.backend(template, &label),
                label,
                profile,
                next_host: AtomicUsize::new(0),
                endpoint: model.clone(),
                index: i,
            })
        });
    for b in compiled {
        backends.push(b?);
    }
    let limiter = ep.rate_limit.endpoint.map(|rate| {
        old.and_then(|o| o.limiter.clone())
            .filter(|l| l.rate == rate)
            .unwrap_or_else(|| Arc::new(Limiter::new(rate)))
    });
    let client_limiter = ep.rate_limit.client.as_ref().and_then(|(rate, key)| {
        let plan = ClientKeyPlan::compile(key, &ep.path)?;
        let limiter = old
            .and_then(|o| o.client_limiter.as_ref())
            .map(|(l, _)| l.clone())
            .filter(|l| l.rate == *rate && l.key == *key)
            .unwrap_or_else(|| {
                Arc::new(ClientLimiter::bounded(
                    *rate,
                    key.clone(),
                    crate::qos::DEFAULT_MAX_CLIENTS,
                    Some(metrics.client_evictions(template)),
                ))
            });
        Some((limiter, plan))
    });
    let mut path_params: Vec<usize> = backends
        .iter()
        .flat_map(|b| b.url.path_params().iter().copied())
        .collect();
    path_params.sort_unstable();
    path_params.dedup();
    let mut claim_refs: Vec<ClaimRef> = Vec::new();
    for b in &backends {
        for (path, in_path) in b.url.claims() {
            let r = ClaimRef {
                path: path.clone(),
                in_path,
            };
            if !claim_refs.contains(&r) {
                claim_refs.push(r);
            }
        }
    }
    let signer = ep
        .token_signer
        .as_ref()
        .map(|t| SignerPlan::compile(t, auth).map(Box::new))
        .transpose()?;
    let auth = ep
        .auth
        .as_ref()
        .map(|a| Arc::new(AuthPlan::compile(a, auth, claim_refs)));
    let secs = ep.cache_ttl.as_secs();
    Ok(CompiledEndpoint {
        route,
        auth,
        signer,
        cache_control: (secs > 0)
            .then(|| HeaderValue::from_str(&format!("public, max-age={secs}")).ok())
            .flatten(),
        backends,
        limiter,
        client_limiter,
        path_params,
        allow_encoded_slashes: ep.allow_encoded_slashes,
        static_data: ep.static_response.as_ref().map(|s| StaticPlan {
            strategy: s.strategy,
            data: Arc::new(s.data.clone()),
        }),
        completed_header: HeaderName::from_static(flavor.completed_header()),
        metrics: metrics.endpoint(template, ep.method.as_str()),
        model,
    })
}
