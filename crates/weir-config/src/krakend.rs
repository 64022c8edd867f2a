//! Import of a KrakenD configuration (`krakend.json`, format version 3): the service
//! settings, endpoints, backends and the `extra_config` namespaces Weir implements are mapped
//! onto [`SettingsFile`] and [`EndpointSpec`], which then take the normal validation path.
//!
//! Everything else is reported once by name as a warning, never silently dropped. An
//! endpoint that relies on a namespace able to *refuse* requests (authentication, request
//! validation, Lua, plugins) is not served at all: serving it without the check would open
//! it to everyone. For the same reason a listener with mutual TLS (`tls.enable_mtls`),
//! which guards every endpoint at once, is refused (see [`super::krakend_tls`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use weir_model::spec::{
    BackendEncodingSpec, BackendRateLimitSpec, BackendSpec, BackendTlsSpec, CircuitBreakerSpec,
    EndpointSpec, ErrorsSpec, FlatmapSpec, MethodSpec, OutputEncodingSpec, RateLimitSpec,
    StaticResponseSpec,
};
use weir_model::FieldError;

use super::diagnose::did_you_mean;
use super::parse::{json_message, json_position};
use super::settings::{CorsSpec, FlavorSpec, HealthSpec, SettingsFile};
use super::{ConfigError, Position, Problem, Problems, Result};

/// The only KrakenD configuration format version Weir reads.
pub const SUPPORTED_VERSION: u64 = 3;

/// `apiVersion` of the manifests `weir convert` prints.
pub const API_VERSION: &str = "weir.dev/v1alpha1";

/// Namespace prefixes whose features can reject a request. Without them an endpoint would
/// be served unprotected, so such endpoints are left out (with a warning) instead.
const GUARD_PREFIXES: [&str; 5] = [
    "auth/",
    "validation/",
    "modifier/lua",
    "security/",
    "plugin/",
];

/// Service-level keys that carry no behaviour (names, editor hints).
const INERT_SERVICE_KEYS: [&str; 2] = ["name", "$schema"];

/// KrakenD's `extra_config` namespaces (implemented or not), so a misspelt one is named
/// with the one it resembles instead of being reported as not implemented.
const KNOWN_NAMESPACES: &[&str] = &[
    "router",
    "proxy",
    "security/cors",
    "security/http",
    "security/bot-detector",
    "security/policies",
    "qos/ratelimit/router",
    "qos/ratelimit/router/redis",
    "qos/ratelimit/proxy",
    "qos/ratelimit/proxy/redis",
    "qos/ratelimit/service",
    "qos/ratelimit/service/redis",
    "qos/ratelimit/tiered",
    "qos/circuit-breaker",
    "qos/http-cache",
    "backend/http",
    "backend/http/client",
    "backend/grpc",
    "backend/graphql",
    "backend/soap",
    "backend/lambda",
    "backend/amqp/consumer",
    "backend/amqp/producer",
    "backend/pubsub/publisher",
    "backend/pubsub/subscriber",
    "backend/static-filesystem",
    "auth/validator",
    "auth/signer",
    "auth/api-keys",
    "auth/basic",
    "auth/jose",
    "auth/revoker",
    "auth/client-credentials",
    "auth/gcp",
    "auth/ntlm",
    "validation/json-schema",
    "validation/cel",
    "validation/response-json-schema",
    "modifier/lua-proxy",
    "modifier/lua-endpoint",
    "modifier/lua-backend",
    "modifier/martian",
    "modifier/jmespath",
    "modifier/request-body-generator",
    "modifier/response-body-generator",
    "modifier/response-headers",
    "plugin/http-server",
    "plugin/http-client",
    "plugin/req-resp-modifier",
    "telemetry/opentelemetry",
    "telemetry/opentelemetry-security",
    "telemetry/logging",
    "telemetry/metrics",
    "telemetry/gelf",
    "telemetry/influx",
    "telemetry/moesif",
    "telemetry/newrelic",
    "telemetry/ganalytics",
    "telemetry/instana",
    "documentation/openapi",
    "server/static-filesystem",
    "grpc",
    "websocket",
    "governance/processors",
    "governance/quota",
];

/// The known namespace `ns` is a misspelling of, if any.
fn misspelt(ns: &str) -> Option<&'static str> {
    if KNOWN_NAMESPACES.contains(&ns) {
        return None;
    }
    did_you_mean(ns, KNOWN_NAMESPACES)
}

/// Whether `ns` (or the namespace it misspells) can refuse requests.
fn is_guard(ns: &str) -> bool {
    let guard = |n: &str| GUARD_PREFIXES.iter().any(|p| n.starts_with(p));
    guard(ns) || misspelt(ns).is_some_and(guard)
}

/// A namespace as written, with the one it misspells.
fn spelt(ns: &str) -> String {
    match misspelt(ns) {
        Some(m) => format!("{ns} (did you mean {m}?)"),
        None => ns.to_string(),
    }
}

