//! Rate limits (endpoint 503, client 429, backend) and circuit breakers through real sockets.

use std::time::Duration;

use crate::support::*;

fn one(settings: &str, endpoint_extra: &str, backend_extra: &str, url: &str) -> String {
    format!(
        "{settings}\nendpoints:\n- path: /r/{{id}}\n{endpoint_extra}  backends:\n  - hosts: [{url}]\n    urlPattern: /b/{{id}}\n{backend_extra}"
    )
}

async fn statuses(gw: &Gw, path: &str, n: usize, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(send("GET", &gw.url(path), headers, "").await.status);
    }
    out
}

#[tokio::test]
async fn endpoint_max_rate_answers_503_with_an_empty_body_and_spares_the_backend() {
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let gw = gateway(&one(
        "",
        "  rateLimit: {maxRate: 2, every: 1h}\n",
        "",
        &b.url(),
    ))
    .await;
    assert_eq!(statuses(&gw, "/r/1", 2, &[]).await, [200, 200]);
    let r = get(&gw.url("/r/1")).await;
    assert_eq!(r.status, 503);
    assert!(r.body.is_empty());
    assert_eq!(b.hits(), 2, "a rejected request never reaches the backend");
}

#[tokio::test]
async fn capacity_sets_the_burst() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&one(
        "",
        "  rateLimit: {maxRate: 1, capacity: 3, every: 1h}\n",
        "",
        &b.url(),
    ))
    .await;
    assert_eq!(statuses(&gw, "/r/1", 4, &[]).await, [200, 200, 200, 503]);
}

#[tokio::test]
async fn settings_default_applies_and_an_endpoint_can_override_or_disable_it() {
    let b = json_backend(200, "{}").await;
    let settings = "rateLimit: {maxRate: 1, every: 1h}";
    let gw = gateway(&format!(
        "{settings}\nendpoints:
- path: /default
  backends: [{{hosts: [{u}], urlPattern: /a}}]
- path: /own
  rateLimit: {{maxRate: 2, every: 1h}}
  backends: [{{hosts: [{u}], urlPattern: /a}}]
- path: /off
  rateLimit: {{maxRate: 0}}
  backends: [{{hosts: [{u}], urlPattern: /a}}]
",
        u = b.url()
    ))
    .await;
    assert_eq!(statuses(&gw, "/default", 2, &[]).await, [200, 503]);
    assert_eq!(statuses(&gw, "/own", 3, &[]).await, [200, 200, 503]);
    assert_eq!(statuses(&gw, "/off", 5, &[]).await, [200; 5]);
}

#[tokio::test]
async fn client_max_rate_by_ip_answers_429_with_an_empty_body() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&one(
        "",
        "  rateLimit: {clientMaxRate: 2, every: 1h}\n",
        "",
        &b.url(),
    ))
    .await;
    assert_eq!(statuses(&gw, "/r/1", 2, &[]).await, [200, 200]);
    let r = get(&gw.url("/r/1")).await;
    assert_eq!(r.status, 429);
    assert!(r.body.is_empty());
    assert_eq!(b.hits(), 2);
}

#[tokio::test]
async fn ip_strategy_with_key_believes_only_trusted_proxies() {
    // The test client connects from 127.0.0.1: trusted here, so the forwarding chain is
    // walked from the right past trusted hops (10.9.0.0/16 too).
    let b = json_backend(200, "{}").await;
    let gw = gateway(&one(
        "trustedProxies: [127.0.0.1/32, 10.9.0.0/16]\n",
        "  rateLimit: {clientMaxRate: 1, every: 1h, strategy: ip, key: X-Forwarded-For}\n",
        "",
        &b.url(),
    ))
    .await;
    let a = [("x-forwarded-for", "6.6.6.6, 10.0.0.1, 10.9.9.9")];
    let a2 = [("x-forwarded-for", "10.0.0.1")];
    let c = [("x-forwarded-for", "10.0.0.2, 10.9.9.9")];
    assert_eq!(statuses(&gw, "/r/1", 1, &a).await, [200]);
    assert_eq!(
        statuses(&gw, "/r/1", 1, &a2).await,
        [429],
        "same first untrusted address from the right"
    );
    assert_eq!(statuses(&gw, "/r/1", 1, &c).await, [200]);
    assert_eq!(
        statuses(&gw, "/r/1", 1, &[("x-forwarded-for", "not-an-ip")]).await,
        [429],
        "a value that is not an address is no key"
    );
}

