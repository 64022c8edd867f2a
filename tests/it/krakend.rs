//! KrakenD compatibility in Weir's own fixtures: reading a `krakend.json` (mapping, warnings
//! for what Weir lacks, version refusal), KrakenD's client-visible conventions, CORS, the
//! trailing-slash redirect, gzip from backends, `-d` and `weir convert`; the edge settings
//! (`tls`, `use_h2c`, `client_tls`) over real TLS with certificates made in the test.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::support::pki::{self, tls_client, Ca};
use crate::support::{backend, get, h2c_client, json_backend, reply, send, send_with, tls_backend};
use bytes::Bytes;
use http_body_util::Full;
use weir::config;
use weir::local::{self, LocalGateway, LocalOptions};

fn write_krakend(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("krakend.json");
    std::fs::write(&path, text).unwrap();
    path
}

async fn serve(path: &Path, debug: bool) -> LocalGateway {
    let mut opts = LocalOptions::new(path);
    opts.port = Some(0);
    opts.bind = Some(Ipv4Addr::LOCALHOST.into());
    opts.access_log = Some(false);
    opts.debug = debug;
    local::start(opts).await.expect("gateway starts")
}

fn url(gw: &LocalGateway, path: &str) -> String {
    format!("http://{}{}", gw.handle.proxy_addr, path)
}

// ---------------------------------------------------------------- mapping

const MAPPED: &str = r#"{
  "version": 3,
  "port": 9000,
  "timeout": "1500ms",
  "cache_ttl": "60s",
  "host": ["http://default.internal:8080"],
  "echo_endpoint": true,
  "extra_config": {
    "router": {"return_error_msg": true, "health_path": "/healthz", "disable_access_log": true},
    "security/cors": {"allow_origins": ["https://app.example"], "max_age": "1h"},
    "telemetry/logging": {"level": "DEBUG"}
  },
  "endpoints": [
    {
      "endpoint": "/users/{id}",
      "method": "post",
      "output_encoding": "negotiate",
      "concurrent_calls": 2,
      "input_headers": ["X-Id"],
      "input_query_strings": ["q"],
      "extra_config": {
        "qos/ratelimit/router": {"max_rate": 50, "client_max_rate": 5, "strategy": "header", "key": "X-Key"},
        "proxy": {"sequential": true, "static": {"strategy": "errored", "data": {"fallback": true}}}
      },
      "backend": [
        {
          "url_pattern": "/v1/users/{id}",
          "encoding": "safejson",
          "target": "data",
          "deny": ["secret"],
          "mapping": {"name": "fullName"},
          "group": "user",
          "extra_config": {
            "backend/http": {"return_error_details": "users"},
            "qos/circuit-breaker": {"interval": 60, "timeout": 10, "max_errors": 3},
            "qos/ratelimit/proxy": {"max_rate": 20, "capacity": 40},
            "qos/http-cache": {}
          }
        },
        {
          "host": ["http://orders.internal"],
          "url_pattern": "/orders?user={resp0_user.id}",
          "is_collection": true,
          "extra_config": {
            "proxy": {"flatmap_filter": [{"type": "del", "args": ["collection.*.internal"]}]},
            "qos/http-cache": {"shared": true}
          }
        }
      ]
    },
    {
      "endpoint": "/one",
      "backend": [{"url_pattern": "/one", "extra_config": {"backend/http": {"return_error_code": true}}}]
    },
    {
      "endpoint": "/private",
      "extra_config": {"validation/json-schema": {"type": "object"}},
      "backend": [{"url_pattern": "/private"}]
    }
  ]
}"#;

