//! What the client sent, prepared once per request for every backend call: the query
//! parsed and re-encoded, the forwardable headers picked (hop-by-hop and gateway-owned ones
//! gone), `X-Forwarded-For`, `X-Forwarded-Host` and `Via` computed.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use percent_encoding::percent_decode_str;

use crate::plan::client_key::is_trusted;
use crate::plan::url::push_encoded;
use crate::router::Params;
use crate::telemetry::trace::TraceScope;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `Forwarded` (RFC 7239).
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// What this gateway calls itself in `Via` (and counts there to find loops).
pub const VIA_PSEUDONYM: &str = "weir";

/// A request that already passed through this gateway this many times is a loop (508).
pub const MAX_VIA_HOPS: usize = 5;

/// One query-string pair: the decoded key (what filters compare) and the pair re-encoded
/// from its decoded parts (what backends get: no `a=1;admin=true` smuggling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPair {
    /// Decoded key.
    pub key: String,
    /// `key=value`, both percent-encoded.
    pub encoded: String,
}

/// The client's request, reduced to what backends may see.
pub struct Inbound {
    /// Client method.
    pub method: http::Method,
    /// Client headers as received.
    pub headers: HeaderMap,
    /// Headers a backend may receive if its whitelist allows (never hop-by-hop, never the
    /// ones the gateway writes itself).
    pub forwardable: Vec<(HeaderName, HeaderValue)>,
    /// Query pairs, parsed once.
    pub query: Vec<QueryPair>,
    /// Path parameters.
    pub params: Params,
    /// Buffered request body (empty for streamed no-op requests).
    pub body: Bytes,
    /// Client address.
    pub peer: IpAddr,
    /// `X-Forwarded-For` to send.
    pub forwarded_for: HeaderValue,
    /// `X-Forwarded-Host` to send.
    pub forwarded_host: Option<HeaderValue>,
    /// `Via` to send: the client's chain plus this gateway.
    pub via: HeaderValue,
    /// Send buffered bodies chunked, as KrakenD does (Weir sends `Content-Length`).
    pub chunked_bodies: bool,
    /// The validated token's claims (`{JWT.x}` placeholders).
    pub claims: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
    /// `propagateClaims` headers: each name with its value, or `None` to drop the client's.
    pub claim_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// The request's server span when it is traced (backend calls are its children); set
    /// by the pipeline after `new`, like `claims`.
    pub trace: Option<TraceScope>,
    /// Send `X-Request-Id` to every backend whatever the whitelist. Not in KrakenD's mode
    /// (`chunked_bodies`), whose backends see KrakenD's headers only: there the id goes
    /// upstream when `inputHeaders` names it.
    pub send_request_id: bool,
}

/// Hop-by-hop headers: meaningful for one connection only, never forwarded.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The header names listed in `Connection`, lower-cased: hop-by-hop for this message too.
pub fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Removes hop-by-hop headers and those listed in `Connection` (from a backend's answer).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most answers carry none: look before allocating anything.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed = connection_tokens(headers);
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n) || listed.iter().any(|l| l == n.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// Decodes one query-string key or value (`+` is a space).
pub fn decode_query_component(s: &str) -> String {
    if s.contains('+') {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    } else {
        percent_decode_str(s).decode_utf8_lossy().into_owned()
    }
}

/// Parses a raw query string into pairs.
pub fn parse_query(raw: Option<&str>) -> Vec<QueryPair> {
    let Some(q) = raw else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            let key = decode_query_component(k);
            let mut encoded = String::with_capacity(pair.len() + 8);
            push_encoded(&mut encoded, &key);
            if let Some(v) = v {
                encoded.push('=');
                push_encoded(&mut encoded, &decode_query_component(v));
            }
            QueryPair { key, encoded }
        })
        .collect()
}

/// How many times `via` says the request passed through a Weir.
pub fn via_hops(headers: &HeaderMap) -> usize {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|hop| hop.split_whitespace().nth(1) == Some(VIA_PSEUDONYM))
        .count()
}

/// Whether a header is one the gateway writes itself (the client's copy is replaced or,
/// from an untrusted peer, dropped).
fn gateway_owned(name: &HeaderName) -> bool {
    name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::VIA
        || name == X_FORWARDED_FOR
        || name == X_FORWARDED_HOST
}

/// Headers that say who the client is: believed only from a trusted proxy.
fn identity_header(name: &HeaderName) -> bool {
    name == X_REAL_IP || name == FORWARDED
}

