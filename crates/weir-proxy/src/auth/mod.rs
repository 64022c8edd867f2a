//! Authentication of endpoint requests (docs/configuration.md, "Authentication"), checked before the rate
//! limits and before any backend is called:
//!
//! ```text
//!  API key present (apiKeys)? → key file lookup (apikeys.rs)
//!  else token (jwt)           → key set (jwks.rs, cached per source) → signature and
//!                               claims (jwt.rs, ring via crypto.rs) → roles, scopes
//!  → claims kept for propagated headers and {JWT.x} placeholders (claims.rs)
//! ```
//!
//! A missing or invalid credential answers 401 with `WWW-Authenticate: Bearer`, a valid one
//! lacking a role or scope 403; the body is empty, and the reason text goes into the
//! header's `error_description` only with `returnErrorMessage`. Key sets and key files are
//! owned by the [`AuthRegistry`], which outlives table reloads: an unchanged source keeps
//! its cache, and its background work runs on the registry's own thread (background.rs).

pub mod apikeys;
pub mod background;
pub mod claims;
pub mod crypto;
pub mod jwks;
pub mod jwt;
pub mod signer;
pub mod verified;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use weir_model::{Auth, ClaimPath, JwksSource};

use crate::plan::url::check_path_value;
use crate::Body;
use apikeys::{ApiKeyPlan, KeyFile};
use background::{LazyRuntime, Spawner};
use claims::Claims;
use jwks::JwksCache;
use jwt::JwtPlan;

/// Why a request was refused: the `reason` label of `weir_auth_rejections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No credential.
    Missing,
    /// Not a parseable token (or too long).
    Malformed,
    /// The token's algorithm is not accepted.
    Algorithm,
    /// No key of the set fits the token's `kid`.
    UnknownKey,
    /// No key set could be fetched yet.
    NoKeys,
    /// The signature does not verify.
    Signature,
    /// Expired, not yet valid, or without `exp`.
    Expired,
    /// Wrong or missing issuer.
    Issuer,
    /// Wrong or missing audience.
    Audience,
    /// The API key is not listed.
    ApiKey,
    /// A claim a backend URL needs is missing or unsafe in a path.
    Claim,
    /// A required role is missing (403).
    Role,
    /// A required scope is missing (403).
    Scope,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 13] = [
        Reason::Missing,
        Reason::Malformed,
        Reason::Algorithm,
        Reason::UnknownKey,
        Reason::NoKeys,
        Reason::Signature,
        Reason::Expired,
        Reason::Issuer,
        Reason::Audience,
        Reason::ApiKey,
        Reason::Claim,
        Reason::Role,
        Reason::Scope,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::Algorithm => "algorithm",
            Reason::UnknownKey => "unknown_key",
            Reason::NoKeys => "no_keys",
            Reason::Signature => "signature",
            Reason::Expired => "expired",
            Reason::Issuer => "issuer",
            Reason::Audience => "audience",
            Reason::ApiKey => "api_key",
            Reason::Claim => "claim",
            Reason::Role => "role",
            Reason::Scope => "scope",
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// 401 or 403.
    pub status: StatusCode,
    /// For the metric.
    pub reason: Reason,
    /// For `error_description` (with `returnErrorMessage`) and the debug log.
    pub text: &'static str,
}

