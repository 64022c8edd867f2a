//! Phase 2 of a backend call: build the request. The URI comes from the compiled pattern,
//! the headers from the request's forwardable set filtered by the backend's whitelist,
//! plus what the gateway always sends (`X-Forwarded-For`, `X-Forwarded-Host`, `Via`,
//! `User-Agent`, `X-Request-Id`, and the client's `traceparent`/`tracestate` when tracing
//! is off; with tracing on, each call carries its own span's instead:
//! [`crate::telemetry::trace::ClientSpan::inject`]).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Uri;
use serde_json::{Map, Value};

use crate::error::BackendError;
use crate::pipeline::inbound::{Inbound, X_FORWARDED_FOR, X_FORWARDED_HOST};
use crate::plan::CompiledBackend;
use crate::telemetry::request_id::X_REQUEST_ID;
use crate::telemetry::trace::{TRACEPARENT, TRACESTATE};

/// User-Agent sent upstream.
pub const USER_AGENT: &str = concat!("Weir/", env!("CARGO_PKG_VERSION"));

const X_FORWARDED_VIA: HeaderName = HeaderName::from_static("x-forwarded-via");

/// The backend URI for this request.
pub fn uri(
    backend: &CompiledBackend,
    inbound: &Inbound,
    previous: &[Option<Map<String, Value>>],
) -> Result<Uri, BackendError> {
    let query = inbound.query_for(&backend.query);
    backend
        .url
        .build(
            backend.pick_host(),
            &inbound.params.values,
            inbound.params.catch_all_raw.as_deref(),
            previous,
            inbound.claims.as_deref(),
            &query,
        )
        .map_err(|e| BackendError::Url(e.to_string()))
}

/// The headers sent upstream. `decodes` says the gateway reads the answer itself and so may
/// ask for gzip; a no-op answer goes to the client untouched, so only the client's own
/// `Accept-Encoding` (when whitelisted) may ask for compression there.
pub fn headers(backend: &CompiledBackend, inbound: &Inbound, decodes: bool) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(8);
    if !backend.headers.is_none() {
        for (name, value) in &inbound.forwardable {
            if backend.headers.allows(name) {
                out.append(name.clone(), value.clone());
            }
        }
    }
    // Claims replace whatever the client sent under those names, present or not.
    for (name, value) in &inbound.claim_headers {
        out.remove(name);
        if let Some(v) = value {
            out.insert(name.clone(), v.clone());
        }
    }
    out.insert(X_FORWARDED_FOR, inbound.forwarded_for.clone());
    if let Some(h) = &inbound.forwarded_host {
        out.insert(X_FORWARDED_HOST, h.clone());
    }
    // Always, whatever the whitelist: this is how a request that comes back to this gateway
    // (a backend redirecting into it) is recognised as a loop.
    out.insert(header::VIA, inbound.via.clone());
    // Always, whatever the whitelist: correlation across the gateway (the id was set by
    // the request entry; the trace context is the client's). A traced request's calls get
    // their own context instead (`ClientSpan::inject`), so the client's is not copied.
    let id = inbound.send_request_id.then_some(X_REQUEST_ID);
    let context = inbound.trace.is_none().then_some([TRACEPARENT, TRACESTATE]);
    for name in id.into_iter().chain(context.into_iter().flatten()) {
        if let Some(v) = inbound.headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    if out.contains_key(header::USER_AGENT) {
        // The client's own User-Agent goes upstream; say which gateway relayed it (KrakenD too).
        out.insert(X_FORWARDED_VIA, HeaderValue::from_static(USER_AGENT));
    } else {
        out.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    }
    if decodes && !out.contains_key(header::ACCEPT_ENCODING) {
        // As Go's client does; the decode phase decompresses gzip answers.
        out.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    out
}

/// The upstream method: the backend's, or the client's on `method: ANY` endpoints. On a
/// pass-through (`no-op`) endpoint a HEAD asks a GET backend for HEAD too: the body would be
/// dropped anyway. An aggregating endpoint needs the bodies to build its answer.
pub fn method(backend: &CompiledBackend, inbound: &Inbound, passthrough: bool) -> http::Method {
    match &backend.method {
        Some(m)
            if passthrough && *m == http::Method::GET && inbound.method == http::Method::HEAD =>
        {
            http::Method::HEAD
        }
        Some(m) => m.clone(),
        None => inbound.method.clone(),
    }
}
