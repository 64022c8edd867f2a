//! Local mode: serve a configuration file or directory, and hot-reload it on change.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::config::{self, watch, Loaded};
use crate::model::Gateway;
pub use crate::proxy::server::{shutdown_signal, Stop};
use crate::proxy::server::{GatewayHandle, Published, Shared};
use crate::proxy::telemetry::log::chain;
use crate::proxy::telemetry::metrics::Metrics;

/// Options of `weir run`.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Gateway file or manifest directory.
    pub config: PathBuf,
    /// Overrides the settings' port.
    pub port: Option<u16>,
    /// Address to bind instead of the settings' `listen`.
    pub bind: Option<IpAddr>,
    /// How often the files are checked.
    pub watch_interval: Duration,
    /// Overrides the settings' `accessLog`.
    pub access_log: Option<bool>,
    /// Turns `/__debug/` on whatever the settings say (`weir run -d`).
    pub debug: bool,
    /// Where metrics are recorded (one registry per process, built by the caller).
    pub metrics: Arc<Metrics>,
}

impl LocalOptions {
    /// Options with defaults for `config`.
    pub fn new(config: impl Into<PathBuf>) -> Self {
        Self {
            config: config.into(),
            port: None,
            bind: None,
            watch_interval: watch::DEFAULT_INTERVAL,
            metrics: Arc::new(Metrics::new()),
            access_log: None,
            debug: false,
        }
    }
}

/// Why local mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Routes conflict, or the gateway could not be set up.
    #[error(transparent)]
    Setup(#[from] crate::proxy::server::SetupError),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] crate::proxy::server::BindError),
}

/// Marks readiness 503 if the watcher thread dies of a panic: a gateway that no longer
/// follows its configuration must not claim to be ready.
struct WatcherAlive(Arc<crate::proxy::admin::Health>);

impl Drop for WatcherAlive {
    fn drop(&mut self) {
        if std::thread::panicking() {
            error!("the configuration watcher stopped after a panic; readiness is now 503");
            self.0
                .degrade("the configuration watcher stopped; restart the gateway");
        }
    }
}

/// A running local gateway with its watcher.
pub struct LocalGateway {
    /// The listeners.
    pub handle: GatewayHandle,
    /// The config watcher; dropping it stops watching.
    pub watcher: watch::WatchHandle,
}

fn apply_overrides(mut gw: Gateway, opts: &LocalOptions) -> Gateway {
    if let Some(p) = opts.port {
        gw.settings.port = p;
    }
    if let Some(a) = opts.access_log {
        gw.settings.access_log = a;
    }
    if opts.debug {
        gw.settings.debug = true;
    }
    gw
}

fn log_warnings(loaded: &Loaded) {
    for n in &loaded.notes {
        info!("{n}");
    }
    for w in &loaded.warnings {
        warn!("{w}");
    }
}

fn apply_change(shared: &Shared, opts: &LocalOptions, result: Result<Loaded, config::ConfigError>) {
    match result {
        Ok(loaded) => {
            log_warnings(&loaded);
            let n = loaded.gateway.endpoints.len();
            let started = std::time::Instant::now();
            match shared.publish(apply_overrides(loaded.gateway, opts)) {
                Ok(Published::Swapped(generation)) => info!(
                    generation,
                    endpoints = n,
                    publish_ms = started.elapsed().as_secs_f64() * 1e3,
                    "configuration reloaded"
                ),
                Ok(Published::Unchanged) => info!("configuration unchanged; reload skipped"),
                Err(e) => {
                    error!(error = %chain(&e), "reload rejected, previous configuration keeps serving")
                }
            }
        }
        Err(e) => {
            shared.reload_rejected();
            error!(error = %chain(&e), "reload rejected, previous configuration keeps serving")
        }
    }
}

/// Loads, serves and starts watching. Returns once listening.
pub async fn start(opts: LocalOptions) -> Result<LocalGateway, StartError> {
    let sources = config::read_sources(&opts.config)?;
    let fp = watch::fingerprint(&sources);
    let mut cache = config::ConvertCache::default();
    let loaded = config::from_sources_cached(&sources, opts.config.is_dir(), &mut cache)?;
    // `logFormat` holds from the first line on.
    crate::proxy::telemetry::log::apply_format(loaded.gateway.settings.log_format);
    log_warnings(&loaded);
    let gateway = apply_overrides(loaded.gateway, &opts);
    let settings = gateway.settings.clone();
    info!(endpoints = gateway.endpoints.len(), config = %opts.config.display(), "configuration loaded");
    let shared = Shared::with_metrics(gateway, true, opts.metrics.clone())?;
    let handle = GatewayHandle::start(
        shared.clone(),
        SocketAddr::new(opts.bind.unwrap_or(settings.listen), settings.port),
        settings
            .admin_port
            .map(|p| SocketAddr::new(opts.bind.unwrap_or(settings.listen), p)),
    )
    .await?;
    let watcher = watch::spawn(opts.config.clone(), opts.watch_interval, fp, cache, {
        let shared: Arc<Shared> = shared.clone();
        let opts = opts.clone();
        let alive = WatcherAlive(shared.health().clone());
        move |result| {
            let _alive = &alive;
            // A panic while applying one change (a bug) is logged and counted as a rejected
            // reload; the watcher goes on and the previous table keeps serving.
            let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                apply_change(&shared, &opts, result)
            }));
            if applied.is_err() {
                shared.reload_rejected();
                error!("applying the configuration change panicked; the previous configuration keeps serving");
            }
        }
    });
    Ok(LocalGateway { handle, watcher })
}

/// `weir run`: serve until a signal, then stop gracefully.
pub async fn run(opts: LocalOptions, stop: Stop) -> Result<(), StartError> {
    let gw = start(opts).await?;
    shutdown_signal().await;
    info!(?stop, "shutting down");
    let LocalGateway { handle, watcher } = gw;
    handle.stop_gracefully(stop.delay, stop.drain).await;
    drop(watcher);
    Ok(())
}
