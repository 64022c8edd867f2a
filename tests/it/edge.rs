//! The edge listener (issue 12): TLS termination with SNI and rotation, HTTP/2 inbound,
//! backends over TLS (private CA, mTLS) and HTTP/2, the plain port beside TLS, catch-all
//! routes, HEAD and 405 `Allow`. Certificates are made in the test (support/pki.rs).

use std::time::Duration;

use crate::support::pki::{self, tls_client, Ca};
use crate::support::*;

const OK: &str = r#"{"ok":true,"list":[1,2]}"#;

/// A gateway terminating TLS with `certs` (file pairs) in front of `backend_url`.
async fn tls_gateway(certs: &[(String, String)], extra: &str, backend_url: &str) -> Gw {
    let list: String = certs
        .iter()
        .map(|(c, k)| format!("    - certFile: {c}\n      keyFile: {k}\n"))
        .collect();
    gateway(&format!(
        "tls:\n  certificates:\n{list}{extra}endpoints:\n- path: /x\n  backends:\n  - hosts: [{backend_url}]\n    urlPattern: /x\n"
    ))
    .await
}

fn paths(p: (std::path::PathBuf, std::path::PathBuf)) -> (String, String) {
    (p.0.display().to_string(), p.1.display().to_string())
}

#[tokio::test]
async fn tls_1_2_and_1_3_handshakes_and_min_version() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let cert = paths(ca.server(&["a.test"]).write(dir.path(), "a"));
    let b = json_backend(200, OK).await;
    let gw = tls_gateway(std::slice::from_ref(&cert), "", &b.url()).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = pki::client_config(&ca, &[version], &[b"http/1.1"]);
        let s = pki::connect(gw.addr(), config, "a.test").await.unwrap();
        assert_eq!(s.get_ref().1.protocol_version(), Some(version.version));
    }
    let r = send_with(
        &tls_client(&ca, "a.test", false),
        "GET",
        &format!("https://{}/x", gw.addr()),
        &[],
        "",
    )
    .await;
    assert_eq!((r.status, r.json()["ok"].as_bool()), (200, Some(true)));

    let only13 = tls_gateway(&[cert], "  minVersion: \"1.3\"\n", &b.url()).await;
    let old = pki::client_config(&ca, &[&rustls::version::TLS12], &[b"http/1.1"]);
    assert!(
        pki::connect(only13.addr(), old, "a.test").await.is_err(),
        "TLS 1.2 refused"
    );
}

#[tokio::test]
async fn sni_picks_the_certificate_and_the_first_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let first = ca.server(&["a.test"]);
    let wildcard = ca.server(&["*.b.test", "b.test"]);
    let certs = [
        paths(first.write(dir.path(), "a")),
        paths(wildcard.write(dir.path(), "b")),
    ];
    let b = json_backend(200, OK).await;
    let gw = tls_gateway(&certs, "", &b.url()).await;
    let leaf_for = |sni: &'static str| {
        let ca = &ca;
        let addr = gw.addr();
        async move {
            // Verification is what the client does; SNI selection is what is tested, so the
            // default certificate for an unknown name fails verification: look at it anyway.
            let config = pki::client_config(ca, rustls::ALL_VERSIONS, &[b"http/1.1"]);
            match pki::connect(addr, config, sni).await {
                Ok(s) => Some(pki::peer_leaf(&s)),
                Err(_) => None,
            }
        }
    };
    assert_eq!(leaf_for("a.test").await, Some(first.der.clone()));
    assert_eq!(leaf_for("eu.b.test").await, Some(wildcard.der.clone()));
    assert_eq!(leaf_for("b.test").await, Some(wildcard.der.clone()));
    // A name no certificate serves gets the default one (which then fails verification).
    assert_eq!(leaf_for("other.test").await, None);
}

