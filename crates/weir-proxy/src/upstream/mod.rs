//! One backend call, in phases, each in its own file and each in one place:
//!
//! ```text
//!  gate (rate limit, breaker) → build (URI, headers) → send (pool, redirects)
//!       → decode (size limit, codec) → transform (compiled plan)
//! ```
//!
//! The no-op path (`pipeline::noop`) reuses gate, build and send and then only streams.

pub mod build;
pub mod client;
pub mod connector;
pub mod decode;
pub mod gate;
pub mod send;

use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::error::BackendError;
use crate::pipeline::inbound::Inbound;
use crate::plan::{CompiledBackend, CompiledEndpoint};
use crate::telemetry::trace::ClientSpan;

pub use client::{new_client, Clients, HttpClient, Profile};
pub use send::error_chain;

/// A decoded, transformed answer.
pub struct Answer {
    /// The data.
    pub data: Map<String, Value>,
    /// Size of the body it was decoded from (to decide where rendering runs).
    pub bytes: usize,
}

/// Calls one backend once and returns its decoded, transformed answer. `deadline` tells a
/// timeout from a cancellation to the breaker.
pub async fn call(
    clients: &Clients,
    ep: &CompiledEndpoint,
    backend: &CompiledBackend,
    inbound: &Inbound,
    previous: &[Option<Map<String, Value>>],
    deadline: Instant,
) -> Result<Answer, BackendError> {
    let method = build::method(backend, inbound, false);
    let mut span = ClientSpan::start(inbound.trace.as_ref(), backend, &method, deadline);
    let pass = match gate::enter(ep, backend, deadline) {
        Ok(pass) => pass,
        Err(e) => {
            span.finish(Some(&e));
            return Err(e);
        }
    };
    let started = std::time::Instant::now();
    let result = async {
        let uri = build::uri(backend, inbound, previous)?;
        span.target(&uri);
        let request = send::Replayable {
            method,
            uri,
            headers: || {
                let mut headers = build::headers(backend, inbound, true);
                span.inject(&mut headers);
                headers
            },
            body: inbound.body.clone(),
            chunked: inbound.chunked_bodies,
        };
        let client = clients.get(backend.profile.as_ref());
        let resp = send::send(&client, request, send::RedirectPolicy::of(backend)).await?;
        span.status(resp.status());
        let (data, bytes) = decode::answer(backend, resp).await?;
        Ok(Answer {
            data: backend.transform.apply(data),
            bytes,
        })
    }
    .await;
    backend
        .metrics
        .observe_duration(started.elapsed().as_secs_f64());
    pass.finish(backend, result.is_ok());
    span.finish(result.as_ref().err());
    result
}
