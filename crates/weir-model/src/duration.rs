//! Go-style duration strings (`800ms`, `2s`, `1m30s`, `1.5s`), the format KrakenD and
//! Kubernetes users already write.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. 800ms, 2s, 1m30s)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses a Go-style duration: one or more `<number><unit>` pairs, units `ns`, `us`, `µs`,
/// `ms`, `s`, `m`, `h`. A bare `0` is accepted as zero.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut rest = s;
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("missing unit"))?;
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| err("malformed number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total_ns += number * scale;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(err("out of range"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Formats a duration the way Go's `time.Duration.String` does (`1.134431ms`, `2s`, `150µs`);
/// the access log uses this shape.
pub fn format_go(d: Duration) -> String {
    let mut out = Vec::with_capacity(24);
    write_go(d, &mut out);
    // Only ASCII digits, '.', unit letters and 'µ' are written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`format_go`] appended to `out`, without the formatting machinery or an allocation: the
/// access log writes one per request.
pub fn write_go(d: Duration, out: &mut Vec<u8>) {
    let ns = d.as_nanos();
    if ns == 0 {
        out.extend_from_slice(b"0s");
    } else if ns < 1_000 {
        push_decimal(out, ns as u64);
        out.extend_from_slice(b"ns");
    } else if ns < 1_000_000 {
        push_fraction(out, ns as u64, 1_000, 3);
        out.extend_from_slice("µs".as_bytes());
    } else if ns < 1_000_000_000 {
        push_fraction(out, ns as u64, 1_000_000, 6);
        out.extend_from_slice(b"ms");
    } else if d.as_secs() < 60 {
        push_fraction(out, ns as u64, 1_000_000_000, 9);
        out.push(b's');
    } else {
        let secs = d.as_secs();
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        if h > 0 {
            push_decimal(out, h);
            out.push(b'h');
        }
        push_decimal(out, m);
        out.push(b'm');
        push_fraction(out, (ns % 60_000_000_000) as u64, 1_000_000_000, 9);
        out.push(b's');
    }
}

/// `value / unit`, then the remainder's `width` digits without their trailing zeros.
fn push_fraction(out: &mut Vec<u8>, value: u64, unit: u64, width: usize) {
    push_decimal(out, value / unit);
    let mut frac = value % unit;
    if frac == 0 {
        return;
    }
    let mut digits = [b'0'; 9];
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let kept = digits[..width]
        .iter()
        .rposition(|&d| d != b'0')
        .map_or(0, |i| i + 1);
    out.push(b'.');
    out.extend_from_slice(&digits[..kept]);
}

/// `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A duration that serializes back to its Go-style text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go(self.0))
    }
}

impl std::str::FromStr for GoDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(GoDuration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `format!` version `write_go` replaced: the reference it is held to.
    fn format_go_reference(d: Duration) -> String {
        fn trim_fraction(value: u128, unit: u128) -> String {
            let (whole, frac) = (value / unit, value % unit);
            if frac == 0 {
                return whole.to_string();
            }
            let width = unit.ilog10() as usize;
            let digits = format!("{frac:0width$}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        }
        let ns = d.as_nanos();
        if ns == 0 {
            return "0s".to_string();
        }
        if ns < 1_000 {
            return format!("{ns}ns");
        }
        if ns < 1_000_000 {
            return format!("{}µs", trim_fraction(ns, 1_000));
        }
        if ns < 1_000_000_000 {
            return format!("{}ms", trim_fraction(ns, 1_000_000));
        }
        let secs = d.as_secs();
        if secs < 60 {
            return format!("{}s", trim_fraction(ns, 1_000_000_000));
        }
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        let s = trim_fraction(ns % 60_000_000_000, 1_000_000_000);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else {
            format!("{m}m{s}s")
        }
    }

    #[test]
    fn go_durations_are_written_as_the_format_version_wrote_them() {
        let mut cases = vec![
            0, 1, 999, 1_000, 1_001, 1_010, 999_999, 1_000_000, 1_134_431,
        ];
        cases.extend([
            59_999_999_999,
            60_000_000_000,
            3_599_999_999_999,
            3_600_000_000_001,
        ]);
        cases.extend([u64::MAX, 7_200_500_000_000, 90_000_000_000]);
        // And a spread over every magnitude, with and without trailing zeros.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for shift in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x >> shift);
            cases.push((x >> shift) / 1_000 * 1_000);
        }
        for ns in cases {
            let d = Duration::from_nanos(ns);
            assert_eq!(format_go(d), format_go_reference(d), "{ns} ns");
        }
        let mut out = b"x".to_vec();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, u64::MAX);
        assert_eq!(out, b"x018446744073709551615");
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("800ms").unwrap(), Duration::from_millis(800));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("150us").unwrap(), Duration::from_micros(150));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43200));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "2", "ms", "2 s", "2sec", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
        let msg = parse_duration("2sec").unwrap_err().to_string();
        assert!(msg.contains("unknown unit"), "{msg}");
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go(Duration::from_nanos(1_134_431)), "1.134431ms");
        assert_eq!(format_go(Duration::from_secs(2)), "2s");
        assert_eq!(format_go(Duration::from_micros(150)), "150µs");
        assert_eq!(format_go(Duration::from_nanos(500)), "500ns");
        assert_eq!(format_go(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go(Duration::from_secs(90)), "1m30s");
    }
}