/// Reloads of the certificate files so far (`weir_tls_certificate_reloads_total`).
fn cert_reloads(gw: &Gw, result: &str) -> u64 {
    let text = gw.gw.handle.shared().metrics().render();
    let prefix = format!("weir_tls_certificate_reloads_total{{result=\"{result}\"}}");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn wait_cert_reloads(gw: &Gw, result: &str, above: u64) {
    for _ in 0..500 {
        if cert_reloads(gw, result) > above {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {result} certificate reload within 5s");
}

#[tokio::test]
async fn a_rotated_pair_serves_new_connections_and_open_ones_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let old = ca.server(&["a.test"]);
    let (c, k) = old.write(dir.path(), "a");
    let b = json_backend(200, OK).await;
    let gw = tls_gateway(&[paths((c.clone(), k.clone()))], "", &b.url()).await;
    // An open keep-alive connection on the old certificate.
    let open = tls_client(&ca, "a.test", false);
    let url = format!("https://{}/x", gw.addr());
    assert_eq!(send_with(&open, "GET", &url, &[], "").await.status, 200);

    // cert-manager swaps a `..data` symlink; the paths stay, the files behind them change.
    let new = ca.server(&["a.test"]);
    let staged = dir.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    let (nc, nk) = new.write(&staged, "a");
    let applied = cert_reloads(&gw, "applied");
    std::fs::rename(&nk, &k).unwrap();
    std::fs::rename(&nc, &c).unwrap();
    wait_cert_reloads(&gw, "applied", applied).await;

    let config = pki::client_config(&ca, rustls::ALL_VERSIONS, &[b"http/1.1"]);
    let s = pki::connect(gw.addr(), config, "a.test").await.unwrap();
    assert_eq!(
        pki::peer_leaf(&s),
        new.der,
        "new connections get the new certificate"
    );
    assert_eq!(
        send_with(&open, "GET", &url, &[], "").await.status,
        200,
        "the open connection still works"
    );

    // A mismatched pair is refused; the last good one keeps serving.
    let rejected = cert_reloads(&gw, "rejected");
    std::fs::write(&k, ca.server(&["a.test"]).key_pem).unwrap();
    wait_cert_reloads(&gw, "rejected", rejected).await;
    let config = pki::client_config(&ca, rustls::ALL_VERSIONS, &[b"http/1.1"]);
    let s = pki::connect(gw.addr(), config, "a.test").await.unwrap();
    assert_eq!(pki::peer_leaf(&s), new.der);
}

#[tokio::test]
async fn h2_over_tls_and_h2c_serve_every_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let cert = paths(ca.server(&["a.test"]).write(dir.path(), "a"));
    let b = json_backend(200, r#"{"collection":[1],"content":"hi","a":1}"#).await;
    let endpoints: String = ["json", "json-collection", "string", "xml", "yaml", "negotiate", "no-op"]
        .iter()
        .map(|enc| {
            let backend_enc = if *enc == "no-op" { "no-op" } else { "safejson" };
            format!(
                "- path: /{enc}\n  outputEncoding: {enc}\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n    encoding: {backend_enc}\n",
                b.url()
            )
        })
        .collect();
    let plain = gateway(&format!("endpoints:\n{endpoints}")).await;
    let tls = gateway(&format!(
        "tls:\n  certificates:\n  - certFile: {}\n    keyFile: {}\nendpoints:\n{endpoints}",
        cert.0, cert.1
    ))
    .await;
    let h2c = h2c_client();
    let h2 = tls_client(&ca, "a.test", true);
    for enc in [
        "json",
        "json-collection",
        "string",
        "xml",
        "yaml",
        "negotiate",
        "no-op",
    ] {
        let r = send_with(&h2c, "GET", &plain.url(&format!("/{enc}")), &[], "").await;
        assert_eq!(r.status, 200, "h2c {enc}: {}", r.text());
        assert_eq!(r.header("x-test-version"), Some("HTTP/2.0"), "h2c {enc}");
        assert!(!r.body.is_empty(), "h2c {enc}");
        let r = send_with(
            &h2,
            "GET",
            &format!("https://{}/{enc}", tls.addr()),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "h2 {enc}: {}", r.text());
        assert_eq!(r.header("x-test-version"), Some("HTTP/2.0"), "h2 {enc}");
    }
    // HTTP/1.1 keeps working on the same ports.
    assert_eq!(get(&plain.url("/json")).await.status, 200);
    let h1 = tls_client(&ca, "a.test", false);
    let r = send_with(&h1, "GET", &format!("https://{}/json", tls.addr()), &[], "").await;
    assert_eq!(r.header("x-test-version"), Some("HTTP/1.1"));
}

#[tokio::test]
async fn https_backends_with_a_private_ca_and_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("backend CA");
    let server = ca.server(&["backend.test"]);
    let client = ca.client("weir");
    let ca_file = ca.write(dir.path());
    let (client_cert, client_key) = client.write(dir.path(), "client");
    // The backend requires a client certificate from the same CA.
    let b = tls_backend(
        pki::server_config(&server, Some(&ca), &[b"http/1.1"]),
        |_| async { reply(200, "application/json", OK) },
    )
    .await;
    let backend = |tls: &str| {
        format!(
            "endpoints:\n- path: /x\n  backends:\n  - hosts: [\"https://{}\"]\n    urlPattern: /x\n    tls: {{{tls}}}\n",
            b.addr
        )
    };
    let full = format!(
        "caFile: {}, serverName: backend.test, certFile: {}, keyFile: {}",
        ca_file.display(),
        client_cert.display(),
        client_key.display()
    );
    let gw = gateway(&backend(&full)).await;
    assert_eq!(get(&gw.url("/x")).await.json()["ok"], true);
    assert_eq!(b.hits(), 1);

    // Without the client certificate the backend refuses the handshake: a failed backend.
    let gw = gateway(&backend(&format!(
        "caFile: {}, serverName: backend.test",
        ca_file.display()
    )))
    .await;
    assert_eq!(get(&gw.url("/x")).await.status, 500);

    // A backend certificate from another CA is refused, unless verification is switched off.
    let other = Ca::new("other CA");
    let stranger = tls_backend(
        pki::server_config(&other.server(&["backend.test"]), None, &[b"http/1.1"]),
        |_| async { reply(200, "application/json", OK) },
    )
    .await;
    let to_stranger = |tls: &str| {
        format!(
            "endpoints:\n- path: /x\n  backends:\n  - hosts: [\"https://{}\"]\n    urlPattern: /x\n    tls: {{{tls}}}\n",
            stranger.addr
        )
    };
    let gw = gateway(&to_stranger(&format!(
        "caFile: {}, serverName: backend.test",
        ca_file.display()
    )))
    .await;
    assert_eq!(
        get(&gw.url("/x")).await.status,
        500,
        "untrusted certificate refused"
    );
    assert_eq!(stranger.hits(), 0);
    let gw = gateway(&to_stranger("insecureSkipVerify: true")).await;
    assert_eq!(get(&gw.url("/x")).await.status, 200);
}

#[tokio::test]
async fn http2_backends_by_alpn_and_by_prior_knowledge() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("backend CA");
    let ca_file = ca.write(dir.path());
    let tls = tls_backend(
        pki::server_config(&ca.server(&["backend.test"]), None, &[b"h2"]),
        |r| async move {
            reply(
                200,
                "application/json",
                format!("{{\"version\":\"{:?}\"}}", r.method),
            )
        },
    )
    .await;
    let plain = h2c_backend(|_| async { reply(200, "application/json", OK) }).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /tls\n  backends:\n  - hosts: [\"https://{}\"]\n    urlPattern: /x\n    http2: true\n    tls: {{caFile: {}, serverName: backend.test}}\n\
         - path: /h2c\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n    http2: true\n",
        tls.addr,
        ca_file.display(),
        plain.url()
    ))
    .await;
    assert_eq!(get(&gw.url("/tls")).await.status, 200);
    assert_eq!(get(&gw.url("/h2c")).await.status, 200);
    assert_eq!((tls.hits(), plain.hits()), (1, 1));
}

