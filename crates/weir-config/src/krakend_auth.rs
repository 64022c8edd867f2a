//! KrakenD's `auth/validator` (krakend-jose) mapped onto Weir's `auth.jwt`, field by field:
//!
//! | KrakenD | Weir |
//! |---|---|
//! | `alg` (default RS256) | `algorithms: [alg]` |
//! | `jwk_url` / `jwk_local_path` | `jwksUrl` / `jwksFile` |
//! | `jwk_local_ca` | `caFile` |
//! | `disable_jwk_security` | `allowHttp` (plain-http key URLs) |
//! | `audience`, `issuer` | `audience`, `issuer` |
//! | `roles_key`, `roles` (`roles_key_is_nested`) | `rolesClaim`, `roles` (dot paths always work) |
//! | `scopes_key`, `scopes`, `scopes_matcher` | `scopesClaim`, `scopes`, `scopesMatcher` |
//! | `propagate_claims` | `propagateClaims` |
//! | `cookie_key` | `cookie` |
//! | `cache`, `cache_duration` (seconds) | `cacheTTL` (Weir always caches) |
//!
//! Any other option is reported by name; differences in meaning become notes.
//!
//! `auth/signer` maps onto an endpoint's `tokenSigner`: `alg` → `algorithm`, `kid`,
//! `keys_to_sign` → `keysToSign`, `jwk_url` / `jwk_local_path` → `jwksUrl` / `jwksFile`,
//! `jwk_local_ca` → `caFile`, `disable_jwk_security` → `allowHttp`, `cache_duration` →
//! `cacheTTL`. Weir signs HS algorithms with the set's `oct` key and the others with a PEM
//! `keyFile`, which KrakenD has no field for; `full: true` (JSON serialization) is not
//! implemented. Both refuse the import with a message saying what to do.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use weir_model::spec::{AuthSpec, JwtAlgorithmSpec, JwtSpec, ScopesMatcherSpec, TokenSignerSpec};

/// Namespaces this module maps (an endpoint using them is served, protected or signing).
pub const MAPPED: [&str; 2] = ["auth/validator", "auth/signer"];

/// A mapped signer.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSigner {
    /// The `tokenSigner` block.
    pub signer: TokenSignerSpec,
    /// Options Weir does not implement, by name.
    pub unsupported: Vec<String>,
}

