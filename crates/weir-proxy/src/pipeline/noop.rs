//! `no-op` endpoints: one backend, its status, headers and body passed through, the body
//! streamed both ways. It reuses the gate, build and send phases of a backend call and then
//! only streams; `timeout` bounds the time to the answer's headers, and an idle timeout
//! (the same length) between body chunks cuts a stalled stream. WebSocket upgrades
//! (`upgrade.rs`) and gRPC calls (`grpc.rs`) pass here too.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use weir_model::Flavor;

use crate::error::BackendError;
use crate::pipeline::deadline::Deadline;
use crate::pipeline::inbound::{strip_hop_by_hop, Inbound};
use crate::pipeline::merge::{completed_value, log_failure, text_response};
use crate::pipeline::stream::IdleTimeout;
use crate::pipeline::{grpc, upgrade};
use crate::plan::{CompiledBackend, CompiledEndpoint};
use crate::telemetry::body::Observed;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::trace::ClientSpan;
use crate::upstream::{build, gate, send, Clients};
use crate::{codec, Body, BoxError};

/// What a no-op request needs beyond the endpoint.
pub struct NoOpRequest {
    /// The prepared request.
    pub inbound: Inbound,
    /// The client's body, streamed upstream.
    pub body: Incoming,
    /// The client connection's upgrade, for WebSocket.
    pub on_upgrade: Option<OnUpgrade>,
}

/// Gateway-wide settings a no-op request uses.
pub struct NoOpSettings<'a> {
    /// Client-visible conventions.
    pub flavor: Flavor,
    /// `returnErrorMessage`.
    pub show_errors: bool,
    /// `websocketIdleTimeout`.
    pub websocket_idle: std::time::Duration,
    /// Where tunnels are counted.
    pub metrics: &'a Arc<Metrics>,
}

fn failed(
    ep: &CompiledEndpoint,
    backend: &CompiledBackend,
    err: BackendError,
    show_errors: bool,
    grpc: bool,
) -> Response<Body> {
    backend.metrics.count(err.outcome());
    log_failure(ep, backend, &err);
    if grpc {
        return grpc::error(grpc::UNAVAILABLE, &err.to_string());
    }
    let text = if show_errors {
        Bytes::from(err.to_string())
    } else {
        Bytes::new()
    };
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        text,
        &ep.completed_header,
    )
}