/// A KrakenD file mapped onto Weir's settings and endpoint specs.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// Gateway settings (`flavor: krakend`); its `endpoints` list is empty.
    pub settings: SettingsFile,
    /// Endpoint specs with their origin (`file: endpoints[i]`), in file order.
    pub endpoints: Vec<(String, EndpointSpec)>,
    /// Features of the file that Weir does not implement, one line per name.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct KService {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    cache_ttl: Option<String>,
    #[serde(default)]
    output_encoding: Option<String>,
    #[serde(default)]
    host: Vec<String>,
    #[serde(default)]
    debug_endpoint: bool,
    #[serde(default)]
    echo_endpoint: bool,
    #[serde(default)]
    tls: Option<Value>,
    #[serde(default)]
    use_h2c: bool,
    #[serde(default)]
    client_tls: Option<Value>,
    /// lura's older spelling of `client_tls.allow_insecure_connections`.
    #[serde(default)]
    allow_insecure_connections: bool,
    #[serde(default)]
    extra_config: BTreeMap<String, Value>,
    #[serde(default)]
    endpoints: Vec<KEndpoint>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KEndpoint {
    endpoint: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    output_encoding: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    cache_ttl: Option<String>,
    #[serde(default)]
    concurrent_calls: Option<u32>,
    #[serde(default)]
    input_headers: Vec<String>,
    #[serde(default)]
    input_query_strings: Vec<String>,
    #[serde(default)]
    backend: Vec<KBackend>,
    #[serde(default)]
    extra_config: BTreeMap<String, Value>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KBackend {
    #[serde(default)]
    host: Vec<String>,
    url_pattern: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    is_collection: bool,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    mapping: BTreeMap<String, String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    input_headers: Option<Vec<String>>,
    #[serde(default)]
    input_query_strings: Option<Vec<String>>,
    #[serde(default)]
    extra_config: BTreeMap<String, Value>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KRouter {
    #[serde(default)]
    return_error_msg: Option<bool>,
    #[serde(default)]
    disable_health: Option<bool>,
    #[serde(default)]
    health_path: Option<String>,
    #[serde(default)]
    disable_access_log: Option<bool>,
    /// Deprecated: moved to the service's `use_h2c`, still read by KrakenD.
    #[serde(default)]
    use_h2c: bool,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KCors {
    #[serde(default)]
    allow_origins: Vec<String>,
    #[serde(default)]
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    max_age: Option<String>,
    #[serde(default)]
    allow_credentials: bool,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KRouterRateLimit {
    #[serde(default)]
    max_rate: Option<f64>,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    client_max_rate: Option<f64>,
    #[serde(default)]
    client_capacity: Option<u32>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    every: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KProxyRateLimit {
    #[serde(default)]
    max_rate: Option<f64>,
    #[serde(default)]
    capacity: Option<u32>,
    #[serde(default)]
    every: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KCircuitBreaker {
    interval: u64,
    timeout: u64,
    max_errors: u32,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KBackendHttp {
    #[serde(default)]
    return_error_details: Option<String>,
    #[serde(default)]
    return_error_code: bool,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// Enterprise's per-backend HTTP client (`client_tls` replaces the service's for it).
#[derive(Deserialize)]
struct KBackendHttpClient {
    #[serde(default)]
    client_tls: Option<Value>,
    #[serde(default)]
    no_redirect: bool,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KEndpointProxy {
    #[serde(default)]
    sequential: bool,
    #[serde(default, rename = "static")]
    static_response: Option<StaticResponseSpec>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KBackendProxy {
    #[serde(default)]
    flatmap_filter: Vec<FlatmapSpec>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// Collects errors and the not-implemented features (each name once, with where it is used).
struct Cx<'a> {
    file: &'a str,
    errors: Vec<FieldError>,
    unsupported: BTreeMap<String, Vec<String>>,
    misspelt: BTreeMap<(String, &'static str), Vec<String>>,
    skipped: Vec<String>,
}

impl Cx<'_> {
    fn err(&mut self, endpoint: Option<&str>, field: String, message: String) {
        self.errors.push(FieldError {
            origin: self.file.to_string(),
            endpoint: endpoint.map(str::to_string),
            field,
            message,
        });
    }

    /// Errors of a mapped object, each field under `prefix`.
    fn errs(&mut self, endpoint: Option<&str>, prefix: &str, errors: Vec<(String, String)>) {
        for (f, message) in errors {
            let field = if f.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{f}")
            };
            self.err(endpoint, field, message);
        }
    }

    /// What a TLS mapping could not carry over: names as warnings, differences as notes.
    fn leftovers(&mut self, left: super::krakend_tls::Leftovers, at: &str) {
        for what in left.unsupported {
            self.unsupported(what, at.to_string());
        }
        for note in left.notes {
            self.skipped.push(format!("{}: {at}: {note}", self.file));
        }
    }

    fn unsupported(&mut self, what: String, at: String) {
        let places = self.unsupported.entry(what).or_default();
        if !places.contains(&at) {
            places.push(at);
        }
    }

    /// An `extra_config` namespace Weir does not read: misspelt, or not implemented.
    fn other_namespace(&mut self, ns: &str, at: String) {
        match misspelt(ns) {
            Some(meant) => {
                let places = self.misspelt.entry((ns.to_string(), meant)).or_default();
                if !places.contains(&at) {
                    places.push(at);
                }
            }
            None => self.unsupported(format!("extra_config namespace \"{ns}\""), at),
        }
    }

    fn unknown_keys(&mut self, scope: &str, other: &BTreeMap<String, Value>, at: &str) {
        for key in other.keys() {
            self.unsupported(format!("{scope}{key}"), at.to_string());
        }
    }

    /// Parses a namespace body; a wrong shape is an error naming the field.
    fn namespace<T: DeserializeOwned>(
        &mut self,
        endpoint: Option<&str>,
        field: &str,
        value: &Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let field = if inner == "." || inner.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{inner}")
                };
                self.err(endpoint, field, e.into_inner().to_string());
                None
            }
        }
    }

    fn enumeration<T: DeserializeOwned>(
        &mut self,
        endpoint: Option<&str>,
        field: &str,
        raw: &str,
        accepted: &str,
    ) -> Option<T> {
        match serde_json::from_value(Value::String(raw.to_string())) {
            Ok(v) => Some(v),
            Err(_) => {
                self.err(
                    endpoint,
                    field.to_string(),
                    format!("{raw:?} is not supported (Weir accepts {accepted})"),
                );
                None
            }
        }
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ((ns, meant), places) in &self.misspelt {
            out.push(format!(
                "{}: extra_config namespace \"{ns}\" is not a KrakenD namespace; did you mean \"{meant}\"? It is ignored (at {})",
                self.file,
                places.join(", ")
            ));
        }
        for (what, places) in &self.unsupported {
            out.push(format!(
                "{}: {what} is not implemented by Weir and is ignored (at {})",
                self.file,
                places.join(", ")
            ));
        }
        out.extend(self.skipped.iter().cloned());
        out
    }
}

/// A KrakenD rate turned into whole tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WholeRate {
    tokens: u32,
    /// The burst when the period had to be stretched (KrakenD's default burst is the rate).
    burst: Option<u32>,
}

/// KrakenD rates may be fractional (`0.5` per second); Weir's are whole tokens per
/// `every`. Rates and period are scaled by the smallest factor that makes every rate whole
/// (0.5 per 1s becomes 1 per 2s).
fn whole_rates(
    rates: &[Option<f64>],
    every: Option<&str>,
) -> std::result::Result<(Vec<Option<WholeRate>>, Option<String>), String> {
    if let Some(bad) = rates.iter().flatten().find(|r| !r.is_finite() || **r < 0.0) {
        return Err(format!("rate {bad} must be a number of zero or more"));
    }
    let whole = |k: f64| {
        rates
            .iter()
            .flatten()
            .all(|r| ((r * k) - (r * k).round()).abs() < 1e-9)
    };
    let Some(k) = [1u32, 2, 4, 5, 10, 20, 50, 100, 1000]
        .into_iter()
        .find(|k| whole(f64::from(*k)))
    else {
        return Err("rates need at most three decimals".into());
    };
    if k == 1 {
        let same = rates
            .iter()
            .map(|r| {
                r.map(|r| WholeRate {
                    tokens: r as u32,
                    burst: None,
                })
            })
            .collect();
        return Ok((same, every.map(str::to_string)));
    }
    let period = match every {
        Some(e) => weir_model::parse_duration(e).map_err(|e| e.to_string())?,
        None => std::time::Duration::from_secs(1),
    };
    let scaled = rates
        .iter()
        .map(|r| {
            r.map(|r| WholeRate {
                tokens: (r * f64::from(k)).round() as u32,
                burst: Some(r.ceil().max(1.0) as u32),
            })
        })
        .collect();
    Ok((scaled, Some(weir_model::format_go(period * k))))
}

const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const OUTPUTS: &str = "json, json-collection, string, xml, yaml, negotiate, no-op";
const ENCODINGS: &str = "json, safejson, xml, string, no-op";

/// Reads a KrakenD file. A version other than 3 is refused; shapes Weir cannot read are
/// errors naming the field; unimplemented features become warnings.
pub fn import(path: &Path, text: &str) -> Result<Imported> {
    let file = path.display().to_string();
    let problem = |at: Option<Position>, field: &str, message: String| {
        ConfigError::Parse(Problems(vec![Problem {
            file: path.to_path_buf(),
            at,
            field: field.to_string(),
            message,
        }]))
    };
    let raw: Value = serde_json::from_str(text).map_err(|e| {
        problem(
            json_position(&e),
            "",
            format!("invalid JSON: {}", json_message(&e)),
        )
    })?;
    match raw.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(SUPPORTED_VERSION) => {}
        Some(other) => {
            return Err(problem(
                None,
                "version",
                format!(
                    "KrakenD configuration version {other} is not supported: Weir reads version \
                     {SUPPORTED_VERSION} (KrakenD 2.x); migrate the file to version 3 first"
                ),
            ))
        }
        None => {
            return Err(problem(
                None,
                "",
                "not a KrakenD configuration: no \"version\"".into(),
            ))
        }
    }
    // From the text, not the tree, so a wrong shape is reported with its position.
    let mut de = serde_json::Deserializer::from_str(text);
    let service: KService = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = e.into_inner();
        problem(json_position(&inner), &field, json_message(&inner))
    })?;
    let mut cx = Cx {
        file: &file,
        errors: Vec::new(),
        unsupported: BTreeMap::new(),
        misspelt: BTreeMap::new(),
        skipped: Vec::new(),
    };
    let (settings, client_tls) = map_service(&mut cx, &service);
    let defaults = Defaults {
        hosts: &service.host,
        tls: client_tls.as_ref(),
    };
    let mut endpoints = Vec::new();
    for (i, ep) in service.endpoints.iter().enumerate() {
        if let Some(spec) = map_endpoint(&mut cx, i, ep, &defaults) {
            endpoints.push((format!("{file}: endpoints[{i}]"), spec));
        }
    }
    if !cx.errors.is_empty() {
        return Err(ConfigError::Invalid(weir_model::ValidationErrors(
            cx.errors,
        )));
    }
    Ok(Imported {
        settings,
        endpoints,
        warnings: cx.warnings(),
    })
}

/// What the service level hands down to every backend.
struct Defaults<'a> {
    /// `host`, for backends that list none.
    hosts: &'a [String],
    /// `client_tls`, for backends with an https host.
    tls: Option<&'a BackendTlsSpec>,
}

/// The service settings, and the backend TLS that `client_tls` gives every https backend.
fn map_service(cx: &mut Cx<'_>, s: &KService) -> (SettingsFile, Option<BackendTlsSpec>) {
    let mut router_h2c = false;
    let mut settings = SettingsFile {
        port: s.port,
        timeout: s.timeout.clone(),
        cache_ttl: s.cache_ttl.clone(),
        debug: s.debug_endpoint.then_some(true),
        echo: s.echo_endpoint.then_some(true),
        flavor: Some(FlavorSpec::Krakend),
        ..SettingsFile::default()
    };
    if let Some(enc) = &s.output_encoding {
        settings.output_encoding = cx.enumeration(None, "output_encoding", enc, OUTPUTS);
    }
    for key in s.other.keys() {
        if key != "version" && !INERT_SERVICE_KEYS.contains(&key.as_str()) {
            cx.unsupported(format!("setting \"{key}\""), "service".into());
        }
    }
    for (ns, value) in &s.extra_config {
        let field = format!("extra_config.{ns}");
        match ns.as_str() {
            "router" => {
                if let Some(r) = cx.namespace::<KRouter>(None, &field, value) {
                    settings.return_error_message = r.return_error_msg;
                    if r.disable_health.is_some() || r.health_path.is_some() {
                        settings.health = Some(HealthSpec {
                            enabled: r.disable_health.map(|d| !d),
                            path: r.health_path.clone(),
                        });
                    }
                    settings.access_log = r.disable_access_log.map(|d| (!d).into());
                    router_h2c = r.use_h2c;
                    cx.unknown_keys("router option ", &r.other, "service");
                }
            }
            "security/cors" => {
                if let Some(c) = cx.namespace::<KCors>(None, &field, value) {
                    cx.unknown_keys("security/cors option ", &c.other, "service");
                    settings.cors = Some(CorsSpec {
                        allow_origins: c.allow_origins,
                        allow_methods: c.allow_methods,
                        allow_headers: c.allow_headers,
                        expose_headers: c.expose_headers,
                        max_age: c.max_age,
                        allow_credentials: c.allow_credentials,
                    });
                }
            }
            other if is_guard(other) => cx.skipped.push(format!(
                "{}: service extra_config namespace \"{}\" can refuse requests in KrakenD and is NOT enforced by Weir: every endpoint is served without it",
                cx.file,
                spelt(other)
            )),
            other => cx.other_namespace(other, "service".into()),
        }
    }
    match super::krakend_tls::listener(s.tls.as_ref(), s.use_h2c || router_h2c) {
        Ok(l) => {
            settings.tls = l.tls;
            settings.http2 = l.http2;
            cx.leftovers(l.left, "service");
        }
        Err(errors) => cx.errs(None, "tls", errors),
    }
    let client_tls = match (&s.client_tls, s.allow_insecure_connections) {
        (Some(v), insecure) if !v.is_null() => {
            match super::krakend_tls::client_tls(v, "client_tls", insecure) {
                Ok(c) => {
                    if c.trusts_nothing && service_uses_tls(s) {
                        cx.err(
                            None,
                            "client_tls.disable_system_ca_pool".into(),
                            TRUSTS_NOTHING.into(),
                        );
                    }
                    cx.leftovers(c.left, "service");
                    Some(c.tls)
                }
                Err(errors) => {
                    cx.errs(None, "client_tls", errors);
                    None
                }
            }
        }
        (_, true) => Some(BackendTlsSpec {
            insecure_skip_verify: true,
            ..BackendTlsSpec::default()
        }),
        _ => None,
    };
    (settings, client_tls)
}

const TRUSTS_NOTHING: &str = "without ca_certs this trusts no certificate, so KrakenD fails \
     every https backend, and Weir cannot express an empty trust store; list the CA that \
     signs your backends in ca_certs";

/// Whether any backend (with the service's default hosts) connects over TLS.
fn service_uses_tls(s: &KService) -> bool {
    s.endpoints.iter().flat_map(|e| &e.backend).any(|b| {
        let hosts = if b.host.is_empty() { &s.host } else { &b.host };
        super::krakend_tls::uses_tls(hosts)
    })
}

fn guard_namespaces(config: &BTreeMap<String, Value>) -> impl Iterator<Item = String> + '_ {
    config.keys().filter(|ns| is_guard(ns)).map(|ns| spelt(ns))
}

