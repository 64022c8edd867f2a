//! TLS termination on the proxy port: rustls with safe defaults (TLS 1.2 and 1.3, rustls's
//! cipher suites), several certificates picked by SNI, and certificates that rotate without
//! a restart.
//!
//! The certificate set lives behind an `ArcSwap` in [`CertStore`]: a handshake reads the
//! current set, so a rotated pair (cert-manager renewing a Secret swaps the `..data` symlink
//! of the mounted volume) serves new connections at once and open connections keep theirs.
//! A pair that cannot be read or whose key does not match is logged and the previous set
//! keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use weir_model::{CertificatePair, TlsSettings, TlsVersion};

/// A certificate expiring sooner than this gets a warning from `weir check` and at load.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Why a certificate pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no PEM item of the kind expected.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key does not belong to the certificate.
    #[error("{key} is not the private key of {cert}")]
    KeyMismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One loaded certificate.
#[derive(Debug)]
pub struct LoadedCert {
    /// DNS names it serves, lower-case (`*.example.com` included).
    pub names: Vec<String>,
    /// When it expires.
    pub not_after: Option<SystemTime>,
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
}

impl LoadedCert {
    /// Whether it serves `server_name` (exact, or one label under a wildcard).
    pub fn serves(&self, server_name: &str) -> bool {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| match n.strip_prefix("*.") {
            Some(parent) => name
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *n == name,
        })
    }

    /// Time left before it expires (zero when it already has).
    pub fn expires_in(&self) -> Option<Duration> {
        self.not_after.map(|t| {
            t.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain (leaf first).
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(chain)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e.to_string()))
}

/// Loads a pair and checks that the key belongs to the certificate.
pub fn load_pair(pair: &CertificatePair) -> Result<LoadedCert, TlsError> {
    let chain = read_chain(&pair.cert_file)?;
    let key = read_key(&pair.key_file)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_error(&pair.key_file, format!("unusable private key: {e}")))?;
    let (names, not_after) = describe(&chain[0]).map_err(|m| file_error(&pair.cert_file, m))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| TlsError::KeyMismatch {
        cert: pair.cert_file.clone(),
        key: pair.key_file.clone(),
    })?;
    Ok(LoadedCert {
        names,
        not_after,
        key: Arc::new(certified),
    })
}

/// The DNS names (subject alternative names; the common name when there are none) and
/// the expiry of a certificate.
fn describe(der: &CertificateDer<'_>) -> Result<(Vec<String>, Option<SystemTime>), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let secs = cert.validity().not_after.timestamp();
    let not_after = u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    Ok((names, not_after))
}

/// Loads and checks every pair of `settings`: what `weir check` runs. Warnings name
/// certificates that expire within [`EXPIRY_WARNING`].
pub fn check(settings: &TlsSettings) -> Result<Vec<String>, TlsError> {
    let mut warnings = Vec::new();
    for pair in &settings.certificates {
        let cert = load_pair(pair)?;
        if let Some(left) = cert.expires_in() {
            if left < EXPIRY_WARNING {
                warnings.push(format!(
                    "{}: the certificate expires in {} days",
                    pair.cert_file.display(),
                    left.as_secs() / 86_400
                ));
            }
        }
    }
    Ok(warnings)
}

/// Picks the certificate for a handshake by SNI; the first one is the default.
#[derive(Debug)]
struct SniResolver {
    certs: ArcSwap<Vec<LoadedCert>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        let chosen = hello
            .server_name()
            .and_then(|sni| certs.iter().find(|c| c.serves(sni)))
            .or_else(|| certs.first());
        chosen.map(|c| c.key.clone())
    }
}

