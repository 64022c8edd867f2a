//! One line per request on stdout, in the shape KrakenD (gin) users know:
//! `2017/01/19 - 10:31:27 | 200 |    1.134431ms | ::1 |   POST     /users` (UTC), or with
//! `accessLog: {format: json}` one JSON object per line:
//! `{"time":"2017-01-19T10:31:27.123Z","method":"POST","route":"/users","path":"/users",
//! "status":200,"duration_ms":1.134,"bytes":17,"peer":"::1","request_id":"…","trace_id":null}`.
//!
//! Writing must never slow a request: each proxy worker appends lines to its own buffer
//! (the timestamp text is formatted once per second), and hands full or old buffers to one
//! logger thread that owns stdout. When the logger falls behind (a slow terminal or pipe),
//! buffers are dropped and counted (`weir_access_log_dropped_lines_total`) instead of
//! blocking the worker. Threads that are not proxy workers hand every line over at once.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use prometheus::IntCounter;
use time::macros::format_description;

use weir_model::{push_decimal, write_go, LogFormat};

use crate::telemetry::write_ip;

/// A worker's buffer is handed over at this size...
const FLUSH_BYTES: usize = 16 * 1024;
/// ...or when its oldest line is this old (also checked by the worker's flush tick).
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// Buffers waiting for the logger thread; beyond this, lines are dropped.
const QUEUE: usize = 256;

enum Msg {
    Lines(Vec<u8>),
    Stop,
}

/// The process's access-log writer.
pub struct AccessLog {
    tx: SyncSender<Msg>,
    dropped: IntCounter,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

/// One request, as the access log records it.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Status answered.
    pub status: StatusCode,
    /// Time to the answer's head.
    pub latency: Duration,
    /// Client address.
    pub peer: IpAddr,
    /// Method.
    pub method: &'a Method,
    /// Request path.
    pub path: &'a str,
    /// The endpoint's path template, when one matched.
    pub route: Option<&'a str>,
    /// Body size, when known up front (a streamed body's is not).
    pub bytes: Option<u64>,
    /// The request id.
    pub request_id: &'a [u8],
    /// The trace id, when the request is traced.
    pub trace_id: Option<&'a str>,
}

