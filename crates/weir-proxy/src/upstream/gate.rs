//! Phase 1 of a backend call: the gate. The backend's rate limit and circuit breaker decide
//! whether the call is made at all; a call that passes carries a guard that reports its
//! outcome to the breaker (also when the call is dropped half-way).

use tokio::time::Instant;

use crate::error::BackendError;
use crate::plan::{CompiledBackend, CompiledEndpoint};
use crate::qos::{CallGuard, Outcome};
use crate::telemetry::metrics::Scope;

/// A call the gate let through.
pub struct Pass<'a> {
    guard: Option<CallGuard<'a>>,
}

impl Pass<'_> {
    /// Reports how the call ended to the breaker. Failures shown to the client as details
    /// (`returnDetails`) do not trip it: the operator asked to see them, not to stop calling.
    pub fn finish(self, backend: &CompiledBackend, ok: bool) {
        if let Some(guard) = self.guard {
            guard.finish(if ok {
                Outcome::Success
            } else if backend.model().errors.return_details.is_some() {
                Outcome::Ignored
            } else {
                Outcome::Failure
            });
        }
    }
}

/// Takes a token from the backend's limiter and a permit from its breaker, or says why not.
pub fn enter<'a>(
    ep: &CompiledEndpoint,
    backend: &'a CompiledBackend,
    deadline: Instant,
) -> Result<Pass<'a>, BackendError> {
    if let Some(limiter) = &backend.limiter {
        if !limiter.try_acquire() {
            ep.metrics.reject(Scope::Backend);
            return Err(BackendError::RateLimited);
        }
    }
    let guard = match &backend.breaker {
        Some(breaker) => match breaker.acquire() {
            Some(permit) => Some(CallGuard::new(breaker, permit, deadline)),
            None => return Err(BackendError::BreakerOpen),
        },
        None => None,
    };
    Ok(Pass { guard })
}
