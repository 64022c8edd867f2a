#!/usr/bin/env python3
"""Local mode at scale: N literal routes under S first path segments in one YAML file; K
times, one endpoint moves to a new path (the file is rewritten by rename) and the new path
is polled until it answers. Prints write -> served p50/p90/max, Weir's publish_ms p50/p90/max
and RSS at ready (after one request on each endpoint that will move), 0.5 s after the moves
and 2.5 s after them (once the post-publish trim ran). Loopback only (ports 18080 and 18089);
the backend is never called (answers are 502), so no backend is needed.

  python3 bench/local_moves.py target/release/weir [N] [S] [K]
"""
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1)) / 1024


def status(path):
    c = http.client.HTTPConnection('127.0.0.1', 18080, timeout=5)
    try:
        c.request('GET', path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main():
    weir = sys.argv[1]
    n, segs, k = (int(a) for a in (sys.argv[2:] + ['10000', '1', '100'][len(sys.argv) - 2:])[:3])
    work = tempfile.mkdtemp(prefix='weir-moves-')
    cfg = os.path.join(work, 'weir.yaml')
    items = [f'  - path: /s{i % segs}/{i}\n    backends:\n      - hosts: ["http://127.0.0.1:18081"]\n'
             f'        urlPattern: /small.json\n' for i in range(n)]
    head = 'port: 18080\nadminPort: 18089\naccessLog: false\nendpoints:\n'
    with open(cfg, 'w') as f:
        f.write(head + ''.join(items))
    log = open(os.path.join(work, 'weir.log'), 'w+')
    p = subprocess.Popen([weir, 'run', '--config', cfg], stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                c = http.client.HTTPConnection('127.0.0.1', 18089, timeout=1)
                c.request('GET', '/__health/ready')
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit('not ready within 60 s')
            time.sleep(0.05)
        # Every endpoint that will move serves once first: an endpoint's metric series
        # are made when it first serves and dropped when it leaves the table, so the
        # served set (and the series) stays the same size across the moves and RSS
        # compares like with like.
        for j in range(k):
            status(f'/s{j % segs}/{j}')
        time.sleep(2)  # past the trim that follows start-up (1 s)
        ready = rss_mb(p.pid)
        served = []
        for j in range(k):
            items[j] = items[j].replace(f'/s{j % segs}/{j}\n', f'/moved/{j}\n', 1)
            t0 = time.time()
            with open(cfg + '.tmp', 'w') as f:
                f.write(head + ''.join(items))
            os.rename(cfg + '.tmp', cfg)
            while status(f'/moved/{j}') == 404:
                if time.time() - t0 > 30:
                    sys.exit(f'/moved/{j} never served')
                time.sleep(0.001)
            served.append((time.time() - t0) * 1000)
        time.sleep(0.5)
        after = rss_mb(p.pid)
        # Weir gives the freed pages of replaced tables back 1 s after a publish
        # (crates/weir-proxy/src/server/trim.rs): RSS once that has run.
        time.sleep(2)
        settled = rss_mb(p.pid)
    finally:
        p.terminate()
        p.wait()
    log.seek(0)
    publish = [float(x) for x in re.findall(r'publish_ms=([0-9.]+)', log.read())]
    print(f'{n} literal routes under {segs} first segment(s), {k} moves')
    print(f'write -> served p50 / p90 / max: {pct(served, .5):.1f} / {pct(served, .9):.1f} / {max(served):.1f} ms')
    if publish:
        print(f'publish_ms p50 / p90 / max ({len(publish)} tables): {pct(publish, .5):.1f} / '
              f'{pct(publish, .9):.1f} / {max(publish):.1f} ms')
    print(f'RSS at ready / 0.5 s after the moves / 2.5 s after: {ready:.1f} / {after:.1f} / {settled:.1f} MB')


if __name__ == '__main__':
    main()
