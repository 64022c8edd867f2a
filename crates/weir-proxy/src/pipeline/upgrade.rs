//! WebSocket pass-through on `no-op` endpoints: the upgrade request goes to the backend with
//! its handshake headers, the backend's 101 goes back to the client, and then bytes flow
//! both ways until either side closes or the tunnel has been silent for
//! `websocketIdleTimeout`. The endpoint timeout bounds the handshake only.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::telemetry::metrics::Metrics;

/// Whether the client asks to switch to WebSocket.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    upgrade && connection
}

/// Adds the handshake headers a backend needs, whatever the whitelist says: without them
/// there is no WebSocket.
pub fn handshake_headers(client: &HeaderMap, out: &mut HeaderMap) {
    out.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    out.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    for (name, value) in client {
        if name.as_str().starts_with("sec-websocket-") {
            out.append(name.clone(), value.clone());
        }
    }
}

/// The headers of a 101 that must reach the client although they are hop-by-hop.
pub const KEEP_ON_101: [HeaderName; 2] = [header::CONNECTION, header::UPGRADE];

/// Milliseconds since `epoch`, shared by both directions of a tunnel.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    to_backend: AtomicU64,
    to_client: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
}

/// An I/O object that records when it last moved bytes.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    client_side: bool,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.activity.touch();
            let counter = if self.client_side {
                &self.activity.to_backend
            } else {
                &self.activity.to_client
            };
            counter.fetch_add(n, Ordering::Relaxed);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Joins the client's and the backend's upgraded connections on a task of its own.
pub fn tunnel(
    client: OnUpgrade,
    backend: OnUpgrade,
    idle: Duration,
    endpoint: String,
    metrics: Arc<Metrics>,
) {
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(both) => both,
            Err(e) => {
                debug!(endpoint = %endpoint, "WebSocket upgrade failed: {e}");
                return;
            }
        };
        metrics.websocket_opened();
        let started = Instant::now();
        let activity = Arc::new(Activity {
            epoch: started,
            last_ms: AtomicU64::new(0),
            to_backend: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
        });
        let mut client = Watched {
            inner: TokioIo::new(client),
            activity: activity.clone(),
            client_side: true,
        };
        let mut backend = Watched {
            inner: TokioIo::new(backend),
            activity: activity.clone(),
            client_side: false,
        };
        let watchdog = async {
            loop {
                let last = Duration::from_millis(activity.last_ms.load(Ordering::Relaxed));
                let deadline = activity.epoch + last + idle;
                if Instant::now() >= deadline {
                    return;
                }
                tokio::time::sleep_until(deadline).await;
            }
        };
        let why = tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut backend) => match r {
                Ok(_) => "closed".to_string(),
                Err(e) => format!("ended: {e}"),
            },
            _ = watchdog => format!("idle for {idle:?}"),
        };
        metrics.websocket_closed();
        info!(
            endpoint = %endpoint,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_to_backend = activity.to_backend.load(Ordering::Relaxed),
            bytes_to_client = activity.to_client.load(Ordering::Relaxed),
            "WebSocket {why}"
        );
    });
}
