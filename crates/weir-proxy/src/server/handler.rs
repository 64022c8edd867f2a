//! One request from the wire to an answer: refused early (guard), a CORS preflight, a
//! reserved path, or routed to an endpoint's pipeline; then CORS headers, metrics and the
//! access log.
//!
//! Every request gets its id here (`X-Request-Id`: in the request the pipeline sees, in
//! the answer, in the access log, and current for the application log while it is
//! served), and, when tracing is on, its server span (handed to the pipeline as an
//! argument: a request extension would cost a map and two allocations per request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::info;

use weir_model::{self as model, Flavor};

use crate::plan::CompiledEndpoint;
use crate::router::Lookup;
use crate::server::{cors, guard, Role, Shared};
use crate::table::RouteTable;
use crate::telemetry::access_log::Entry;
use crate::telemetry::body::{grpc_status, Observed};
use crate::telemetry::metrics;
use crate::telemetry::request_id::{self, Labels, Scoped, X_REQUEST_ID};
use crate::telemetry::trace::{ServerOutcome, TraceScope};
use crate::upstream::{build::USER_AGENT, Clients};
use crate::{admin, full, pipeline, Body};

/// Logs `client disconnected` when a request future is dropped before it finished.
struct DisconnectGuard<'a> {
    armed: bool,
    method: &'a http::Method,
    path: &'a str,
    request_id: &'a HeaderValue,
    in_flight: &'a prometheus::IntGauge,
}

impl Drop for DisconnectGuard<'_> {
    fn drop(&mut self) {
        self.in_flight.dec();
        if self.armed {
            let id = String::from_utf8_lossy(self.request_id.as_bytes());
            info!(method = %self.method, path = %self.path, request_id = %id, "client disconnected");
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
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let table = shared.table();
    let request_id = request_id::of(req.headers());
    if table.settings().flavor == Flavor::Weir {
        // Backends get this id whatever the client sent (`upstream/build.rs`). KrakenD's
        // mode leaves the client's headers as they came: KrakenD sends no id upstream.
        req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
    }
    let trace = match shared.tracer() {
        // Probes and scrapes of the reserved paths are not traced.
        Some(tracer) if role != Role::Admin && !model::is_reserved(req.uri().path()) => {
            Some(tracer.server_span(req.headers(), req.method()))
        }
        _ => None,
    };
    let labels = Arc::new(Labels {
        request_id,
        trace_id: trace.as_ref().map(TraceScope::trace_id),
    });
    Scoped::new(
        labels.clone(),
        serve(
            shared,
            table,
            clients,
            role,
            req,
            peer,
            Ids {
                labels: &labels,
                trace,
            },
        ),
    )
    .await
}

/// What ties a request's log lines and spans together.
struct Ids<'a> {
    labels: &'a Labels,
    trace: Option<TraceScope>,
}

