"""Controller scale benchmark: N Endpoint objects in the API-server emulator.

Measures (1) start of `weir controller` to /__health/ready = 200 (initial sync to ready),
(2) change applied to the API server -> new route served (p50/p99 over K changes),
(3) the controller's RSS. Run through bench/controller_scale.sh.

The Lease is pre-created for another holder, so the measured controller is a follower and
writes no status: the Python emulator handles ~50 requests/s, and 10,000 status writes
would measure the emulator, not the watch -> table -> serve path. A change counts from the
moment the API server answered the create until the gateway serves the new route.

usage: python controller_scale.py WEIR_BINARY [N] [K]
"""
import asyncio, json, os, socket, subprocess, sys, tempfile, time
import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, '..', 'tests', 'support', 'kube-emulator.py')
NS = 'bench'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def endpoint(name, path):
    return {
        'apiVersion': 'weir.dev/v1alpha1', 'kind': 'Endpoint',
        'metadata': {'name': name, 'namespace': NS},
        'spec': {'path': path, 'backends': [
            {'hosts': ['http://127.0.0.1:9'], 'urlPattern': '/v1' + path}]},
    }


async def create_all(session, base, objs, concurrency=64):
    url = f'{base}/apis/weir.dev/v1alpha1/namespaces/{NS}/endpoints'
    sem = asyncio.Semaphore(concurrency)

    async def one(o):
        async with sem:
            async with session.post(url, json=o) as r:
                assert r.status in (200, 201), await r.text()
    await asyncio.gather(*(one(o) for o in objs))


async def wait_status(session, url, want, timeout=120.0, interval=0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(url) as r:
                await r.read()
                if r.status == want:
                    return True
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(interval)
    return False


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


async def main():
    weir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    port = free_port()
    emu = subprocess.Popen([sys.executable, EMULATOR, str(port), 'weir.dev/v1alpha1/endpoints:Endpoint',
                            'coordination.k8s.io/v1/leases:Lease', 'v1/services:Service'],
                           stdout=subprocess.PIPE, text=True)
    emu.stdout.readline()
    base = f'http://127.0.0.1:{port}'
    tmp = tempfile.mkdtemp()
    kubeconfig = os.path.join(tmp, 'kubeconfig')
    with open(kubeconfig, 'w') as f:
        f.write(f'''apiVersion: v1
kind: Config
clusters: [{{name: e, cluster: {{server: "{base}"}}}}]
users: [{{name: e, user: {{}}}}]
contexts: [{{name: e, context: {{cluster: e, user: e}}}}]
current-context: e
''')
    gw_port = free_port()
    ctl = None
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
            lease = {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                     'metadata': {'name': 'weir-controller', 'namespace': NS},
                     'spec': {'holderIdentity': 'someone-else', 'leaseDurationSeconds': 3600}}
            async with s.post(f'{base}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases', json=lease) as r:
                assert r.status in (200, 201), await r.text()
            t = time.monotonic()
            await create_all(s, base, [endpoint(f'ep-{i}', f'/bench/{i}') for i in range(n)])
            print(f'loaded {n} Endpoint objects into the emulator in {time.monotonic() - t:.1f}s', flush=True)

            env = dict(os.environ, KUBECONFIG=kubeconfig, RUST_LOG=os.environ.get('RUST_LOG', 'error'))
            t0 = time.monotonic()
            ctl = subprocess.Popen([weir, 'controller', '--namespace', NS, '--lease-namespace', NS,
                                    '--port', str(gw_port), '--identity', 'bench'],
                                   env=env, stdout=subprocess.DEVNULL)
            gw = f'http://127.0.0.1:{gw_port}'
            assert await wait_status(s, gw + '/__health/ready', 200, interval=0.005), 'never ready'
            ready = time.monotonic() - t0
            assert await wait_status(s, gw + f'/bench/{n - 1}', 500, timeout=5), 'last object not served'
            print(f'initial sync to ready: {ready * 1000:.0f} ms ({n} objects)', flush=True)
            print(f'RSS after sync: {rss_mb(ctl.pid):.1f} MB', flush=True)

            lat = []
            url = f'{base}/apis/weir.dev/v1alpha1/namespaces/{NS}/endpoints'
            for i in range(k):
                path = f'/change/{i}'
                async with s.post(url, json=endpoint(f'change-{i}', path)) as r:
                    assert r.status in (200, 201)
                t = time.monotonic()
                # The backend is a closed port: a served route answers 500, an unknown one 404.
                assert await wait_status(s, gw + path, 500, timeout=30), f'{path} never served'
                lat.append((time.monotonic() - t) * 1000)
            lat.sort()
            p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
            print(f'change -> served over {k} creates: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, '
                  f'max {lat[-1]:.1f} ms', flush=True)
            print(f'RSS at end: {rss_mb(ctl.pid):.1f} MB', flush=True)
    finally:
        if ctl:
            ctl.terminate()
            ctl.wait()
        emu.terminate()
        emu.wait()


asyncio.run(main())
