//! One line per request on stdout, in the shape KrakenD (gin) users know:
//! `2017/01/19 - 10:31:27 | 200 |    1.134431ms | ::1 |   POST     /users` (UTC).

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use time::macros::format_description;

use weir_model::format_go;

/// Formats one access-log line (without the newline).
pub fn format_line(
    now: time::OffsetDateTime,
    status: StatusCode,
    latency: Duration,
    ip: IpAddr,
    method: &Method,
    path: &str,
) -> String {
    let when = now
        .format(format_description!(
            "[year]/[month]/[day] - [hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    format!(
        "{when} | {:3} | {:>13} | {ip} |   {:<7}  {path}",
        status.as_u16(),
        format_go(latency),
        method.as_str()
    )
}

/// Writes one line to stdout. A closed stdout is ignored: logging never fails a request.
pub fn write(status: StatusCode, latency: Duration, ip: IpAddr, method: &Method, path: &str) {
    let mut line = format_line(
        time::OffsetDateTime::now_utc(),
        status,
        latency,
        ip,
        method,
        path,
    );
    line.push('\n');
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_shape() {
        let now = time::macros::datetime!(2017-01-19 10:31:27 UTC);
        let line = format_line(
            now,
            StatusCode::OK,
            Duration::from_nanos(1_134_431),
            "::1".parse().unwrap(),
            &Method::POST,
            "/users",
        );
        assert_eq!(
            line,
            "2017/01/19 - 10:31:27 | 200 |    1.134431ms | ::1 |   POST     /users"
        );
    }
}
