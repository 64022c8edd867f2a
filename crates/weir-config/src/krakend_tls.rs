//! KrakenD's edge settings mapped onto Weir's: the listener's `tls` and `use_h2c`, and the
//! TLS of backend connections (`client_tls`, service-wide, or per backend inside the
//! Enterprise `backend/http/client` namespace).
//!
//! | KrakenD | Weir |
//! |---|---|
//! | `tls.keys[]` (`public_key`, `private_key`), then `tls.public_key`/`private_key` | `tls.certificates[]` (`certFile`, `keyFile`), in that order |
//! | `tls.min_version` (`TLS12`, `TLS13`; default `TLS13`) | `tls.minVersion` (`"1.2"`, `"1.3"`; absent becomes `"1.3"`) |
//! | `tls.disabled: true` | no `tls` (plain HTTP, as KrakenD) |
//! | `use_h2c` (or the deprecated `router.use_h2c`) | `http2: true`; without it a plain listener is `http2: false` |
//! | `client_tls.allow_insecure_connections` | backend `tls.insecureSkipVerify` |
//! | `client_tls.ca_certs` (first file) | backend `tls.caFile` |
//! | `client_tls.client_certs[0]` (`certificate`, `private_key`) | backend `tls.certFile`, `tls.keyFile` |
//! | `client_tls.min_version: TLS12` | nothing to set: Weir's backend connections speak TLS 1.2 and 1.3 |
//!
//! File paths are kept as written: KrakenD reads relative paths from its working directory,
//! and so does Weir (`jwk_local_path` is carried over the same way).
//!
//! `tls.enable_mtls` is refused: KrakenD then demands a client certificate on every
//! endpoint, and serving the file without that check would let any client in. Anything
//! else Weir does not implement is named (cipher suites, curves, a maximum version).

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use weir_model::spec::BackendTlsSpec;

use super::settings::{CertificateSpec, TlsSpec};

/// Problems, as `(field inside the mapped object, message)`.
pub type FieldErrors = Vec<(String, String)>;

/// What a mapping could not carry over exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leftovers {
    /// Options Weir does not implement, each named with its scope (`tls option "max_version"`).
    pub unsupported: Vec<String>,
    /// Differences in meaning worth telling the user.
    pub notes: Vec<String>,
}

/// The listener's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listener {
    /// TLS termination (absent: plain HTTP).
    pub tls: Option<TlsSpec>,
    /// Weir's `http2` setting (absent: the default, on).
    pub http2: Option<bool>,
    /// What did not map.
    pub left: Leftovers,
}

/// A `client_tls` object mapped onto a backend's `tls`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientTls {
    /// The backend TLS options.
    pub tls: BackendTlsSpec,
    /// `disable_system_ca_pool` without `ca_certs` (and verification on): KrakenD then
    /// trusts no certificate at all, which Weir cannot express (without `caFile` it trusts
    /// the public roots); the caller refuses it when an https backend would use it.
    pub trusts_nothing: bool,
    /// What did not map.
    pub left: Leftovers,
}

