//! Configuration files in local mode: what a reload refuses (an empty file, hostile
//! nesting) while the last good table keeps serving, and files holding several documents.

use std::time::{Duration, Instant};

use crate::support::*;

fn one_endpoint(backend: &Backend, path: &str) -> String {
    format!(
        "endpoints:\n- path: {path}\n  backends:\n  - hosts: [{}]\n    urlPattern: /v{path}\n",
        backend.url()
    )
}

/// How many reloads the gateway has refused so far (its own counter).
fn rejected(gw: &Gw) -> u64 {
    let text = gw.gw.handle.shared().metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix("weir_config_reloads_total{result=\"rejected\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the gateway has refused more than `than` reloads.
async fn wait_rejected_above(gw: &Gw, than: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while rejected(gw) <= than {
        assert!(Instant::now() < deadline, "the change was never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_file_that_became_empty_keeps_the_routes() {
    let b = path_echo_backend().await;
    let gw = gateway(&one_endpoint(&b, "/x")).await;
    let generation = gw.generation();
    for empty in ["", "# every line commented out\n", "---\n"] {
        let before = rejected(&gw);
        // Truncated in place, as `> file` or a writer caught between truncate and write.
        std::fs::write(&gw.path, empty).unwrap();
        wait_rejected_above(&gw, before).await;
        assert_eq!(gw.generation(), generation, "{empty:?} replaced the table");
        assert_eq!(get(&gw.url("/x")).await.status, 200, "{empty:?}");
    }
    // Serving nothing is still possible, when said so.
    gw.rewrite("endpoints: []\n");
    gw.wait_generation_above(generation).await;
    assert_eq!(get(&gw.url("/x")).await.status, 404);
}

#[tokio::test]
async fn hostile_nesting_on_reload_is_refused_and_the_routes_stay() {
    let b = path_echo_backend().await;
    let gw = gateway(&one_endpoint(&b, "/x")).await;
    let generation = gw.generation();
    for deep in [
        format!("endpoints: {}", "[".repeat(100_000)),
        format!("endpoints:\n{}", "- ".repeat(100_000)),
        format!(
            "endpoints:\n- path: /y\n  staticResponse:\n    strategy: always\n    data: {}\n",
            "{a: ".repeat(100_000)
        ),
    ] {
        let before = rejected(&gw);
        gw.rewrite(&deep);
        wait_rejected_above(&gw, before).await;
        assert_eq!(gw.generation(), generation);
        assert_eq!(get(&gw.url("/x")).await.status, 200);
    }
}

#[tokio::test]
async fn one_file_holds_settings_and_endpoint_manifests() {
    let b = path_echo_backend().await;
    let text = format!(
        "{}---
apiVersion: weir.dev/v1alpha1
kind: Endpoint
metadata:
  name: second
spec:
  path: /second
  backends:
    - hosts: [{url}]
      urlPattern: /v/second
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-ours
data: {{}}
",
        one_endpoint(&b, "/first"),
        url = b.url()
    );
    let gw = gateway(&text).await;
    assert_eq!(get(&gw.url("/first")).await.json()["path"], "/v/first");
    assert_eq!(get(&gw.url("/second")).await.json()["path"], "/v/second");
    // An edit to one manifest of the file is picked up like any other.
    let generation = gw.generation();
    gw.rewrite(&text.replace("/v/second", "/v/changed"));
    gw.wait_generation_above(generation).await;
    assert_eq!(get(&gw.url("/second")).await.json()["path"], "/v/changed");
}