#[test]
fn krakend_file_maps_onto_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = config::load(&write_krakend(dir.path(), MAPPED)).expect("valid");
    let s = &loaded.gateway.settings;
    assert_eq!(s.flavor, weir::model::Flavor::KrakenD);
    assert_eq!((s.port, s.timeout), (9000, Duration::from_millis(1500)));
    assert_eq!(s.cache_ttl, Duration::from_secs(60));
    assert!(s.return_error_message && s.echo && !s.debug && !s.access_log);
    assert_eq!(s.health_path, "/healthz");
    let cors = s.cors.as_ref().expect("cors");
    assert_eq!(cors.allow_origins, ["https://app.example"]);
    assert_eq!(cors.max_age, Some(Duration::from_secs(3600)));
    assert_eq!(cors.allow_methods, ["GET", "HEAD", "POST"]);

    assert_eq!(
        loaded.gateway.endpoints.len(),
        2,
        "the guarded endpoint is left out"
    );
    assert!(loaded.gateway.endpoints[1].backends[0].errors.return_code);
    let ep = &loaded.gateway.endpoints[0];
    assert_eq!(ep.method, weir::model::Method::Post);
    assert_eq!(ep.output_encoding, weir::model::OutputEncoding::Negotiate);
    assert_eq!(ep.concurrent_calls, 2);
    assert!(ep.input_headers.allows("x-id") && ep.input_query_strings.allows("q"));
    assert!(ep.sequential);
    assert_eq!(
        ep.static_response.as_ref().unwrap().strategy,
        weir::model::StaticStrategy::Errored
    );
    assert_eq!(ep.rate_limit.endpoint.unwrap().max_rate, 50);
    let (client_rate, key) = ep.rate_limit.client.clone().unwrap();
    assert_eq!(client_rate.max_rate, 5);
    assert_eq!(key, weir::model::ClientKey::Header("x-key".into()));

    let b = &ep.backends[0];
    assert_eq!(
        b.hosts[0].authority, "default.internal:8080",
        "service host is the default"
    );
    assert_eq!(b.encoding, weir::model::BackendEncoding::SafeJson);
    assert_eq!(b.target.as_deref(), Some("data"));
    assert_eq!(b.deny, ["secret"]);
    assert_eq!(b.mapping["name"], "fullName");
    assert_eq!(b.group.as_deref(), Some("user"));
    assert_eq!(b.errors.return_details.as_deref(), Some("users"));
    let cb = b.circuit_breaker.unwrap();
    assert_eq!(
        (cb.interval, cb.timeout, cb.max_errors),
        (Duration::from_secs(60), Duration::from_secs(10), 3),
        "KrakenD's breaker interval and timeout are whole seconds"
    );
    assert_eq!(b.rate_limit.unwrap().capacity, 40);
    let b = &ep.backends[1];
    assert!(b.is_collection);
    assert_eq!(b.flatmap.len(), 1);
    assert_eq!(b.hosts[0].authority, "orders.internal");
}

#[test]
fn unimplemented_namespaces_are_warned_once_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = config::load(&write_krakend(dir.path(), MAPPED)).expect("not fatal");
    let w = loaded.warnings.join("\n");
    let cache: Vec<_> = loaded
        .warnings
        .iter()
        .filter(|l| l.contains("\"qos/http-cache\""))
        .collect();
    assert_eq!(cache.len(), 1, "one line for a namespace used twice:\n{w}");
    assert!(
        cache[0].contains("backend[0]") && cache[0].contains("backend[1]"),
        "{w}"
    );
    assert!(
        w.contains("\"telemetry/logging\" is not implemented"),
        "{w}"
    );
    assert!(
        w.contains("/private is not served: it relies on validation/json-schema"),
        "{w}"
    );
}

#[test]
fn other_versions_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_krakend(dir.path(), r#"{"version": 2, "endpoints": []}"#);
    let err = config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("KrakenD configuration version 2 is not supported")
            && err.contains("version 3"),
        "{err}"
    );
}

#[test]
fn krakend_fields_weir_cannot_serve_are_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_krakend(
        dir.path(),
        r#"{"version": 3, "endpoints": [{"endpoint": "/a", "method": "HEAD",
            "backend": [{"host": ["http://h"], "url_pattern": "/", "encoding": "protobuf"}]}]}"#,
    );
    let err = config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("endpoint /a: method: \"HEAD\" is not supported"),
        "{err}"
    );
    assert!(err.contains("backend[0].encoding: \"protobuf\""), "{err}");
}

#[test]
fn weir_check_prints_the_warnings_and_refuses_other_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_krakend(dir.path(), MAPPED);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: ") && stderr.contains("\"qos/http-cache\""),
        "{stderr}"
    );
    let v2 = write_krakend(dir.path(), r#"{"version": 1}"#);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("check")
        .arg(&v2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 1 is not supported"));
}

#[test]
fn weir_convert_prints_settings_and_endpoint_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_krakend(dir.path(), MAPPED);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("convert")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("flavor: krakend"), "{yaml}");
    assert!(
        yaml.contains("kind: Endpoint\nmetadata:\n  name: users-id-post\n"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("path: /private"),
        "guarded endpoints are not converted"
    );
    assert!(
        yaml.starts_with("# Converted by `weir convert` from ")
            && yaml.contains("# Left out or changed, and why:\n#   - ")
            && yaml.contains(
                "#   - endpoints[2] /private is not served: it relies on validation/json-schema"
            ),
        "the header says what was dropped and why:\n{yaml}"
    );
    // The output is a valid manifest directory.
    let manifests = dir.path().join("m");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("all.yaml"), &yaml).unwrap();
    let loaded = config::load(&manifests).expect("converted output loads");
    assert_eq!(loaded.gateway.endpoints.len(), 2);
    assert_eq!(loaded.gateway.settings.flavor, weir::model::Flavor::KrakenD);
}

