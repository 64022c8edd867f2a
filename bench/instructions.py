#!/usr/bin/env python3
"""Instructions per request through Weir, counted by callgrind: the same figure on every run
of the same binary and configuration, whatever else the machine is doing. It is what the
wall-clock CPU figures of bench.py cannot be on a shared two-core VM, where the noise between
rounds (+-10%) is as large as the costs to measure (tracing, access logs).

Each variant is one `weir run` under `valgrind --tool=callgrind` (all threads: the workers,
the access-log writer, the trace exporter) in front of the bench backend
(target/release/examples/bench-backend, not under valgrind) on /small. After a warm-up the
counters are zeroed (callgrind_control), N requests are sent one after another on one
keep-alive connection, the counters are dumped, and the dump's total divided by N is the
figure. User-space instructions only: system calls count as the instructions that make them,
not the kernel's work behind them.

    python3 bench/instructions.py target/release/weir [--requests 5120] [--variants off,trace-1.0]

Variants: off (no tracing, no access log), trace-1.0 and trace-0.01 (OTLP/HTTP to
bench/otlp_sink.py), log-text, log-json (access log to a file). Loopback only; every wait has
a timeout. Needs valgrind (Debian's package).

With --by-thread, each thread is counted apart and the figures are split into the proxy
workers (threads that ran hyper's server dispatch), the trace exporter, the access-log
writer and the rest.
"""
import argparse, glob, http.client, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"

sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no bench/__pycache__ left in the work tree
from bench import enter_netns  # noqa: E402  (same directory)

VARIANTS = {
    "off": "accessLog: false\n",
    "trace-1.0": 'accessLog: false\ntracing: {{otlpEndpoint: "{sink}", sampleRatio: 1.0}}\n',
    "trace-0.01": 'accessLog: false\ntracing: {{otlpEndpoint: "{sink}", sampleRatio: 0.01}}\n',
    "log-text": "",
    "log-json": "accessLog: {{format: json}}\n",
}


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_http(port, path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=5)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{HOST}:{port}{path} not ready within {timeout}s")


def requests(port, n):
    c = http.client.HTTPConnection(HOST, port, timeout=30)
    c.connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(n):
        c.request("GET", "/small")
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
    c.close()


def callgrind_control(*args):
    return subprocess.run(["callgrind_control", *args], check=True, capture_output=True, text=True,
                          timeout=120).stdout


# A thread is classed by a function only it runs (first match wins).
THREAD_KINDS = [("worker", "proto::h1::dispatch::Server"), ("exporter", "trace::export::run"),
                ("access log", "access_log::writer")]


def split_by_thread(dumps, n):
    """Instructions per request by kind of thread, from callgrind's per-thread dumps."""
    out = {}
    for path in dumps:
        total, kind = None, "other"
        with open(path) as f:
            text = f.read()
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if m:
            total = int(m.group(1))
        for name, marker in THREAD_KINDS:
            if marker in text:
                kind = name
                break
        if total:
            out[kind] = out.get(kind, 0) + total / n
    return out


def write_config(path, variant, port, admin, backend_port, sink):
    """One endpoint, /small, in front of the bench backend, with `variant`'s settings."""
    with open(path, "w") as f:
        f.write(f"""port: {port}
adminPort: {admin}
{VARIANTS[variant].format(sink=sink)}timeout: 10s
endpoints:
  - path: /small
    backends:
      - hosts: ["http://{HOST}:{backend_port}"]
        urlPattern: /small.json
""")


