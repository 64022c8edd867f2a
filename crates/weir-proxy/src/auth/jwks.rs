//! JSON Web Key Sets: parsed once per fetch into ready keys, and cached per source.
//!
//! The cache is shared by every endpoint and worker that names the same source (the
//! registry hands out one per source). A request reads the current set without a lock. It
//! is refreshed:
//! - on first use (the request waits for that fetch, up to [`FETCH_TIMEOUT`]);
//! - when it is older than `cacheTTL` (the request that notices is served with the set it
//!   has, the fetch runs in the background);
//! - when a token names an unknown `kid`: one fetch, at most once per [`MIN_REFRESH`] per
//!   source, and the request waits for it (key rotation without a restart). Tokens with
//!   made-up `kid`s therefore cost the identity provider at most one request per 10 s.
//!
//! A failed refresh keeps the last good set and logs. When there is no set yet, the failure
//! answers 401 and the fetch is retried in the background (1 s, 2 s, 4 s, … up to 10 s
//! apart) until it succeeds or the cache is no longer used.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use weir_model::JwksSource;

use super::background::Spawner;

/// Refreshes caused by unknown `kid`s happen at most this often per source.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);

/// One fetch (connect, TLS, answer) may take this long.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest key set document read.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Most keys used from one set (the rest are ignored, with a warning).
pub const MAX_KEYS: usize = 256;

/// First retry delay after a failed first fetch (doubles up to [`MIN_REFRESH`]).
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Why a key set could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("fetching {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The document is not a usable key set.
    #[error("{0}")]
    Invalid(String),
    /// It took longer than [`FETCH_TIMEOUT`].
    #[error("no key set within {0:?}")]
    Timeout(Duration),
}

/// A key of a set, ready to verify with.
pub struct Key {
    kid: Option<String>,
    /// The `alg` the set pins the key to, if any.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// A parsed key set.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWK Set (`{"keys": [...]}`). Keys that cannot be used for signatures (an
    /// unknown type, `use: enc`, a key-wrapping `alg`, bad numbers) are skipped.
    pub fn parse(bytes: &[u8]) -> Result<Self, FetchError> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| FetchError::Invalid(format!("the key set is not JSON: {e}")))?;
        let Some(items) = doc.get("keys").and_then(Value::as_array) else {
            return Err(FetchError::Invalid(
                "the key set has no \"keys\" array".into(),
            ));
        };
        if items.len() > MAX_KEYS {
            warn!(
                keys = items.len(),
                used = MAX_KEYS,
                "the key set holds more keys than used"
            );
        }
        let mut keys = Vec::new();
        for item in items.iter().take(MAX_KEYS) {
            match Self::key(item) {
                Ok(k) => keys.push(k),
                Err(why) => {
                    let kid = item.get("kid").and_then(|k| k.as_str()).unwrap_or("");
                    debug!(kid, "key skipped: {why}");
                }
            }
        }
        Ok(Self { keys })
    }

    fn key(item: &Value) -> Result<Key, String> {
        let jwk: Jwk = serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err("an encryption key".into());
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => Some(
                Algorithm::try_from(a)
                    .map_err(|_| format!("{a:?} is not a signature algorithm"))?,
            ),
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        if let Some(a) = alg.filter(|a| a.family() != key.family()) {
            return Err(format!("alg {a:?} does not fit the key type"));
        }
        Ok(Key {
            kid: jwk.common.key_id,
            alg,
            key,
        })
    }

    /// The key for a token with this `kid` and algorithm: same family, and the key's own
    /// `alg` (when the set pins one) equal to the token's. A token without `kid` is
    /// accepted only when exactly one key fits.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<usize> {
        let fits = |k: &Key| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .position(|k| k.kid.as_deref() == Some(kid) && fits(k)),
            None => {
                let mut candidates = self.keys.iter().enumerate().filter(|(_, k)| fits(k));
                match (candidates.next(), candidates.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            }
        }
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Produces the bytes of a key set.
pub trait Fetch: Send + Sync {
    /// One attempt.
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Bytes, FetchError>> + Send + '_>>;
    /// For logs.
    fn describe(&self) -> String;
}

/// A key set at a URL.
pub struct UrlFetch {
    url: http::Uri,
    ca_file: Option<std::path::PathBuf>,
}

