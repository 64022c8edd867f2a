//! `weir demo`: example upstreams on loopback and a gateway in front of them, so a
//! newcomer sees aggregation, filtering and a no-op endpoint without any network.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::local::{self, LocalOptions};
use crate::proxy::{full, Body};

fn json_reply(value: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(value.to_string())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The bundled upstreams: users, orders (a JSON array) and a CSV report.
async fn upstream(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match segments.as_slice() {
        ["users", id] => json_reply(json!({
            "id": id,
            "name": format!("User {id}"),
            "email": format!("user{id}@example.com"),
            "passwordHash": "$2y$10$never-leaves-the-gateway",
            "address": {"city": "Lisbon", "street": "Rua Augusta 1"},
        })),
        ["orders"] => {
            let user = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("user=")))
                .unwrap_or("0")
                .to_string();
            json_reply(json!([
                {"id": 101, "user": user, "total": 42.5, "status": "shipped"},
                {"id": 102, "user": user, "total": 9.99, "status": "pending"},
            ]))
        }
        ["reports", "daily.csv"] => {
            let mut r = Response::new(full(Bytes::from_static(
                b"day,orders\nmonday,12\ntuesday,17\n",
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/csv"),
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                header::HeaderValue::from_static("report=daily"),
            );
            r
        }
        _ => {
            let mut r = Response::new(full(Bytes::from_static(b"not found")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    };
    Ok(resp)
}

/// Starts the upstream server on an ephemeral loopback port.
pub async fn start_upstream() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(upstream))
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The demo gateway configuration for upstreams at `upstream`.
pub fn config_yaml(upstream: SocketAddr, port: u16) -> String {
    include_str!("../examples/demo.yaml")
        .replace("127.0.0.1:9000", &upstream.to_string())
        .replace("port: 8080", &format!("port: {port}"))
}

/// Runs the demo until a signal. The configuration is written to a temporary directory
/// and watched like any other, so it can be edited while the demo runs; the directory is
/// removed on every way out (a signal, a failed start, an error, a panic).
pub async fn run(port: u16) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Listen for signals before anything is created: a Ctrl-C during start-up then ends
    // the demo through the normal path (and the clean-up) instead of killing the process.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let dir = tempfile::Builder::new().prefix("weir-demo-").tempdir()?;
    let upstream = start_upstream().await?;
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, config_yaml(upstream, port))?;
    let mut opts = LocalOptions::new(&file);
    opts.bind = Some(Ipv4Addr::LOCALHOST.into());
    let gw = local::start(opts).await?;
    let base = format!("http://{}", gw.handle.proxy_addr);
    println!("Weir demo: gateway on {base}, example upstreams on http://{upstream}");
    println!("Configuration (edit it, Weir reloads): {}", file.display());
    println!();
    println!("  # aggregation: a user and their orders in one answer, password hash filtered out");
    println!("  curl -s {base}/users/7");
    println!("  # filtering and grouping: only name and city, under \"profile\"");
    println!("  curl -s {base}/users/7/card");
    println!("  # no-op: the upstream CSV, status, headers and cookies passed through untouched");
    println!("  curl -si {base}/reports/daily.csv");
    println!("  # health, and a route that does not exist");
    println!("  curl -s {base}/__health");
    println!("  curl -si {base}/nope");
    println!();
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    let local::LocalGateway { handle, watcher } = gw;
    drop(watcher);
    handle.shutdown(std::time::Duration::from_secs(5)).await;
    dir.close()?;
    Ok(())
}
