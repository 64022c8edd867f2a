//! What backends receive: whitelisted headers and query strings, forwarding headers,
//! path parameters that cannot change the backend path, request bodies, load balancing
//! and followed redirects.

use crate::support::*;

use bytes::Bytes;
use http::HeaderValue;

const OK: &str = r#"{"ok":true}"#;

/// A gateway with one GET endpoint `path` calling `backend_url` + `url_pattern`;
/// `extra` is appended to the endpoint (indented two spaces, e.g. `  inputHeaders: [A]\n`).
async fn one_backend_gateway(path: &str, backend_url: &str, url_pattern: &str, extra: &str) -> Gw {
    gateway(&format!(
        "endpoints:\n- path: {path}\n{extra}  backends:\n  - hosts: [{backend_url}]\n    urlPattern: {url_pattern}\n"
    ))
    .await
}

/// The single request a backend received.
fn only_request(b: &Backend) -> Recorded {
    let reqs = b.requests();
    assert_eq!(
        reqs.len(),
        1,
        "expected exactly one backend request, got {reqs:?}"
    );
    reqs.into_iter().next().unwrap()
}

/// Query pairs as received, in order.
fn query_pairs(r: &Recorded) -> Vec<String> {
    r.query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn only_whitelisted_headers_reach_the_backend_case_insensitively() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "  inputHeaders: [X-Y-Z]\n").await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[
            ("x-y-z", "wanted"),
            ("x-other", "unwanted"),
            ("authorization", "Bearer t"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("x-y-z"), Some("wanted"));
    assert_eq!(got.header("x-other"), None);
    assert_eq!(got.header("authorization"), None);
}

#[tokio::test]
async fn no_client_headers_are_forwarded_by_default() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "").await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[("x-y-z", "1"), ("cookie", "s=1"), ("accept", "text/html")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("x-y-z"), None);
    assert_eq!(got.header("cookie"), None);
    assert_eq!(got.header("accept"), None);
}

#[tokio::test]
async fn star_forwards_every_header() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "  inputHeaders: [\"*\"]\n").await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[
            ("x-a", "1"),
            ("X-B", "2"),
            ("authorization", "Bearer t"),
            ("cookie", "s=1"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("x-a"), Some("1"));
    assert_eq!(got.header("x-b"), Some("2"));
    assert_eq!(got.header("authorization"), Some("Bearer t"));
    assert_eq!(got.header("cookie"), Some("s=1"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_never_forwarded_even_with_star() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "  inputHeaders: [\"*\"]\n").await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[
            ("connection", "x-secret"),
            ("x-secret", "hidden"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("x-visible", "yes"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(
        got.header("x-visible"),
        Some("yes"),
        "control header must pass with *"
    );
    for name in [
        "x-secret",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
    ] {
        assert_eq!(got.header(name), None, "{name} must not be forwarded");
    }
    // hyper's client may add its own `connection` header, but never the client's token.
    for v in got.headers.get_all("connection") {
        assert!(
            !v.to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("x-secret"),
            "client's Connection value forwarded: {v:?}"
        );
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_never_forwarded_even_when_listed_explicitly() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway(
        "/h",
        &b.url(),
        "/h",
        "  inputHeaders: [Proxy-Authorization, Keep-Alive, X-Secret, X-Visible]\n",
    )
    .await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[
            ("connection", "x-secret"),
            ("x-secret", "hidden"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("x-visible", "yes"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("x-visible"), Some("yes"));
    assert_eq!(got.header("x-secret"), None);
    assert_eq!(got.header("keep-alive"), None);
    assert_eq!(got.header("proxy-authorization"), None);
}

#[tokio::test]
async fn backend_gets_forwarded_for_and_forwarded_host() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "").await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[("host", "shop.example.test:8443")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        got.header("x-forwarded-host"),
        Some("shop.example.test:8443")
    );
}

#[tokio::test]
async fn forwarded_host_is_the_default_client_host_header() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "").await;
    let r = get(&gw.url("/h")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    let expected = gw.addr().to_string();
    assert_eq!(got.header("x-forwarded-host"), Some(expected.as_str()));
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn user_agent_is_weir_when_client_user_agent_is_not_whitelisted() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "").await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[("user-agent", "curl/8.0")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    let expected = format!("Weir/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(got.header("user-agent"), Some(expected.as_str()));
    assert_eq!(got.headers.get_all("user-agent").iter().count(), 1);
}

#[tokio::test]
async fn user_agent_is_weir_when_client_sends_none() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "  inputHeaders: [X-A]\n").await;
    let r = get(&gw.url("/h")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    let expected = format!("Weir/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(got.header("user-agent"), Some(expected.as_str()));
}

#[tokio::test]
async fn whitelisted_client_user_agent_is_forwarded() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "  inputHeaders: [User-Agent]\n").await;
    let r = send(
        "GET",
        &gw.url("/h"),
        &[("user-agent", "curl/8.0")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("user-agent"), Some("curl/8.0"));
}

// ---------------------------------------------------------------- query strings

#[tokio::test]
async fn no_query_strings_are_forwarded_by_default() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/q", &b.url(), "/q", "").await;
    let r = get(&gw.url("/q?a=1&b=2")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.uri, "/q");
}

#[tokio::test]
async fn only_listed_query_strings_are_forwarded_keeping_repeated_keys() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/q", &b.url(), "/q", "  inputQueryStrings: [a, b]\n").await;
    let r = get(&gw.url("/q?a=1&c=9&a=2&b=3&ab=7")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.path(), "/q");
    assert_eq!(sorted(query_pairs(&got)), strings(&["a=1", "a=2", "b=3"]));
}

#[tokio::test]
async fn star_forwards_every_query_string() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/q", &b.url(), "/q", "  inputQueryStrings: [\"*\"]\n").await;
    let r = get(&gw.url("/q?x=1&y=2&x=3")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(sorted(query_pairs(&got)), strings(&["x=1", "x=3", "y=2"]));
}

#[tokio::test]
async fn url_pattern_query_combines_with_forwarded_query_strings() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway(
        "/q/{foo}",
        &b.url(),
        "/x?foo={foo}",
        "  inputQueryStrings: [a]\n",
    )
    .await;
    let r = get(&gw.url("/q/bar?a=1&z=9")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.path(), "/x");
    assert_eq!(sorted(query_pairs(&got)), strings(&["a=1", "foo=bar"]));
}

#[tokio::test]
async fn url_pattern_query_alone_when_client_sends_no_query() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway(
        "/q/{foo}",
        &b.url(),
        "/x?foo={foo}",
        "  inputQueryStrings: [a]\n",
    )
    .await;
    let r = get(&gw.url("/q/bar")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.uri, "/x?foo=bar");
}