struct Local {
    log: Arc<AccessLog>,
    buf: Vec<u8>,
    lines: u64,
    oldest: Option<Instant>,
    second: i64,
    stamp: String,
    iso: String,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

fn writer(rx: Receiver<Msg>) {
    let stdout = std::io::stdout();
    while let Ok(msg) = rx.recv() {
        match msg {
            // A closed stdout is ignored: logging never fails a request.
            Msg::Lines(buf) => {
                let _ = stdout.lock().write_all(&buf);
            }
            Msg::Stop => break,
        }
    }
    let _ = stdout.lock().flush();
}

impl AccessLog {
    /// Starts the logger thread. `dropped` counts lines lost to a logger that fell behind.
    pub fn start(dropped: IntCounter) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("weir-access-log".into())
            .spawn(move || writer(rx))?;
        Ok(Arc::new(Self {
            tx,
            dropped,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Makes the calling thread (a proxy worker) buffer its lines; it must call
    /// [`flush_local`] every [`FLUSH_AFTER`] or so.
    pub fn install_local(self: &Arc<Self>) {
        LOCAL.with(|l| {
            *l.borrow_mut() = Some(Local {
                log: self.clone(),
                buf: Vec::with_capacity(FLUSH_BYTES + 256),
                lines: 0,
                oldest: None,
                second: i64::MIN,
                stamp: String::new(),
                iso: String::new(),
            })
        });
    }

    fn send(&self, buf: Vec<u8>, lines: u64) {
        match self.tx.try_send(Msg::Lines(buf)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc_by(lines)
            }
        }
    }

    /// Records one request.
    pub fn write(self: &Arc<Self>, entry: &Entry<'_>, format: LogFormat) {
        let now = time::OffsetDateTime::now_utc();
        let buffered = LOCAL.with(|l| {
            let mut slot = l.borrow_mut();
            let Some(local) = slot.as_mut().filter(|local| Arc::ptr_eq(&local.log, self)) else {
                return false;
            };
            if local.second != now.unix_timestamp() {
                local.second = now.unix_timestamp();
                local.stamp = stamp(now);
                local.iso = iso_seconds(now);
            }
            match format {
                LogFormat::Text => push_line(&mut local.buf, &local.stamp, entry),
                LogFormat::Json => push_json(&mut local.buf, &local.iso, now.millisecond(), entry),
            }
            local.lines += 1;
            let oldest = *local.oldest.get_or_insert_with(Instant::now);
            if local.buf.len() >= FLUSH_BYTES || oldest.elapsed() >= FLUSH_AFTER {
                take_and_send(local);
            }
            true
        });
        if !buffered {
            let mut buf = Vec::with_capacity(96 + entry.path.len());
            match format {
                LogFormat::Text => push_line(&mut buf, &stamp(now), entry),
                LogFormat::Json => push_json(&mut buf, &iso_seconds(now), now.millisecond(), entry),
            }
            self.send(buf, 1);
        }
    }

    /// Writes what is queued and stops the logger thread (at shutdown).
    pub fn close(&self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

fn take_and_send(local: &mut Local) {
    if local.buf.is_empty() {
        return;
    }
    let buf = std::mem::replace(&mut local.buf, Vec::with_capacity(FLUSH_BYTES + 256));
    let lines = std::mem::take(&mut local.lines);
    local.oldest = None;
    local.log.send(buf, lines);
}

/// Hands the calling worker's buffered lines to the logger when they are old enough
/// (`force`: whatever their age, e.g. when the worker stops).
pub fn flush_local(force: bool) {
    LOCAL.with(|l| {
        if let Some(local) = l.borrow_mut().as_mut() {
            if force || local.oldest.is_some_and(|o| o.elapsed() >= FLUSH_AFTER) {
                take_and_send(local);
            }
        }
    });
}

fn stamp(now: time::OffsetDateTime) -> String {
    now.format(format_description!(
        "[year]/[month]/[day] - [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

fn iso_seconds(now: time::OffsetDateTime) -> String {
    now.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// `{stamp} | {status:3} | {latency:>13} | {peer} |   {method:<7}  {path}`, written piece by
/// piece: through `fmt` (padding, `Display` of each part, a `String` for the latency) the
/// line cost as much as a tenth of the request it records.
fn push_line(out: &mut Vec<u8>, stamp: &str, e: &Entry<'_>) {
    out.extend_from_slice(stamp.as_bytes());
    out.extend_from_slice(b" | ");
    // Status codes have three digits (`StatusCode` holds 100-999).
    out.extend_from_slice(e.status.as_str().as_bytes());
    out.extend_from_slice(b" | ");
    // Right-aligned to 13 characters, as `fmt` pads ("µ" is two bytes, one character):
    // written first, the spaces put in front of it after.
    let at = out.len();
    write_go(e.latency, out);
    let written = &out[at..];
    let chars = written.len() - written.iter().filter(|&&b| b == 0xC2).count();
    if chars < 13 {
        out.splice(at..at, std::iter::repeat_n(b' ', 13 - chars));
    }
    out.extend_from_slice(b" | ");
    write_ip(out, e.peer);
    out.extend_from_slice(b" |   ");
    let method = e.method.as_str().as_bytes();
    out.extend_from_slice(method);
    out.resize(out.len() + 7usize.saturating_sub(method.len()), b' ');
    out.extend_from_slice(b"  ");
    out.extend_from_slice(e.path.as_bytes());
    out.push(b'\n');
}

/// A JSON string (quoted, escaped); bytes that are not UTF-8 are replaced.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `.` and the three digits of `n` (below 1,000): the milliseconds of a time, the
/// microseconds of a duration in milliseconds.
fn push_thousandths(out: &mut Vec<u8>, n: u16) {
    out.extend_from_slice(&[
        b'.',
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]);
}

fn push_json(out: &mut Vec<u8>, iso: &str, millis: u16, e: &Entry<'_>) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(iso.as_bytes());
    push_thousandths(out, millis);
    out.extend_from_slice(b"Z\",\"method\":");
    push_json_str(out, e.method.as_str());
    out.extend_from_slice(b",\"route\":");
    match e.route {
        Some(r) => push_json_str(out, r),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"path\":");
    push_json_str(out, e.path);
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(e.status.as_str().as_bytes());
    // Milliseconds with three decimals: the duration rounded to the microsecond.
    out.extend_from_slice(b",\"duration_ms\":");
    let micros = (e.latency.as_nanos() + 500) / 1_000;
    push_decimal(out, u64::try_from(micros / 1_000).unwrap_or(u64::MAX));
    push_thousandths(out, (micros % 1_000) as u16);
    out.extend_from_slice(b",\"bytes\":");
    match e.bytes {
        Some(n) => push_decimal(out, n),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"peer\":\"");
    write_ip(out, e.peer);
    out.extend_from_slice(b"\",\"request_id\":");
    push_json_str(out, &String::from_utf8_lossy(e.request_id));
    out.extend_from_slice(b",\"trace_id\":");
    match e.trace_id {
        Some(t) => push_json_str(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

/// Formats one access-log line (without the newline).
pub fn format_line(now: time::OffsetDateTime, entry: &Entry<'_>, format: LogFormat) -> String {
    let mut buf = Vec::new();
    match format {
        LogFormat::Text => push_line(&mut buf, &stamp(now), entry),
        LogFormat::Json => push_json(&mut buf, &iso_seconds(now), now.millisecond(), entry),
    }
    buf.pop();
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(method: &'a Method, path: &'a str) -> Entry<'a> {
        Entry {
            status: StatusCode::OK,
            latency: Duration::from_nanos(1_134_431),
            peer: "::1".parse().unwrap(),
            method,
            path,
            route: Some("/users"),
            bytes: Some(17),
            request_id: b"r-1",
            trace_id: None,
        }
    }

    #[test]
    fn matches_the_documented_shape() {
        let now = time::macros::datetime!(2017-01-19 10:31:27 UTC);
        let line = format_line(now, &entry(&Method::POST, "/users"), LogFormat::Text);
        assert_eq!(
            line,
            "2017/01/19 - 10:31:27 | 200 |    1.134431ms | ::1 |   POST     /users"
        );
    }

    #[test]
    fn text_lines_are_what_the_format_string_wrote() {
        // The `writeln!` the piecewise writer replaced, as the reference.
        let reference = |stamp: &str, e: &Entry<'_>| {
            format!(
                "{stamp} | {:3} | {:>13} | {} |   {:<7}  {}\n",
                e.status.as_u16(),
                weir_model::format_go(e.latency),
                e.peer,
                e.method.as_str(),
                e.path
            )
        };
        let purge = Method::from_bytes(b"PURGE-EVERYTHING").unwrap();
        let methods = [Method::GET, Method::OPTIONS, purge];
        let latencies = [0, 500, 150_000, 1_134_431, 2_500_000_000, 3_723_000_000_001];
        let peers = ["127.0.0.1", "10.0.200.7", "::1", "2001:db8::7"];
        for (i, method) in methods.iter().enumerate() {
            for (j, ns) in latencies.iter().enumerate() {
                for (k, peer) in peers.iter().enumerate() {
                    let mut e = entry(method, "/a/b?c=d");
                    e.latency = Duration::from_nanos(*ns);
                    e.peer = peer.parse().unwrap();
                    e.status = [
                        StatusCode::OK,
                        StatusCode::NOT_FOUND,
                        StatusCode::BAD_GATEWAY,
                    ][(i + j + k) % 3];
                    let mut out = Vec::new();
                    push_line(&mut out, "2017/01/19 - 10:31:27", &e);
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        reference("2017/01/19 - 10:31:27", &e)
                    );
                }
            }
        }
    }

    #[test]
    fn json_durations_are_milliseconds_with_three_decimals() {
        for (ns, ms) in [
            (0, "0.000"),
            (499, "0.000"),
            (501, "0.001"),
            (1_134_431, "1.134"),
            (1_134_600, "1.135"),
            (12_300_000, "12.300"),
            (999_999_700, "1000.000"),
            (3_723_000_000_001, "3723000.000"),
        ] {
            let mut e = entry(&Method::GET, "/x");
            e.latency = Duration::from_nanos(ns);
            let line = format_line(time::OffsetDateTime::UNIX_EPOCH, &e, LogFormat::Json);
            assert!(
                line.contains(&format!("\"duration_ms\":{ms},")),
                "{ns}: {line}"
            );
        }
    }

    #[test]
    fn json_times_keep_three_digits_of_milliseconds() {
        let now = time::macros::datetime!(2017-01-19 10:31:27.007 UTC);
        let mut e = entry(&Method::GET, "/x");
        e.peer = "10.1.2.3".parse().unwrap();
        e.bytes = None;
        let v: serde_json::Value =
            serde_json::from_str(&format_line(now, &e, LogFormat::Json)).unwrap();
        assert_eq!(v["time"], "2017-01-19T10:31:27.007Z");
        assert_eq!(
            (v["peer"].as_str(), v["bytes"].is_null()),
            (Some("10.1.2.3"), true)
        );
    }

    #[test]
    fn json_lines_carry_every_field_and_escape_the_path() {
        let now = time::macros::datetime!(2017-01-19 10:31:27.5 UTC);
        let mut e = entry(&Method::POST, "/users/\"x\"\n");
        e.trace_id = Some("0af7651916cd43dd8448eb211c80319c");
        let line = format_line(now, &e, LogFormat::Json);
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2017-01-19T10:31:27.500Z", "method": "POST", "route": "/users",
                "path": "/users/\"x\"\n", "status": 200, "duration_ms": 1.134, "bytes": 17,
                "peer": "::1", "request_id": "r-1",
                "trace_id": "0af7651916cd43dd8448eb211c80319c"
            })
        );
        e.route = None;
        e.bytes = None;
        e.trace_id = None;
        let v: serde_json::Value =
            serde_json::from_str(&format_line(now, &e, LogFormat::Json)).unwrap();
        assert!(v["route"].is_null() && v["bytes"].is_null() && v["trace_id"].is_null());
    }

    #[test]
    fn a_logger_that_falls_behind_drops_and_counts_instead_of_blocking() {
        // A channel nobody reads stands in for a stalled stdout.
        let (tx, _rx) = sync_channel(1);
        let dropped = IntCounter::new("d", "d").unwrap();
        let log = Arc::new(AccessLog {
            tx,
            dropped: dropped.clone(),
            thread: Mutex::new(None),
        });
        for _ in 0..3 {
            log.write(&entry(&Method::GET, "/x"), LogFormat::Text);
        }
        // The first line fills the queue; the next two are dropped, and none blocked.
        assert_eq!(dropped.get(), 2);
    }

    #[test]
    fn workers_buffer_until_flushed() {
        let (tx, rx) = sync_channel(8);
        let dropped = IntCounter::new("d", "d").unwrap();
        let log = Arc::new(AccessLog {
            tx,
            dropped,
            thread: Mutex::new(None),
        });
        std::thread::spawn(move || {
            log.install_local();
            for _ in 0..3 {
                log.write(&entry(&Method::GET, "/x"), LogFormat::Json);
            }
            assert!(rx.try_recv().is_err(), "nothing handed over yet");
            flush_local(true);
            match rx.try_recv() {
                Ok(Msg::Lines(buf)) => assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 3),
                _ => panic!("one buffer of three lines expected"),
            }
        })
        .join()
        .unwrap();
    }
}
