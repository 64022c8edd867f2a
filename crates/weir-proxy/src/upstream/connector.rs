//! The TCP connector of every upstream client, counting connections: hyper-util's pooled
//! client reports nothing about its pool, so the connections are counted where they are
//! made and where they are dropped.
//!
//! `weir_upstream_connections_open` is every backend connection alive in the process: idle
//! in a pool or carrying a request, HTTP/1.1 or HTTP/2, summed over workers (each worker has
//! its own pools). It cannot say which backend a connection is for (the label would be
//! the host a redirect chose: unbounded), nor how many are idle versus busy.
//! `weir_upstream_connections_opened_total` rising with the request rate means connections
//! are not being reused (a backend that closes them, or `Connection: close`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use prometheus::IntGauge;

use crate::telemetry::metrics::UpstreamConnections;

/// [`HttpConnector`] with its connections counted.
#[derive(Clone)]
pub struct CountingConnector {
    inner: HttpConnector,
    counters: UpstreamConnections,
}

impl CountingConnector {
    /// Counts `inner`'s connections into `counters`.
    pub fn new(inner: HttpConnector, counters: UpstreamConnections) -> Self {
        Self { inner, counters }
    }
}

type Stream = <HttpConnector as tower_service::Service<Uri>>::Response;
type ConnectError = <HttpConnector as tower_service::Service<Uri>>::Error;

impl tower_service::Service<Uri> for CountingConnector {
    type Response = Tracked<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let counters = self.counters.clone();
        Box::pin(async move {
            match connecting.await {
                Ok(io) => {
                    counters.opened.inc();
                    counters.open.inc();
                    Ok(Tracked {
                        io,
                        open: counters.open,
                    })
                }
                Err(e) => {
                    counters.failed.inc();
                    Err(e)
                }
            }
        })
    }
}

/// A connection that leaves the open-connections gauge when dropped.
pub struct Tracked<T> {
    io: T,
    open: IntGauge,
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl<T: Connection> Connection for Tracked<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
