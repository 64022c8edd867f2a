//! The endpoint deadline: one helper for the parallel, sequential and no-op paths, so a
//! timeout is the same thing (and logged the same way) wherever it happens.

use std::future::Future;

use tokio::time::Instant;
use tracing::warn;

use crate::error::BackendError;
use crate::plan::{CompiledBackend, CompiledEndpoint};

/// When an endpoint's whole pipeline must be done.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: std::time::Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// The instant itself.
    pub fn at(self) -> Instant {
        self.0
    }

    /// Runs `work` until the deadline; `None` when it passed first.
    pub async fn run<F: Future>(self, work: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.0, work).await.ok()
    }

    /// Resolves when the deadline passes.
    pub async fn expired(self) {
        tokio::time::sleep_until(self.0).await
    }
}

/// Records a backend the deadline cut off: the log line names endpoint and backend (rate
/// limited per backend like every backend-failure warning, see `merge::log_failure`).
pub fn timed_out(ep: &CompiledEndpoint, backend: &CompiledBackend) -> BackendError {
    match backend.metrics.log_gate.admit() {
        Some(0) => warn!(endpoint = %ep.model.path, backend = %backend.label, "deadline exceeded"),
        Some(n) => {
            warn!(endpoint = %ep.model.path, backend = %backend.label, suppressed = n, "deadline exceeded")
        }
        None => {}
    }
    backend.metrics.count("timeout");
    BackendError::Timeout
}
