"""Controller scale benchmark: `weir controller` against N Endpoint objects in the API-server
emulator (tests/support/kube-emulator.py), all on loopback.

Measures:
  * initial sync: start of `weir controller` to /__health/ready = 200, and to the last
    object's route served;
  * change -> served: from the moment the API server answered a create or an update until
    the first successful request on the new route through the gateway; p50/p99/max over K
    changes (half creates of new objects, half updates that move an existing object to a
    new path);
    With --steady, each update moves the object the create before it made, and that object
    is deleted once its new route was served (untimed): the table and the served routes end
    as they started, so RSS across the changes shows growth that is not more endpoints;
  * the same under churn (--churn R: R Endpoint rewrites per second in the background, each
    a spec change of some other object);
  * errors on a stable route (ep-0's path) polled throughout, from readiness to the end (must
    be 0);
  * the controller's RSS after sync, 2 s after sync (settled; with --leader, 2 s after
    every status was written), 2 s after the changes and after the churn;
  * API requests per change: requests the emulator received from the controller during
    the changes (by verb and resource) divided by the changes, and watch events sent;
  * the CPU the emulator and the controller used in each phase, so that a phase where the
    emulator was saturated (and so distorts the figures) shows;
  * the publish time of each table the controller swapped in (its `table published` log
    line: `model_ms` to build the model from the index, `elapsed_ms` to that plus compiling
    and swapping the route table), p50/p99/max per phase. The controller's log (stderr) goes
    to a file for this, at RUST_LOG `error,weir_k8s=info,weir_k8s::writer=warn` unless
    RUST_LOG is set.

By default the Lease is pre-created for another holder, so the controller is a follower and
writes no status (the watch -> table -> serve path alone). With --leader it takes the Lease
and writes the status of every object (server-side apply on /status); the time until all N
statuses are written is reported, and the changes are measured after that.

Every route points at a fixed-answer backend (target/release/examples/bench-backend, Nagle
off; a Python one with Nagle off when that is not built). Every wait has a timeout, and the
whole run is bounded by --timeout. Like bench.py, it re-executes itself in a private network
namespace with only loopback (`unshare -n`, needs root), because `weir controller` listens
on 0.0.0.0.

Run through bench/controller_scale.sh, which builds the release binaries first:
    bench/controller_scale.sh 10000 100
    bench/controller_scale.sh 5000 100 --leader --churn 50
"""
import argparse, asyncio, http.client, json, math, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EMULATOR = os.path.join(ROOT, 'tests', 'support', 'kube-emulator.py')
NS = 'bench'
HOST = '127.0.0.1'
ENDPOINTS = f'/apis/weir.dev/v1alpha1/namespaces/{NS}/endpoints'
HARNESS_CLIENT = 'Python'  # the emulator counts requests by User-Agent; aiohttp's starts so

sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no bench/__pycache__ left in the work tree
from bench import enter_netns, proc_tree, cpu_seconds  # noqa: E402  (same directory)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def endpoint(name, path, backend):
    return {
        'apiVersion': 'weir.dev/v1alpha1', 'kind': 'Endpoint',
        'metadata': {'name': name, 'namespace': NS},
        'spec': {'path': path, 'backends': [{'hosts': [backend], 'urlPattern': '/v1' + path}]},
    }


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def pct(xs, q):
    """Nearest-rank percentile: p99 of 100 samples is the 99th, not the maximum."""
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, math.ceil(q * len(xs)) - 1))] if xs else float('nan')


# --- helper processes (separate so that they do not share the measuring event loop) --------

