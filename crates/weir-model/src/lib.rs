//! The validated gateway model: what the data plane serves, with every string already parsed
//! into typed values and every default applied. Pure: no I/O, no kube, no sockets.

pub mod auth;
pub mod convert;
pub mod duration;
pub mod spec;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{
    ApiKeys, Auth, ClaimPath, JwksSource, JwtAlgorithm, JwtAuth, ScopesMatcher, SignerKey,
    TokenSigner,
};
pub use duration::{format_go, parse_duration, push_decimal, write_go, DurationError, GoDuration};
pub use template::{PathTemplate, Piece, TemplateError, UrlTemplate};

/// Path prefixes owned by the gateway itself; no endpoint may claim them.
pub const RESERVED_PREFIXES: [&str; 4] = ["/__health", "/__stats", "/__debug", "/__echo"];

/// Default `maxResponseSize`: the largest backend answer decoded, after decompression.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 10 * 1024 * 1024;

/// The largest `maxResponseSize` a backend may ask for.
pub const MAX_RESPONSE_SIZE_LIMIT: usize = 256 * 1024 * 1024;

/// Timeouts above this trigger a warning from `weir check` (KrakenD's advice, too).
pub const LONG_TIMEOUT: Duration = Duration::from_secs(2);

/// HTTP methods an endpoint or backend may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// Every method (`no-op` endpoints only); on a backend: the client's method.
    Any,
}

impl Method {
    /// Every concrete method, in a fixed order (index = `as usize`).
    pub const ALL: [Method; 5] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ];

    /// The canonical upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Any => "ANY",
        }
    }

    /// Parses a concrete method name, case-insensitively (never `ANY`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// The HTTP method; `None` for [`Method::Any`], which stands for the client's.
    pub fn to_http(self) -> Option<http::Method> {
        Some(match self {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
            Method::Any => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the gateway renders the merged answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputEncoding {
    /// A JSON object.
    #[default]
    Json,
    /// The `collection` array as a top-level JSON array.
    JsonCollection,
    /// The `content` string as plain text.
    String,
    /// XML.
    Xml,
    /// YAML.
    Yaml,
    /// Chosen per request from the `Accept` header.
    Negotiate,
    /// The single backend's answer passed through untouched.
    NoOp,
}

impl OutputEncoding {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputEncoding::Json => "json",
            OutputEncoding::JsonCollection => "json-collection",
            OutputEncoding::String => "string",
            OutputEncoding::Xml => "xml",
            OutputEncoding::Yaml => "yaml",
            OutputEncoding::Negotiate => "negotiate",
            OutputEncoding::NoOp => "no-op",
        }
    }
}

/// How the gateway decodes a backend's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendEncoding {
    /// A JSON object (or array with `isCollection`).
    #[default]
    Json,
    /// Any JSON value; arrays go under `collection`, scalars under `content`.
    SafeJson,
    /// XML, converted to a JSON-like tree (`-attr`, `#text`).
    Xml,
    /// The body as text under `content`.
    String,
    /// Passed through untouched (only for `no-op` endpoints).
    NoOp,
}

impl BackendEncoding {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendEncoding::Json => "json",
            BackendEncoding::SafeJson => "safejson",
            BackendEncoding::Xml => "xml",
            BackendEncoding::String => "string",
            BackendEncoding::NoOp => "no-op",
        }
    }
}

/// Which product's client-visible conventions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavor {
    /// Weir's own (`X-Weir-Completed`).
    #[default]
    Weir,
    /// Loaded from a `krakend.json`: `X-KrakenD-Completed` and KrakenD's rendering.
    KrakenD,
}

impl Flavor {
    /// The completion header's name.
    pub fn completed_header(self) -> &'static str {
        match self {
            Flavor::Weir => "x-weir-completed",
            Flavor::KrakenD => "x-krakend-completed",
        }
    }
}

/// A list of header or query-string names to forward, or all of them (`["*"]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum NameFilter {
    /// Nothing is forwarded.
    #[default]
    None,
    /// Everything is forwarded.
    All,
    /// Only these names. Header names are stored lower-cased.
    Only(Vec<String>),
}