fn server_config(
    resolver: Arc<SniResolver>,
    min_version: TlsVersion,
    http2: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// The proxy port's certificates and TLS configuration, replaceable while serving.
pub struct CertStore {
    resolver: Arc<SniResolver>,
    config: ArcSwap<rustls::ServerConfig>,
    current: ArcSwap<(TlsSettings, bool)>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

fn load_all(settings: &TlsSettings) -> Result<Vec<LoadedCert>, TlsError> {
    settings.certificates.iter().map(load_pair).collect()
}

impl CertStore {
    /// Loads every certificate of `settings`; fails when any pair is unusable.
    pub fn new(settings: &TlsSettings, http2: bool) -> Result<Self, TlsError> {
        let resolver = Arc::new(SniResolver {
            certs: ArcSwap::from_pointee(load_all(settings)?),
        });
        let config = server_config(resolver.clone(), settings.min_version, http2)?;
        let store = Self {
            resolver,
            config: ArcSwap::from_pointee(config),
            current: ArcSwap::from_pointee((settings.clone(), http2)),
        };
        store.warn_expiring();
        Ok(store)
    }

    /// An acceptor with the current configuration (new connections only).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// The settings the store serves now.
    pub fn settings(&self) -> TlsSettings {
        self.current.load().0.clone()
    }

    /// Loads `settings` (new files, another list, another minimum version). All or
    /// nothing: on any error the previous certificates keep serving.
    pub fn reload(&self, settings: &TlsSettings, http2: bool) -> Result<(), TlsError> {
        let certs = load_all(settings)?;
        let same_config = {
            let cur = self.current.load();
            cur.0.min_version == settings.min_version && cur.1 == http2
        };
        if !same_config {
            let config = server_config(self.resolver.clone(), settings.min_version, http2)?;
            self.config.store(Arc::new(config));
        }
        self.resolver.certs.store(Arc::new(certs));
        self.current.store(Arc::new((settings.clone(), http2)));
        self.warn_expiring();
        Ok(())
    }

    fn warn_expiring(&self) {
        for cert in self.resolver.certs.load().iter() {
            if let Some(left) = cert.expires_in().filter(|l| *l < EXPIRY_WARNING) {
                tracing::warn!(
                    names = ?cert.names,
                    days_left = left.as_secs() / 86_400,
                    "a served certificate expires soon"
                );
            }
        }
    }

    /// What the file system says about the certificate files (size, time, inode, through
    /// symlinks), to notice a rotation without reading them.
    pub fn stamp(&self) -> Vec<Option<(u64, Option<SystemTime>, u64)>> {
        use std::os::unix::fs::MetadataExt;
        let settings = self.current.load();
        settings
            .0
            .certificates
            .iter()
            .flat_map(|p| [&p.cert_file, &p.key_file])
            .map(|f| {
                std::fs::metadata(f)
                    .ok()
                    .map(|m| (m.len(), m.modified().ok(), m.ino()))
            })
            .collect()
    }
}

/// How often the certificate files are checked for a rotation.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Watches the certificate files on its own thread and reloads them when they change;
/// stops when `stop` is set.
pub fn watch(
    store: Arc<CertStore>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    on_reload: impl Fn(Result<(), &TlsError>) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weir-tls-watch".into())
        .spawn(move || {
            let mut last = store.stamp();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(WATCH_EVERY);
                let now = store.stamp();
                if now == last {
                    continue;
                }
                let (settings, http2) = {
                    let cur = store.current.load();
                    (cur.0.clone(), cur.1)
                };
                match store.reload(&settings, http2) {
                    Ok(()) => {
                        tracing::info!("TLS certificates reloaded");
                        on_reload(Ok(()));
                        last = now;
                    }
                    Err(e) => {
                        // A half-written rotation fails here and succeeds on a later tick.
                        tracing::error!(error = %e, "TLS certificates not reloaded; the previous ones keep serving");
                        on_reload(Err(&e));
                        last = now;
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(names: &[&str]) -> LoadedCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap()
                .self_signed(&key)
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        load_pair(&CertificatePair {
            cert_file: c,
            key_file: k,
        })
        .unwrap()
    }

    #[test]
    fn names_and_wildcards() {
        let c = loaded(&["api.example.com", "*.shop.example"]);
        assert!(c.serves("api.example.com"));
        assert!(c.serves("API.example.com."));
        assert!(c.serves("eu.shop.example"));
        assert!(!c.serves("a.b.shop.example"), "a wildcard covers one label");
        assert!(!c.serves("shop.example"));
        assert!(!c.serves("other.example.com"));
        assert!(c.expires_in().is_some());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, other.serialize_pem()).unwrap();
        let err = load_pair(&CertificatePair {
            cert_file: c,
            key_file: k,
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let missing = load_pair(&CertificatePair {
            cert_file: dir.path().join("nope.pem"),
            key_file: dir.path().join("nope.key"),
        })
        .unwrap_err();
        assert!(missing.to_string().contains("nope.pem"), "{missing}");
    }
}
