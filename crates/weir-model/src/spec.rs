//! Serde types of the `Endpoint` spec, camelCase as in docs/configuration.md. Unknown fields are refused
//! so that a typo never silently changes behaviour.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum MethodSpec {
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
    /// Every method: `no-op` endpoints only (WebSocket, gRPC, REST pass-through).
    Any,
}

/// How the gateway renders its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OutputEncodingSpec {
    /// A JSON object.
    #[serde(rename = "json")]
    Json,
    /// The `collection` array as a JSON array.
    #[serde(rename = "json-collection")]
    JsonCollection,
    /// The `content` string as text.
    #[serde(rename = "string")]
    String,
    /// XML.
    #[serde(rename = "xml")]
    Xml,
    /// YAML.
    #[serde(rename = "yaml")]
    Yaml,
    /// Chosen from the `Accept` header.
    #[serde(rename = "negotiate")]
    Negotiate,
    /// The backend's answer untouched.
    #[serde(rename = "no-op")]
    NoOp,
}

/// How a backend's answer is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackendEncodingSpec {
    /// A JSON object.
    #[serde(rename = "json")]
    Json,
    /// Any JSON value.
    #[serde(rename = "safejson")]
    SafeJson,
    /// XML.
    #[serde(rename = "xml")]
    Xml,
    /// Text.
    #[serde(rename = "string")]
    String,
    /// Untouched.
    #[serde(rename = "no-op")]
    NoOp,
}

/// The client key strategy of a per-client rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitStrategy {
    /// The peer address (or the first address in header `key`).
    Ip,
    /// The value of header `key`.
    Header,
    /// The value of path parameter `key`.
    Param,
}

/// Endpoint rate limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Requests per `every` for the whole endpoint; 0 turns it off. Beyond it: 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u32>,
    /// Burst size of the endpoint bucket (defaults to `maxRate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Requests per `every` for each client; 0 turns it off. Beyond it: 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_max_rate: Option<u32>,
    /// Burst size of each client bucket (defaults to `clientMaxRate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_capacity: Option<u32>,
    /// How clients are told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RateLimitStrategy>,
    /// Header or parameter name for the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Refill period (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
}

/// Backend rate limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRateLimitSpec {
    /// Calls per `every`; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u32>,
    /// Burst size (defaults to `maxRate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Refill period (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
}

/// Circuit breaker of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Window in which consecutive failures count.
    pub interval: String,
    /// How long the breaker stays open.
    pub timeout: String,
    /// Opens after more than this many consecutive failures.
    pub max_errors: u32,
}

/// Detailed error handling of a backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorsSpec {
    /// On failure, add `error_<alias>` with the backend's status, body and content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_details: Option<String>,
    /// On failure, answer with the backend's status code (single backend only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub return_code: bool,
}

/// A flatmap operation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlatmapType {
    /// Move or rename.
    Move,
    /// Delete.
    Del,
    /// Append one array to another.
    Append,
}

/// One flatmap operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlatmapSpec {
    /// The operation.
    #[serde(rename = "type")]
    pub op: FlatmapType,
    /// Dot paths: one for `del`, two (from, to) for `move` and `append`.
    pub args: Vec<String>,
}

/// A Kubernetes Service to use as backend host (controller mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRef {
    /// Service name.
    pub name: String,
    /// Service port.
    pub port: u16,
    /// Namespace (defaults to the Endpoint's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// When static data is merged into the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StaticStrategySpec {
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

/// Static data merged by strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticResponseSpec {
    /// When to merge.
    pub strategy: StaticStrategySpec,
    /// The data (a JSON object).
    #[schemars(schema_with = "any_object")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A JWS signature algorithm. `none` is not among them: an unsigned token is never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JwtAlgorithmSpec {
    /// HMAC SHA-256 (shared secret; the key set must hold an `oct` key).
    #[serde(rename = "HS256")]
    Hs256,
    /// HMAC SHA-384.
    #[serde(rename = "HS384")]
    Hs384,
    /// HMAC SHA-512.
    #[serde(rename = "HS512")]
    Hs512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    #[serde(rename = "RS384")]
    Rs384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    #[serde(rename = "RS512")]
    Rs512,
    /// RSASSA-PSS SHA-256.
    #[serde(rename = "PS256")]
    Ps256,
    /// RSASSA-PSS SHA-384.
    #[serde(rename = "PS384")]
    Ps384,
    /// RSASSA-PSS SHA-512.
    #[serde(rename = "PS512")]
    Ps512,
    /// ECDSA P-256 SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// ECDSA P-384 SHA-384.
    #[serde(rename = "ES384")]
    Es384,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