#[tokio::test]
async fn the_plain_port_beside_tls_serves_or_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (c, k) = paths(ca.server(&["a.test"]).write(dir.path(), "a"));
    let b = json_backend(200, OK).await;
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = gateway(&format!(
        "tls:\n  certificates:\n  - certFile: {c}\n    keyFile: {k}\n  port: {free}\n  redirectHttp: true\nendpoints:\n- path: /x\n  backends:\n  - hosts: [{}]\n    urlPattern: /x\n",
        b.url()
    ))
    .await;
    let plain = gw.gw.handle.plain_addr.expect("plain port bound");
    let head = raw_exchange(
        plain,
        b"POST /x?q=1 HTTP/1.1\r\nhost: a.test:9\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    let location = format!("location: https://a.test:{}/x?q=1\r\n", gw.addr().port());
    assert!(head.contains(&location), "{head}");
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn catch_all_routes_head_and_allow() {
    let b = path_echo_backend().await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /api/{{*rest}}\n  backends:\n  - hosts: [{0}]\n    urlPattern: /svc/{{rest}}\n\
         - path: /api/users/{{id}}\n  backends:\n  - hosts: [{0}]\n    urlPattern: /users/{{id}}\n\
         - path: /api/users/me\n  method: POST\n  backends:\n  - hosts: [{0}]\n    urlPattern: /me\n",
        b.url()
    ))
    .await;
    assert_eq!(
        get(&gw.url("/api/a/b%20c/d")).await.json()["path"],
        "/svc/a/b%20c/d"
    );
    assert_eq!(
        get(&gw.url("/api/users/7")).await.json()["path"],
        "/users/7",
        "a {{param}} route wins"
    );
    assert_eq!(get(&gw.url("/api/a/%2e%2e/b")).await.status, 400);
    let head = send("HEAD", &gw.url("/api/users/7"), &[], "").await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert!(
        head.header("content-length").is_some_and(|l| l != "0"),
        "HEAD keeps the headers"
    );
    let r = send("DELETE", &gw.url("/api/users/me"), &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test]
