//! Spec → model: parse every string once, apply defaults, and report each problem with the
//! origin, the endpoint and the field path.

use std::time::Duration;

use crate::{
    Backend, BackendEncoding, BaseUrl, CircuitBreaker, ClientKey, EndpointRateLimit, ErrorPolicy,
    FieldError, FlatmapOp, Method, NameFilter, OutputEncoding, PathTemplate, Piece, Rate, Settings,
    StaticResponse, StaticStrategy, UrlTemplate,
};

use crate::auth::{
    self as model_auth, ApiKeys, Auth, ClaimPath, JwksSource, JwtAlgorithm, JwtAuth, ScopesMatcher,
    SignerKey, TokenSigner,
};
use crate::spec::*;

/// The placeholder prefix that inserts a claim of the validated token: `{JWT.sub}`.
pub const JWT_PLACEHOLDER: &str = "JWT.";

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

fn jwt_algorithm(a: JwtAlgorithmSpec) -> JwtAlgorithm {
    match a {
        JwtAlgorithmSpec::Hs256 => JwtAlgorithm::Hs256,
        JwtAlgorithmSpec::Hs384 => JwtAlgorithm::Hs384,
        JwtAlgorithmSpec::Hs512 => JwtAlgorithm::Hs512,
        JwtAlgorithmSpec::Rs256 => JwtAlgorithm::Rs256,
        JwtAlgorithmSpec::Rs384 => JwtAlgorithm::Rs384,
        JwtAlgorithmSpec::Rs512 => JwtAlgorithm::Rs512,
        JwtAlgorithmSpec::Ps256 => JwtAlgorithm::Ps256,
        JwtAlgorithmSpec::Ps384 => JwtAlgorithm::Ps384,
        JwtAlgorithmSpec::Ps512 => JwtAlgorithm::Ps512,
        JwtAlgorithmSpec::Es256 => JwtAlgorithm::Es256,
        JwtAlgorithmSpec::Es384 => JwtAlgorithm::Es384,
        JwtAlgorithmSpec::EdDsa => JwtAlgorithm::EdDsa,
    }
}

fn header_name(text: &str) -> Result<String, String> {
    http::HeaderName::from_bytes(text.as_bytes())
        .map(|h| h.as_str().to_string())
        .map_err(|_| format!("{text:?} is not a valid header name"))
}

/// The key set of `jwksUrl` or `jwksFile` (exactly one), with its `caFile` and `allowHttp`;
/// `f` names a field of the block.
fn jwks_source(
    f: &dyn Fn(&str) -> String,
    url: Option<&String>,
    file: Option<&String>,
    allow_http: bool,
    ca_file: Option<&String>,
    err: &mut dyn FnMut(String, String),
) -> Option<JwksSource> {
    let keys = match (url, file) {
        (Some(_), Some(_)) => {
            err(
                f("jwksUrl"),
                "set either jwksUrl or jwksFile, not both".into(),
            );
            None
        }
        (None, None) => {
            err(
                f("jwksUrl"),
                "a key set is required: set jwksUrl or jwksFile".into(),
            );
            None
        }
        (None, Some(file)) => {
            if file.is_empty() {
                err(f("jwksFile"), "may not be empty".into());
            }
            Some(JwksSource::File(file.into()))
        }
        (Some(url), None) => match url.parse::<http::Uri>() {
            Ok(uri) if uri.host().is_some() => {
                let scheme = uri.scheme_str().unwrap_or("");
                if scheme == "http" && !allow_http {
                    err(
                        f("jwksUrl"),
                        format!("{url} is plain http: keys fetched in clear text can be replaced on the way; use https, or set allowHttp: true"),
                    );
                } else if scheme != "http" && scheme != "https" {
                    err(
                        f("jwksUrl"),
                        format!("{url}: only http and https are supported"),
                    );
                }
                Some(JwksSource::Url {
                    url: uri,
                    allow_http,
                    ca_file: ca_file.map(Into::into),
                })
            }
            _ => {
                err(
                    f("jwksUrl"),
                    format!("{url:?} is not an absolute http(s) URL"),
                );
                None
            }
        },
    };
    if ca_file.is_some() && !matches!(keys, Some(JwksSource::Url { .. })) {
        err(f("caFile"), "only applies to a jwksUrl".into());
    }
    keys
}

