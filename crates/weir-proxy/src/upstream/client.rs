//! Upstream clients. Each worker thread has its own pools, so a request and the connections
//! it uses never leave their thread. Backends that need their own TLS settings or HTTP/2
//! get their own pool, keyed by everything that changes the connection ([`Profile::key`]):
//! two backends share a pool only when a connection made for one would be right for the
//! other.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_rustls::{ConfigBuilderExt, FixedServerNameResolver};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use weir_model::Backend;

use crate::server::tls::{read_chain, read_key, TlsError};
use crate::telemetry::metrics::UpstreamConnections;
use crate::upstream::connector::CountingConnector;
use crate::Body;

/// The pooled upstream client (HTTP/1.1 keep-alive, or HTTP/2; http and https).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<CountingConnector>, Body>;

/// How long a connection attempt may take before the backend counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn http_connector(counters: &UpstreamConnections) -> CountingConnector {
    let mut http = HttpConnector::new();
    // Headers and body go out in separate writes; Nagle would hold the second one back for
    // a delayed ACK (40 ms).
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_keepalive(Some(Duration::from_secs(60)));
    CountingConnector::new(http, counters.clone())
}

/// Builds the default client: public roots, HTTP/1.1. Once per worker, not per request.
pub fn new_client(counters: &UpstreamConnections) -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http_connector(counters));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}

/// A backend's connection settings, compiled when the table is built (files read then).
pub struct Profile {
    /// Identifies the settings and the content of the files they name.
    pub key: u64,
    tls: Arc<rustls::ClientConfig>,
    server_name: Option<ServerName<'static>>,
    http2: bool,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("key", &self.key)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

/// Accepts any certificate: `insecureSkipVerify`. Signatures are still checked, so the
/// handshake is a real one; only the identity is not.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Profile {
    /// The profile of a backend, or `None` when the default client serves it (public roots,
    /// HTTP/1.1).
    pub fn compile(b: &Backend) -> Result<Option<Arc<Profile>>, TlsError> {
        let Some(tls) = b.tls.as_ref() else {
            if !b.http2 {
                return Ok(None);
            }
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?
                .with_webpki_roots()
                .with_no_client_auth();
            return Ok(Some(Arc::new(Profile {
                key: 1,
                tls: Arc::new(config),
                server_name: None,
                http2: true,
            })));
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (b.http2, tls).hash(&mut hasher);
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if tls.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
        } else if let Some(ca) = &tls.ca_file {
            let mut roots = rustls::RootCertStore::empty();
            let certs = read_chain(ca)?;
            for cert in &certs {
                cert.as_ref().hash(&mut hasher);
            }
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::File {
                    path: ca.clone(),
                    message: "holds no usable CA certificate".into(),
                });
            }
            builder.with_root_certificates(roots)
        } else {
            builder.with_webpki_roots()
        };
        let config = match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_chain(cert)?;
                for c in &chain {
                    c.as_ref().hash(&mut hasher);
                }
                let key_der = read_key(key)?;
                key_der.secret_der().hash(&mut hasher);
                builder.with_client_auth_cert(chain, key_der).map_err(|_| {
                    TlsError::KeyMismatch {
                        cert: cert.clone(),
                        key: key.clone(),
                    }
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        let server_name = match &tls.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| TlsError::Config(format!("serverName {name:?}: {e}")))?,
            ),
            None => None,
        };
        Ok(Some(Arc::new(Profile {
            // Never 0 or 1: those are the default and the plain HTTP/2 profile.
            key: hasher.finish() | 2,
            tls: Arc::new(config),
            server_name,
            http2: b.http2,
        })))
    }

    fn client(&self, counters: &UpstreamConnections) -> HttpClient {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.tls).clone())
            .https_or_http();
        let builder = match &self.server_name {
            Some(name) => {
                builder.with_server_name_resolver(FixedServerNameResolver::new(name.clone()))
            }
            None => builder,
        };
        let https = if self.http2 {
            builder
                .enable_http2()
                .wrap_connector(http_connector(counters))
        } else {
            builder
                .enable_http1()
                .wrap_connector(http_connector(counters))
        };
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024);
        if self.http2 {
            // Prior knowledge on http; on https ALPN offers only h2.
            client.http2_only(true);
        }
        client.build(https)
    }
}

/// One worker's clients: the default pool and one per backend profile.
pub struct Clients {
    default: HttpClient,
    by_profile: Mutex<HashMap<u64, HttpClient>>,
    counters: UpstreamConnections,
}

impl Default for Clients {
    /// Clients whose connections are counted nowhere.
    fn default() -> Self {
        Self::new(UpstreamConnections::detached())
    }
}

impl Clients {
    /// Clients whose connections are counted into `counters`.
    pub fn new(counters: UpstreamConnections) -> Self {
        Self {
            default: new_client(&counters),
            by_profile: Mutex::new(HashMap::new()),
            counters,
        }
    }

    /// The client for a backend with `profile`.
    pub fn get(&self, profile: Option<&Arc<Profile>>) -> HttpClient {
        let Some(p) = profile else {
            return self.default.clone();
        };
        // Only this worker's thread takes the lock: it is never contended.
        let mut map = match self.by_profile.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(p.key)
            .or_insert_with(|| p.client(&self.counters))
            .clone()
    }
}
