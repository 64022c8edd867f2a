//! The gateway settings file (docs/configuration.md, "Gateway settings").

use serde::{Deserialize, Serialize};

use weir_model::convert as api_convert;
use weir_model::spec::{AuthSpec, EndpointSpec, OutputEncodingSpec, RateLimitSpec};
use weir_model::{self as model, EndpointRateLimit, FieldError, Settings};

/// `/__health` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSpec {
    /// Serve the health endpoint (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Its path (default `/__health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `/__stats` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsSpec {
    /// Serve Prometheus metrics (default false).
    #[serde(default)]
    pub enabled: bool,
}

/// Cross-origin resource sharing (KrakenD `security/cors`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsSpec {
    /// Allowed origins; empty or `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Allowed methods (default GET, HEAD, POST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (`Origin` is always allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long browsers may cache a preflight answer (`12h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Allow cookies and HTTP authentication.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_credentials: bool,
}

/// Which product's client-visible conventions the gateway follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlavorSpec {
    /// `X-Weir-Completed` (the default).
    Weir,
    /// `X-KrakenD-Completed` and KrakenD's other conventions (set by `weir convert`).
    Krakend,
}

/// One certificate and its key (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSpec {
    /// Certificate chain, leaf first.
    pub cert_file: String,
    /// Private key.
    pub key_file: String,
}

/// TLS termination on the proxy port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// Certificates picked by SNI; the first is the default.
    #[serde(default)]
    pub certificates: Vec<CertificateSpec>,
    /// `"1.2"` (default) or `"1.3"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// An extra plain-HTTP port beside TLS (0 or absent = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Answer plain HTTP on `port` with 308 to https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_http: Option<bool>,
}

/// `text` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatSpec {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatSpec> for model::LogFormat {
    fn from(f: LogFormatSpec) -> Self {
        match f {
            LogFormatSpec::Text => model::LogFormat::Text,
            LogFormatSpec::Json => model::LogFormat::Json,
        }
    }
}

/// `accessLog: true | false | {format: text | json}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AccessLogSpec {
    /// On (text) or off.
    Enabled(bool),
    /// On, in this format.
    Options(AccessLogOptions),
}

/// The object form of `accessLog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogOptions {
    /// Line format (default text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormatSpec>,
}

impl From<bool> for AccessLogSpec {
    fn from(on: bool) -> Self {
        AccessLogSpec::Enabled(on)
    }
}

/// OpenTelemetry tracing (off when absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingSpec {
    /// `http://collector:4318` (OTLP/HTTP, protobuf; `/v1/traces` is appended unless the
    /// URL already has a path) or `grpc://collector:4317` (OTLP/gRPC).
    pub otlp_endpoint: String,
    /// Share of new traces recorded, 0.0 to 1.0 (default 1.0); parent-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_ratio: Option<f64>,
    /// `service.name` of the spans (default `weir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

impl TracingSpec {
    fn to_model(&self, err: &mut impl FnMut(&str, String)) -> model::TracingSettings {
        let sample_ratio = self.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            err(
                "tracing.sampleRatio",
                format!("must be between 0.0 and 1.0 (got {sample_ratio})"),
            );
        }
        let service_name = self
            .service_name
            .clone()
            .unwrap_or_else(|| model::DEFAULT_SERVICE_NAME.to_string());
        if service_name.trim().is_empty() {
            err("tracing.serviceName", "must not be empty".into());
        }
        let (protocol, endpoint) = match otlp_endpoint(&self.otlp_endpoint) {
            Ok(x) => x,
            Err(message) => {
                err("tracing.otlpEndpoint", message);
                (model::OtlpProtocol::HttpProtobuf, String::new())
            }
        };
        model::TracingSettings {
            protocol,
            endpoint,
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
            service_name,
        }
    }
}

/// `http(s)://host:port[/path]` → OTLP/HTTP at that path (default `/v1/traces`);
/// `grpc://host:port` → OTLP/gRPC at `http://host:port`.
fn otlp_endpoint(text: &str) -> Result<(model::OtlpProtocol, String), String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!(
            "{text:?} needs a host and port (http://otel-collector:4318 or grpc://otel-collector:4317)"
        ));
    };
    let path = uri.path();
    match uri.scheme_str() {
        Some("http") | Some("https") => {
            let path = if path.is_empty() || path == "/" {
                "/v1/traces"
            } else {
                path
            };
            let scheme = uri.scheme_str().unwrap_or("http");
            Ok((
                model::OtlpProtocol::HttpProtobuf,
                format!("{scheme}://{authority}{path}"),
            ))
        }
        Some("grpc") if path.is_empty() || path == "/" => {
            Ok((model::OtlpProtocol::Grpc, format!("http://{authority}")))
        }
        Some("grpc") => Err(format!("{text:?}: a grpc:// endpoint takes no path")),
        _ => Err(format!(
            "{text:?}: the scheme must be http:// or https:// (OTLP/HTTP) or grpc:// (OTLP/gRPC)"
        )),
    }
}

