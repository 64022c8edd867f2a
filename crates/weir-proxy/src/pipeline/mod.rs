//! One endpoint request, top to bottom:
//!
//! ```text
//!  authentication (401/403, auth/)
//!    → endpoint gate (client limit 429, endpoint limit 503)
//!    → path parameters checked (400 on traversal)
//!    → no-op: stream through one backend (noop.rs)
//!    → else: read the body, fan out (fanout.rs), merge (merge.rs), render
//! ```

pub mod deadline;
pub mod fanout;
pub mod grpc;
pub mod inbound;
pub mod merge;
pub mod noop;
pub mod stream;
pub mod upgrade;

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::{debug, warn};

use weir_model::{Flavor, OutputEncoding};

use crate::auth::{Accepted, Reason, Rejection};
use crate::plan::url::{check_catch_all, check_path_value};
use crate::plan::CompiledEndpoint;
use crate::qos::ClientDecision;
use crate::router::Params;
use crate::table::RouteTable;
use crate::telemetry::metrics::Scope;
use crate::telemetry::trace::TraceScope;
use crate::upstream::Clients;
use crate::{codec, full, Body};
use deadline::Deadline;
use inbound::Inbound;
use merge::{completed_value, text_response};

/// Largest request body buffered for fan-out (no-op bodies are streamed).
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// What the request entry knows of a request beyond the request itself.
#[derive(Debug)]
pub struct Sender {
    /// The client's address.
    pub peer: SocketAddr,
    /// The request's trace, when tracing is on (an argument rather than a request
    /// extension: an extension costs a map and two allocations per request).
    pub trace: Option<TraceScope>,
}

/// Serves one request for `ep` with the parameters the router found.
pub async fn handle(
    table: &RouteTable,
    metrics: &std::sync::Arc<crate::telemetry::metrics::Metrics>,
    clients: &Clients,
    ep: &CompiledEndpoint,
    params: Params,
    req: Request<Incoming>,
    sender: Sender,
) -> Response<Body> {
    let Sender { peer, trace } = sender;
    let settings = table.settings();
    let deadline = Deadline::after(ep.model.timeout);
    let accepted = match &ep.auth {
        Some(plan) => {
            let checked = deadline
                .run(plan.check(req.headers(), req.uri().query()))
                .await
                .unwrap_or(Err(Rejection::unauthorized(
                    Reason::NoKeys,
                    "signing keys unavailable",
                )));
            match checked {
                Ok(a) => a,
                Err(rejection) => {
                    ep.metrics.reject_auth(rejection.reason);
                    if let Some(t) = &trace {
                        t.event(
                            "auth.rejected",
                            &[("weir.auth.reason", rejection.reason.label())],
                        );
                    }
                    debug!(
                        endpoint = %ep.model.path,
                        status = rejection.status.as_u16(),
                        reason = rejection.reason.label(),
                        "authentication refused: {}",
                        rejection.text
                    );
                    return rejection.response(settings.return_error_message);
                }
            }
        }
        None => Accepted::default(),
    };
    if let Some(status) = over_limit(ep, &req, &params, peer, table, trace.as_ref()) {
        return text_response(status, Bytes::new(), &ep.completed_header);
    }
    if let Err(reason) = check_params(ep, &params) {
        debug!(endpoint = %ep.model.path, "path parameter refused: {reason}");
        return text_response(StatusCode::BAD_REQUEST, Bytes::new(), &ep.completed_header);
    }
    let chunked_bodies = settings.flavor == Flavor::KrakenD;
    let show_errors = settings.return_error_message;
    let trusted = &settings.trusted_proxies;
    let (mut parts, body) = req.into_parts();
    if ep.model.output_encoding == OutputEncoding::NoOp {
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let mut inbound = Inbound::new(
            parts,
            params,
            Bytes::new(),
            peer.ip(),
            trusted,
            chunked_bodies,
        );
        inbound.claims = accepted.claims;
        inbound.claim_headers = accepted.headers;
        inbound.trace = trace;
        let request = noop::NoOpRequest {
            inbound,
            body,
            on_upgrade,
        };
        let noop_settings = noop::NoOpSettings {
            flavor: settings.flavor,
            show_errors,
            websocket_idle: settings.websocket_idle_timeout,
            metrics,
        };
        return noop::handle(clients, ep, request, noop_settings, deadline).await;
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        // Refused before a byte of the body is read: no waiting for it to trickle in.
        return text_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            Bytes::new(),
            &ep.completed_header,
        );
    }
    let body = match deadline
        .run(Limited::new(body, MAX_REQUEST_BODY).collect())
        .await
    {
        Some(Ok(b)) => b.to_bytes(),
        Some(Err(e)) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            debug!(endpoint = %ep.model.path, "reading request body failed: {e}");
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return text_response(status, Bytes::new(), &ep.completed_header);
        }
        None => {
            warn!(endpoint = %ep.model.path, "deadline exceeded while reading the request body");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::new(),
                &ep.completed_header,
            );
        }
    };
    ep.metrics.request_bytes().inc_by(body.len() as u64);
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut inbound = Inbound::new(parts, params, body, peer.ip(), trusted, chunked_bodies);
    inbound.claims = accepted.claims;
    inbound.claim_headers = accepted.headers;
    inbound.trace = trace;
    let mut outcome = if ep.model.sequential {
        fanout::sequential(clients, ep, &inbound, deadline).await
    } else {
        fanout::parallel(clients, ep, &inbound, deadline).await
    };
    let completed = outcome.completed();
    let mut static_applied = false;
    if let Some(s) = ep.static_data.as_ref().filter(|s| s.applies(completed)) {
        static_applied = true;
        outcome
            .data
            .extend(s.data.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if outcome.ok + outcome.details == 0 && !static_applied {
        return merge::failure_response(ep, outcome, show_errors);
    }
    let mut data = std::mem::take(&mut outcome.data);
    if let Some(signer) = &ep.signer {
        let signed = deadline.run(signer.sign(&mut data)).await;
        if let Err(e) = signed.unwrap_or(Err(crate::auth::signer::SignError::Timeout)) {
            warn!(endpoint = %ep.model.path, error = %e, "the answer could not be signed");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::new(),
                &ep.completed_header,
            );
        }
    }
    let rendered = match codec::render_offloaded(
        ep.model.output_encoding,
        data,
        accept.as_deref(),
        outcome.input_bytes,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            warn!(endpoint = %ep.model.path, "rendering the answer failed: {}", e.0);
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::new(),
                &ep.completed_header,
            );
        }
    };
    let mut resp = Response::new(full(rendered.body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rendered.content_type),
    );
    // A signed answer carries tokens: never `public` for shared caches. KrakenD's signer
    // renders the answer itself, without its completed header; its flavor does the same.
    let signed = ep.signer.is_some();
    if !(signed && settings.flavor == Flavor::KrakenD) {
        h.insert(ep.completed_header.clone(), completed_value(completed));
    }
    if completed && !signed {
        if let Some(cc) = &ep.cache_control {
            h.insert(header::CACHE_CONTROL, cc.clone());
        }
    }
    resp
}

