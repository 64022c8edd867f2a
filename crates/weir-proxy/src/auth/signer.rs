//! Signing fields of an answer as JWTs (`tokenSigner`, KrakenD's `auth/signer`): a token
//! endpoint whose backend returns the claims gets them back signed. Each field named in
//! `keysToSign` that the answer has becomes the compact JWS of its JSON value.
//!
//! The token is built here rather than by `jsonwebtoken::encode`, so its bytes are what
//! KrakenD (go-jose) produces for the same input: the header's members in name order
//! (`alg`, `kid`, `typ`) and the payload with object keys sorted, as Go marshals a map.
//! Only the signature goes through `jsonwebtoken` (and so through *ring*,
//! [`super::crypto`]).

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKeyKind, EncodingKey};
use serde_json::{Map, Value};

use weir_model::{SignerKey, TokenSigner};

use super::jwks::{JwksCache, Miss};
use super::jwt::algorithm;
use super::AuthRegistry;

/// Where the signing key is, ready.
enum Key {
    /// The `oct` key `kid` of a cached key set.
    Jwks(Arc<JwksCache>),
    /// A private key read when the table was built.
    Pem(EncodingKey),
}

/// A compiled `tokenSigner`.
pub struct SignerPlan {
    keys_to_sign: Vec<String>,
    alg: Algorithm,
    kid: Option<String>,
    /// `base64url(header) + "."`, the same for every token.
    header_prefix: String,
    key: Key,
}

/// Why an answer could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key set could not be fetched yet, or has no `oct` key `kid`.
    #[error("no signing key: {0}")]
    NoKey(&'static str),
    /// The endpoint timeout passed while the key set was being fetched.
    #[error("the endpoint timeout passed before a signing key could be had")]
    Timeout,
    /// The signature itself failed.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl SignerPlan {
    /// Compiles a signer: a PEM key is read and parsed now, so a bad file refuses the
    /// configuration (field and reason) instead of failing requests.
    pub fn compile(
        signer: &TokenSigner,
        registry: &AuthRegistry,
    ) -> Result<Self, (String, String)> {
        super::crypto::install();
        let alg = algorithm(signer.algorithm);
        let key = match &signer.key {
            SignerKey::Jwks { source, cache_ttl } => Key::Jwks(registry.jwks(source, *cache_ttl)),
            SignerKey::Pem(path) => {
                Key::Pem(pem_key(path, alg).map_err(|m| ("tokenSigner.keyFile".to_string(), m))?)
            }
        };
        let mut header = Map::new();
        header.insert("alg".into(), Value::from(format!("{alg:?}")));
        if let Some(kid) = &signer.kid {
            header.insert("kid".into(), Value::from(kid.as_str()));
        }
        header.insert("typ".into(), Value::from("JWT"));
        let header = Value::Object(header).to_string();
        Ok(Self {
            keys_to_sign: signer.keys_to_sign.clone(),
            alg,
            kid: signer.kid.clone(),
            header_prefix: format!("{}.", URL_SAFE_NO_PAD.encode(header)),
            key,
        })
    }

    /// Replaces every field of `data` named in `keysToSign` by its signed token.
    pub async fn sign(&self, data: &mut Map<String, Value>) -> Result<(), SignError> {
        if !self.keys_to_sign.iter().any(|k| data.contains_key(k)) {
            return Ok(());
        }
        let fetched;
        let key = match &self.key {
            Key::Pem(k) => k,
            Key::Jwks(cache) => {
                let (loaded, index) =
                    cache
                        .key_for(self.kid.as_deref(), self.alg)
                        .await
                        .map_err(|m| match m {
                            Miss::NoKeys => SignError::NoKey("the key set could not be fetched"),
                            Miss::UnknownKid => SignError::NoKey("the key set has no such kid"),
                        })?;
                let secret = loaded.key(index).and_then(|k| match k.kind() {
                    DecodingKeyKind::SecretOrDer(s) if k.family() == AlgorithmFamily::Hmac => {
                        Some(s.to_vec())
                    }
                    _ => None,
                });
                fetched = EncodingKey::from_secret(
                    &secret.ok_or(SignError::NoKey("the key is not an oct key"))?,
                )?;
                &fetched
            }
        };
        for name in &self.keys_to_sign {
            if let Some(value) = data.get_mut(name) {
                *value = Value::from(self.token(value, key)?);
            }
        }
        Ok(())
    }

    fn token(&self, claims: &Value, key: &EncodingKey) -> Result<String, SignError> {
        // serde_json's maps are ordered by key, as Go's encoding/json writes a map.
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() + 90);
        token.push_str(&self.header_prefix);
        token.push_str(&payload);
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), key, self.alg)?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}