fn map_endpoint(
    cx: &mut Cx<'_>,
    index: usize,
    ep: &KEndpoint,
    defaults: &Defaults<'_>,
) -> Option<EndpointSpec> {
    let path = ep.endpoint.as_str();
    let at = format!("endpoints[{index}] {path}");
    // Leave out endpoints whose checks Weir cannot perform, and say which and why.
    let mut guards: Vec<String> = guard_namespaces(&ep.extra_config)
        .filter(|ns| !super::krakend_auth::MAPPED.contains(&ns.as_str()))
        .collect();
    for b in &ep.backend {
        guards.extend(guard_namespaces(&b.extra_config));
    }
    if let Some(enc) = ep
        .backend
        .iter()
        .filter_map(|b| b.encoding.as_deref())
        .find(|e| *e == "rss")
    {
        cx.skipped.push(format!(
            "{}: {at} is not served: backend encoding {enc} is not implemented",
            cx.file
        ));
        return None;
    }
    if !guards.is_empty() {
        guards.sort_unstable();
        guards.dedup();
        cx.skipped.push(format!(
            "{}: {at} is not served: it relies on {} (not implemented by Weir), and serving it \
             without those checks would expose it",
            cx.file,
            guards.join(", ")
        ));
        return None;
    }
    let mut spec = EndpointSpec {
        path: ep.endpoint.clone(),
        timeout: ep.timeout.clone(),
        cache_ttl: ep.cache_ttl.clone(),
        concurrent_calls: ep.concurrent_calls,
        input_headers: ep.input_headers.clone(),
        input_query_strings: ep.input_query_strings.clone(),
        ..EndpointSpec::default()
    };
    if let Some(m) = &ep.method {
        spec.method =
            cx.enumeration::<MethodSpec>(Some(path), "method", &m.to_ascii_uppercase(), METHODS);
    }
    if let Some(enc) = &ep.output_encoding {
        spec.output_encoding =
            cx.enumeration::<OutputEncodingSpec>(Some(path), "output_encoding", enc, OUTPUTS);
    }
    cx.unknown_keys("endpoint field ", &ep.other, &at);
    for (ns, value) in &ep.extra_config {
        let field = format!("extra_config.{ns}");
        match ns.as_str() {
            "qos/ratelimit/router" => {
                if let Some(r) = cx.namespace::<KRouterRateLimit>(Some(path), &field, value) {
                    cx.unknown_keys("qos/ratelimit/router option ", &r.other, &at);
                    let strategy = match r.strategy.as_deref() {
                        None | Some("") => None,
                        Some(s) => cx.enumeration(
                            Some(path),
                            &format!("{field}.strategy"),
                            s,
                            "ip, header, param",
                        ),
                    };
                    match whole_rates(&[r.max_rate, r.client_max_rate], r.every.as_deref()) {
                        Ok((rates, every)) => {
                            spec.rate_limit = Some(RateLimitSpec {
                                max_rate: rates[0].map(|w| w.tokens),
                                capacity: r.capacity.or(rates[0].and_then(|w| w.burst)),
                                client_max_rate: rates[1].map(|w| w.tokens),
                                client_capacity: r
                                    .client_capacity
                                    .or(rates[1].and_then(|w| w.burst)),
                                strategy,
                                key: r.key.filter(|k| !k.is_empty()),
                                every,
                            })
                        }
                        Err(e) => cx.err(Some(path), field.clone(), e),
                    }
                }
            }
            "proxy" => {
                if let Some(p) = cx.namespace::<KEndpointProxy>(Some(path), &field, value) {
                    spec.sequential = p.sequential;
                    spec.static_response = p.static_response;
                    cx.unknown_keys("endpoint proxy option ", &p.other, &at);
                }
            }
            "auth/signer" => match super::krakend_auth::signer(value) {
                Ok(m) => {
                    for key in m.unsupported {
                        cx.unsupported(format!("auth/signer option \"{key}\""), at.clone());
                    }
                    spec.token_signer = Some(Box::new(m.signer));
                }
                Err(errors) => {
                    for (f, message) in errors {
                        cx.err(Some(path), format!("{field}.{f}"), message);
                    }
                }
            },
            "auth/validator" => match super::krakend_auth::validator(value) {
                Ok(m) => {
                    for key in m.unsupported {
                        cx.unsupported(format!("auth/validator option \"{key}\""), at.clone());
                    }
                    cx.skipped.extend(
                        m.notes
                            .into_iter()
                            .map(|n| format!("{}: {at}: {n}", cx.file)),
                    );
                    spec.auth = Some(Box::new(m.auth));
                }
                Err(errors) => {
                    for (f, message) in errors {
                        cx.err(Some(path), format!("{field}.{f}"), message);
                    }
                }
            },
            other => cx.other_namespace(other, at.clone()),
        }
    }
    for (j, b) in ep.backend.iter().enumerate() {
        spec.backends.push(map_backend(
            cx,
            path,
            &format!("{at} backend[{j}]"),
            j,
            b,
            defaults,
        ));
    }
    if spec.backends.len() > 1 {
        for (j, b) in spec.backends.iter_mut().enumerate() {
            if let Some(errors) = b.errors.as_mut().filter(|e| e.return_code) {
                // KrakenD only honours it on single-backend endpoints; so does Weir.
                errors.return_code = false;
                cx.skipped.push(format!(
                    "{}: {at} backend[{j}]: backend/http return_error_code is ignored on an endpoint with several backends (as KrakenD does)",
                    cx.file
                ));
            }
        }
    }
    Some(spec)
}

