#!/usr/bin/env python3
"""CPU per request of two Weir configurations loaded at the same time, for a ratio that the
machine's drifting speed cannot move much. bench.py runs its instances one after another: on a
shared two-core VM the speed changes between rounds by as much as the costs measured (tracing,
access logs). Here both instances (the baseline `off` and one variant) get the same wrk load
in the same seconds, so a slower stretch slows both; each round's ratio is the variant's CPU
per request over the baseline's, and the median of the rounds is reported with their spread.

    python3 bench/paired_cpu.py target/release/weir [--variant trace-1.0] [--rounds 15] [--duration 4]

CPU per request: utime+stime of the instance's process (all threads: workers, the exporter,
the access-log writer) during the round, over the requests wrk completed against it. Both
instances share the cores with each other, with the two wrk processes, the backend
(target/release/examples/bench-backend) and the collector stand-in (bench/otlp_sink.py).
Loopback only, in a network namespace with only loopback when run as root; every wait has a
timeout.
"""
import argparse, os, shutil, sys, tempfile, threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no bench/__pycache__ left in the work tree
from bench import HOST, enter_netns, median, spawn, stop_all, wait_http, wrk  # noqa: E402
from instructions import VARIANTS, free_port, write_config  # noqa: E402


def start(weir, role, variant, work, backend_port, sink):
    port, admin = free_port(), free_port()
    cfg = os.path.join(work, f"{role}.yaml")
    write_config(cfg, variant, port, admin, backend_port, sink)
    # An access log goes to a file, as a deployment's would go to a collector's pipe.
    log = open(os.path.join(work, f"{role}.log"), "wb")
    proc = spawn([weir, "run", "--config", cfg], stdout=log, stderr=log)
    log.close()
    wait_http(f"http://{HOST}:{admin}/__health/ready")
    return proc, port


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weir")
    ap.add_argument("--variant", default="trace-1.0", choices=list(VARIANTS),
                    help="the configuration measured against --baseline (the same one twice is the "
                         "method's own control: its ratio should be 1)")
    ap.add_argument("--baseline", default="off", choices=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--duration", type=int, default=4, help="seconds per round")
    ap.add_argument("--conns", type=int, default=25, help="wrk connections per instance")
    ap.add_argument("--backend-bin", default=os.path.join(ROOT, "target/release/examples/bench-backend"))
    ap.add_argument("--no-netns", action="store_true", help="stay in the host network namespace")
    a = ap.parse_args()
    if not a.no_netns:
        enter_netns()
    work = tempfile.mkdtemp(prefix="weir-paired-")
    backend_port, sink_port = free_port(), free_port()
    spawn([a.backend_bin, str(backend_port), "0", "100"])
    spawn([sys.executable, os.path.join(HERE, "otlp_sink.py"), str(sink_port)])
    try:
        wait_http(f"http://{HOST}:{sink_port}/stats")
        sink = f"http://{HOST}:{sink_port}"
        config = {"baseline": a.baseline, "variant": a.variant}
        names = list(config)
        inst = {}
        for n in names:
            proc, port = start(os.path.abspath(a.weir), n, config[n], work, backend_port, sink)
            inst[n] = (proc, f"http://{HOST}:{port}/small")
        for n in names:  # warm-up: connections, series, buffers
            wrk(inst[n][1], 1, conns=a.conns, threads=1)
        ratios, per = [], {n: [] for n in names}
        for r in range(a.rounds):
            got = {}

            def load(n):
                got[n] = wrk(inst[n][1], a.duration, conns=a.conns, threads=1,
                             cpu_pids=[inst[n][0].pid])

            # Which wrk starts first alternates between rounds.
            order = names if r % 2 == 0 else names[::-1]
            threads = [threading.Thread(target=load, args=(n,)) for n in order]
            for t in threads:
                t.start()
            for t in threads:
                t.join(a.duration + 60)
            for n in names:
                res = got[n]
                if res["non2xx"] or res["socket_errors"]:
                    sys.exit(f"{config[n]}: {res['non2xx']} non-2xx, {res['socket_errors']} socket errors")
                per[n].append(res)
            ratio = got["variant"]["cpu_us_per_req"] / got["baseline"]["cpu_us_per_req"]
            ratios.append(ratio)
            print(f"round {r + 1}: " + ", ".join(
                f"{config[n]} {got[n]['rps']:.0f} req/s {got[n]['cpu_us_per_req']:.1f} us/req" for n in names)
                + f"; ratio {ratio:.3f}", flush=True)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    s = sorted(ratios)
    q = lambda f: s[min(len(s) - 1, int(f * len(s)))]
    print()
    print(f"| {a.variant} / {a.baseline} | CPU/req (median of {len(s)} paired rounds) | "
          f"middle half | all rounds | req/s each (median) |")
    print("|---|---|---|---|---|")
    print(f"| | **x{median(ratios):.3f}** | x{q(0.25):.3f}-x{q(0.75):.3f} | x{s[0]:.3f}-x{s[-1]:.3f} | "
          + " / ".join(f"{median([x['rps'] for x in per[n]]):.0f}" for n in names) + " |")


if __name__ == "__main__":
    main()
