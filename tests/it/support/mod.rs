//! Shared helpers for integration tests: programmable HTTP backends on loopback, a gateway
//! started from YAML text in local mode, and a small HTTP client.
#![allow(dead_code)]

pub mod cluster;
pub mod config;
pub mod nginx;
pub mod pki;

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use weir::local::{self, LocalGateway, LocalOptions};

/// A request a test backend received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query exactly as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
    pub fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A test backend on 127.0.0.1 with everything it received.
#[derive(Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Recorded>>>,
}

impl Backend {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn requests(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }
    pub fn hits(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

pub type Reply = Response<Full<Bytes>>;

/// Starts a backend whose answers come from `handler`.
pub async fn backend<F, Fut>(handler: F) -> Backend
where
    F: Fn(Recorded) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let rec = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // Headers and body are written separately: without this a delayed ACK holds
            // the body back 40 ms and hides the gateway's own latency.
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            let rec = rec.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    let rec = rec.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let r = Recorded {
                            method: parts.method,
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        };
                        rec.lock().unwrap().push(r.clone());
                        Ok::<_, Infallible>(handler(r).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Backend { addr, received }
}

/// A backend that always answers `status` with a JSON body.
pub async fn json_backend(status: u16, body: &'static str) -> Backend {
    backend(move |_| async move { reply(status, "application/json", body) }).await
}

/// A backend answering `{"path": "<the path it was asked for>"}`: shows which URL a
/// configuration sent a request to.
pub async fn path_echo_backend() -> Backend {
    backend(|r| async move {
        reply(
            200,
            "application/json",
            format!("{{\"path\":\"{}\"}}", r.path()),
        )
    })
    .await
}

/// A response with a status, content type and body.
pub fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_str(content_type).unwrap());
    r
}

/// A backend speaking raw TCP: `handler` gets each accepted socket (for resets, endless
/// bodies and other misbehaviour).
pub async fn raw_backend<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move { handler(stream).await });
        }
    });
    addr
}

/// A loopback address where nothing listens.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A running gateway in local mode, serving a YAML file in a temp dir.
pub struct Gw {
    pub gw: LocalGateway,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gw {
    pub fn addr(&self) -> SocketAddr {
        self.gw.handle.proxy_addr
    }
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.gw.handle.admin_addr.expect("admin port"),
            path
        )
    }
    /// Replaces the configuration atomically (write + rename, as editors and Kubernetes do).
    pub fn rewrite(&self, yaml: &str) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
    /// The generation of the table serving now.
    pub fn generation(&self) -> u64 {
        self.gw.handle.shared().table().generation
    }
    /// Reloads refused so far (`weir_config_reloads_total{result="rejected"}`).
    pub fn rejected_reloads(&self) -> u64 {
        let text = self.gw.handle.shared().metrics().render();
        text.lines()
            .find(|l| l.starts_with("weir_config_reloads_total{result=\"rejected\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    /// Waits until more than `than` reloads were refused.
    pub async fn wait_rejected_above(&self, than: u64) {
        for _ in 0..400 {
            if self.rejected_reloads() > than {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no rejected reload within 4s");
    }
    /// Waits until the generation passes `than` (a reload happened).
    pub async fn wait_generation_above(&self, than: u64) {
        for _ in 0..400 {
            if self.generation() > than {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no reload within 4s (generation still {})",
            self.generation()
        );
    }
}

/// Starts a gateway on an ephemeral loopback port from gateway-file YAML (the `port`
/// setting is overridden). The file is polled every 20 ms.
pub async fn gateway(yaml: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut opts = LocalOptions::new(&path);
    opts.port = Some(0);
    opts.bind = Some(Ipv4Addr::LOCALHOST.into());
    opts.watch_interval = Duration::from_millis(20);
    // The access log writes to the process's real stdout, which the test harness cannot
    // capture; tests/cli.rs checks it through the binary.
    opts.access_log = Some(false);
    let gw = local::start(opts).await.expect("gateway starts");
    Gw {
        gw,
        path,
        _dir: dir,
    }
}

/// What a client got back.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
    pub fn completed(&self) -> Option<&str> {
        self.header("x-weir-completed")
    }
}

/// Sends a request; `headers` are (name, value) pairs.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(url)
        .body(Full::new(body.into()))
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response within 10s")
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// GET without headers.
pub async fn get(url: &str) -> Resp {
    send("GET", url, &[], Bytes::new()).await
}

/// Sends raw bytes on a new connection and returns everything read until the server closes
/// it or `wait` passes without more data.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts a backend behind TLS with `config` (HTTP/1.1 and HTTP/2 by ALPN) whose answers
/// come from `handler`.
pub async fn tls_backend<F, Fut>(config: rustls::ServerConfig, handler: F) -> Backend
where
    F: Fn(Recorded) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    serve_backend(Some(Arc::new(config)), handler).await
}

/// Starts a plain backend speaking HTTP/1.1 and HTTP/2 (h2c prior knowledge).
pub async fn h2c_backend<F, Fut>(handler: F) -> Backend
where
    F: Fn(Recorded) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    serve_backend(None, handler).await
}

async fn serve_backend<F, Fut>(tls: Option<Arc<rustls::ServerConfig>>, handler: F) -> Backend
where
    F: Fn(Recorded) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let rec = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let (handler, rec, tls) = (handler.clone(), rec.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (handler, rec) = (handler.clone(), rec.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let r = Recorded {
                            method: parts.method,
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body,
                        };
                        rec.lock().unwrap().push(r.clone());
                        Ok::<_, Infallible>(handler(r).await)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(config) => {
                        let Ok(stream) =
                            tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                        else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    Backend { addr, received }
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2c_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends a request with `client` and collects the answer.
pub async fn send_with<C>(
    client: &Client<C, Full<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let mut req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(url)
        .body(Full::new(body.into()))
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response within 10s")
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let version = resp.version();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let mut r = Resp {
        status,
        headers,
        body,
    };
    r.headers.insert(
        "x-test-version",
        HeaderValue::from_str(&format!("{version:?}")).unwrap(),
    );
    r
}