/// The settings file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsFile {
    /// Proxy listener port (default 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Serve the reserved endpoints on this port instead of the proxy port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_port: Option<u16>,
    /// Default endpoint timeout (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Default cache TTL (default 0s).
    #[serde(default, rename = "cacheTTL", skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<String>,
    /// Default output encoding (default json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_encoding: Option<OutputEncodingSpec>,
    /// Default endpoint rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Put error text in 500 bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_error_message: Option<bool>,
    /// Health endpoint options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// Metrics endpoint options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsSpec>,
    /// Serve `/__debug/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// Serve `/__echo/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// Access log on stdout (default true): `true`, `false` or `{format: text | json}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogSpec>,
    /// Application-log format (default text); the `--log-format` flag wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormatSpec>,
    /// OpenTelemetry tracing (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSpec>,
    /// CORS policy (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSpec>,
    /// Client-visible conventions (default weir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<FlavorSpec>,
    /// Proxies in front of Weir (CIDRs or addresses) whose `X-Forwarded-For` is believed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Bind address of the proxy and admin listeners (default 0.0.0.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// HTTP/2 beside HTTP/1.1 (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    /// TLS termination on the proxy port (plain HTTP when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Idle timeout of an upgraded WebSocket connection (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket_idle_timeout: Option<String>,
    /// Authentication of every endpoint that does not set its own `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Endpoints (local mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointSpec>,
}

impl SettingsFile {
    /// Converts into model settings; errors name `origin` and the field.
    pub fn to_settings(&self, origin: &str) -> (Settings, Vec<FieldError>) {
        let d = Settings::default();
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                origin: origin.to_string(),
                endpoint: None,
                field: field.to_string(),
                message,
            })
        };
        let mut dur = |field: &str, v: &Option<String>, default| match v {
            None => default,
            Some(s) => model::parse_duration(s).unwrap_or_else(|e| {
                err(field, e.to_string());
                default
            }),
        };
        let timeout = dur("timeout", &self.timeout, d.timeout);
        let websocket_idle_timeout = dur(
            "websocketIdleTimeout",
            &self.websocket_idle_timeout,
            d.websocket_idle_timeout,
        );
        let cache_ttl = dur("cacheTTL", &self.cache_ttl, d.cache_ttl);
        let mut rl_errors = Vec::new();
        let rate_limit = self
            .rate_limit
            .as_ref()
            .map(|rl| {
                api_convert::rate_limit(
                    rl,
                    &EndpointRateLimit::default(),
                    "rateLimit",
                    &mut rl_errors,
                )
            })
            .unwrap_or_default();
        let health_path = self
            .health
            .as_ref()
            .and_then(|h| h.path.clone())
            .unwrap_or(d.health_path.clone());
        for (field, message) in rl_errors {
            err(&field, message);
        }
        if timeout.is_zero() {
            err("timeout", "must be greater than zero".into());
        }
        if !health_path.starts_with('/')
            || health_path.len() < 2
            || health_path.contains(['{', '}'])
        {
            err(
                "health.path",
                format!("must be a plain path starting with '/' (got {health_path:?})"),
            );
        }
        if let Some((_, model::ClientKey::Param(p))) = &rate_limit.client {
            err(
                "rateLimit.strategy",
                format!("param strategy ({p}) only makes sense on an endpoint"),
            );
        }
        if self.admin_port.is_some() && self.admin_port == self.port {
            err("adminPort", "must differ from port".into());
        }
        let cors = self.cors.as_ref().map(|c| {
            let (cors, problems) = c.to_model();
            for (field, message) in problems {
                err(&format!("cors.{field}"), message);
            }
            cors
        });
        let auth = self.auth.as_ref().and_then(|a| {
            let mut problems = Vec::new();
            let converted = api_convert::auth(a, "auth", &mut problems);
            for (field, message) in problems {
                err(&field, message);
            }
            converted
        });
        let settings = Settings {
            auth,
            port: self.port.unwrap_or(d.port),
            admin_port: self.admin_port,
            timeout,
            cache_ttl,
            output_encoding: self
                .output_encoding
                .map(api_convert::output_encoding)
                .unwrap_or(d.output_encoding),
            rate_limit,
            return_error_message: self.return_error_message.unwrap_or(d.return_error_message),
            health_enabled: self.health.as_ref().and_then(|h| h.enabled).unwrap_or(true),
            health_path,
            stats_enabled: self.stats.as_ref().is_some_and(|s| s.enabled),
            debug: self.debug.unwrap_or(false),
            echo: self.echo.unwrap_or(false),
            access_log: !matches!(self.access_log, Some(AccessLogSpec::Enabled(false))),
            access_log_format: match self.access_log {
                Some(AccessLogSpec::Options(AccessLogOptions { format: Some(f) })) => f.into(),
                _ => model::LogFormat::Text,
            },
            log_format: self.log_format.map(Into::into).unwrap_or_default(),
            tracing: self.tracing.as_ref().map(|t| t.to_model(&mut err)),
            flavor: match self.flavor {
                Some(FlavorSpec::Krakend) => model::Flavor::KrakenD,
                Some(FlavorSpec::Weir) | None => model::Flavor::Weir,
            },
            cors,
            trusted_proxies: self
                .trusted_proxies
                .iter()
                .enumerate()
                .filter_map(|(i, net)| match parse_net(net) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        err(&format!("trustedProxies[{i}]"), e);
                        None
                    }
                })
                .collect(),
            listen: match &self.listen {
                None => d.listen,
                Some(text) => text.parse().unwrap_or_else(|_| {
                    err(
                        "listen",
                        format!("{text:?} is not an IP address (0.0.0.0, ::, 127.0.0.1)"),
                    );
                    d.listen
                }),
            },
            http2: self.http2.unwrap_or(d.http2),
            tls: self.tls.as_ref().map(|t| t.to_model(&mut err)),
            websocket_idle_timeout,
        };
        (settings, errors)
    }
}