/// Converts a `tokenSigner` block; `field` prefixes error paths.
pub fn token_signer(
    spec: &TokenSignerSpec,
    field: &str,
    errors: &mut Vec<(String, String)>,
) -> Option<TokenSigner> {
    let mut err = |f: String, m: String| errors.push((f, m));
    let f = |name: &str| format!("{field}.{name}");
    if spec.keys_to_sign.is_empty() || spec.keys_to_sign.iter().any(String::is_empty) {
        err(
            f("keysToSign"),
            "name at least one field of the answer, none empty".into(),
        );
    }
    let Some(algorithm) = spec.algorithm.map(jwt_algorithm) else {
        err(
            f("algorithm"),
            "required, e.g. HS256 or RS256 (none is never used)".into(),
        );
        return None;
    };
    let key = match &spec.key_file {
        Some(file) => {
            if spec.jwks_url.is_some() || spec.jwks_file.is_some() {
                err(
                    f("keyFile"),
                    "set either keyFile or a key set (jwksUrl, jwksFile), not both".into(),
                );
            }
            if algorithm.is_hmac() {
                err(f("keyFile"), format!("{} signs with a shared secret: take it from a key set (jwksUrl or jwksFile)", algorithm.as_str()));
            }
            if file.is_empty() {
                err(f("keyFile"), "may not be empty".into());
            }
            SignerKey::Pem(file.into())
        }
        None => {
            if !algorithm.is_hmac() {
                err(
                    f("keyFile"),
                    format!(
                        "{} needs a private key: set keyFile (a key set holds public keys)",
                        algorithm.as_str()
                    ),
                );
            }
            if spec.kid.is_none() {
                err(
                    f("kid"),
                    "required with a key set: it names the key to sign with".into(),
                );
            }
            let cache_ttl = match &spec.cache_ttl {
                None => model_auth::DEFAULT_JWKS_TTL,
                Some(t) => crate::parse_duration(t).unwrap_or_else(|e| {
                    err(f("cacheTTL"), e.to_string());
                    model_auth::DEFAULT_JWKS_TTL
                }),
            };
            let source = jwks_source(
                &f,
                spec.jwks_url.as_ref(),
                spec.jwks_file.as_ref(),
                spec.allow_http,
                spec.ca_file.as_ref(),
                &mut err,
            )?;
            SignerKey::Jwks { source, cache_ttl }
        }
    };
    Some(TokenSigner {
        keys_to_sign: spec.keys_to_sign.clone(),
        algorithm,
        kid: spec.kid.clone().filter(|k| !k.is_empty()),
        key,
    })
}

