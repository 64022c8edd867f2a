//! Requests refused before routing: an ambiguous host (two `Host` headers, or an
//! absolute-form URI naming another host than `Host`: routing and backends could disagree
//! about which one counts), and loops (a request that already passed through Weir
//! [`MAX_VIA_HOPS`] times, which a backend redirecting into the gateway would cause).

use http::header;
use http::{HeaderMap, StatusCode, Uri};

use crate::pipeline::inbound::{via_hops, MAX_VIA_HOPS};

/// Why a request is refused before routing, with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Two or more `Host` headers.
    DuplicateHost,
    /// The request target names another host than `Host`.
    HostMismatch,
    /// The request looped through this gateway.
    Loop,
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::DuplicateHost | Refusal::HostMismatch => StatusCode::BAD_REQUEST,
            Refusal::Loop => StatusCode::LOOP_DETECTED,
        }
    }

    /// The text answered.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::DuplicateHost => "400 more than one Host header",
            Refusal::HostMismatch => "400 the request target names another host than Host",
            Refusal::Loop => "508 loop detected",
        }
    }
}

/// Checks a request's head.
pub fn check(uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::DuplicateHost);
    }
    if let (Some(authority), Some(host)) = (uri.authority(), host) {
        let same = host
            .to_str()
            .is_ok_and(|h| h.eq_ignore_ascii_case(authority.as_str()));
        if !same {
            return Err(Refusal::HostMismatch);
        }
    }
    if headers.contains_key(header::VIA) && via_hops(headers) >= MAX_VIA_HOPS {
        return Err(Refusal::Loop);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        check(&uri.parse().unwrap(), &h)
    }

    #[test]
    fn ambiguous_hosts_are_refused() {
        assert_eq!(head("/x", &[("host", "a")]), Ok(()));
        assert_eq!(
            head("/x", &[("host", "a"), ("host", "b")]),
            Err(Refusal::DuplicateHost)
        );
        assert_eq!(head("http://a:80/x", &[("host", "a:80")]), Ok(()));
        assert_eq!(
            head("http://evil/x", &[("host", "a")]),
            Err(Refusal::HostMismatch)
        );
    }

    #[test]
    fn loops_are_detected_from_via() {
        let hops = ["1.1 weir"; MAX_VIA_HOPS].join(", ");
        assert_eq!(head("/x", &[("via", &hops)]), Err(Refusal::Loop));
        let fewer = ["1.1 weir"; MAX_VIA_HOPS - 1].join(", ");
        assert_eq!(head("/x", &[("via", &fewer)]), Ok(()));
        assert_eq!(head("/x", &[("via", "1.1 other, 1.1 other")]), Ok(()));
    }
}
