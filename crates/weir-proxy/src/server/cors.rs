//! Cross-origin resource sharing with the semantics KrakenD's `security/cors` has (it wraps
//! rs/cors): a preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered 204 by
//! the gateway itself, with the allow-* headers only when origin, method and every requested
//! header are allowed; other responses get `Vary: Origin` and, for an allowed origin and
//! method, `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers`.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::plan::cors::CorsPlan;

use crate::{empty, Body};

/// Whether the request is a CORS preflight the gateway answers itself.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn allow_origin_value(cors: &CorsPlan, origin: &HeaderValue) -> HeaderValue {
    if cors.any_origin() {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    }
}

/// The gateway's own answer to a preflight: always 204, with the allow-* headers only when
/// the origin, the requested method and every requested header are allowed.
pub fn preflight(cors: &CorsPlan, headers: &HeaderMap) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let out = resp.headers_mut();
    for vary in [
        "Origin",
        "Access-Control-Request-Method",
        "Access-Control-Request-Headers",
    ] {
        out.append(header::VARY, HeaderValue::from_static(vary));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return resp;
    };
    let method = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS);
    let requested_text = requested.and_then(|v| v.to_str().ok()).unwrap_or("");
    if !cors.origin_allowed(origin.as_bytes())
        || !cors.method_allowed(method)
        || !cors.headers_allowed(requested_text)
    {
        return resp;
    }
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        allow_origin_value(cors, origin),
    );
    if let Ok(m) = HeaderValue::from_str(&method.to_ascii_uppercase()) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m);
    }
    if let Some(h) = requested.filter(|_| !requested_text.trim().is_empty()) {
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
    }
    if cors.credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(age) = &cors.max_age {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
    }
    resp
}

/// Adds the CORS headers of an actual (non-preflight) request to its response.
pub fn decorate(
    cors: &CorsPlan,
    origin: Option<&HeaderValue>,
    method: &Method,
    out: &mut HeaderMap,
) {
    out.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin else {
        return;
    };
    let allowed = cors.origin_allowed(origin.as_bytes()) && cors.method_allowed(method.as_str());
    if !allowed {
        return;
    }
    out.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        allow_origin_value(cors, origin),
    );
    if let Some(v) = &cors.expose {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
    if cors.credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> CorsPlan {
        CorsPlan::compile(&weir_model::Cors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["content-type".into()],
            expose_headers: vec!["Content-Length".into()],
            max_age: Some(std::time::Duration::from_secs(3600)),
            allow_credentials: false,
        })
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preflight_allows_listed_method_and_headers() {
        let resp = preflight(
            &cors(&["*"]),
            &request(&[
                ("origin", "http://a.example"),
                ("access-control-request-method", "get"),
                ("access-control-request-headers", "Content-Type,Origin"),
            ]),
        );
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-methods"], "GET");
        assert_eq!(h["access-control-allow-headers"], "Content-Type,Origin");
        assert_eq!(h["access-control-max-age"], "3600");
    }

    #[test]
    fn preflight_refusals_carry_no_allow_headers() {
        for pairs in [
            &[
                ("origin", "http://a.example"),
                ("access-control-request-method", "PUT"),
            ][..],
            &[
                ("origin", "http://a.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "X-Other"),
            ][..],
            &[("access-control-request-method", "GET")][..],
        ] {
            let resp = preflight(&cors(&[]), &request(pairs));
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
            assert!(!resp.headers().contains_key("access-control-allow-origin"));
            assert!(!resp.headers().contains_key("access-control-allow-methods"));
        }
    }

    #[test]
    fn listed_origins_are_echoed_and_wildcards_match() {
        let c = cors(&["https://*.example.com", "http://b.test"]);
        let mut h = HeaderMap::new();
        let origin = HeaderValue::from_static("https://api.example.com");
        decorate(&c, Some(&origin), &Method::GET, &mut h);
        assert_eq!(h["access-control-allow-origin"], "https://api.example.com");
        assert_eq!(h["vary"], "Origin");
        let mut h = HeaderMap::new();
        let origin = HeaderValue::from_static("https://evil.test");
        decorate(&c, Some(&origin), &Method::GET, &mut h);
        assert!(!h.contains_key("access-control-allow-origin"));
        let mut h = HeaderMap::new();
        let origin = HeaderValue::from_static("http://b.test");
        decorate(&c, Some(&origin), &Method::DELETE, &mut h);
        assert!(!h.contains_key("access-control-allow-origin"));
    }
}