/// Reads a PEM private key for `alg` (PKCS#8; PKCS#1 too for RSA).
fn pem_key(path: &Path, alg: Algorithm) -> Result<EncodingKey, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivateKeyDer;
    let der = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: no PEM private key: {e}", path.display()))?;
    let bytes = der.secret_der();
    let key = match alg.family() {
        AlgorithmFamily::Rsa => EncodingKey::from_rsa_der(bytes),
        AlgorithmFamily::Ec => EncodingKey::from_ec_der(bytes),
        AlgorithmFamily::Ed => EncodingKey::from_ed_der(bytes),
        _ => return Err(format!("{alg:?} takes its key from a key set")),
    };
    // Sign once now: a key of the wrong kind or curve fails here, not on a request.
    jsonwebtoken::crypto::sign(b"check", &key, alg)
        .map_err(|e| format!("{}: cannot sign {alg:?} with this key: {e}", path.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_model::{JwksSource, JwtAlgorithm};

    /// The token KrakenD's conformance spec jwt_4 expects for these claims, signed with
    /// the `sim2` key of the conformance backend's symmetric key set.
    #[tokio::test]
    async fn tokens_are_byte_for_byte_what_krakend_signs() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            r#"{"keys":[{"kty":"oct","alg":"HS256","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow","kid":"sim2"}]}"#,
        )
        .unwrap();
        let plan = SignerPlan::compile(
            &TokenSigner {
                keys_to_sign: vec!["access_token".into()],
                algorithm: JwtAlgorithm::Hs256,
                kid: Some("sim2".into()),
                key: SignerKey::Jwks {
                    source: JwksSource::File(jwks),
                    cache_ttl: std::time::Duration::from_secs(60),
                },
            },
            &AuthRegistry::default(),
        )
        .ok()
        .unwrap();
        let mut data: Map<String, Value> = serde_json::from_str(
            r#"{"access_token":{"aud":"http://api.example.com","iss":"https://krakend.io","sub":"1234567890qwertyuio","jti":"mnb23vcsrt756yuiomnbvcx98ertyuiop","roles":["role_y"],"exp":1735689600},"other":1}"#,
        )
        .unwrap();
        plan.sign(&mut data).await.unwrap();
        assert_eq!(
            data["access_token"],
            "eyJhbGciOiJIUzI1NiIsImtpZCI6InNpbTIiLCJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwOi8vYXBpLmV4YW1wbGUuY29tIiwiZXhwIjoxNzM1Njg5NjAwLCJpc3MiOiJodHRwczovL2tyYWtlbmQuaW8iLCJqdGkiOiJtbmIyM3Zjc3J0NzU2eXVpb21uYnZjeDk4ZXJ0eXVpb3AiLCJyb2xlcyI6WyJyb2xlX3kiXSwic3ViIjoiMTIzNDU2Nzg5MHF3ZXJ0eXVpbyJ9.zkfOW6Fsd0DzhYTXjc_SA3oOv2mG76JZTAvRaVibPNA"
        );
        assert_eq!(data["other"], 1, "fields not listed stay as they are");
    }
}