#[tokio::test]
async fn ip_strategy_ignores_forwarding_headers_from_untrusted_peers() {
    // Without trusted proxies a client cannot pick its own key by writing X-Forwarded-For.
    let b = json_backend(200, "{}").await;
    let gw = gateway(&one(
        "",
        "  rateLimit: {clientMaxRate: 1, every: 1h, strategy: ip, key: X-Forwarded-For}\n",
        "",
        &b.url(),
    ))
    .await;
    assert_eq!(
        statuses(&gw, "/r/1", 1, &[("x-forwarded-for", "10.0.0.1")]).await,
        [200]
    );
    assert_eq!(
        statuses(&gw, "/r/1", 1, &[("x-forwarded-for", "10.0.0.2")]).await,
        [429],
        "the peer address is the key, whatever the header says"
    );
}

#[tokio::test]
async fn header_strategy_keys_by_header_value_and_refuses_a_missing_key() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&one(
        "",
        "  rateLimit: {clientMaxRate: 1, every: 1h, strategy: header, key: X-Api-Key}\n",
        "",
        &b.url(),
    ))
    .await;
    assert_eq!(
        statuses(&gw, "/r/1", 2, &[("x-api-key", "alice")]).await,
        [200, 429]
    );
    assert_eq!(
        statuses(&gw, "/r/1", 1, &[("X-API-KEY", "bob")]).await,
        [200]
    );
    let r = get(&gw.url("/r/1")).await;
    assert_eq!((r.status, r.body.len()), (429, 0));
}

#[tokio::test]
async fn param_strategy_keys_by_path_parameter() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&one(
        "",
        "  rateLimit: {clientMaxRate: 1, every: 1h, strategy: param, key: id}\n",
        "",
        &b.url(),
    ))
    .await;
    assert_eq!(statuses(&gw, "/r/1", 2, &[]).await, [200, 429]);
    assert_eq!(statuses(&gw, "/r/2", 1, &[]).await, [200]);
}

#[tokio::test]
async fn the_client_check_runs_before_the_endpoint_check() {
    let b = json_backend(200, "{}").await;
    let gw = gateway(&one(
        "",
        "  rateLimit: {maxRate: 2, clientMaxRate: 1, every: 1h, strategy: header, key: X-Client}\n",
        "",
        &b.url(),
    ))
    .await;
    let a = [("x-client", "a")];
    assert_eq!(statuses(&gw, "/r/1", 2, &a).await, [200, 429]);
    // Had the 429 consumed an endpoint token, the bucket would be empty now.
    assert_eq!(statuses(&gw, "/r/1", 1, &[("x-client", "b")]).await, [200]);
    assert_eq!(statuses(&gw, "/r/1", 1, &[("x-client", "c")]).await, [503]);
}