// ---------------------------------------------------------------- backend-level filters

#[tokio::test]
async fn backend_input_headers_filter_again_what_the_endpoint_forwards() {
    // docs/configuration.md: a backend's inputHeaders is a second-level filter over the endpoint's list.
    let a = json_backend(200, r#"{"a":1}"#).await;
    let b = json_backend(200, r#"{"b":1}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /o\n  inputHeaders: [X-Ep, X-Both]\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n  - hosts: [{}]\n    urlPattern: /b\n    inputHeaders: [X-Both, X-Be]\n",
        a.url(),
        b.url()
    ))
    .await;
    let r = send(
        "GET",
        &gw.url("/o"),
        &[("x-ep", "ep"), ("x-be", "be"), ("x-both", "both")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
    let ga = only_request(&a);
    assert_eq!(ga.header("x-ep"), Some("ep"));
    assert_eq!(ga.header("x-both"), Some("both"));
    assert_eq!(ga.header("x-be"), None);
    let gb = only_request(&b);
    assert_eq!(gb.header("x-both"), Some("both"));
    assert_eq!(gb.header("x-ep"), None, "not in the backend's list");
    assert_eq!(gb.header("x-be"), None, "not forwarded by the endpoint");
}

#[tokio::test]
async fn backend_input_query_strings_filter_again_what_the_endpoint_forwards() {
    let a = json_backend(200, r#"{"a":1}"#).await;
    let b = json_backend(200, r#"{"b":1}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /o\n  inputQueryStrings: [ep, both]\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n  - hosts: [{}]\n    urlPattern: /b\n    inputQueryStrings: [both, be]\n",
        a.url(),
        b.url()
    ))
    .await;
    let r = get(&gw.url("/o?ep=1&be=2&both=3")).await;
    assert_eq!(r.status, 200);
    assert_eq!(only_request(&a).uri, "/a?ep=1&both=3");
    assert_eq!(only_request(&b).uri, "/b?both=3");
}

#[tokio::test]
async fn backend_wildcard_keeps_the_endpoint_list() {
    let b = json_backend(200, r#"{"b":1}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /o\n  inputHeaders: [X-Ep]\n  backends:\n  - hosts: [{}]\n    urlPattern: /b\n    inputHeaders: [\"*\"]\n",
        b.url()
    ))
    .await;
    let r = send(
        "GET",
        &gw.url("/o"),
        &[("x-ep", "ep"), ("x-other", "o")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("x-ep"), Some("ep"));
    assert_eq!(got.header("x-other"), None);
}

// ---------------------------------------------------------------- path parameters

/// Sends `/users/<raw>` and returns the raw path the backend saw.
async fn backend_path_for(raw: &str) -> String {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/users/{id}", &b.url(), "/api/users/{id}", "").await;
    let r = get(&gw.url(&format!("/users/{raw}"))).await;
    assert_eq!(r.status, 200, "client value {raw:?}: {}", r.text());
    let got = only_request(&b);
    assert_eq!(
        got.query(),
        None,
        "client value {raw:?} injected a query: {}",
        got.uri
    );
    let path = got.path().to_string();
    let rest = path
        .strip_prefix("/api/users/")
        .unwrap_or_else(|| panic!("client value {raw:?} changed the path: {path}"));
    assert!(!rest.is_empty(), "client value {raw:?}: empty segment");
    assert!(
        !rest.contains('/'),
        "client value {raw:?} added a segment: {path}"
    );
    assert!(
        !rest.contains('#'),
        "client value {raw:?} added a fragment: {path}"
    );
    assert!(
        rest != ".." && rest != ".",
        "client value {raw:?} is a dot segment: {path}"
    );
    path
}

#[tokio::test]
async fn plain_path_parameter_is_placed_into_the_backend_path() {
    assert_eq!(backend_path_for("42").await, "/api/users/42");
}

/// Sends `/users/<raw>` to an endpoint whose parameter lands in the backend path; returns
/// the status and how many requests the backend received.
async fn refused(raw: &str, extra: &str) -> (u16, usize) {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/users/{id}", &b.url(), "/api/users/{id}", extra).await;
    let r = get(&gw.url(&format!("/users/{raw}"))).await;
    (r.status, b.hits())
}

#[tokio::test]
async fn traversal_in_a_path_parameter_is_refused_before_any_backend_call() {
    // Decoded, each holds `/`, `\`, NUL or is a dot segment: a backend that decodes and
    // normalises its path (nginx does) would leave the pattern's prefix.
    for raw in [
        "..",
        ".",
        "%2E%2E",
        "%2e%2e",
        "%2F",
        "a%2Fb",
        "..%2F..%2Fadmin",
        "%2e%2e%2Finternal",
        "a%5Cb",
        "a%00b",
    ] {
        assert_eq!(refused(raw, "").await, (400, 0), "client value {raw:?}");
    }
}

#[tokio::test]
async fn allow_encoded_slashes_lets_slashes_through_but_never_dot_segments() {
    let opt_in = "  allowEncodedSlashes: true\n";
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/users/{id}", &b.url(), "/api/users/{id}", opt_in).await;
    let r = get(&gw.url("/users/a%2Fb")).await;
    assert_eq!(r.status, 200);
    assert_eq!(only_request(&b).path(), "/api/users/a%2Fb");
    for raw in ["..%2Fadmin", "a%2F..%2Fb", "%2e%2e", "a%5Cb"] {
        assert_eq!(refused(raw, opt_in).await, (400, 0), "client value {raw:?}");
    }
}

#[tokio::test]
async fn a_parameter_used_only_in_the_query_is_encoded_not_refused() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/users/{id}", &b.url(), "/api/users?id={id}", "").await;
    let r = get(&gw.url("/users/..%2Fx")).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.path(), "/api/users");
    assert_eq!(got.query(), Some("id=..%2Fx"));
}

