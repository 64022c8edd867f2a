//! The RouteTable: one immutable snapshot of everything the data plane needs (router,
//! compiled endpoints, clients), built off the request path and published at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::HeaderValue;

use crate::model::{self, BaseUrl, Gateway, NameFilter};

use super::backend::HttpClient;
use super::router::{RouteError, Router};

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
    /// The validated endpoint.
    pub model: model::Endpoint,
    /// Its backends, in configuration order.
    pub backends: Vec<CompiledBackend>,
    /// Precomputed `Cache-Control` value for complete answers.
    pub cache_control: Option<HeaderValue>,
}

/// One configuration, compiled.
pub struct RouteTable {
    /// Increases with every published table.
    pub generation: u64,
    /// The model this table was compiled from (to skip reloads that change nothing).
    pub gateway: Gateway,
    /// Host/path/method lookup.
    pub router: Router<CompiledEndpoint>,
    /// Shared upstream connection pool.
    pub client: HttpClient,
}

impl RouteTable {
    /// Compiles a validated gateway.
    pub fn compile(
        gateway: Gateway,
        generation: u64,
        client: HttpClient,
    ) -> Result<Self, RouteError> {
        let mut router = Router::default();
        for ep in &gateway.endpoints {
            let backends = ep
                .backends
                .iter()
                .map(|b| CompiledBackend {
                    label: format!(
                        "{}{}",
                        b.hosts.first().map(ToString::to_string).unwrap_or_default(),
                        b.url_pattern.as_str()
                    ),
                    headers: match &b.input_headers {
                        Some(second) => ep.input_headers.intersect(second),
                        None => ep.input_headers.clone(),
                    },
                    query: match &b.input_query_strings {
                        Some(second) => ep.input_query_strings.intersect(second),
                        None => ep.input_query_strings.clone(),
                    },
                    next_host: AtomicUsize::new(0),
                    model: b.clone(),
                })
                .collect();
            let secs = ep.cache_ttl.as_secs();
            let compiled = CompiledEndpoint {
                cache_control: (secs > 0).then(|| {
                    HeaderValue::from_str(&format!("public, max-age={secs}"))
                        .expect("digits are a valid header value")
                }),
                backends,
                model: ep.clone(),
            };
            router.insert(
                ep.host.as_deref(),
                ep.method,
                ep.path.as_str(),
                Arc::new(compiled),
            )?;
        }
        Ok(Self {
            generation,
            gateway,
            router,
            client,
        })
    }

    /// Gateway-wide settings of this snapshot.
    pub fn settings(&self) -> &model::Settings {
        &self.gateway.settings
    }
}