// ---------------------------------------------------------------- behaviour

#[tokio::test]
async fn krakend_conventions_on_the_wire() {
    let b = json_backend(200, r#"{"z":1,"a":{"y":2,"b":3}}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{"version": 3, "cache_ttl": "30s", "endpoints": [
            {{"endpoint": "/x", "backend": [{{"host": ["{}"], "url_pattern": "/x"}}]}}]}}"#,
        b.url()
    );
    let gw = serve(&write_krakend(dir.path(), &text), false).await;
    let r = get(&url(&gw, "/x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        r#"{"a":{"b":3,"y":2},"z":1}"#,
        "compact, keys sorted"
    );
    assert_eq!(r.header("x-krakend-completed"), Some("true"));
    assert_eq!(r.header("x-weir-completed"), None);
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    assert!(r
        .header("x-krakend")
        .is_some_and(|v| v.starts_with("Weir/")));
    let up = b.requests().pop().unwrap();
    assert_eq!(up.header("accept-encoding"), Some("gzip"));
    // Debug is off unless asked for.
    assert_eq!(get(&url(&gw, "/__debug/")).await.status, 404);
}

#[tokio::test]
async fn debug_flag_turns_on_the_debug_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_krakend(dir.path(), r#"{"version": 3, "endpoints": []}"#);
    let gw = serve(&path, true).await;
    let r = get(&url(&gw, "/__debug/anything")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"message":"pong"}"#)
    );
    let on = write_krakend(dir.path(), r#"{"version": 3, "debug_endpoint": true}"#);
    let loaded = config::load(&on).unwrap();
    assert!(loaded.gateway.settings.debug);
}

#[tokio::test]
async fn gzip_answers_from_backends_are_decoded() {
    let b = backend(|_| async {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(br#"{"zipped":true}"#).unwrap();
        let mut r = reply(200, "application/json", enc.finish().unwrap());
        r.headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
        r
    })
    .await;
    let gw = crate::support::gateway(&format!(
        "endpoints:\n  - path: /z\n    backends:\n      - hosts: [\"{}\"]\n        urlPattern: /z\n",
        b.url()
    ))
    .await;
    let r = get(&gw.url("/z")).await;
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"zipped":true}"#));
}

async fn gzip_backend(text: &'static [u8]) -> crate::support::Backend {
    backend(move |_| async move {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text).unwrap();
        let mut r = reply(200, "text/plain", enc.finish().unwrap());
        r.headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
        r
    })
    .await
}

#[tokio::test]
async fn krakend_no_op_decodes_the_gzip_it_asked_for() {
    // Go's client asks for gzip on its own and decodes it: the client sees plain text.
    let b = gzip_backend(b"streamed plain text").await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_krakend(
        dir.path(),
        &format!(
            r#"{{"version": 3, "endpoints": [{{"endpoint": "/raw", "output_encoding": "no-op",
                "backend": [{{"host": ["{}"], "url_pattern": "/raw", "encoding": "no-op"}}]}}]}}"#,
            b.url()
        ),
    );
    let gw = serve(&path, false).await;
    let r = get(&url(&gw, "/raw")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "streamed plain text"));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(b.requests()[0].header("accept-encoding"), Some("gzip"));
}

#[tokio::test]
async fn krakend_no_op_passes_gzip_through_when_the_client_asked_for_it() {
    let b = gzip_backend(b"compressed for the client").await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_krakend(
        dir.path(),
        &format!(
            r#"{{"version": 3, "endpoints": [{{"endpoint": "/raw", "output_encoding": "no-op",
                "input_headers": ["Accept-Encoding"],
                "backend": [{{"host": ["{}"], "url_pattern": "/raw", "encoding": "no-op"}}]}}]}}"#,
            b.url()
        ),
    );
    let gw = serve(&path, false).await;
    let r = send("GET", &url(&gw, "/raw"), &[("accept-encoding", "gzip")], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut plain)
        .unwrap();
    assert_eq!(plain, "compressed for the client");
}