/// Serves one request on a no-op endpoint.
pub async fn handle(
    clients: &Clients,
    ep: &CompiledEndpoint,
    request: NoOpRequest,
    settings: NoOpSettings<'_>,
    deadline: Deadline,
) -> Response<Body> {
    let NoOpRequest {
        inbound,
        body,
        on_upgrade,
    } = request;
    let backend = &ep.backends[0];
    let is_grpc = grpc::is_grpc(&inbound.headers);
    let websocket = on_upgrade.filter(|_| upgrade::is_websocket(&inbound.headers));
    let show_errors = settings.show_errors;
    let mut span = ClientSpan::start(
        inbound.trace.as_ref(),
        backend,
        &build::method(backend, &inbound, true),
        deadline.at(),
    );
    let pass = match gate::enter(ep, backend, deadline.at()) {
        Ok(p) => p,
        Err(e) => {
            span.finish(Some(&e));
            return failed(ep, backend, e, show_errors, is_grpc);
        }
    };
    // An upgrade needs an HTTP/1.1 connection of its own: the default client.
    let client = if websocket.is_some() {
        clients.get(None)
    } else {
        clients.get(backend.profile.as_ref())
    };
    // KrakenD (Go's client) asks for gzip on the client's behalf and then decodes what it
    // asked for; Weir's own mode leaves compression to the client.
    let client_asks =
        backend.forwards_accept_encoding && inbound.headers.contains_key(header::ACCEPT_ENCODING);
    let gateway_asks_gzip =
        settings.flavor == Flavor::KrakenD && !client_asks && !is_grpc && websocket.is_none();
    let result = deadline
        .run(async {
            let uri = build::uri(backend, &inbound, &[])?;
            span.target(&uri);
            let headers = || {
                let mut headers = build::headers(backend, &inbound, false);
                span.inject(&mut headers);
                if gateway_asks_gzip {
                    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
                }
                if websocket.is_some() {
                    upgrade::handshake_headers(&inbound.headers, &mut headers);
                }
                if is_grpc {
                    grpc::protocol_headers(&inbound.headers, &mut headers);
                }
                headers
            };
            let method = build::method(backend, &inbound, true);
            let has_body = inbound.headers.contains_key(header::CONTENT_LENGTH)
                || inbound.headers.contains_key(header::TRANSFER_ENCODING)
                || (is_grpc && method == http::Method::POST);
            if !has_body && websocket.is_none() {
                let request = send::Replayable {
                    method,
                    uri,
                    headers,
                    body: Bytes::new(),
                    chunked: false,
                };
                return send::send(&client, request, send::RedirectPolicy::of(backend)).await;
            }
            let mut headers = headers();
            if let Some(len) = inbound.headers.get(header::CONTENT_LENGTH) {
                headers.insert(header::CONTENT_LENGTH, len.clone());
            }
            let mut upstream = Request::builder()
                .method(method)
                .uri(uri)
                .body(
                    Observed::new(body, Some(ep.metrics.request_bytes().clone()), None)
                        .map_err(|e| Box::new(e) as BoxError)
                        .boxed_unsync(),
                )
                .map_err(|e| BackendError::Connect(e.to_string()))?;
            *upstream.headers_mut() = headers;
            send::send_streaming(&client, upstream).await
        })
        .await;
    let resp = match result {
        Some(Ok(resp)) => resp,
        Some(Err(e)) => {
            pass.finish(backend, false);
            span.finish(Some(&e));
            return failed(ep, backend, e, show_errors, is_grpc);
        }
        None => {
            pass.finish(backend, false);
            span.finish(Some(&BackendError::Timeout));
            return failed(ep, backend, BackendError::Timeout, show_errors, is_grpc);
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = websocket {
            span.finish_status(resp.status(), true);
            return switch(ep, backend, resp, client_upgrade, pass, &settings);
        }
    }
    let (mut parts, body) = resp.into_parts();
    let ok = matches!(parts.status, StatusCode::OK | StatusCode::CREATED);
    span.finish_status(parts.status, ok);
    pass.finish(backend, ok);
    backend
        .metrics
        .count(if ok { "ok" } else { "failed_status" });
    strip_hop_by_hop(&mut parts.headers);
    // KrakenD never claims a no-op answer complete; Weir says whether the backend succeeded.
    let completed = ok && settings.flavor == Flavor::Weir;
    parts
        .headers
        .insert(ep.completed_header.clone(), completed_value(completed));
    let mut body = IdleTimeout::new(body, ep.model.timeout).boxed_unsync();
    if gateway_asks_gzip && codec::is_gzip(&parts.headers) {
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        body = codec::gunzip_stream(body);
    }
    Response::from_parts(parts, body)
}

/// The backend accepted the upgrade: hand the client its 101 and join the two connections.
fn switch(
    ep: &CompiledEndpoint,
    backend: &CompiledBackend,
    mut resp: Response<Incoming>,
    client_upgrade: OnUpgrade,
    pass: gate::Pass<'_>,
    settings: &NoOpSettings<'_>,
) -> Response<Body> {
    pass.finish(backend, true);
    backend.metrics.count("ok");
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    upgrade::tunnel(
        client_upgrade,
        backend_upgrade,
        settings.websocket_idle,
        ep.model.path.to_string(),
        settings.metrics.clone(),
    );
    let (mut parts, _) = resp.into_parts();
    let kept: Vec<(header::HeaderName, HeaderValue)> = upgrade::KEEP_ON_101
        .iter()
        .filter_map(|n| parts.headers.get(n).map(|v| (n.clone(), v.clone())))
        .collect();
    strip_hop_by_hop(&mut parts.headers);
    for (n, v) in kept {
        parts.headers.insert(n, v);
    }
    Response::from_parts(parts, crate::empty())
}
