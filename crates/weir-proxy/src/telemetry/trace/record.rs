//! Finished spans as the proxy workers leave them, and the bounded queue they wait in for
//! the exporter.
//!
//! A record holds what a span is made of, not its OTLP form: `'static` names and keys, typed
//! fields instead of a list of attributes, and shared pieces of the request and the
//! compiled table (`Arc`s, a `Uri`, a `HeaderValue`: reference-counted clones). Turning them
//! into text and protobuf is the exporter's work, on its own thread (`otlp.rs`): recording a
//! span allocates nothing beyond the server span's `Arc` and a backend call's `Box`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::{HeaderValue, Uri};
use opentelemetry::trace::TraceState;
use tokio::sync::Notify;

use weir_model as model;

/// What a request's span says about it, rendered at export.
#[derive(Debug)]
pub struct ServerDetail {
    /// The request's URI (`url.path`).
    pub uri: Uri,
    /// `http.response.status_code`.
    pub status: u16,
    /// `client.address`.
    pub peer: IpAddr,
    /// `weir.request_id`.
    pub request_id: HeaderValue,
    /// The endpoint that matched: `http.route`, and the span's name.
    pub route: Option<Arc<model::Endpoint>>,
    /// `weir.completed`, when the answer says.
    pub completed: Option<bool>,
}

/// What a backend call's span says about it, rendered at export.
#[derive(Debug)]
pub struct ClientDetail {
    /// The endpoint and the backend's place in it: `url.template`, and the span's name.
    pub endpoint: Arc<model::Endpoint>,
    /// See `endpoint`.
    pub index: usize,
    /// `weir.backend`.
    pub label: Arc<str>,
    /// Where the call went (`server.address`, `server.port`, `url.full`), once known.
    pub uri: Option<Uri>,
    /// `weir.backend.outcome`.
    pub outcome: &'static str,
    /// `http.response.status_code`, when the backend answered.
    pub status: Option<u16>,
    /// `error.type`, for a call that did not succeed.
    pub error_type: Option<&'static str>,
}

/// A span's own attributes: typed fields rather than a list of key-value pairs, so
/// recording one costs no allocation.
#[derive(Debug)]
pub enum Detail {
    /// A request that answered.
    Server(ServerDetail),
    /// A request dropped before it answered (the client left): only its method is known.
    Abandoned,
    /// A backend call.
    Client(ClientDetail),
}

/// A span event (a rejection).
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// When, in nanoseconds since the Unix epoch.
    pub time: u64,
    /// Its name (`rate_limit.rejected`, `auth.rejected`).
    pub name: &'static str,
    /// Its attributes.
    pub attrs: Vec<(&'static str, &'static str)>,
}

/// A finished span.
#[derive(Debug)]
pub struct SpanRecord {
    /// The trace.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The parent span, if any.
    pub parent: Option<[u8; 8]>,
    /// The trace's `tracestate` (usually none).
    pub state: TraceState,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub start: u64,
    /// See `start`.
    pub end: u64,
    /// The method (semantic conventions' names): `http.request.method`, and the first
    /// word of the span's name.
    pub method: &'static str,
    /// The rest.
    pub detail: Detail,
    /// Events, in order.
    pub events: Vec<EventRecord>,
    /// `Some(message)`: the span's status is an error.
    pub error: Option<String>,
}

/// Nanoseconds since the Unix epoch, now (0 on a clock before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Finished spans waiting for export: bounded, never blocking a worker. A push is one
/// uncontended-lock append; the exporter is woken once per batch, not per span.
#[derive(Debug)]
pub struct Queue {
    spans: Mutex<Vec<SpanRecord>>,
    capacity: usize,
    batch: usize,
    /// Wakes the exporter: a batch is full, or the tracer stops.
    pub wake: Notify,
    dropped: AtomicU64,
}

impl Queue {
    /// A queue of at most `capacity` spans that wakes its exporter every `batch` spans.
    pub fn new(capacity: usize, batch: usize) -> Self {
        Self {
            spans: Mutex::new(Vec::with_capacity(batch)),
            capacity,
            batch,
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a finished span; when the queue is full it is dropped and counted instead.
    pub fn push(&self, span: SpanRecord) {
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        if spans.len() >= self.capacity {
            drop(spans);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        spans.push(span);
        let full_batch = spans.len() == self.batch;
        drop(spans);
        if full_batch {
            self.wake.notify_one();
        }
    }

    /// Everything queued, leaving the queue with `spare` (an empty vector): the exporter
    /// hands back the one it took last time, so a batch's storage (tens of KiB) is not
    /// allocated and freed every time.
    pub fn take(&self, mut spare: Vec<SpanRecord>) -> Vec<SpanRecord> {
        spare.clear();
        // A burst can grow a vector to the whole queue: not kept beyond a batch.
        spare.shrink_to(self.batch);
        if spare.capacity() < self.batch {
            spare.reserve(self.batch);
        }
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *spans, spare)
    }

    /// Spans dropped because the queue was full, since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(n: u8) -> SpanRecord {
        SpanRecord {
            trace_id: [n; 16],
            span_id: [n; 8],
            parent: None,
            state: TraceState::NONE,
            start: 1,
            end: 2,
            method: "GET",
            detail: Detail::Abandoned,
            events: Vec::new(),
            error: None,
        }
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_wakes_its_exporter_once_per_batch() {
        let q = Queue::new(5, 2);
        q.push(span(1));
        // One span: no batch yet, so no wake-up is stored.
        let woken = tokio::time::timeout(std::time::Duration::from_millis(20), q.wake.notified());
        assert!(woken.await.is_err());
        q.push(span(2));
        q.wake.notified().await;
        for n in 3..=7 {
            q.push(span(n));
        }
        assert_eq!(q.take_dropped(), 2, "5 kept, 2 over the bound");
        assert_eq!(q.take_dropped(), 0);
        let taken = q.take(Vec::new());
        let ids: Vec<u8> = taken.iter().map(|s| s.span_id[0]).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        // The vector handed back is the next one filled, emptied first.
        let at = taken.as_ptr();
        assert!(q.take(taken).is_empty());
        q.push(span(8));
        let again = q.take(Vec::new());
        assert_eq!((again.as_ptr(), again.len()), (at, 1));
        // One grown past a batch by a burst is shrunk back when handed in.
        q.take(Vec::with_capacity(100));
        assert!(q.take(Vec::new()).capacity() < 100);
    }
}
