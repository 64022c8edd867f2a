//! JWT validation, compiled: the accepted algorithms each with their `Validation`, the key
//! set cache, the role and scope requirements. A request only extracts the token, finds
//! the key and lets `jsonwebtoken` check signature and claims.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use weir_model::{ClaimPath, JwtAlgorithm, JwtAuth, ScopesMatcher};

use super::claims::{self, Claims};
use super::jwks::{JwksCache, Miss};
use super::verified::Verified;
use super::{Reason, Rejection};

/// Longest token read; anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A compiled `auth.jwt`.
pub struct JwtPlan {
    algorithms: Vec<(Algorithm, Validation)>,
    keys: Arc<JwksCache>,
    roles_claim: ClaimPath,
    roles: Vec<String>,
    scopes_claim: ClaimPath,
    scopes: Vec<String>,
    scopes_matcher: ScopesMatcher,
    cookie: Option<String>,
    leeway: u64,
    verified: Verified,
    /// Claims sent upstream, with their header.
    pub propagate: Vec<(ClaimPath, HeaderName)>,
}

pub(crate) fn algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::Hs384 => Algorithm::HS384,
        JwtAlgorithm::Hs512 => Algorithm::HS512,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Rs384 => Algorithm::RS384,
        JwtAlgorithm::Rs512 => Algorithm::RS512,
        JwtAlgorithm::Ps256 => Algorithm::PS256,
        JwtAlgorithm::Ps384 => Algorithm::PS384,
        JwtAlgorithm::Ps512 => Algorithm::PS512,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::Es384 => Algorithm::ES384,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

impl JwtPlan {
    /// Compiles `jwt` with the shared key cache of its source.
    pub fn compile(jwt: &JwtAuth, keys: Arc<JwksCache>) -> Self {
        super::crypto::install();
        let algorithms = jwt
            .algorithms
            .iter()
            .map(|a| {
                let alg = algorithm(*a);
                // One algorithm per Validation: jsonwebtoken checks that the key fits every
                // listed algorithm's family.
                let mut v = Validation::new(alg);
                v.leeway = jwt.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                let mut required = vec!["exp"];
                match &jwt.issuer {
                    Some(iss) => {
                        v.set_issuer(&[iss]);
                        required.push("iss");
                    }
                    None => v.iss = None,
                }
                if jwt.audience.is_empty() {
                    // Without configured audiences a token's `aud` is not checked.
                    v.validate_aud = false;
                } else {
                    v.set_audience(&jwt.audience);
                    required.push("aud");
                }
                v.set_required_spec_claims(&required);
                (alg, v)
            })
            .collect();
        Self {
            algorithms,
            keys,
            roles_claim: jwt.roles_claim.clone(),
            roles: jwt.roles.clone(),
            scopes_claim: jwt.scopes_claim.clone(),
            scopes: jwt.scopes.clone(),
            scopes_matcher: jwt.scopes_matcher,
            cookie: jwt.cookie.clone(),
            leeway: jwt.leeway.as_secs(),
            verified: Verified::default(),
            propagate: jwt
                .propagate_claims
                .iter()
                .filter_map(|(c, h)| Some((c.clone(), HeaderName::from_bytes(h.as_bytes()).ok()?)))
                .collect(),
        }
    }

