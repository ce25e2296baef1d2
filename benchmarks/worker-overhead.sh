#!/usr/bin/env bash
# The worker benchmark (benchmarks/worker-overhead/main.swift): idle RSS of the swarm-worker binary the image ships
# (builder/build-worker.sh, in .build-image), and the per-job overhead of the worker in the benchmark's own process.
# Usage: benchmarks/worker-overhead.sh [jobs]
set -euo pipefail
cd "$(dirname "$0")/.."

binary="$(builder/build-worker.sh | tail -n 1)"
swift build -c release --product worker-overhead
SWARM_WORKER_BINARY="${binary}" .build/release/worker-overhead "$@"
