//! The snapshot hand-off and the listeners. A request loads the current [`RouteTable`] once
//! and finishes on it; [`Shared::publish`] swaps in a new one atomically.
//!
//! - `listener.rs`: binding (a busy port is an error naming it) and the accept loops.
//! - `handler.rs`: one request from the wire to the pipeline, with access log and metrics.
//! - `guard.rs`: requests refused before routing (ambiguous host, loops).
//! - `cors.rs`: cross-origin headers and preflights.
//! - `trim.rs`: the freed pages of replaced tables given back to the system.

pub mod cors;
pub mod guard;
pub mod handler;
pub mod listener;
pub mod tls;
pub mod trim;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use weir_model::Gateway;

use crate::admin::{AdminState, Health};
use crate::table::{RouteError, RouteTable};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::trace::{TraceError, Tracer};
use tls::CertStore;

pub use listener::BindError;

/// State shared by every listener: the current table and process-wide flags.
pub struct Shared {
    table: ArcSwap<RouteTable>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    access_log: Arc<AccessLog>,
    tls: Option<Arc<CertStore>>,
    /// The tracer when `tracing` is configured; `tracing_on` says so without loading it.
    tracer: ArcSwapOption<Tracer>,
    tracing_on: std::sync::atomic::AtomicBool,
    trimmer: trim::Trimmer,
}

/// What [`Shared::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A new table with this generation is serving.
    Swapped(u64),
    /// The model equals the one serving; nothing was swapped.
    Unchanged,
}

