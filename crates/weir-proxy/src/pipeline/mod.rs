//! One endpoint request: fan out to the backends (parallel or sequential) under the
//! endpoint deadline, merge the answers in arrival order and map the outcome onto the
//! status table of DESIGN.md.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::{debug, warn};

use weir_model::{ClientKey, OutputEncoding, StaticStrategy};

use crate::error::BackendError;
use crate::qos::{self, CallGuard};
use crate::table::{CompiledBackend, CompiledEndpoint, RouteTable};
use crate::telemetry::metrics::Scope;
use crate::upstream::{self, error_chain, HttpClient, Inbound};
use crate::{codec, full, Body, BoxError};

/// Largest request body buffered for fan-out (no-op bodies are streamed).
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

const TRUE: HeaderValue = HeaderValue::from_static("true");
const FALSE: HeaderValue = HeaderValue::from_static("false");

fn completed_value(done: bool) -> HeaderValue {
    if done {
        TRUE
    } else {
        FALSE
    }
}

/// What the backends produced.
#[derive(Default)]
struct Outcome {
    data: Map<String, Value>,
    ok: usize,
    details: usize,
    failures: Vec<(usize, BackendError)>,
    timed_out: bool,
}

impl Outcome {
    fn completed(&self) -> bool {
        self.failures.is_empty() && !self.timed_out
    }

    fn absorb(
        &mut self,
        ep: &CompiledEndpoint,
        index: usize,
        result: Result<Map<String, Value>, BackendError>,
    ) {
        let backend = &ep.backends[index];
        backend.metrics.count(match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        });
        match result {
            Ok(map) => {
                self.ok += 1;
                self.data.extend(map);
            }
            Err(err) => {
                log_failure(ep, backend, &err);
                if let Some(alias) = &backend.model.errors.return_details {
                    self.details += 1;
                    self.data.insert(format!("error_{alias}"), detail(&err));
                }
                self.failures.push((index, err));
            }
        }
    }
}

fn log_failure(ep: &CompiledEndpoint, backend: &CompiledBackend, err: &BackendError) {
    match err {
        BackendError::Status { status, .. } => warn!(
            endpoint = %ep.model.path, backend = %backend.label, status = status.as_u16(),
            "backend failed: invalid status code"
        ),
        other => warn!(
            endpoint = %ep.model.path, backend = %backend.label, "backend failed: {other}"
        ),
    }
}

fn detail(err: &BackendError) -> Value {
    let (status, body, ct) = match err {
        BackendError::Status {
            status,
            body,
            content_type,
        } => (
            status.as_u16(),
            String::from_utf8_lossy(body).into_owned(),
            content_type.clone().unwrap_or_default(),
        ),
        other => (500, other.to_string(), codec::TEXT.to_string()),
    };
    serde_json::json!({
        "http_status_code": status,
        "http_body": body,
        "http_body_encoding": ct,
    })
}

/// Calls one backend `concurrentCalls` times; the first good answer wins.
async fn call_backend(
    client: &HttpClient,
    ep: &CompiledEndpoint,
    index: usize,
    inbound: &Inbound,
    previous: &[Option<Map<String, Value>>],
    deadline: Instant,
) -> Result<Map<String, Value>, BackendError> {
    let backend = &ep.backends[index];
    let n = ep.model.concurrent_calls.max(1);
    if n == 1 {
        return upstream::call(client, ep, backend, inbound, previous, deadline).await;
    }
    let mut calls: FuturesUnordered<_> = (0..n)
        .map(|_| upstream::call(client, ep, backend, inbound, previous, deadline))
        .collect();
    let mut last = BackendError::Timeout;
    while let Some(result) = calls.next().await {
        match result {
            Ok(map) => return Ok(map),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn run_parallel(
    client: &HttpClient,
    ep: &CompiledEndpoint,
    inbound: &Inbound,
    deadline: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending: FuturesUnordered<_> = (0..ep.backends.len())
        .map(|i| async move { (i, call_backend(client, ep, i, inbound, &[], deadline).await) })
        .collect();
    let mut done = vec![false; ep.backends.len()];
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            next = pending.next() => match next {
                Some((i, result)) => {
                    done[i] = true;
                    outcome.absorb(ep, i, result);
                }
                None => break,
            },
            _ = &mut sleep => {
                outcome.timed_out = true;
                for (i, finished) in done.iter().enumerate() {
                    if !finished {
                        warn!(endpoint = %ep.model.path, backend = %ep.backends[i].label, "deadline exceeded");
                        ep.backends[i].metrics.count("timeout");
                        outcome.failures.push((i, BackendError::Timeout));
                    }
                }
                break;
            }
        }
    }
    outcome
}

async fn run_sequential(
    client: &HttpClient,
    ep: &CompiledEndpoint,
    inbound: &Inbound,
    deadline: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut previous: Vec<Option<Map<String, Value>>> = Vec::with_capacity(ep.backends.len());
    for i in 0..ep.backends.len() {
        let call = call_backend(client, ep, i, inbound, &previous, deadline);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(map)) => {
                previous.push(Some(map.clone()));
                outcome.absorb(ep, i, Ok(map));
            }
            Ok(Err(e)) => {
                outcome.absorb(ep, i, Err(e));
                break;
            }
            Err(_) => {
                warn!(endpoint = %ep.model.path, backend = %ep.backends[i].label, "deadline exceeded");
                outcome.timed_out = true;
                ep.backends[i].metrics.count("timeout");
                outcome.failures.push((i, BackendError::Timeout));
                break;
            }
        }
    }
    outcome
}

