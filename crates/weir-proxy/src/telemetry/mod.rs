//! What the data plane reports: Prometheus metrics, the access log, request ids, and
//! OpenTelemetry traces.
//!
//! - `metrics.rs`: the one registry and its pre-resolved handles.
//! - `access_log.rs`: one line per request (text or JSON), never blocking a worker.
//! - `request_id.rs`: `X-Request-Id`, and the request a log line belongs to.
//! - `trace/`: server and client spans, OTLP export off the workers.
//! - `body.rs`: bodies that count bytes and gRPC statuses as they stream.
//! - `log.rs`: the application log's format switch, rate-limited warnings, error chains.

pub mod access_log;
pub mod body;
pub mod log;
pub mod metrics;
pub mod request_id;
pub mod series;
pub mod trace;

/// Writes `bytes` as lower-case hex into the start of `out` (two digits per byte; `out` must
/// hold them): request ids, trace and span ids.
pub(crate) fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}
