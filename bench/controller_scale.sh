#!/usr/bin/env bash
# Controller at scale: N (default 10000) Endpoint objects in the API-server emulator; prints
# initial sync to ready, change -> served latency (p50/p99/max over K changes), errors on a
# stable route, RSS and API requests per change. Extra flags go to controller_scale.py:
#   bench/controller_scale.sh [N] [K] [--leader] [--churn R] [--json FILE]
# Needs ./.venv with kmock==0.8 (as .ci/run creates it). Builds the release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"; k="${2:-100}"; shift $(( $# < 2 ? $# : 2 ))
cargo build --release --quiet --bin weir --example bench-backend
.venv/bin/python bench/controller_scale.py target/release/weir "$n" "$k" "$@"