/// Refuses a request whose parameters could move a backend path (`..`, `/`, `\`, NUL),
/// before any backend is called.
fn check_params(ep: &CompiledEndpoint, params: &Params) -> Result<(), String> {
    let catch_all = ep
        .model
        .path
        .has_catch_all()
        .then(|| ep.model.path.params().len() - 1);
    for &i in &ep.path_params {
        let name = &ep.model.path.params()[i];
        let checked = match (&params.catch_all_raw, Some(i) == catch_all) {
            (Some(raw), true) => check_catch_all(raw, ep.allow_encoded_slashes),
            _ => check_path_value(
                params.values.get(i).map_or("", String::as_str),
                ep.allow_encoded_slashes,
            ),
        };
        checked.map_err(|reason| format!("{{{name}}} {reason}"))?;
    }
    Ok(())
}

/// The client limit (429, checked first; a missing key is refused too) and the endpoint
/// limit (503). Rejected requests never reach a backend.
fn over_limit(
    ep: &CompiledEndpoint,
    req: &Request<Incoming>,
    params: &Params,
    peer: SocketAddr,
    table: &RouteTable,
    trace: Option<&TraceScope>,
) -> Option<StatusCode> {
    if let Some((limiter, key)) = &ep.client_limiter {
        let key = key.extract(
            req.headers(),
            &params.values,
            peer.ip(),
            &table.settings().trusted_proxies,
        );
        // A key that is missing or too long (an attacker's way to grow our memory) is no key.
        let allowed = key.is_some_and(|k| limiter.check(&k) == ClientDecision::Allowed);
        if !allowed {
            ep.metrics.reject(Scope::Client);
            if let Some(t) = trace {
                t.event(
                    "rate_limit.rejected",
                    &[("weir.rate_limit.scope", "client")],
                );
            }
            debug!(endpoint = %ep.model.path, "client rate limit: 429");
            return Some(StatusCode::TOO_MANY_REQUESTS);
        }
    }
    if let Some(limiter) = &ep.limiter {
        if !limiter.try_acquire() {
            ep.metrics.reject(Scope::Endpoint);
            if let Some(t) = trace {
                t.event(
                    "rate_limit.rejected",
                    &[("weir.rate_limit.scope", "endpoint")],
                );
            }
            debug!(endpoint = %ep.model.path, "endpoint rate limit: 503");
            return Some(StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    None
}
