//! The RouteTable: one immutable snapshot of everything the data plane needs (router,
//! compiled endpoints, their limiters and clients), built off the request path and
//! published at once.

use std::sync::Arc;

use weir_model::{self as model, Gateway, RouteKey};

use crate::auth::AuthRegistry;
use crate::plan::cors::CorsPlan;
use crate::plan::{compile_endpoint, CompiledEndpoint};
use crate::router::{BuildError, Routed, Router};
use crate::telemetry::metrics::Metrics;
use crate::FastMap as Map;

/// Why a configuration cannot be compiled into a table.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Two endpoints claim one route.
    #[error("route {key} is claimed twice: by {first} and by {second}")]
    Conflict {
        /// The route (`METHOD host/shape`).
        key: String,
        /// The endpoint that has it (method, path and origin).
        first: String,
        /// The endpoint refused.
        second: String,
        /// Where the refused endpoint came from.
        origin: String,
    },
    /// A path shape the router cannot hold next to the others.
    #[error("route {path} ({origin}) cannot be routed next to the others: {source}")]
    Shape {
        /// The endpoint's path template.
        path: String,
        /// Where it came from.
        origin: String,
        /// The router's explanation.
        #[source]
        source: matchit::InsertError,
    },
    /// A backend setting could not be compiled (TLS files unreadable or mismatched).
    #[error("{origin}: endpoint {path}: {field}: {message}")]
    Backend {
        /// Where the endpoint came from.
        origin: String,
        /// Its path.
        path: String,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Compiling panicked (a bug); the previous table keeps serving.
    #[error("building the route table failed unexpectedly: {0}")]
    Panic(String),
}

impl RouteError {
    /// Where the endpoint that could not be added came from (file and index, or
    /// namespace/name), so a caller can refuse that one and keep the others.
    pub fn origin(&self) -> Option<&str> {
        match self {
            RouteError::Conflict { origin, .. }
            | RouteError::Shape { origin, .. }
            | RouteError::Backend { origin, .. } => Some(origin),
            RouteError::Panic(_) => None,
        }
    }
}

fn model_addr(ep: &Arc<model::Endpoint>) -> usize {
    Arc::as_ptr(ep) as usize
}

impl Routed for CompiledEndpoint {
    fn host(&self) -> Option<&str> {
        self.model.host.as_deref()
    }
    fn method(&self) -> model::Method {
        self.model.method
    }
    fn template(&self) -> &model::PathTemplate {
        &self.model.path
    }
}

fn describe(ep: &model::Endpoint) -> String {
    format!("{} {} ({})", ep.method, ep.path, ep.origin)
}

/// One configuration, compiled.
pub struct RouteTable {
    /// Increases with every published table.
    pub generation: u64,
    settings: model::Settings,
    /// Every endpoint, in configuration order.
    pub endpoints: Vec<Arc<CompiledEndpoint>>,
    /// Host/path/method lookup.
    pub router: Router<CompiledEndpoint>,
    /// Every endpoint by its route: the index in `endpoints`. Indices rather than `Arc`s:
    /// a reload rebuilds these maps, and an `Arc` clone per entry would write to 10,000
    /// cache lines that nothing else touches.
    by_key: Map<Arc<RouteKey>, u32>,
    /// Every endpoint by the address of its shared model (the fast path of a reload).
    by_model: Map<usize, u32>,
    /// How many endpoints of the table this one was compiled against were reused by their
    /// model, and that table's generation: when it is all of them, nothing departed.
    reused: (u64, usize),
    /// Key sets and key files, handed on from table to table.
    auth: Arc<AuthRegistry>,
    /// The CORS policy, compiled (`None`: CORS off).
    cors: Option<CorsPlan>,
}