impl NameFilter {
    /// Builds a filter; `case_insensitive` lower-cases the names (headers).
    pub fn from_list(names: &[String], case_insensitive: bool) -> Self {
        if names.is_empty() {
            NameFilter::None
        } else if names.iter().any(|n| n == "*") {
            NameFilter::All
        } else {
            NameFilter::Only(
                names
                    .iter()
                    .map(|n| {
                        if case_insensitive {
                            n.to_ascii_lowercase()
                        } else {
                            n.clone()
                        }
                    })
                    .collect(),
            )
        }
    }

    /// What passes both filters: a backend's list filters again what its endpoint forwards.
    pub fn intersect(&self, second: &NameFilter) -> NameFilter {
        match (self, second) {
            (NameFilter::None, _) | (_, NameFilter::None) => NameFilter::None,
            (NameFilter::All, other) | (other, NameFilter::All) => other.clone(),
            (NameFilter::Only(a), NameFilter::Only(b)) => {
                let both: Vec<String> = a.iter().filter(|n| b.contains(n)).cloned().collect();
                if both.is_empty() {
                    NameFilter::None
                } else {
                    NameFilter::Only(both)
                }
            }
        }
    }

    /// Whether `name` passes. Header callers pass a lower-cased name.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            NameFilter::None => false,
            NameFilter::All => true,
            NameFilter::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// When a static response is merged into the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaticStrategy {
    /// Every time.
    Always,
    /// When no backend failed.
    Success,
    /// When every backend answered in time.
    Complete,
    /// When some backend failed.
    Errored,
    /// When the answer is incomplete.
    Incomplete,
}

/// Data merged into the answer when the strategy matches.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticResponse {
    /// When to merge.
    pub strategy: StaticStrategy,
    /// What to merge (top-level keys overwrite).
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A token-bucket limit: `max_rate` tokens per `every`, bucket of `capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Tokens added per `every`.
    pub max_rate: u32,
    /// Bucket size (burst).
    pub capacity: u32,
    /// Refill period.
    pub every: Duration,
}

/// How a client is identified for per-client limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The peer address, or the first address in header `key` when set.
    Ip(Option<String>),
    /// The value of this header.
    Header(String),
    /// The value of this path parameter.
    Param(String),
}

/// Endpoint rate limits (either part may be off).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct EndpointRateLimit {
    /// Whole-endpoint limit (503 beyond it).
    pub endpoint: Option<Rate>,
    /// Per-client limit (429 beyond it) and how clients are told apart.
    pub client: Option<(Rate, ClientKey)>,
}

/// Circuit breaker settings for one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CircuitBreaker {
    /// Window in which consecutive failures count.
    pub interval: Duration,
    /// How long the breaker stays open.
    pub timeout: Duration,
    /// Opens after more than this many consecutive failures.
    pub max_errors: u32,
}

/// Detailed-error options of a backend (KrakenD `backend/http`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ErrorPolicy {
    /// `returnDetails: alias`: a failure contributes `error_<alias>` and the client gets 200.
    pub return_details: Option<String>,
    /// `returnCode: true`: the client gets the backend's status code.
    pub return_code: bool,
}

/// One operation of a flatmap filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FlatmapOp {
    /// Moves (renames) `from` to `to`.
    Move {
        /// Source dot path (`*` matches every array item).
        from: String,
        /// Destination dot path.
        to: String,
    },
    /// Deletes the path.
    Del(String),
    /// Appends the array at `from` to the array at `to`.
    Append {
        /// Source dot path.
        from: String,
        /// Destination dot path.
        to: String,
    },
}

/// A base URL of a backend host: scheme, authority and optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub https: bool,
    /// `host:port` (the port may be implied).
    pub authority: String,
    /// Path prefix without trailing `/` (often empty).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http://host:port[/prefix]`. A missing scheme means `http`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(format!("unsupported scheme in {s:?} (use http or https)"));
        } else {
            (false, s)
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(format!("no host in {s:?}"));
        }
        if prefix.contains(['?', '#']) {
            return Err(format!(
                "a host URL may not carry a query or fragment: {s:?}"
            ));
        }
        let uri: http::uri::Authority = authority
            .parse()
            .map_err(|e| format!("invalid host {authority:?}: {e}"))?;
        if uri.as_str().contains('@') {
            return Err(format!("credentials in host URLs are not supported: {s:?}"));
        }
        Ok(Self {
            https,
            authority: authority.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.prefix)
    }
}

