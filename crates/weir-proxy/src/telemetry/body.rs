//! Bodies that count what passes through them: bytes of streamed request and response
//! bodies (`weir_request_bytes_total`, `weir_response_bytes_total`) and the `grpc-status`
//! a gRPC call ended with (`weir_grpc_calls_total`), read from the trailers as they go by.

use std::pin::Pin;
use std::task::{Context, Poll};

use crate::telemetry::metrics::{GrpcCounters, GRPC_CANCELLED, GRPC_UNKNOWN};
use crate::telemetry::series::Counter;
use bytes::Buf;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// The `grpc-status` code in `headers` (a trailers block, or a trailers-only answer's
/// headers), folded into 0..=16; `None` when absent.
pub fn grpc_status(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get("grpc-status")?;
    Some(
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|c| *c < crate::telemetry::metrics::GRPC_CODES)
            .unwrap_or(GRPC_UNKNOWN),
    )
}

pin_project_lite::pin_project! {
    /// `inner`, counting its data bytes into `bytes` and, for a gRPC call, its final status.
    pub struct Observed<B> {
        #[pin]
        inner: B,
        bytes: Option<Counter>,
        grpc: Option<GrpcCounters>,
    }

    impl<B> PinnedDrop for Observed<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its trailers: the client went away, or the stream was cut.
            if let Some(g) = this.project().grpc.take() {
                g[GRPC_CANCELLED].inc();
            }
        }
    }
}

impl<B> Observed<B> {
    /// Counts `inner`'s data bytes into `bytes` and, with `grpc`, the status its trailers
    /// carry.
    pub fn new(inner: B, bytes: Option<Counter>, grpc: Option<GrpcCounters>) -> Self {
        Self { inner, bytes, grpc }
    }
}

impl<B: Body> Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(c)) = (frame.data_ref(), this.bytes.as_ref()) {
                    c.inc_by(data.remaining() as u64);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(g) = this.grpc.take() {
                        g[grpc_status(trailers).unwrap_or(GRPC_UNKNOWN)].inc();
                    }
                }
            }
            // The stream ended without a status: a gRPC client reads that as an error.
            Poll::Ready(None) => {
                if let Some(g) = this.grpc.take() {
                    g[GRPC_UNKNOWN].inc();
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use prometheus::IntCounter;

    fn grpc_counters() -> GrpcCounters {
        std::sync::Arc::new(std::array::from_fn(|i| {
            IntCounter::new(format!("g{i}"), "-").unwrap()
        }))
    }

    #[tokio::test]
    async fn counts_bytes_and_the_status_in_the_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        let frames = vec![
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from_static(b"de"))),
            Ok(Frame::trailers(trailers)),
        ];
        let bytes = Counter::default();
        let g = grpc_counters();
        let body = Observed::new(
            StreamBody::new(futures_util::stream::iter(frames)),
            Some(bytes.clone()),
            Some(g.clone()),
        );
        body.collect().await.unwrap();
        assert_eq!(bytes.get(), 5);
        assert_eq!(g[5].get(), 1);
        assert_eq!(g.iter().map(IntCounter::get).sum::<u64>(), 1);
    }

    #[tokio::test]
    async fn a_stream_without_a_status_is_unknown_and_a_dropped_one_cancelled() {
        let g = grpc_counters();
        let ended = Observed::new(
            http_body_util::Full::new(Bytes::from_static(b"x")),
            None,
            Some(g.clone()),
        );
        ended.collect().await.unwrap();
        assert_eq!(g[GRPC_UNKNOWN].get(), 1);
        drop(Observed::new(
            http_body_util::Full::new(Bytes::from_static(b"x")),
            None,
            Some(g.clone()),
        ));
        assert_eq!(g[GRPC_CANCELLED].get(), 1);
    }

    #[test]
    fn statuses_are_bounded() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-status", v.parse().unwrap());
            grpc_status(&h)
        };
        assert_eq!(h("0"), Some(0));
        assert_eq!(h("16"), Some(16));
        assert_eq!(h("17"), Some(GRPC_UNKNOWN));
        assert_eq!(h("x"), Some(GRPC_UNKNOWN));
        assert_eq!(grpc_status(&HeaderMap::new()), None);
    }
}
