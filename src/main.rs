//! The `weir` binary: CLI wiring only.
//!
//! Exit status: 0 success, 1 invalid configuration (or a gateway that could not start),
//! 2 usage error (clap's own, and the checks of the path arguments here).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use weir::proxy::telemetry::metrics::Metrics;

use weir::config;
use weir::controller::{self, ControllerOptions};
use weir::local::{self, LocalOptions, Stop};

/// mimalloc instead of the system allocator (experiment: `--features mimalloc`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status of an invalid configuration (or a start that failed).
const INVALID: u8 = 1;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A Kubernetes-native API gateway with KrakenD's aggregation semantics",
    after_help = "Exit status: 0 success, 1 invalid configuration (or the gateway could not start), 2 usage error."
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
    Run(RunArgs),
    /// Validate configurations without serving (exit 0 valid, 1 invalid).
    Check(CheckArgs),
    /// Start example upstreams and a gateway in front of them, all on loopback.
    Demo {
        /// Gateway port.
        #[arg(short, long, default_value_t = 8080)]
        port: u16,
    },
    /// Print the Endpoint CustomResourceDefinition (YAML) for `kubectl apply -f -`.
    Crd,
    /// Turn a krakend.json into a gateway settings document plus Endpoint manifests (YAML).
    Convert {
        /// The KrakenD configuration (version 3).
        path: PathBuf,
        /// Write one file per manifest into this directory instead of one stream to stdout.
        #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
    /// Kubernetes mode: watch Endpoint objects and serve them; the lease holder writes status.
    Controller(ControllerArgs),
    /// Print the version.
    Version,
    /// Print a shell completion script (`weir completions bash > /etc/bash_completion.d/weir`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Flags of `weir run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Gateway file (YAML/JSON), directory of manifests, or krakend.json.
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// The same path, as a flag (`weir run -c krakend.json`, KrakenD's spelling).
    #[arg(short = 'c', long = "config", value_name = "PATH")]
    config: Option<PathBuf>,
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
}

/// Flags of `weir check`.
#[derive(clap::Args)]
struct CheckArgs {
    /// Files or directories to check, each on its own.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// A path to check, as a flag (`weir check -c krakend.json`, KrakenD's spelling).
    #[arg(short = 'c', long = "config", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Also read the files in subdirectories of a directory.
    #[arg(short = 'r', long)]
    recursive: bool,
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
    /// Status writes and Events per second at most, as the lease holder (0 = unlimited).
    #[arg(long, default_value_t = controller::writer::DEFAULT_QPS)]
    status_qps: f64,
    /// Status writes and Events allowed at once above --status-qps.
    #[arg(long, default_value_t = controller::writer::DEFAULT_BURST)]
    status_burst: u32,
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
        status_qps,
        status_burst,
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
    opts.writer = controller::WriterOptions {
        qps: status_qps.max(0.0),
        burst: status_burst,
    };
    let stop = Stop {
        delay: Duration::from_secs(shutdown_delay_seconds),
        drain: Duration::from_secs(drain_seconds),
    };
    (opts, stop)
}

/// Exits with status 2 and the usage text of `subcommand`.
fn usage(subcommand: &str, kind: ErrorKind, message: &str) -> ! {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(kind, message).exit(),
        None => cli.error(kind, message).exit(),
    }
}

