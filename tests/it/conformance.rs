//! KrakenD conformance: runs KrakenD CE's integration specs (one request, one expected
//! response each) against Weir serving KrakenD's own test configuration, with a loopback
//! backend that behaves as the specs' README describes.
//!
//! The specs come from `$WEIR_CONFORMANCE_DIR`, else `../shared/krakend-conformance` when it
//! exists, else the copy in `tests/fixtures/krakend`. Ports 8080 (gateway) and 8081 (backend) are rewritten
//! to ephemeral loopback ports in the configuration and in the expectations. The gateway's
//! product string (`KrakenD Version 2.7.0` as User-Agent, `X-Forwarded-Via` and `X-KrakenD`)
//! is normalised to Weir's, and the backend leaves Weir's own `Via: 1.1 weir` (the loop
//! detection KrakenD lacks) out of the headers it echoes; nothing else is normalised.
//!
//! One line per spec is printed (`cargo test --test conformance -- --nocapture`); the test
//! fails when a spec that is not skipped fails.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use weir::local::{self, LocalGateway, LocalOptions};

/// The product string KrakenD puts in its specs, and Weir's.
const KRAKEND_UA: &str = "KrakenD Version 2.7.0";
const WEIR_UA: &str = concat!("Weir/", env!("CARGO_PKG_VERSION"));

/// Specs for features Weir does not implement, by name prefix, with the missing feature.
const SKIPPED: [(&str, &str); 5] = [
    ("cel-", "CEL request/response validation (validation/cel)"),
    (
        "lua_",
        "Lua scripting (modifier/lua-proxy, modifier/lua-backend)",
    ),
    ("botdetector_", "bot detection (security/bot-detector)"),
    (
        "jsonschema_1",
        "request body JSON-schema validation (validation/json-schema)",
    ),
    ("rss", "RSS backend encoding (and it needs the internet)"),
];

fn conformance_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/krakend-conformance");
    if shared.join("krakend.json").is_file() {
        shared
    } else {
        root.join("tests/fixtures/krakend")
    }
}

// ------------------------------------------------------------------ the mock backend

/// Go's canonical header spelling (`x-y-z` → `X-Y-Z`), as the Go backend of the specs sees it.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn decode_component(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn query_map(query: Option<&str>) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.entry(decode_component(k))
            .or_default()
            .push(decode_component(v));
    }
    map
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        r.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    r
}

fn go_not_found() -> Reply {
    reply(
        404,
        &[
            ("content-type", "text/plain; charset=utf-8"),
            ("x-content-type-options", "nosniff"),
        ],
        "404 page not found\n",
    )
}

const XML_DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<user type="admin">
  <name>Elliot</name>
  <social>
    <facebook>https://facebook.com</facebook>
    <twitter>https://twitter.com</twitter>
    <youtube>https://youtube.com</youtube>
  </social>
</user>
"#;

