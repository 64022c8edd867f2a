#!/usr/bin/env bash
# Controller at scale: N (default 10000) Endpoint objects in the API-server emulator; prints
# initial sync to ready, change -> served latency (p50/p99 over K changes) and RSS.
#   bench/controller_scale.sh [N] [K]
# Needs ./.venv with kmock==0.8 (as .ci/run creates it). Builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
.venv/bin/python bench/controller_scale.py target/release/weir "${1:-10000}" "${2:-100}"
