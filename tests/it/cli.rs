//! The `weir` binary: `check` messages and exit codes, and `run` with its logs, client
//! disconnects and graceful shutdown.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_weir");

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("gateway.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = write_config(&dir, text);
    let out = Command::new(BIN).arg("check").arg(&p).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const VALID: &str = "endpoints:
- path: /users/{id}
  backends:
  - hosts: [\"http://127.0.0.1:1\"]
    urlPattern: /u/{id}
";

#[test]
fn check_accepts_a_valid_file() {
    let (code, out, err) = check(VALID);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid (1 endpoints)"), "{out}");
}

#[test]
fn check_rejects_with_file_endpoint_and_field() {
    let (code, _, err) = check(
        &VALID
            .replace("/u/{id}", "/u/{nope}")
            .replace("127.0.0.1:1", "bad host"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("gateway.yaml: endpoints[0]: endpoint /users/{id}: backends[0].urlPattern: {nope} is not defined"), "{err}");
    assert!(
        err.contains("endpoint /users/{id}: backends[0].hosts[0]: invalid host"),
        "{err}"
    );
}

#[test]
fn check_warns_about_long_timeouts_but_passes() {
    let (code, _, err) = check(&VALID.replace("  backends:", "  timeout: 3s\n  backends:"));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning:") && err.contains("timeout: 3s is above 2s"),
        "{err}"
    );
}

#[test]
fn check_reports_a_missing_file() {
    let out = Command::new(BIN)
        .args(["check", "/nonexistent/weir.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/weir.yaml"));
}

/// A `weir run` child with its output collected on background threads.
struct Running {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(config: &str, env: &[(&str, &str)]) -> Running {
        Self::start_with(config, env, &[]).await
    }

    async fn start_with(config: &str, env: &[(&str, &str)], args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(&dir, config);
        let port = closed_port().await.port();
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--config"]).arg(&p).args([
            "--port",
            &port.to_string(),
            "--drain-seconds",
            "5",
        ]);
        cmd.args(args);
        cmd.env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |mut r: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(String::new()));
            let b = buf.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    b.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
            buf
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let r = Running {
            child,
            port,
            stdout,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Ok(_)) = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "weir run did not listen: {}",
                r.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        r
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
    async fn wait_for(&self, what: &str, in_stderr: bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = if in_stderr {
                self.stderr()
            } else {
                self.stdout()
            };
            if text.contains(what) {
                return text;
            }
            assert!(Instant::now() < deadline, "never saw {what:?} in:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    fn terminate(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn access_log_on_stdout_and_backend_errors_on_stderr() {
    let array = json_backend(200, "[1,2,3]").await;
    let cfg = format!(
        "endpoints:\n- path: /list\n  backends:\n  - hosts: [{}]\n    urlPattern: /items\n",
        array.url()
    );
    let run = Running::start(&cfg, &[]).await;
    let r = get(&run.url("/list")).await;
    assert_eq!(r.status, 500);
    let out = run.wait_for("/list", false).await;
    let line = out.lines().find(|l| l.contains("/list")).unwrap();
    // `2017/01/19 - 10:31:27 | 200 |    1.134431ms | ::1 |   POST     /users`
    let parts: Vec<&str> = line.split(" | ").collect();
    assert_eq!(parts.len(), 5, "{line}");
    assert_eq!(parts[0].len(), "2017/01/19 - 10:31:27".len(), "{line}");
    assert_eq!(parts[1], "500");
    assert_eq!(
        parts[2].len(),
        13,
        "latency is right-aligned in 13 columns: {line}"
    );
    assert_eq!(parts[3], "127.0.0.1");
    assert_eq!(parts[4], "  GET      /list");
    let err = run.wait_for("backend failed", true).await;
    let msg = err.lines().find(|l| l.contains("backend failed")).unwrap();
    assert!(msg.contains("set isCollection: true"), "{msg}");
    assert!(msg.contains("endpoint=/list"), "{msg}");
    assert!(
        msg.contains(&format!("backend={}/items", array.url())),
        "{msg}"
    );
}

#[tokio::test]
async fn access_log_can_be_turned_off() {
    let b = json_backend(200, "{}").await;
    let cfg = format!(
        "accessLog: false\nendpoints:\n- path: /a\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n",
        b.url()
    );
    let run = Running::start(&cfg, &[]).await;
    assert_eq!(get(&run.url("/a")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!run.stdout().contains("/a"), "{}", run.stdout());
}

#[tokio::test]
async fn log_level_comes_from_rust_log() {
    let b = json_backend(200, "{}").await;
    let cfg = format!(
        "debug: true\nendpoints:\n- path: /a\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n",
        b.url()
    );
    let quiet = Running::start(&cfg, &[("RUST_LOG", "info")]).await;
    assert_eq!(get(&quiet.url("/__debug/x")).await.status, 200);
    let loud = Running::start(&cfg, &[("RUST_LOG", "debug")]).await;
    assert_eq!(get(&loud.url("/__debug/x")).await.status, 200);
    loud.wait_for("debug endpoint hit", true).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!quiet.stderr().contains("debug endpoint hit"));
}

#[tokio::test]
async fn client_disconnect_is_logged_and_cancels_backend_calls() {
    let (tx, rx) = tokio::sync::oneshot::channel::<bool>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let slow = raw_backend(move |mut s| {
        let tx = tx.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            // Never answer; report whether the gateway hangs up on us.
            let closed = matches!(
                tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await,
                Ok(Ok(0)) | Ok(Err(_))
            );
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(closed);
            }
        }
    })
    .await;
    let cfg = format!(
        "endpoints:\n- path: /slow\n  timeout: 10s\n  backends:\n  - hosts: [\"http://{slow}\"]\n    urlPattern: /s\n"
    );
    let run = Running::start(&cfg, &[]).await;
    let url = run.url("/slow");
    let client = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.abort();
    let err = run.wait_for("client disconnected", true).await;
    assert!(err.contains("path=/slow"), "{err}");
    assert!(
        tokio::time::timeout(Duration::from_secs(4), rx)
            .await
            .unwrap()
            .unwrap(),
        "backend call was not cancelled"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !run.stdout().contains("/slow"),
        "a disconnect is not an access-log line: {}",
        run.stdout()
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let slow = backend(|_| async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        reply(200, "application/json", r#"{"done":true}"#)
    })
    .await;
    let cfg = format!(
        "endpoints:\n- path: /slow\n  backends:\n  - hosts: [{}]\n    urlPattern: /s\n",
        slow.url()
    );
    let mut run = Running::start(&cfg, &[]).await;
    let url = run.url("/slow");
    let inflight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    run.terminate();
    let r = inflight.await.unwrap();
    assert_eq!((r.status, r.json()["done"].as_bool()), (200, Some(true)));
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "weir did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    // New connections are refused once draining began.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", run.port))
        .await
        .is_err());
}

#[tokio::test]
async fn sigterm_turns_readiness_503_and_keeps_serving_for_the_shutdown_delay() {
    let b = json_backend(200, r#"{"ok":true}"#).await;
    let cfg = format!(
        "endpoints:\n- path: /a\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n",
        b.url()
    );
    let mut run = Running::start_with(&cfg, &[], &["--shutdown-delay-seconds", "1"]).await;
    assert_eq!(get(&run.url("/__health/ready")).await.status, 200);
    let signalled = Instant::now();
    run.terminate();
    run.wait_for("still serving during the shutdown delay", true)
        .await;
    // Within the delay: readiness says 503 at once, but new requests are still served.
    assert_eq!(get(&run.url("/__health/ready")).await.status, 503);
    assert_eq!(get(&run.url("/a")).await.status, 200);
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "checks ran inside the delay"
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "weir did not exit after the delay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "exited before the delay ended"
    );
}