/// One backend of an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Load-balanced base URLs.
    pub hosts: Vec<BaseUrl>,
    /// Path (+ query) with placeholders.
    pub url_pattern: UrlTemplate,
    /// Upstream method.
    pub method: Method,
    /// How the answer is decoded.
    pub encoding: BackendEncoding,
    /// Wrap a JSON array as `{"collection": [...]}`.
    pub is_collection: bool,
    /// Keep only this key's object.
    pub target: Option<String>,
    /// Keep only these dot paths.
    pub allow: Vec<String>,
    /// Remove these dot paths.
    pub deny: Vec<String>,
    /// Rename top-level keys.
    pub mapping: BTreeMap<String, String>,
    /// Wrap the answer under this key.
    pub group: Option<String>,
    /// Flatmap operations (replace allow/deny/mapping when present).
    pub flatmap: Vec<FlatmapOp>,
    /// Backend rate limit.
    pub rate_limit: Option<Rate>,
    /// Circuit breaker.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Detailed errors.
    pub errors: ErrorPolicy,
    /// Second-level header filter: applied to what the endpoint forwards.
    pub input_headers: Option<NameFilter>,
    /// Second-level query filter: applied to what the endpoint forwards.
    pub input_query_strings: Option<NameFilter>,
    /// Largest answer decoded (bytes, after decompression); above it the backend failed.
    pub max_response_size: usize,
    /// Follow redirects.
    pub follow_redirects: bool,
    /// Follow only redirects to the same scheme, host and port.
    pub redirect_same_host_only: bool,
    /// TLS options for `https` hosts.
    pub tls: Option<BackendTls>,
    /// Talk HTTP/2 (ALPN on https, prior knowledge on http).
    pub http2: bool,
}

/// How the gateway connects to an `https` backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BackendTls {
    /// A PEM file of CA certificates to trust instead of the public roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// The name to verify the backend's certificate against (and send as SNI).
    pub server_name: Option<String>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub cert_file: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<std::path::PathBuf>,
    /// Accept any certificate (never in production: anyone on the path can impersonate the
    /// backend).
    pub insecure_skip_verify: bool,
}

/// The lowest TLS version the proxy port accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

/// One certificate the proxy port serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificatePair {
    /// PEM certificate chain, leaf first.
    pub cert_file: std::path::PathBuf,
    /// PEM private key.
    pub key_file: std::path::PathBuf,
}

/// TLS termination on the proxy port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// Served by SNI; the first is the default.
    pub certificates: Vec<CertificatePair>,
    /// Lowest version accepted.
    pub min_version: TlsVersion,
    /// An extra plain-HTTP port beside TLS (`None` = none).
    pub plain_port: Option<u16>,
    /// On that port, answer every request with a 308 to https.
    pub redirect_http: bool,
}

/// One public route.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Where it came from (file and index, or namespace/name), for messages.
    pub origin: String,
    /// The public path template.
    pub path: PathTemplate,
    /// The public method.
    pub method: Method,
    /// Optional Host to match (lower-case, no port).
    pub host: Option<String>,
    /// Whole-pipeline deadline.
    pub timeout: Duration,
    /// `Cache-Control: public, max-age=N` on complete answers (0 = none).
    pub cache_ttl: Duration,
    /// Identical calls per backend; the first good answer wins.
    pub concurrent_calls: u32,
    /// Output rendering.
    pub output_encoding: OutputEncoding,
    /// Headers forwarded upstream.
    pub input_headers: NameFilter,
    /// Query strings forwarded upstream.
    pub input_query_strings: NameFilter,
    /// Endpoint and client rate limits.
    pub rate_limit: EndpointRateLimit,
    /// Call backends one after another.
    pub sequential: bool,
    /// Static data merged by strategy.
    pub static_response: Option<StaticResponse>,
    /// Path parameters may carry encoded slashes to backends.
    pub allow_encoded_slashes: bool,
    /// Who may call it; `None` = anyone.
    pub auth: Option<Box<Auth>>,
    /// Fields of the answer signed as JWTs.
    pub token_signer: Option<Box<TokenSigner>>,
    /// At least one backend.
    pub backends: Vec<Backend>,
}