/// Converts an `auth` block; `field` prefixes error paths (`auth`). An empty block (neither
/// `jwt` nor `apiKeys`) converts to `None`: the endpoint is public.
pub fn auth(spec: &AuthSpec, field: &str, errors: &mut Vec<(String, String)>) -> Option<Auth> {
    let mut err = |f: String, m: String| errors.push((f, m));
    let jwt = spec.jwt.as_ref().map(|j| {
        let f = |name: &str| format!("{field}.jwt.{name}");
        let keys = jwks_source(
            &f,
            j.jwks_url.as_ref(),
            j.jwks_file.as_ref(),
            j.allow_http,
            j.ca_file.as_ref(),
            &mut err,
        );
        let mut algorithms: Vec<JwtAlgorithm> =
            j.algorithms.iter().map(|a| jwt_algorithm(*a)).collect();
        algorithms.sort_unstable();
        algorithms.dedup();
        if algorithms.is_empty() {
            err(
                f("algorithms"),
                "list the accepted algorithms, e.g. [RS256] (none is never accepted)".into(),
            );
        }
        let claim = |name: &str,
                     raw: Option<&String>,
                     default: &str,
                     err: &mut dyn FnMut(String, String)| {
            let raw = raw.map_or(default, String::as_str);
            ClaimPath::parse(raw).unwrap_or_else(|e| {
                err(f(name), e);
                ClaimPath {
                    raw: default.into(),
                    steps: vec![default.into()],
                }
            })
        };
        let roles_claim = claim(
            "rolesClaim",
            j.roles_claim.as_ref(),
            model_auth::DEFAULT_ROLES_CLAIM,
            &mut err,
        );
        let scopes_claim = claim(
            "scopesClaim",
            j.scopes_claim.as_ref(),
            model_auth::DEFAULT_SCOPES_CLAIM,
            &mut err,
        );
        let mut propagate_claims = Vec::with_capacity(j.propagate_claims.len());
        for (i, [c, h]) in j.propagate_claims.iter().enumerate() {
            let at = f(&format!("propagateClaims[{i}]"));
            match (ClaimPath::parse(c), header_name(h)) {
                (Ok(c), Ok(h)) => propagate_claims.push((c, h)),
                (Err(e), _) | (_, Err(e)) => err(at, e),
            }
        }
        if let Some(c) = j
            .cookie
            .as_ref()
            .filter(|c| c.is_empty() || c.contains([';', '=', ' ']))
        {
            err(f("cookie"), format!("{c:?} is not a cookie name"));
        }
        let dur = |name: &str,
                   v: Option<&String>,
                   default: Duration,
                   err: &mut dyn FnMut(String, String)| match v {
            None => default,
            Some(s) => crate::parse_duration(s).unwrap_or_else(|e| {
                err(f(name), e.to_string());
                default
            }),
        };
        let cache_ttl = dur(
            "cacheTTL",
            j.cache_ttl.as_ref(),
            model_auth::DEFAULT_JWKS_TTL,
            &mut err,
        );
        if cache_ttl < model_auth::MIN_JWKS_TTL {
            err(f("cacheTTL"), "must be at least 1s".into());
        }
        let leeway = dur("leeway", j.leeway.as_ref(), Duration::ZERO, &mut err);
        keys.map(|keys| JwtAuth {
            keys,
            algorithms,
            issuer: j.issuer.clone().filter(|i| !i.is_empty()),
            audience: j
                .audience
                .iter()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect(),
            roles_claim,
            roles: j.roles.clone(),
            scopes_claim,
            scopes: j.scopes.clone(),
            scopes_matcher: match j.scopes_matcher {
                Some(ScopesMatcherSpec::All) => ScopesMatcher::All,
                Some(ScopesMatcherSpec::Any) | None => ScopesMatcher::Any,
            },
            propagate_claims,
            cookie: j.cookie.clone(),
            cache_ttl,
            leeway,
        })
    });
    let api_keys = spec.api_keys.as_ref().map(|k| {
        let f = |name: &str| format!("{field}.apiKeys.{name}");
        if k.file.is_empty() {
            err(f("file"), "may not be empty".into());
        }
        let header = match (&k.header, &k.query) {
            (Some(h), _) => header_name(h).map(Some).unwrap_or_else(|e| {
                err(f("header"), e);
                None
            }),
            (None, Some(_)) => None,
            (None, None) => Some(model_auth::DEFAULT_API_KEY_HEADER.to_string()),
        };
        if k.query.as_ref().is_some_and(String::is_empty) {
            err(f("query"), "may not be empty".into());
        }
        ApiKeys {
            file: k.file.clone().into(),
            header,
            query: k.query.clone(),
            roles: k.roles.clone(),
        }
    });
    let auth = Auth {
        jwt: jwt.flatten(),
        api_keys,
    };
    auth.is_enabled().then_some(auth)
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
    let endpoint_auth = match &spec.auth {
        Some(a) => {
            let mut problems = Vec::new();
            let converted = auth(a, "auth", &mut problems);
            for (f, m) in problems {
                cx.err(f, m);
            }
            converted
        }
        None => settings.auth.clone(),
    };
    let has_jwt = endpoint_auth.as_ref().is_some_and(|a| a.jwt.is_some());
    let token_signer = spec.token_signer.as_ref().and_then(|t| {
        let mut problems = Vec::new();
        let converted = token_signer(t, "tokenSigner", &mut problems);
        for (f, m) in problems {
            cx.err(f, m);
        }
        converted
    });
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
            if let Some(claim) = name.strip_prefix(JWT_PLACEHOLDER) {
                if let Err(e) = ClaimPath::parse(claim) {
                    cx.err(f("urlPattern"), format!("{{{name}}}: {e}"));
                } else if !has_jwt {
                    cx.err(
                        f("urlPattern"),
                        format!(
                            "{{{name}}} inserts a claim of the token: the endpoint needs auth.jwt"
                        ),
                    );
                }
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
        // Boxed: most endpoints have neither, and inline they are 700 of the endpoint's
        // 1,040 bytes.
        auth: endpoint_auth.map(Box::new),
        token_signer: token_signer.map(Box::new),
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