#[tokio::test]
async fn encoded_question_mark_and_hash_in_path_parameter_stay_in_the_path() {
    assert_eq!(backend_path_for("x%3Fy%23z").await, "/api/users/x%3Fy%23z");
}

// ---------------------------------------------------------------- bodies and methods

#[tokio::test]
async fn post_body_is_forwarded_byte_for_byte() {
    let b = json_backend(201, r#"{"created":true}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /items\n  method: POST\n  backends:\n  - hosts: [{}]\n    urlPattern: /items\n",
        b.url()
    ))
    .await;
    let body = r#"{"name":"wéir","tags":["a","b"],"n":1.50,"nested":{"x":null}}"#;
    let r = send(
        "POST",
        &gw.url("/items"),
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "a backend 201 becomes 200");
    assert_eq!(r.json(), serde_json::json!({"created": true}));
    let got = only_request(&b);
    assert_eq!(got.method, http::Method::POST);
    assert_eq!(got.body, Bytes::from(body));
}

#[tokio::test]
async fn put_body_is_forwarded_byte_for_byte() {
    let b = json_backend(200, OK).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /items/{{id}}\n  method: PUT\n  backends:\n  - hosts: [{}]\n    urlPattern: /items/{{id}}\n",
        b.url()
    ))
    .await;
    let body = "{\n  \"a\" : [1, 2, 3]\n}\n";
    let r = send("PUT", &gw.url("/items/7"), &[], body).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.method, http::Method::PUT);
    assert_eq!(got.path(), "/items/7");
    assert_eq!(got.body, Bytes::from(body));
}