async fn serve(
    shared: &Shared,
    table: Arc<RouteTable>,
    clients: &Clients,
    role: Role,
    req: Request<Incoming>,
    peer: SocketAddr,
    ids: Ids<'_>,
) -> Response<Body> {
    let Ids { labels, trace } = ids;
    let start = Instant::now();
    let settings = table.settings();
    let method = req.method().clone();
    // A clone of the parsed URI shares its bytes (no copy of the path per request).
    let uri = req.uri().clone();
    let path = uri.path();
    let mut guard = DisconnectGuard {
        armed: true,
        method: &method,
        path,
        request_id: &labels.request_id,
        in_flight: &shared.metrics().in_flight,
    };
    shared.metrics().in_flight.inc();
    let serve_admin = matches!(role, Role::Admin | Role::Proxy { with_admin: true });
    let cors_policy = table.cors().filter(|_| role != Role::Admin);
    let origin = cors_policy.and_then(|_| req.headers().get(header::ORIGIN).cloned());
    let preflight = cors_policy.is_some() && cors::is_preflight(&method, req.headers());
    let is_admin = serve_admin && admin::claims(settings, path);
    let mut matched: Option<Arc<CompiledEndpoint>> = None;
    let mut resp = if let Err(refusal) = guard::check(req.uri(), req.headers()) {
        plain(refusal.status(), refusal.text())
    } else if let Role::RedirectHttps { port } = role {
        to_https(&req, port)
    } else if let Some(policy) = cors_policy.filter(|_| preflight) {
        cors::preflight(policy, req.headers())
    } else if is_admin {
        admin::handle(&shared.admin_state(), settings, req, peer).await
    } else if role == Role::Admin || model::is_reserved(path) {
        plain(StatusCode::NOT_FOUND, "404 page not found")
    } else {
        let host = if table.router.has_host_routes() {
            request_host(&req)
        } else {
            None
        };
        match table.router.lookup(host.as_deref(), &method, path) {
            Lookup::Found(ep, params) => {
                let grpc = ep.model.output_encoding == model::OutputEncoding::NoOp
                    && pipeline::grpc::is_grpc(req.headers());
                let mut r = pipeline::handle(
                    &table,
                    shared.metrics(),
                    clients,
                    &ep,
                    params,
                    req,
                    pipeline::Sender {
                        peer,
                        trace: trace.clone(),
                    },
                )
                .await;
                r = observe_body(&ep, r, grpc);
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
    let route = matched.as_ref().map(|ep| ep.model.path.as_str());
    match &matched {
        Some(ep) => {
            ep.metrics.observe(status, start.elapsed().as_secs_f64());
            if status == 200
                && ep.model.output_encoding != model::OutputEncoding::NoOp
                && resp.headers().get(&ep.completed_header)
                    == Some(&HeaderValue::from_static("false"))
            {
                ep.metrics.partial();
            }
        }
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
    if let Some(scope) = &trace {
        // The endpoint's compiled header name where one matched: looking a `&str` up
        // parses and hashes it first.
        let completed = match &matched {
            Some(ep) => resp.headers().get(&ep.completed_header),
            None => resp.headers().get(settings.flavor.completed_header()),
        }
        .map(|v| v.as_bytes() == b"true");
        scope.finish(ServerOutcome {
            endpoint: matched.as_ref().map(|ep| &ep.model),
            uri: &uri,
            status: resp.status(),
            completed,
            peer: peer.ip(),
            request_id: &labels.request_id,
        });
    }
    if settings.access_log {
        let trace_hex = labels.trace_hex();
        let entry = Entry {
            status: resp.status(),
            latency: start.elapsed(),
            peer: peer.ip(),
            method: &method,
            path,
            route,
            bytes: resp.body().size_hint().exact(),
            request_id: labels.request_id.as_bytes(),
            trace_id: trace_hex.as_ref().map(|t| t.as_str()),
        };
        shared
            .access_log()
            .write(&entry, settings.access_log_format);
    }
    resp.headers_mut()
        .insert(X_REQUEST_ID, labels.request_id.clone());
    resp
}

/// Counts an endpoint answer's body bytes (at once when its size is known, else as it
/// streams) and, for a gRPC call, the `grpc-status` it ends with.
fn observe_body(ep: &CompiledEndpoint, resp: Response<Body>, grpc: bool) -> Response<Body> {
    let grpc = grpc.then(|| ep.metrics.grpc());
    let early = grpc.and_then(|g| grpc_status(resp.headers()).map(|code| (g, code)));
    if let Some((g, code)) = early {
        // A trailers-only answer (a gateway-side failure is one too): the status is final.
        g[code].inc();
    }
    let exact = resp.body().size_hint().exact();
    if let Some(n) = exact {
        ep.metrics.response_bytes().inc_by(n);
    }
    let stream_grpc = grpc.filter(|_| early.is_none()).cloned();
    if exact.is_some() && stream_grpc.is_none() {
        return resp;
    }
    let bytes = exact.is_none().then(|| ep.metrics.response_bytes().clone());
    resp.map(|body| Observed::new(body, bytes, stream_grpc).boxed_unsync())
}
