//! The CORS policy compiled when a table is built: origins split at their wildcard, header
//! names lower-cased once, the `Access-Control-Expose-Headers` and `Max-Age` values built once,
//! so a request compares bytes and copies ready header values (no joining, no lower-casing).

use http::HeaderValue;

use weir_model::Cors;

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginRule {
    /// The whole origin, lower-case.
    Exact(String),
    /// One wildcard, as in `https://*.example.com`: what comes before and after it.
    Wildcard(String, String),
}

impl OriginRule {
    fn matches(&self, origin: &[u8]) -> bool {
        match self {
            Self::Exact(o) => o.as_bytes().eq_ignore_ascii_case(origin),
            Self::Wildcard(prefix, suffix) => {
                let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
                origin.len() >= p.len() + s.len()
                    && origin[..p.len()].eq_ignore_ascii_case(p)
                    && origin[origin.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// The gateway's CORS policy, ready for requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPlan {
    any_origin: bool,
    origins: Vec<OriginRule>,
    /// Upper-case method names.
    methods: Vec<String>,
    any_header: bool,
    /// Lower-case header names.
    headers: Vec<String>,
    /// `Access-Control-Expose-Headers`, when any are listed.
    pub expose: Option<HeaderValue>,
    /// `Access-Control-Max-Age`, when set and not zero.
    pub max_age: Option<HeaderValue>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
}

impl CorsPlan {
    /// Compiles the validated settings.
    pub fn compile(cors: &Cors) -> Self {
        let origins = cors
            .allow_origins
            .iter()
            .filter(|o| *o != "*")
            .map(|o| match o.split_once('*') {
                Some((p, s)) => {
                    OriginRule::Wildcard(p.to_ascii_lowercase(), s.to_ascii_lowercase())
                }
                None => OriginRule::Exact(o.to_ascii_lowercase()),
            })
            .collect();
        let expose = (!cors.expose_headers.is_empty())
            .then(|| HeaderValue::from_str(&cors.expose_headers.join(", ")).ok())
            .flatten();
        Self {
            any_origin: cors.any_origin(),
            origins,
            methods: cors
                .allow_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            any_header: cors.allow_headers.iter().any(|h| h == "*"),
            headers: cors
                .allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose,
            max_age: cors
                .max_age
                .filter(|a| !a.is_zero())
                .map(|a| HeaderValue::from(a.as_secs())),
            credentials: cors.allow_credentials,
        }
    }

    /// Whether every origin is allowed (answered with `*`).
    pub fn any_origin(&self) -> bool {
        self.any_origin
    }

    /// Whether `origin` (as the client wrote it) is allowed. Origins are ASCII (browsers
    /// send international names in punycode); anything else matches no listed origin.
    pub fn origin_allowed(&self, origin: &[u8]) -> bool {
        self.any_origin || (origin.is_ascii() && self.origins.iter().any(|r| r.matches(origin)))
    }

    /// Whether `method` is allowed; a preflight's own `OPTIONS` always is.
    pub fn method_allowed(&self, method: &str) -> bool {
        method.eq_ignore_ascii_case("OPTIONS")
            || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    /// Whether every header of an `Access-Control-Request-Headers` list is allowed.
    pub fn headers_allowed(&self, requested: &str) -> bool {
        self.any_header
            || requested
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .all(|h| {
                    h.eq_ignore_ascii_case("origin")
                        || self.headers.iter().any(|a| a.eq_ignore_ascii_case(h))
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(origins: &[&str], headers: &[&str]) -> CorsPlan {
        CorsPlan::compile(&Cors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into()],
            allow_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: vec!["X-A".into(), "X-B".into()],
            max_age: Some(std::time::Duration::ZERO),
            allow_credentials: false,
        })
    }

    #[test]
    fn origins_match_case_insensitively_around_one_wildcard() {
        let p = plan(&["https://*.example.com", "http://b.test"], &[]);
        assert!(p.origin_allowed(b"https://API.example.com"));
        assert!(p.origin_allowed(b"HTTP://B.TEST"));
        assert!(
            !p.origin_allowed(b"https://.com"),
            "prefix and suffix may not overlap"
        );
        assert!(!p.origin_allowed(b"https://evil.test"));
        assert!(!p.origin_allowed("https://é.example.co".as_bytes()));
        assert!(plan(&[], &[]).origin_allowed(b"anything"));
        assert!(plan(&["*"], &[]).origin_allowed(b"anything"));
    }

    #[test]
    fn headers_and_values_are_ready() {
        let p = plan(&[], &["Content-Type"]);
        assert!(p.headers_allowed(" content-type , ORIGIN,"));
        assert!(!p.headers_allowed("content-type, x-other"));
        assert!(plan(&[], &["*"]).headers_allowed("x-anything"));
        assert_eq!(
            p.expose.as_ref().map(|v| v.to_str().ok()),
            Some(Some("X-A, X-B"))
        );
        assert_eq!(p.max_age, None, "a zero max age is not sent");
        assert!(p.method_allowed("get") && p.method_allowed("OPTIONS") && !p.method_allowed("PUT"));
    }
}