#[derive(Deserialize)]
struct KKeyPair {
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KTls {
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    keys: Vec<KKeyPair>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<Value>,
    #[serde(default)]
    curve_preferences: Vec<Value>,
    #[serde(default)]
    prefer_server_cipher_suites: bool,
    #[serde(default)]
    enable_mtls: bool,
    // Read by KrakenD only for mTLS, which is refused; otherwise inert.
    #[serde(default, rename = "ca_certs")]
    _ca_certs: IgnoredAny,
    #[serde(default, rename = "disable_system_ca_pool")]
    _disable_system_ca_pool: IgnoredAny,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KClientCert {
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct KClientTls {
    #[serde(default)]
    allow_insecure_connections: bool,
    #[serde(default)]
    ca_certs: Vec<String>,
    #[serde(default)]
    disable_system_ca_pool: bool,
    #[serde(default)]
    client_certs: Vec<KClientCert>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Vec<Value>,
    #[serde(default)]
    curve_preferences: Vec<Value>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// A KrakenD TLS version name (Go's `crypto/tls` constants as lura spells them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// SSL 3.0, TLS 1.0 or 1.1: below what Weir (rustls) speaks.
    Legacy,
    V1_2,
    V1_3,
}

const VERSIONS: &str = "SSL3.0, TLS10, TLS11, TLS12, TLS13";

fn version(raw: &str) -> Result<Version, String> {
    match raw {
        "SSL3.0" | "TLS10" | "TLS11" => Ok(Version::Legacy),
        "TLS12" => Ok(Version::V1_2),
        "TLS13" => Ok(Version::V1_3),
        // KrakenD would silently fall back to TLS 1.3; a typo deserves to be seen.
        other => Err(format!(
            "{other:?} is not a KrakenD TLS version ({VERSIONS})"
        )),
    }
}

/// Keys KrakenD's schema lets through as comments (`@comment`, `$ref`, `_x`, `#x`).
fn inert(key: &str) -> bool {
    key.starts_with(['@', '$', '_', '#'])
}

fn unknown(scope: &str, other: &BTreeMap<String, Value>, left: &mut Leftovers) {
    for key in other.keys().filter(|k| !inert(k)) {
        left.unsupported.push(format!("{scope} option \"{key}\""));
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, FieldErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        vec![(field, e.into_inner().to_string())]
    })
}

fn given(text: &Option<String>) -> Option<String> {
    text.as_ref().filter(|t| !t.is_empty()).cloned()
}

/// Maps the service-level `tls` (absent or `null`: plain HTTP) and `use_h2c`.
pub fn listener(tls: Option<&Value>, use_h2c: bool) -> Result<Listener, FieldErrors> {
    let mut left = Leftovers::default();
    let tls = match tls.filter(|v| !v.is_null()) {
        None => None,
        Some(value) => server_tls(parse(value)?, &mut left)?,
    };
    // Go's server negotiates h2 by ALPN whenever it terminates TLS; on a plain listener
    // KrakenD speaks HTTP/2 only when use_h2c wraps the handler (h2c).
    let http2 = if use_h2c {
        Some(true)
    } else if tls.is_some() {
        None
    } else {
        Some(false)
    };
    Ok(Listener { tls, http2, left })
}

fn server_tls(t: KTls, left: &mut Leftovers) -> Result<Option<TlsSpec>, FieldErrors> {
    if t.disabled {
        // KrakenD reads nothing else then, mTLS included: it serves plain HTTP.
        return Ok(None);
    }
    let mut errors = Vec::new();
    if t.enable_mtls {
        errors.push((
            "enable_mtls".to_string(),
            "mutual TLS (a client certificate demanded on every endpoint) is not implemented \
             by Weir, and serving this file without it would let any client in; terminate \
             mTLS in front of Weir and remove enable_mtls to import it"
                .to_string(),
        ));
    }
    // lura appends the deprecated top-level pair after `keys`; the first is the default.
    let mut pairs: Vec<(String, &Option<String>, &Option<String>)> = t
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("keys[{i}]."), &k.public_key, &k.private_key))
        .collect();
    if t.public_key.is_some() || t.private_key.is_some() {
        pairs.push((String::new(), &t.public_key, &t.private_key));
    }
    let mut certificates = Vec::new();
    for (at, public, private) in pairs {
        match (given(public), given(private)) {
            (Some(cert_file), Some(key_file)) => certificates.push(CertificateSpec {
                cert_file,
                key_file,
            }),
            (None, _) => errors.push((format!("{at}public_key"), "is required".into())),
            (_, None) => errors.push((format!("{at}private_key"), "is required".into())),
        }
    }
    if t.keys.is_empty() && t.public_key.is_none() && t.private_key.is_none() {
        errors.push((
            "keys".into(),
            "TLS is on but names no certificate: add keys [{public_key, private_key}] \
             (or disabled: true)"
                .into(),
        ));
    }
    for (i, k) in t.keys.iter().enumerate() {
        unknown(&format!("tls.keys[{i}]"), &k.other, left);
    }
    let min_version = match t.min_version.as_deref().map(version) {
        // KrakenD's default is TLS 1.3 only; Weir's would be 1.2.
        None | Some(Ok(Version::V1_3)) => Some("1.3".to_string()),
        Some(Ok(Version::V1_2)) => Some("1.2".to_string()),
        Some(Ok(Version::Legacy)) => {
            left.notes.push(format!(
                "tls.min_version {}: Weir accepts TLS 1.2 at the lowest, so clients that only \
                 speak older versions cannot connect",
                t.min_version.as_deref().unwrap_or_default()
            ));
            Some("1.2".to_string())
        }
        Some(Err(message)) => {
            errors.push(("min_version".into(), message));
            None
        }
    };
    match t.max_version.as_deref().map(version) {
        None | Some(Ok(Version::V1_3)) => {}
        Some(Ok(_)) => left
            .unsupported
            .push("tls option \"max_version\" (Weir also offers TLS 1.3)".into()),
        Some(Err(message)) => errors.push(("max_version".into(), message)),
    }
    if !t.cipher_suites.is_empty() {
        left.unsupported
            .push("tls option \"cipher_suites\" (Weir offers rustls's safe defaults)".into());
    }
    if !t.curve_preferences.is_empty() {
        left.unsupported
            .push("tls option \"curve_preferences\" (Weir offers rustls's defaults)".into());
    }
    if t.prefer_server_cipher_suites {
        left.unsupported
            .push("tls option \"prefer_server_cipher_suites\"".into());
    }
    unknown("tls", &t.other, left);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Some(TlsSpec {
        certificates,
        min_version,
        port: None,
        redirect_http: None,
    }))
}