def measure(weir, variant, n, work, backend_port, sink, by_thread=False):
    port, admin = free_port(), free_port()
    cfg = os.path.join(work, f"{variant}.yaml")
    write_config(cfg, variant, port, admin, backend_port, sink)
    out = os.path.join(work, f"callgrind.{variant}")
    log = open(os.path.join(work, f"{variant}.log"), "wb")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
                             "--dump-instr=no", *(["--separate-threads=yes"] if by_thread else []),
                             weir, "run", "--config", cfg], stdout=log, stderr=log)
    try:
        wait_http(port, "/small", 120)
        requests(port, 200)  # warm-up: connections, lazily made series and buffers
        time.sleep(1.5)  # the exporter's first timed flush, out of the window
        callgrind_control("--zero", str(proc.pid))
        requests(port, n)
        callgrind_control("--dump", str(proc.pid))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            dumps = [p for p in glob.glob(f"{out}.{proc.pid}*") if not p.endswith(f".{proc.pid}")]
            if dumps:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("callgrind wrote no dump")
        time.sleep(0.5)  # the dump is written in one go, but let it finish
        if by_thread:
            # One file per thread: <out>.<pid>.<dump>-<thread>
            dumps = [p for p in glob.glob(f"{out}.{proc.pid}.*") if re.search(r"\.\d+-\d+$", p)]
            split = split_by_thread(dumps, n)
            return sum(split.values()), split
        total = None
        with open(sorted(dumps)[0]) as f:
            for line in f:
                m = re.match(r"^(?:summary|totals): (\d+)", line)
                if m:
                    total = int(m.group(1))
        assert total is not None, "no total in the dump"
        return total / n, None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weir")
    ap.add_argument("--requests", type=int, default=5120,
                    help="requests counted per variant (default 5120: ten exports of 512 spans at 1.0)")
    ap.add_argument("--variants", default="off,trace-1.0,trace-0.01,log-text,log-json")
    ap.add_argument("--backend-bin", default=os.path.join(ROOT, "target/release/examples/bench-backend"))
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind dumps (for callgrind_annotate) in DIR")
    ap.add_argument("--no-netns", action="store_true", help="stay in the host network namespace")
    ap.add_argument("--by-thread", action="store_true",
                    help="count each thread apart and split the figure by kind of thread")
    a = ap.parse_args()
    if not a.no_netns:
        enter_netns()  # Weir listens on 0.0.0.0: a namespace with only loopback, as bench.py
    if not shutil.which("valgrind"):
        sys.exit("valgrind not found (apt-get install valgrind)")
    work = tempfile.mkdtemp(prefix="weir-instr-")
    backend_port, sink_port = free_port(), free_port()
    helpers = [subprocess.Popen([a.backend_bin, str(backend_port), "0", "100"]),
               subprocess.Popen([sys.executable, os.path.join(HERE, "otlp_sink.py"), str(sink_port)])]
    try:
        wait_http(sink_port, "/stats", 30)
        results, splits = {}, {}
        for v in a.variants.split(","):
            results[v], splits[v] = measure(os.path.abspath(a.weir), v, a.requests, work, backend_port,
                                            f"http://{HOST}:{sink_port}", a.by_thread)
            print(f"{v}: {results[v]:,.0f} instructions per request", flush=True)
    finally:
        for h in helpers:
            h.terminate()
            h.wait(timeout=10)
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for p in glob.glob(os.path.join(work, "callgrind.*")):
                shutil.copy(p, a.keep)
        shutil.rmtree(work, ignore_errors=True)
    base = results.get("off")
    print()
    print("| variant | instructions per request | / off |")
    print("|---|---|---|")
    for v, x in results.items():
        print(f"| {v} | {x:,.0f} | {x / base:.3f} |" if base else f"| {v} | {x:,.0f} | - |")
    if a.by_thread:
        kinds = [k for k, _ in THREAD_KINDS] + ["other"]
        print()
        print("| variant | " + " | ".join(kinds) + " |")
        print("|---|" + "---|" * len(kinds))
        for v, split in splits.items():
            print(f"| {v} | " + " | ".join(f"{split.get(k, 0):,.0f}" for k in kinds) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"requests": a.requests, "instructions_per_request": results,
                       "by_thread": splits if a.by_thread else None}, f, indent=2)


if __name__ == "__main__":
    main()