fn text_response(
    status: StatusCode,
    body: Bytes,
    completed_header: &'static str,
) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(codec::TEXT));
    h.insert(completed_header, FALSE);
    resp
}

/// Serves one request for `ep` with the parameter values the router found.
pub async fn handle(
    table: &RouteTable,
    client: &HttpClient,
    ep: &Arc<CompiledEndpoint>,
    params: Vec<String>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let settings = table.settings();
    let completed_header = settings.flavor.completed_header();
    let deadline = Instant::now() + ep.model.timeout;
    if let Some(status) = over_limit(ep, &req, &params, peer) {
        return text_response(status, Bytes::new(), completed_header);
    }
    if ep.model.output_encoding == OutputEncoding::NoOp {
        return no_op(table, client, ep, params, req, peer, deadline).await;
    }
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout_at(
        deadline,
        Limited::new(body, MAX_REQUEST_BODY).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            debug!(endpoint = %ep.model.path, "reading request body failed: {e}");
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return text_response(status, Bytes::new(), completed_header);
        }
        Err(_) => {
            warn!(endpoint = %ep.model.path, "deadline exceeded while reading the request body");
            return text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::new(),
                completed_header,
            );
        }
    };
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let inbound = Inbound {
        method: parts.method,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        params,
        body,
        peer: peer.ip(),
        chunked_bodies: settings.flavor == weir_model::Flavor::KrakenD,
    };
    let mut outcome = if ep.model.sequential {
        run_sequential(client, ep, &inbound, deadline).await
    } else {
        run_parallel(client, ep, &inbound, deadline).await
    };
    let completed = outcome.completed();
    let mut static_applied = false;
    if let Some(s) = &ep.model.static_response {
        let matches = match s.strategy {
            StaticStrategy::Always => true,
            StaticStrategy::Success | StaticStrategy::Complete => completed,
            StaticStrategy::Errored | StaticStrategy::Incomplete => !completed,
        };
        if matches {
            static_applied = true;
            outcome
                .data
                .extend(s.data.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    if outcome.ok + outcome.details == 0 && !static_applied {
        return failure_response(table, ep, outcome, completed_header);
    }
    let rendered = codec::render(ep.model.output_encoding, outcome.data, accept.as_deref());
    let mut resp = Response::new(full(rendered.body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(rendered.content_type),
    );
    h.insert(completed_header, completed_value(completed));
    if completed {
        if let Some(cc) = &ep.cache_control {
            h.insert(header::CACHE_CONTROL, cc.clone());
        }
    }
    resp
}

/// The client limit (429, checked first; a missing key is refused too) and the endpoint
/// limit (503). Rejected requests never reach a backend.
fn over_limit(
    ep: &CompiledEndpoint,
    req: &Request<Incoming>,
    params: &[String],
    peer: SocketAddr,
) -> Option<StatusCode> {
    if let Some(limiter) = &ep.client_limiter {
        let key = match &limiter.key {
            ClientKey::Ip(None) => Some(peer.ip().to_string()),
            ClientKey::Ip(Some(header)) => req
                .headers()
                .get(header.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            ClientKey::Header(header) => req
                .headers()
                .get(header.as_str())
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            ClientKey::Param(name) => ep
                .model
                .path
                .params()
                .iter()
                .position(|p| p == name)
                .and_then(|i| params.get(i))
                .filter(|v| !v.is_empty())
                .cloned(),
        };
        let allowed = key.is_some_and(|k| limiter.try_acquire(&k));
        if !allowed {
            ep.metrics.reject(Scope::Client);
            debug!(endpoint = %ep.model.path, "client rate limit: 429");
            return Some(StatusCode::TOO_MANY_REQUESTS);
        }
    }
    if let Some(limiter) = &ep.limiter {
        if !limiter.try_acquire() {
            ep.metrics.reject(Scope::Endpoint);
            debug!(endpoint = %ep.model.path, "endpoint rate limit: 503");
            return Some(StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    None
}

/// Every backend failed and nothing is usable: 500 (or the backend's code with
/// `returnCode`), the error text only with `returnErrorMessage`.
fn failure_response(
    table: &RouteTable,
    ep: &CompiledEndpoint,
    outcome: Outcome,
    completed_header: &'static str,
) -> Response<Body> {
    let show = table.settings().return_error_message;
    let first = outcome.failures.into_iter().next();
    if let Some((i, BackendError::Status { status, body, .. })) = &first {
        if ep.backends[*i].model.errors.return_code {
            let body = if show { body.clone() } else { Bytes::new() };
            return text_response(*status, body, completed_header);
        }
    }
    let body = match (&first, show) {
        (Some((_, e)), true) => Bytes::from(e.to_string()),
        _ => Bytes::new(),
    };
    text_response(StatusCode::INTERNAL_SERVER_ERROR, body, completed_header)
}

fn failed_no_op(
    settings: &weir_model::Settings,
    ep: &CompiledEndpoint,
    backend: &CompiledBackend,
    err: BackendError,
) -> Response<Body> {
    backend.metrics.count(err.outcome());
    log_failure(ep, backend, &err);
    let text = if settings.return_error_message {
        Bytes::from(err.to_string())
    } else {
        Bytes::new()
    };
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        text,
        settings.flavor.completed_header(),
    )
}

/// `no-op`: one backend, its status, headers and body passed through; the body streams.
async fn no_op(
    table: &RouteTable,
    client: &HttpClient,
    ep: &Arc<CompiledEndpoint>,
    params: Vec<String>,
    req: Request<Incoming>,
    peer: SocketAddr,
    deadline: Instant,
) -> Response<Body> {
    let settings = table.settings();
    let completed_header = settings.flavor.completed_header();
    let backend = &ep.backends[0];
    let (parts, body) = req.into_parts();
    let inbound = Inbound {
        method: parts.method,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        params,
        body: Bytes::new(),
        peer: peer.ip(),
        chunked_bodies: settings.flavor == weir_model::Flavor::KrakenD,
    };
    if let Some(limiter) = &backend.limiter {
        if !limiter.try_acquire() {
            ep.metrics.reject(Scope::Backend);
            return failed_no_op(settings, ep, backend, BackendError::RateLimited);
        }
    }
    let guard = match &backend.breaker {
        Some(breaker) => match breaker.acquire() {
            Some(permit) => Some(CallGuard::new(breaker, permit, deadline)),
            None => return failed_no_op(settings, ep, backend, BackendError::BreakerOpen),
        },
        None => None,
    };
    // KrakenD (Go's client) asks for gzip on the client's behalf and then decodes what it
    // asked for; Weir's own mode leaves compression to the client.
    let client_asks = backend.headers.allows("accept-encoding")
        && inbound.headers.contains_key(header::ACCEPT_ENCODING);
    let gateway_asks_gzip = settings.flavor == weir_model::Flavor::KrakenD && !client_asks;
    let result = async {
        let uri = upstream::build_uri(backend.pick_host(), &ep.model, backend, &inbound, &[])?;
        let mut headers = upstream::upstream_headers(backend, &inbound, false);
        if gateway_asks_gzip {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let method = http::Method::from(backend.model.method);
        let has_body = inbound.headers.contains_key(header::CONTENT_LENGTH)
            || inbound.headers.contains_key(header::TRANSFER_ENCODING);
        if !has_body {
            return upstream::fetch(client, method, uri, headers, Bytes::new(), false).await;
        }
        if let Some(len) = inbound.headers.get(header::CONTENT_LENGTH) {
            headers.insert(header::CONTENT_LENGTH, len.clone());
        }
        let mut upstream = Request::builder()
            .method(method)
            .uri(uri)
            .body(body.map_err(|e| Box::new(e) as BoxError).boxed_unsync())
            .map_err(|e| BackendError::Connect(e.to_string()))?;
        *upstream.headers_mut() = headers;
        client
            .request(upstream)
            .await
            .map_err(|e| BackendError::Connect(error_chain(&e)))
    };
    let resp = match tokio::time::timeout_at(deadline, result).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            if let Some(g) = guard {
                g.finish(qos::Outcome::Failure);
            }
            return failed_no_op(settings, ep, backend, e);
        }
        Err(_) => {
            if let Some(g) = guard {
                g.finish(qos::Outcome::Failure);
            }
            return failed_no_op(settings, ep, backend, BackendError::Timeout);
        }
    };
    let (mut parts, body) = resp.into_parts();
    let ok = matches!(parts.status, StatusCode::OK | StatusCode::CREATED);
    if let Some(g) = guard {
        g.finish(if ok {
            qos::Outcome::Success
        } else {
            qos::Outcome::Failure
        });
    }
    backend
        .metrics
        .count(if ok { "ok" } else { "failed_status" });
    let listed = upstream::connection_tokens(&parts.headers);
    let names: Vec<_> = parts.headers.keys().cloned().collect();
    for name in names {
        if upstream::is_hop_by_hop(&name) || listed.iter().any(|l| l == name.as_str()) {
            parts.headers.remove(&name);
        }
    }
    // KrakenD never claims a no-op answer complete; Weir says whether the backend succeeded.
    let completed = ok && settings.flavor == weir_model::Flavor::Weir;
    parts
        .headers
        .insert(completed_header, completed_value(completed));
    let mut body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    if gateway_asks_gzip && codec::is_gzip(&parts.headers) {
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        body = codec::gunzip_stream(body);
    }
    Response::from_parts(parts, body)
}
