//! `/__stats`: exact counter values after a known sequence of requests, bounded label
//! cardinality, and the admin-port split.

use std::time::Duration;

use crate::support::*;

fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .collect()
}

fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start) && l[line_start.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn counters_match_a_known_sequence_of_requests() {
    let ok = json_backend(200, r#"{"ok":true}"#).await;
    let bad = json_backend(500, "{}").await;
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        reply(200, "application/json", "{}")
    })
    .await;
    use crate::support::config::{endpoint, upstream, Config};
    use weir::model::spec::RateLimitSpec;
    let limited = |path: &str, rate: RateLimitSpec| {
        let mut e = endpoint(path, [upstream(&ok.url(), "/a")]);
        e.rate_limit = Some(RateLimitSpec {
            every: Some("1h".into()),
            ..rate
        });
        e
    };
    let mut slow_ep = endpoint("/slow", [upstream(&slow.url(), "/c")]);
    slow_ep.timeout = Some("100ms".into());
    let yaml = Config::new()
        .setting("stats", serde_json::json!({"enabled": true}))
        .endpoint(endpoint("/ok", [upstream(&ok.url(), "/a")]))
        .endpoint(endpoint("/fail", [upstream(&bad.url(), "/b")]))
        .endpoint(slow_ep)
        .endpoint(limited(
            "/limited",
            RateLimitSpec {
                max_rate: Some(1),
                ..Default::default()
            },
        ))
        .endpoint(limited(
            "/client",
            RateLimitSpec {
                client_max_rate: Some(1),
                ..Default::default()
            },
        ))
        .yaml();
    let gw = gateway(&yaml).await;
    let mut got = Vec::new();
    for p in [
        "/ok", "/ok", "/fail", "/slow", "/limited", "/limited", "/client", "/client", "/nope",
    ] {
        got.push(get(&gw.url(p)).await.status);
    }
    assert_eq!(got, [200, 200, 500, 500, 200, 503, 200, 429, 404]);
    let r = get(&gw.url("/__stats")).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let t = r.text();
    let req = |ep: &str, status: u16| {
        value(
            &t,
            &format!("weir_requests_total{{endpoint=\"{ep}\",method=\"GET\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(req("/ok", 200), Some(2.0), "{t}");
    assert_eq!(req("/fail", 500), Some(1.0));
    assert_eq!(req("/slow", 500), Some(1.0));
    assert_eq!(req("/limited", 200), Some(1.0));
    assert_eq!(req("/limited", 503), Some(1.0));
    assert_eq!(req("/client", 429), Some(1.0));
    assert_eq!(req("", 404), Some(1.0));
    let call = |ep: &str, backend: &str, outcome: &str| {
        value(
            &t,
            &format!("weir_backend_calls_total{{backend=\"{backend}\",endpoint=\"{ep}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(call("/ok", &format!("{}/a", ok.url()), "ok"), Some(2.0));
    assert_eq!(
        call("/fail", &format!("{}/b", bad.url()), "failed_status"),
        Some(1.0)
    );
    assert_eq!(
        call("/slow", &format!("{}/c", slow.url()), "timeout"),
        Some(1.0)
    );
    assert_eq!(call("/slow", &format!("{}/c", slow.url()), "ok"), Some(0.0));
    let rej = |ep: &str, scope: &str| {
        value(
            &t,
            &format!("weir_rate_limit_rejections_total{{endpoint=\"{ep}\",scope=\"{scope}\"}}"),
        )
    };
    assert_eq!(rej("/limited", "endpoint"), Some(1.0));
    assert_eq!(rej("/client", "client"), Some(1.0));
    assert_eq!(rej("/ok", "endpoint"), Some(0.0));
    assert_eq!(
        value(
            &t,
            "weir_request_duration_seconds_count{endpoint=\"/ok\",method=\"GET\"}"
        ),
        Some(2.0)
    );
    assert_eq!(value(&t, "weir_endpoints_served"), Some(5.0));
    assert_eq!(value(&t, "weir_config_generation"), Some(1.0));
    // The scrape itself is in flight while it renders.
    assert_eq!(value(&t, "weir_requests_in_flight"), Some(1.0));
    assert!(value(&t, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(value(&t, "process_open_fds").unwrap() > 0.0);
}

#[tokio::test]
async fn reloads_and_breaker_state_are_exported() {
    let bad = json_backend(500, "{}").await;
    let cfg = |extra: &str| {
        format!(
            "stats: {{enabled: true}}
endpoints:
- path: /b
  backends:
  - hosts: [{}]
    urlPattern: /b
    circuitBreaker: {{interval: 60s, timeout: 60s, maxErrors: 0}}
{extra}",
            bad.url()
        )
    };
    let gw = gateway(&cfg("")).await;
    assert_eq!(get(&gw.url("/b")).await.status, 500);
    assert_eq!(get(&gw.url("/b")).await.status, 500);
    let before = gw.generation();
    gw.rewrite(&cfg(
        "- path: /c\n  backends: [{hosts: [\"http://127.0.0.1:1\"], urlPattern: /c}]\n",
    ));
    gw.wait_generation_above(before).await;
    let rejected = gw.rejected_reloads();
    gw.rewrite(&cfg(
        "- path: /c\n  backends: [{hosts: [], urlPattern: /c}]\n",
    ));
    gw.wait_rejected_above(rejected).await;
    let t = get(&gw.url("/__stats")).await.text();
    let backend = format!("{}/b", bad.url());
    assert_eq!(
        value(
            &t,
            &format!("weir_circuit_breaker_state{{backend=\"{backend}\",endpoint=\"/b\"}}")
        ),
        Some(1.0),
        "{t}"
    );
    assert_eq!(
        value(&t, &format!("weir_backend_calls_total{{backend=\"{backend}\",endpoint=\"/b\",outcome=\"breaker_open\"}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&t, "weir_config_reloads_total{result=\"applied\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&t, "weir_config_reloads_total{result=\"rejected\"}"),
        Some(1.0)
    );
    assert_eq!(value(&t, "weir_config_generation"), Some(2.0));
    assert_eq!(value(&t, "weir_endpoints_served"), Some(2.0));
}

#[tokio::test]
async fn series_of_removed_endpoints_leave_the_registry() {
    use crate::support::config::{endpoint, upstream, Config};
    let ok = json_backend(200, "{}").await;
    let cfg = |paths: &[&str]| {
        paths
            .iter()
            .fold(
                Config::new().setting("stats", serde_json::json!({"enabled": true})),
                |c, p| c.endpoint(endpoint(p, [upstream(&ok.url(), "/b")])),
            )
            .yaml()
    };
    let gw = gateway(&cfg(&["/keep", "/gone"])).await;
    for p in ["/keep", "/gone"] {
        assert_eq!(get(&gw.url(p)).await.status, 200);
    }
    let t = get(&gw.url("/__stats")).await.text();
    assert!(t.contains("endpoint=\"/gone\""), "{t}");
    let before = gw.generation();
    gw.rewrite(&cfg(&["/keep"]));
    gw.wait_generation_above(before).await;
    let t = get(&gw.url("/__stats")).await.text();
    assert!(!t.contains("endpoint=\"/gone\""), "{t}");
    assert_eq!(
        value(
            &t,
            "weir_requests_total{endpoint=\"/keep\",method=\"GET\",status=\"200\"}"
        ),
        Some(1.0),
        "{t}"
    );
}

#[tokio::test]
async fn label_cardinality_stays_bounded_whatever_clients_send() {
    let ok = json_backend(200, "{}").await;
    let gw = gateway(&format!(
        "stats: {{enabled: true}}\nendpoints:\n- path: /users/{{id}}\n  backends:\n  - hosts: [{}]\n    urlPattern: /u/{{id}}\n",
        ok.url()
    ))
    .await;
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "FOO", "BREW", "OPTIONS",
    ];
    for i in 0..400 {
        let method = methods[i % methods.len()];
        let path = match i % 3 {
            0 => format!("/users/{i}"),
            1 => format!("/random/{i}/{}", i * 7919),
            _ => format!("/users/{i}/extra?q={i}"),
        };
        send(method, &gw.url(&path), &[], "").await;
    }
    let t = get(&gw.url("/__stats")).await.text();
    let requests = series(&t, "weir_requests_total");
    // 400 distinct URLs and 8 methods. The ceiling: unmatched requests are 6 method labels
    // (5 known + OTHER) x {404, 405}, plus the endpoint's own GET 200 and GET 500 series.
    assert!(
        requests.len() <= 14,
        "{} series:\n{}",
        requests.len(),
        requests.join("\n")
    );
    assert!(!t.contains("/random/"), "raw URLs must never become labels");
    assert!(
        !t.contains("FOO") && !t.contains("BREW"),
        "unknown methods fold into OTHER"
    );
}

#[tokio::test]
async fn stats_are_served_on_the_admin_port_only_when_it_is_set() {
    let ok = json_backend(200, "{}").await;
    let admin = closed_port().await.port();
    let gw = gateway(&format!(
        "adminPort: {admin}\nstats: {{enabled: true}}\nendpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        ok.url()
    ))
    .await;
    assert_eq!(get(&gw.url("/__stats")).await.status, 404);
    let r = get(&gw.admin_url("/__stats")).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("weir_requests_total"));
}
