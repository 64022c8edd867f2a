//! Application-log helpers the data plane shares with the binary's log set-up: the
//! process-wide format switch (`logFormat`, pinned by `--log-format`), a rate limit for
//! warnings that repeat (a failing backend under load would otherwise write one line per
//! request), and the one-line text of an error with its sources.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use weir_model::LogFormat;

const TEXT: u8 = 0;
const JSON: u8 = 1;
const PINNED: u8 = 2;

/// The application log's format. Process-wide because the log subscriber is: the binary
/// installs one, the settings may switch it on every reload unless the command line pinned it.
static FORMAT: AtomicU8 = AtomicU8::new(TEXT);

fn bits(format: LogFormat) -> u8 {
    match format {
        LogFormat::Text => TEXT,
        LogFormat::Json => JSON,
    }
}

/// Sets the format from the command line; settings no longer change it.
pub fn pin_format(format: LogFormat) {
    FORMAT.store(bits(format) | PINNED, Ordering::Relaxed);
}

/// Sets the format from the settings (`logFormat`), unless the command line pinned it.
pub fn apply_format(format: LogFormat) {
    let _ = FORMAT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
        (cur & PINNED == 0).then_some(bits(format))
    });
}

/// The application log's current format.
pub fn format() -> LogFormat {
    if FORMAT.load(Ordering::Relaxed) & JSON != 0 {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// An error and its sources on one line (`a: b: c`), newlines folded: a log field, never a
/// multi-line message.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let next = s.to_string();
        // `#[error("...: {0}")]` variants already include their source's text.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cur = s.source();
    }
    one_line(&text)
}

/// `text` with line breaks replaced by `; ` (several problems listed on lines become one
/// line).
pub fn one_line(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.to_string();
    }
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// How many lines a backend's failure warnings may take per [`BACKEND_WINDOW`].
pub const BACKEND_BURST: u32 = 5;
/// The window of a backend's failure warnings.
pub const BACKEND_WINDOW: Duration = Duration::from_secs(10);

fn millis_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A rate limit for one repeating warning (one backend of one endpoint, the trace
/// exporter): `burst` lines per `window`, then silence; the first line of the next window
/// says how many were suppressed. Lock-free: workers share it without waiting, and a race
/// at a window's edge lets at most a line or two more through.
#[derive(Debug)]
pub struct LogGate {
    burst: u32,
    window_ms: u64,
    window_start: AtomicU64,
    in_window: AtomicU32,
    suppressed: AtomicU64,
}

impl Default for LogGate {
    /// The gate of a backend's failure warnings.
    fn default() -> Self {
        Self::new(BACKEND_BURST, BACKEND_WINDOW)
    }
}

impl LogGate {
    /// `burst` lines per `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst: burst.max(1),
            window_ms: window.as_millis() as u64,
            // "No window yet": the first line opens one.
            window_start: AtomicU64::new(u64::MAX),
            in_window: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this line may be written (`n` lines were suppressed before it),
    /// `None` when it is to be suppressed (and counted).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(millis_since_start())
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let start = self.window_start.load(Ordering::Relaxed);
        if (start == u64::MAX || now.saturating_sub(start) >= self.window_ms)
            && self
                .window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.in_window.store(1, Ordering::Relaxed);
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < self.burst {
            Some(0)
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_lets_a_burst_through_then_counts_what_it_suppressed() {
        let gate = LogGate::default();
        let first: Vec<_> = (0..8).map(|_| gate.admit_at(1_000)).collect();
        assert_eq!(
            first,
            [
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None
            ]
        );
        // Still inside the window.
        assert_eq!(gate.admit_at(1_000 + 9_999), None);
        // The next window's first line reports the four suppressed lines.
        assert_eq!(gate.admit_at(1_000 + 10_000), Some(4));
        assert_eq!(gate.admit_at(1_000 + 10_001), Some(0));
    }

    #[test]
    fn error_chains_are_one_line_without_repeating_sources() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Repeats(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("reload failed")]
        struct Plain(#[source] std::io::Error);
        let io = || std::io::Error::other("line one\nline two");
        assert_eq!(chain(&Repeats(io())), "outer: line one; line two");
        assert_eq!(chain(&Plain(io())), "reload failed: line one; line two");
    }

    #[test]
    fn the_command_line_pins_the_format() {
        // The only test touching the process-wide switch.
        apply_format(LogFormat::Json);
        assert_eq!(format(), LogFormat::Json);
        pin_format(LogFormat::Text);
        apply_format(LogFormat::Json);
        assert_eq!(format(), LogFormat::Text);
    }
}