impl RouteTable {
    /// Compiles a validated gateway. An endpoint equal to one in `previous` (the same shared
    /// model, or an equal one) reuses its compiled form as is; for the others, limiter and
    /// breaker state is carried over wherever the limit settings did not change. A panic
    /// while compiling is caught and reported as an error: whoever publishes (a file
    /// watcher, the controller) keeps running and the previous table keeps serving.
    pub fn compile(
        gateway: &Gateway,
        generation: u64,
        previous: Option<&RouteTable>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, RouteError> {
        let run = std::panic::AssertUnwindSafe(|| {
            Self::compile_inner(gateway, generation, previous, metrics)
        });
        std::panic::catch_unwind(run).unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(RouteError::Panic(text))
        })
    }

    fn compile_inner(
        gateway: &Gateway,
        generation: u64,
        previous: Option<&RouteTable>,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, RouteError> {
        let flavor = gateway.settings.flavor;
        let auth = previous.map_or_else(Arc::default, |p| p.auth.clone());
        let flavor_changed = previous.is_some_and(|p| p.settings.flavor != flavor);
        let mut by_key = Map::with_capacity_and_hasher(gateway.endpoints.len(), Default::default());
        let mut by_model =
            Map::with_capacity_and_hasher(gateway.endpoints.len(), Default::default());
        let mut endpoints: Vec<Arc<CompiledEndpoint>> = Vec::with_capacity(gateway.endpoints.len());
        let mut reused = 0;
        for ep in &gateway.endpoints {
            // The same shared model as in the serving table: reuse it without even computing
            // its route key (the previous table keeps that model alive, so its address
            // cannot have been reused by another one).
            let same = previous.filter(|_| !flavor_changed).and_then(|p| {
                p.by_model
                    .get(&model_addr(ep))
                    .map(|&i| &p.endpoints[i as usize])
            });
            let compiled = match same {
                Some(o) => {
                    reused += 1;
                    o.clone()
                }
                None => {
                    let key = ep.route_key();
                    let old = previous
                        .and_then(|p| p.by_key.get(&key).map(|&i| &p.endpoints[i as usize]));
                    match old {
                        Some(o) if !flavor_changed && o.model == *ep => o.clone(),
                        _ => Arc::new(
                            compile_endpoint(
                                ep.clone(),
                                Arc::new(key),
                                old.map(|o| o.as_ref()),
                                flavor,
                                metrics,
                                &auth,
                            )
                            .map_err(|(field, message)| {
                                RouteError::Backend {
                                    origin: ep.origin.clone(),
                                    path: ep.path.to_string(),
                                    field,
                                    message,
                                }
                            })?,
                        ),
                    }
                }
            };
            // Configurations hold far fewer than 2^32 endpoints (validation caps the file size
            // long before that).
            let index = endpoints.len() as u32;
            by_key.insert(compiled.route.clone(), index);
            by_model.insert(model_addr(ep), index);
            endpoints.push(compiled);
        }
        let router =
            Router::build(&endpoints, previous.map(|p| &p.router)).map_err(|e| match e {
                BuildError::Duplicate(first, second) => RouteError::Conflict {
                    key: second.route.to_string(),
                    first: describe(&first.model),
                    second: describe(&second.model),
                    origin: second.model.origin.clone(),
                },
                BuildError::Shape(ep, source) => RouteError::Shape {
                    path: ep.model.path.to_string(),
                    origin: ep.model.origin.clone(),
                    source,
                },
            })?;
        Ok(Self {
            generation,
            settings: gateway.settings.clone(),
            endpoints,
            router,
            by_key,
            by_model,
            reused: (previous.map_or(0, |p| p.generation), reused),
            auth,
            cors: gateway.settings.cors.as_ref().map(CorsPlan::compile),
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
        for ep in &self.endpoints {
            if let Some((c, _)) = &ep.client_limiter {
                c.forget_idle();
            }
        }
    }

    /// What `previous` served that this table does not, as metric labels: the (template,
    /// method) pairs and the templates no endpoint here has. Cheap when nothing left: an
    /// endpoint still here is found by the address of its model or by its route.
    pub fn departed(&self, previous: &RouteTable) -> (Vec<(String, String)>, Vec<String>) {
        if self.reused == (previous.generation, previous.endpoints.len()) {
            // Compiled against `previous`, and every one of its endpoints reused by model
            // (one model listed twice would be a duplicate route, refused before this).
            return (Vec::new(), Vec::new());
        }
        let gone: Vec<&CompiledEndpoint> = previous
            .endpoints
            .iter()
            .filter(|ep| {
                !self.by_model.contains_key(&model_addr(&ep.model))
                    && !self.by_key.contains_key(ep.route.as_ref())
            })
            .map(|ep| ep.as_ref())
            .collect();
        if gone.is_empty() {
            return (Vec::new(), Vec::new());
        }
        // foldhash rather than SipHash: these sets hold every endpoint of the table, made
        // again for each publish that removes one (4% of the controller's CPU while
        // routes moved at 10,000, by `perf`).
        let mut pairs_here = crate::FastSet::default();
        let mut templates_here = crate::FastSet::default();
        for ep in &self.endpoints {
            pairs_here.insert((ep.model.path.as_str(), ep.model.method.as_str()));
            templates_here.insert(ep.model.path.as_str());
        }
        let mut pairs = Vec::new();
        let mut templates = Vec::new();
        for ep in gone {
            let (t, m) = (ep.model.path.as_str(), ep.model.method.as_str());
            if !pairs_here.contains(&(t, m)) {
                pairs.push((t.to_string(), m.to_string()));
            }
            // Inserting marks it reported too: each departed template is listed once.
            if templates_here.insert(t) {
                templates.push(t.to_string());
            }
        }
        (pairs, templates)
    }

    /// The compiled CORS policy, when CORS is on.
    pub fn cors(&self) -> Option<&CorsPlan> {
        self.cors.as_ref()
    }

    /// Gateway-wide settings of this snapshot.
    pub fn settings(&self) -> &model::Settings {
        &self.settings
    }
}

/// Checks that `gateway` compiles into a table (routes the router can hold together),
/// without serving it: what `weir check` adds to validation.
pub fn check(gateway: &Gateway) -> Result<(), RouteError> {
    RouteTable::compile(gateway, 0, None, &Arc::new(Metrics::new())).map(|_| ())
}