impl TlsSpec {
    fn to_model(&self, err: &mut impl FnMut(&str, String)) -> model::TlsSettings {
        if self.certificates.is_empty() {
            err(
                "tls.certificates",
                "at least one certificate (certFile + keyFile) is needed".into(),
            );
        }
        for (i, c) in self.certificates.iter().enumerate() {
            if c.cert_file.is_empty() || c.key_file.is_empty() {
                err(
                    &format!("tls.certificates[{i}]"),
                    "needs both certFile and keyFile".into(),
                );
            }
        }
        let min_version = match self.min_version.as_deref() {
            None | Some("1.2") => model::TlsVersion::V1_2,
            Some("1.3") => model::TlsVersion::V1_3,
            Some(other) => {
                err(
                    "tls.minVersion",
                    format!("{other:?} is not a supported TLS version (\"1.2\" or \"1.3\")"),
                );
                model::TlsVersion::V1_2
            }
        };
        let plain_port = self.port.filter(|p| *p != 0);
        let redirect_http = self.redirect_http.unwrap_or(false);
        if redirect_http && plain_port.is_none() {
            err(
                "tls.redirectHttp",
                "redirects plain HTTP from tls.port, which is not set".into(),
            );
        }
        model::TlsSettings {
            certificates: self
                .certificates
                .iter()
                .map(|c| model::CertificatePair {
                    cert_file: c.cert_file.clone().into(),
                    key_file: c.key_file.clone().into(),
                })
                .collect(),
            min_version,
            plain_port,
            redirect_http,
        }
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address (`10.1.2.3`).
fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR (10.0.0.0/8) or an IP address"))
}

impl CorsSpec {
    /// Converts into the model, with `(field, message)` for each invalid value.
    pub fn to_model(&self) -> (model::Cors, Vec<(String, String)>) {
        let mut problems = Vec::new();
        let max_age = self
            .max_age
            .as_deref()
            .and_then(|s| match model::parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push(("maxAge".to_string(), e.to_string()));
                    None
                }
            });
        for (i, m) in self.allow_methods.iter().enumerate() {
            if http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_err() {
                problems.push((
                    format!("allowMethods[{i}]"),
                    format!("{m:?} is not an HTTP method"),
                ));
            }
        }
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect();
        let methods = if self.allow_methods.is_empty() {
            model::Cors::DEFAULT_METHODS
                .iter()
                .map(|m| m.to_string())
                .collect()
        } else {
            self.allow_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect()
        };
        let cors = model::Cors {
            allow_origins: lower(&self.allow_origins),
            allow_methods: methods,
            allow_headers: lower(&self.allow_headers),
            expose_headers: self.expose_headers.clone(),
            max_age,
            allow_credentials: self.allow_credentials,
        };
        (cors, problems)
    }
}
