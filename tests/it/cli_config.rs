//! The `weir` binary and configuration files: how paths are given, exit statuses, version
//! and completions, the error messages of `check` and `run`, `convert` output that loads as
//! it is, offline checks of manifest directories, and the demo's temporary directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_weir");

fn weir(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn weir_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `error:` lines of a run.
fn errors(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(str::to_string)
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const VALID: &str = "endpoints:
- path: /users/{id}
  backends:
  - hosts: [\"http://127.0.0.1:1\"]
    urlPattern: /u/{id}
";

/// A `weir` child process, killed when dropped.
struct Child_(Child);

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weir run ARGS --port P` and waits until it listens.
async fn run_listening(args: &[&str]) -> (Child_, u16) {
    let port = closed_port().await.port();
    let child = Command::new(BIN)
        .arg("run")
        .args(args)
        .args(["--port", &port.to_string()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Child_(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "weir run {args:?} did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, port)
}

#[test]
fn check_takes_the_path_positionally_or_with_c() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gateway.yaml", VALID);
    let other = write(dir.path(), "other.yaml", VALID);
    for args in [
        vec!["check", p.as_str()],
        vec!["check", "-c", p.as_str()],
        vec!["check", "--config", p.as_str()],
        vec!["check", p.as_str(), "-c", p.as_str()],
        vec!["check", p.as_str(), other.as_str()],
    ] {
        let out = weir(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("valid (1 endpoints)"), "{args:?}");
    }
    // The same file under two spellings is the same path.
    let out = weir_in(
        dir.path(),
        &["check", "gateway.yaml", "-c", "./gateway.yaml"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = weir(&["check", p.as_str(), "-c", other.as_str()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("names another path"),
        "{}",
        stderr(&out)
    );
    let out = weir(&["check"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("a configuration path is required"));
}

#[tokio::test]
async fn run_takes_the_path_positionally_or_with_c() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gateway.yaml", VALID);
    let (_positional, port) = run_listening(&[p.as_str()]).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/__health"))
            .await
            .status,
        200
    );
    let (_flag, port) = run_listening(&["-c", p.as_str()]).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/__health"))
            .await
            .status,
        200
    );
    let out = weir(&["run", p.as_str(), "-c", "/elsewhere.yaml"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(code(&weir(&["run"])), 2);
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["frobnicate"][..],
        &["check", "--no-such-flag", "x.yaml"],
        &["run", "--port", "not-a-port", "x.yaml"],
        &["completions", "no-such-shell"],
    ] {
        let out = weir(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn version_and_completions() {
    let out = weir(&["version"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        format!("weir {}\n", env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = weir(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}");
        let script = stdout(&out);
        assert!(
            script.contains("weir") && script.contains("check") && script.contains("config"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn syntax_errors_name_line_column_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write(
        dir.path(),
        "gateway.yaml",
        "endpoints:\n  - path: /a\n   backends: []\n",
    );
    let out = weir(&["check", &yaml]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        errors(&out),
        [format!(
            "error: {yaml}:3:4: invalid YAML: while parsing a block collection, did not find expected '-' indicator"
        )]
    );
    let json = write(
        dir.path(),
        "gateway.json",
        "{\"port\": 8080,\n \"endpoints\": [}\n",
    );
    let out = weir(&["check", &json]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        errors(&out),
        [format!("error: {json}:2:16: invalid JSON: expected value")]
    );
    // A broken krakend.json is a JSON syntax error, not a settings file with an unknown
    // `version` field.
    let krakend = write(
        dir.path(),
        "krakend.json",
        "{\"version\": 3,\n \"endpoints\": [{\"endpoint\": \"/a\",, }]}\n",
    );
    for args in [
        vec!["check", krakend.as_str()],
        vec!["convert", krakend.as_str()],
    ] {
        let out = weir(&args);
        assert_eq!(code(&out), 1, "{args:?}");
        assert_eq!(
            errors(&out),
            [format!(
                "error: {krakend}:2:34: invalid JSON: key must be a string"
            )],
            "{args:?}"
        );
    }
}

const MANY_PROBLEMS: &str = "port: 99999
endpoints:
  - path: /a
    timout: 1s
    method: GETT
    backends:
      - hosts: [\"http://h\"]
        urlPatern: /a
";

#[test]
fn every_schema_problem_is_listed_once_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gateway.yaml", MANY_PROBLEMS);
    let out = weir(&["check", &p]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        errors(&out),
        [
            format!("error: {p}:1:7: port: expected a whole number from 0 to 65535, found the number 99999"),
            format!("error: {p}:4:5: endpoints[0].timout: unknown field; did you mean `timeout`?"),
            format!("error: {p}:5:13: endpoints[0].method: unknown value `GETT`; did you mean `GET`? (one of GET, POST, PUT, PATCH, DELETE, ANY)"),
            format!("error: {p}:7:9: endpoints[0].backends[0]: missing field `urlPattern`"),
            format!("error: {p}:8:9: endpoints[0].backends[0].urlPatern: unknown field; did you mean `urlPattern`?"),
        ]
    );
}

#[test]
fn run_prints_the_same_errors_as_check_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "gateway.yaml", MANY_PROBLEMS);
    let check = weir(&["check", &p]);
    let run = Command::new(BIN)
        .args(["run", &p])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(code(&run), 1, "{}", stderr(&run));
    assert_eq!(errors(&run), errors(&check));
    assert!(
        !stderr(&run).contains("backtrace") && !stderr(&run).contains("Error:"),
        "{}",
        stderr(&run)
    );
}

#[test]
fn krakend_namespace_typos_name_the_namespace_meant() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "krakend.json",
        r#"{"version": 3, "endpoints": [{"endpoint": "/a", "backend": [{"host": ["http://h"],
            "url_pattern": "/a", "extra_config": {"qos/circuit-braker": {"interval": 60,
            "timeout": 10, "max_errors": 1}}}]}]}"#,
    );
    let out = weir(&["check", &p]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"extra_config namespace "qos/circuit-braker" is not a KrakenD namespace; did you mean "qos/circuit-breaker"?"#),
        "{err}"
    );
    assert!(!err.contains("not implemented"), "{err}");
}

#[tokio::test]
async fn converted_krakend_files_load_as_they_are() {
    let fixture = root().join("tests/fixtures/krakend/krakend.json");
    let fixture = fixture.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = weir(&["convert", fixture]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let file = write(dir.path(), "weir.yaml", &stdout(&out));
    let check = weir(&["check", &file]);
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    let (_run, port) = run_listening(&[file.as_str()]).await;
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/__health"))
            .await
            .status,
        200
    );

    let manifests = dir.path().join("manifests");
    let manifests = manifests.to_str().unwrap();
    let out = weir(&["convert", fixture, "-o", manifests]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let files = std::fs::read_dir(manifests).unwrap().count();
    let check_dir = weir(&["check", manifests]);
    assert_eq!(code(&check_dir), 0, "{}", stderr(&check_dir));
    // One manifest per endpoint, plus the settings document.
    assert_eq!(stdout(&check_dir), stdout(&check).replace(&file, manifests));
    let endpoints: usize = stdout(&check_dir)
        .split('(')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(files, endpoints + 1);
}

#[test]
fn examples_and_deploy_pass_an_offline_check() {
    // The README's quick start and the demo are gateway files of their own (each has a
    // settings document), so they are checked as separate paths.
    let out = weir_in(
        &root(),
        &[
            "check",
            "examples/quickstart.yaml",
            "examples/demo.yaml",
            "examples/endpoints",
            "deploy/",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("checked for shape only").count(),
        1,
        "one note for the service backends of examples/endpoints:\n{err}"
    );
    assert!(
        err.contains(
            "deploy/30-deployment.yaml:1: kind Deployment (apps/v1) skipped (not a Weir resource)"
        ),
        "{err}"
    );
    assert!(
        !err.contains("error:") && !err.contains("warning:"),
        "{err}"
    );
    // Recursively, the example directory holds both.
    let out = weir_in(&root(), &["check", "-r", "examples/endpoints", "deploy"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn service_backends_are_checked_for_shape() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "users.yaml",
        "apiVersion: weir.dev/v1alpha1
kind: Endpoint
metadata:
  name: users
  namespace: shop
spec:
  path: /users
  backends:
    - service: {name: Users_Svc, port: 0}
      urlPattern: /users
",
    );
    let out = weir(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("Endpoint users: endpoint /users: backends[0].service.name: \"Users_Svc\" is not a Service name: only lowercase letters, digits and '-' are allowed"),
        "{err}"
    );
    assert!(
        err.contains("backends[0].service.port: must be from 1 to 65535"),
        "{err}"
    );
    // The same manifest cannot be served from a file: no cluster resolves the Service.
    let (code_run, err_run) = {
        let out = weir(&["run", dir.path().to_str().unwrap()]);
        (code(&out), stderr(&out))
    };
    assert_eq!(code_run, 1);
    assert!(
        err_run.contains("service backends need Kubernetes mode"),
        "{err_run}"
    );
}

#[test]
fn empty_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["", "\n# nothing here\n", "---\n"] {
        let p = write(dir.path(), "gateway.yaml", text);
        for cmd in ["check", "run"] {
            let out = weir(&[cmd, &p]);
            assert_eq!(code(&out), 1, "{cmd} {text:?}");
            assert!(
                stderr(&out).contains("gateway.yaml: the file is empty"),
                "{cmd} {text:?}: {}",
                stderr(&out)
            );
        }
    }
    let p = write(dir.path(), "gateway.yaml", "endpoints: []\n");
    assert_eq!(code(&weir(&["check", &p])), 0);
}

#[test]
fn hostile_nesting_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, message) in [
        (
            "flow.yaml",
            format!("endpoints: {}", "[".repeat(100_000)),
            "nested deeper than 64 levels",
        ),
        (
            "block.yaml",
            format!("endpoints:\n{}", "- ".repeat(100_000)),
            "nested deeper than 64 levels",
        ),
        (
            "data.yaml",
            format!(
                "endpoints:\n- path: /a\n  staticResponse:\n    strategy: always\n    data: {}",
                "{a: ".repeat(100_000)
            ),
            "nested deeper than 64 levels",
        ),
        (
            "deep.json",
            format!(
                "{{\"endpoints\": [{{\"path\": \"/a\", \"staticResponse\": {{\"strategy\": \"always\", \"data\": {}1{}}}}}]}}",
                "{\"a\": ".repeat(100_000),
                "}".repeat(100_000)
            ),
            "recursion limit exceeded",
        ),
    ] {
        let p = write(dir.path(), name, &text);
        let out = weir(&["check", &p]);
        assert_eq!(code(&out), 1, "{name}");
        assert!(stderr(&out).contains(message), "{name}: {}", stderr(&out));
    }
}

/// Runs `weir demo` with its own temporary directory; returns the child and that directory.
fn demo(port: u16) -> (Child_, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args(["demo", "--port", &port.to_string()])
        .env("TMPDIR", tmp.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Child_(child), tmp)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "weir demo did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn the_demo_removes_its_temporary_directory_on_every_exit() {
    for signal in ["-TERM", "-INT"] {
        let port = closed_port().await.port();
        let (mut child, tmp) = demo(port);
        let out = child.0.stdout.take().unwrap();
        let ready = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("Press Ctrl-C"));
        assert!(ready, "the demo did not start");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        Command::new("kill")
            .args([signal, &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(wait_exit(&mut child.0).success(), "{signal}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{signal} left the directory behind"
        );
    }
    // A failed start (the port is taken) cleans up too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut child, tmp) = demo(taken.local_addr().unwrap().port());
    assert_eq!(wait_exit(&mut child.0).code(), Some(1));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A gateway file terminating TLS with the pair `cert`/`key`.
fn tls_gateway(dir: &Path, cert: &Path, key: &Path) -> String {
    write(
        dir,
        "tls.yaml",
        &format!(
            "tls:\n  certificates:\n  - certFile: {}\n    keyFile: {}\n{}",
            cert.display(),
            key.display(),
            VALID
        ),
    )
}

#[test]
fn check_loads_the_listener_certificates() {
    use crate::support::pki::Ca;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("check CA");
    let (cert, key) = ca.server(&["gw.example"]).write(dir.path(), "good");
    let good = tls_gateway(dir.path(), &cert, &key);
    let out = weir(&["check", &good]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning:"), "{}", stderr(&out));

    // Expiring within 14 days: valid, with a warning naming the file.
    let (soon, soon_key) = ca
        .server_expiring_in(&["gw.example"], 5)
        .write(dir.path(), "soon");
    let out = weir(&["check", &tls_gateway(dir.path(), &soon, &soon_key)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning: {}: the certificate expires in",
            soon.display()
        )),
        "{err}"
    );

    // A key that belongs to another certificate.
    let (_, other_key) = ca.server(&["other.example"]).write(dir.path(), "other");
    let out = weir(&["check", &tls_gateway(dir.path(), &cert, &other_key)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(errors(&out).len() == 1, "{}", stderr(&out));

    // A missing file, and a file that is not PEM.
    let missing = dir.path().join("missing.crt");
    let out = weir(&["check", &tls_gateway(dir.path(), &missing, &key)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.crt"), "{}", stderr(&out));
    let garbage = PathBuf::from(write(dir.path(), "garbage.crt", "not a certificate\n"));
    let out = weir(&["check", &tls_gateway(dir.path(), &garbage, &key)]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("garbage.crt"), "{}", stderr(&out));
}

#[test]
fn check_compiles_backends_as_serving_would() {
    // Validation accepts the shape; only reading the file shows it cannot be used.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("no-such-ca.pem");
    let p = write(
        dir.path(),
        "gateway.yaml",
        &format!(
            "endpoints:
- path: /files/{{id}}
  backends:
  - hosts: [\"https://127.0.0.1:1\"]
    urlPattern: /f
    tls: {{caFile: {}}}
- path: /files/{{*rest}}
  backends: [{{hosts: [\"http://127.0.0.1:1\"], urlPattern: \"/f/{{rest}}\"}}]
",
            ca.display()
        ),
    );
    let out = weir(&["check", &p]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("no-such-ca.pem"), "{errs:?}");
    // `weir run` refuses it the same way.
    let out = weir(&["run", &p]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(errors(&out), errs);
    // With the file in place, both routes are valid side by side.
    std::fs::write(&ca, crate::support::pki::Ca::new("c").pem).unwrap();
    let out = weir(&["check", &p]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
