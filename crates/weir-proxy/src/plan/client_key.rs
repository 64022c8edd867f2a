//! How a per-client rate limit tells clients apart, compiled once: the header name parsed,
//! the path parameter resolved to its index.
//!
//! The `ip` strategy with a forwarding header believes that header only as far as the
//! trusted proxies go: the list `X-Forwarded-For..., peer` is walked from the right, trusted
//! addresses are skipped, and the first untrusted one is the client. A client can write any
//! `X-Forwarded-For` it likes; only what our own proxies appended is evidence.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use weir_model::{ClientKey, PathTemplate};

/// Compiled client-key extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeyPlan {
    /// The client address (the peer, or walked back through trusted proxies).
    Ip(Option<HeaderName>),
    /// A header's value.
    Header(HeaderName),
    /// A path parameter's value, by index.
    Param(usize),
}

impl ClientKeyPlan {
    /// Compiles `key` against the endpoint path (validation checked that a `param` key names
    /// a placeholder and that header names are valid).
    pub fn compile(key: &ClientKey, path: &PathTemplate) -> Option<Self> {
        Some(match key {
            ClientKey::Ip(None) => ClientKeyPlan::Ip(None),
            ClientKey::Ip(Some(h)) => {
                ClientKeyPlan::Ip(Some(HeaderName::from_bytes(h.as_bytes()).ok()?))
            }
            ClientKey::Header(h) => {
                ClientKeyPlan::Header(HeaderName::from_bytes(h.as_bytes()).ok()?)
            }
            ClientKey::Param(p) => ClientKeyPlan::Param(path.params().iter().position(|n| n == p)?),
        })
    }

    /// The client's key for this request; `None` when it is missing or unusable (the
    /// caller refuses the request: a client cannot dodge its limit by omitting the key).
    pub fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        params: &'a [String],
        peer: IpAddr,
        trusted: &[IpNet],
    ) -> Option<Cow<'a, str>> {
        match self {
            ClientKeyPlan::Ip(None) => Some(Cow::Owned(peer.to_string())),
            ClientKeyPlan::Ip(Some(header)) => {
                client_address(headers, header, peer, trusted).map(|ip| Cow::Owned(ip.to_string()))
            }
            ClientKeyPlan::Header(header) => headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(Cow::Borrowed),
            ClientKeyPlan::Param(i) => params
                .get(*i)
                .filter(|v| !v.is_empty())
                .map(|v| Cow::Borrowed(v.as_str())),
        }
    }
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack listener reports) is
/// the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address: `peer`, or, while the address on the right is a trusted proxy, the
/// one it forwarded for (from `header`, usually `X-Forwarded-For`, all its lines). `None`
/// when a value the walk reaches is not an IP address.
pub fn client_address(
    headers: &HeaderMap,
    header: &HeaderName,
    peer: IpAddr,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let mut current = canonical(peer);
    if !is_trusted(current, trusted) {
        return Some(current);
    }
    // Every line of the header, in order, then walked from the right.
    let hops: Vec<&str> = headers
        .get_all(header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    for hop in hops.iter().rev() {
        current = canonical(parse_hop(hop)?);
        if !is_trusted(current, trusted) {
            return Some(current);
        }
    }
    // Every hop is trusted: the leftmost one is as far as the evidence goes.
    Some(current)
}

/// `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443` or `1.2.3.4:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let ip = client_address(
            &headers(&["6.6.6.6"]),
            &XFF,
            "9.9.9.9".parse().unwrap(),
            &[],
        );
        assert_eq!(ip, Some("9.9.9.9".parse().unwrap()));
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&["6.6.6.6, 1.2.3.4", "10.0.0.7"]);
        let ip = client_address(&h, &XFF, "10.0.0.1".parse().unwrap(), &trusted);
        assert_eq!(ip, Some("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn a_non_ip_value_on_the_walk_is_refused() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&["1.2.3.4, evil"]);
        assert_eq!(
            client_address(&h, &XFF, "10.0.0.1".parse().unwrap(), &trusted),
            None
        );
        // Beyond the first untrusted hop nothing is read, so garbage there does not matter.
        let h = headers(&["evil, 1.2.3.4"]);
        assert_eq!(
            client_address(&h, &XFF, "10.0.0.1".parse().unwrap(), &trusted),
            Some("1.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn mapped_ipv6_peers_match_ipv4_networks() {
        let trusted = nets(&["127.0.0.0/8"]);
        assert!(is_trusted("::ffff:127.0.0.1".parse().unwrap(), &trusted));
        let h = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_address(&h, &XFF, "127.0.0.1".parse().unwrap(), &trusted),
            Some("2001:db8::1".parse().unwrap())
        );
    }
}
