//! gRPC pass-through on `no-op` endpoints (the backend needs `http2: true`): request and
//! response stream as they are, trailers (`grpc-status`, `grpc-message`) included. A
//! failure on the gateway's side becomes a gRPC error (`grpc-status: 14`, UNAVAILABLE), which
//! gRPC clients understand, instead of an HTML-ish 500.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::Body;

/// Whether the request is a gRPC call.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Protocol headers a gRPC backend needs whatever the whitelist says (metadata stays under
/// `inputHeaders`).
pub fn protocol_headers(client: &HeaderMap, out: &mut HeaderMap) {
    const NAMES: [HeaderName; 4] = [
        header::CONTENT_TYPE,
        HeaderName::from_static("grpc-timeout"),
        HeaderName::from_static("grpc-encoding"),
        HeaderName::from_static("grpc-accept-encoding"),
    ];
    for name in NAMES {
        if let Some(v) = client.get(&name) {
            out.insert(name, v.clone());
        }
    }
    // Hop-by-hop in general, but gRPC's one allowed value must reach the server.
    out.insert(header::TE, HeaderValue::from_static("trailers"));
}

/// UNAVAILABLE: what a gRPC client retries.
pub const UNAVAILABLE: u32 = 14;

/// A trailers-only gRPC error answer.
pub fn error(code: u32, message: &str) -> Response<Body> {
    let mut resp = Response::new(crate::empty());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    // grpc-message is percent-encoded text (gRPC over HTTP/2 spec).
    const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    let encoded: String = percent_encoding::utf8_percent_encode(message, GRPC_MESSAGE).collect();
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        h.insert("grpc-message", v);
    }
    resp
}