fn echo(path: &str, query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Reply {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        // Go's server keeps Host and Transfer-Encoding out of the header map.
        if matches!(
            name.as_str(),
            "x-forwarded-for" | "host" | "transfer-encoding"
        ) {
            continue;
        }
        // Weir names itself in Via; KrakenD sends none. Anything else in Via is echoed.
        if name == "via" && value == "1.1 weir" {
            continue;
        }
        seen.entry(canonical(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let q = query_map(query);
    let mut doc = json!({
        "path": decode_component(path),
        "query": q,
        "headers": seen,
        "foo": 42,
    });
    if q.get("dump_body")
        .is_some_and(|v| v.iter().any(|x| x == "1"))
    {
        doc["body"] = Value::String(String::from_utf8_lossy(body).into_owned());
    }
    reply(
        200,
        &[
            ("content-type", "application/json"),
            ("set-cookie", "test1=test1"),
            ("set-cookie", "test2=test2"),
        ],
        format!("{doc}\n"),
    )
}

async fn backend_answer(method: Method, uri: http::Uri, headers: HeaderMap, body: Bytes) -> Reply {
    let path = uri.path().to_string();
    let query = uri.query().map(str::to_string);
    let _ = method;
    if path == "/jwk/symmetric" {
        // The set of the specs' README: sim2 is RFC 7515's HMAC key (appendix A.1).
        return reply(
            200,
            &[("content-type", "application/json")],
            r#"{"keys": [
  {"kty": "oct", "alg": "A128KW", "k": "GawgguFyGrWKav7AX4VKUg", "kid": "sim1"},
  {"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow", "kid": "sim2", "alg": "HS256"}
]}"#,
        );
    }
    let known_prefixes = [
        "/param_forwarding/",
        "/collection/",
        "/delayed/",
        "/redirect/",
    ];
    // Go's ServeMux: a subtree pattern without its slash redirects to it, query kept.
    if let Some(prefix) = known_prefixes
        .iter()
        .find(|p| path == p.trim_end_matches('/'))
    {
        let location = match &query {
            Some(q) => format!("{prefix}?{q}"),
            None => prefix.to_string(),
        };
        return reply(301, &[("location", &location)], "");
    }
    let routed = path == "/xml" || known_prefixes.iter().any(|p| path.starts_with(p));
    if !routed {
        return go_not_found();
    }
    let xff_ok = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    if !xff_ok {
        return reply(400, &[], "invalid X-Forwarded-For");
    }
    if path == "/xml" {
        return reply(200, &[("content-type", "application/xml")], XML_DOC);
    }
    if path.starts_with("/collection/") {
        let items: Vec<Value> = (0..10).map(|i| json!({"path": path, "i": i})).collect();
        return reply(
            200,
            &[("content-type", "application/json")],
            Value::Array(items).to_string(),
        );
    }
    if path.starts_with("/redirect/") {
        let status = query_map(query.as_deref())
            .get("status")
            .and_then(|v| v.first())
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(302);
        let location = match &query {
            Some(q) => format!("/param_forwarding/?{q}"),
            None => "/param_forwarding/".to_string(),
        };
        return reply(status, &[("location", &location)], "");
    }
    if path.starts_with("/delayed/") {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    echo(&path, query.as_deref(), &headers, &body)
}

async fn start_backend(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    Ok::<_, Infallible>(
                        backend_answer(parts.method, parts.uri, parts.headers, body).await,
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

// ------------------------------------------------------------------ the runner

struct Ports {
    gateway: u16,
    backend: u16,
}

impl Ports {
    /// The expectations and the configuration name 8080/8081; use the real ports, and
    /// Weir's product string where KrakenD names itself.
    fn rewrite(&self, text: &str) -> String {
        text.replace("localhost:8080", &format!("localhost:{}", self.gateway))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", self.gateway))
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{}", self.backend))
            .replace(KRAKEND_UA, WEIR_UA)
    }

    fn rewrite_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.rewrite(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.rewrite_value(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (self.rewrite(k), self.rewrite_value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

type TestClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Sends the spec's request like Go's client does (User-Agent and Accept-Encoding defaults,
/// `Content-Length: 0` on an empty POST, redirects followed, gzip decoded).
async fn perform(client: &TestClient, ports: &Ports, input: &Value) -> Result<Answer, String> {
    let mut method: Method = input["method"]
        .as_str()
        .unwrap_or("GET")
        .parse()
        .map_err(|e| format!("method: {e}"))?;
    let url = ports.rewrite(input["url"].as_str().ok_or("no url")?);
    let mut path_and_query = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/".into());
    let mut body = match &input["body"] {
        Value::Null => Bytes::new(),
        Value::String(s) => Bytes::from(s.clone()),
        other => Bytes::from(other.to_string()),
    };
    let mut headers = HeaderMap::new();
    if let Some(h) = input["header"].as_object() {
        for (k, v) in h {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
                HeaderValue::from_str(&v).map_err(|e| e.to_string())?,
            );
        }
    }
    headers
        .entry("user-agent")
        .or_insert(HeaderValue::from_static("Go-http-client/1.1"));
    headers
        .entry("accept-encoding")
        .or_insert(HeaderValue::from_static("gzip"));
    let host = format!("localhost:{}", ports.gateway);
    for _ in 0..10 {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!(
                "http://127.0.0.1:{}{path_and_query}",
                ports.gateway
            ))
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        *req.headers_mut() = headers.clone();
        req.headers_mut()
            .insert("host", HeaderValue::from_str(&host).unwrap());
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            req.headers_mut()
                .insert("content-length", HeaderValue::from(body.len()));
        }
        let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
            .await
            .map_err(|_| "no answer within 10s".to_string())?
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        if status.is_redirection() {
            if let Some(loc) = resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                path_and_query = loc.to_string();
                if !matches!(status.as_u16(), 307 | 308) && method != Method::GET {
                    method = Method::GET;
                    body = Bytes::new();
                }
                continue;
            }
        }
        let (parts, b) = resp.into_parts();
        let mut bytes = b.collect().await.map_err(|e| e.to_string())?.to_bytes();
        if parts
            .headers
            .get("content-encoding")
            .is_some_and(|v| v == "gzip")
        {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            bytes = Bytes::from(out);
        }
        return Ok(Answer {
            status: status.as_u16(),
            headers: parts.headers,
            body: bytes,
        });
    }
    Err("too many redirects".into())
}

/// The small part of JSON Schema the specs use: type, required, properties, enum.
fn schema_errors(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: not of type {t}: {v}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(v) {
            errors.push(format!("{at}: {v} not in {options:?}"));
        }
    }
    if let (Some(required), Some(obj)) = (schema["required"].as_array(), v.as_object()) {
        for r in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                errors.push(format!("{at}: missing required {r}"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), v.as_object()) {
        for (k, sub) in props {
            if let Some(x) = obj.get(k) {
                schema_errors(sub, x, &format!("{at}.{k}"), errors);
            }
        }
    }
}

/// Compares an answer with the spec's `out`; returns the differences.
fn differences(ports: &Ports, out: &Value, got: &Answer) -> Vec<String> {
    let mut diffs = Vec::new();
    if let Some(status) = out["status_code"].as_u64() {
        if status != u64::from(got.status) {
            diffs.push(format!("status: want {status}, got {}", got.status));
        }
    }
    if let Some(headers) = out["header"].as_object() {
        for (name, want) in headers {
            let mut want: Vec<String> = want
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|s| ports.rewrite(s))
                        .collect()
                })
                .unwrap_or_default();
            if name.eq_ignore_ascii_case("x-krakend") {
                want = vec![WEIR_UA.to_string()];
            }
            let have: Vec<String> = got
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            let absent = want == [""];
            if (absent && !have.is_empty()) || (!absent && have != want) {
                diffs.push(format!("header {name}: want {want:?}, got {have:?}"));
            }
        }
    }
    let text = String::from_utf8_lossy(&got.body);
    if let Some(schema) = out.get("schema").filter(|s| s.is_object()) {
        match serde_json::from_slice::<Value>(&got.body) {
            Ok(v) => schema_errors(schema, &v, "body", &mut diffs),
            Err(e) => diffs.push(format!("body is not JSON ({e}): {text:?}")),
        }
    } else {
        match &out["body"] {
            Value::Null => {}
            Value::String(want) => {
                let want = ports.rewrite(want);
                if want != text {
                    diffs.push(format!("body:\n    want {want:?}\n    got  {text:?}"));
                }
            }
            want => {
                let want = ports.rewrite_value(want);
                match serde_json::from_slice::<Value>(&got.body) {
                    Ok(v) if v == want => {}
                    _ => diffs.push(format!("body:\n    want {want}\n    got  {text}")),
                }
            }
        }
    }
    diffs
}

/// Binds an ephemeral loopback port and frees it for the gateway to take.
async fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

async fn start_gateway(config: PathBuf) -> LocalGateway {
    let mut opts = LocalOptions::new(config);
    opts.bind = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    opts.access_log = Some(false);
    // KrakenD's suite runs its binary with `-d`: specs use /__debug/ as a backend.
    opts.debug = true;
    local::start(opts).await.expect("gateway starts")
}

#[derive(Default)]
struct Tally {
    passed: Vec<String>,
    failed: Vec<String>,
    skipped: Vec<String>,
}

async fn run_specs(dir: &Path, ports: &Ports, label: &str) -> Tally {
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut tally = Tally::default();
    for path in names {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if let Some((_, feature)) = SKIPPED.iter().find(|(p, _)| name.starts_with(p)) {
            println!("[{label}] skipped {name}: {feature} is not implemented");
            tally.skipped.push(name);
            continue;
        }
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let diffs = match perform(&client, ports, &spec["in"]).await {
            Ok(answer) => differences(ports, &spec["out"], &answer),
            Err(e) => vec![e],
        };
        if diffs.is_empty() {
            println!("[{label}] pass    {name}");
            tally.passed.push(name);
        } else {
            println!("[{label}] FAIL    {name}: {}", diffs.join("; "));
            tally.failed.push(name);
        }
    }
    println!(
        "[{label}] {} passed, {} failed, {} skipped",
        tally.passed.len(),
        tally.failed.len(),
        tally.skipped.len()
    );
    tally
}

fn check_tally(tally: &Tally) {
    assert!(tally.failed.is_empty(), "failed specs: {:?}", tally.failed);
    // The 29 proxy-core and 5 CORS specs of KrakenD 2.7 (at least) must have run and passed.
    assert!(
        tally.passed.len() >= 34,
        "only {} passed",
        tally.passed.len()
    );
    assert!(
        tally
            .passed
            .iter()
            .filter(|n| n.starts_with("cors_"))
            .count()
            >= 5
    );
    // JWT validation (jwt_1, 2, 3, 5, router_401_1) and signing (jwt_4).
    for name in ["jwt_1", "jwt_2", "jwt_3", "jwt_4", "jwt_5", "router_401_1"] {
        assert!(
            tally.passed.iter().any(|n| n == name),
            "{name} did not pass"
        );
    }
}

async fn setup() -> (Ports, PathBuf, tempfile::TempDir) {
    let dir = conformance_dir();
    let backend_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let ports = Ports {
        gateway: free_port().await,
        backend: backend_listener.local_addr().unwrap().port(),
    };
    start_backend(backend_listener).await;
    let text = std::fs::read_to_string(dir.join("krakend.json")).unwrap();
    let text = ports
        .rewrite(&text)
        .replace("\"port\": 8080", &format!("\"port\": {}", ports.gateway));
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("krakend.json");
    std::fs::write(&config, text).unwrap();
    println!("specs from {}", dir.display());
    (ports, config, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn krakend_conformance_specs() {
    let (ports, config, _tmp) = setup().await;
    let gw = start_gateway(config).await;
    let tally = run_specs(&conformance_dir(), &ports, "krakend.json").await;
    gw.handle.shutdown(Duration::from_millis(100)).await;
    check_tally(&tally);
}

/// `weir convert` output, served as a manifest directory, answers the specs the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converted_manifests_pass_the_same_specs() {
    let (ports, config, tmp) = setup().await;
    let (yaml, _warnings) = weir::config::krakend::convert_file(&config).unwrap();
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("gateway.yaml"), yaml).unwrap();
    let gw = start_gateway(manifests).await;
    assert_eq!(
        gw.handle.proxy_addr,
        SocketAddr::from((Ipv4Addr::LOCALHOST, ports.gateway))
    );
    let tally = run_specs(&conformance_dir(), &ports, "converted").await;
    gw.handle.shutdown(Duration::from_millis(100)).await;
    check_tally(&tally);
}