/// A key set in a file.
pub struct FileFetch {
    path: std::path::PathBuf,
}

/// The fetcher for a configured source.
pub fn fetcher(source: &JwksSource) -> Box<dyn Fetch> {
    match source {
        JwksSource::Url { url, ca_file, .. } => Box::new(UrlFetch {
            url: url.clone(),
            ca_file: ca_file.clone(),
        }),
        JwksSource::File(path) => Box::new(FileFetch { path: path.clone() }),
    }
}

impl UrlFetch {
    /// TLS trusting only the CAs of `path` (read on every fetch, so a rotated CA file is
    /// picked up).
    fn private_tls(path: &std::path::Path) -> Result<rustls::ClientConfig, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("caFile {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("caFile {}: {e}", path.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!("caFile {}: no certificate", path.display()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    async fn get(&self) -> Result<Bytes, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let builder = match &self.ca_file {
            None => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
            Some(path) => {
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(Self::private_tls(path)?)
            }
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let req = http::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, crate::upstream::build::USER_AGENT)
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| {
            let mut text = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                text.push_str(": ");
                text.push_str(&s.to_string());
                src = s.source();
            }
            text
        })?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!("answered {}", resp.status()));
        }
        Limited::new(resp.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("reading the body: {e}"))
    }
}

impl Fetch for UrlFetch {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Bytes, FetchError>> + Send + '_>> {
        Box::pin(async move {
            self.get().await.map_err(|message| FetchError::Http {
                url: self.url.to_string(),
                message,
            })
        })
    }

    fn describe(&self) -> String {
        self.url.to_string()
    }
}

impl Fetch for FileFetch {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Bytes, FetchError>> + Send + '_>> {
        Box::pin(async move {
            let io = |source| FetchError::File {
                path: self.path.display().to_string(),
                source,
            };
            let len = tokio::fs::metadata(&self.path).await.map_err(io)?.len();
            if len > MAX_JWKS_BYTES as u64 {
                return Err(FetchError::Invalid(format!(
                    "{}: {len} bytes is above the limit of {MAX_JWKS_BYTES}",
                    self.path.display()
                )));
            }
            tokio::fs::read(&self.path)
                .await
                .map(Bytes::from)
                .map_err(io)
        })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// A key set in use, with when it was fetched.
pub struct Loaded {
    /// The keys.
    pub set: KeySet,
    /// Increases with every set loaded into the cache (verified tokens name it).
    pub generation: u64,
    at: Instant,
}

#[derive(Default)]
struct Ctl {
    in_flight: bool,
    last_attempt: Option<Instant>,
}

/// Why a refresh is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    First,
    Stale,
    UnknownKid,
}

/// Why no key could be had for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No key set has been fetched yet (the first fetch failed).
    NoKeys,
    /// The set has no key for the token's `kid` and algorithm.
    UnknownKid,
}

/// One source's key set, shared by every endpoint naming it.
pub struct JwksCache {
    fetch: Box<dyn Fetch>,
    ttl: Duration,
    current: ArcSwapOption<Loaded>,
    ctl: Mutex<Ctl>,
    /// Counts finished attempts; waiters watch it.
    attempts: watch::Sender<u64>,
    /// Sets loaded so far.
    loads: std::sync::atomic::AtomicU64,
    spawner: Spawner,
}

impl JwksCache {
    /// A cache that fetches with `fetch` and runs its fetches on `spawner`.
    pub fn new(fetch: Box<dyn Fetch>, ttl: Duration, spawner: Spawner) -> Arc<Self> {
        Arc::new(Self {
            fetch,
            ttl,
            current: ArcSwapOption::empty(),
            ctl: Mutex::new(Ctl::default()),
            attempts: watch::channel(0).0,
            loads: std::sync::atomic::AtomicU64::new(0),
            spawner,
        })
    }