#[tokio::test]
async fn backend_method_override_is_used_with_the_body() {
    let b = json_backend(200, OK).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /items\n  method: POST\n  backends:\n  - hosts: [{}]\n    urlPattern: /store\n    method: PUT\n",
        b.url()
    ))
    .await;
    let body = r#"{"k":"v"}"#;
    let r = send("POST", &gw.url("/items"), &[], body).await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.method, http::Method::PUT);
    assert_eq!(got.body, Bytes::from(body));
}

#[tokio::test]
async fn get_endpoint_calls_backend_with_get_by_default() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/g", &b.url(), "/g", "").await;
    let r = get(&gw.url("/g")).await;
    assert_eq!(r.status, 200);
    assert_eq!(only_request(&b).method, http::Method::GET);
}

// ---------------------------------------------------------------- load balancing

#[tokio::test]
async fn several_hosts_share_the_requests() {
    let a = json_backend(200, r#"{"from":"a"}"#).await;
    let b = json_backend(200, r#"{"from":"b"}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /lb\n  backends:\n  - hosts: [{}, {}]\n    urlPattern: /lb\n",
        a.url(),
        b.url()
    ))
    .await;
    for _ in 0..10 {
        let r = get(&gw.url("/lb")).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(a.hits() + b.hits(), 10);
    assert!(a.hits() > 0, "host a got no requests (b got {})", b.hits());
    assert!(b.hits() > 0, "host b got no requests (a got {})", a.hits());
}

// ---------------------------------------------------------------- redirects

fn redirect(status: u16, location: &str) -> Reply {
    let mut r = reply(status, "text/plain", "");
    r.headers_mut()
        .insert("location", HeaderValue::from_str(location).unwrap());
    r
}

#[tokio::test]
async fn redirect_to_an_absolute_url_on_another_backend_is_followed() {
    let target = json_backend(200, r#"{"from":"target"}"#).await;
    let location = format!("{}/final", target.url());
    let origin = backend(move |_| {
        let location = location.clone();
        async move { redirect(302, &location) }
    })
    .await;
    let gw = one_backend_gateway("/r", &origin.url(), "/start", "").await;
    let r = get(&gw.url("/r")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(r.json(), serde_json::json!({"from": "target"}));
    assert_eq!(origin.hits(), 1);
    assert_eq!(only_request(&target).path(), "/final");
}

#[tokio::test]
async fn redirect_to_a_relative_path_is_followed_on_the_same_backend() {
    let b = backend(|req| async move {
        if req.path() == "/start" {
            redirect(302, "/final")
        } else {
            reply(200, "application/json", r#"{"from":"final"}"#)
        }
    })
    .await;
    let gw = one_backend_gateway("/r", &b.url(), "/start", "").await;
    let r = get(&gw.url("/r")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"from": "final"}));
    let paths: Vec<String> = b.requests().iter().map(|r| r.path().to_string()).collect();
    assert_eq!(paths, strings(&["/start", "/final"]));
}

#[tokio::test]
async fn see_other_after_post_is_followed_with_get() {
    let b = backend(|req| async move {
        if req.path() == "/submit" {
            redirect(303, "/result")
        } else {
            reply(200, "application/json", r#"{"done":true}"#)
        }
    })
    .await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /s\n  method: POST\n  backends:\n  - hosts: [{}]\n    urlPattern: /submit\n",
        b.url()
    ))
    .await;
    let r = send("POST", &gw.url("/s"), &[], r#"{"x":1}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"done": true}));
    let reqs = b.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path()),
        ("POST", "/submit")
    );
    assert_eq!(reqs[0].body, Bytes::from(r#"{"x":1}"#));
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].path()),
        ("GET", "/result")
    );
    assert!(
        reqs[1].body.is_empty(),
        "GET after 303 must not carry the body"
    );
}