/// Whether two spellings name the same file.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// The paths of `check`/`run`: positional, or `-c`, or both when they agree.
fn resolve_paths(
    subcommand: &str,
    positional: Vec<PathBuf>,
    flag: Option<PathBuf>,
) -> Vec<PathBuf> {
    match flag {
        None if positional.is_empty() => usage(
            subcommand,
            ErrorKind::MissingRequiredArgument,
            "a configuration path is required: give it as PATH or with -c PATH",
        ),
        None => positional,
        Some(flag) if positional.is_empty() => vec![flag],
        Some(flag) if positional.iter().any(|p| same_file(p, &flag)) => positional,
        Some(flag) => usage(
            subcommand,
            ErrorKind::ArgumentConflict,
            &format!(
                "-c {} names another path than {}; give the path once, as PATH or with -c",
                flag.display(),
                positional
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
    }
}

/// Prints an error the way `weir check` and `weir run` both do: one `error:` line per problem.
fn print_error(e: &dyn std::fmt::Display) {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
}

/// What validation alone cannot see and serving would refuse: routes the router cannot hold
/// together, backend TLS files, and the listener's certificates (exist, parse, key matches,
/// expiry within 14 days as a warning). Certificates are only read, never served.
fn deep_check(mut loaded: config::Loaded) -> Result<config::Loaded, String> {
    weir::proxy::table::check(&loaded.gateway).map_err(|e| e.to_string())?;
    if let Some(tls) = &loaded.gateway.settings.tls {
        let warnings = weir::proxy::server::tls::check(tls).map_err(|e| e.to_string())?;
        loaded.warnings.extend(warnings);
    }
    Ok(loaded)
}

fn check(args: CheckArgs) -> ExitCode {
    let CheckArgs {
        paths,
        config: flag,
        recursive,
    } = args;
    let mut failed = false;
    for path in resolve_paths("check", paths, flag) {
        let checked = config::check(&path, recursive)
            .map_err(|e| e.to_string())
            .and_then(deep_check);
        match checked {
            Ok(loaded) => {
                for n in &loaded.notes {
                    eprintln!("note: {n}");
                }
                for w in &loaded.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: valid ({} endpoints)",
                    path.display(),
                    loaded.gateway.endpoints.len()
                );
            }
            Err(e) => {
                print_error(&e);
                eprintln!("{}: invalid", path.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

fn convert(path: &Path, output_dir: Option<&Path>) -> ExitCode {
    let warnings = match output_dir {
        None => match config::krakend::convert_file(path) {
            Ok((yaml, warnings)) => {
                print!("{yaml}");
                warnings
            }
            Err(e) => {
                print_error(&e);
                return ExitCode::from(INVALID);
            }
        },
        Some(dir) => match config::krakend::convert_to_dir(path, dir) {
            Ok((files, warnings)) => {
                eprintln!("wrote {} files to {}", files.len(), dir.display());
                warnings
            }
            Err(e) => {
                print_error(&e);
                return ExitCode::from(INVALID);
            }
        },
    };
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    ExitCode::SUCCESS
}

fn main() -> anyhow::Result<ExitCode> {
    let Cli {
        command,
        log_format,
    } = Cli::parse();
    let run = match command {
        Command::Check(args) => return Ok(check(args)),
        Command::Convert { path, output_dir } => return Ok(convert(&path, output_dir.as_deref())),
        Command::Crd => {
            print!("{}", weir::api::crd_yaml()?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Version => {
            println!("weir {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "weir", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Run(args) => {
            let RunArgs {
                path,
                config: flag,
                port,
                drain_seconds,
                shutdown_delay_seconds,
                debug,
            } = args;
            let config = resolve_paths("run", path.into_iter().collect(), flag).remove(0);
            let mut opts = LocalOptions::new(config);
            opts.port = port;
            opts.debug = debug;
            let stop = Stop {
                delay: Duration::from_secs(shutdown_delay_seconds),
                drain: Duration::from_secs(drain_seconds),
            };
            Mode::Local(opts, stop)
        }
        Command::Demo { port } => Mode::Demo(port),
        Command::Controller(args) => Mode::Controller(args),
    };
    weir::telemetry::init_tracing(log_format.map(Into::into));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The one metrics registry of this process, handed to whichever mode runs.
    let metrics = Arc::new(Metrics::new());
    let result: anyhow::Result<()> = runtime.block_on(async move {
        match run {
            Mode::Local(mut opts, stop) => {
                opts.metrics = metrics.clone();
                local::run(opts, stop).await?;
            }
            Mode::Demo(port) => weir::demo::run(port).await?,
            Mode::Controller(args) => {
                let (mut opts, stop) = controller_options(args);
                opts.metrics = metrics.clone();
                controller::run(opts, stop).await?;
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // The same text as `weir check`, once: not anyhow's report (and backtrace).
            print_error(&e);
            let mut shown = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !shown.contains(&cause) {
                    eprintln!("error: caused by: {cause}");
                    shown = cause;
                }
            }
            Ok(ExitCode::from(INVALID))
        }
    }
}

/// What `main` runs inside the runtime.
enum Mode {
    Local(LocalOptions, Stop),
    Demo(u16),
    Controller(ControllerArgs),
}
