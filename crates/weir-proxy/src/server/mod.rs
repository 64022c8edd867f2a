//! Listeners and the snapshot hand-off. A request loads the current [`RouteTable`] once and
//! finishes on it; [`Shared::publish`] swaps in a new one atomically.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::admin;
use crate::telemetry::access_log;
use crate::telemetry::metrics::{self, Metrics};
use weir_model::{self as model, Gateway};

use crate::upstream::{self, HttpClient};
pub mod cors;
use crate::router::{Lookup, RouteError};
use crate::table::RouteTable;
use crate::{full, pipeline, Body};

/// State shared by every listener: the current table and process-wide flags.
pub struct Shared {
    table: ArcSwap<RouteTable>,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    draining: AtomicBool,
}

/// What [`Shared::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A new table with this generation is serving.
    Swapped(u64),
    /// The model equals the one serving; nothing was swapped.
    Unchanged,
}

impl Shared {
    /// Compiles `gateway` into the first table. `ready` marks readiness at once (local mode);
    /// the controller starts unready until its first full list.
    pub fn new(gateway: Gateway, ready: bool) -> Result<Arc<Self>, RouteError> {
        Self::with_metrics(gateway, ready, Arc::new(Metrics::new()))
    }

    /// Like [`Shared::new`], recording into the process's `metrics`.
    pub fn with_metrics(
        gateway: Gateway,
        ready: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, RouteError> {
        let table = RouteTable::compile(&gateway, 1, None, &metrics)?;
        metrics.generation.set(1);
        metrics.endpoints.set(table.endpoints.len() as i64);
        Ok(Arc::new(Self {
            table: ArcSwap::from_pointee(table),
            metrics,
            ready: AtomicBool::new(ready),
            draining: AtomicBool::new(false),
        }))
    }

    /// The current snapshot.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Compiles and swaps in `gateway` unless it equals the serving model. Compilation
    /// happens on the caller's thread, off the request path; an error leaves the old table.
    pub fn publish(&self, gateway: Gateway) -> Result<Published, RouteError> {
        self.publish_ref(&gateway)
    }

    /// Like [`Shared::publish`] for a caller that keeps its model: endpoints equal to the
    /// serving ones are reused as compiled, only the changed ones are copied and compiled.
    pub fn publish_ref(&self, gateway: &Gateway) -> Result<Published, RouteError> {
        let current = self.table.load();
        if current.same_model(gateway) {
            self.metrics.count_reload("unchanged");
            return Ok(Published::Unchanged);
        }
        if current.settings().port != gateway.settings.port
            || current.settings().admin_port != gateway.settings.admin_port
        {
            warn!("port and adminPort changes take effect after a restart");
        }
        let generation = current.generation + 1;
        let table = match RouteTable::compile(gateway, generation, Some(&current), &self.metrics) {
            Ok(t) => t,
            Err(e) => {
                self.metrics.count_reload("rejected");
                return Err(e);
            }
        };
        let endpoints = table.endpoints.len() as i64;
        self.table.store(Arc::new(table));
        self.metrics.count_reload("applied");
        self.metrics.generation.set(generation as i64);
        self.metrics.endpoints.set(endpoints);
        Ok(Published::Swapped(generation))
    }

    /// Counts a change that failed validation before it could be published.
    pub fn reload_rejected(&self) {
        self.metrics.count_reload("rejected");
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Marks the gateway ready (or not) for `/__health/ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Ready and not draining.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }

    /// Readiness turns 503 at once when a shutdown begins.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// Which requests a listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Endpoints, plus the reserved paths when there is no admin listener.
    Proxy {
        /// Serve the reserved paths here too.
        with_admin: bool,
    },
    /// Only the reserved paths.
    Admin,
}

/// A running gateway: its listeners and a handle to publish tables and shut down.
///
/// The proxy port is served by one worker thread per core, each with its own
/// current-thread runtime, its own `SO_REUSEPORT` listener on the same address and its own
/// upstream connection pool: a request and the backend connections it uses never leave
/// their thread, which saves the cross-thread wake-ups a shared pool costs on every call.
/// Dropping the handle stops the workers.
pub struct GatewayHandle {
    /// Where the proxy listener is bound.
    pub proxy_addr: SocketAddr,
    /// Where the admin listener is bound, if any.
    pub admin_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<Option<Duration>>,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<oneshot::Receiver<()>>,
}

/// Number of proxy worker threads: `WEIR_WORKERS`, else one per available core.
pub fn default_workers() -> usize {
    std::env::var("WEIR_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A listening socket with `SO_REUSEPORT`, so every worker can have its own.
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl GatewayHandle {
    /// Binds the listeners and starts serving `shared`'s table with [`default_workers`].
    pub async fn start(
        shared: Arc<Shared>,
        proxy: SocketAddr,
        admin: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        Self::start_with_workers(shared, proxy, admin, default_workers()).await
    }

    /// Binds the listeners and starts `workers` proxy threads.
    pub async fn start_with_workers(
        shared: Arc<Shared>,
        proxy: SocketAddr,
        admin: Option<SocketAddr>,
        workers: usize,
    ) -> std::io::Result<Self> {
        let (tx, rx) = watch::channel(None);
        // The first socket fixes the port (when 0 was asked for); the others share it.
        let first = bind_reuseport(proxy)?;
        let proxy_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..workers.max(1) {
            listeners.push(bind_reuseport(proxy_addr)?);
        }
        let mut tasks = Vec::new();
        let mut admin_addr = None;
        if let Some(addr) = admin {
            let l = TcpListener::bind(addr).await?;
            admin_addr = Some(l.local_addr()?);
            tasks.push(tokio::spawn(
                accept_loop(
                    l,
                    shared.clone(),
                    Role::Admin,
                    rx.clone(),
                    upstream::new_client(),
                )
                .instrument(info_span!("admin_listener")),
            ));
        }
        let role = Role::Proxy {
            with_admin: admin.is_none(),
        };
        let mut done = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let (done_tx, done_rx) = oneshot::channel();
            let (shared, rx) = (shared.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("weir-worker-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(async move {
                            match TcpListener::from_std(listener) {
                                Ok(l) => {
                                    accept_loop(l, shared, role, rx, upstream::new_client())
                                        .instrument(info_span!("worker", id = i))
                                        .await
                                }
                                Err(e) => error!("worker {i} cannot listen: {e}"),
                            }
                        }),
                        Err(e) => error!("worker {i} cannot start a runtime: {e}"),
                    }
                    let _ = done_tx.send(());
                })?;
            done.push(done_rx);
        }
        tasks.push(tokio::spawn(sweep_idle_clients(shared.clone(), rx)));
        info!(%proxy_addr, ?admin_addr, workers = done.len(), "listening");
        Ok(Self {
            proxy_addr,
            admin_addr,
            shared,
            shutdown: tx,
            tasks,
            workers: done,
        })
    }

    /// The shared state (to publish tables).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The graceful stop a load balancer needs: readiness answers 503 at once, the
    /// listeners keep serving for `delay` (while endpoints are withdrawn), then they stop
    /// accepting and in-flight requests finish for up to `drain`.
    pub async fn stop_gracefully(self, delay: Duration, drain: Duration) {
        self.announce_stop(delay).await;
        info!(?drain, "no longer accepting; draining in-flight requests");
        self.shutdown(drain).await;
    }

    /// The first half of [`GatewayHandle::stop_gracefully`]: readiness turns 503 and the
    /// listeners go on serving for `delay`.
    pub async fn announce_stop(&self, delay: Duration) {
        self.shared.begin_drain();
        if !delay.is_zero() {
            info!(
                ?delay,
                "readiness is 503; still serving during the shutdown delay"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `drain`, then returns.
    pub async fn shutdown(self, drain: Duration) {
        self.shared.begin_drain();
        let _ = self.shutdown.send(Some(drain));
        for t in self.tasks {
            let _ = t.await;
        }
        for w in self.workers {
            let _ = w.await;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// How a gateway stops on SIGTERM/SIGINT.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// Keep serving this long after readiness turned 503.
    pub delay: Duration,
    /// Then let in-flight requests finish for up to this long.
    pub drain: Duration,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    role: Role,
    mut shutdown: watch::Receiver<Option<Duration>>,
    client: HttpClient,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let drain = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (shared, client) = (shared.clone(), client.clone());
                let svc = service_fn(move |req| {
                    let (shared, client) = (shared.clone(), client.clone());
                    async move { Ok::<_, Infallible>(handle(&shared, &client, role, req, peer).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            changed = shutdown.changed() => {
                let drain = if changed.is_ok() { *shutdown.borrow() } else { Some(Duration::ZERO) };
                if let Some(d) = drain { break d; }
            }
        }
    };
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => debug!("all connections drained"),
        _ = tokio::time::sleep(drain) => warn!("drain timeout reached; closing remaining connections"),
    }
}

/// How often per-client limiter state of idle clients is dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Keeps per-client rate-limit state bounded by the number of recently active clients.
async fn sweep_idle_clients(shared: Arc<Shared>, mut shutdown: watch::Receiver<Option<Duration>>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let table = shared.table();
                // Sweeping walks every client bucket: keep it off the async workers.
                let _ = tokio::task::spawn_blocking(move || table.forget_idle_clients()).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Logs `client disconnected` when a request future is dropped before it finished.
struct DisconnectGuard<'a> {
    armed: bool,
    method: &'a http::Method,
    path: &'a str,
    in_flight: &'a prometheus::IntGauge,
}

impl Drop for DisconnectGuard<'_> {
    fn drop(&mut self) {
        self.in_flight.dec();
        if self.armed {
            info!(method = %self.method, path = %self.path, "client disconnected");
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn request_host(req: &Request<Incoming>) -> Option<String> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    let host = if raw.starts_with('[') {
        raw.split(']').next().map(|h| format!("{h}]"))?
    } else {
        raw.split(':').next()?.to_string()
    };
    Some(host.to_ascii_lowercase())
}

/// KrakenD (gin's RedirectTrailingSlash): when only the other spelling of the path — with or
/// without a trailing `/` — is routed for this method, redirect there: 301 for GET, 307
/// otherwise so the method and body are kept.
fn trailing_slash_redirect(
    table: &RouteTable,
    host: Option<&str>,
    method: Option<model::Method>,
    uri: &http::Uri,
) -> Option<Response<Body>> {
    let path = uri.path();
    let other = match path.strip_suffix('/') {
        Some("") => return None,
        Some(trimmed) => trimmed.to_string(),
        None => format!("{path}/"),
    };
    if !matches!(table.router.lookup(host, method, &other), Lookup::Found(..)) {
        return None;
    }
    let location = match uri.query() {
        Some(q) => format!("{other}?{q}"),
        None => other,
    };
    let status = if method == Some(model::Method::Get) {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    let mut resp = Response::new(crate::empty());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    Some(resp)
}

async fn handle(
    shared: &Shared,
    client: &HttpClient,
    role: Role,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let start = Instant::now();
    let table = shared.table();
    let settings = table.settings();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut guard = DisconnectGuard {
        armed: true,
        method: &method,
        path: &path,
        in_flight: &shared.metrics.in_flight,
    };
    shared.metrics.in_flight.inc();
    let serve_admin = matches!(role, Role::Admin | Role::Proxy { with_admin: true });
    let cors_policy = settings.cors.as_ref().filter(|_| role != Role::Admin);
    let origin = cors_policy.and_then(|_| req.headers().get(header::ORIGIN).cloned());
    let preflight = cors_policy.is_some() && cors::is_preflight(&method, req.headers());
    let is_admin = serve_admin && admin::claims(settings, &path);
    let mut matched = None;
    let mut resp = if let Some(policy) = cors_policy.filter(|_| preflight) {
        cors::preflight(policy, req.headers())
    } else if is_admin {
        admin::handle(shared, settings, req, peer).await
    } else if role == Role::Admin || model::is_reserved(&path) {
        plain(StatusCode::NOT_FOUND, "404 page not found")
    } else {
        let host = request_host(&req);
        let m = model::Method::parse(req.method().as_str());
        match table.router.lookup(host.as_deref(), m, &path) {
            Lookup::Found(ep, params) => {
                let mut r = pipeline::handle(&table, client, &ep, params, req, peer).await;
                matched = Some(ep);
                if settings.flavor == model::Flavor::KrakenD {
                    // KrakenD names itself on every endpoint answer; Weir says who it is.
                    r.headers_mut()
                        .insert("x-krakend", HeaderValue::from_static(upstream::USER_AGENT));
                }
                r
            }
            Lookup::MethodNotAllowed => {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed");
                r.headers_mut().insert(
                    settings.flavor.completed_header(),
                    HeaderValue::from_static("false"),
                );
                r
            }
            Lookup::NotFound => trailing_slash_redirect(&table, host.as_deref(), m, req.uri())
                .unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "404 page not found")),
        }
    };
    if let Some(policy) = cors_policy.filter(|_| !preflight) {
        cors::decorate(policy, origin.as_ref(), &method, resp.headers_mut());
    }
    guard.armed = false;
    let status = resp.status().as_u16();
    match &matched {
        Some(ep) => ep.metrics.observe(status, start.elapsed().as_secs_f64()),
        None => shared.metrics.count_other(
            if is_admin {
                metrics::RESERVED
            } else {
                metrics::UNMATCHED
            },
            &method,
            status,
        ),
    }
    if settings.access_log {
        access_log::write(resp.status(), start.elapsed(), peer.ip(), &method, &path);
    }
    resp
}
