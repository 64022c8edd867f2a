//! Request ids. Every request has one: the client's `X-Request-Id` when it is sane (at
//! most [`MAX_LEN`] visible ASCII characters), else a new one. It goes to every backend and
//! back to the client, and the application-log lines written while the request is served
//! carry it: [`Scoped`] makes it the worker thread's current request for the time of each
//! poll, and the log layer reads [`current`].
//!
//! New ids are 32 hex digits from a per-thread generator (a random seed, then SplitMix64):
//! no lock, no system call per request, and unique in practice (two threads would have to
//! draw the same 128 bits).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client id kept; a longer one is replaced.
pub const MAX_LEN: usize = 128;

/// Whether a client's id may be kept: 1 to [`MAX_LEN`] visible ASCII characters (no space,
/// no control character that could forge a log line).
pub fn is_sane(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| (0x21..=0x7e).contains(c))
}

/// The id of a request with `headers`: the client's one when exactly one sane value was
/// sent, else a new one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if is_sane(v) => v.clone(),
        _ => generate(),
    }
}

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // RandomState draws its keys from the OS once per thread: a random start per thread
    // without a dependency.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

fn splitmix(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
    state.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A new id: 32 lower-case hex digits.
pub fn generate() -> HeaderValue {
    let (a, b) = STATE.with(|s| (splitmix(s), splitmix(s)));
    let mut out = [0u8; 32];
    super::write_hex(
        &(u128::from(a) << 64 | u128::from(b)).to_be_bytes(),
        &mut out,
    );
    // One allocation, shared by every copy: the id goes into the backend request and the
    // answer (a `Vec`-backed value would allocate again on its first clone). Hex digits are
    // always a valid header value.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(out))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// What application-log lines written for a request carry.
#[derive(Debug)]
pub struct Labels {
    /// The request id.
    pub request_id: HeaderValue,
    /// The trace id when tracing is on (its digits: [`Labels::trace_hex`]).
    pub trace_id: Option<[u8; 16]>,
}

impl Labels {
    /// The trace id's 32 hex digits, written now: most requests write no log line.
    pub fn trace_hex(&self) -> Option<crate::telemetry::trace::TraceHex> {
        self.trace_id.map(crate::telemetry::trace::TraceHex::of)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Labels>>> = const { RefCell::new(None) };
}

/// The labels of the request the calling thread is serving now, if any.
pub fn current() -> Option<Arc<Labels>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Restores the previous labels when a poll ends (also by a panic).
struct Restore(Option<Arc<Labels>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

pin_project_lite::pin_project! {
    /// A request's future with its labels: current while it is polled.
    pub struct Scoped<F> {
        labels: Arc<Labels>,
        #[pin]
        inner: F,
    }
}

impl<F> Scoped<F> {
    /// `inner` served under `labels`.
    pub fn new(labels: Arc<Labels>, inner: F) -> Self {
        Self { labels, inner }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let prev = CURRENT.with(|c| c.replace(Some(this.labels.clone())));
        let _restore = Restore(prev);
        this.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_REQUEST_ID, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn generated(v: &HeaderValue) -> bool {
        v.len() == 32 && v.as_bytes().iter().all(|c| c.is_ascii_hexdigit())
    }

    #[test]
    fn a_sane_client_id_is_kept_anything_else_replaced() {
        assert_eq!(of(&headers(&[b"abc-123_x.y:z"])), "abc-123_x.y:z");
        let long = vec![b'a'; MAX_LEN];
        assert_eq!(of(&headers(&[&long])).as_bytes(), &long[..]);
        let too_long = vec![b'a'; MAX_LEN + 1];
        for bad in [
            &b""[..],
            b"with space",
            b"tab\there",
            &too_long,
            b"caf\xc3\xa9",
        ] {
            assert!(generated(&of(&headers(&[bad]))), "{bad:?} kept");
        }
        assert!(generated(&of(&headers(&[b"a", b"b"]))), "two ids kept");
        assert!(generated(&of(&HeaderMap::new())));
    }

    #[test]
    fn generated_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[tokio::test]
    async fn labels_are_current_only_while_the_request_is_polled() {
        let labels = Arc::new(Labels {
            request_id: HeaderValue::from_static("r1"),
            trace_id: None,
        });
        assert!(current().is_none());
        let seen = Scoped::new(labels, async {
            tokio::task::yield_now().await;
            current().map(|l| l.request_id.clone())
        })
        .await;
        assert_eq!(seen, Some(HeaderValue::from_static("r1")));
        assert!(current().is_none());
    }
}
