//! Authentication through real sockets: tokens minted here (RSA, ECDSA, Ed25519, HMAC keys
//! generated per run) against a loopback JWKS server, API keys from a watched file. Every
//! row of the answers table in docs/configuration.md ("Authentication"), rotation, an identity provider that is down, algorithm
//! confusion, `none`, nested roles, scopes, cookies, claims sent to backends.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use crate::support::{self, backend, gateway, json_backend, reply, send, Backend, Gw, Resp};

// ------------------------------------------------------------------ keys and tokens

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One RSA key per test process (generating it is the slow part).
fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap())
}

/// A signing key with its public JWK.
struct Signing {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

fn rsa(kid: &str, alg: Algorithm) -> Signing {
    let k = rsa_key();
    let der = k.to_pkcs1_der().unwrap();
    Signing {
        alg,
        kid: kid.into(),
        key: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({"kty": "RSA", "kid": kid, "n": b64(&k.n().to_bytes_be()), "e": b64(&k.e().to_bytes_be())}),
    }
}

fn ec(kid: &str) -> Signing {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    Signing {
        alg: Algorithm::ES256,
        kid: kid.into(),
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
    }
}

fn ed(kid: &str) -> Signing {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    Signing {
        alg: Algorithm::EdDSA,
        kid: kid.into(),
        key: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key().as_ref())}),
    }
}

