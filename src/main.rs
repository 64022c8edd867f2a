//! The `weir` binary: CLI wiring only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use weir::proxy::telemetry::metrics::Metrics;

use weir::config;
use weir::controller::{self, ControllerOptions};
use weir::local::{self, LocalOptions, Stop};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A Kubernetes-native API gateway with KrakenD's aggregation semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Application-log format on stderr (wins over the `logFormat` setting).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
}

/// `--log-format`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for weir::model::LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Text => weir::model::LogFormat::Text,
            LogFormatArg::Json => weir::model::LogFormat::Json,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve a gateway file, a directory of Endpoint manifests, or a krakend.json; reload on change.
    Run {
        /// Gateway file (YAML/JSON) or directory of `kind: Endpoint` manifests.
        #[arg(short = 'c', long)]
        config: PathBuf,
        /// Listen on this port instead of the configured one.
        #[arg(short, long)]
        port: Option<u16>,
        /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
        #[arg(long, default_value_t = 10)]
        drain_seconds: u64,
        /// Seconds to keep serving after SIGTERM with readiness already 503, before draining.
        #[arg(long, default_value_t = 0)]
        shutdown_delay_seconds: u64,
        /// Serve `/__debug/` whatever the configuration says (KrakenD's `-d`).
        #[arg(short = 'd', long)]
        debug: bool,
    },
    /// Validate a configuration without serving (exit 0 valid, 1 invalid).
    Check {
        /// Gateway file or directory.
        path: PathBuf,
    },
    /// Start example upstreams and a gateway in front of them, all on loopback.
    Demo {
        /// Gateway port.
        #[arg(short, long, default_value_t = 8080)]
        port: u16,
    },
    /// Print the Endpoint CustomResourceDefinition (YAML) for `kubectl apply -f -`.
    Crd,
    /// Print a krakend.json as Endpoint manifests plus a gateway settings document (YAML).
    Convert {
        /// The KrakenD configuration (version 3).
        path: PathBuf,
    },
    /// Kubernetes mode: watch Endpoint objects and serve them; the lease holder writes status.
    Controller(ControllerArgs),
}

/// Flags of `weir controller`.
#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch only this namespace (repeat for several); all namespaces when absent.
    #[arg(short, long = "namespace")]
    namespaces: Vec<String>,
    /// Label selector for Endpoint objects (`team=shop,tier!=canary`).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Gateway settings file (a mounted ConfigMap), watched like in local mode.
    #[arg(short = 'c', long)]
    config: Option<PathBuf>,
    /// Proxy port (overrides the settings).
    #[arg(short, long)]
    port: Option<u16>,
    /// Admin port for the reserved endpoints (overrides the settings).
    #[arg(long)]
    admin_port: Option<u16>,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else `default`).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "weir-controller")]
    lease_name: String,
    /// Seconds a lease holder may go without renewing before another replica takes over.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// This replica's identity in the Lease (default: $POD_NAME, else host name and pid).
    #[arg(long)]
    identity: Option<String>,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 10)]
    drain_seconds: u64,
    /// Seconds to keep serving after SIGTERM with readiness already 503, before draining.
    #[arg(long, default_value_t = 0)]
    shutdown_delay_seconds: u64,
}

fn controller_options(args: ControllerArgs) -> (ControllerOptions, Stop) {
    let ControllerArgs {
        namespaces,
        selector,
        config,
        port,
        admin_port,
        lease_namespace,
        lease_name,
        lease_duration_seconds,
        identity,
        drain_seconds,
        shutdown_delay_seconds,
    } = args;
    let mut opts = ControllerOptions::new(
        lease_namespace.unwrap_or_else(controller::default_lease_namespace),
        identity.unwrap_or_else(controller::default_identity),
    );
    opts.namespaces = namespaces;
    opts.selector = selector;
    opts.config = config;
    opts.port = port;
    opts.admin_port = admin_port;
    opts.lease.name = lease_name;
    opts.lease.duration = Duration::from_secs(lease_duration_seconds.max(1));
    let stop = Stop {
        delay: Duration::from_secs(shutdown_delay_seconds),
        drain: Duration::from_secs(drain_seconds),
    };
    (opts, stop)
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: valid ({} endpoints)",
                path.display(),
                loaded.gateway.endpoints.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn convert(path: &std::path::Path) -> ExitCode {
    match config::krakend::convert_file(path) {
        Ok((yaml, warnings)) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let Cli {
        command,
        log_format,
    } = Cli::parse();
    if let Command::Check { path } = &command {
        return Ok(check(path));
    }
    if let Command::Convert { path } = &command {
        return Ok(convert(path));
    }
    if let Command::Crd = &command {
        print!("{}", weir::api::crd_yaml()?);
        return Ok(ExitCode::SUCCESS);
    }
    weir::telemetry::init_tracing(log_format.map(Into::into));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The one metrics registry of this process, handed to whichever mode runs.
    let metrics = Arc::new(Metrics::new());
    runtime.block_on(async move {
        match command {
            Command::Run {
                config,
                port,
                drain_seconds,
                shutdown_delay_seconds,
                debug,
            } => {
                let mut opts = LocalOptions::new(config);
                opts.port = port;
                opts.debug = debug;
                opts.metrics = metrics.clone();
                let stop = Stop {
                    delay: Duration::from_secs(shutdown_delay_seconds),
                    drain: Duration::from_secs(drain_seconds),
                };
                local::run(opts, stop).await?;
            }
            Command::Demo { port } => weir::demo::run(port).await?,
            Command::Controller(args) => {
                let (mut opts, stop) = controller_options(args);
                opts.metrics = metrics.clone();
                controller::run(opts, stop).await?;
            }
            Command::Check { .. } | Command::Crd | Command::Convert { .. } => {
                unreachable!("handled above")
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
