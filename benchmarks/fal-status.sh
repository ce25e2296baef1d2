#!/usr/bin/env bash
# fal status polls: 200 clients polling their request's status every 0.1 s (fal-client's default) against the same
# server's /healthz, paced and unpaced, from one run against a server in the same process on loopback (release build).
# Usage: benchmarks/fal-status.sh [--database postgres://...]
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --product control-plane-bench
exec .build/release/control-plane-bench --fal-status "$@"
