//! A Kubernetes API server for controller tests: the API-server emulator on loopback
//! (`kube-emulator.py`, PyPI `kmock==0.8`), or a real cluster when `WEIR_TEST_KUBECONFIG`
//! names a kubeconfig. Also starts `weir controller` processes against it.
//!
//! Without an emulator (no Python with kmock) the tests skip loudly, except in CI
//! (`CI=true`), where they fail: a green CI must mean they ran.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, CustomResourceExt};

use weir::api::{Endpoint, EndpointSpec, EndpointStatus};

/// Resources the emulator serves for these tests (the controller records its Events with
/// `events.k8s.io/v1`, as kube's recorder does).
pub const RESOURCES: [&str; 4] = [
    "weir.dev/v1alpha1/endpoints:Endpoint",
    "coordination.k8s.io/v1/leases:Lease",
    "v1/services:Service",
    "events.k8s.io/v1/events:Event",
];

/// An API server to test against.
pub struct Cluster {
    /// Kubeconfig the controllers use.
    pub kubeconfig: PathBuf,
    /// A client for the test itself.
    pub client: Client,
    /// A real cluster (not the emulator).
    pub real: bool,
    /// The emulator's port (emulator only).
    pub port: u16,
    emulator: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut c) = self.emulator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that has kmock: `WEIR_TEST_PYTHON`, the repo's `.venv`, or `python3`.
fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("WEIR_TEST_PYTHON").map(PathBuf::from),
        Some(repo().join(".venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import kmock"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// The cluster for a test: real with `WEIR_TEST_KUBECONFIG`, else the emulator; `None`
    /// (after a loud message) when neither is available outside CI.
    pub async fn start() -> Option<Cluster> {
        Self::start_with(&RESOURCES).await
    }

    /// Like [`Cluster::start`], with the emulator serving only `resources`.
    pub async fn start_with(resources: &[&str]) -> Option<Cluster> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(path) = std::env::var_os("WEIR_TEST_KUBECONFIG") {
            let kubeconfig = PathBuf::from(path);
            let client = client_for(&kubeconfig).await;
            install_crd(&client).await;
            return Some(Cluster {
                kubeconfig,
                client,
                real: true,
                port: 0,
                emulator: None,
                _dir: dir,
            });
        }
        let Some(python) = python() else {
            let msg = "the Kubernetes API emulator needs Python with kmock==0.8 (run .ci/run, or \
                       `python3 -m venv .venv && .venv/bin/pip install kmock==0.8`), or set \
                       WEIR_TEST_KUBECONFIG to a real cluster";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("controller tests cannot run in CI: {msg}");
            }
            // Straight to the process's stderr: libtest captures eprintln!, and a skip must be seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("\n!!!! SKIPPING controller test: {msg} !!!!\n").as_bytes(),
            );
            return None;
        };
        let port = free_port();
        let emulator = spawn_emulator(&python, port, resources);
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_text(port)).unwrap();
        let client = client_for(&kubeconfig).await;
        Some(Cluster {
            kubeconfig,
            client,
            real: false,
            port,
            emulator: Some(emulator),
            _dir: dir,
        })
    }

    /// Stops the emulator (an API-server outage).
    pub fn stop_emulator(&mut self) {
        if let Some(mut c) = self.emulator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A fresh namespace for one test (created on a real cluster; the emulator needs none).
    pub async fn namespace(&self, prefix: &str) -> String {
        let ns = format!("{prefix}-{}", std::process::id() % 100_000);
        if self.real {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let obj: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
            let _ = api.create(&PostParams::default(), &obj).await;
        }
        ns
    }

    /// `Endpoint` objects of `ns`.
    pub fn endpoints(&self, ns: &str) -> Api<Endpoint> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates an Endpoint from spec YAML.
    pub async fn create(&self, ns: &str, name: &str, spec_yaml: &str) -> kube::Result<Endpoint> {
        let spec: EndpointSpec = serde_saphyr::from_str(spec_yaml).expect("test spec parses");
        self.endpoints(ns)
            .create(&PostParams::default(), &Endpoint::new(name, spec.into()))
            .await
    }

    /// Replaces an Endpoint's spec.
    pub async fn update(&self, ns: &str, name: &str, spec_yaml: &str) {
        let spec: EndpointSpec = serde_saphyr::from_str(spec_yaml).expect("test spec parses");
        let patch = serde_json::json!({ "spec": spec });
        self.endpoints(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("update");
    }

    /// Deletes an Endpoint.
    pub async fn delete(&self, ns: &str, name: &str) {
        self.endpoints(ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    /// The status of an Endpoint.
    pub async fn status(&self, ns: &str, name: &str) -> Option<EndpointStatus> {
        self.endpoints(ns).get(name).await.ok()?.status
    }

    /// Waits until the `Accepted` condition of `ns/name` has `reason` (and returns the status).
    pub async fn wait_accepted(&self, ns: &str, name: &str, reason: &str) -> EndpointStatus {
        let mut last = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            last = self.status(ns, name).await;
            if last
                .as_ref()
                .and_then(|s| s.condition("Accepted"))
                .is_some_and(|c| c.reason == reason)
            {
                return last.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{ns}/{name}: Accepted reason {reason} not written within 20s; last status {last:#?}"
        );
    }
}

impl Cluster {
    /// The Events (`events.k8s.io/v1`) about the Endpoint `ns/name`.
    pub async fn events(&self, ns: &str, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let Ok(list) = api.list(&Default::default()).await else {
            return Vec::new();
        };
        list.items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Endpoint") && r.name.as_deref() == Some(name)
                })
            })
            .collect()
    }

    /// Waits until an Event with `reason` about the Endpoint `ns/name` exists (and returns it).
    pub async fn wait_event(&self, ns: &str, name: &str, reason: &str) -> Event {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events(ns, name).await;
            if let Some(e) = events.iter().find(|e| e.reason.as_deref() == Some(reason)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{ns}/{name}: no {reason} Event within 20s; events {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig readable");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig usable");
    Client::try_from(config).expect("client")
}

fn kubeconfig_text(port: u16) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: emulator
  cluster:
    server: http://127.0.0.1:{port}
users:
- name: emulator
  user: {{}}
contexts:
- name: emulator
  context:
    cluster: emulator
    user: emulator
current-context: emulator
"
    )
}