/// Why the shared state could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The first table does not compile.
    #[error(transparent)]
    Routes(#[from] RouteError),
    /// The access-log thread could not start.
    #[error("cannot start the access log: {0}")]
    AccessLog(#[source] std::io::Error),
    /// The proxy port's certificates cannot be served.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// Tracing is configured but cannot start.
    #[error("tracing: {0}")]
    Tracing(#[from] TraceError),
}

impl Shared {
    /// Compiles `gateway` into the first table. `ready` marks readiness at once (local mode);
    /// the controller starts unready until its first full list.
    pub fn new(gateway: Gateway, ready: bool) -> Result<Arc<Self>, SetupError> {
        Self::with_metrics(gateway, ready, Arc::new(Metrics::new()))
    }

    /// Like [`Shared::new`], recording into the process's `metrics`.
    pub fn with_metrics(
        gateway: Gateway,
        ready: bool,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, SetupError> {
        let table = RouteTable::compile(&gateway, 1, None, &metrics)?;
        metrics.generation.set(1);
        metrics.endpoints.set(table.endpoints.len() as i64);
        let access_log =
            AccessLog::start(metrics.access_log_dropped.clone()).map_err(SetupError::AccessLog)?;
        let health = Arc::new(Health::default());
        health.set_ready(ready);
        let tls = match &table.settings().tls {
            Some(t) => Some(Arc::new(CertStore::new(t, table.settings().http2)?)),
            None => None,
        };
        crate::telemetry::log::apply_format(table.settings().log_format);
        let tracer = match &table.settings().tracing {
            Some(t) => Some(Tracer::start(t, &metrics)?),
            None => None,
        };
        if let Some(t) = &tracer {
            info!(collector = %t.settings().endpoint, sample_ratio = t.settings().sample_ratio, "tracing on");
        }
        let trimmer = trim::Trimmer::on_current_runtime();
        // What parsing and compiling the first table left free.
        trimmer.schedule();
        Ok(Arc::new(Self {
            table: ArcSwap::from_pointee(table),
            metrics,
            health,
            access_log,
            tls,
            tracing_on: std::sync::atomic::AtomicBool::new(tracer.is_some()),
            tracer: ArcSwapOption::new(tracer),
            trimmer,
        }))
    }

    /// The tracer, when tracing is on: one relaxed load when it is off.
    pub fn tracer(&self) -> Option<Arc<Tracer>> {
        if !self.tracing_on.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.tracer.load_full()
    }

    /// Starts, replaces or stops the tracer when the `tracing` settings changed. A tracer
    /// that cannot start is logged; the previous one keeps running.
    fn apply_tracing(&self, settings: Option<&weir_model::TracingSettings>) {
        let current = self.tracer.load_full();
        if current.as_ref().map(|t| t.settings()) == settings {
            return;
        }
        let next = match settings {
            Some(s) => match Tracer::start(s, &self.metrics) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::error!(error = %crate::telemetry::log::chain(&e), "tracing settings not applied");
                    return;
                }
            },
            None => None,
        };
        match &next {
            Some(t) => {
                info!(collector = %t.settings().endpoint, sample_ratio = t.settings().sample_ratio, "tracing settings applied")
            }
            None => info!("tracing off"),
        }
        self.tracing_on
            .store(next.is_some(), std::sync::atomic::Ordering::Relaxed);
        // The old tracer flushes and stops on its own thread once its last request is done.
        self.tracer.store(next);
    }

    /// Stops tracing and exports what is queued (blocks up to the flush timeout).
    pub fn stop_tracing(&self) {
        self.tracing_on
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.tracer.swap(None) {
            t.shutdown();
        }
    }

    /// The current snapshot.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Compiles and swaps in `gateway` unless it equals the serving model. Compilation
    /// happens on the caller's thread, off the request path; an error (a panic included)
    /// leaves the old table serving.
    pub fn publish(&self, gateway: Gateway) -> Result<Published, RouteError> {
        self.publish_ref(&gateway)
    }

    /// Like [`Shared::publish`] for a caller that keeps its model: endpoints equal to the
    /// serving ones are reused as compiled, only the changed ones are compiled.
    pub fn publish_ref(&self, gateway: &Gateway) -> Result<Published, RouteError> {
        let current = self.table.load();
        if current.same_model(gateway) {
            self.metrics.count_reload("unchanged");
            return Ok(Published::Unchanged);
        }
        let (old, new) = (current.settings(), &gateway.settings);
        if old.port != new.port
            || old.admin_port != new.admin_port
            || old.listen != new.listen
            || old.tls.as_ref().map(|t| t.plain_port) != new.tls.as_ref().map(|t| t.plain_port)
            || old.tls.is_some() != new.tls.is_some()
        {
            warn!("port, adminPort, listen, tls.port and turning TLS on or off take effect after a restart");
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
        if let (Some(store), Some(tls)) = (&self.tls, &gateway.settings.tls) {
            if store.settings() != *tls {
                // Certificates that cannot be served are logged; the previous ones stay.
                match store.reload(tls, gateway.settings.http2) {
                    Ok(()) => info!("TLS settings applied"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS settings not applied; the previous certificates keep serving")
                    }
                }
            }
        }
        crate::telemetry::log::apply_format(gateway.settings.log_format);
        self.apply_tracing(gateway.settings.tracing.as_ref());
        let (pairs, templates) = table.departed(&current);
        self.table.store(Arc::new(table));
        self.metrics.forget_endpoints(&pairs, &templates);
        self.metrics.count_reload("applied");
        self.metrics.generation.set(generation as i64);
        self.metrics.endpoints.set(endpoints);
        self.trimmer.schedule();
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

    /// Readiness flags.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// What the reserved endpoints need.
    pub fn admin_state(&self) -> AdminState {
        AdminState {
            health: self.health.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Marks the gateway ready (or not) for `/__health/ready`.
    pub fn set_ready(&self, ready: bool) {
        self.health.set_ready(ready);
    }

    /// Ready, not draining, not degraded.
    pub fn is_ready(&self) -> bool {
        self.health.is_ready()
    }

    /// Readiness turns 503 at once when a shutdown begins.
    pub fn begin_drain(&self) {
        self.health.begin_drain();
    }

    /// The access-log writer.
    pub fn access_log(&self) -> &Arc<AccessLog> {
        &self.access_log
    }

    /// The proxy port's certificates, when it terminates TLS.
    pub fn tls(&self) -> Option<&Arc<CertStore>> {
        self.tls.as_ref()
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
    /// The plain-HTTP port beside TLS with `redirectHttp`: every request gets a 308 to the
    /// same path on https at this port.
    RedirectHttps {
        /// The TLS port.
        port: u16,
    },
}

/// How a gateway stops on SIGTERM/SIGINT.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// Keep serving this long after readiness turned 503.
    pub delay: Duration,
    /// Then let in-flight requests finish for up to this long.
    pub drain: Duration,
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
    cert_watch: Option<(
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
    /// Where the plain-HTTP port beside TLS is bound, if any.
    pub plain_addr: Option<SocketAddr>,
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.cert_watch {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Number of proxy worker threads: `WEIR_WORKERS`, else one per available core.
pub fn default_workers() -> usize {
    std::env::var("WEIR_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl GatewayHandle {
    /// Binds the listeners and starts serving `shared`'s table with [`default_workers`].
    pub async fn start(
        shared: Arc<Shared>,
        proxy: SocketAddr,
        admin: Option<SocketAddr>,
    ) -> Result<Self, BindError> {
        Self::start_with_workers(shared, proxy, admin, default_workers()).await
    }

    /// Binds the listeners and starts `workers` proxy threads.
    pub async fn start_with_workers(
        shared: Arc<Shared>,
        proxy: SocketAddr,
        admin: Option<SocketAddr>,
        workers: usize,
    ) -> Result<Self, BindError> {
        let (tx, rx) = watch::channel(None);
        let workers = workers.max(1);
        let listeners = listener::bind_proxy(proxy, workers)?;
        let proxy_addr = listeners.addr;
        let settings = shared.table().settings().clone();
        let plain = match settings
            .tls
            .as_ref()
            .and_then(|t| t.plain_port.map(|p| (p, t)))
        {
            Some((port, tls)) => {
                let addr = SocketAddr::new(proxy.ip(), port);
                let socks = listener::bind_plain(addr, workers)?;
                let role = if tls.redirect_http {
                    Role::RedirectHttps {
                        port: proxy_addr.port(),
                    }
                } else {
                    Role::Proxy {
                        with_admin: admin.is_none(),
                    }
                };
                Some((socks, role))
            }
            None => None,
        };
        let plain_addr = plain.as_ref().map(|(l, _)| l.addr);
        let mut tasks = Vec::new();
        let mut admin_addr = None;
        if let Some(addr) = admin {
            let (task, bound) = listener::spawn_admin(addr, shared.clone(), rx.clone()).await?;
            admin_addr = Some(bound);
            tasks.push(task);
        }
        let role = Role::Proxy {
            with_admin: admin.is_none(),
        };
        let sockets = listener::Sockets {
            proxy: listeners,
            plain,
        };
        let done = listener::spawn_workers(sockets, shared.clone(), role, &rx)
            .map_err(|source| BindError::Worker { source })?;
        let cert_watch = match shared.tls() {
            Some(store) => {
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let metrics = shared.metrics().clone();
                let thread = tls::watch(store.clone(), stop.clone(), move |r| {
                    metrics.count_cert_reload(r.is_ok())
                })
                .map_err(|source| BindError::Worker { source })?;
                Some((stop, thread))
            }
            None => None,
        };
        tasks.push(tokio::spawn(listener::sweep_idle_clients(
            shared.clone(),
            rx,
        )));
        info!(%proxy_addr, ?admin_addr, workers = done.len(), "listening");
        Ok(Self {
            proxy_addr,
            admin_addr,
            shared,
            shutdown: tx,
            tasks,
            workers: done,
            cert_watch,
            plain_addr,
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
    pub async fn shutdown(mut self, drain: Duration) {
        self.shared.begin_drain();
        let _ = self.shutdown.send(Some(drain));
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        for w in std::mem::take(&mut self.workers) {
            let _ = w.await;
        }
        self.shared.access_log.close();
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.stop_tracing()).await;
    }
}
