//! The application log on stderr via `tracing` (the access log is the data plane's).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the stderr `tracing` subscriber; the level comes from `RUST_LOG` (default info).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