impl Inbound {
    /// Prepares the request `parts` for the backends.
    pub fn new(
        parts: http::request::Parts,
        params: Params,
        body: Bytes,
        peer: IpAddr,
        trusted: &[IpNet],
        chunked_bodies: bool,
    ) -> Self {
        let headers = parts.headers;
        let peer_trusted = !trusted.is_empty() && is_trusted(peer, trusted);
        let listed = connection_tokens(&headers);
        let forwardable = headers
            .iter()
            .filter(|(name, _)| {
                !is_hop_by_hop(name)
                    && !gateway_owned(name)
                    && (peer_trusted || !identity_header(name))
                    && !listed.iter().any(|l| l == name.as_str())
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        // Written on the stack: the header value below is then the only allocation.
        let mut peer_buf = [0u8; 48];
        let peer_text = {
            use std::io::Write as _;
            let mut cursor = std::io::Cursor::new(&mut peer_buf[..]);
            // An IPv6 address is at most 45 characters.
            let _ = write!(cursor, "{peer}");
            let n = usize::try_from(cursor.position()).unwrap_or(0);
            std::str::from_utf8(&peer_buf[..n]).unwrap_or("unknown")
        };
        // From a trusted proxy the chain so far is kept and the peer appended; from anyone
        // else the chain is the peer alone (a client can write any X-Forwarded-For).
        let forwarded_for = if peer_trusted {
            let chain: Vec<&str> = headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if chain.is_empty() {
                HeaderValue::from_str(peer_text)
            } else {
                HeaderValue::from_str(&format!("{}, {peer_text}", chain.join(", ")))
            }
        } else {
            HeaderValue::from_str(peer_text)
        }
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let client_via: Vec<&str> = headers
            .get_all(header::VIA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let via = if client_via.is_empty() {
            HeaderValue::from_static("1.1 weir")
        } else {
            HeaderValue::from_str(&format!("{}, 1.1 {VIA_PSEUDONYM}", client_via.join(", ")))
                .unwrap_or_else(|_| HeaderValue::from_static("1.1 weir"))
        };
        Self {
            method: parts.method,
            // HTTP/2 carries the host in `:authority` (the URI) instead of `Host`.
            forwarded_host: headers.get(header::HOST).cloned().or_else(|| {
                parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            }),
            query: parse_query(parts.uri.query()),
            forwardable,
            headers,
            params,
            body,
            peer,
            forwarded_for,
            via,
            chunked_bodies,
            claims: None,
            claim_headers: Vec::new(),
            trace: None,
            send_request_id: !chunked_bodies,
        }
    }

    /// The forwarded query for a backend whose filter is `allows`: pairs joined by `&`.
    pub fn query_for(&self, filter: &crate::plan::filter::QueryFilter) -> String {
        if filter.is_none() || self.query.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        for pair in self.query.iter().filter(|p| filter.allows(&p.key)) {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&pair.encoded);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], uri: &str) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn inbound(headers: &[(&str, &str)], peer: &str, trusted: &[&str]) -> Inbound {
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        Inbound::new(
            parts(headers, "/x?a=1&b=x%20y&c+d=%2B&flag"),
            Params::default(),
            Bytes::new(),
            peer.parse().unwrap(),
            &trusted,
            false,
        )
    }

    #[test]
    fn query_is_parsed_once_and_re_encoded() {
        let i = inbound(&[], "1.2.3.4", &[]);
        let keys: Vec<&str> = i.query.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c d", "flag"]);
        assert_eq!(
            i.query_for(&crate::plan::filter::QueryFilter::All),
            "a=1&b=x%20y&c%20d=%2B&flag"
        );
    }

    #[test]
    fn forwarding_headers_from_untrusted_peers_are_replaced_or_dropped() {
        let i = inbound(
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-real-ip", "6.6.6.6"),
                ("forwarded", "for=6.6.6.6"),
                ("x-keep", "1"),
                ("connection", "x-drop"),
                ("x-drop", "1"),
            ],
            "1.2.3.4",
            &[],
        );
        assert_eq!(i.forwarded_for, "1.2.3.4");
        let names: Vec<&str> = i.forwardable.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-keep"]);
    }

    #[test]
    fn a_trusted_proxy_extends_the_chain() {
        let i = inbound(
            &[("x-forwarded-for", "5.5.5.5"), ("x-real-ip", "5.5.5.5")],
            "10.0.0.1",
            &["10.0.0.0/8"],
        );
        assert_eq!(i.forwarded_for, "5.5.5.5, 10.0.0.1");
        assert!(i.forwardable.iter().any(|(n, _)| n == X_REAL_IP));
    }

    #[test]
    fn via_carries_the_chain_and_counts_our_hops() {
        let i = inbound(&[("via", "1.1 edge, 1.1 weir")], "1.2.3.4", &[]);
        assert_eq!(i.via, "1.1 edge, 1.1 weir, 1.1 weir");
        let mut h = HeaderMap::new();
        h.append(header::VIA, i.via.clone());
        assert_eq!(via_hops(&h), 2);
    }
}