// ---------------------------------------------------------------- encodings upstream

#[tokio::test]
async fn no_op_never_asks_the_backend_for_gzip_on_the_clients_behalf() {
    // A no-op answer reaches the client untouched, so compression is the client's call.
    let b = backend(|_| async { reply(200, "text/plain", "plain") }).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /raw\n  outputEncoding: no-op\n  backends:\n  - hosts: [{}]\n    urlPattern: /raw\n",
        b.url()
    ))
    .await;
    let r = get(&gw.url("/raw")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "plain"));
    assert_eq!(only_request(&b).header("accept-encoding"), None);
}

#[tokio::test]
async fn decoded_backends_may_be_asked_for_gzip() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/h", &b.url(), "/h", "").await;
    assert_eq!(get(&gw.url("/h")).await.status, 200);
    assert_eq!(only_request(&b).header("accept-encoding"), Some("gzip"));
}

#[tokio::test]
async fn buffered_bodies_go_upstream_with_a_content_length() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/p", &b.url(), "/p", "  method: POST\n").await;
    let r = send(
        "POST",
        &gw.url("/p"),
        &[("content-type", "application/json")],
        r#"{"k":1}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&b);
    assert_eq!(got.header("content-length"), Some("7"));
    assert_eq!(got.header("transfer-encoding"), None);
}

// ---------------------------------------------------------------- redirects and credentials

#[tokio::test]
async fn a_redirect_to_another_host_leaves_forwarded_credentials_behind() {
    let other = json_backend(200, OK).await;
    let target = format!("{}/landing", other.url());
    let first = backend(move |_| {
        let target = target.clone();
        async move {
            let mut r = reply(302, "text/plain", "");
            r.headers_mut().insert("location", target.parse().unwrap());
            r
        }
    })
    .await;
    let gw = one_backend_gateway("/r", &first.url(), "/start", "  inputHeaders: [\"*\"]\n").await;
    let r = send(
        "GET",
        &gw.url("/r"),
        &[
            ("authorization", "Bearer secret"),
            ("x-api-key", "k"),
            ("cookie", "s=1"),
            ("accept", "application/json"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = only_request(&other);
    assert_eq!(got.header("authorization"), None);
    assert_eq!(got.header("x-api-key"), None);
    assert_eq!(got.header("cookie"), None);
    assert_eq!(
        got.header("referer"),
        None,
        "the previous URL stays behind too"
    );
    assert_eq!(got.header("accept"), Some("application/json"));
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
    // The first hop, on the configured host, did get them.
    assert_eq!(only_request(&first).header("x-api-key"), Some("k"));
}

#[tokio::test]
async fn a_redirect_on_the_same_host_keeps_headers_and_sets_referer() {
    let b = backend(|r| async move {
        if r.path() == "/start" {
            let mut resp = reply(302, "text/plain", "");
            resp.headers_mut()
                .insert("location", "/landing".parse().unwrap());
            resp
        } else {
            reply(200, "application/json", OK)
        }
    })
    .await;
    let gw = one_backend_gateway("/r", &b.url(), "/start", "  inputHeaders: [X-Api-Key]\n").await;
    let r = send("GET", &gw.url("/r"), &[("x-api-key", "k")], Bytes::new()).await;
    assert_eq!(r.status, 200);
    let reqs = b.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].path(), "/landing");
    assert_eq!(reqs[1].header("x-api-key"), Some("k"));
    assert_eq!(
        reqs[1].header("referer"),
        Some(format!("{}/start", b.url()).as_str())
    );
}

#[tokio::test]
async fn allowed_query_pairs_are_re_encoded_so_nothing_rides_along() {
    let b = json_backend(200, OK).await;
    let gw = one_backend_gateway("/q", &b.url(), "/q", "  inputQueryStrings: [a]\n").await;
    let r = get(&gw.url("/q?a=1;admin=true&b=2&a=x%20y+z")).await;
    assert_eq!(r.status, 200);
    assert_eq!(only_request(&b).uri, "/q?a=1%3Badmin%3Dtrue&a=x%20y%20z");
}
