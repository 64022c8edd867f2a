//! A fixed-answer HTTP backend for the benchmarks: answers every request with the same JSON
//! body after an optional delay. Loopback only.
//!
//! `cargo run --release --example bench-backend -- PORT DELAY_MS BODY_BYTES`

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(18090);
    let delay = Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0));
    let size: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    let mut body = String::from("{\"pad\":\"");
    body.push_str(&"x".repeat(size.saturating_sub(20)));
    body.push_str("\",\"id\":1}");
    let body = Bytes::from(body);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        let body = body.clone();
                        async move {
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let mut r = Response::new(Full::new(body));
                            r.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
}