async fn a_catch_all_beside_a_param_route_at_the_same_depth() {
    // One matcher refuses `/files/{id}` beside `/files/{*rest}`; the router layers them.
    let b = path_echo_backend().await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /files/{{id}}\n  backends:\n  - hosts: [{0}]\n    urlPattern: /one/{{id}}\n\
         - path: /files/{{*rest}}\n  method: ANY\n  outputEncoding: no-op\n  backends:\n  - hosts: [{0}]\n    urlPattern: /all/{{rest}}\n    encoding: no-op\n",
        b.url()
    ))
    .await;
    assert_eq!(get(&gw.url("/files/7")).await.json()["path"], "/one/7");
    assert_eq!(get(&gw.url("/files/7/x")).await.json()["path"], "/all/7/x");
    let r = send("PUT", &gw.url("/files/7"), &[], "").await;
    assert_eq!(r.status, 200, "a method the param route lacks goes to ANY");
    assert_eq!(r.json()["path"], "/all/7");
    assert_eq!(get(&gw.url("/files/%2e%2e/x")).await.status, 400);
}

#[tokio::test]
async fn method_any_passes_every_method_to_a_no_op_backend() {
    let b = backend(|r| async move { reply(200, "text/plain", r.method.to_string()) }).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /any/{{*rest}}\n  method: ANY\n  outputEncoding: no-op\n  backends:\n  - hosts: [{}]\n    urlPattern: /{{rest}}\n    encoding: no-op\n",
        b.url()
    ))
    .await;
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let r = send(m, &gw.url("/any/x"), &[], "").await;
        assert_eq!((r.status, r.text()), (200, m.to_string()));
    }
}
