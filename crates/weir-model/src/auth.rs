//! Authentication of an endpoint (docs/configuration.md, "Authentication"): JWT validation against a JSON
//! Web Key Set, and API keys from a file. Validated values only; the data plane compiles them.

use std::path::PathBuf;
use std::time::Duration;

/// Default `cacheTTL` of a JWKS.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(15 * 60);

/// Smallest `cacheTTL` accepted (every refresh is a request to the identity provider).
pub const MIN_JWKS_TTL: Duration = Duration::from_secs(1);

/// Default header an API key is read from.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

/// Default claim holding the roles.
pub const DEFAULT_ROLES_CLAIM: &str = "roles";

/// Default claim holding the scopes (OAuth 2.0).
pub const DEFAULT_SCOPES_CLAIM: &str = "scope";

/// A JWS signature algorithm Weir verifies. `none` does not exist here: an unsigned token
/// is never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JwtAlgorithm {
    /// HMAC SHA-256 (a shared secret).
    Hs256,
    /// HMAC SHA-384.
    Hs384,
    /// HMAC SHA-512.
    Hs512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    Rs512,
    /// RSASSA-PSS SHA-256.
    Ps256,
    /// RSASSA-PSS SHA-384.
    Ps384,
    /// RSASSA-PSS SHA-512.
    Ps512,
    /// ECDSA P-256 SHA-256.
    Es256,
    /// ECDSA P-384 SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl JwtAlgorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [JwtAlgorithm; 12] = [
        JwtAlgorithm::Hs256,
        JwtAlgorithm::Hs384,
        JwtAlgorithm::Hs512,
        JwtAlgorithm::Rs256,
        JwtAlgorithm::Rs384,
        JwtAlgorithm::Rs512,
        JwtAlgorithm::Ps256,
        JwtAlgorithm::Ps384,
        JwtAlgorithm::Ps512,
        JwtAlgorithm::Es256,
        JwtAlgorithm::Es384,
        JwtAlgorithm::EdDsa,
    ];

    /// The JOSE name (`RS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Hs384 => "HS384",
            JwtAlgorithm::Hs512 => "HS512",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Rs384 => "RS384",
            JwtAlgorithm::Rs512 => "RS512",
            JwtAlgorithm::Ps256 => "PS256",
            JwtAlgorithm::Ps384 => "PS384",
            JwtAlgorithm::Ps512 => "PS512",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Es384 => "ES384",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE name exactly as written (`RS256`, `EdDSA`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether this is an HMAC algorithm (a shared secret, not a public key).
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::Hs256 | JwtAlgorithm::Hs384 | JwtAlgorithm::Hs512
        )
    }
}

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JwksSource {
    /// Fetched over HTTP(S) and cached.
    Url {
        /// `https://idp/.well-known/jwks.json` (or `http://` with `allow_http`).
        url: http::Uri,
        /// Plain `http://` was explicitly allowed (KrakenD `disable_jwk_security`).
        allow_http: bool,
        /// PEM bundle of the CAs trusted for this URL instead of the public roots.
        ca_file: Option<PathBuf>,
    },
    /// Read from a local file (a mounted Secret).
    File(PathBuf),
}

/// How several required scopes are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScopesMatcher {
    /// One of them is enough.
    #[default]
    Any,
    /// Every one is needed.
    All,
}

/// A claim named by a dot path (`realm_access.roles`); a claim whose name itself holds the
/// whole text (`https://example.com/roles`) wins over the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimPath {
    /// As written.
    pub raw: String,
    /// Split on `.`.
    pub steps: Vec<String>,
}

impl ClaimPath {
    /// Parses a non-empty dot path with non-empty steps.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("a claim name may not be empty".into());
        }
        let steps: Vec<String> = raw.split('.').map(str::to_string).collect();
        if steps.iter().any(String::is_empty) {
            return Err(format!("{raw:?} has an empty step in its dot path"));
        }
        Ok(Self {
            raw: raw.to_string(),
            steps,
        })
    }
}

/// JWT validation of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JwtAuth {
    /// The key set.
    pub keys: JwksSource,
    /// Accepted signature algorithms (never empty).
    pub algorithms: Vec<JwtAlgorithm>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values (any of); empty = not checked.
    pub audience: Vec<String>,
    /// Claim holding the roles.
    pub roles_claim: ClaimPath,
    /// Required roles (any of); empty = none required.
    pub roles: Vec<String>,
    /// Claim holding the scopes (a space-separated string or an array).
    pub scopes_claim: ClaimPath,
    /// Required scopes; empty = none required.
    pub scopes: Vec<String>,
    /// How `scopes` are matched.
    pub scopes_matcher: ScopesMatcher,
    /// Claims sent upstream as headers: (claim, lower-case header name).
    pub propagate_claims: Vec<(ClaimPath, String)>,
    /// Read the token from this cookie (then from `Authorization`).
    pub cookie: Option<String>,
    /// How long a fetched key set is used before it is fetched again.
    pub cache_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// API keys of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeys {
    /// `key role role...` per line, watched.
    pub file: PathBuf,
    /// Header carrying the key (lower-case); `None` when only `query` is read.
    pub header: Option<String>,
    /// Query parameter carrying the key.
    pub query: Option<String>,
    /// Required roles (any of); empty = any known key.
    pub roles: Vec<String>,
}

/// The authentication of an endpoint: a token, an API key, or (both set) either of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Auth {
    /// JWT validation.
    pub jwt: Option<JwtAuth>,
    /// API keys.
    pub api_keys: Option<ApiKeys>,
}

impl Auth {
    /// Whether anything is checked (an empty `auth: {}` makes an endpoint public).
    pub fn is_enabled(&self) -> bool {
        self.jwt.is_some() || self.api_keys.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_round_trip_and_none_does_not_exist() {
        for a in JwtAlgorithm::ALL {
            assert_eq!(JwtAlgorithm::parse(a.as_str()), Some(a));
        }
        assert_eq!(JwtAlgorithm::parse("none"), None);
        assert_eq!(JwtAlgorithm::parse("rs256"), None);
        assert!(JwtAlgorithm::Hs384.is_hmac() && !JwtAlgorithm::Rs256.is_hmac());
    }

    #[test]
    fn claim_paths() {
        let p = ClaimPath::parse("realm_access.roles").unwrap();
        assert_eq!(p.steps, ["realm_access", "roles"]);
        assert!(ClaimPath::parse("").is_err());
        assert!(ClaimPath::parse("a..b").is_err());
        assert!(ClaimPath::parse("https://example.com/roles").is_ok());
    }
}

/// Where a token signer's key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SignerKey {
    /// The `oct` key named by `kid` in a key set (HS algorithms), cached like a validator's.
    Jwks {
        /// The key set.
        source: JwksSource,
        /// How long a fetched set is used.
        cache_ttl: Duration,
    },
    /// A PEM private key (RS, PS, ES and EdDSA algorithms), read when the table is built.
    Pem(PathBuf),
}

/// Signs fields of an endpoint's answer as JWTs (KrakenD's `auth/signer`): each field named
/// in `keys_to_sign` that the answer has is replaced by the compact JWS of its JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenSigner {
    /// Top-level fields of the answer to sign.
    pub keys_to_sign: Vec<String>,
    /// The signature algorithm.
    pub algorithm: JwtAlgorithm,
    /// `kid` of the token header, and of the key in a key set.
    pub kid: Option<String>,
    /// The signing key.
    pub key: SignerKey,
}
