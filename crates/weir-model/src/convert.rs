//! Spec → model: parse every string once, apply defaults, and report each problem with the
//! origin, the endpoint and the field path.

use std::time::Duration;

use crate::{
    Backend, BackendEncoding, BaseUrl, CircuitBreaker, ClientKey, EndpointRateLimit, ErrorPolicy,
    FieldError, FlatmapOp, Method, NameFilter, OutputEncoding, PathTemplate, Piece, Rate, Settings,
    StaticResponse, StaticStrategy, UrlTemplate,
};

use crate::spec::*;

/// What a spec inherits from its surroundings.
#[derive(Debug, Clone)]
pub struct Defaults<'a> {
    /// Gateway settings (timeouts, encodings, rate limits).
    pub settings: &'a Settings,
    /// The Endpoint's namespace in Kubernetes mode; `service` backends need it.
    pub namespace: Option<&'a str>,
}

struct Ctx<'a> {
    origin: &'a str,
    endpoint: String,
    errors: Vec<FieldError>,
}

impl Ctx<'_> {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            origin: self.origin.to_string(),
            endpoint: Some(self.endpoint.clone()),
            field: field.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, field: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(s) => crate::parse_duration(s).unwrap_or_else(|e| {
                self.err(field, e.to_string());
                default
            }),
        }
    }
}

/// Converts a method spec into the model's.
pub fn method(m: MethodSpec) -> Method {
    match m {
        MethodSpec::Get => Method::Get,
        MethodSpec::Post => Method::Post,
        MethodSpec::Put => Method::Put,
        MethodSpec::Patch => Method::Patch,
        MethodSpec::Delete => Method::Delete,
        MethodSpec::Any => Method::Any,
    }
}

/// Converts an output encoding spec into the model's.
pub fn output_encoding(e: OutputEncodingSpec) -> OutputEncoding {
    match e {
        OutputEncodingSpec::Json => OutputEncoding::Json,
        OutputEncodingSpec::JsonCollection => OutputEncoding::JsonCollection,
        OutputEncodingSpec::String => OutputEncoding::String,
        OutputEncodingSpec::Xml => OutputEncoding::Xml,
        OutputEncodingSpec::Yaml => OutputEncoding::Yaml,
        OutputEncodingSpec::Negotiate => OutputEncoding::Negotiate,
        OutputEncodingSpec::NoOp => OutputEncoding::NoOp,
    }
}

fn backend_encoding(e: BackendEncodingSpec) -> BackendEncoding {
    match e {
        BackendEncodingSpec::Json => BackendEncoding::Json,
        BackendEncodingSpec::SafeJson => BackendEncoding::SafeJson,
        BackendEncodingSpec::Xml => BackendEncoding::Xml,
        BackendEncodingSpec::String => BackendEncoding::String,
        BackendEncodingSpec::NoOp => BackendEncoding::NoOp,
    }
}