    /// The key for a token (`kid`, `alg`), fetching or refreshing the set as the module
    /// documentation says. Returns the set it found the key in.
    pub async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Arc<Loaded>, usize), Miss> {
        let loaded = self.current.load_full();
        let why = match &loaded {
            Some(l) => {
                if l.at.elapsed() >= self.ttl {
                    self.trigger(Why::Stale);
                }
                if let Some(i) = l.set.find(kid, alg) {
                    return Ok((l.clone(), i));
                }
                Why::UnknownKid
            }
            None => Why::First,
        };
        let mut done = self.attempts.subscribe();
        if self.trigger(why) {
            // Bounded: the fetch itself gives up after FETCH_TIMEOUT.
            let _ =
                tokio::time::timeout(FETCH_TIMEOUT + Duration::from_secs(1), done.changed()).await;
        }
        match self.current.load_full() {
            None => Err(Miss::NoKeys),
            Some(l) => match l.set.find(kid, alg) {
                Some(i) => Ok((l, i)),
                None => Err(Miss::UnknownKid),
            },
        }
    }

    /// The generation of the set in use, after starting a background refresh when it is
    /// older than `cacheTTL` (what [`JwksCache::key_for`] does for a request that skips it).
    pub fn current_generation(self: &Arc<Self>) -> Option<u64> {
        let loaded = self.current.load();
        let l = loaded.as_ref()?;
        if l.at.elapsed() >= self.ttl {
            self.trigger(Why::Stale);
        }
        Some(l.generation)
    }

    /// Starts a fetch if `why` allows one now; true when a fetch is running afterwards
    /// (worth waiting for).
    fn trigger(self: &Arc<Self>, why: Why) -> bool {
        let now = Instant::now();
        {
            let mut ctl = self.ctl.lock().unwrap_or_else(|p| p.into_inner());
            if ctl.in_flight {
                return true;
            }
            let since = ctl.last_attempt.map(|t| now.saturating_duration_since(t));
            let allowed = match why {
                // After a failed first fetch the background retries take over.
                Why::First => since.is_none(),
                Why::Stale => since.is_none_or(|s| s >= self.ttl.min(MIN_REFRESH)),
                Why::UnknownKid => since.is_none_or(|s| s >= MIN_REFRESH),
            };
            if !allowed {
                return false;
            }
            ctl.in_flight = true;
            ctl.last_attempt = Some(now);
        }
        debug!(source = %self.fetch.describe(), ?why, "fetching the key set");
        let weak = Arc::downgrade(self);
        self.spawner
            .spawn("jwks fetch", async move { run_fetch(weak).await });
        true
    }

    /// One attempt: the new set is stored, or the failure logged.
    async fn attempt(&self) -> bool {
        let result = match tokio::time::timeout(FETCH_TIMEOUT, self.fetch.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(FETCH_TIMEOUT)),
        };
        let ok = match result.and_then(|bytes| KeySet::parse(&bytes)) {
            Ok(set) => {
                info!(source = %self.fetch.describe(), keys = set.len(), "key set loaded");
                let generation = self
                    .loads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1;
                self.current.store(Some(Arc::new(Loaded {
                    set,
                    generation,
                    at: Instant::now(),
                })));
                true
            }
            Err(e) => {
                let kept = self.current.load().is_some();
                warn!(source = %self.fetch.describe(), keeping_last_good_set = kept, "key set refresh failed: {e}");
                false
            }
        };
        self.ctl.lock().unwrap_or_else(|p| p.into_inner()).in_flight = false;
        self.attempts.send_modify(|n| *n += 1);
        ok
    }

    /// Starts the next background retry, unless something else is fetching.
    fn begin_retry(&self) -> bool {
        let mut ctl = self.ctl.lock().unwrap_or_else(|p| p.into_inner());
        if ctl.in_flight || self.current.load().is_some() {
            return false;
        }
        ctl.in_flight = true;
        ctl.last_attempt = Some(Instant::now());
        true
    }
}

impl Loaded {
    /// The key at `index` (from [`JwksCache::key_for`]).
    pub fn key(&self, index: usize) -> Option<&DecodingKey> {
        self.set.keys.get(index).map(|k| &k.key)
    }
}

/// Runs one fetch and, while the cache has no set at all, retries with backoff. Holds the
/// cache only weakly between attempts, so a cache no table uses any more stops retrying.
async fn run_fetch(cache: Weak<JwksCache>) {
    let mut delay = FIRST_RETRY;
    loop {
        let Some(c) = cache.upgrade() else { return };
        if c.attempt().await || c.current.load().is_some() {
            return;
        }
        drop(c);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MIN_REFRESH);
        let Some(c) = cache.upgrade() else { return };
        if !c.begin_retry() {
            return;
        }
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
