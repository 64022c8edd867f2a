//! Calling one backend: URL from the template (every client value percent-encoded), the
//! whitelisted headers and query strings, redirects followed, the answer decoded and
//! transformed.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use weir_model::{self as model, Piece};

use crate::error::BackendError;
use crate::qos::{CallGuard, Outcome};
use crate::table::{CompiledBackend, CompiledEndpoint};
use crate::telemetry::metrics::Scope;
use crate::{codec, full, transform, Body};

/// The pooled upstream client (HTTP/1.1 keep-alive, http and https).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Largest backend body the gateway decodes (no-op bodies are streamed and not limited).
pub const MAX_BACKEND_BODY: usize = 64 * 1024 * 1024;

const MAX_REDIRECTS: usize = 10;

/// Characters left as they are in a client value placed into a backend URL: RFC 3986
/// unreserved only. Everything else, `/ ? # %` included, is percent-encoded.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// User-Agent sent upstream.
pub const USER_AGENT: &str = concat!("Weir/", env!("CARGO_PKG_VERSION"));

/// Builds the shared client. Called once per process, not per request.
pub fn new_client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

/// What the client sent, reduced to what backends may see.
pub struct Inbound {
    /// Client method.
    pub method: http::Method,
    /// Client headers.
    pub headers: HeaderMap,
    /// Raw query string.
    pub query: Option<String>,
    /// Path parameter values, aligned with the endpoint template's names.
    pub params: Vec<String>,
    /// Buffered request body.
    pub body: Bytes,
    /// Client address.
    pub peer: IpAddr,
    /// Send buffered bodies chunked, as KrakenD does (Weir sends `Content-Length`).
    pub chunked_bodies: bool,
}

/// The header names listed in `Connection`, lower-cased: hop-by-hop for this message too.
pub fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

/// Decodes one query-string key or value (`+` is a space).
pub fn decode_query_component(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Hop-by-hop headers: meaningful for one connection only, never forwarded.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

fn lookup_path<'a>(data: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = data.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn push_encoded(out: &mut String, value: &str) {
    // A lone `.` or `..` would be a dot-segment; encode the dots so no backend resolves it.
    if value == "." || value == ".." {
        out.push_str(&"%2E".repeat(value.len()));
    } else {
        out.extend(utf8_percent_encode(value, VALUE));
    }
}

/// The backend URI for this request: host, template filled with encoded values, and the
/// whitelisted query strings appended.
pub fn build_uri(
    host: &model::BaseUrl,
    ep: &model::Endpoint,
    backend: &CompiledBackend,
    inbound: &Inbound,
    previous: &[Option<Map<String, Value>>],
) -> Result<Uri, BackendError> {
    let mut url = String::with_capacity(128);
    url.push_str(if host.https { "https://" } else { "http://" });
    url.push_str(&host.authority);
    url.push_str(&host.prefix);
    for piece in backend.model.url_pattern.pieces() {
        match piece {
            Piece::Literal(s) => url.push_str(s),
            Piece::Param(name) => {
                if let Some(i) = ep.path.params().iter().position(|p| p == name) {
                    push_encoded(&mut url, inbound.params.get(i).map_or("", String::as_str));
                } else if let Some(n) = weir_model::convert::sequential_ref(name) {
                    let field = &name[name.find('_').map_or(0, |i| i + 1)..];
                    let value = previous
                        .get(n)
                        .and_then(Option::as_ref)
                        .and_then(|data| lookup_path(data, field));
                    push_encoded(&mut url, &value.map(value_text).unwrap_or_default());
                }
            }
        }
    }
    if let Some(q) = inbound.query.as_deref() {
        let mut first = !url.contains('?');
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.split_once('=') {
                Some((k, v)) => (decode_query_component(k), Some(decode_query_component(v))),
                None => (decode_query_component(pair), None),
            };
            if backend.query.allows(&key) {
                // Re-encoded from the decoded parts, so what the filter allowed is exactly
                // what the backend reads (no `a=1;admin=true` smuggling).
                url.push(if first { '?' } else { '&' });
                first = false;
                url.extend(utf8_percent_encode(&key, VALUE));
                if let Some(v) = value {
                    url.push('=');
                    url.extend(utf8_percent_encode(&v, VALUE));
                }
            }
        }
    }
    url.parse::<Uri>()
        .map_err(|e| BackendError::Connect(format!("invalid backend URL {url}: {e}")))
}