/// Converts endpoint rate limits; `field` prefixes error paths. `None` fields fall back to
/// `inherited` so an endpoint can override the gateway default (including `maxRate: 0`).
pub fn rate_limit(
    spec: &RateLimitSpec,
    inherited: &EndpointRateLimit,
    field: &str,
    errors: &mut Vec<(String, String)>,
) -> EndpointRateLimit {
    let every = match spec.every.as_deref().map(crate::parse_duration) {
        None => Duration::from_secs(1),
        Some(Ok(d)) if d > Duration::ZERO => d,
        Some(Ok(_)) => {
            errors.push((format!("{field}.every"), "must be greater than zero".into()));
            Duration::from_secs(1)
        }
        Some(Err(e)) => {
            errors.push((format!("{field}.every"), e.to_string()));
            Duration::from_secs(1)
        }
    };
    let endpoint = match spec.max_rate {
        None => inherited.endpoint,
        Some(0) => None,
        Some(r) => Some(Rate {
            max_rate: r,
            capacity: spec.capacity.filter(|c| *c > 0).unwrap_or(r),
            every,
        }),
    };
    let client = match spec.client_max_rate {
        None => inherited.client.clone(),
        Some(0) => None,
        Some(r) => {
            let rate = Rate {
                max_rate: r,
                capacity: spec.client_capacity.filter(|c| *c > 0).unwrap_or(r),
                every,
            };
            let key = match (spec.strategy.unwrap_or(RateLimitStrategy::Ip), &spec.key) {
                (RateLimitStrategy::Ip, k) => Some(ClientKey::Ip(k.clone())),
                (RateLimitStrategy::Header, Some(k)) if !k.is_empty() => {
                    Some(ClientKey::Header(k.to_ascii_lowercase()))
                }
                (RateLimitStrategy::Param, Some(k)) if !k.is_empty() => {
                    Some(ClientKey::Param(k.clone()))
                }
                (s, _) => {
                    errors.push((
                        format!("{field}.key"),
                        format!("strategy {s:?} needs a key naming the header or parameter")
                            .to_lowercase(),
                    ));
                    None
                }
            };
            key.map(|k| (rate, k))
        }
    };
    EndpointRateLimit { endpoint, client }
}

