//! The signature checks behind `jsonwebtoken`, done by *ring*. `jsonwebtoken` parses tokens,
//! key sets and claims and asks a process-wide `CryptoProvider` for the cryptography; its
//! own providers bring either aws-lc (a C library and a long build) or RustCrypto's `rsa`
//! (an open timing advisory). *ring* is already in the tree through rustls, so Weir plugs
//! it in here: one crypto library for TLS and tokens.
//!
//! Every verifier refuses a key of another family than its algorithm's (an HMAC check with
//! an RSA public key as the secret is the classic algorithm confusion). Signing is provided
//! too (tests mint tokens with it); the gateway itself never signs.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature as sig;
use ring::{digest, hmac};

/// The provider: *ring* for every algorithm Weir accepts.
pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest,
    },
};

/// Installs [`RING_PROVIDER`] as `jsonwebtoken`'s provider (once per process; later calls
/// do nothing). Called before any token is checked.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is installed already; then that one serves.
        let _ = RING_PROVIDER.install_default();
    });
}

fn unsupported() -> Error {
    ErrorKind::UnsupportedAlgorithm.into()
}

fn wrong_key() -> Error {
    ErrorKind::InvalidKeyFormat.into()
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(unsupported()),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}

/// How one algorithm checks a signature with *ring*.
#[derive(Clone, Copy)]
enum Check {
    Hmac(hmac::Algorithm),
    Rsa(&'static sig::RsaParameters),
    /// ECDSA and Ed25519: the key is the raw public point.
    Raw(&'static dyn sig::VerificationAlgorithm),
}

fn check_for(alg: Algorithm) -> Option<(AlgorithmFamily, Check)> {
    use AlgorithmFamily as F;
    Some(match alg {
        Algorithm::HS256 => (F::Hmac, Check::Hmac(hmac::HMAC_SHA256)),
        Algorithm::HS384 => (F::Hmac, Check::Hmac(hmac::HMAC_SHA384)),
        Algorithm::HS512 => (F::Hmac, Check::Hmac(hmac::HMAC_SHA512)),
        Algorithm::RS256 => (F::Rsa, Check::Rsa(&sig::RSA_PKCS1_2048_8192_SHA256)),
        Algorithm::RS384 => (F::Rsa, Check::Rsa(&sig::RSA_PKCS1_2048_8192_SHA384)),
        Algorithm::RS512 => (F::Rsa, Check::Rsa(&sig::RSA_PKCS1_2048_8192_SHA512)),
        Algorithm::PS256 => (F::Rsa, Check::Rsa(&sig::RSA_PSS_2048_8192_SHA256)),
        Algorithm::PS384 => (F::Rsa, Check::Rsa(&sig::RSA_PSS_2048_8192_SHA384)),
        Algorithm::PS512 => (F::Rsa, Check::Rsa(&sig::RSA_PSS_2048_8192_SHA512)),
        Algorithm::ES256 => (F::Ec, Check::Raw(&sig::ECDSA_P256_SHA256_FIXED)),
        Algorithm::ES384 => (F::Ec, Check::Raw(&sig::ECDSA_P384_SHA384_FIXED)),
        Algorithm::EdDSA => (F::Ed, Check::Raw(&sig::ED25519)),
        _ => return None,
    })
}

struct RingVerifier {
    alg: Algorithm,
    check: Check,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let failed = |_| signature::Error::new();
        match (self.check, self.key.kind()) {
            (Check::Hmac(alg), DecodingKeyKind::SecretOrDer(secret)) => {
                // Constant time, inside ring.
                hmac::verify(&hmac::Key::new(alg, secret), msg, signature).map_err(failed)
            }
            (Check::Rsa(params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                sig::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, signature)
                    .map_err(failed)
            }
            (Check::Rsa(params), DecodingKeyKind::SecretOrDer(der)) => {
                sig::UnparsedPublicKey::new(params, der)
                    .verify(msg, signature)
                    .map_err(failed)
            }
            (Check::Raw(alg), DecodingKeyKind::SecretOrDer(point)) => {
                sig::UnparsedPublicKey::new(alg, point)
                    .verify(msg, signature)
                    .map_err(failed)
            }
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let (family, check) = check_for(*alg).ok_or_else(unsupported)?;
    if key.family() != family {
        return Err(wrong_key());
    }
    Ok(Box::new(RingVerifier {
        alg: *alg,
        check,
        key: key.clone(),
    }))
}

enum SigningKey {
    Hmac(hmac::Key),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ecdsa(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

struct RingSigner {
    alg: Algorithm,
    key: SigningKey,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match &self.key {
            SigningKey::Hmac(k) => Ok(hmac::sign(k, msg).as_ref().to_vec()),
            SigningKey::Rsa(pair, encoding) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &rng, msg, &mut out)
                    .map_err(|_| signature::Error::new())?;
                Ok(out)
            }
            SigningKey::Ecdsa(pair) => pair
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            SigningKey::Ed(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Signing keys: HMAC secrets, RSA keys as PKCS#1 or PKCS#8 DER, EC and Ed25519 keys as
/// PKCS#8 DER.
fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    let (family, check) = check_for(*alg).ok_or_else(unsupported)?;
    if key.family() != family {
        return Err(wrong_key());
    }
    let bytes = key.as_bytes();
    let rng = SystemRandom::new();
    let signing = match (check, alg) {
        (Check::Hmac(h), _) => SigningKey::Hmac(hmac::Key::new(h, bytes)),
        (Check::Rsa(_), _) => {
            let pair = sig::RsaKeyPair::from_der(bytes)
                .or_else(|_| sig::RsaKeyPair::from_pkcs8(bytes))
                .map_err(|e| Error::from(ErrorKind::InvalidRsaKey(e.to_string())))?;
            let encoding: &'static dyn sig::RsaEncoding = match alg {
                Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
                Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                _ => &sig::RSA_PSS_SHA512,
            };
            SigningKey::Rsa(pair, encoding)
        }
        (Check::Raw(_), Algorithm::EdDSA) => SigningKey::Ed(
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(bytes)
                .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?,
        ),
        (Check::Raw(_), _) => {
            let curve = if *alg == Algorithm::ES384 {
                &sig::ECDSA_P384_SHA384_FIXED_SIGNING
            } else {
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING
            };
            SigningKey::Ecdsa(
                sig::EcdsaKeyPair::from_pkcs8(curve, bytes, &rng)
                    .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?,
            )
        }
    };
    Ok(Box::new(RingSigner {
        alg: *alg,
        key: signing,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;

    fn round_trip(alg: Algorithm, enc: &EncodingKey, dec: &DecodingKey) {
        install();
        let signer = new_signer(&alg, enc).unwrap();
        let s = signer.try_sign(b"msg").unwrap();
        let v = new_verifier(&alg, dec).unwrap();
        assert!(v.verify(b"msg", &s).is_ok(), "{alg:?}");
        assert!(v.verify(b"other", &s).is_err(), "{alg:?}");
    }

    #[test]
    fn hmac_ec_and_ed_sign_and_verify() {
        let rng = SystemRandom::new();
        round_trip(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"secret").unwrap(),
            &DecodingKey::from_secret(b"secret").unwrap(),
        );
        let pkcs8 =
            sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = sig::EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        round_trip(
            Algorithm::ES256,
            &EncodingKey::from_ec_der(pkcs8.as_ref()),
            &DecodingKey::from_ec_der(pair.public_key().as_ref()),
        );
        let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        round_trip(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_der(pkcs8.as_ref()),
            &DecodingKey::from_ed_der(pair.public_key().as_ref()),
        );
    }

    #[test]
    fn a_key_of_another_family_is_refused() {
        let rng = SystemRandom::new();
        let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        // The public key bytes as an HMAC secret: the verifier for HS256 must not take an
        // Ed25519 key, and an HS256 verifier never gets built from it.
        let ed = DecodingKey::from_ed_der(pair.public_key().as_ref());
        assert!(new_verifier(&Algorithm::HS256, &ed).is_err());
        let secret = DecodingKey::from_secret(b"k").unwrap();
        assert!(new_verifier(&Algorithm::RS256, &secret).is_err());
        assert!(new_verifier(&Algorithm::EdDSA, &secret).is_err());
    }
}