impl Endpoint {
    /// The route this endpoint claims: the one identity that validation, the controller's
    /// conflict resolution and the router agree on.
    pub fn route_key(&self) -> RouteKey {
        RouteKey {
            host: self.host.clone(),
            method: self.method,
            shape: self.path.shape(),
        }
    }
}

/// A route's identity: host, method and path *shape* (placeholder names erased, so
/// `/users/{id}` and `/users/{name}` are one route: a router cannot tell them apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    /// Host to match, lower-case; `None` matches any host.
    pub host: Option<String>,
    /// The method.
    pub method: Method,
    /// The path with every `{name}` written `{}`.
    pub shape: String,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{}",
            self.method,
            self.host.as_deref().unwrap_or(""),
            self.shape
        )
    }
}

/// Gateway-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Proxy listener port.
    pub port: u16,
    /// Separate listener for the reserved endpoints.
    pub admin_port: Option<u16>,
    /// Default endpoint timeout.
    pub timeout: Duration,
    /// Default cache TTL.
    pub cache_ttl: Duration,
    /// Default output encoding.
    pub output_encoding: OutputEncoding,
    /// Default endpoint rate limit.
    pub rate_limit: EndpointRateLimit,
    /// Put the error text in 500 bodies (KrakenD `router.return_error_msg`).
    pub return_error_message: bool,
    /// `/__health` on or off.
    pub health_enabled: bool,
    /// Health path (default `/__health`).
    pub health_path: String,
    /// `/__stats` on or off.
    pub stats_enabled: bool,
    /// `/__debug/` on or off.
    pub debug: bool,
    /// `/__echo/` on or off.
    pub echo: bool,
    /// Access log on stdout.
    pub access_log: bool,
    /// Shape of the access-log lines (`accessLog: {format: json}`).
    pub access_log_format: LogFormat,
    /// Shape of the application log (`logFormat`; the `--log-format` flag wins).
    pub log_format: LogFormat,
    /// OpenTelemetry tracing; `None` = off.
    pub tracing: Option<TracingSettings>,
    /// Client-visible conventions.
    pub flavor: Flavor,
    /// Cross-origin resource sharing; `None` leaves CORS headers out entirely.
    pub cors: Option<Cors>,
    /// Peers (CIDRs) whose `X-Forwarded-For` is believed: load balancers in front of Weir.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bind address of the proxy and admin listeners.
    pub listen: std::net::IpAddr,
    /// Serve HTTP/2 (ALPN on TLS, prior knowledge on plain ports) beside HTTP/1.1.
    pub http2: bool,
    /// TLS termination on the proxy port.
    pub tls: Option<TlsSettings>,
    /// How long an upgraded (WebSocket) connection may stay silent in both directions.
    pub websocket_idle_timeout: Duration,
    /// Authentication of every endpoint that does not set its own.
    pub auth: Option<Auth>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            port: 8080,
            admin_port: None,
            timeout: Duration::from_secs(2),
            cache_ttl: Duration::ZERO,
            output_encoding: OutputEncoding::Json,
            rate_limit: EndpointRateLimit::default(),
            return_error_message: false,
            health_enabled: true,
            health_path: "/__health".to_string(),
            stats_enabled: false,
            debug: false,
            echo: false,
            access_log: true,
            access_log_format: LogFormat::Text,
            log_format: LogFormat::Text,
            tracing: None,
            flavor: Flavor::Weir,
            cors: None,
            trusted_proxies: Vec::new(),
            listen: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            http2: true,
            tls: None,
            websocket_idle_timeout: Duration::from_secs(3600),
            auth: None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// Human-readable text (the access log in KrakenD's gin shape).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    /// Parses `text` or `json` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The wire protocol spans are exported with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies, POSTed to `<endpoint>/v1/traces`.
    HttpProtobuf,
    /// OTLP/gRPC (`TraceService/Export`), plaintext HTTP/2.
    Grpc,
}

/// OpenTelemetry tracing (`tracing` in the settings).
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// The protocol, from the endpoint's scheme (`http(s)://` or `grpc://`).
    pub protocol: OtlpProtocol,
    /// Where spans go: the full OTLP/HTTP URL (`.../v1/traces`) or the gRPC server's
    /// `http://host:port`.
    pub endpoint: String,
    /// Share of new traces recorded (0.0 to 1.0); a client's sampled flag is followed.
    pub sample_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