/// Validates one endpoint spec and converts it into the model.
pub fn endpoint_to_model(
    spec: &EndpointSpec,
    defaults: &Defaults<'_>,
    origin: &str,
) -> Result<crate::Endpoint, Vec<FieldError>> {
    let settings = defaults.settings;
    let mut cx = Ctx {
        origin,
        endpoint: spec.path.clone(),
        errors: Vec::new(),
    };
    if !spec.path.starts_with('/') {
        cx.err("path", format!("must start with '/' (got {:?})", spec.path));
    }
    if crate::is_reserved(&spec.path) || spec.path == settings.health_path {
        cx.err(
            "path",
            format!(
                "{} is reserved for the gateway ({} and the health path)",
                spec.path,
                crate::RESERVED_PREFIXES.join(", ")
            ),
        );
    }
    let path = PathTemplate::parse(&spec.path).unwrap_or_else(|e| {
        cx.err("path", e.to_string());
        PathTemplate::parse("/").expect("static template parses")
    });
    let endpoint_method = spec.method.map(method).unwrap_or(Method::Get);
    let host = spec.host.as_ref().map(|h| h.to_ascii_lowercase());
    if let Some(h) = &host {
        if h.is_empty() || h.contains(['/', ' ', ':']) {
            cx.err(
                "host",
                format!("must be a bare host name without port or scheme (got {h:?})"),
            );
        }
    }
    let timeout = cx.duration("timeout", spec.timeout.as_deref(), settings.timeout);
    if timeout.is_zero() {
        cx.err("timeout", "must be greater than zero");
    }
    let cache_ttl = cx.duration("cacheTTL", spec.cache_ttl.as_deref(), settings.cache_ttl);
    let concurrent_calls = spec.concurrent_calls.unwrap_or(1);
    if concurrent_calls == 0 || concurrent_calls > 16 {
        cx.err("concurrentCalls", "must be between 1 and 16");
    }
    let output = spec
        .output_encoding
        .map(output_encoding)
        .unwrap_or(settings.output_encoding);
    let mut rl_errors = Vec::new();
    let rate_limit = match &spec.rate_limit {
        Some(rl) => rate_limit(rl, &settings.rate_limit, "rateLimit", &mut rl_errors),
        None => settings.rate_limit.clone(),
    };
    for (f, m) in rl_errors {
        cx.err(f, m);
    }
    if let Some((_, ClientKey::Param(p))) = &rate_limit.client {
        if !path.params().contains(p) {
            cx.err(
                "rateLimit.key",
                format!("strategy param names {{{p}}}, which the path does not define"),
            );
        }
    }
    if spec.backends.is_empty() {
        cx.err("backends", "at least one backend is required");
    }
    if endpoint_method == Method::Any && output != OutputEncoding::NoOp {
        cx.err(
            "method",
            "ANY passes every method through and needs outputEncoding: no-op",
        );
    }
    if output == OutputEncoding::NoOp && spec.backends.len() > 1 {
        cx.err(
            "outputEncoding",
            format!(
                "no-op passes one backend's answer through, but {} backends are configured",
                spec.backends.len()
            ),
        );
    }
    let static_response = spec.static_response.as_ref().map(|s| StaticResponse {
        strategy: match s.strategy {
            StaticStrategySpec::Always => StaticStrategy::Always,
            StaticStrategySpec::Success => StaticStrategy::Success,
            StaticStrategySpec::Complete => StaticStrategy::Complete,
            StaticStrategySpec::Errored => StaticStrategy::Errored,
            StaticStrategySpec::Incomplete => StaticStrategy::Incomplete,
        },
        data: s.data.clone(),
    });

    let mut backends = Vec::with_capacity(spec.backends.len());
    for (i, b) in spec.backends.iter().enumerate() {
        let f = |name: &str| format!("backends[{i}].{name}");
        let mut hosts = Vec::new();
        match (&b.service, b.hosts.is_empty()) {
            (Some(_), false) => cx.err(f("hosts"), "set either hosts or service, not both"),
            (None, true) => cx.err(
                f("hosts"),
                "a backend needs at least one host (or a service)",
            ),
            (Some(svc), true) => match defaults.namespace {
                Some(ns) => {
                    let ns = svc.namespace.as_deref().unwrap_or(ns);
                    let url = format!("http://{}.{}.svc:{}", svc.name, ns, svc.port);
                    match BaseUrl::parse(&url) {
                        Ok(u) => hosts.push(u),
                        Err(e) => cx.err(f("service"), e),
                    }
                }
                None => cx.err(
                    f("service"),
                    "service backends need Kubernetes mode; use hosts in a local file",
                ),
            },
            (None, false) => {
                for (j, h) in b.hosts.iter().enumerate() {
                    match BaseUrl::parse(h) {
                        Ok(u) => hosts.push(u),
                        Err(e) => cx.err(format!("backends[{i}].hosts[{j}]"), e),
                    }
                }
            }
        }
        if !b.url_pattern.starts_with('/') {
            cx.err(
                f("urlPattern"),
                format!("must start with '/' (got {:?})", b.url_pattern),
            );
        }
        let url_pattern = UrlTemplate::parse(&b.url_pattern).unwrap_or_else(|e| {
            cx.err(f("urlPattern"), e.to_string());
            UrlTemplate::parse("/").expect("static template parses")
        });
        for piece in url_pattern.pieces() {
            let Piece::Param(name) = piece else { continue };
            if path.params().contains(name) {
                continue;
            }
            match sequential_ref(name) {
                Some(n) if spec.sequential && n < i => {}
                Some(n) if spec.sequential => cx.err(
                    f("urlPattern"),
                    format!(
                        "{{{name}}} refers to backend {n}, which is not called before backend {i}"
                    ),
                ),
                Some(_) => cx.err(
                    f("urlPattern"),
                    format!(
                        "{{{name}}} takes a value from an earlier answer; set sequential: true"
                    ),
                ),
                None => cx.err(
                    f("urlPattern"),
                    format!(
                        "{{{name}}} is not defined by the endpoint path {} (defined: {})",
                        spec.path,
                        if path.params().is_empty() {
                            "none".to_string()
                        } else {
                            path.params().join(", ")
                        }
                    ),
                ),
            }
        }
        let mut encoding = b.encoding.map(backend_encoding).unwrap_or_default();
        if output == OutputEncoding::NoOp {
            if b.encoding.is_some_and(|e| e != BackendEncodingSpec::NoOp) {
                cx.err(
                    f("encoding"),
                    "a no-op endpoint passes the answer through; use no-op or leave it out",
                );
            }
            encoding = BackendEncoding::NoOp;
        } else if encoding == BackendEncoding::NoOp {
            cx.err(
                f("encoding"),
                "no-op needs the endpoint's outputEncoding to be no-op too",
            );
        }
        let mut flatmap = Vec::new();
        for (j, op) in b.flatmap.iter().enumerate() {
            let want = if op.op == FlatmapType::Del { 1 } else { 2 };
            if op.args.len() != want || op.args.iter().any(String::is_empty) {
                cx.err(
                    format!("backends[{i}].flatmap[{j}].args"),
                    format!("{:?} takes {want} non-empty dot path(s)", op.op).to_lowercase(),
                );
                continue;
            }
            flatmap.push(match op.op {
                FlatmapType::Del => FlatmapOp::Del(op.args[0].clone()),
                FlatmapType::Move => FlatmapOp::Move {
                    from: op.args[0].clone(),
                    to: op.args[1].clone(),
                },
                FlatmapType::Append => FlatmapOp::Append {
                    from: op.args[0].clone(),
                    to: op.args[1].clone(),
                },
            });
        }
        let rate = b.rate_limit.as_ref().and_then(|rl| {
            let every = cx.duration(
                &f("rateLimit.every"),
                rl.every.as_deref(),
                Duration::from_secs(1),
            );
            if every.is_zero() {
                cx.err(f("rateLimit.every"), "must be greater than zero");
            }
            match rl.max_rate {
                None | Some(0) => None,
                Some(r) => Some(Rate {
                    max_rate: r,
                    capacity: rl.capacity.filter(|c| *c > 0).unwrap_or(r),
                    every,
                }),
            }
        });
        let circuit_breaker = b.circuit_breaker.as_ref().map(|cb| CircuitBreaker {
            interval: cx.duration(
                &f("circuitBreaker.interval"),
                Some(&cb.interval),
                Duration::ZERO,
            ),
            timeout: cx.duration(
                &f("circuitBreaker.timeout"),
                Some(&cb.timeout),
                Duration::ZERO,
            ),
            max_errors: cb.max_errors,
        });
        let errors = b
            .errors
            .as_ref()
            .map(|e| ErrorPolicy {
                return_details: e.return_details.clone().filter(|a| !a.is_empty()),
                return_code: e.return_code,
            })
            .unwrap_or_default();
        if errors.return_code && spec.backends.len() > 1 {
            cx.err(
                f("errors.returnCode"),
                "returnCode needs an endpoint with a single backend",
            );
        }
        backends.push(Backend {
            hosts,
            url_pattern,
            method: b.method.map(method).unwrap_or(endpoint_method),
            encoding,
            is_collection: b.is_collection,
            target: b.target.clone().filter(|t| !t.is_empty()),
            allow: b.allow.clone(),
            deny: b.deny.clone(),
            mapping: b.mapping.clone(),
            group: b.group.clone().filter(|g| !g.is_empty()),
            flatmap,
            rate_limit: rate,
            circuit_breaker,
            errors,
            input_headers: b
                .input_headers
                .as_ref()
                .map(|h| NameFilter::from_list(h, true)),
            input_query_strings: b
                .input_query_strings
                .as_ref()
                .map(|q| NameFilter::from_list(q, false)),
            max_response_size: max_response_size(
                &mut cx,
                &f("maxResponseSize"),
                b.max_response_size,
            ),
            follow_redirects: b.follow_redirects.unwrap_or(true),
            redirect_same_host_only: b.redirect_same_host_only,
            tls: b.tls.as_ref().map(|t| backend_tls(&mut cx, &f("tls"), t)),
            http2: b.http2,
        });
    }

    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    Ok(crate::Endpoint {
        origin: origin.to_string(),
        path,
        method: endpoint_method,
        host,
        timeout,
        cache_ttl,
        concurrent_calls,
        output_encoding: output,
        input_headers: NameFilter::from_list(&spec.input_headers, true),
        input_query_strings: NameFilter::from_list(&spec.input_query_strings, false),
        rate_limit,
        sequential: spec.sequential,
        static_response,
        allow_encoded_slashes: spec.allow_encoded_slashes,
        backends,
    })
}

