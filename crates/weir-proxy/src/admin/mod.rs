//! The reserved endpoints: `/__health` (+ `/live`, `/ready`), `/__debug/`, `/__echo/`,
//! `/__stats`. Debug and echo are off by default: they reflect requests.
//!
//! They depend on a narrow [`AdminState`] (health flags and the metrics registry), not on
//! the server: the server owns one and hands it in.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::debug;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::pipeline::inbound::decode_query_component;
use crate::telemetry::metrics::Metrics;
use crate::{full, Body};
use weir_model::{Flavor, Settings};

/// What readiness is made of.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    draining: AtomicBool,
    degraded: Mutex<Option<String>>,
}

impl Health {
    /// Marks the gateway ready (or not): local mode at once, the controller after its
    /// first complete list.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Readiness turns 503 at once when a shutdown begins.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Something the gateway needs stopped working (a configuration watcher died): readiness
    /// says so until [`Health::recovered`].
    pub fn degrade(&self, reason: impl Into<String>) {
        if let Ok(mut d) = self.degraded.lock() {
            *d = Some(reason.into());
        }
    }

    /// The degradation is over.
    pub fn recovered(&self) {
        if let Ok(mut d) = self.degraded.lock() {
            *d = None;
        }
    }

    /// Why the gateway is degraded, if it is.
    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().ok().and_then(|d| d.clone())
    }

    /// Ready, not draining, not degraded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && !self.draining.load(Ordering::SeqCst)
            && self.degraded().is_none()
    }
}

/// What the reserved endpoints need.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Readiness.
    pub health: Arc<Health>,
    /// The registry `/__stats` renders.
    pub metrics: Arc<Metrics>,
}

const ECHO_MAX_BODY: usize = 1024 * 1024;

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether `path` is a reserved endpoint that is switched on.
pub fn claims(settings: &Settings, path: &str) -> bool {
    (settings.health_enabled && under(path, &settings.health_path))
        || (settings.debug && under(path, "/__debug"))
        || (settings.echo && under(path, "/__echo"))
        || (settings.stats_enabled && under(path, "/__stats"))
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Answers a path for which [`claims`] returned true.
pub async fn handle(
    state: &AdminState,
    settings: &Settings,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    if settings.health_enabled && under(&path, &settings.health_path) {
        let sub = &path[settings.health_path.len()..];
        return match sub {
            "/live" => json_response(
                StatusCode::OK,
                json!({"status": "ok", "now": now_rfc3339()}),
            ),
            "" | "/" | "/ready" => {
                if state.health.is_ready() {
                    let mut body = json!({"status": "ok", "now": now_rfc3339()});
                    if settings.flavor == Flavor::KrakenD {
                        // KrakenD's health document also lists its (async) agents.
                        body["agents"] = json!({});
                    }
                    json_response(StatusCode::OK, body)
                } else {
                    let mut body = json!({"status": "unavailable", "now": now_rfc3339()});
                    if let Some(reason) = state.health.degraded() {
                        body["reason"] = json!(reason);
                    }
                    json_response(StatusCode::SERVICE_UNAVAILABLE, body)
                }
            }
            _ => json_response(StatusCode::NOT_FOUND, json!({"status": "not found"})),
        };
    }
    if settings.debug && under(&path, "/__debug") {
        debug!(method = %req.method(), uri = %req.uri(), %peer, headers = ?req.headers(), "debug endpoint hit");
        return json_response(StatusCode::OK, json!({"message": "pong"}));
    }
    if settings.echo && under(&path, "/__echo") {
        return echo(req).await;
    }
    let mut resp = Response::new(full(Bytes::from(state.metrics.render())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, ECHO_MAX_BODY).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "body too large"}),
            )
        }
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(q) = parts.uri.query() {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            query
                .entry(decode_query_component(k))
                .or_default()
                .push(decode_query_component(v));
        }
    }
    json_response(
        StatusCode::OK,
        json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "path": parts.uri.path(),
            "query": query,
            "headers": headers,
            "body": body,
        }),
    )
}
