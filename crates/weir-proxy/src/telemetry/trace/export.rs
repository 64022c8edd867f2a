//! The exporter: one thread with a runtime of its own that takes the queued spans once per
//! batch or per [`EXPORT_DELAY`], encodes them (`otlp.rs`) and posts them to the collector
//! over OTLP/HTTP (protobuf) or OTLP/gRPC (h2c). Never on a proxy worker: a slow or absent
//! collector fills the bounded queue (spans dropped and counted), and costs a warning per
//! [`EXPORT_LOG_WINDOW`], never a request's latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, TE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus::IntCounter;
use tracing::warn;

use weir_model::OtlpProtocol;

use super::otlp::Encoder;
use super::record::Queue;
use super::{BATCH, EXPORT_DELAY, EXPORT_LOG_WINDOW, EXPORT_TIMEOUT, FLUSH_TIMEOUT};
use crate::telemetry::log::LogGate;

/// Largest answer read from a collector.
const MAX_COLLECTOR_ANSWER: usize = 1024 * 1024;

/// The gRPC method of an OTLP trace export.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Why one export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No answer within [`EXPORT_TIMEOUT`].
    #[error("the collector did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or exchanging failed.
    #[error("cannot reach the collector: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The collector answered with an HTTP error.
    #[error("the collector answered {0}")]
    Status(StatusCode),
    /// The collector answered with a gRPC error.
    #[error("the collector answered grpc-status {code}: {message}")]
    Grpc {
        /// `grpc-status`.
        code: String,
        /// `grpc-message`.
        message: String,
    },
}

/// Counters the exporter keeps.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Exports the collector accepted.
    pub ok: IntCounter,
    /// Exports that failed (their spans are dropped).
    pub failed: IntCounter,
    /// Spans the collector accepted.
    pub spans: IntCounter,
    /// Spans dropped: queue full, or their export failed.
    pub dropped: IntCounter,
}

/// Where and how spans are sent.
#[derive(Debug, Clone)]
pub struct Target {
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`, see [`env_headers`]).
    pub headers: HeaderMap,
    /// OTLP/HTTP or OTLP/gRPC.
    pub protocol: OtlpProtocol,
    /// The collector's URL (`.../v1/traces`, or the gRPC server's `http://host:port`).
    pub endpoint: String,
    /// `service.name`.
    pub service: String,
}

/// A running exporter thread.
#[derive(Debug)]
pub struct Exporter {
    queue: Arc<Queue>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Exporter {
    /// Starts the thread.
    pub fn start(queue: Arc<Queue>, target: Target, counters: Counters) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (queue, stop) = (queue.clone(), stop.clone());
            std::thread::Builder::new()
                .name("weir-otlp".into())
                .spawn(move || runtime.block_on(run(queue, stop, target, counters)))?
        };
        Ok(Self {
            queue,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Asks the thread to export what is queued and stop; with `wait`, blocks until it has
    /// (up to [`FLUSH_TIMEOUT`] for the last export).
    pub fn stop(&self, wait: bool) {
        self.stop.store(true, Ordering::Release);
        self.queue.wake.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (true, Some(t)) = (wait, thread) {
            let _ = t.join();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Never blocks: the thread flushes what is left on its own and ends.
        self.stop(false);
    }
}

async fn run(queue: Arc<Queue>, stop: Arc<AtomicBool>, target: Target, counters: Counters) {
    let transport = Transport::new(&target);
    let failures = LogGate::new(1, EXPORT_LOG_WINDOW);
    let mut encoder = Encoder::default();
    let mut spare = Vec::new();
    loop {
        let _ = tokio::time::timeout(EXPORT_DELAY, queue.wake.notified()).await;
        let stopping = stop.load(Ordering::Acquire);
        let mut spans = queue.take(spare);
        counters.dropped.inc_by(queue.take_dropped());
        for batch in spans.chunks(BATCH) {
            let grpc = target.protocol == OtlpProtocol::Grpc;
            let body = encoder.body(&target.service, batch, grpc);
            let limit = if stopping {
                FLUSH_TIMEOUT
            } else {
                EXPORT_TIMEOUT
            };
            let result = tokio::time::timeout(limit, transport.send(body.clone()))
                .await
                .unwrap_or(Err(ExportError::Timeout(limit)));
            encoder.recycle(body);
            let n = batch.len() as u64;
            match result {
                Ok(()) => {
                    counters.ok.inc();
                    counters.spans.inc_by(n);
                }
                Err(e) => {
                    counters.failed.inc();
                    counters.dropped.inc_by(n);
                    if let Some(suppressed) = failures.admit() {
                        warn!(
                            collector = %target.endpoint,
                            error = %crate::telemetry::log::chain(&e),
                            spans = n,
                            suppressed,
                            "trace export failed; spans dropped"
                        );
                    }
                }
            }
        }
        // The records (and the table pieces they share) are released here, on this thread;
        // then the encoder forgets the endpoints only it still holds.
        spans.clear();
        spare = spans;
        encoder.evict();
        if stopping {
            return;
        }
    }
}

/// The headers OpenTelemetry's exporter variables ask for: `OTEL_EXPORTER_OTLP_HEADERS`,
/// then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (which wins for a name in both); each a
/// comma-separated list of `name=value` with percent-encoded values (a collector's API
/// key, for instance). An entry that is not a valid header is left out with a warning.
pub fn env_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Ok(list) = std::env::var(var) {
            for (name, value) in parse_headers(&list, var) {
                headers.insert(name, value);
            }
        }
    }
    headers
}

fn parse_headers(list: &str, var: &str) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry.split_once('=').and_then(|(name, value)| {
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .ok()?;
            Some((
                HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                HeaderValue::from_str(&value).ok()?,
            ))
        });
        match parsed {
            Some(h) => out.push(h),
            None => {
                // The entry may hold a secret: only its name part is logged.
                let name = entry.split('=').next().unwrap_or_default();
                warn!(
                    variable = var,
                    header = name,
                    "not a valid header; left out of trace exports"
                );
            }
        }
    }
    out
}