#[derive(Deserialize)]
struct KSigner {
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    keys_to_sign: Vec<String>,
    #[serde(default)]
    jwk_url: Option<String>,
    #[serde(default)]
    jwk_local_path: Option<String>,
    #[serde(default)]
    jwk_local_ca: Option<String>,
    #[serde(default)]
    disable_jwk_security: bool,
    #[serde(default)]
    full: bool,
    #[serde(default)]
    cache: Option<bool>,
    #[serde(default)]
    cache_duration: Option<u64>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// Maps an `auth/signer` body; errors are `(field inside the namespace, message)`.
pub fn signer(value: &Value) -> Result<MappedSigner, Vec<(String, String)>> {
    let v: KSigner = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        vec![(field, e.into_inner().to_string())]
    })?;
    let mut errors = Vec::new();
    let alg_text = v.alg.as_deref().unwrap_or("RS256");
    let algorithm = serde_json::from_value::<JwtAlgorithmSpec>(Value::String(alg_text.into())).ok();
    match algorithm {
        None => errors.push((
            "alg".to_string(),
            format!("{alg_text:?} is not supported (Weir signs HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 and EdDSA)"),
        )),
        Some(JwtAlgorithmSpec::Hs256 | JwtAlgorithmSpec::Hs384 | JwtAlgorithmSpec::Hs512) => {}
        Some(_) => errors.push((
            "alg".to_string(),
            format!("{alg_text}: Weir signs it with a PEM private key (tokenSigner.keyFile), not a private JWK; convert the key and write the endpoint's tokenSigner by hand"),
        )),
    }
    if v.full {
        errors.push((
            "full".into(),
            "the JSON serialization of the token is not implemented (compact tokens only)".into(),
        ));
    }
    if v.keys_to_sign.is_empty() {
        errors.push(("keys_to_sign".into(), "lists no field to sign".into()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let cache_ttl = match (v.cache, v.cache_duration) {
        (_, Some(secs)) if secs > 0 => Some(format!("{secs}s")),
        _ => None,
    };
    Ok(MappedSigner {
        signer: TokenSignerSpec {
            keys_to_sign: v.keys_to_sign,
            algorithm,
            kid: v.kid.filter(|k| !k.is_empty()),
            jwks_url: v.jwk_url.filter(|u| !u.is_empty()),
            jwks_file: v.jwk_local_path.filter(|p| !p.is_empty()),
            key_file: None,
            cache_ttl,
            ca_file: v.jwk_local_ca.filter(|c| !c.is_empty()),
            allow_http: v.disable_jwk_security,
        },
        unsupported: v.other.keys().cloned().collect(),
    })
}

/// A mapped validator.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedAuth {
    /// The `auth` block.
    pub auth: AuthSpec,
    /// Options Weir does not implement, by name.
    pub unsupported: Vec<String>,
    /// Differences worth telling the user.
    pub notes: Vec<String>,
}

#[derive(Deserialize)]
struct KValidator {
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    jwk_url: Option<String>,
    #[serde(default)]
    jwk_local_path: Option<String>,
    #[serde(default)]
    jwk_local_ca: Option<String>,
    #[serde(default)]
    disable_jwk_security: bool,
    #[serde(default)]
    audience: Vec<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    roles_key: Option<String>,
    #[serde(default)]
    roles_key_is_nested: Option<bool>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes_key: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    scopes_matcher: Option<String>,
    #[serde(default)]
    propagate_claims: Vec<Vec<String>>,
    #[serde(default)]
    cookie_key: Option<String>,
    #[serde(default)]
    cache: Option<bool>,
    #[serde(default)]
    cache_duration: Option<u64>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// Maps an `auth/validator` body; errors are `(field inside the namespace, message)`.
pub fn validator(value: &Value) -> Result<MappedAuth, Vec<(String, String)>> {
    let v: KValidator = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        vec![(field, e.into_inner().to_string())]
    })?;
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let alg_text = v.alg.as_deref().unwrap_or("RS256");
    let algorithm = serde_json::from_value::<JwtAlgorithmSpec>(Value::String(alg_text.into()))
        .map_err(|_| {
            errors.push((
                "alg".to_string(),
                format!(
                    "{alg_text:?} is not supported (Weir verifies HS256/384/512, RS256/384/512, PS256/384/512, ES256/384 and EdDSA)"
                ),
            ))
        })
        .ok();
    let scopes_matcher = match v.scopes_matcher.as_deref() {
        None | Some("") => None,
        Some("any") => Some(ScopesMatcherSpec::Any),
        Some("all") => Some(ScopesMatcherSpec::All),
        Some(other) => {
            errors.push((
                "scopes_matcher".into(),
                format!("{other:?} is not supported (any or all)"),
            ));
            None
        }
    };
    let mut propagate_claims = Vec::new();
    for (i, pair) in v.propagate_claims.iter().enumerate() {
        match pair.as_slice() {
            [claim, header] => propagate_claims.push([claim.clone(), header.clone()]),
            _ => errors.push((
                format!("propagate_claims[{i}]"),
                "each entry is a [claim, header] pair".into(),
            )),
        }
    }
    if v.audience.len() > 1 {
        notes.push(format!(
            "auth/validator audience {:?}: KrakenD requires every listed audience, Weir accepts a token naming any of them",
            v.audience
        ));
    }
    if v.cache == Some(false) {
        notes.push(
            "auth/validator cache: false: Weir always caches the key set (cacheTTL) and refreshes it on an unknown kid".into(),
        );
    }
    let cache_ttl = match (v.cache, v.cache_duration) {
        (Some(true), Some(secs)) if secs > 0 => Some(format!("{secs}s")),
        _ => None,
    };
    let unsupported: Vec<String> = v.other.keys().cloned().collect();
    let _ = v.roles_key_is_nested;
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(MappedAuth {
        auth: AuthSpec {
            jwt: Some(JwtSpec {
                jwks_url: v.jwk_url.filter(|u| !u.is_empty()),
                jwks_file: v.jwk_local_path.filter(|p| !p.is_empty()),
                algorithms: algorithm.into_iter().collect(),
                issuer: v.issuer.filter(|i| !i.is_empty()),
                audience: v.audience,
                roles_claim: v.roles_key.filter(|k| !k.is_empty()),
                roles: v.roles,
                scopes_claim: v.scopes_key.filter(|k| !k.is_empty()),
                scopes: v.scopes,
                scopes_matcher,
                propagate_claims,
                cookie: v.cookie_key.filter(|c| !c.is_empty()),
                cache_ttl,
                leeway: None,
                ca_file: v.jwk_local_ca.filter(|c| !c.is_empty()),
                allow_http: v.disable_jwk_security,
            }),
            api_keys: None,
        },
        unsupported,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signer_maps_and_refuses_what_it_cannot_do() {
        let m = signer(&json!({
            "alg": "HS256", "kid": "sim2", "keys_to_sign": ["access_token"],
            "jwk_url": "http://127.0.0.1:8081/jwk/symmetric", "disable_jwk_security": true,
            "cache_duration": 60, "jwk_fingerprints": ["x"]
        }))
        .unwrap();
        assert_eq!(m.signer.algorithm, Some(JwtAlgorithmSpec::Hs256));
        assert_eq!(m.signer.keys_to_sign, ["access_token"]);
        assert!(m.signer.allow_http);
        assert_eq!(m.signer.cache_ttl.as_deref(), Some("60s"));
        assert_eq!(m.unsupported, ["jwk_fingerprints"]);
        let e = signer(&json!({"alg": "RS256", "keys_to_sign": ["t"], "full": true})).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["alg", "full"]);
        assert!(e[0].1.contains("keyFile"), "{e:?}");
    }

    #[test]
    fn maps_every_field() {
        let m = validator(&json!({
            "alg": "HS256",
            "jwk_url": "http://127.0.0.1:8081/jwk/symmetric",
            "disable_jwk_security": true,
            "audience": ["http://api.example.com"],
            "issuer": "https://krakend.io",
            "roles_key": "realm_access.roles",
            "roles_key_is_nested": true,
            "roles": ["role_a"],
            "scopes_key": "scp",
            "scopes": ["read"],
            "scopes_matcher": "all",
            "propagate_claims": [["sub", "x-user"]],
            "cookie_key": "session",
            "cache": true,
            "cache_duration": 600,
            "operation_debug": true,
            "key_identify_strategy": "x5t"
        }))
        .unwrap();
        let j = m.auth.jwt.unwrap();
        assert_eq!(j.algorithms, [JwtAlgorithmSpec::Hs256]);
        assert!(j.allow_http);
        assert_eq!(j.roles_claim.as_deref(), Some("realm_access.roles"));
        assert_eq!(j.scopes_matcher, Some(ScopesMatcherSpec::All));
        assert_eq!(
            j.propagate_claims,
            [["sub".to_string(), "x-user".to_string()]]
        );
        assert_eq!(j.cookie.as_deref(), Some("session"));
        assert_eq!(j.cache_ttl.as_deref(), Some("600s"));
        assert_eq!(m.unsupported, ["key_identify_strategy", "operation_debug"]);
        assert!(m.notes.is_empty(), "{:?}", m.notes);
    }

    #[test]
    fn refuses_what_weir_cannot_verify_and_notes_differences() {
        let errors = validator(&json!({"alg": "ES512", "jwk_url": "https://x"})).unwrap_err();
        assert_eq!(errors[0].0, "alg");
        let m = validator(&json!({"jwk_url": "https://x", "audience": ["a", "b"], "cache": false}))
            .unwrap();
        assert_eq!(m.auth.jwt.unwrap().algorithms, [JwtAlgorithmSpec::Rs256]);
        assert_eq!(m.notes.len(), 2, "{:?}", m.notes);
        assert!(validator(&json!({"propagate_claims": [["sub"]]})).is_err());
    }
}
