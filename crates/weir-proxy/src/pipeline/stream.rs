//! A streamed answer that cannot hang: between two chunks at most `idle` may pass, else the
//! stream ends in an error. An error (idle, a reset, a body shorter than its
//! `Content-Length`) makes the server abort the client connection, so a cut answer never
//! looks complete.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::BoxError;

/// Why a stream was cut.
#[derive(Debug, thiserror::Error)]
#[error("the backend sent nothing for {0:?}: stream aborted")]
pub struct Stalled(pub Duration);

/// A body that fails when its inner body stalls for longer than `idle`. The timer is armed
/// once per idle period and only moved when it fires early (a chunk came meanwhile): a
/// timer-wheel update per chunk would cost more than the chunk.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<B> IdleTimeout<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, idle: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.last = Instant::now();
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        loop {
            match this.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let due = this.last + this.idle;
                    if Instant::now() >= due {
                        return Poll::Ready(Some(Err(Box::new(Stalled(this.idle)))));
                    }
                    // Data came since the timer was set: wait the rest of the period.
                    this.timer.as_mut().reset(due);
                }
            }
        }
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
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_idle_time() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let inner = StreamBody::new(tokio_stream_from(rx));
        let mut body = IdleTimeout::new(inner, Duration::from_secs(5));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        // A chunk after 4 s (within the idle time) keeps the stream alive past the first 5 s.
        tokio::time::sleep(Duration::from_secs(4)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"b"))))
            .await
            .unwrap();
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.into_data().unwrap(), "b");
        // Nothing more arrives: the paused clock jumps to the idle deadline.
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("sent nothing"), "{err}");
        drop(tx);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