fn map_backend(
    cx: &mut Cx<'_>,
    path: &str,
    at: &str,
    index: usize,
    b: &KBackend,
    defaults: &Defaults<'_>,
) -> BackendSpec {
    let hosts = if b.host.is_empty() {
        defaults.hosts.to_vec()
    } else {
        b.host.clone()
    };
    let tls = defaults
        .tls
        .filter(|_| super::krakend_tls::uses_tls(&hosts))
        .cloned();
    let mut spec = BackendSpec {
        hosts,
        tls,
        url_pattern: b.url_pattern.clone(),
        is_collection: b.is_collection,
        target: b.target.clone().filter(|t| !t.is_empty()),
        allow: b.allow.clone(),
        deny: b.deny.clone(),
        mapping: b.mapping.clone(),
        group: b.group.clone().filter(|g| !g.is_empty()),
        input_headers: b.input_headers.clone(),
        input_query_strings: b.input_query_strings.clone(),
        ..BackendSpec::default()
    };
    let prefix = format!("backend[{index}]");
    if let Some(m) = &b.method {
        spec.method = cx.enumeration::<MethodSpec>(
            Some(path),
            &format!("{prefix}.method"),
            &m.to_ascii_uppercase(),
            METHODS,
        );
    }
    if let Some(enc) = &b.encoding {
        spec.encoding = cx.enumeration::<BackendEncodingSpec>(
            Some(path),
            &format!("{prefix}.encoding"),
            enc,
            ENCODINGS,
        );
    }
    cx.unknown_keys("backend field ", &b.other, at);
    for (ns, value) in &b.extra_config {
        let field = format!("{prefix}.extra_config.{ns}");
        match ns.as_str() {
            "qos/ratelimit/proxy" => {
                if let Some(r) = cx.namespace::<KProxyRateLimit>(Some(path), &field, value) {
                    cx.unknown_keys("qos/ratelimit/proxy option ", &r.other, at);
                    match whole_rates(&[r.max_rate], r.every.as_deref()) {
                        Ok((rates, every)) => {
                            spec.rate_limit = Some(BackendRateLimitSpec {
                                max_rate: rates[0].map(|w| w.tokens),
                                capacity: r.capacity.or(rates[0].and_then(|w| w.burst)),
                                every,
                            })
                        }
                        Err(e) => cx.err(Some(path), field.clone(), e),
                    }
                }
            }
            "qos/circuit-breaker" => {
                if let Some(c) = cx.namespace::<KCircuitBreaker>(Some(path), &field, value) {
                    // Logging options change no behaviour; anything else is reported.
                    let other: BTreeMap<String, Value> = c
                        .other
                        .into_iter()
                        .filter(|(k, _)| k != "log_status_change" && k != "name")
                        .collect();
                    cx.unknown_keys("qos/circuit-breaker option ", &other, at);
                    // KrakenD counts both in whole seconds.
                    spec.circuit_breaker = Some(CircuitBreakerSpec {
                        interval: format!("{}s", c.interval),
                        timeout: format!("{}s", c.timeout),
                        max_errors: c.max_errors,
                    });
                }
            }
            "backend/http" => {
                if let Some(h) = cx.namespace::<KBackendHttp>(Some(path), &field, value) {
                    cx.unknown_keys("backend/http option ", &h.other, at);
                    spec.errors = Some(ErrorsSpec {
                        return_details: h.return_error_details.filter(|d| !d.is_empty()),
                        return_code: h.return_error_code,
                    });
                }
            }
            "backend/http/client" => {
                if let Some(c) = cx.namespace::<KBackendHttpClient>(Some(path), &field, value) {
                    cx.unknown_keys("backend/http/client option ", &c.other, at);
                    if c.no_redirect {
                        spec.follow_redirects = Some(false);
                    }
                    if let Some(v) = c.client_tls.as_ref().filter(|v| !v.is_null()) {
                        let scope = "backend/http/client client_tls";
                        match super::krakend_tls::client_tls(v, scope, false) {
                            Ok(t) => {
                                if t.trusts_nothing && super::krakend_tls::uses_tls(&spec.hosts) {
                                    cx.err(
                                        Some(path),
                                        format!("{field}.client_tls.disable_system_ca_pool"),
                                        TRUSTS_NOTHING.into(),
                                    );
                                }
                                cx.leftovers(t.left, at);
                                spec.tls = Some(t.tls);
                            }
                            Err(errors) => {
                                cx.errs(Some(path), &format!("{field}.client_tls"), errors)
                            }
                        }
                    }
                }
            }
            "proxy" => {
                if let Some(p) = cx.namespace::<KBackendProxy>(Some(path), &field, value) {
                    cx.unknown_keys("backend proxy option ", &p.other, at);
                    spec.flatmap = p.flatmap_filter;
                }
            }
            other => cx.other_namespace(other, at.to_string()),
        }
    }
    spec
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: MetadataOut,
    spec: &'a EndpointSpec,
}