/// Maps a `client_tls` object. `scope` names it in warnings (`client_tls`, or
/// `backend/http/client client_tls`); `allow_insecure` is the deprecated service-level
/// `allow_insecure_connections`, which lura folds into `client_tls`.
pub fn client_tls(
    value: &Value,
    scope: &str,
    allow_insecure: bool,
) -> Result<ClientTls, FieldErrors> {
    let c: KClientTls = parse(value)?;
    let mut left = Leftovers::default();
    let mut errors = Vec::new();
    let insecure = c.allow_insecure_connections || allow_insecure;
    let ca_certs: Vec<&String> = c.ca_certs.iter().filter(|p| !p.is_empty()).collect();
    let ca_file = ca_certs.first().map(|p| p.to_string());
    if ca_certs.len() > 1 {
        left.notes.push(format!(
            "{scope}.ca_certs lists {} files and Weir reads one (caFile): only {} is trusted, \
             so backends signed by the others fail verification; concatenate the PEM files \
             into one and list that",
            ca_certs.len(),
            ca_certs[0]
        ));
    }
    if let Some(first) = &ca_file {
        if !c.disable_system_ca_pool && !insecure {
            left.notes.push(format!(
                "{scope}.ca_certs: KrakenD adds {first} to the system's roots, Weir trusts only \
                 that file for https backends, so a backend with a publicly trusted \
                 certificate fails verification unless its CA is in the file"
            ));
        }
    }
    let trusts_nothing = c.disable_system_ca_pool && ca_file.is_none() && !insecure;
    let mut cert_file = None;
    let mut key_file = None;
    for (i, cc) in c.client_certs.iter().enumerate() {
        match (given(&cc.certificate), given(&cc.private_key)) {
            (Some(cert), Some(key)) if i == 0 => {
                cert_file = Some(cert);
                key_file = Some(key);
            }
            (Some(_), Some(_)) => {}
            (None, _) => errors.push((
                format!("client_certs[{i}].certificate"),
                "is required".into(),
            )),
            (_, None) => errors.push((
                format!("client_certs[{i}].private_key"),
                "is required".into(),
            )),
        }
        unknown(&format!("{scope}.client_certs[{i}]"), &cc.other, &mut left);
    }
    if c.client_certs.len() > 1 {
        left.notes.push(format!(
            "{scope}.client_certs lists {} certificates and Weir presents one: only the first \
             is offered to backends",
            c.client_certs.len()
        ));
    }
    match c.min_version.as_deref().map(version) {
        None | Some(Ok(Version::V1_2)) => {}
        Some(Ok(Version::V1_3)) => left.unsupported.push(format!(
            "{scope} option \"min_version\" (Weir's backend connections speak TLS 1.2 and 1.3)"
        )),
        Some(Ok(Version::Legacy)) => left.notes.push(format!(
            "{scope}.min_version {}: Weir's backend connections need TLS 1.2 at least",
            c.min_version.as_deref().unwrap_or_default()
        )),
        Some(Err(message)) => errors.push(("min_version".into(), message)),
    }
    match c.max_version.as_deref().map(version) {
        None | Some(Ok(Version::V1_3)) => {}
        Some(Ok(_)) => left.unsupported.push(format!(
            "{scope} option \"max_version\" (Weir's backend connections also offer TLS 1.3)"
        )),
        Some(Err(message)) => errors.push(("max_version".into(), message)),
    }
    if !c.cipher_suites.is_empty() {
        left.unsupported
            .push(format!("{scope} option \"cipher_suites\""));
    }
    if !c.curve_preferences.is_empty() {
        left.unsupported
            .push(format!("{scope} option \"curve_preferences\""));
    }
    unknown(scope, &c.other, &mut left);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ClientTls {
        tls: BackendTlsSpec {
            ca_file,
            server_name: None,
            cert_file,
            key_file,
            insecure_skip_verify: insecure,
        },
        trusts_nothing,
        left,
    })
}

/// Whether a backend with these hosts connects over TLS.
pub fn uses_tls(hosts: &[String]) -> bool {
    hosts.iter().any(|h| {
        h.get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    })
}
