#!/usr/bin/env python3
"""The cost of JWT validation (issue 13), measured side by side on loopback.

One Weir instance serves the same nginx-backed JSON endpoint twice: `/small` without auth
and `/jwt` protected by `auth.jwt` (RS256, RSA-2048, key set from a file, issuer and
audience checked). wrk drives, in alternating rounds:

  none      /small, no token
  cached    /jwt, one token repeated (the verified-token cache answers after the first)
  1000      /jwt, 1,000 distinct tokens cycled (each verified once, then cached)
  fresh     /jwt, 60,000 distinct tokens, each sent once per run: every request pays an
            RSA signature check (a run stops before the tokens run out)

CPU is utime+stime of Weir's process over the run divided by the requests wrk completed.
The cost of a fresh token is `fresh - cached` µs of CPU; 1,000 new tokens per second cost
1,000 times that. Reuses bench.py's helpers (network namespace, nginx backend, wrk).

    python3 bench/auth_bench.py --weir target/release/weir [--rounds 3] [--duration 10]
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402

P_WEIR, P_ADMIN = 18180, 18189
ISS, AUD = "https://idp.bench", "api"
FRESH_TOKENS = 60_000

LUA = """
local tokens = {}
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  for line in io.lines(os.getenv("WEIR_TOKENS")) do tokens[#tokens + 1] = line end
  local n = tonumber(os.getenv("WEIR_THREADS"))
  -- Threads take disjoint slices, so a token is not sent twice in one run.
  i = math.floor(#tokens / n) * id
end
function request()
  i = i + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]})
end
"""


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
    e = pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big")
    jwk = {"kty": "RSA", "kid": "bench", "alg": "RS256", "n": b64(n), "e": b64(e)}
    header = b64(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}).encode())

    def token(i):
        claims = {"iss": ISS, "aud": AUD, "sub": f"user-{i}", "exp": int(time.time()) + 7200}
        msg = f"{header}.{b64(json.dumps(claims).encode())}"
        sig = key.sign(msg.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{msg}.{b64(sig)}"

    return {"keys": [jwk]}, token


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weir", required=True, help="release weir binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per run (fresh: at most 3)")
    args = ap.parse_args()
    bench.enter_netns()
    work = tempfile.mkdtemp(prefix="weir-auth-bench-")
    os.chmod(work, 0o755)
    data = os.path.join(work, "data")
    bench.make_data(data)
    for root, dirs, files in os.walk(data):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755)
    jwks, token = signer()
    with open(os.path.join(work, "jwks.json"), "w") as f:
        json.dump(jwks, f)
    bench.log(f"minting {FRESH_TOKENS} tokens...")
    files = {}
    for name, count in (("cached", 1), ("1000", 1000), ("fresh", FRESH_TOKENS)):
        path = os.path.join(work, f"tokens-{name}.txt")
        with open(path, "w") as f:
            for i in range(count):
                f.write(token(f"{name}-{i}") + "\n")
        files[name] = path
    script = os.path.join(work, "tokens.lua")
    with open(script, "w") as f:
        f.write(LUA)
    try:
        conf = bench.nginx_conf(work, "backend", 1, f"""
    server {{
        listen {bench.HOST}:{bench.P_BACKEND} reuseport;
        location / {{ root {data}; default_type application/json; }}
    }}""")
        bench.spawn(["nginx", "-p", work, "-c", conf, "-g", "daemon off;"])
        jwt_endpoint = f"""  - path: /jwt
    auth:
      jwt: {{jwksFile: {work}/jwks.json, algorithms: [RS256], issuer: "{ISS}", audience: [{AUD}]}}
    backends:
      - hosts: ["http://{bench.HOST}:{bench.P_BACKEND}"]
        urlPattern: /small.json
"""
        cfg = os.path.join(work, "weir.yaml")
        bench.write_atomic(cfg, bench.weir_config(extra_endpoints=jwt_endpoint, port=P_WEIR, admin=P_ADMIN))
        weir = bench.spawn([args.weir, "run", "--config", cfg])
        bench.wait_http(f"http://{bench.HOST}:{P_ADMIN}/__health/ready")
        bench.wait_http(f"http://{bench.HOST}:{bench.P_BACKEND}/small.json")
        base = f"http://{bench.HOST}:{P_WEIR}"
        pids = bench.proc_tree(weir.pid)
        targets = ["none", "cached", "1000", "fresh"]
        runs = {t: [] for t in targets}
        os.environ["WEIR_THREADS"] = "2"
        for r in range(args.rounds):
            for t in targets[r % len(targets):] + targets[:r % len(targets)]:
                dur = min(args.duration, 3) if t == "fresh" else args.duration
                if t == "none":
                    res = bench.wrk(f"{base}/small", dur, cpu_pids=pids)
                else:
                    os.environ["WEIR_TOKENS"] = files[t]
                    res = bench.wrk(f"{base}/jwt", dur, cpu_pids=pids, script=script)
                res.pop("raw")
                runs[t].append(res)
                bench.log(f"round {r + 1} {t}: {res['rps']:.0f} req/s p99 {res['p99']:.2f} ms "
                          f"CPU {res['cpu_us_per_req']:.1f} us/req non-2xx {res['non2xx']} "
                          f"requests {res['requests']}")
        out = {"machine": bench.machine(), "load": os.getloadavg(), "targets": {}}
        for t, v in runs.items():
            out["targets"][t] = {
                "rps": bench.median([x["rps"] for x in v]),
                "p50_ms": bench.median([x["p50"] for x in v]),
                "p99_ms": bench.median([x["p99"] for x in v]),
                "cpu_us_per_req": bench.median([x["cpu_us_per_req"] for x in v]),
                "errors": sum(x["non2xx"] + x["socket_errors"] for x in v),
                "requests": [x["requests"] for x in v],
            }
        tg = out["targets"]
        out["cached_over_none"] = {k: tg["cached"][k] / tg["none"][k] for k in ("rps", "p99_ms", "cpu_us_per_req")}
        out["fresh_token_cpu_us"] = tg["fresh"]["cpu_us_per_req"] - tg["cached"]["cpu_us_per_req"]
        out["thousand_per_s_core_share"] = out["fresh_token_cpu_us"] * 1000 / 1e6
        print(json.dumps(out, indent=2))
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
