//! An OTLP trace receiver on loopback: OTLP/HTTP (protobuf POSTs to `/v1/traces`) or
//! OTLP/gRPC (`TraceService/Export` over h2c), decoded with `opentelemetry-proto`.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
    pub fn is_server(&self) -> bool {
        self.span.kind == 2
    }
    pub fn is_client(&self) -> bool {
        self.span.kind == 3
    }
    /// An attribute as JSON (string, int, bool, double), `Null` when absent.
    pub fn attr(&self, key: &str) -> Value {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map_or(Value::Null, |v| match v {
                Any::StringValue(s) => json!(s),
                Any::IntValue(i) => json!(i),
                Any::BoolValue(b) => json!(b),
                Any::DoubleValue(d) => json!(d),
                other => json!(format!("{other:?}")),
            })
    }
    pub fn event_names(&self) -> Vec<String> {
        self.span.events.iter().map(|e| e.name.clone()).collect()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the receiver got so far.
#[derive(Clone, Default)]
pub struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
    notify: Arc<Notify>,
}

impl Collector {
    fn absorb(&self, req: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Any::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        drop(spans);
        self.notify.notify_waiters();
    }

    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until at least `n` spans arrived.
    pub async fn wait_spans(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.notify.notified();
            let got = self.spans();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{} spans within 10s, wanted {n}: {got:#?}", got.len());
            }
        }
    }

    /// An OTLP/HTTP receiver: `http://ADDR` (the exporter posts to `/v1/traces`).
    pub async fn http() -> (Collector, SocketAddr) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let c = collector.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let c = c.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let c = c.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            c.absorb(ExportTraceServiceRequest::decode(body).unwrap());
                            let answer = ExportTraceServiceResponse::default().encode_to_vec();
                            let resp = http::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::from(answer)))
                                .unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (collector, addr)
    }

    /// An OTLP/gRPC receiver (h2c). An export without resource spans is refused with
    /// INVALID_ARGUMENT (3), so it doubles as a gRPC service with two outcomes.
    pub async fn grpc() -> (Collector, SocketAddr) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let c = collector.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let c = c.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let c = c.clone();
                        async move {
                            let codec = tonic_prost::ProstCodec::<
                                ExportTraceServiceResponse,
                                ExportTraceServiceRequest,
                            >::default();
                            let mut grpc = tonic::server::Grpc::new(codec);
                            let resp = match req.uri().path() {
                                EXPORT => grpc.unary(Export(c), req).await,
                                _ => tonic::Status::unimplemented("no such method").into_http(),
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (collector, addr)
    }
}

/// The gRPC method path of an OTLP trace export.
pub const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

struct Export(Collector);

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tonic::server::UnaryService<ExportTraceServiceRequest> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<ExportTraceServiceRequest>) -> Self::Future {
        let c = self.0.clone();
        Box::pin(async move {
            let req = req.into_inner();
            if req.resource_spans.is_empty() {
                return Err(tonic::Status::invalid_argument("no spans"));
            }
            c.absorb(req);
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        })
    }
}

/// Sends one OTLP/gRPC export (of `spans` spans) through `addr`; the status code it got.
pub async fn export_through(addr: SocketAddr, spans: usize) -> tonic::Code {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("h2c connection");
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let request = ExportTraceServiceRequest {
        resource_spans: (0..spans)
            .map(|i| ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![i as u8 + 1; 8],
                        name: "test".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    let answer = client
        .unary(
            tonic::Request::new(request),
            http::uri::PathAndQuery::from_static(EXPORT),
            tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::default(),
        )
        .await;
    match answer {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}
