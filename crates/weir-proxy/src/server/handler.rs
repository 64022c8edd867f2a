//! One request from the wire to an answer: refused early (guard), a CORS preflight, a
//! reserved path, or routed to an endpoint's pipeline; then CORS headers, metrics and the
//! access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::info;

use weir_model::{self as model, Flavor};

use crate::plan::CompiledEndpoint;
use crate::router::Lookup;
use crate::server::{cors, guard, Role, Shared};
use crate::table::RouteTable;
use crate::telemetry::metrics;
use crate::upstream::{build::USER_AGENT, Clients};
use crate::{admin, full, pipeline, Body};

/// Logs `client disconnected` when a request future is dropped before it finished.
struct DisconnectGuard<'a> {
    armed: bool,
    method: &'a http::Method,
    path: &'a str,
    in_flight: &'a prometheus::IntGauge,
}

impl Drop for DisconnectGuard<'_> {
    fn drop(&mut self) {
        self.in_flight.dec();
        if self.armed {
            info!(method = %self.method, path = %self.path, "client disconnected");
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

fn request_host(req: &Request<Incoming>) -> Option<String> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    let host = if raw.starts_with('[') {
        raw.split(']').next().map(|h| format!("{h}]"))?
    } else {
        raw.split(':').next()?.to_string()
    };
    Some(host.to_ascii_lowercase())
}

/// KrakenD (gin's RedirectTrailingSlash): when only the other spelling of the path — with or
/// without a trailing `/` — is routed for this method, redirect there: 301 for GET, 307
/// otherwise so the method and body are kept. Never to a path a browser would read as
/// another host (`//evil`, `/\evil`).
fn trailing_slash_redirect(
    table: &RouteTable,
    host: Option<&str>,
    method: &http::Method,
    uri: &http::Uri,
) -> Option<Response<Body>> {
    let path = uri.path();
    let other = match path.strip_suffix('/') {
        Some("") => return None,
        Some(trimmed) => trimmed.to_string(),
        None => format!("{path}/"),
    };
    if other.starts_with("//") || other.starts_with("/\\") {
        return None;
    }
    if !matches!(table.router.lookup(host, method, &other), Lookup::Found(..)) {
        return None;
    }
    let location = match uri.query() {
        Some(q) => format!("{other}?{q}"),
        None => other,
    };
    let status = if method == http::Method::GET {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    let mut resp = Response::new(crate::empty());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    Some(resp)
}

/// `redirectHttp`: the same request on https, 308 so the method and body are kept.
fn to_https(req: &Request<Incoming>, port: u16) -> Response<Body> {
    let Some(host) = request_host(req) else {
        return plain(StatusCode::BAD_REQUEST, "400 a Host header is needed");
    };
    let authority = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut resp = Response::new(crate::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    match HeaderValue::from_str(&format!("https://{authority}{target}")) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => plain(StatusCode::BAD_REQUEST, "400 bad request target"),
    }
}

/// Answers one request.
pub async fn handle(
    shared: &Shared,
    clients: &Clients,
    role: Role,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let start = Instant::now();
    let table = shared.table();
    let settings = table.settings();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut guard = DisconnectGuard {
        armed: true,
        method: &method,
        path: &path,
        in_flight: &shared.metrics().in_flight,
    };
    shared.metrics().in_flight.inc();
    let serve_admin = matches!(role, Role::Admin | Role::Proxy { with_admin: true });
    let cors_policy = settings.cors.as_ref().filter(|_| role != Role::Admin);
    let origin = cors_policy.and_then(|_| req.headers().get(header::ORIGIN).cloned());
    let preflight = cors_policy.is_some() && cors::is_preflight(&method, req.headers());
    let is_admin = serve_admin && admin::claims(settings, &path);
    let mut matched: Option<Arc<CompiledEndpoint>> = None;
    let mut resp = if let Err(refusal) = guard::check(req.uri(), req.headers()) {
        plain(refusal.status(), refusal.text())
    } else if let Role::RedirectHttps { port } = role {
        to_https(&req, port)
    } else if let Some(policy) = cors_policy.filter(|_| preflight) {
        cors::preflight(policy, req.headers())
    } else if is_admin {
        admin::handle(&shared.admin_state(), settings, req, peer).await
    } else if role == Role::Admin || model::is_reserved(&path) {
        plain(StatusCode::NOT_FOUND, "404 page not found")
    } else {
        let host = if table.router.has_host_routes() {
            request_host(&req)
        } else {
            None
        };
        match table.router.lookup(host.as_deref(), &method, &path) {
            Lookup::Found(ep, params) => {
                let mut r =
                    pipeline::handle(&table, shared.metrics(), clients, &ep, params, req, peer)
                        .await;
                if settings.flavor == Flavor::KrakenD {
                    // KrakenD names itself on every endpoint answer; Weir says who it is.
                    r.headers_mut()
                        .insert("x-krakend", HeaderValue::from_static(USER_AGENT));
                }
                matched = Some(ep);
                r
            }
            Lookup::MethodNotAllowed(allow) => {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed");
                r.headers_mut().insert(header::ALLOW, allow);
                r.headers_mut().insert(
                    settings.flavor.completed_header(),
                    HeaderValue::from_static("false"),
                );
                r
            }
            Lookup::NotFound => {
                trailing_slash_redirect(&table, host.as_deref(), &method, req.uri())
                    .unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "404 page not found"))
            }
        }
    };
    if let Some(policy) = cors_policy.filter(|_| !preflight) {
        cors::decorate(policy, origin.as_ref(), &method, resp.headers_mut());
    }
    guard.armed = false;
    let status = resp.status().as_u16();
    match &matched {
        Some(ep) => ep.metrics.observe(status, start.elapsed().as_secs_f64()),
        None => shared.metrics().count_other(
            if is_admin {
                metrics::RESERVED
            } else {
                metrics::UNMATCHED
            },
            &method,
            status,
        ),
    }
    if settings.access_log {
        shared
            .access_log()
            .write(resp.status(), start.elapsed(), peer.ip(), &method, &path);
    }
    resp
}