#[derive(Serialize)]
struct MetadataOut {
    name: String,
}

/// A Kubernetes object name (DNS-1123 label) for an endpoint: the path's words joined by
/// `-`, `root` for `/`, the method appended when it is not GET.
pub fn manifest_name(spec: &EndpointSpec) -> String {
    let mut name = String::new();
    for c in spec.path.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let mut name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        name.push_str("root");
    }
    if let Some(m) = spec.method.filter(|m| *m != MethodSpec::Get) {
        name.push('-');
        name.push_str(&format!("{m:?}").to_ascii_lowercase());
    }
    name.truncate(55);
    name.trim_end_matches('-').to_string()
}

/// What the settings document is called among the files of `weir convert -o DIR`.
pub const SETTINGS_FILE: &str = "gateway.yaml";

/// The converted files: the gateway settings document (headed by a comment that lists
/// what was left out or changed, and why), then one `kind: Endpoint` manifest per endpoint,
/// each with its file name (`<name>.yaml`; names made unique).
pub fn manifests(
    source: &Path,
    imported: &Imported,
) -> std::result::Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    let mut settings = header(source, imported);
    settings.push_str("# Gateway settings (the document without `kind`).\n");
    settings.push_str(&crate::yaml::to_string(&imported.settings)?);
    let mut files = vec![(SETTINGS_FILE.to_string(), settings)];
    // The settings file's name is taken: an endpoint called `gateway` gets `gateway-2`.
    let mut used: BTreeMap<String, usize> = BTreeMap::from([("gateway".to_string(), 1)]);
    for (_, spec) in &imported.endpoints {
        let base = manifest_name(spec);
        let n = used.entry(base.clone()).or_insert(0);
        *n += 1;
        let name = if *n == 1 { base } else { format!("{base}-{n}") };
        let yaml = crate::yaml::to_string(&ManifestOut {
            api_version: API_VERSION,
            kind: "Endpoint",
            metadata: MetadataOut { name: name.clone() },
            spec,
        })?;
        files.push((format!("{name}.yaml"), yaml));
    }
    Ok(files)
}