fn hmac(kid: &str, secret: &[u8]) -> Signing {
    Signing {
        alg: Algorithm::HS256,
        kid: kid.into(),
        key: EncodingKey::from_secret(secret).unwrap(),
        jwk: json!({"kty": "oct", "kid": kid, "k": b64(secret)}),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims valid for the test issuer and audience, with `extra` merged over them.
fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": "https://idp.test",
        "aud": "api",
        "sub": "alice",
        "exp": now() + 3600,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn token(s: &Signing, claims: &Value) -> String {
    weir::proxy::auth::crypto::install();
    let mut h = Header::new(s.alg);
    h.kid = Some(s.kid.clone());
    jsonwebtoken::encode(&h, claims, &s.key).unwrap()
}

fn jwks(keys: &[&Signing]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

// ------------------------------------------------------------------ the identity provider

/// A loopback JWKS server: answers the current set, or 503 while it is down.
struct Idp {
    server: Backend,
    set: Arc<Mutex<Option<String>>>,
}

impl Idp {
    async fn start(set: Option<String>) -> Self {
        let state = Arc::new(Mutex::new(set));
        let s = state.clone();
        let server = backend(move |_| {
            let current = s.lock().unwrap().clone();
            async move {
                match current {
                    Some(body) => reply(200, "application/json", body),
                    None => reply(503, "text/plain", "down"),
                }
            }
        })
        .await;
        Self { server, set: state }
    }

    fn url(&self) -> String {
        format!("{}/jwks", self.server.url())
    }

    fn serve(&self, set: Option<String>) {
        *self.set.lock().unwrap() = set;
    }

    fn fetches(&self) -> usize {
        self.server.hits()
    }
}

async fn bearer(url: &str, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    send("GET", url, &[("authorization", &auth)], Bytes::new()).await
}

/// `weir_auth_rejections_total` for one endpoint and reason.
fn rejections(gw: &Gw, endpoint: &str, reason: &str) -> u64 {
    let text = gw.gw.handle.shared().metrics().render();
    let needle =
        format!("weir_auth_rejections_total{{endpoint=\"{endpoint}\",reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Retries `request` until `ok` holds (a reload, a refresh, a retry happened), for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut request: F, ok: impl Fn(&Resp) -> bool) -> Resp
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Resp>,
{
    for _ in 0..300 {
        let r = request().await;
        if ok(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 15 s");
}

fn jwt_yaml(idp: &Idp, extra: &str) -> String {
    format!(
        "        jwt:\n          jwksUrl: {}\n          allowHttp: true\n          issuer: https://idp.test\n          audience: [api]\n{extra}",
        idp.url()
    )
}

// ------------------------------------------------------------------ the answers table

#[tokio::test]
async fn every_row_of_the_answers_table() {
    let good = rsa("r1", Algorithm::RS256);
    let idp = Idp::start(Some(jwks(&[&good]))).await;
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let auth = jwt_yaml(&idp, "          algorithms: [RS256]\n");
    let admin = jwt_yaml(
        &idp,
        "          algorithms: [RS256]\n          roles: [admin]\n",
    );
    let gw = gateway(&format!(
        "endpoints:\n\
         \x20 - path: /open\n    auth:\n{auth}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /admin\n    auth:\n{admin}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /forward\n    inputHeaders: [Authorization]\n    auth:\n{auth}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n",
        b = b.url()
    ))
    .await;
    let open = gw.url("/open");

    let ok = bearer(&open, &token(&good, &claims(json!({})))).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(b.hits(), 1);
    assert!(
        b.requests()[0].header("authorization").is_none(),
        "the token is not forwarded without inputHeaders naming Authorization"
    );

    // 401s: each with WWW-Authenticate and an empty body, none reaching the backend.
    let valid = token(&good, &claims(json!({})));
    let (head, rest) = valid.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged_payload = b64(claims(json!({"sub": "mallory"})).to_string().as_bytes());
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing"),
        ("not a JWT", Some("a.bad.token".into()), "malformed"),
        (
            "bad signature",
            Some(format!("{head}.{forged_payload}.{sig}")),
            "signature",
        ),
        (
            "unknown kid",
            Some(token(&rsa("other", Algorithm::RS256), &claims(json!({})))),
            "unknown_key",
        ),
        (
            "expired",
            Some(token(&good, &claims(json!({"exp": now() - 60})))),
            "expired",
        ),
        (
            "not valid yet",
            Some(token(&good, &claims(json!({"nbf": now() + 600})))),
            "expired",
        ),
        (
            "no exp",
            Some(token(&good, &claims(json!({"exp": null})))),
            "expired",
        ),
        (
            "wrong issuer",
            Some(token(&good, &claims(json!({"iss": "https://evil.test"})))),
            "issuer",
        ),
        (
            "no issuer",
            Some(token(&good, &claims(json!({"iss": null})))),
            "issuer",
        ),
        (
            "wrong audience",
            Some(token(&good, &claims(json!({"aud": ["other"]})))),
            "audience",
        ),
    ];
    for (what, tok, reason) in &cases {
        let r = match tok {
            Some(t) => bearer(&open, t).await,
            None => support::get(&open).await,
        };
        assert_eq!(r.status, 401, "{what}");
        assert!(r.body.is_empty(), "{what}: {}", r.text());
        assert!(r.header("content-type").is_none(), "{what}");
        let challenge = r.header("www-authenticate").unwrap_or("");
        assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
        assert!(
            !challenge.contains("error_description"),
            "{what}: no description without returnErrorMessage"
        );
        assert!(rejections(&gw, "/open", reason) >= 1, "{what}: {reason}");
    }
    let r = support::send(
        "GET",
        &open,
        &[("authorization", "Basic dXNlcjpwYXNz")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 401, "another scheme is no bearer token");
    assert_eq!(b.hits(), 1, "no rejected request reached the backend");

    // 403: valid token without the role.
    let r = bearer(&gw.url("/admin"), &valid).await;
    assert_eq!(r.status, 403);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"insufficient_scope\"")
    );
    assert_eq!(rejections(&gw, "/admin", "role"), 1);
    let r = bearer(
        &gw.url("/admin"),
        &token(&good, &claims(json!({"roles": ["admin"]}))),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(b.hits(), 2);

    // Forwarded only when inputHeaders names it.
    let r = bearer(&gw.url("/forward"), &valid).await;
    assert_eq!(r.status, 200);
    let expected = format!("Bearer {valid}");
    assert_eq!(
        b.requests()[2].header("authorization"),
        Some(expected.as_str())
    );
    assert_eq!(idp.fetches(), 1, "one key set fetch for every endpoint");
}

#[tokio::test]
async fn return_error_message_describes_the_refusal_in_the_header_only() {
    let good = rsa("r1", Algorithm::RS256);
    let idp = Idp::start(Some(jwks(&[&good]))).await;
    let b = json_backend(200, "{}").await;
    let auth = jwt_yaml(&idp, "          algorithms: [RS256]\n");
    let gw = gateway(&format!(
        "returnErrorMessage: true\nendpoints:\n  - path: /p\n    auth:\n{auth}    backends: [{{hosts: ['{}'], urlPattern: /x}}]\n",
        b.url()
    ))
    .await;
    let r = bearer(
        &gw.url("/p"),
        &token(&good, &claims(json!({"exp": now() - 60}))),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\", error_description=\"token expired\"")
    );
}

// ------------------------------------------------------------------ algorithms

#[tokio::test]
async fn rsa_pss_ecdsa_eddsa_and_hmac_tokens_verify() {
    let rs = rsa("rs", Algorithm::RS512);
    let ps = rsa("ps", Algorithm::PS256);
    let es = ec("es");
    let eddsa = ed("ed");
    let idp = Idp::start(Some(jwks(&[&rs, &ps, &es, &eddsa]))).await;
    let secret = hmac("hs", b"a shared secret of enough length");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks(&[&secret])).unwrap();
    let b = json_backend(200, "{}").await;
    let asym = jwt_yaml(&idp, "          algorithms: [RS512, PS256, ES256, EdDSA]\n");
    let gw = gateway(&format!(
        "endpoints:\n\
         \x20 - path: /asym\n    auth:\n{asym}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /hmac\n    auth:\n      jwt:\n        jwksFile: {f}\n        algorithms: [HS256]\n    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n",
        b = b.url(),
        f = file.display()
    ))
    .await;
    for s in [&rs, &ps, &es, &eddsa] {
        let r = bearer(&gw.url("/asym"), &token(s, &claims(json!({})))).await;
        assert_eq!(r.status, 200, "{:?}", s.alg);
    }
    let r = bearer(&gw.url("/hmac"), &token(&secret, &claims(json!({})))).await;
    assert_eq!(r.status, 200, "HMAC key from a jwksFile");
    // An algorithm the endpoint does not list, even with a key that fits.
    let r = bearer(&gw.url("/hmac"), &token(&es, &claims(json!({})))).await;
    assert_eq!(r.status, 401);
    assert_eq!(rejections(&gw, "/hmac", "algorithm"), 1);
}

#[tokio::test]
async fn algorithm_confusion_and_none_are_refused() {
    let good = rsa("r1", Algorithm::RS256);
    let idp = Idp::start(Some(jwks(&[&good]))).await;
    let b = json_backend(200, "{}").await;
    let rs_only = jwt_yaml(&idp, "          algorithms: [RS256]\n");
    let both = jwt_yaml(&idp, "          algorithms: [RS256, HS256]\n");
    let gw = gateway(&format!(
        "endpoints:\n\
         \x20 - path: /rs\n    auth:\n{rs_only}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /both\n    auth:\n{both}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n",
        b = b.url()
    ))
    .await;
    // The attacker knows the public key: an HS256 token "signed" with it, kid of the RSA key.
    let public = rsa_key().to_public_key();
    let pem = public.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let der = public.to_pkcs1_der().unwrap();
    for secret in [pem.as_bytes(), der.as_bytes()] {
        let forged = token(&hmac("r1", secret), &claims(json!({"roles": ["admin"]})));
        for path in ["/rs", "/both"] {
            let r = bearer(&gw.url(path), &forged).await;
            assert_eq!(r.status, 401, "{path}: HS256 with the RSA public key");
        }
    }
    assert!(rejections(&gw, "/rs", "algorithm") >= 1);
    assert!(
        rejections(&gw, "/both", "unknown_key") >= 1,
        "an RSA key never serves an HMAC check"
    );
    // `alg: none`, no signature.
    let head = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(claims(json!({})).to_string().as_bytes());
    for t in [format!("{head}.{body}."), format!("{head}.{body}")] {
        let r = bearer(&gw.url("/both"), &t).await;
        assert_eq!(r.status, 401, "none: {t}");
    }
    assert_eq!(b.hits(), 0);
}

// ------------------------------------------------------------------ the key cache

#[tokio::test]
async fn rotated_keys_are_picked_up_and_removed_ones_refused() {
    let k1 = ec("k1");
    let k2 = ec("k2");
    let idp = Idp::start(Some(jwks(&[&k1]))).await;
    let b = json_backend(200, "{}").await;
    let auth = jwt_yaml(
        &idp,
        "          algorithms: [ES256]\n          cacheTTL: 1s\n",
    );
    let gw = gateway(&format!(
        "endpoints:\n  - path: /p\n    auth:\n{auth}    backends: [{{hosts: ['{}'], urlPattern: /x}}]\n",
        b.url()
    ))
    .await;
    let url = gw.url("/p");
    let t1 = token(&k1, &claims(json!({})));
    let t2 = token(&k2, &claims(json!({})));
    assert_eq!(bearer(&url, &t1).await.status, 200);
    // The identity provider rotates: k2 appears, k1 goes.
    idp.serve(Some(jwks(&[&k2])));
    eventually(
        "the new key is accepted",
        || bearer(&url, &t2),
        |r| r.status == 200,
    )
    .await;
    assert_eq!(
        bearer(&url, &t1).await.status,
        401,
        "the removed key is refused"
    );
}

#[tokio::test]
async fn an_identity_provider_down_at_start_then_up_then_down_again() {
    let k = ec("k");
    let idp = Idp::start(None).await;
    let b = json_backend(200, "{}").await;
    let auth = jwt_yaml(
        &idp,
        "          algorithms: [ES256]\n          cacheTTL: 1s\n",
    );
    let gw = gateway(&format!(
        "endpoints:\n  - path: /p\n    auth:\n{auth}    backends: [{{hosts: ['{}'], urlPattern: /x}}]\n",
        b.url()
    ))
    .await;
    let url = gw.url("/p");
    let t = token(&k, &claims(json!({})));
    let r = bearer(&url, &t).await;
    assert_eq!(r.status, 401, "no keys yet");
    assert_eq!(rejections(&gw, "/p", "no_keys"), 1);
    idp.serve(Some(jwks(&[&k])));
    // No request has to trigger it: the background retry loads the set.
    eventually(
        "the retried fetch succeeds",
        || bearer(&url, &t),
        |r| r.status == 200,
    )
    .await;
    // Down again: the last good set keeps serving past its TTL.
    idp.serve(None);
    let fetched = idp.fetches();
    eventually(
        "a refresh is tried (and fails)",
        || bearer(&url, &t),
        |r| {
            assert_eq!(r.status, 200, "the last good set serves");
            idp.fetches() > fetched
        },
    )
    .await;
    assert_eq!(bearer(&url, &t).await.status, 200);
}

#[tokio::test]
async fn the_key_cache_survives_reloads_that_keep_the_url() {
    let k = ec("k");
    let idp = Idp::start(Some(jwks(&[&k]))).await;
    let b = json_backend(200, "{}").await;
    let auth = jwt_yaml(&idp, "          algorithms: [ES256]\n");
    let config = |timeout: &str| {
        format!(
            "timeout: {timeout}\nendpoints:\n  - path: /p\n    auth:\n{auth}    backends: [{{hosts: ['{}'], urlPattern: /x}}]\n",
            b.url()
        )
    };
    let gw = gateway(&config("2s")).await;
    let t = token(&k, &claims(json!({})));
    assert_eq!(bearer(&gw.url("/p"), &t).await.status, 200);
    assert_eq!(idp.fetches(), 1);
    let generation = gw.generation();
    gw.rewrite(&config("3s"));
    gw.wait_generation_above(generation).await;
    assert_eq!(bearer(&gw.url("/p"), &t).await.status, 200);
    assert_eq!(
        idp.fetches(),
        1,
        "the reloaded endpoint kept the cached set"
    );
}

// ------------------------------------------------------------------ roles, scopes, cookies

async fn status_of(gw: &Gw, k: &Signing, path: &str, c: Value) -> u16 {
    bearer(&gw.url(path), &token(k, &claims(c))).await.status
}

#[tokio::test]
async fn nested_roles_scopes_as_string_or_array_and_cookies() {
    let k = ed("k");
    let idp = Idp::start(Some(jwks(&[&k]))).await;
    let b = json_backend(200, "{}").await;
    let nested = jwt_yaml(
        &idp,
        "          algorithms: [EdDSA]\n          rolesClaim: realm_access.roles\n          roles: [admin, ops]\n",
    );
    let any = jwt_yaml(
        &idp,
        "          algorithms: [EdDSA]\n          scopes: [orders:read, orders:write]\n",
    );
    let all = jwt_yaml(
        &idp,
        "          algorithms: [EdDSA]\n          scopesClaim: scp\n          scopes: [orders:read, orders:write]\n          scopesMatcher: all\n",
    );
    let cookie = jwt_yaml(
        &idp,
        "          algorithms: [EdDSA]\n          cookie: session\n",
    );
    let gw = gateway(&format!(
        "endpoints:\n\
         \x20 - path: /nested\n    auth:\n{nested}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /any\n    auth:\n{any}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /all\n    auth:\n{all}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /cookie\n    auth:\n{cookie}    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n",
        b = b.url()
    ))
    .await;
    assert_eq!(
        status_of(
            &gw,
            &k,
            "/nested",
            json!({"realm_access": {"roles": ["ops"]}})
        )
        .await,
        200
    );
    assert_eq!(
        status_of(
            &gw,
            &k,
            "/nested",
            json!({"realm_access": {"roles": ["viewer"]}})
        )
        .await,
        403
    );
    assert_eq!(
        status_of(&gw, &k, "/nested", json!({"roles": ["admin"]})).await,
        403
    );
    assert_eq!(
        status_of(&gw, &k, "/any", json!({"scope": "profile orders:write"})).await,
        200
    );
    assert_eq!(
        status_of(&gw, &k, "/any", json!({"scope": ["orders:read"]})).await,
        200
    );
    assert_eq!(
        status_of(&gw, &k, "/any", json!({"scope": "profile"})).await,
        403
    );
    assert_eq!(
        status_of(
            &gw,
            &k,
            "/all",
            json!({"scp": ["orders:read", "orders:write"]})
        )
        .await,
        200
    );
    assert_eq!(
        status_of(&gw, &k, "/all", json!({"scp": "orders:write orders:read"})).await,
        200
    );
    assert_eq!(
        status_of(&gw, &k, "/all", json!({"scp": "orders:read"})).await,
        403
    );
    assert_eq!(rejections(&gw, "/all", "scope"), 1);

    let t = token(&k, &claims(json!({})));
    let cookie_header = format!("theme=dark; session={t}");
    let r = send(
        "GET",
        &gw.url("/cookie"),
        &[("cookie", &cookie_header)],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200, "token from the cookie");
    let r = send(
        "GET",
        &gw.url("/cookie"),
        &[("cookie", "session=nope")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(bearer(&gw.url("/cookie"), &t).await.status, 200);
}

// ------------------------------------------------------------------ claims to backends

#[tokio::test]
async fn claims_become_headers_and_url_parts_and_unsafe_ones_are_refused() {
    let k = ec("k");
    let idp = Idp::start(Some(jwks(&[&k]))).await;
    let b = support::path_echo_backend().await;
    let auth = jwt_yaml(
        &idp,
        "          algorithms: [ES256]\n          propagateClaims: [[sub, X-User], [groups, X-Groups], [org, X-Org], [missing, X-Missing]]\n",
    );
    let gw = gateway(&format!(
        "endpoints:\n\
         \x20 - path: /me\n    inputHeaders: ['*']\n    auth:\n{auth}    backends: [{{hosts: ['{b}'], urlPattern: '/users/{{JWT.sub}}/orders?org={{JWT.org.id}}'}}]\n",
        b = b.url()
    ))
    .await;
    let url = gw.url("/me");
    let t = token(
        &k,
        &claims(json!({"groups": ["a", "b"], "org": {"id": "../x y"}})),
    );
    let auth_header = format!("Bearer {t}");
    let r = send(
        "GET",
        &url,
        &[
            ("authorization", &auth_header),
            ("x-user", "spoofed"),
            ("x-missing", "spoofed"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &b.requests()[0];
    assert_eq!(got.path(), "/users/alice/orders");
    assert_eq!(
        got.query(),
        Some("org=..%2Fx%20y"),
        "query values are only encoded"
    );
    assert_eq!(
        got.header("x-user"),
        Some("alice"),
        "the claim replaces the client's"
    );
    assert_eq!(got.header("x-groups"), Some("a,b"));
    assert_eq!(got.header("x-org"), Some(r#"{"id":"../x y"}"#));
    assert!(
        got.header("x-missing").is_none(),
        "a propagated name is never the client's"
    );

    for (what, c) in [
        (
            "sub holding ../",
            json!({"sub": "../admin", "org": {"id": "1"}}),
        ),
        ("sub holding /", json!({"sub": "a/b", "org": {"id": "1"}})),
        ("no sub", json!({"sub": null, "org": {"id": "1"}})),
        ("no org.id", json!({"org": {}})),
    ] {
        let r = bearer(&url, &token(&k, &claims(c))).await;
        assert_eq!(r.status, 401, "{what}");
    }
    assert_eq!(rejections(&gw, "/me", "claim"), 4);
    assert_eq!(
        b.hits(),
        1,
        "no unsafe or missing claim reached the backend"
    );
}

// ------------------------------------------------------------------ API keys

#[tokio::test]
async fn api_keys_from_a_file_that_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# team keys\nk-reader reader\nk-ops ops\n").unwrap();
    let b = json_backend(200, "{}").await;
    let gw = gateway(&format!(
        "endpoints:\n\
         \x20 - path: /h\n    auth: {{apiKeys: {{file: '{f}', roles: [reader]}}}}\n    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n\
         \x20 - path: /q\n    auth: {{apiKeys: {{file: '{f}', query: api_key}}}}\n    backends: [{{hosts: ['{b}'], urlPattern: /x}}]\n",
        f = keys.display(),
        b = b.url()
    ))
    .await;
    let with_key = |path: &'static str, key: &'static str| {
        let url = gw.url(path);
        async move { send("GET", &url, &[("x-api-key", key)], Bytes::new()).await }
    };
    assert_eq!(with_key("/h", "k-reader").await.status, 200);
    let r = with_key("/h", "k-unknown").await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    assert_eq!(with_key("/h", "k-ops").await.status, 403, "wrong role");
    assert_eq!(support::get(&gw.url("/h")).await.status, 401, "no key");
    assert_eq!(support::get(&gw.url("/q?api_key=k-ops")).await.status, 200);
    assert_eq!(support::get(&gw.url("/q?api_key=nope")).await.status, 401);
    assert_eq!(
        with_key("/q", "k-ops").await.status,
        401,
        "/q reads the query only"
    );
    assert!(
        b.requests().iter().all(|r| r.header("x-api-key").is_none()),
        "keys are not forwarded"
    );
    assert!(b.requests().iter().all(|r| r.query().is_none()));
    assert_eq!(rejections(&gw, "/h", "api_key"), 1);
    assert_eq!(rejections(&gw, "/h", "missing"), 1);

    // Rotate the file as a Secret update does: k-new added, k-reader removed.
    let tmp = dir.path().join("keys.tmp");
    std::fs::write(&tmp, "k-new reader\nk-ops ops\n").unwrap();
    std::fs::rename(&tmp, &keys).unwrap();
    eventually(
        "the new key works",
        || with_key("/h", "k-new"),
        |r| r.status == 200,
    )
    .await;
    let before = rejections(&gw, "/h", "api_key");
    assert_eq!(
        with_key("/h", "k-reader").await.status,
        401,
        "the removed key"
    );
    assert_eq!(rejections(&gw, "/h", "api_key"), before + 1);
}

// ------------------------------------------------------------------ configuration

#[test]
fn auth_configuration_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    let load = |yaml: &str| {
        std::fs::write(&path, yaml).unwrap();
        weir::config::load(&path).map_err(|e| e.to_string())
    };
    let err = load(
        "endpoints:\n  - path: /a\n    auth: {jwt: {jwksUrl: 'http://idp/jwks', algorithms: [RS256]}}\n    backends: [{hosts: ['http://b'], urlPattern: /x}]\n",
    )
    .unwrap_err();
    assert!(
        err.contains("auth.jwt.jwksUrl") && err.contains("allowHttp"),
        "{err}"
    );
    let err = load(
        "endpoints:\n  - path: /a\n    auth: {jwt: {jwksUrl: 'https://idp/jwks'}}\n    backends: [{hosts: ['http://b'], urlPattern: /x}]\n",
    )
    .unwrap_err();
    assert!(err.contains("auth.jwt.algorithms"), "{err}");
    let err = load(
        "endpoints:\n  - path: /a\n    auth: {jwt: {jwksUrl: 'https://idp/jwks', algorithms: [none]}}\n    backends: [{hosts: ['http://b'], urlPattern: /x}]\n",
    )
    .unwrap_err();
    assert!(err.contains("none"), "{err}");
    let err = load(
        "endpoints:\n  - path: /a\n    backends: [{hosts: ['http://b'], urlPattern: '/u/{JWT.sub}'}]\n",
    )
    .unwrap_err();
    assert!(err.contains("needs auth.jwt"), "{err}");

    // The settings' auth is every endpoint's default; `auth: {}` opts one out.
    let loaded = load(
        "auth: {jwt: {jwksUrl: 'https://idp/jwks', algorithms: [ES256]}}\nendpoints:\n\
         \x20 - path: /a\n    backends: [{hosts: ['http://b'], urlPattern: '/u/{JWT.sub}'}]\n\
         \x20 - path: /public\n    auth: {}\n    backends: [{hosts: ['http://b'], urlPattern: /x}]\n\
         \x20 - path: /keys\n    auth: {apiKeys: {file: /k}}\n    backends: [{hosts: ['http://b'], urlPattern: /x}]\n",
    )
    .unwrap();
    let eps = &loaded.gateway.endpoints;
    assert!(eps[0].auth.as_ref().is_some_and(|a| a.jwt.is_some()));
    assert!(eps[1].auth.is_none());
    let keys = eps[2].auth.as_ref().unwrap();
    assert!(keys.jwt.is_none());
    assert_eq!(
        keys.api_keys.as_ref().unwrap().header.as_deref(),
        Some("x-api-key")
    );
}

#[test]
fn a_krakend_validator_endpoint_is_served_protected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("krakend.json");
    std::fs::write(
        &path,
        r#"{"version": 3, "endpoints": [{"endpoint": "/private", "extra_config": {"auth/validator": {
            "alg": "RS256", "jwk_url": "https://idp/jwks", "roles_key": "realm_access.roles",
            "roles": ["admin"], "propagate_claims": [["sub", "x-user"]], "cache": true,
            "cache_duration": 300, "operation_debug": true}},
          "backend": [{"host": ["http://b"], "url_pattern": "/u/{JWT.sub}"}]},
          {"endpoint": "/token", "extra_config": {"auth/signer": {"alg": "HS256", "kid": "k",
            "keys_to_sign": ["t"], "jwk_local_path": "/k.json", "jwk_fingerprints": []}},
           "backend": [{"host": ["http://b"], "url_pattern": "/t"}]}]}"#,
    )
    .unwrap();
    let loaded = weir::config::load(&path).unwrap();
    assert_eq!(loaded.gateway.endpoints.len(), 2, "both are served");
    let signer = loaded.gateway.endpoints[1]
        .token_signer
        .as_ref()
        .expect("the signer maps onto tokenSigner");
    assert_eq!(signer.keys_to_sign, ["t"]);
    let jwt = loaded.gateway.endpoints[0]
        .auth
        .as_ref()
        .and_then(|a| a.jwt.clone())
        .expect("protected");
    assert_eq!(jwt.roles_claim.raw, "realm_access.roles");
    assert_eq!(jwt.cache_ttl, Duration::from_secs(300));
    let w = loaded.warnings.join("\n");
    assert!(
        w.contains("auth/validator option \"operation_debug\""),
        "{w}"
    );
    assert!(w.contains("auth/signer option \"jwk_fingerprints\""), "{w}");
}

// ------------------------------------------------------------------ token signing

#[tokio::test]
async fn signed_tokens_verify_with_the_signers_public_key_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // ES256 from a PEM private key; its public half as the validator's key set.
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = dir.path().join("signer.pem");
    std::fs::write(&pem, key.serialize_pem()).unwrap();
    let point = key.public_key_raw();
    let public = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    let public_file = dir.path().join("public.json");
    std::fs::write(&public_file, public.to_string()).unwrap();
    // HS256 from an oct key of a key set file.
    let oct = hmac("sim", b"0123456789abcdef0123456789abcdef");
    let oct_file = dir.path().join("oct.json");
    std::fs::write(&oct_file, jwks(&[&oct])).unwrap();

    let c = claims(json!({}));
    let answer = json!({"access_token": c, "refresh_token": c, "note": "kept"}).to_string();
    let idp = json_backend(200, answer.leak()).await;
    let gw = gateway(&format!(
        "endpoints:
- path: /token/es
  cacheTTL: 1h
  tokenSigner: {{keysToSign: [access_token, missing], algorithm: ES256, kid: k1, keyFile: {pem}}}
  backends: [{{hosts: [{idp}], urlPattern: /t}}]
- path: /token/hs
  tokenSigner: {{keysToSign: [access_token, refresh_token], algorithm: HS256, kid: sim, jwksFile: {oct}}}
  backends: [{{hosts: [{idp}], urlPattern: /t}}]
- path: /private/es
  auth: {{jwt: {{jwksFile: {public}, algorithms: [ES256], issuer: \"https://idp.test\", audience: [api]}}}}
  backends: [{{hosts: [{idp}], urlPattern: /t}}]
- path: /private/hs
  auth: {{jwt: {{jwksFile: {oct}, algorithms: [HS256]}}}}
  backends: [{{hosts: [{idp}], urlPattern: /t}}]
",
        pem = pem.display(),
        oct = oct_file.display(),
        public = public_file.display(),
        idp = idp.url(),
    ))
    .await;

    let r = support::get(&gw.url("/token/es")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("cache-control"),
        None,
        "a signed answer is never cached publicly"
    );
    assert_eq!(r.header("x-weir-completed"), Some("true"));
    let body = r.json();
    assert_eq!(body["note"], "kept");
    assert!(
        body["refresh_token"].is_object(),
        "only listed fields are signed"
    );
    let es = body["access_token"]
        .as_str()
        .expect("a compact token")
        .to_string();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(es.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header, json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}));
    assert_eq!(bearer(&gw.url("/private/es"), &es).await.status, 200);
    // Tampered: the validator refuses it.
    let mut forged = es.clone();
    forged.insert(forged.len() / 2, 'x');
    assert_eq!(bearer(&gw.url("/private/es"), &forged).await.status, 401);

    let body = support::get(&gw.url("/token/hs")).await.json();
    for field in ["access_token", "refresh_token"] {
        let t = body[field].as_str().expect("signed");
        assert_eq!(
            bearer(&gw.url("/private/hs"), t).await.status,
            200,
            "{field}"
        );
    }
}

#[test]
fn token_signer_configuration_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let check = |signer: &str| {
        let p = dir.path().join("g.yaml");
        std::fs::write(
            &p,
            format!("endpoints:\n- path: /t\n  tokenSigner: {signer}\n  backends: [{{hosts: [\"http://127.0.0.1:1\"], urlPattern: /t}}]\n"),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("check")
            .arg(&p)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (signer, want) in [
        (
            "{keysToSign: [t], algorithm: RS256, jwksFile: /x.json, kid: a}",
            "tokenSigner.keyFile: RS256 needs a private key",
        ),
        (
            "{keysToSign: [t], algorithm: HS256, jwksFile: /x.json}",
            "tokenSigner.kid: required with a key set",
        ),
        (
            "{keysToSign: [], algorithm: HS256, jwksFile: /x.json, kid: a}",
            "tokenSigner.keysToSign",
        ),
        (
            "{keysToSign: [t], algorithm: ES256, keyFile: /no/such.pem}",
            "/no/such.pem",
        ),
        (
            "{keysToSign: [t], algorithm: HS256, keyFile: /k.pem}",
            "signs with a shared secret",
        ),
    ] {
        let (code, err) = check(signer);
        assert_eq!(code, Some(1), "{signer}: {err}");
        assert!(err.contains(want), "{signer}: want {want:?} in {err}");
    }
}
