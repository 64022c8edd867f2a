//! `weir controller` against a Kubernetes API server: the emulator on loopback in CI, or the
//! cluster named by `WEIR_TEST_KUBECONFIG`. Endpoint objects are created, changed and
//! deleted; the gateway must serve (or stop serving) them and write their status.

use std::time::Duration;

use crate::support::cluster::{Cluster, Controller};
use crate::support::*;

fn spec(path: &str, backend: &Backend, pattern: &str) -> String {
    format!(
        "path: {path}\nbackends:\n- hosts: [\"{}\"]\n  urlPattern: {pattern}\n",
        backend.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_updates_and_removes_endpoints_and_writes_status() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let ns = k.namespace("weir-life").await;
    let b = path_echo_backend().await;
    let c = Controller::start(&k, &ns, "life-0", &[]);

    // Ready once the first (empty) list became a table.
    c.wait_for("/__health/ready", "readiness", |s, _| s == 200)
        .await;
    c.wait_for("/__health/live", "liveness", |s, _| s == 200)
        .await;

    k.create(&ns, "users", &spec("/users/{id}", &b, "/v1/users/{id}"))
        .await
        .unwrap();
    let (_, body) = c
        .wait_for("/users/7", "the new endpoint served", |s, _| s == 200)
        .await;
    assert_eq!(body, r#"{"path":"/v1/users/7"}"#);

    let st = k.wait_accepted(&ns, "users", "Accepted").await;
    assert_eq!(st.observed_generation, Some(1));
    let accepted = st.condition("Accepted").unwrap();
    assert_eq!(accepted.status, "True");
    let programmed = st.condition("Programmed").unwrap();
    assert_eq!(
        (programmed.status.as_str(), programmed.reason.as_str()),
        ("True", "Programmed")
    );

    // An update is served, and the status follows the generation.
    k.update(&ns, "users", &spec("/users/{id}", &b, "/v2/users/{id}"))
        .await;
    c.wait_for("/users/7", "the update served", |s, b| {
        s == 200 && b.contains("/v2/users/7")
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let st = k.status(&ns, "users").await.unwrap_or_default();
        if st.observed_generation == Some(2) {
            assert_eq!(
                st.condition("Accepted").unwrap().observed_generation,
                Some(2)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "observedGeneration 2 not written: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A delete stops serving it.
    k.delete(&ns, "users").await;
    c.wait_for("/users/7", "the deleted endpoint gone", |s, _| s == 404)
        .await;
    assert_eq!(c.try_get("/__health/ready").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_conflicting_and_unresolved_endpoints_get_their_own_status() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let ns = k.namespace("weir-bad").await;
    let b = path_echo_backend().await;
    let c = Controller::start(&k, &ns, "bad-0", &[]);
    c.wait_for("/__health/ready", "readiness", |s, _| s == 200)
        .await;

    k.create(&ns, "good", &spec("/good", &b, "/good"))
        .await
        .unwrap();
    // Invalid: a timeout the API server cannot check, the controller can.
    let invalid = format!(
        "path: /invalid\ntimeout: soon\nbackends:\n- hosts: [\"{}\"]\n  urlPattern: /x\n",
        b.url()
    );
    k.create(&ns, "invalid", &invalid).await.unwrap();
    // Reserved path: a real API server refuses it (CEL rule); the emulator lets it through
    // and the controller reports it.
    let reserved = k
        .create(&ns, "reserved", &spec("/__debug/x", &b, "/x"))
        .await;
    if k.real {
        let err = reserved.expect_err("the CRD's rules refuse a reserved path");
        assert!(err.to_string().contains("reserved"), "{err}");
    } else {
        reserved.unwrap();
    }
    // Conflict: the older claim wins; creation times have one-second resolution, so make
    // the order unambiguous.
    k.create(&ns, "first", &spec("/shared", &b, "/first"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    k.create(&ns, "second", &spec("/shared", &b, "/second"))
        .await
        .unwrap();
    // A Service that does not exist: reported, still served.
    k.create(
        &ns,
        "svc",
        "path: /svc\nbackends:\n- service: {name: nowhere, port: 8080}\n  urlPattern: /x\n",
    )
    .await
    .unwrap();

    c.wait_for("/good", "the valid endpoint served", |s, _| s == 200)
        .await;
    let (_, body) = c
        .wait_for("/shared", "the older claim served", |s, _| s == 200)
        .await;
    assert!(body.contains("/first"), "{body}");

    let st = k.wait_accepted(&ns, "invalid", "Invalid").await;
    let a = st.condition("Accepted").unwrap();
    assert_eq!(a.status, "False");
    assert!(a.message.contains("spec.timeout"), "{}", a.message);
    assert_eq!(st.condition("Programmed").unwrap().status, "False");
    assert_eq!(c.try_get("/invalid").await.unwrap().0, 404);

    if !k.real {
        let st = k.wait_accepted(&ns, "reserved", "ReservedPath").await;
        assert!(st
            .condition("Accepted")
            .unwrap()
            .message
            .contains("reserved"));
    }

    let st = k.wait_accepted(&ns, "second", "Conflict").await;
    let a = st.condition("Accepted").unwrap();
    assert!(a.message.contains(&format!("{ns}/first")), "{}", a.message);
    k.wait_accepted(&ns, "first", "Accepted").await;

    let st = k.wait_accepted(&ns, "svc", "UnresolvedService").await;
    assert!(st
        .condition("Accepted")
        .unwrap()
        .message
        .contains("nowhere"));
    assert_eq!(st.condition("Programmed").unwrap().status, "True");
    k.wait_accepted(&ns, "good", "Accepted").await;

    // Each problem is also an Event on its object, with the reason and the message.
    for (name, reason, says) in [
        ("invalid", "Invalid", "spec.timeout"),
        ("second", "Conflict", "first"),
        ("svc", "UnresolvedService", "nowhere"),
    ] {
        let e = k.wait_event(&ns, name, reason).await;
        assert_eq!(e.type_.as_deref(), Some("Warning"), "{e:?}");
        assert!(e.note.as_deref().unwrap_or("").contains(says), "{e:?}");
        assert_eq!(e.reporting_controller.as_deref(), Some("weir-controller"));
        assert_eq!(e.reporting_instance.as_deref(), Some("bad-0"));
        let regarding = e.regarding.as_ref().unwrap();
        assert_eq!(regarding.namespace.as_deref(), Some(ns.as_str()));
        assert!(regarding.uid.is_some(), "{e:?}");
    }
    assert!(
        k.events(&ns, "good").await.is_empty(),
        "an accepted endpoint is no Event"
    );

    // The winner goes away: the other claim takes the route.
    k.delete(&ns, "first").await;
    c.wait_for("/shared", "the remaining claim served", |s, b| {
        s == 200 && b.contains("/second")
    })
    .await;
    k.wait_accepted(&ns, "second", "Accepted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_object_is_skipped_and_the_watch_goes_on() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    if k.real {
        eprintln!("skipped on a real cluster: its CRD schema refuses malformed objects");
        return;
    }
    let ns = k.namespace("weir-malformed").await;
    let b = path_echo_backend().await;
    let c = Controller::start(&k, &ns, "malformed-0", &[]);
    c.wait_for("/__health/ready", "readiness", |s, _| s == 200)
        .await;

    let api: kube::Api<kube::core::DynamicObject> = kube::Api::namespaced_with(
        k.client.clone(),
        &ns,
        &kube::core::ApiResource::erase::<weir::api::Endpoint>(&()),
    );
    let bad: kube::core::DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "broken"},
        "spec": {"path": "/broken", "backends": "not a list"},
    }))
    .unwrap();
    api.create(&Default::default(), &bad).await.unwrap();
    k.create(&ns, "after", &spec("/after", &b, "/after"))
        .await
        .unwrap();
    c.wait_for(
        "/after",
        "the object after the malformed one served",
        |s, _| s == 200,
    )
    .await;
    assert!(
        c.log().contains("malformed Endpoint skipped"),
        "log:\n{}",
        c.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_share_one_lease_and_only_the_holder_writes_status() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let ns = k.namespace("weir-lease").await;
    let b = path_echo_backend().await;
    let mut first = Controller::start(&k, &ns, "replica-a", &[]);
    first
        .wait_for("/__health/ready", "readiness", |s, _| s == 200)
        .await;
    // Let the first replica take the lease before the second one starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !first.log().contains("became leader") {
        assert!(
            std::time::Instant::now() < deadline,
            "no leader:\n{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = Controller::start(&k, &ns, "replica-b", &[]);
    second
        .wait_for("/__health/ready", "readiness", |s, _| s == 200)
        .await;

    k.create(&ns, "one", &spec("/one", &b, "/one"))
        .await
        .unwrap();
    // Both replicas serve it.
    first
        .wait_for("/one", "served by replica a", |s, _| s == 200)
        .await;
    second
        .wait_for("/one", "served by replica b", |s, _| s == 200)
        .await;
    k.wait_accepted(&ns, "one", "Accepted").await;
    // A problem is one Event, from the holder only.
    k.create(&ns, "bad", "path: /bad\ntimeout: soon\nbackends:\n- hosts: [\"http://127.0.0.1:9\"]\n  urlPattern: /x\n")
        .await
        .unwrap();
    k.wait_accepted(&ns, "bad", "Invalid").await;
    k.wait_event(&ns, "bad", "Invalid").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(first.log().contains("status written"), "{}", first.log());
    assert!(
        !second.log().contains("status written"),
        "the follower wrote status:\n{}",
        second.log()
    );
    let events = k.events(&ns, "bad").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].reporting_instance.as_deref(), Some("replica-a"));

    // The holder goes away; the other replica takes over within the lease duration (2s).
    first.kill();
    k.create(&ns, "two", &spec("/two", &b, "/two"))
        .await
        .unwrap();
    second
        .wait_for("/two", "served by replica b", |s, _| s == 200)
        .await;
    k.wait_accepted(&ns, "two", "Accepted").await;
    let log = second.log();
    assert!(log.contains("became leader"), "{log}");
    assert!(log.contains("status written"), "{log}");
    // The new holder found the status of `bad` already right: no second Event.
    let events = k.events(&ns, "bad").await;
    assert_eq!(events.len(), 1, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crd_stops_start_up_with_a_message() {
    if std::env::var_os("WEIR_TEST_KUBECONFIG").is_some() {
        eprintln!("skipped on a real cluster: the CRD is installed there");
        return;
    }
    let Some(k) = Cluster::start_with(&["coordination.k8s.io/v1/leases:Lease"]).await else {
        return;
    };
    let mut c = Controller::start(&k, "weir-nocrd", "nocrd-0", &[]);
    let (code, log) = c.wait_exit(Duration::from_secs(20));
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("kubectl apply -f crds/"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_keeps_the_last_table_serving() {
    let Some(mut k) = Cluster::start().await else {
        return;
    };
    if k.real {
        eprintln!("skipped on a real cluster: the test stops the API server");
        return;
    }
    let ns = k.namespace("weir-outage").await;
    let b = path_echo_backend().await;
    let c = Controller::start(&k, &ns, "outage-0", &[]);
    k.create(&ns, "kept", &spec("/kept", &b, "/kept"))
        .await
        .unwrap();
    c.wait_for("/kept", "served", |s, _| s == 200).await;

    k.stop_emulator();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !c.log().contains("watch failed") {
        assert!(
            std::time::Instant::now() < deadline,
            "no outage logged:\n{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = get(&c.url("/kept")).await;
    assert_eq!(r.status, 200, "the last table keeps serving");
    assert_eq!(get(&c.url("/__health/ready")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_neither_delays_new_endpoints_nor_fails_unchanged_routes() {
    let Some(k) = Cluster::start().await else {
        return;
    };
    let ns = k.namespace("weir-churn").await;
    let b = path_echo_backend().await;
    const CHURNED: usize = 10;
    for i in 0..CHURNED {
        k.create(
            &ns,
            &format!("churn-{i}"),
            &spec(&format!("/churn/{i}"), &b, "/v0"),
        )
        .await
        .unwrap();
    }
    k.create(&ns, "stable", &spec("/stable", &b, "/stable"))
        .await
        .unwrap();
    let c = Controller::start(&k, &ns, "churn-0", &[]);
    c.wait_for("/stable", "the stable endpoint served", |s, _| s == 200)
        .await;

    // Rewrites at up to 50 per second, for a bounded number of rounds.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (k_client, ns, url, done) = (k.client.clone(), ns.clone(), b.url(), done.clone());
        tokio::spawn(async move {
            let api: kube::Api<weir::api::Endpoint> = kube::Api::namespaced(k_client, &ns);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for round in 1..=150usize {
                tick.tick().await;
                let i = round % CHURNED;
                let patch = serde_json::json!({"spec": {
                    "path": format!("/churn/{i}"),
                    "backends": [{"hosts": [url], "urlPattern": format!("/v{round}")}],
                }});
                api.patch(
                    &format!("churn-{i}"),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .expect("rewrite");
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    // Meanwhile an unchanged route is asked again and again: never anything but 200.
    let prober = {
        let (url, done) = (c.url("/stable"), done.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let r = get(&url).await;
                if r.status == 200 && r.text().contains("/stable") {
                    ok += 1;
                } else {
                    failed.push((r.status, r.text()));
                }
            }
            (ok, failed)
        })
    };
    // A new endpoint during the churn is served.
    k.create(&ns, "fresh", &spec("/fresh", &b, "/fresh"))
        .await
        .unwrap();
    c.wait_for("/fresh", "the new endpoint served during churn", |s, _| {
        s == 200
    })
    .await;
    churn.await.unwrap();
    let (ok, failed) = prober.await.unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 0);
    // The last rewrite of each churned endpoint is what serves.
    c.wait_for("/churn/0", "the last rewrite served", |s, b| {
        s == 200 && b.contains("/v150")
    })
    .await;
    k.wait_accepted(&ns, "fresh", "Accepted").await;
}