    /// The token of a request: the configured cookie, else `Authorization: Bearer`.
    pub fn token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        if let Some(name) = &self.cookie {
            let from_cookie = headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim_matches('"'));
            if from_cookie.is_some() {
                return from_cookie;
            }
        }
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// Validates the request's token and returns its claims.
    pub async fn verify(&self, headers: &HeaderMap) -> Result<Arc<Claims>, Rejection> {
        let token = self
            .token(headers)
            .ok_or(Rejection::unauthorized(Reason::Missing, "no bearer token"))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::unauthorized(Reason::Malformed, "token too long"));
        }
        if let Some(generation) = self.keys.current_generation() {
            let now = jsonwebtoken::get_current_timestamp();
            if let Some(claims) = self.verified.get(token, generation, now, self.leeway) {
                return Ok(claims);
            }
        }
        let head = jsonwebtoken::decode_header(token)
            .map_err(|_| Rejection::unauthorized(Reason::Malformed, "malformed token"))?;
        let Some((alg, validation)) = self.algorithms.iter().find(|(a, _)| *a == head.alg) else {
            return Err(Rejection::unauthorized(
                Reason::Algorithm,
                "token algorithm not accepted",
            ));
        };
        let (set, index) = self
            .keys
            .key_for(head.kid.as_deref(), *alg)
            .await
            .map_err(|miss| match miss {
                Miss::NoKeys => Rejection::unauthorized(Reason::NoKeys, "signing keys unavailable"),
                Miss::UnknownKid => {
                    Rejection::unauthorized(Reason::UnknownKey, "unknown signing key")
                }
            })?;
        let key = set.key(index).ok_or(Rejection::unauthorized(
            Reason::UnknownKey,
            "unknown signing key",
        ))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            let (reason, text) = match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat => (Reason::Signature, "invalid signature"),
                ErrorKind::ExpiredSignature => (Reason::Expired, "token expired"),
                ErrorKind::ImmatureSignature => (Reason::Expired, "token not valid yet"),
                ErrorKind::InvalidIssuer => (Reason::Issuer, "wrong issuer"),
                ErrorKind::InvalidAudience => (Reason::Audience, "wrong audience"),
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => (Reason::Issuer, "no issuer"),
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => {
                    (Reason::Audience, "no audience")
                }
                ErrorKind::MissingRequiredClaim(_) => (Reason::Expired, "no expiry"),
                _ => (Reason::Malformed, "malformed token"),
            };
            Rejection::unauthorized(reason, text)
        })?;
        let claims = Arc::new(data.claims);
        if !self.roles.is_empty() {
            let held = claims::lookup(&claims, &self.roles_claim)
                .map(claims::words)
                .unwrap_or_default();
            if !self.roles.iter().any(|r| held.contains(&r.as_str())) {
                return Err(Rejection::forbidden(Reason::Role, "missing role"));
            }
        }
        if !self.scopes.is_empty() {
            let held = claims::lookup(&claims, &self.scopes_claim)
                .map(claims::words)
                .unwrap_or_default();
            let has = |s: &String| held.contains(&s.as_str());
            let ok = match self.scopes_matcher {
                ScopesMatcher::Any => self.scopes.iter().any(has),
                ScopesMatcher::All => self.scopes.iter().all(has),
            };
            if !ok {
                return Err(Rejection::forbidden(Reason::Scope, "missing scope"));
            }
        }
        self.verified.insert(token, claims.clone(), set.generation);
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::background::{LazyRuntime, Spawner};
    use crate::auth::jwks;
    use weir_model::{JwksSource, ScopesMatcher};

    fn plan(cookie: Option<&str>) -> JwtPlan {
        let source = JwksSource::File("/nonexistent".into());
        let keys = JwksCache::new(
            jwks::fetcher(&source),
            std::time::Duration::from_secs(60),
            Spawner::Lazy(Arc::new(LazyRuntime::default())),
        );
        let path = |s: &str| ClaimPath::parse(s).unwrap();
        JwtPlan::compile(
            &JwtAuth {
                keys: source,
                algorithms: vec![JwtAlgorithm::Rs256],
                issuer: None,
                audience: vec![],
                roles_claim: path("roles"),
                roles: vec![],
                scopes_claim: path("scope"),
                scopes: vec![],
                scopes_matcher: ScopesMatcher::Any,
                propagate_claims: vec![],
                cookie: cookie.map(str::to_string),
                cache_ttl: std::time::Duration::from_secs(60),
                leeway: std::time::Duration::ZERO,
            },
            keys,
        )
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn tokens_come_from_bearer_headers_and_the_cookie() {
        let p = plan(None);
        assert_eq!(
            p.token(&headers(&[("authorization", "Bearer a.b.c")])),
            Some("a.b.c")
        );
        assert_eq!(
            p.token(&headers(&[("authorization", "bearer  a.b.c ")])),
            Some("a.b.c")
        );
        assert_eq!(
            p.token(&headers(&[("authorization", "Basic dXNlcg==")])),
            None
        );
        assert_eq!(p.token(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(p.token(&headers(&[("cookie", "session=a.b.c")])), None);
        let p = plan(Some("session"));
        let h = headers(&[
            ("cookie", "theme=dark; session=x.y.z"),
            ("authorization", "Bearer a.b.c"),
        ]);
        assert_eq!(p.token(&h), Some("x.y.z"), "the cookie first");
        assert_eq!(
            p.token(&headers(&[("authorization", "Bearer a.b.c")])),
            Some("a.b.c")
        );
        assert_eq!(p.token(&headers(&[("cookie", "sessionx=1")])), None);
    }
}