impl Rejection {
    /// A 401.
    pub fn unauthorized(reason: Reason, text: &'static str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason,
            text,
        }
    }

    /// A 403.
    pub fn forbidden(reason: Reason, text: &'static str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason,
            text,
        }
    }

    /// The answer: empty body, `WWW-Authenticate` per RFC 6750 (the error code always, the
    /// description only when `describe`).
    pub fn response(&self, describe: bool) -> Response<Body> {
        let mut resp = Response::new(crate::empty());
        *resp.status_mut() = self.status;
        let error = match (self.status, self.reason) {
            (StatusCode::FORBIDDEN, _) => Some("insufficient_scope"),
            (_, Reason::Missing) => None,
            _ => Some("invalid_token"),
        };
        let value = match (error, describe) {
            (None, _) => "Bearer".to_string(),
            (Some(e), false) => format!("Bearer error=\"{e}\""),
            (Some(e), true) => format!("Bearer error=\"{e}\", error_description=\"{}\"", self.text),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// What an accepted request carries on to its backends.
#[derive(Default)]
pub struct Accepted {
    /// The token's claims (none for an API key).
    pub claims: Option<Arc<Claims>>,
    /// Headers from `propagateClaims`: every configured name, with the value when the
    /// claim is present (the client's own header of that name is dropped either way).
    pub headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

/// A claim a backend URL inserts (`{JWT.sub}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    /// The claim.
    pub path: ClaimPath,
    /// Whether it lands in a path part (checked like a path parameter).
    pub in_path: bool,
}

/// An endpoint's compiled authentication.
pub struct AuthPlan {
    jwt: Option<JwtPlan>,
    api_keys: Option<ApiKeyPlan>,
    /// Claims the backend URLs insert; checked before any backend is called.
    claim_refs: Vec<ClaimRef>,
}

impl AuthPlan {
    /// Compiles `auth` with the registry's shared caches. `claim_refs` are the `{JWT.x}`
    /// placeholders of the endpoint's backends.
    pub fn compile(auth: &Auth, registry: &AuthRegistry, claim_refs: Vec<ClaimRef>) -> Self {
        Self {
            jwt: auth
                .jwt
                .as_ref()
                .map(|j| JwtPlan::compile(j, registry.jwks(&j.keys, j.cache_ttl))),
            api_keys: auth
                .api_keys
                .as_ref()
                .map(|k| ApiKeyPlan::compile(k, registry.key_file(&k.file))),
            claim_refs,
        }
    }

    /// Checks a request. An API key, when the endpoint takes them and the request carries
    /// one, decides alone; otherwise the token does.
    pub async fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Accepted, Rejection> {
        if let Some(keys) = &self.api_keys {
            match keys.presented(headers, query) {
                Some(key) => {
                    keys.check(&key)?;
                    return self.accept(None);
                }
                None if self.jwt.is_none() => {
                    return Err(Rejection::unauthorized(Reason::Missing, "no API key"));
                }
                None => {}
            }
        }
        match &self.jwt {
            Some(jwt) => {
                let claims = jwt.verify(headers).await?;
                self.accept(Some(claims))
            }
            None => Ok(Accepted::default()),
        }
    }

    fn accept(&self, claims: Option<Arc<Claims>>) -> Result<Accepted, Rejection> {
        for r in &self.claim_refs {
            let value = claims.as_ref().and_then(|c| claims::lookup(c, &r.path));
            let Some(value) = value else {
                return Err(Rejection::unauthorized(Reason::Claim, "missing claim"));
            };
            if r.in_path && check_path_value(&claims::text(value), false).is_err() {
                return Err(Rejection::unauthorized(
                    Reason::Claim,
                    "claim unusable in a path",
                ));
            }
        }
        let headers = match (&self.jwt, &claims) {
            (Some(jwt), _) => jwt
                .propagate
                .iter()
                .map(|(path, name)| {
                    let value = claims
                        .as_ref()
                        .and_then(|c| claims::lookup(c, path))
                        .and_then(|v| HeaderValue::from_str(&claims::text(v)).ok());
                    (name.clone(), value)
                })
                .collect(),
            (None, _) => Vec::new(),
        };
        Ok(Accepted { claims, headers })
    }
}

/// The key caches and key files of the process, one per source, shared by every endpoint
/// and every table that names the source. Tables hold the caches; the registry only
/// remembers them weakly, so a source no table uses any more is dropped.
#[derive(Default)]
pub struct AuthRegistry {
    runtime: Arc<LazyRuntime>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    jwks: HashMap<(JwksSource, Duration), Weak<JwksCache>>,
    key_files: HashMap<PathBuf, Weak<KeyFile>>,
}

impl AuthRegistry {
    fn spawner(&self) -> Spawner {
        Spawner::Lazy(self.runtime.clone())
    }

    /// The cache of `source` (created on first use).
    pub fn jwks(&self, source: &JwksSource, ttl: Duration) -> Arc<JwksCache> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.jwks.retain(|_, w| w.strong_count() > 0);
        let key = (source.clone(), ttl);
        if let Some(c) = inner.jwks.get(&key).and_then(Weak::upgrade) {
            return c;
        }
        let cache = JwksCache::new(jwks::fetcher(source), ttl, self.spawner());
        inner.jwks.insert(key, Arc::downgrade(&cache));
        cache
    }

    /// The key file at `path` (read now when first named).
    pub fn key_file(&self, path: &std::path::Path) -> Arc<KeyFile> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.key_files.retain(|_, w| w.strong_count() > 0);
        if let Some(f) = inner.key_files.get(path).and_then(Weak::upgrade) {
            return f;
        }
        let file = KeyFile::open(path, self.spawner());
        inner
            .key_files
            .insert(path.to_path_buf(), Arc::downgrade(&file));
        file
    }
}
