//! The binary's logs: JSON application and access logs line by line, the format switch,
//! one line per message, and the exporter's warning when the collector is down.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_weir");

/// A `weir run` child with its output collected on background threads.
struct Running {
    child: Child,
    port: u16,
    config: std::path::PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

fn collect(mut r: Box<dyn Read + Send>) -> Arc<Mutex<String>> {
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
}

impl Running {
    async fn start(config: &str, args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.yaml");
        std::fs::write(&path, config).unwrap();
        let port = closed_port().await.port();
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .args(["--port", &port.to_string()])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        let r = Running {
            child,
            port,
            config: path,
            stdout,
            stderr,
            _dir: dir,
        };
        r.wait_for("listening", true).await;
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
    fn rewrite(&self, text: &str) {
        let tmp = self.config.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }
    async fn wait_for(&self, what: &str, in_stderr: bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
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
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line of `text` is one JSON object with time, level and message.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            for key in ["time", "level", "message"] {
                assert!(v[key].is_string(), "no {key}: {l}");
            }
            v
        })
        .collect()
}

fn find<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["message"] == message).collect()
}

#[tokio::test]
async fn json_application_and_access_logs_parse_line_by_line() {
    let array = json_backend(200, "[1,2,3]").await;
    let cfg = format!(
        "accessLog: {{format: json}}\nendpoints:\n- path: /list/{{id}}\n  backends:\n  - hosts: [{}]\n    urlPattern: /items\n",
        array.url()
    );
    let run = Running::start(&cfg, &["--log-format", "json"]).await;
    let r = send(
        "GET",
        &run.url("/list/1"),
        &[("x-request-id", "req-json-1")],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-request-id")),
        (500, Some("req-json-1"))
    );
    let err = run.wait_for("backend failed", true).await;
    let lines = json_lines(&err);
    let failed = find(&lines, "backend failed");
    assert_eq!(failed.len(), 1, "{err}");
    let f = failed[0];
    assert_eq!(f["level"], "WARN");
    assert_eq!(f["endpoint"], "/list/{id}");
    assert_eq!(f["request_id"], "req-json-1");
    assert!(
        f["error"].as_str().unwrap().contains("isCollection"),
        "the reason is a field: {f}"
    );
    let out = run.wait_for("/list/1", false).await;
    let access: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(access.len(), 1, "{out}");
    let a = &access[0];
    assert_eq!(a["method"], "GET");
    assert_eq!(a["route"], "/list/{id}");
    assert_eq!(a["path"], "/list/1");
    assert_eq!(a["status"], 500);
    assert_eq!(a["peer"], "127.0.0.1");
    assert_eq!(a["request_id"], "req-json-1");
    assert!(a["duration_ms"].is_number() && a["bytes"] == 0);
    assert!(a["trace_id"].is_null());
    // A reload with two problems is one line, the problems in its `error` field.
    run.rewrite(
        "endpoints:\n- path: nope\n  backends: [{hosts: [\"bad host\"], urlPattern: /x}]\n",
    );
    let err = run.wait_for("reload rejected", true).await;
    let lines = json_lines(&err);
    let rejected = find(
        &lines,
        "reload rejected, previous configuration keeps serving",
    );
    assert_eq!(rejected.len(), 1, "{err}");
    let e = rejected[0]["error"].as_str().unwrap();
    assert!(e.contains("path") && e.contains("invalid host"), "{e}");
}

#[tokio::test]
async fn the_settings_choose_the_log_format_unless_the_flag_pins_it() {
    let b = json_backend(200, "{}").await;
    let cfg = format!(
        "logFormat: json\nendpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        b.url()
    );
    let from_settings = Running::start(&cfg, &[]).await;
    let pinned = Running::start(&cfg, &["--log-format", "text"]).await;
    let json = from_settings.stderr();
    assert!(json_lines(&json).len() >= 2, "{json}");
    let text = pinned.stderr();
    assert!(
        text.lines().all(|l| !l.starts_with('{')) && text.contains("listening"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rejected_reload_is_one_text_line_with_its_error_as_a_field() {
    let b = json_backend(200, "{}").await;
    let cfg = format!(
        "endpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        b.url()
    );
    let run = Running::start(&cfg, &[]).await;
    run.rewrite(
        "endpoints:\n- path: nope\n  backends: [{hosts: [\"bad host\"], urlPattern: /x}]\n",
    );
    let err = run.wait_for("reload rejected", true).await;
    let line: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("reload rejected"))
        .collect();
    assert_eq!(line.len(), 1);
    assert!(
        line[0].contains("error=") && line[0].contains("invalid host"),
        "{err}"
    );
    // Every problem is on that line: nothing follows it.
    assert!(err.trim_end().ends_with(line[0]), "{err}");
}

#[tokio::test]
async fn a_collector_that_is_down_costs_one_warning_and_no_request() {
    let down = closed_port().await;
    let b = json_backend(200, "{}").await;
    let cfg = format!(
        "stats: {{enabled: true}}\ntracing: {{otlpEndpoint: \"http://{down}\"}}\nendpoints:\n- path: /a\n  backends: [{{hosts: [{}], urlPattern: /a}}]\n",
        b.url()
    );
    let run = Running::start(&cfg, &["--log-format", "json"]).await;
    let failed = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("weir_trace_exports_total{result=\"failed\"} "))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Two failed exports (two batches, a second apart), each after requests that answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed(&get(&run.url("/__stats")).await.text()) < 2.0 {
        assert_eq!(get(&run.url("/a")).await.status, 200);
        assert!(Instant::now() < deadline, "exports never failed twice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = run.stderr();
    let lines = json_lines(&err);
    let warned = find(&lines, "trace export failed; spans dropped");
    assert_eq!(warned.len(), 1, "one warning per window: {err}");
    assert_eq!(warned[0]["level"], "WARN");
    assert!(warned[0]["collector"]
        .as_str()
        .unwrap()
        .contains(&down.to_string()));
}
