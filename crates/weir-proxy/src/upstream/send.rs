//! Phase 3 of a backend call: send it through the worker's pooled client and follow
//! redirects the way Go's client does (303 and, for POST, 301/302 turn into GET; 307/308
//! keep method and body), within the backend's redirect policy.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::BackendError;
use crate::plan::CompiledBackend;
use crate::upstream::client::HttpClient;
use crate::{full, Body};

/// Most redirects followed for one call (Go's client stops at 10 too).
pub const MAX_REDIRECTS: usize = 10;

/// Which redirects a call may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectPolicy {
    /// Follow at all.
    pub follow: bool,
    /// Only to the same scheme, host and port.
    pub same_origin_only: bool,
}

impl RedirectPolicy {
    /// The policy of a backend.
    pub fn of(backend: &CompiledBackend) -> Self {
        Self {
            follow: backend.model().follow_redirects,
            same_origin_only: backend.model().redirect_same_host_only,
        }
    }
}

/// A request whose body can be sent again on a redirect. Its headers are built per attempt
/// by `headers` (cheap and deterministic), so the common, unredirected call never copies
/// a header map.
pub struct Replayable<H: Fn() -> HeaderMap> {
    /// Method.
    pub method: http::Method,
    /// Target.
    pub uri: Uri,
    /// Builds the headers.
    pub headers: H,
    /// Buffered body.
    pub body: Bytes,
    /// Send the body chunked, as KrakenD does (else with `Content-Length`).
    pub chunked: bool,
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

/// Sends a streamed request once (no redirects: a streamed body cannot be replayed).
pub async fn send_streaming(
    client: &HttpClient,
    req: Request<Body>,
) -> Result<Response<Incoming>, BackendError> {
    client
        .request(req)
        .await
        .map_err(|e| BackendError::Connect(error_chain(&e)))
}

/// Sends `req`, following redirects as `policy` allows. A redirect that is not followed is
/// returned as the answer.
pub async fn send<H: Fn() -> HeaderMap>(
    client: &HttpClient,
    req: Replayable<H>,
    policy: RedirectPolicy,
) -> Result<Response<Incoming>, BackendError> {
    let Replayable {
        mut method,
        mut uri,
        headers: build_headers,
        mut body,
        chunked: chunked_body,
    } = req;
    // What earlier redirects changed about the headers.
    let mut to_get = false;
    let mut crossed_origin = false;
    let mut referer: Option<HeaderValue> = None;
    for _ in 0..=MAX_REDIRECTS {
        let mut headers = build_headers();
        if to_get {
            headers.remove(header::CONTENT_TYPE);
        }
        if crossed_origin {
            headers = cross_origin_headers(&headers);
        }
        if let Some(r) = &referer {
            headers.insert(header::REFERER, r.clone());
        }
        let request_body = if body.is_empty() && method != http::Method::POST {
            crate::empty()
        } else if chunked_body && !body.is_empty() {
            // KrakenD never forwards Content-Length, so its bodies go chunked.
            chunked(body.clone())
        } else {
            full(body.clone())
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .body(request_body)
            .map_err(|e| BackendError::Connect(e.to_string()))?;
        *request.headers_mut() = headers;
        let resp = client
            .request(request)
            .await
            .map_err(|e| BackendError::Connect(error_chain(&e)))?;
        let status = resp.status();
        if !policy.follow || !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
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
        let same_origin = next.scheme() == uri.scheme() && next.authority() == uri.authority();
        if policy.same_origin_only && !same_origin {
            return Ok(resp);
        }
        let keep_body = matches!(status.as_u16(), 307 | 308);
        if !keep_body && method != http::Method::GET && method != http::Method::HEAD {
            method = http::Method::GET;
            body = Bytes::new();
            to_get = true;
        }
        if same_origin && !crossed_origin {
            referer = HeaderValue::from_str(&uri.to_string()).ok();
        } else {
            // Another host, or a downgrade to plain http: the client's forwarded headers
            // (credentials, API keys, cookies) and the previous URL stay behind, for good.
            crossed_origin = true;
            referer = None;
        }
        uri = next;
    }
    Err(BackendError::Redirect(format!(
        "stopped after {MAX_REDIRECTS} redirects"
    )))
}

/// Headers that may follow a redirect to another origin: none of them carries credentials.
const CROSS_ORIGIN_SAFE: [HeaderName; 12] = [
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::CONTENT_TYPE,
    header::USER_AGENT,
    header::VIA,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-via"),
    crate::telemetry::request_id::X_REQUEST_ID,
    crate::telemetry::trace::TRACEPARENT,
    crate::telemetry::trace::TRACESTATE,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