/// The headers sent upstream: the whitelisted ones (never hop-by-hop), plus
/// `X-Forwarded-For`, `X-Forwarded-Host` and `User-Agent`. `decodes` says the gateway reads
/// the answer itself and so may ask for gzip; a no-op answer goes to the client untouched,
/// so only the client's own `Accept-Encoding` (when whitelisted) may ask for compression.
pub fn upstream_headers(backend: &CompiledBackend, inbound: &Inbound, decodes: bool) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(8);
    let connection_listed = connection_tokens(&inbound.headers);
    for (name, value) in &inbound.headers {
        if is_hop_by_hop(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name.as_str() == "x-forwarded-for"
            || name.as_str() == "x-forwarded-host"
            || connection_listed.iter().any(|c| c == name.as_str())
        {
            continue;
        }
        if backend.headers.allows(name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&inbound.peer.to_string()) {
        out.insert("x-forwarded-for", v);
    }
    if let Some(h) = inbound.headers.get(header::HOST) {
        out.insert("x-forwarded-host", h.clone());
    }
    if out.contains_key(header::USER_AGENT) {
        // The client's own User-Agent goes upstream; say which gateway relayed it (KrakenD too).
        out.insert("x-forwarded-via", HeaderValue::from_static(USER_AGENT));
    } else {
        out.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    }
    if decodes && !out.contains_key(header::ACCEPT_ENCODING) {
        // As Go's client does; `call` decodes gzip answers (no-op passes them through).
        out.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    }
    out
}

fn resolve_location(current: &Uri, location: &str) -> Option<Uri> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().ok();
    }
    let scheme = current.scheme_str().unwrap_or("http");
    let authority = current.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let base = current.path();
        let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{location}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

/// Sends a request with a replayable body (chunked when `chunked_body`, as KrakenD sends
/// it; with `Content-Length` otherwise), following redirects the way Go's client does
/// (303 and, for POST, 301/302 turn into GET; 307/308 keep method and body).
pub async fn fetch(
    client: &HttpClient,
    mut method: http::Method,
    mut uri: Uri,
    mut headers: HeaderMap,
    mut body: Bytes,
    chunked_body: bool,
) -> Result<Response<Incoming>, BackendError> {
    for _ in 0..=MAX_REDIRECTS {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .body(if body.is_empty() && method != http::Method::POST {
                crate::empty()
            } else if chunked_body && !body.is_empty() {
                // KrakenD never forwards Content-Length, so its bodies go chunked.
                chunked(body.clone())
            } else {
                full(body.clone())
            })
            .map_err(|e| BackendError::Connect(e.to_string()))?;
        *req.headers_mut() = headers.clone();
        let resp = client
            .request(req)
            .await
            .map_err(|e| BackendError::Connect(error_chain(&e)))?;
        let status = resp.status();
        if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let Some(location) = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
        else {
            return Ok(resp);
        };
        let next = resolve_location(&uri, location)
            .ok_or_else(|| BackendError::Redirect(format!("unusable Location {location:?}")))?;
        let keep_body = matches!(status.as_u16(), 307 | 308);
        if !keep_body && method != http::Method::GET && method != http::Method::HEAD {
            method = http::Method::GET;
            body = Bytes::new();
            headers.remove(header::CONTENT_TYPE);
        }
        let same_origin = next.scheme() == uri.scheme() && next.authority() == uri.authority();
        if same_origin {
            if let Ok(v) = HeaderValue::from_str(&uri.to_string()) {
                headers.insert(header::REFERER, v);
            }
        } else {
            // Another host, or a downgrade to plain http: the client's forwarded headers
            // (credentials, API keys, cookies) and the previous URL stay behind.
            headers = cross_origin_headers(&headers);
        }
        uri = next;
    }
    Err(BackendError::Redirect(format!(
        "stopped after {MAX_REDIRECTS} redirects"
    )))
}

/// Headers that may follow a redirect to another origin: none of them carries credentials.
const CROSS_ORIGIN_SAFE: [HeaderName; 8] = [
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::CONTENT_TYPE,
    header::USER_AGENT,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-via"),
];

fn cross_origin_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(CROSS_ORIGIN_SAFE.len());
    for name in CROSS_ORIGIN_SAFE {
        for v in headers.get_all(&name) {
            kept.append(name.clone(), v.clone());
        }
    }
    kept
}

fn chunked(body: Bytes) -> Body {
    use http_body_util::StreamBody;
    let frame = Ok::<_, crate::BoxError>(hyper::body::Frame::data(body));
    StreamBody::new(futures_util::stream::iter([frame])).boxed_unsync()
}