/// The comment heading a conversion: where it came from, and every feature left out or
/// changed with the reason (the warnings, without their file name).
fn header(source: &Path, imported: &Imported) -> String {
    let file = source.display().to_string();
    let mut out = format!(
        "# Converted by `weir convert` from {file} (KrakenD configuration, version {SUPPORTED_VERSION}).\n\
         # `weir run` and `weir check` read this as it is.\n"
    );
    if imported.warnings.is_empty() {
        out.push_str("# Nothing was left out.\n");
    } else {
        out.push_str("# Left out or changed, and why:\n");
        for w in &imported.warnings {
            let w = w.strip_prefix(&format!("{file}: ")).unwrap_or(w);
            out.push_str(&format!("#   - {}\n", w.replace('\n', " ")));
        }
    }
    out
}

/// Renders an import as one multi-document YAML stream (the files of [`manifests`] one
/// after the other), which `weir run` and `weir check` accept as it is.
pub fn to_manifests(
    source: &Path,
    imported: &Imported,
) -> std::result::Result<String, serde_saphyr::SerializeError> {
    let files = manifests(source, imported)?;
    let mut out = String::new();
    for (i, (_, text)) in files.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(text);
    }
    Ok(out)
}

fn read_krakend(path: &Path) -> Result<Imported> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ConfigError::in_file(path, format!("not UTF-8 text: {e}")))?;
    import(path, text)
}

