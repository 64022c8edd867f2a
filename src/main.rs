//! The `weir` binary: CLI wiring only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use weir::config;
use weir::local::{self, LocalOptions};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A Kubernetes-native API gateway with KrakenD's aggregation semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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

fn main() -> anyhow::Result<ExitCode> {
    let Cli { command } = Cli::parse();
    if let Command::Check { path } = &command {
        return Ok(check(path));
    }
    weir::telemetry::init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Run {
                config,
                port,
                drain_seconds,
            } => {
                let mut opts = LocalOptions::new(config);
                opts.port = port;
                local::run(opts, Duration::from_secs(drain_seconds)).await?;
            }
            Command::Demo { port } => weir::demo::run(port).await?,
            Command::Check { .. } => unreachable!("handled above"),
        }
        Ok(ExitCode::SUCCESS)
    })
}