fn backend_tls(cx: &mut Ctx<'_>, field: &str, t: &BackendTlsSpec) -> crate::BackendTls {
    let path = |p: &Option<String>| {
        p.as_ref()
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from)
    };
    if t.cert_file.is_some() != t.key_file.is_some() {
        cx.err(
            format!("{field}.certFile"),
            "a client certificate needs both certFile and keyFile",
        );
    }
    if let Some(name) = &t.server_name {
        if name.is_empty() || name.contains(['/', ' ', ':']) {
            cx.err(
                format!("{field}.serverName"),
                format!("must be a bare host name (got {name:?})"),
            );
        }
    }
    crate::BackendTls {
        ca_file: path(&t.ca_file),
        server_name: t.server_name.clone(),
        cert_file: path(&t.cert_file),
        key_file: path(&t.key_file),
        insecure_skip_verify: t.insecure_skip_verify,
    }
}

fn max_response_size(cx: &mut Ctx<'_>, field: &str, value: Option<u64>) -> usize {
    match value {
        None => crate::DEFAULT_MAX_RESPONSE_SIZE,
        Some(0) => {
            cx.err(field, "must be greater than zero");
            crate::DEFAULT_MAX_RESPONSE_SIZE
        }
        Some(n) if n > crate::MAX_RESPONSE_SIZE_LIMIT as u64 => {
            cx.err(
                field,
                format!(
                    "{n} bytes is above the gateway's limit of {} bytes",
                    crate::MAX_RESPONSE_SIZE_LIMIT
                ),
            );
            crate::DEFAULT_MAX_RESPONSE_SIZE
        }
        Some(n) => n as usize,
    }
}

