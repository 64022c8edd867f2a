//! Local mode: serve a configuration file or directory, and hot-reload it on change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::config::{self, watch, Loaded};
use crate::model::Gateway;
pub use crate::proxy::server::{shutdown_signal, Stop};
use crate::proxy::server::{GatewayHandle, Published, Shared};
use crate::proxy::telemetry::metrics::Metrics;

/// Options of `weir run`.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Gateway file or manifest directory.
    pub config: PathBuf,
    /// Overrides the settings' port.
    pub port: Option<u16>,
    /// Address to bind (default 0.0.0.0).
    pub bind: IpAddr,
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
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
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
    /// Routes conflict.
    #[error(transparent)]
    Routes(#[from] crate::proxy::router::RouteError),
    /// A listener could not be bound.
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
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

/// Loads, serves and starts watching. Returns once listening.
pub async fn start(opts: LocalOptions) -> Result<LocalGateway, StartError> {
    let sources = config::read_sources(&opts.config)?;
    let fp = watch::fingerprint(&sources);
    let mut cache = config::ConvertCache::default();
    let loaded = config::from_sources_cached(&sources, opts.config.is_dir(), &mut cache)?;
    log_warnings(&loaded);
    let gateway = apply_overrides(loaded.gateway, &opts);
    let settings = gateway.settings.clone();
    info!(endpoints = gateway.endpoints.len(), config = %opts.config.display(), "configuration loaded");
    let shared = Shared::with_metrics(gateway, true, opts.metrics.clone())?;
    let handle = GatewayHandle::start(
        shared.clone(),
        SocketAddr::new(opts.bind, settings.port),
        settings.admin_port.map(|p| SocketAddr::new(opts.bind, p)),
    )
    .await?;
    let watcher = watch::spawn(opts.config.clone(), opts.watch_interval, fp, cache, {
        let shared: Arc<Shared> = shared.clone();
        let opts = opts.clone();
        move |result| match result {
            Ok(loaded) => {
                log_warnings(&loaded);
                let n = loaded.gateway.endpoints.len();
                let started = std::time::Instant::now();
                match shared.publish(apply_overrides(loaded.gateway, &opts)) {
                    Ok(Published::Swapped(generation)) => info!(
                        generation,
                        endpoints = n,
                        publish_ms = started.elapsed().as_secs_f64() * 1e3,
                        "configuration reloaded"
                    ),
                    Ok(Published::Unchanged) => info!("configuration unchanged; reload skipped"),
                    Err(e) => error!("reload rejected, previous configuration keeps serving: {e}"),
                }
            }
            Err(e) => {
                shared.reload_rejected();
                error!("reload rejected, previous configuration keeps serving:\n{e}")
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
