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

/// Appends `ip` as text: an IPv4 address (the usual peer) without the formatting machinery
/// (the access log and the span encoder write one per request).
pub(crate) fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write as _;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ips_are_written_as_displayed() {
        for ip in ["0.0.0.0", "127.0.0.1", "10.200.9.255", "::1", "2001:db8::7"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = b"x".to_vec();
            super::write_ip(&mut out, ip);
            assert_eq!(out, format!("x{ip}").as_bytes());
        }
    }
}