#[tokio::test]
async fn exhausted_backend_limit_fails_that_backend_without_calling_it() {
    let a = json_backend(200, r#"{"a":1}"#).await;
    let gw = gateway(&one(
        "",
        "",
        "    rateLimit: {maxRate: 1, every: 1h}\n",
        &a.url(),
    ))
    .await;
    assert_eq!(get(&gw.url("/r/1")).await.status, 200);
    let r = get(&gw.url("/r/1")).await;
    assert_eq!((r.status, r.completed()), (500, Some("false")));
    assert_eq!(a.hits(), 1);
}

#[tokio::test]
async fn exhausted_backend_limit_gives_a_partial_answer_when_merging() {
    let a = json_backend(200, r#"{"a":1}"#).await;
    let b = json_backend(200, r#"{"b":2}"#).await;
    let gw = gateway(&format!(
        "endpoints:
- path: /m
  backends:
  - hosts: [{}]
    urlPattern: /a
    rateLimit: {{maxRate: 1, every: 1h}}
  - hosts: [{}]
    urlPattern: /b
",
        a.url(),
        b.url()
    ))
    .await;
    assert_eq!(get(&gw.url("/m")).await.completed(), Some("true"));
    let r = get(&gw.url("/m")).await;
    assert_eq!((r.status, r.completed()), (200, Some("false")));
    assert_eq!(r.json(), serde_json::json!({"b": 2}));
    assert_eq!(a.hits(), 1);
}

/// A backend whose status can be switched while the test runs.
async fn switchable() -> (Backend, std::sync::Arc<std::sync::atomic::AtomicU16>) {
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(500));
    let s = status.clone();
    let b = backend(move |_| {
        let code = s.load(std::sync::atomic::Ordering::SeqCst);
        async move { reply(code, "application/json", r#"{"ok":true}"#) }
    })
    .await;
    (b, status)
}

#[tokio::test]
async fn breaker_opens_after_more_than_max_errors_then_half_opens() {
    let (b, status) = switchable().await;
    let gw = gateway(&one(
        "",
        "",
        "    circuitBreaker: {interval: 60s, timeout: 300ms, maxErrors: 1}\n",
        &b.url(),
    ))
    .await;
    assert_eq!(statuses(&gw, "/r/1", 2, &[]).await, [500, 500]);
    assert_eq!(b.hits(), 2);
    // Open: fails at once, the backend is not called.
    assert_eq!(statuses(&gw, "/r/1", 3, &[]).await, [500, 500, 500]);
    assert_eq!(b.hits(), 2);
    // After the open timeout one trial goes through; it fails, so the breaker re-opens.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(statuses(&gw, "/r/1", 2, &[]).await, [500, 500]);
    assert_eq!(b.hits(), 3);
    // Next trial succeeds and closes it.
    status.store(200, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(statuses(&gw, "/r/1", 3, &[]).await, [200, 200, 200]);
    assert_eq!(b.hits(), 6);
}

#[tokio::test]
async fn failures_reported_as_details_do_not_trip_the_breaker() {
    let b = json_backend(500, r#"{"boom":true}"#).await;
    let gw = gateway(&one(
        "",
        "",
        "    circuitBreaker: {interval: 60s, timeout: 60s, maxErrors: 0}\n    errors: {returnDetails: b}\n",
        &b.url(),
    ))
    .await;
    for _ in 0..4 {
        let r = get(&gw.url("/r/1")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["error_b"]["http_status_code"], 500);
    }
    assert_eq!(b.hits(), 4);
}

#[tokio::test]
async fn limiter_and_breaker_state_survive_an_unrelated_reload() {
    let ok = json_backend(200, "{}").await;
    let (bad, _) = switchable().await;
    let cfg = |extra: &str| {
        format!(
            "endpoints:
- path: /limited
  rateLimit: {{maxRate: 2, every: 1h}}
  backends: [{{hosts: [{ok}], urlPattern: /a}}]
- path: /broken
  backends:
  - hosts: [{bad}]
    urlPattern: /b
    circuitBreaker: {{interval: 60s, timeout: 60s, maxErrors: 0}}
{extra}",
            ok = ok.url(),
            bad = bad.url()
        )
    };
    let gw = gateway(&cfg("")).await;
    assert_eq!(statuses(&gw, "/limited", 1, &[]).await, [200]);
    assert_eq!(statuses(&gw, "/broken", 1, &[]).await, [500]);
    assert_eq!(bad.hits(), 1);
    let before = gw.generation();
    gw.rewrite(&cfg(&format!(
        "- path: /unrelated\n  backends: [{{hosts: [{}], urlPattern: /c}}]\n",
        ok.url()
    )));
    gw.wait_generation_above(before).await;
    assert_eq!(
        statuses(&gw, "/limited", 2, &[]).await,
        [200, 503],
        "counter kept"
    );
    assert_eq!(statuses(&gw, "/broken", 1, &[]).await, [500]);
    assert_eq!(bad.hits(), 1, "breaker still open");
}

#[tokio::test]
async fn changed_limits_start_fresh_after_a_reload() {
    let ok = json_backend(200, "{}").await;
    let cfg = |rate: u32| {
        format!(
            "endpoints:\n- path: /limited\n  rateLimit: {{maxRate: {rate}, every: 1h}}\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
            ok.url()
        )
    };
    let gw = gateway(&cfg(1)).await;
    assert_eq!(statuses(&gw, "/limited", 2, &[]).await, [200, 503]);
    let before = gw.generation();
    gw.rewrite(&cfg(2));
    gw.wait_generation_above(before).await;
    assert_eq!(statuses(&gw, "/limited", 3, &[]).await, [200, 200, 503]);
}

#[tokio::test]
async fn idle_client_state_is_forgotten() {
    let b = json_backend(200, "{}").await;
    // One token an hour, burst 1: every client's bucket stays empty for the whole test, so
    // neither the gateway's periodic sweep nor a slow machine can forget anyone early.
    let gw = gateway(&one(
        "",
        "  rateLimit: {clientMaxRate: 1, clientCapacity: 1, every: 1h, strategy: header, key: X-Client}\n",
        "",
        &b.url(),
    ))
    .await;
    for i in 0..300 {
        let key = format!("client-{i}");
        assert_eq!(statuses(&gw, "/r/1", 1, &[("x-client", &key)]).await, [200]);
    }
    let table = gw.gw.handle.shared().table();
    let limiter = table.endpoints[0].client_limiter.clone().unwrap().0;
    assert_eq!(limiter.tracked(), 300);
    table.forget_idle_clients();
    assert_eq!(limiter.tracked(), 300, "empty buckets are not idle");
    assert_eq!(
        statuses(&gw, "/r/1", 1, &[("x-client", "client-0")]).await,
        [429],
        "a kept client is still limited"
    );
    // An hour on, every bucket is full again: all of them are forgotten. (The timing of
    // forgetting itself is unit-tested on a paused clock in qos/client.rs.)
    limiter.forget_idle_at(tokio::time::Instant::now() + Duration::from_secs(3600));
    assert_eq!(limiter.tracked(), 0);
    assert_eq!(
        statuses(&gw, "/r/1", 1, &[("x-client", "client-0")]).await,
        [200],
        "a forgotten client starts with a full bucket"
    );
}