/// How several required scopes are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopesMatcherSpec {
    /// One of the listed scopes is enough (the default).
    Any,
    /// Every listed scope is needed.
    All,
}

/// JWT validation: the token (`Authorization: Bearer`, or a cookie) must be signed by a key
/// of the key set, unexpired, and carry the issuer, audience, roles and scopes asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtSpec {
    /// URL of the JSON Web Key Set (`https://idp/.well-known/jwks.json`), fetched and cached;
    /// `http://` needs `allowHttp`. Set this or `jwksFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Path of a JSON Web Key Set file (for example a mounted Secret). Set this or `jwksUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// Accepted signature algorithms (required). HMAC keys of the set are used only when an
    /// HS algorithm is listed; `none` is never accepted.
    #[serde(default)]
    pub algorithms: Vec<JwtAlgorithmSpec>,
    /// Required issuer (`iss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted audiences (`aud`): the token must name one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
    /// Claim holding the roles, a dot path for nested claims (`realm_access.roles`; default `roles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    /// Required roles: the token must hold one of them, else 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Claim holding the scopes, a space-separated string or an array (default `scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_claim: Option<String>,
    /// Required scopes, matched by `scopesMatcher`; missing ones answer 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `any` (default) or `all` of `scopes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_matcher: Option<ScopesMatcherSpec>,
    /// Claims sent to the backends as request headers, as `[claim, Header]` pairs (arrays
    /// joined by commas, objects as JSON). A client's own header of that name is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub propagate_claims: Vec<[String; 2]>,
    /// Read the token from this cookie (when the request has no such cookie, from
    /// `Authorization: Bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// How long a fetched key set is used (default 15m); an unknown `kid` refreshes it
    /// sooner, at most once per 10 s.
    #[serde(default, rename = "cacheTTL", skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf` (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway: Option<String>,
    /// PEM file of the certificate authorities trusted for an `https` `jwksUrl` (default:
    /// the public web roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Allow a plain `http://` `jwksUrl` (default false: keys fetched in clear text can be
    /// replaced on the way).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
}

/// Signs top-level fields of an endpoint's answer as JWTs: each field named in `keysToSign`
/// that the answer has is replaced by the compact JWS of its JSON value. The key is the `oct`
/// key `kid` of a key set (`jwksUrl` or `jwksFile`; HS algorithms) or a PEM private key
/// (`keyFile`; RS, PS, ES, EdDSA).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSignerSpec {
    /// Top-level fields of the answer to sign (at least one).
    #[schemars(length(min = 1))]
    pub keys_to_sign: Vec<String>,
    /// The signature algorithm.
    pub algorithm: Option<JwtAlgorithmSpec>,
    /// `kid` of the token header; with a key set, the key to sign with (required then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Key set holding the signing key (`oct`, HS algorithms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Key set file holding the signing key (`oct`, HS algorithms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// PEM private key (PKCS#8, or PKCS#1 for RSA) for RS, PS, ES and EdDSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// How long a fetched key set is used (default 15m).
    #[serde(default, rename = "cacheTTL", skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<String>,
    /// PEM file of the CAs trusted for an `https` `jwksUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Allow a plain `http://` `jwksUrl`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http: bool,
}

/// API keys: the request carries a key listed in `file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeysSpec {
    /// File with one `key role role...` per line (`#` comments), watched for changes; in
    /// Kubernetes a mounted Secret.
    pub file: String,
    /// Header carrying the key (default `X-Api-Key` unless `query` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter carrying the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Required roles: the key must hold one of them, else 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// Who may call an endpoint. Without a valid credential the answer is 401 (with
/// `WWW-Authenticate: Bearer`); with one that lacks a role or scope, 403. Rejected requests
/// never reach a backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSpec {
    /// JWT validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// API keys. With `jwt` too, a request carrying an API key is checked against the keys,
    /// any other needs a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeysSpec>,
}