def run_backend(port):
    """A fixed-answer backend with Nagle off, used when bench-backend is not built."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        disable_nagle_algorithm = True
        body = b'{"id":1}'

        def do_GET(self):
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

        def log_message(self, *a):
            pass

    ThreadingHTTPServer((HOST, port), H).serve_forever()


def run_poller(url, max_seconds, interval):
    """Polls one route over a keep-alive connection until SIGTERM or max_seconds; prints
    {requests, errors, first_errors} as JSON. An error is any answer but 200, or a failed
    connection."""
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
    host, port = url.split('//')[1].split('/')[0].split(':')
    path = '/' + url.split('//')[1].split('/', 1)[1]
    deadline = time.monotonic() + max_seconds
    n = errors = 0
    first_errors = []
    conn = None
    while not stop[0] and time.monotonic() < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request('GET', path)
            r = conn.getresponse()
            r.read()
            n += 1
            if r.status != 200:
                errors += 1
                if len(first_errors) < 10:
                    first_errors.append(f'{time.time():.3f} status {r.status}')
        except (OSError, http.client.HTTPException) as e:
            n += 1
            errors += 1
            if len(first_errors) < 10:
                first_errors.append(f'{time.time():.3f} {e!r}')
            if conn is not None:
                conn.close()
            conn = None
        time.sleep(interval)
    print(json.dumps({'requests': n, 'errors': errors, 'first_errors': first_errors}), flush=True)


async def run_churn(base, rate, first, last, backend, max_seconds):
    """Rewrites Endpoint objects ep-{first..last-1} round robin at `rate` per second (a spec
    change each: a new urlPattern), until SIGTERM or max_seconds; prints {sent, errors,
    seconds} as JSON."""
    import aiohttp
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sent = errors = 0
    sem = asyncio.Semaphore(32)
    t0 = time.monotonic()

    async def one(s, i):
        nonlocal errors
        k = first + i % (last - first)
        patch = {'spec': {'backends': [{'hosts': [backend], 'urlPattern': f'/v1/bench/{k}?rev={i}'}]}}
        try:
            async with s.patch(f'{base}{ENDPOINTS}/ep-{k}', data=json.dumps(patch),
                               headers={'Content-Type': 'application/merge-patch+json'}) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1
        finally:
            sem.release()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        tasks = set()
        while not stop.is_set() and time.monotonic() - t0 < max_seconds:
            # Paced by the clock, not by the answers: a slow API server shows as fewer
            # rewrites sent than asked for, reported below.
            due = t0 + sent / rate
            now = time.monotonic()
            if due > now:
                try:
                    await asyncio.wait_for(stop.wait(), due - now)
                    break
                except asyncio.TimeoutError:
                    pass
            await sem.acquire()
            t = asyncio.create_task(one(s, sent))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            sent += 1
        if tasks:
            await asyncio.wait(tasks, timeout=10)
    print(json.dumps({'sent': sent, 'errors': errors, 'seconds': time.monotonic() - t0}), flush=True)


# --- the benchmark ------------------------------------------------------------------------

class Phase:
    """CPU of the emulator and of the controller, and the emulator's request counters,
    between start() and stop()."""

    def __init__(self, bench):
        self.b = bench

    async def start(self):
        self.t = time.monotonic()
        self.emu_cpu = cpu_seconds([self.b.emu.pid])
        self.ctl_cpu = cpu_seconds([self.b.ctl.pid])
        self.stats = await self.b.emu_stats()
        self.log_offset = self.b.ctl_log_size()
        return self

    async def stop(self):
        wall = time.monotonic() - self.t
        stats = await self.b.emu_stats()
        by = {}
        for client, counts in stats['requests'].items():
            if client == HARNESS_CLIENT:
                continue  # the harness's own creates, updates and churn
            for what, n in counts.items():
                d = n - self.stats['requests'].get(client, {}).get(what, 0)
                if d:
                    by[what] = by.get(what, 0) + d
        return {'seconds': wall, 'publish': self.b.publishes(self.log_offset),
                'emulator_cpu_pct': (cpu_seconds([self.b.emu.pid]) - self.emu_cpu) / wall * 100,
                'controller_cpu_pct': (cpu_seconds([self.b.ctl.pid]) - self.ctl_cpu) / wall * 100,
                'controller_requests': by,
                'watch_events_sent': stats['watch_events_sent'] - self.stats['watch_events_sent']}


class Bench:
    def __init__(self, args):
        self.a = args
        self.emu = self.ctl = None
        self.helpers = []
        self.results = {'objects': args.objects, 'changes': args.changes, 'leader': args.leader,
                        'segments': args.segments,
                        'churn_per_s': args.churn, 'gap_s': args.gap, 'steady': args.steady}

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def path_of(self, i):
        """The path of object ep-i: /bench/i, or with --segments S, /bench-(i mod S)/i (S first
        segments: the router rebuilds only the first-segment buckets a change touches)."""
        s = self.a.segments
        return f'/bench/{i}' if s <= 1 else f'/bench-{i % s}/{i}'

    def ctl_log_size(self):
        try:
            return os.path.getsize(self.ctl_log)
        except (AttributeError, OSError):
            return 0

    def publishes(self, offset):
        """The controller's `table published` lines from byte `offset` of its log on:
        count and p50/p99/max of elapsed_ms (model + compile + swap) and model_ms."""
        elapsed, model = [], []
        try:
            with open(self.ctl_log, 'rb') as f:
                f.seek(offset)
                text = f.read().decode('utf-8', 'replace')
        except OSError:
            return {'count': 0}
        for line in text.splitlines():
            if 'table published' not in line:
                continue
            m = re.search(r'elapsed_ms=([\d.]+)', line)
            if m:
                elapsed.append(float(m.group(1)))
            m = re.search(r'model_ms=([\d.]+)', line)
            if m:
                model.append(float(m.group(1)))
        out = {'count': len(elapsed)}
        if elapsed:
            out.update(p50_ms=pct(elapsed, 0.5), p99_ms=pct(elapsed, 0.99), max_ms=max(elapsed),
                       model_p50_ms=pct(model, 0.5) if model else float('nan'))
        return out

    def spawn_helper(self, argv, **kw):
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__)] + argv, **kw)
        self.helpers.append(p)
        return p

    async def emu_stats(self):
        async with self.s.get(f'{self.base}/__emulator/stats') as r:
            return await r.json()

    async def wait_status(self, url, want, timeout=120.0, interval=0.001):
        import aiohttp
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                async with self.s.get(url) as r:
                    await r.read()
                    if r.status == want:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(interval)
        return False

    async def write(self, method, url, body, ctype='application/json'):
        """One write to the API server; returns the time its answer arrived and how long the
        API server took to answer."""
        t = time.monotonic()
        async with self.s.request(method, url, data=json.dumps(body), headers={'Content-Type': ctype}) as r:
            text = await r.text()
            assert r.status in (200, 201), f'{method} {url}: {r.status} {text}'
        done = time.monotonic()
        return done, done - t

    async def changes(self, label, k, first_update):
        """k changes, alternating a create of a new object and an update that moves object
        ep-j (j from first_update on) to a new path; each timed from the API server's answer
        to the first 200 on the new route."""
        lat = {'create': [], 'update': []}
        rtt = []
        for i in range(k):
            if i % 2 == 0:
                path = f'/{label}/new/{i}'
                done, took = await self.write('POST', self.base + ENDPOINTS,
                                              endpoint(f'{label}-{i}', path, self.backend))
                kind = 'create'
            elif self.a.steady:
                # The object created just before (and served) moves; it is deleted below.
                path = f'/{label}/moved/{i}'
                done, took = await self.write('PATCH', f'{self.base}{ENDPOINTS}/{label}-{i - 1}',
                                              {'spec': {'path': path}}, 'application/merge-patch+json')
                kind = 'update'
            else:
                j = first_update + i // 2
                path = f'/{label}/moved/{j}'
                done, took = await self.write('PATCH', f'{self.base}{ENDPOINTS}/ep-{j}',
                                              {'spec': {'path': path}}, 'application/merge-patch+json')
                kind = 'update'
            rtt.append(took * 1000)
            assert await self.wait_status(self.gw + path, 200, timeout=60), f'{path} never served'
            lat[kind].append((time.monotonic() - done) * 1000)
            if self.a.steady and kind == 'update':
                # Untimed: the table and the served routes are back to what they were.
                await self.write('DELETE', f'{self.base}{ENDPOINTS}/{label}-{i - 1}', {})
                assert await self.wait_status(self.gw + path, 404, timeout=60), f'{path} never removed'
            # Spaced out, so that each change starts from a settled controller and a phase
            # lasts long enough for the churn to run beside it.
            await asyncio.sleep(self.a.gap)
        every = lat['create'] + lat['update']
        summary = {'p50_ms': pct(every, 0.5), 'p99_ms': pct(every, 0.99), 'max_ms': max(every),
                   'create_p50_ms': pct(lat['create'], 0.5), 'update_p50_ms': pct(lat['update'], 0.5),
                   'api_answer_p50_ms': pct(rtt, 0.5), 'api_answer_max_ms': max(rtt)}
        self.log(f'{label}: change -> served p50 {summary["p50_ms"]:.1f} ms, p99 {summary["p99_ms"]:.1f} ms, '
                 f'max {summary["max_ms"]:.1f} ms (API server answered in {summary["api_answer_p50_ms"]:.1f} ms p50)')
        return summary

    async def run(self):
        import aiohttp
        a = self.a
        n, k = a.objects, a.changes
        if n < 2 * k + 10:
            sys.exit(f'need at least {2 * k + 10} objects for {k} changes (updates use distinct objects)')
        port = free_port()
        self.emu = subprocess.Popen([a.python or sys.executable, EMULATOR, str(port),
                                     'weir.dev/v1alpha1/endpoints:Endpoint',
                                     'coordination.k8s.io/v1/leases:Lease', 'v1/services:Service'],
                                    stdout=subprocess.PIPE, text=True)
        line = self.emu.stdout.readline()
        assert 'listening' in line, f'emulator did not start: {line!r}'
        self.base = f'http://{HOST}:{port}'
        backend_port = free_port()
        backend_bin = a.backend_bin or os.path.join(ROOT, 'target/release/examples/bench-backend')
        if os.access(backend_bin, os.X_OK):
            self.helpers.append(subprocess.Popen([backend_bin, str(backend_port), '0', '100']))
        else:
            self.log(f'{backend_bin} not built: using the Python backend')
            self.spawn_helper(['_backend', str(backend_port)])
        self.backend = f'http://{HOST}:{backend_port}'
        tmp = self.tmp = tempfile.mkdtemp(prefix='weir-ctl-bench-')
        kubeconfig = os.path.join(tmp, 'kubeconfig')
        with open(kubeconfig, 'w') as f:
            f.write(f'''apiVersion: v1
kind: Config
clusters: [{{name: e, cluster: {{server: "{self.base}"}}}}]
users: [{{name: e, user: {{}}}}]
contexts: [{{name: e, context: {{cluster: e, user: e}}}}]
current-context: e
''')
        gw_port = free_port()
        self.gw = f'http://{HOST}:{gw_port}'
        r = self.results
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                         connector=aiohttp.TCPConnector(limit=128)) as s:
            self.s = s
            assert await self.wait_status(self.backend + '/', 200, timeout=30), 'backend not up'
            if not a.leader:
                lease = {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                         'metadata': {'name': 'weir-controller', 'namespace': NS},
                         'spec': {'holderIdentity': 'someone-else', 'leaseDurationSeconds': 3600,
                                  'renewTime': time.strftime('%Y-%m-%dT%H:%M:%S.000000Z', time.gmtime())}}
                await self.write('POST', f'{self.base}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases', lease)

            t = time.monotonic()
            sem = asyncio.Semaphore(64)

            async def create(i):
                async with sem:
                    await self.write('POST', self.base + ENDPOINTS, endpoint(f'ep-{i}', self.path_of(i), self.backend))
            await asyncio.gather(*(create(i) for i in range(n)))
            r['load_seconds'] = time.monotonic() - t
            self.log(f'loaded {n} Endpoint objects into the emulator in {r["load_seconds"]:.1f}s')

            # Status writes log a line each at info: left out, they are not what is timed.
            env = dict(os.environ, KUBECONFIG=kubeconfig,
                       RUST_LOG=os.environ.get('RUST_LOG', 'error,weir_k8s=info,weir_k8s::writer=warn'))
            self.ctl_log = os.path.join(tmp, 'controller.log')
            t0 = time.monotonic()
            with open(self.ctl_log, 'wb') as log_file:
                self.ctl = subprocess.Popen([a.weir, 'controller', '--namespace', NS, '--lease-namespace', NS,
                                             '--port', str(gw_port), '--identity', 'bench', '--drain-seconds', '0'],
                                            env=env, stdout=subprocess.DEVNULL, stderr=log_file)
            sync = await Phase(self).start()
            assert await self.wait_status(self.gw + '/__health/ready', 200, interval=0.005, timeout=300), 'never ready'
            r['sync_to_ready_ms'] = (time.monotonic() - t0) * 1000
            assert await self.wait_status(self.gw + self.path_of(n - 1), 200, timeout=60), 'last object not served'
            r['sync_to_last_served_ms'] = (time.monotonic() - t0) * 1000
            r['rss_after_sync_mb'] = rss_mb(self.ctl.pid)
            self.log(f'initial sync to ready: {r["sync_to_ready_ms"]:.0f} ms; RSS {r["rss_after_sync_mb"]:.1f} MB')

            # The stable route is polled from here to the end, in its own process.
            poller = self.spawn_helper(['_poll', self.gw + self.path_of(0), str(a.timeout), '0.005'],
                                       stdout=subprocess.PIPE, text=True)

            if a.leader:
                # Every object gets its first status: wait for N status writes.
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    st = (await self.emu_stats())['requests'].get('-', {})
                    if st.get('patch endpoints/status', 0) >= n:
                        break
                    await asyncio.sleep(0.2)
                else:
                    self.log('not every status was written within 600 s')
                r['status_all_written_ms'] = (time.monotonic() - t0) * 1000
                self.log(f'all {n} statuses written {r["status_all_written_ms"]:.0f} ms after start')
            r['sync_phase'] = await sync.stop()
            # Read 2 s later: Weir returns freed pages 1 s after a publish (malloc_trim), and
            # the figure right after sync holds the initial list's garbage (it varied from
            # 66 to 84 MB between runs of one binary at 10,000).
            await asyncio.sleep(2)
            r['rss_after_sync_settled_mb'] = rss_mb(self.ctl.pid)

            phase = await Phase(self).start()
            r['quiet'] = await self.changes('quiet', k, first_update=1)
            r['quiet']['phase'] = await phase.stop()
            await asyncio.sleep(2)  # after the trim, as above
            r['rss_after_changes_mb'] = rss_mb(self.ctl.pid)

            if a.churn > 0:
                churn = self.spawn_helper(['_churn', self.base, str(a.churn), str(2 * k + 2), str(n),
                                           self.backend, str(a.timeout)], stdout=subprocess.PIPE, text=True)
                await asyncio.sleep(3)  # let the churn reach its rate first
                phase = await Phase(self).start()
                r['churn'] = await self.changes('churn', k, first_update=k + 1)
                r['churn']['phase'] = await phase.stop()
                churn.terminate()
                out, _ = churn.communicate(timeout=30)
                r['churn_writes'] = json.loads(out.strip().splitlines()[-1])
                r['churn_writes']['rate_per_s'] = r['churn_writes']['sent'] / r['churn_writes']['seconds']
                r['rss_after_churn_mb'] = rss_mb(self.ctl.pid)

            poller.terminate()
            out, _ = poller.communicate(timeout=30)
            r['stable_route'] = json.loads(out.strip().splitlines()[-1])
            r['rss_end_mb'] = rss_mb(self.ctl.pid)
            r['emulator_rss_mb'] = rss_mb(self.emu.pid)

    def stop(self):
        for p in [self.ctl] + self.helpers + [self.emu]:
            if p is not None and p.poll() is None:
                p.terminate()
        for p in [self.ctl] + self.helpers + [self.emu]:
            if p is not None:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        if getattr(self, 'tmp', None):
            shutil.rmtree(self.tmp, ignore_errors=True)


def render(r):
    """The figures as Markdown."""
    mode = 'Lease holder, status writes on' if r['leader'] else 'follower (no status writes)'
    out = [f"Controller at {r['objects']:,} objects, {mode}; {r['changes']} changes per phase "
           f"(half creates, half updates, {r['gap_s']:g} s apart; p99 is nearest-rank, the 99th of 100"
           f"{'; steady: each update moves the object just created, which is then deleted' if r.get('steady') else ''}); "
           f"objects loaded into the emulator in {r['load_seconds']:.0f} s; object paths under "
           f"{'one first segment (/bench/)' if r.get('segments', 1) <= 1 else str(r['segments']) + ' first segments'}.", '',
           '| measure | value |', '|---|---|',
           f"| initial sync: start to ready | {r['sync_to_ready_ms']:.0f} ms |",
           f"| initial sync: start to last object served | {r['sync_to_last_served_ms']:.0f} ms |"]
    if 'status_all_written_ms' in r:
        out.append(f"| start to all {r['objects']:,} statuses written | {r['status_all_written_ms'] / 1000:.1f} s |")
    phases = [('quiet', 'change -> served')]
    if 'churn' in r:
        cw = r['churn_writes']
        phases.append(('churn', f"change -> served under churn ({cw['rate_per_s']:.0f} rewrites/s achieved "
                                f"of {r['churn_per_s']:g} asked, {cw['errors']} failed)"))
    for key, title in phases:
        c = r[key]
        out.append(f"| {title}: p50 / p99 / max | {c['p50_ms']:.1f} / {c['p99_ms']:.1f} / {c['max_ms']:.1f} ms "
                   f"(creates p50 {c['create_p50_ms']:.1f}, updates p50 {c['update_p50_ms']:.1f}) |")
    sr = r['stable_route']
    out.append(f"| errors on the stable route | {sr['errors']} of {sr['requests']:,} requests |")
    out.append(f"| RSS after sync / settled{' (statuses written)' if r['leader'] else ''} / after the changes"
               f"{' / after churn' if 'churn' in r else ''} | "
               f"{r['rss_after_sync_mb']:.1f} / {r['rss_after_sync_settled_mb']:.1f} / {r['rss_after_changes_mb']:.1f}"
               f"{' / %.1f' % r['rss_after_churn_mb'] if 'churn' in r else ''} MB |")
    for key, title in [('sync_phase', 'initial sync')] + [(k, f'{k} changes') for k, _ in phases]:
        ph = r[key] if key == 'sync_phase' else r[key]['phase']
        pb = ph.get('publish', {})
        if pb.get('count'):
            out.append(f"| tables published during {title}: count; publish time p50 / p99 / max "
                       f"(model build p50) | {pb['count']}; {pb['p50_ms']:.1f} / {pb['p99_ms']:.1f} / "
                       f"{pb['max_ms']:.1f} ms ({pb['model_p50_ms']:.1f} ms) |")
    for key, title in phases:
        ph = r[key]['phase']
        k = r['changes']
        reqs = ', '.join(f'{what} {n / k:.2f}' for what, n in sorted(ph['controller_requests'].items()))
        total = sum(ph['controller_requests'].values())
        extra = ''
        if key == 'churn':
            # The controller also answers the churn (e.g. a status write per rewrite when it
            # leads): per write, counting the churn's rewrites made during the phase.
            writes = k + r['churn_writes']['rate_per_s'] * ph['seconds']
            extra = f" ({total / writes:.2f} per write, the ~{writes - k:.0f} churn rewrites included)"
        out.append(f"| controller API requests per change ({key}) | {total / k:.2f}{extra}: "
                   f"{reqs or 'none'}; watch events sent {ph['watch_events_sent'] / k:.1f}"
                   f"{' (the churn included)' if key == 'churn' else ''} |")
    out += ['', '| phase | seconds | emulator CPU | controller CPU | API server answer p50 / max |',
            '|---|---|---|---|---|']
    sp = r['sync_phase']
    out.append(f"| initial sync{' and status writes' if r['leader'] else ''} | {sp['seconds']:.1f} | "
               f"{sp['emulator_cpu_pct']:.0f}% | {sp['controller_cpu_pct']:.0f}% | - |")
    for key, _ in phases:
        c = r[key]
        out.append(f"| {key} changes | {c['phase']['seconds']:.1f} | {c['phase']['emulator_cpu_pct']:.0f}% | "
                   f"{c['phase']['controller_cpu_pct']:.0f}% | {c['api_answer_p50_ms']:.1f} / {c['api_answer_max_ms']:.1f} ms |")
    out.append('')
    out.append('CPU is % of one core. A phase whose emulator CPU nears 100% was limited by the '
               'emulator (one Python thread), not by the controller.')
    return '\n'.join(out) + '\n'


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '_backend':
        return run_backend(int(sys.argv[2]))
    if len(sys.argv) > 1 and sys.argv[1] == '_poll':
        return run_poller(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == '_churn':
        base, rate, first, last, backend, max_s = sys.argv[2:8]
        return asyncio.run(run_churn(base, float(rate), int(first), int(last), backend, float(max_s)))

    ap = argparse.ArgumentParser(
        description='weir controller at scale against the API-server emulator (loopback only).',
        epilog='Needs ./.venv with kmock==0.8 (as .ci/run creates it); run it with that Python. '
               'Example: .venv/bin/python bench/controller_scale.py target/release/weir 5000 100 --leader --churn 50')
    ap.add_argument('weir', help='the weir binary (target/release/weir)')
    ap.add_argument('objects', nargs='?', type=int, default=10_000,
                    help='Endpoint objects loaded before the controller starts (default 10000; e.g. 1000, 5000)')
    ap.add_argument('changes', nargs='?', type=int, default=100,
                    help='changes timed per phase, half creates and half updates (default 100)')
    ap.add_argument('--leader', action='store_true',
                    help='let the controller take the Lease and write status (default: follower)')
    ap.add_argument('--churn', type=float, default=0, metavar='R',
                    help='also time the changes while R other Endpoint objects are rewritten per second')
    ap.add_argument('--segments', type=int, default=1, metavar='S',
                    help='spread the objects over S first path segments (/bench-0/..., default 1: all '
                         'under /bench/); the changes add routes under /quiet/ and /churn/')
    ap.add_argument('--steady', action='store_true',
                    help='keep the table the same size: each update moves the object the change before '
                         'created (and served), which is then deleted once its route answers 404; '
                         'RSS across the changes then shows growth that is not more endpoints')
    ap.add_argument('--gap', type=float, default=0.1, metavar='S',
                    help='pause after each change is served (default 0.1 s)')
    ap.add_argument('--backend-bin', help='fixed-answer backend (default target/release/examples/bench-backend)')
    ap.add_argument('--python', help='Python with kmock for the emulator (default: this one)')
    ap.add_argument('--json', help='also write the figures to this file')
    ap.add_argument('--timeout', type=int, default=1800, help='stop the whole run after this many seconds (default 1800)')
    ap.add_argument('--no-netns', action='store_true', help='stay in the host network namespace')
    a = ap.parse_args()
    if not a.no_netns:
        enter_netns()
    a.weir = os.path.abspath(a.weir)
    b = Bench(a)

    def alarm(*_):
        raise TimeoutError(f'run exceeded --timeout {a.timeout}s')
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(a.timeout)
    try:
        asyncio.run(b.run())
    finally:
        signal.alarm(0)
        b.stop()
    report = render(b.results)
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(b.results, f, indent=2)
    print(report)


if __name__ == '__main__':
    main()