#[tokio::test]
async fn trailing_slash_mismatch_redirects_301_for_get_and_307_otherwise() {
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let gw = crate::support::gateway(&format!(
        "endpoints:\n  - path: /users\n    backends: [{{hosts: [\"{u}\"], urlPattern: /u}}]\n  \
         - path: /orders/\n    method: POST\n    backends: [{{hosts: [\"{u}\"], urlPattern: /o}}]\n",
        u = b.url()
    ))
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let req = |method: &str, path: &str| {
        http::Request::builder()
            .method(method)
            .uri(gw.url(path))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap()
    };
    let r = client.request(req("GET", "/users/?a=1")).await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/users?a=1");
    let r = client.request(req("POST", "/orders")).await.unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/orders/");
    // Only when the other spelling is routed for this method.
    let r = client.request(req("GET", "/orders")).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(get(&gw.url("/nothing/")).await.status, 404);
}

const CORS_GATEWAY: &str = "
cors:
  allowOrigins: [\"https://app.example\"]
  allowMethods: [GET, POST]
  allowHeaders: [Content-Type]
  exposeHeaders: [X-Total]
  maxAge: 10m
  allowCredentials: true
endpoints:
  - path: /items
    backends: [{hosts: [\"URL\"], urlPattern: /items}]
";

#[tokio::test]
async fn cors_from_weir_settings() {
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let gw = crate::support::gateway(&CORS_GATEWAY.replace("URL", &b.url())).await;
    let pre = send(
        "OPTIONS",
        &gw.url("/items"),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(pre.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(pre.header("access-control-max-age"), Some("600"));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(b.hits(), 0, "preflights never reach backends");

    let refused = send(
        "OPTIONS",
        &gw.url("/items"),
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(refused.status, 204);
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let actual = send(
        "GET",
        &gw.url("/items"),
        &[("origin", "https://app.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(actual.status, 200);
    assert_eq!(
        actual.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        actual.header("access-control-expose-headers"),
        Some("X-Total")
    );
    assert_eq!(actual.header_all("vary"), ["Origin"]);
    let other = send(
        "GET",
        &gw.url("/items"),
        &[("origin", "https://evil.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn without_cors_settings_no_cors_headers_and_options_is_405() {
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let gw = crate::support::gateway(&format!(
        "endpoints:\n  - path: /items\n    backends: [{{hosts: [\"{}\"], urlPattern: /i}}]\n",
        b.url()
    ))
    .await;
    let r = send(
        "OPTIONS",
        &gw.url("/items"),
        &[
            ("origin", "https://a"),
            ("access-control-request-method", "GET"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 405);
    let r = send(
        "GET",
        &gw.url("/items"),
        &[("origin", "https://a")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("vary"), None);
}

#[test]
fn invalid_cors_settings_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, "cors:\n  maxAge: soon\n  allowMethods: [\"G T\"]\n").unwrap();
    let err = config::load(&path).unwrap_err().to_string();
    assert!(err.contains("cors.maxAge"), "{err}");
    assert!(err.contains("cors.allowMethods[0]"), "{err}");
}

// ---------------------------------------------------------------- edge: tls, use_h2c, client_tls

const EDGE_OK: &str = r#"{"ok":true}"#;

#[tokio::test]
async fn krakend_tls_converts_and_serves_https_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("edge CA");
    let (cert, key) = ca.server(&["a.test"]).write(dir.path(), "a");
    let b = json_backend(200, EDGE_OK).await;
    let text = format!(
        r#"{{"version": 3, "use_h2c": true,
            "tls": {{"keys": [{{"public_key": "{}", "private_key": "{}"}}], "min_version": "TLS12"}},
            "endpoints": [{{"endpoint": "/x", "backend": [{{"host": ["{}"], "url_pattern": "/x"}}]}}]}}"#,
        cert.display(),
        key.display(),
        b.url()
    );
    let source = write_krakend(dir.path(), &text);
    // `weir check` reads the certificate files through the import.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("check")
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = dir.path().join("converted");
    let convert = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["convert", "-o"])
        .arg(&out)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        convert.status.success(),
        "{}",
        String::from_utf8_lossy(&convert.stderr)
    );
    let settings = std::fs::read_to_string(out.join("gateway.yaml")).unwrap();
    assert!(
        settings.contains("http2: true") && settings.contains("minVersion: \"1.2\""),
        "{settings}"
    );

    let gw = serve(&out, false).await;
    let addr = gw.handle.proxy_addr;
    let h2 = send_with(
        &tls_client(&ca, "a.test", true),
        "GET",
        &format!("https://{addr}/x"),
        &[],
        "",
    )
    .await;
    assert_eq!(h2.status, 200, "{}", h2.text());
    assert_eq!(h2.header("x-test-version"), Some("HTTP/2.0"));
    assert_eq!(h2.json()["ok"], true);
    let h1 = send_with(
        &tls_client(&ca, "a.test", false),
        "GET",
        &format!("https://{addr}/x"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (h1.status, h1.header("x-test-version")),
        (200, Some("HTTP/1.1"))
    );
    // As KrakenD, TLS only: a plain request on the port gets no HTTP answer.
    let plain = tokio::time::timeout(
        Duration::from_secs(10),
        h2c_client().request(
            http::Request::get(format!("http://{addr}/x"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    )
    .await
    .expect("answer or error within 10s");
    assert!(plain.is_err(), "plain HTTP on the TLS port");
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn krakend_use_h2c_turns_h2c_on_and_its_absence_keeps_http_1_1() {
    let b = json_backend(200, EDGE_OK).await;
    let dir = tempfile::tempdir().unwrap();
    let file = |h2c: bool| {
        format!(
            r#"{{"version": 3, "use_h2c": {h2c},
                "endpoints": [{{"endpoint": "/x", "backend": [{{"host": ["{}"], "url_pattern": "/x"}}]}}]}}"#,
            b.url()
        )
    };
    let on = dir.path().join("on");
    std::fs::create_dir(&on).unwrap();
    let gw = serve(&write_krakend(&on, &file(true)), false).await;
    let r = send_with(&h2c_client(), "GET", &url(&gw, "/x"), &[], "").await;
    assert_eq!(
        (r.status, r.header("x-test-version")),
        (200, Some("HTTP/2.0"))
    );

    let off = dir.path().join("off");
    std::fs::create_dir(&off).unwrap();
    let gw = serve(&write_krakend(&off, &file(false)), false).await;
    assert!(
        !gw.handle.shared().table().settings().http2,
        "KrakenD without use_h2c speaks HTTP/1.1 only: http2 is off"
    );
    assert_eq!(get(&url(&gw, "/x")).await.status, 200, "HTTP/1.1 serves");
    assert_eq!(b.hits(), 2);
}

/// `http2: false` refuses h2c on a plain port (hyper-util's upgradeable connection sniffs
/// the HTTP/2 preface whatever `http1_only()` says; the listener closes such connections).
#[tokio::test]
async fn krakend_without_use_h2c_refuses_h2c() {
    let b = json_backend(200, EDGE_OK).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{"version": 3, "endpoints": [{{"endpoint": "/x", "backend": [{{"host": ["{}"], "url_pattern": "/x"}}]}}]}}"#,
        b.url()
    );
    let gw = serve(&write_krakend(dir.path(), &text), false).await;
    let h2c = tokio::time::timeout(
        Duration::from_secs(10),
        h2c_client().request(
            http::Request::get(url(&gw, "/x"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        ),
    )
    .await
    .expect("answer or error within 10s");
    assert!(
        h2c.is_err(),
        "KrakenD without use_h2c speaks no h2c: {h2c:?}"
    );
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn krakend_client_tls_reaches_a_private_ca_backend_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("backend CA");
    let ca_file = ca.write(dir.path());
    let (client_cert, client_key) = ca.client("weir").write(dir.path(), "client");
    // The backend is signed by the private CA and demands a client certificate from it.
    let backend = tls_backend(
        pki::server_config(&ca.server(&["127.0.0.1"]), Some(&ca), &[b"http/1.1"]),
        |_| async { reply(200, "application/json", EDGE_OK) },
    )
    .await;
    let file = |client_tls: &str| {
        format!(
            r#"{{"version": 3, {client_tls}
                "endpoints": [{{"endpoint": "/x", "backend": [{{"host": ["https://{}"], "url_pattern": "/x"}}]}}]}}"#,
            backend.addr
        )
    };
    let with = dir.path().join("with");
    std::fs::create_dir(&with).unwrap();
    let gw = serve(
        &write_krakend(
            &with,
            &file(&format!(
                r#""client_tls": {{"ca_certs": ["{}"], "disable_system_ca_pool": true,
                    "client_certs": [{{"certificate": "{}", "private_key": "{}"}}]}},"#,
                ca_file.display(),
                client_cert.display(),
                client_key.display()
            )),
        ),
        false,
    )
    .await;
    let r = get(&url(&gw, "/x")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ok"], true);
    assert_eq!(backend.hits(), 1);

    // Without client_tls the private CA is not trusted: the backend is never asked.
    let without = dir.path().join("without");
    std::fs::create_dir(&without).unwrap();
    let gw = serve(&write_krakend(&without, &file("")), false).await;
    assert_eq!(get(&url(&gw, "/x")).await.status, 500);
    assert_eq!(backend.hits(), 1);
}