fn spawn_emulator(python: &Path, port: u16, resources: &[&str]) -> Child {
    let mut child = Command::new(python)
        .arg(repo().join("tests/support/kube-emulator.py"))
        .arg(port.to_string())
        .args(resources)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the emulator");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if line.contains("kmock listening") {
                let _ = tx.send(());
                break;
            }
        }
        // Keep draining so the emulator never blocks on a full pipe.
        for _ in lines {}
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the emulator starts within 30s");
    child
}

/// Installs the CRD on a real cluster (server-side apply) and waits until it is served.
async fn install_crd(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        "endpoints.weir.dev",
        &PatchParams::apply("weir-tests").force(),
        &Patch::Apply(Endpoint::crd()),
    )
    .await
    .expect("apply the CRD");
    let endpoints: Api<Endpoint> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while endpoints.list(&Default::default()).await.is_err() {
        assert!(Instant::now() < deadline, "CRD not served within 30s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `weir controller` process.
pub struct Controller {
    child: Child,
    /// Proxy port.
    pub port: u16,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    /// Starts `weir controller --namespace ns` with a short lease (2s) named `identity`.
    pub fn start(cluster: &Cluster, ns: &str, identity: &str, extra: &[&str]) -> Controller {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["controller", "--namespace", ns, "--lease-namespace", ns])
            .args(["--identity", identity, "--lease-duration-seconds", "2"])
            .args(["--port", &port.to_string(), "--drain-seconds", "0"])
            .args(extra)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir controller");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Controller { child, port, log }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the process to exit; its status and log.
    pub fn wait_exit(&mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "still running; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// GET `path`: `None` while nothing listens yet.
    pub async fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let url = self.url(path);
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        drop(stream);
        let r = super::get(&url).await;
        Some((r.status, r.text()))
    }

    /// Polls `path` until `want` holds for (status, body), or panics after 20s.
    pub async fn wait_for(
        &self,
        path: &str,
        what: &str,
        want: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = None;
        while Instant::now() < deadline {
            if let Some((s, b)) = self.try_get(path).await {
                if want(s, &b) {
                    return (s, b);
                }
                last = Some((s, b));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{path}: {what} did not happen within 20s; last answer {last:?}; controller log:\n{}",
            self.log()
        );
    }
}
