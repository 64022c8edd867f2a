//! Hot reload in local mode: atomic swaps under traffic, invalid changes rejected, no-op
//! changes skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;

/// Config version `k`: `/x` answers with the backend's echo of `/v/k`, `/stable` exists in
/// every version.
fn config(backend: &Backend, k: usize) -> String {
    format!(
        "endpoints:
- path: /x
  backends:
  - hosts: [{url}]
    urlPattern: /v/{k}
- path: /stable
  backends:
  - hosts: [{url}]
    urlPattern: /v/stable
",
        url = backend.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_traffic_never_fails_or_mixes_configs() {
    let b = path_echo_backend().await;
    let gw = Arc::new(gateway(&config(&b, 0)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let gw = gw.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut last_version = 0usize;
            let mut seen = 0usize;
            while !stop.load(Ordering::Relaxed) && seen < 20_000 {
                let r = get(&gw.url("/x")).await;
                assert_eq!(r.status, 200, "request {seen} failed: {}", r.text());
                assert_eq!(r.completed(), Some("true"));
                let path = r.json()["path"].as_str().unwrap().to_string();
                let version: usize = path.strip_prefix("/v/").unwrap().parse().unwrap();
                // Tables only move forward: a client never sees an older config after a newer one.
                assert!(
                    version >= last_version,
                    "went back from {last_version} to {version}"
                );
                last_version = version;
                let s = get(&gw.url("/stable")).await;
                assert_eq!(s.status, 200);
                seen += 1;
            }
            (seen, last_version)
        }));
    }
    let reloads = 40;
    for k in 1..=reloads {
        gw.rewrite(&config(&b, k));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // Let the last version land, then stop the clients.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&gw.url("/x")).await;
        if r.json()["path"] == format!("/v/{reloads}") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "final config never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (seen, _) = c.await.expect("client task panicked");
        total += seen;
    }
    assert!(total > 40, "too little traffic to mean anything: {total}");
    assert!(
        gw.generation() > 10,
        "few reloads observed: generation {}",
        gw.generation()
    );
}

#[tokio::test]
async fn invalid_change_keeps_the_previous_configuration() {
    let b = path_echo_backend().await;
    let gw = gateway(&config(&b, 1)).await;
    let before = gw.generation();
    gw.rewrite(&config(&b, 2).replace("urlPattern: /v/2", "urlPattern: /v/{undefined}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.generation(), before);
    assert_eq!(get(&gw.url("/x")).await.json()["path"], "/v/1");
    gw.rewrite("endpoints: [this is not: valid");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&gw.url("/x")).await.json()["path"], "/v/1");
    // A valid change after the broken ones is picked up.
    gw.rewrite(&config(&b, 3));
    gw.wait_generation_above(before).await;
    assert_eq!(get(&gw.url("/x")).await.json()["path"], "/v/3");
}

#[tokio::test]
async fn change_that_compiles_to_the_same_table_is_skipped() {
    let b = path_echo_backend().await;
    let gw = gateway(&config(&b, 1)).await;
    let before = gw.generation();
    gw.rewrite(&format!("# only a comment changed\n{}", config(&b, 1)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gw.generation(),
        before,
        "a comment-only change must not swap the table"
    );
    gw.rewrite(&config(&b, 2));
    gw.wait_generation_above(before).await;
    assert_eq!(get(&gw.url("/x")).await.json()["path"], "/v/2");
}

#[tokio::test]
async fn routes_are_added_and_removed_by_reload() {
    let b = path_echo_backend().await;
    let gw = gateway(&config(&b, 1)).await;
    assert_eq!(get(&gw.url("/new")).await.status, 404);
    let before = gw.generation();
    gw.rewrite(&format!(
        "{}- path: /new\n  backends:\n  - hosts: [{}]\n    urlPattern: /v/new\n",
        config(&b, 1),
        b.url()
    ));
    gw.wait_generation_above(before).await;
    assert_eq!(get(&gw.url("/new")).await.json()["path"], "/v/new");
    let before = gw.generation();
    gw.rewrite(&config(&b, 1));
    gw.wait_generation_above(before).await;
    assert_eq!(get(&gw.url("/new")).await.status, 404);
}

#[tokio::test]
async fn in_flight_request_finishes_on_the_old_table() {
    let slow = backend(|r| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        reply(
            200,
            "application/json",
            format!("{{\"path\":\"{}\"}}", r.path()),
        )
    })
    .await;
    let gw = Arc::new(gateway(&config(&slow, 1)).await);
    let g = gw.clone();
    let inflight = tokio::spawn(async move { get(&g.url("/x")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = gw.generation();
    // The new table drops /x entirely; the request already running must not notice.
    gw.rewrite(&format!(
        "endpoints:\n- path: /other\n  backends:\n  - hosts: [{}]\n    urlPattern: /o\n",
        slow.url()
    ));
    gw.wait_generation_above(before).await;
    let r = inflight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/v/1");
    assert_eq!(get(&gw.url("/x")).await.status, 404);
}
