//! A real nginx (Debian's `nginx-light`) on a loopback port, for tests that need a backend
//! that decodes and normalises paths the way production servers do. `.ci/run` installs it;
//! elsewhere a test without nginx is skipped with a note, and fails under `CI=true`.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx, stopped when dropped.
pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Starts nginx with `locations` (the inside of a `server {}` block). `None` when nginx is
/// not installed outside CI.
pub fn start(locations: &str) -> Option<Nginx> {
    let Some(bin) = binary() else {
        assert!(
            std::env::var("CI").is_err(),
            "nginx is required in CI (.ci/run installs nginx-light)"
        );
        eprintln!("note: nginx not installed; skipping this test");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let root = dir.path();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {root}/nginx.pid;\n\
         error_log stderr error;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n\
         fastcgi_temp_path {root}/fcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n{locations}\n  }}\n}}\n",
        root = root.display()
    );
    let path = root.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Ready when it accepts a connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(Nginx {
        addr,
        child,
        _dir: dir,
    })
}