fn rendering(path: &Path, e: serde_saphyr::SerializeError) -> ConfigError {
    ConfigError::in_file(path, format!("cannot render the manifests as YAML: {e}"))
}

/// `weir convert`: reads a KrakenD file and renders it as one YAML stream, with the
/// warnings.
pub fn convert_file(path: &Path) -> Result<(String, Vec<String>)> {
    let imported = read_krakend(path)?;
    let yaml = to_manifests(path, &imported).map_err(|e| rendering(path, e))?;
    Ok((yaml, imported.warnings))
}

/// `weir convert -o DIR`: writes the settings document and one manifest per endpoint into
/// `dir` (created if missing); returns the files written and the warnings.
pub fn convert_to_dir(path: &Path, dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>)> {
    let imported = read_krakend(path)?;
    let files = manifests(path, &imported).map_err(|e| rendering(path, e))?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ConfigError::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::with_capacity(files.len());
    for (name, text) in files {
        let target = dir.join(name);
        std::fs::write(&target, text).map_err(io(&target))?;
        written.push(target);
    }
    Ok((written, imported.warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import_text(text: &str) -> Result<Imported> {
        import(Path::new("krakend.json"), text)
    }

    #[test]
    fn refuses_other_versions() {
        let err = import_text(r#"{"version": 2}"#).unwrap_err().to_string();
        assert!(err.contains("version 2 is not supported"), "{err}");
        assert!(err.contains("version 3"), "{err}");
    }

    #[test]
    fn maps_qos_namespaces() {
        let imported = import_text(
            r#"{"version": 3, "endpoints": [{"endpoint": "/a", "extra_config": {
                "qos/ratelimit/router": {"max_rate": 10, "client_max_rate": 2, "strategy": "header", "key": "X-Key", "every": "1m"}},
              "backend": [{"host": ["http://h"], "url_pattern": "/", "extra_config": {
                "qos/ratelimit/proxy": {"max_rate": 5, "capacity": 7},
                "qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 1, "log_status_change": true}}}]}]}"#,
        )
        .unwrap();
        let spec = &imported.endpoints[0].1;
        let rl = spec.rate_limit.as_ref().unwrap();
        assert_eq!((rl.max_rate, rl.client_max_rate), (Some(10), Some(2)));
        assert_eq!(rl.every.as_deref(), Some("1m"));
        let b = &spec.backends[0];
        assert_eq!(b.rate_limit.as_ref().unwrap().capacity, Some(7));
        let cb = b.circuit_breaker.as_ref().unwrap();
        assert_eq!((cb.interval.as_str(), cb.timeout.as_str()), ("60s", "10s"));
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
    }

    #[test]
    fn fractional_rates_stretch_the_period() {
        let (r, every) = whole_rates(&[Some(0.5), None], None).unwrap();
        assert_eq!(
            r[0],
            Some(WholeRate {
                tokens: 1,
                burst: Some(1)
            })
        );
        assert_eq!(r[1], None);
        assert_eq!(every.as_deref(), Some("2s"));
        let (r, every) = whole_rates(&[Some(2.5), Some(10.0)], Some("1m")).unwrap();
        assert_eq!(r[0].unwrap().tokens, 5);
        assert_eq!(r[1].unwrap().tokens, 20);
        assert_eq!(every.as_deref(), Some("2m0s"));
        let (r, every) = whole_rates(&[Some(3.0)], Some("1s")).unwrap();
        assert_eq!((r[0].unwrap().tokens, r[0].unwrap().burst), (3, None));
        assert_eq!(every.as_deref(), Some("1s"));
        assert!(whole_rates(&[Some(-1.0)], None).is_err());
    }

    #[test]
    fn names_manifests_after_paths() {
        let spec = |path: &str, method| EndpointSpec {
            path: path.into(),
            method,
            ..EndpointSpec::default()
        };
        assert_eq!(manifest_name(&spec("/", None)), "root");
        assert_eq!(
            manifest_name(&spec(
                "/param_forwarding/some/{foo}",
                Some(MethodSpec::Post)
            )),
            "param-forwarding-some-foo-post"
        );
    }
}