/// `resp3_field.sub` → `Some(3)`.
pub fn sequential_ref(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("resp")?;
    let (n, field) = rest.split_once('_')?;
    if field.is_empty() {
        return None;
    }
    n.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_refs() {
        assert_eq!(sequential_ref("resp0_id"), Some(0));
        assert_eq!(sequential_ref("resp12_a.b"), Some(12));
        assert_eq!(sequential_ref("resp_id"), None);
        assert_eq!(sequential_ref("resp0_"), None);
        assert_eq!(sequential_ref("id"), None);
    }

    #[test]
    fn endpoint_rate_limits_override_settings() {
        let inherited = EndpointRateLimit {
            endpoint: Some(Rate {
                max_rate: 10,
                capacity: 10,
                every: Duration::from_secs(1),
            }),
            client: None,
        };
        let mut errors = Vec::new();
        let off = rate_limit(
            &RateLimitSpec {
                max_rate: Some(0),
                ..Default::default()
            },
            &inherited,
            "rl",
            &mut errors,
        );
        assert_eq!(off.endpoint, None);
        let kept = rate_limit(&RateLimitSpec::default(), &inherited, "rl", &mut errors);
        assert_eq!(kept.endpoint, inherited.endpoint);
        let own = rate_limit(
            &RateLimitSpec {
                max_rate: Some(5),
                every: Some("1m".into()),
                ..Default::default()
            },
            &inherited,
            "rl",
            &mut errors,
        );
        assert_eq!(
            own.endpoint,
            Some(Rate {
                max_rate: 5,
                capacity: 5,
                every: Duration::from_secs(60)
            })
        );
        assert!(errors.is_empty());
        rate_limit(
            &RateLimitSpec {
                client_max_rate: Some(1),
                strategy: Some(RateLimitStrategy::Header),
                ..Default::default()
            },
            &inherited,
            "rl",
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "rl.key");
    }
}