/// Default `tracing.serviceName`.
pub const DEFAULT_SERVICE_NAME: &str = "weir";

/// CORS policy (KrakenD `security/cors`), applied to every response of the proxy listener.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cors {
    /// Allowed origins, lower-case; empty or `*` allows any origin.
    pub allow_origins: Vec<String>,
    /// Allowed methods, upper-case.
    pub allow_methods: Vec<String>,
    /// Allowed request headers, lower-case (`origin` is always allowed).
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    pub expose_headers: Vec<String>,
    /// How long a preflight answer may be cached (`Access-Control-Max-Age`).
    pub max_age: Option<Duration>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
}

impl Cors {
    /// Methods allowed when the configuration lists none (KrakenD's defaults).
    pub const DEFAULT_METHODS: [&'static str; 3] = ["GET", "HEAD", "POST"];

    /// Whether any origin is allowed.
    pub fn any_origin(&self) -> bool {
        self.allow_origins.is_empty() || self.allow_origins.iter().any(|o| o == "*")
    }
}

/// A whole validated configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gateway {
    /// Gateway-wide settings.
    pub settings: Settings,
    /// Every endpoint, in configuration order. Shared, so the controller's index, the
    /// published model and the serving table hold one copy, and an unchanged endpoint is
    /// recognised by pointer.
    pub endpoints: Vec<Arc<Endpoint>>,
}

/// Whether `path` is (under) one of the reserved prefixes.
pub fn is_reserved(path: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// One problem found while validating configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// File, or namespace/name.
    pub origin: String,
    /// Endpoint path (or index) when known.
    pub endpoint: Option<String>,
    /// Field path such as `backends[0].urlPattern`.
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(ep) = &self.endpoint {
            write!(f, ": endpoint {ep}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Checks rules that span endpoints: no two claim the same method + host + path.
pub fn check_duplicates(endpoints: &[Arc<Endpoint>]) -> Vec<FieldError> {
    let mut seen: BTreeMap<RouteKey, &Endpoint> = BTreeMap::new();
    let mut errors = Vec::new();
    for ep in endpoints {
        let key = ep.route_key();
        if let Some(first) = seen.get(&key) {
            errors.push(FieldError {
                origin: ep.origin.clone(),
                endpoint: Some(ep.path.to_string()),
                field: "path".into(),
                message: format!(
                    "duplicate route {} {}{}: {} {} in {} already claims it{}",
                    ep.method,
                    ep.host.as_deref().unwrap_or(""),
                    ep.path,
                    first.method,
                    first.path,
                    first.origin,
                    if first.path == ep.path {
                        ""
                    } else {
                        " (placeholder names do not tell routes apart)"
                    }
                ),
            });
        } else {
            seen.insert(key, ep.as_ref());
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefixes() {
        assert!(is_reserved("/__health"));
        assert!(is_reserved("/__debug/x"));
        assert!(!is_reserved("/__healthy"));
        assert!(!is_reserved("/users"));
    }

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("http://users.shop:8080/api/").unwrap();
        assert_eq!(
            (b.https, b.authority.as_str(), b.prefix.as_str()),
            (false, "users.shop:8080", "/api")
        );
        assert!(BaseUrl::parse("https://x").unwrap().https);
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("http://").is_err());
        assert!(BaseUrl::parse("http://a b").is_err());
        assert!(BaseUrl::parse("http://x/?q=1").is_err());
    }

    #[test]
    fn name_filters() {
        let f = NameFilter::from_list(&["X-Id".into()], true);
        assert!(f.allows("x-id"));
        assert!(!f.allows("x-other"));
        assert!(NameFilter::from_list(&["*".into()], true).allows("anything"));
        assert!(!NameFilter::from_list(&[], true).allows("x"));
        let ep = NameFilter::from_list(&["a".into(), "b".into()], false);
        let be = NameFilter::from_list(&["b".into(), "c".into()], false);
        assert_eq!(ep.intersect(&be), NameFilter::Only(vec!["b".into()]));
        assert_eq!(ep.intersect(&NameFilter::All), ep);
        assert_eq!(NameFilter::All.intersect(&be), be);
        assert_eq!(ep.intersect(&NameFilter::None), NameFilter::None);
    }
}