/// The full text of an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// Applies the backend's transforms in DESIGN.md order: target → allow/deny → mapping →
/// group (flatmap, when present, replaces allow/deny/mapping).
pub fn apply_transforms(b: &model::Backend, mut data: Map<String, Value>) -> Map<String, Value> {
    if let Some(t) = &b.target {
        data = transform::target(data, t);
    }
    if !b.flatmap.is_empty() {
        transform::flatmap(&mut data, &b.flatmap);
    } else {
        if !b.allow.is_empty() {
            data = transform::allow(data, &b.allow);
        } else if !b.deny.is_empty() {
            transform::deny(&mut data, &b.deny);
        }
        if !b.mapping.is_empty() {
            transform::mapping(&mut data, &b.mapping);
        }
    }
    if let Some(g) = &b.group {
        data = transform::group(data, g);
    }
    data
}

/// Calls one backend once, within its rate limit and circuit breaker, and returns its
/// decoded, transformed answer. `deadline` tells a timeout from a cancellation.
pub async fn call(
    client: &HttpClient,
    ep: &CompiledEndpoint,
    backend: &CompiledBackend,
    inbound: &Inbound,
    previous: &[Option<Map<String, Value>>],
    deadline: tokio::time::Instant,
) -> Result<Map<String, Value>, BackendError> {
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
    let started = std::time::Instant::now();
    let result = call_once(client, ep, backend, inbound, previous).await;
    backend
        .metrics
        .observe_duration(started.elapsed().as_secs_f64());
    if let Some(guard) = guard {
        guard.finish(match &result {
            Ok(_) => Outcome::Success,
            // Failures reported to the client as details do not trip the breaker.
            Err(_) if backend.model.errors.return_details.is_some() => Outcome::Ignored,
            Err(_) => Outcome::Failure,
        });
    }
    result
}

async fn call_once(
    client: &HttpClient,
    ep: &CompiledEndpoint,
    backend: &CompiledBackend,
    inbound: &Inbound,
    previous: &[Option<Map<String, Value>>],
) -> Result<Map<String, Value>, BackendError> {
    let host = backend.pick_host();
    let uri = build_uri(host, &ep.model, backend, inbound, previous)?;
    let headers = upstream_headers(backend, inbound, true);
    let method = http::Method::from(backend.model.method);
    let resp = fetch(
        client,
        method,
        uri,
        headers,
        inbound.body.clone(),
        inbound.chunked_bodies,
    )
    .await?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzipped = codec::is_gzip(resp.headers());
    let mut body = Limited::new(resp.into_body(), MAX_BACKEND_BODY)
        .collect()
        .await
        .map_err(|e| BackendError::Body(error_chain(e.as_ref())))?
        .to_bytes();
    if gzipped {
        body = codec::gunzip(&body, MAX_BACKEND_BODY).map_err(BackendError::Body)?;
    }
    if status != StatusCode::OK && status != StatusCode::CREATED {
        return Err(BackendError::Status {
            status,
            body,
            content_type,
        });
    }
    let data = codec::decode(backend.model.encoding, backend.model.is_collection, &body)
        .map_err(BackendError::Decode)?;
    Ok(apply_transforms(&backend.model, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_so_paths_cannot_change() {
        let mut s = String::new();
        push_encoded(&mut s, "../admin?x=1#f");
        assert_eq!(s, "..%2Fadmin%3Fx%3D1%23f");
        let mut s = String::new();
        push_encoded(&mut s, "..");
        assert_eq!(s, "%2E%2E");
        let mut s = String::new();
        push_encoded(&mut s, "a b%2F");
        assert_eq!(s, "a%20b%252F");
    }

    #[test]
    fn resolves_redirect_locations() {
        let cur: Uri = "http://h:1/a/b?x".parse().unwrap();
        assert_eq!(
            resolve_location(&cur, "/c").unwrap().to_string(),
            "http://h:1/c"
        );
        assert_eq!(
            resolve_location(&cur, "c").unwrap().to_string(),
            "http://h:1/a/c"
        );
        assert_eq!(
            resolve_location(&cur, "https://o/z").unwrap().to_string(),
            "https://o/z"
        );
    }

    #[test]
    fn looks_up_dot_paths() {
        let data: Map<String, Value> =
            serde_json::from_str(r#"{"a":{"b":[{"c":7}]},"s":"x"}"#).unwrap();
        assert_eq!(lookup_path(&data, "a.b.0.c"), Some(&Value::from(7)));
        assert_eq!(lookup_path(&data, "s"), Some(&Value::from("x")));
        assert_eq!(lookup_path(&data, "a.zz"), None);
    }
}
