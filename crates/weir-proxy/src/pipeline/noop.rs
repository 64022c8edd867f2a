//! `no-op` endpoints: one backend, its status, headers and body passed through, the body
//! streamed both ways. It reuses the gate, build and send phases of a backend call and then
//! only streams; `timeout` bounds the time to the answer's headers, and an idle timeout
//! (the same length) between body chunks cuts a stalled stream.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use weir_model::Flavor;

use crate::error::BackendError;
use crate::pipeline::deadline::Deadline;
use crate::pipeline::inbound::{strip_hop_by_hop, Inbound};
use crate::pipeline::merge::{completed_value, log_failure, text_response};
use crate::pipeline::stream::IdleTimeout;
use crate::plan::{CompiledBackend, CompiledEndpoint};
use crate::upstream::{build, gate, send, HttpClient};
use crate::{codec, Body, BoxError};

fn failed(
    ep: &CompiledEndpoint,
    backend: &CompiledBackend,
    err: BackendError,
    show_errors: bool,
) -> Response<Body> {
    backend.metrics.count(err.outcome());
    log_failure(ep, backend, &err);
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

/// Serves one request on a no-op endpoint; `body` is the client's, streamed upstream.
pub async fn handle(
    client: &HttpClient,
    ep: &CompiledEndpoint,
    inbound: Inbound,
    body: Incoming,
    flavor: Flavor,
    show_errors: bool,
    deadline: Deadline,
) -> Response<Body> {
    let backend = &ep.backends[0];
    let pass = match gate::enter(ep, backend, deadline.at()) {
        Ok(p) => p,
        Err(e) => return failed(ep, backend, e, show_errors),
    };
    // KrakenD (Go's client) asks for gzip on the client's behalf and then decodes what it
    // asked for; Weir's own mode leaves compression to the client.
    let client_asks =
        backend.forwards_accept_encoding && inbound.headers.contains_key(header::ACCEPT_ENCODING);
    let gateway_asks_gzip = flavor == Flavor::KrakenD && !client_asks;
    let result = deadline
        .run(async {
            let uri = build::uri(backend, &inbound, &[])?;
            let mut headers = build::headers(backend, &inbound, false);
            if gateway_asks_gzip {
                headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
            }
            let method = build::method(backend, &inbound, true);
            let has_body = inbound.headers.contains_key(header::CONTENT_LENGTH)
                || inbound.headers.contains_key(header::TRANSFER_ENCODING);
            if !has_body {
                let request = send::Replayable {
                    method,
                    uri,
                    headers,
                    body: Bytes::new(),
                    chunked: false,
                };
                return send::send(client, request, send::RedirectPolicy::of(backend)).await;
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
            send::send_streaming(client, upstream).await
        })
        .await;
    let resp = match result {
        Some(Ok(resp)) => resp,
        Some(Err(e)) => {
            pass.finish(backend, false);
            return failed(ep, backend, e, show_errors);
        }
        None => {
            pass.finish(backend, false);
            return failed(ep, backend, BackendError::Timeout, show_errors);
        }
    };
    let (mut parts, body) = resp.into_parts();
    let ok = matches!(parts.status, StatusCode::OK | StatusCode::CREATED);
    pass.finish(backend, ok);
    backend
        .metrics
        .count(if ok { "ok" } else { "failed_status" });
    strip_hop_by_hop(&mut parts.headers);
    // KrakenD never claims a no-op answer complete; Weir says whether the backend succeeded.
    let completed = ok && flavor == Flavor::Weir;
    parts
        .headers
        .insert(ep.completed_header.clone(), completed_value(completed));
    let body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    let mut body = IdleTimeout::new(body, ep.model.timeout).boxed_unsync();
    if gateway_asks_gzip && codec::is_gzip(&parts.headers) {
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.remove(header::CONTENT_LENGTH);
        body = codec::gunzip_stream(body);
    }
    Response::from_parts(parts, body)
}