/// One backend of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.service) != (has(self.hosts) && size(self.hosts) > 0)",
    "message": "a backend needs exactly one of hosts or service",
}]))]
pub struct BackendSpec {
    /// Base URLs (`http://users.shop:8080`), load-balanced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// A Kubernetes Service instead of `hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Path (+ query) with `{name}` placeholders from the endpoint path.
    pub url_pattern: String,
    /// Upstream method (defaults to the endpoint's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MethodSpec>,
    /// How the answer is decoded (default json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<BackendEncodingSpec>,
    /// Wrap a JSON array as `{"collection": [...]}`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_collection: bool,
    /// Keep only this key's object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Keep only these dot paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Remove these dot paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Rename top-level keys (old → new).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mapping: BTreeMap<String, String>,
    /// Wrap the answer under this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Flatmap operations; replace allow/deny/mapping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flatmap: Vec<FlatmapSpec>,
    /// Backend rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<BackendRateLimitSpec>,
    /// Circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Detailed errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorsSpec>,
    /// Second-level header filter: of the headers the endpoint forwards, only these reach this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_headers: Option<Vec<String>>,
    /// Second-level query filter: of the query strings the endpoint forwards, only these reach this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_query_strings: Option<Vec<String>>,
    /// Largest answer the gateway decodes, in bytes after decompression (default 10 MiB);
    /// a larger answer counts as a failed backend. `no-op` answers stream and are not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_size: Option<u64>,
    /// Follow the backend's redirects (default true, as KrakenD does); false passes a 3xx
    /// on as a failed backend (or as the answer on `no-op` endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// Follow only redirects that stay on the same scheme, host and port (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_same_host_only: bool,
    /// TLS options for `https` hosts: a private CA, the name to verify, a client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTlsSpec>,
    /// Talk HTTP/2 to the backend (ALPN on https, prior knowledge on http); gRPC needs it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
}

/// How the gateway connects to an `https` backend. In Kubernetes the files come from a
/// mounted Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendTlsSpec {
    /// PEM file of CA certificates to trust instead of the public roots (a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Name to verify the backend certificate against and send as SNI (default: the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM client certificate chain for mutual TLS (with keyFile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM private key of the client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Accept any backend certificate (default false). Never in production: anyone on the
    /// path could impersonate the backend; the gateway warns when it is on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// One public route: what the gateway answers on `method path` and which backends it asks.
///
/// In a cluster this is the `spec` of the `Endpoint` custom resource (`weir.dev/v1alpha1`);
/// in a local file it is one item of `endpoints:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.path.startsWith('/')",
        "message": "path must start with '/'",
    },
    {
        "rule": "!['/__health', '/__stats', '/__debug', '/__echo'].exists(p, self.path == p || self.path.startsWith(p + '/'))",
        "message": "path is reserved for the gateway (/__health, /__stats, /__debug, /__echo)",
    },
    {
        "rule": "!has(self.outputEncoding) || self.outputEncoding != 'no-op' || size(self.backends) == 1",
        "message": "outputEncoding no-op passes one backend's answer through: it needs exactly one backend",
    },
    {
        "rule": "!has(self.method) || self.method != 'ANY' || (has(self.outputEncoding) && self.outputEncoding == 'no-op')",
        "message": "method ANY passes every method through and needs outputEncoding: no-op",
    },
]))]
pub struct EndpointSpec {
    /// Public path, starting with `/`, with `{name}` placeholders.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Public method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MethodSpec>,
    /// Host header to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Whole-pipeline deadline (default from settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// `Cache-Control` max-age on complete answers.
    #[serde(default, rename = "cacheTTL", skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<String>,
    /// Identical backend calls; the first good answer wins (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_calls: Option<u32>,
    /// Output rendering (default json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_encoding: Option<OutputEncodingSpec>,
    /// Headers forwarded to backends; `["*"]` = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_headers: Vec<String>,
    /// Query strings forwarded to backends; `["*"]` = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_query_strings: Vec<String>,
    /// Rate limits (default from settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Let path parameters carry encoded slashes (`%2F`) through to backends that need them
    /// (default false: a parameter whose decoded value holds `/` is refused with 400). Dot
    /// segments, backslashes and NUL are refused either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_encoded_slashes: bool,
    /// Call backends in order; `{respN_field}` uses an earlier answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sequential: bool,
    /// Static data merged by strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_response: Option<StaticResponseSpec>,
    /// Authentication (default: the settings' `auth`); `{}` makes the endpoint public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Box<AuthSpec>>,
    /// Sign fields of the answer as JWTs (KrakenD's `auth/signer`), e.g. a token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_signer: Option<Box<TokenSignerSpec>>,
    /// The backends (at least one).
    #[schemars(length(min = 1))]
    #[serde(deserialize_with = "exact_vec")]
    pub backends: Vec<BackendSpec>,
}

/// Any JSON object: the API server keeps its fields as written.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list deserialized without spare capacity. YAML and JSON sequences do not announce their
/// length, so serde grows the Vec and leaves it with room for 4 elements; a `BackendSpec`
/// is ~550 bytes and most endpoints have one backend, so every cached spec (the local
/// parse cache, the controller's store) would carry 1.6 KB of empty slots.
fn exact_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut v = Vec::<T>::deserialize(d)?;
    v.shrink_to_fit();
    Ok(v)
}