/// OTLP/HTTP or OTLP/gRPC over the hyper client already in the tree.
enum Transport {
    Http {
        client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
        endpoint: String,
        headers: HeaderMap,
    },
    Grpc {
        client: Client<HttpConnector, Full<Bytes>>,
        uri: String,
        headers: HeaderMap,
    },
}

impl Transport {
    fn new(target: &Target) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(EXPORT_TIMEOUT));
        match target.protocol {
            OtlpProtocol::HttpProtobuf => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_webpki_roots()
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Transport::Http {
                    client: Client::builder(TokioExecutor::new()).build(https),
                    endpoint: target.endpoint.clone(),
                    headers: target.headers.clone(),
                }
            }
            OtlpProtocol::Grpc => Transport::Grpc {
                // gRPC without TLS is HTTP/2 with prior knowledge (h2c).
                client: Client::builder(TokioExecutor::new())
                    .http2_only(true)
                    .build(http),
                uri: format!("{}{GRPC_EXPORT}", target.endpoint.trim_end_matches('/')),
                headers: target.headers.clone(),
            },
        }
    }

    /// Posts one encoded export body (framed already for gRPC).
    async fn send(&self, body: Bytes) -> Result<(), ExportError> {
        let transport = |e| ExportError::Transport(Box::new(e));
        match self {
            Transport::Http {
                client,
                endpoint,
                headers,
            } => {
                let mut req = Request::builder()
                    .method(Method::POST)
                    .uri(endpoint.as_str())
                    .body(Full::new(body))
                    .map_err(|e| ExportError::Transport(Box::new(e)))?;
                req.headers_mut().extend(headers.clone());
                req.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                let resp = client.request(req).await.map_err(transport)?;
                let status = resp.status();
                // Read the answer so the connection can be reused.
                let _ = Limited::new(resp.into_body(), MAX_COLLECTOR_ANSWER)
                    .collect()
                    .await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(ExportError::Status(status))
                }
            }
            Transport::Grpc {
                client,
                uri,
                headers,
            } => {
                let mut req = Request::builder()
                    .method(Method::POST)
                    .uri(uri.as_str())
                    .body(Full::new(body))
                    .map_err(|e| ExportError::Transport(Box::new(e)))?;
                // gRPC metadata are HTTP/2 headers.
                req.headers_mut().extend(headers.clone());
                req.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                req.headers_mut()
                    .insert(TE, HeaderValue::from_static("trailers"));
                let resp = client.request(req).await.map_err(transport)?;
                let (parts, body) = resp.into_parts();
                if parts.status != StatusCode::OK {
                    return Err(ExportError::Status(parts.status));
                }
                let collected = Limited::new(body, MAX_COLLECTOR_ANSWER)
                    .collect()
                    .await
                    .map_err(ExportError::Transport)?;
                // A trailers-only answer carries grpc-status in its headers.
                let trailers = collected.trailers().cloned().unwrap_or_default();
                let field = |name: &str| {
                    trailers
                        .get(name)
                        .or_else(|| parts.headers.get(name))
                        .map(HeaderValue::as_bytes)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                match field("grpc-status").as_deref() {
                    Some("0") => Ok(()),
                    code => Err(ExportError::Grpc {
                        code: code.unwrap_or("missing").to_string(),
                        message: field("grpc-message").unwrap_or_default(),
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_header_variables_are_parsed_as_the_specification_writes_them() {
        let got = parse_headers(
            " api-key=s%3Dcret%2C1 , X-Tenant=acme,,bad header=x,novalue,k=%FF",
            "OTEL_EXPORTER_OTLP_HEADERS",
        );
        let got: Vec<(String, String)> = got
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("api-key".to_string(), "s=cret,1".to_string()),
                ("x-tenant".to_string(), "acme".to_string()),
            ]
        );
    }
}
