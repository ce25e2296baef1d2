#!/usr/bin/env bash
# The outputs benchmark: one 1 GiB output from the SwarmUI emulator to S3-compatible storage (moto, started here on
# loopback) through the real swarm-worker binary, with the worker's peak RSS and its throughput as a ratio to
# `curl -T` of the same file to the same server, from one run (release build).
# Usage: benchmarks/output-upload.sh [--bytes N] [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --product swarm-worker
swift build -c release --product output-upload
# A server the test script left running is reused and left running; one started here is stopped at the end.
if [[ ! -f .swarm-test/s3/server.pid ]] || ! kill -0 "$(cat .swarm-test/s3/server.pid)" 2>/dev/null; then
    trap 'scripts/s3-server.sh stop > /dev/null 2>&1 || true' EXIT
fi
endpoint="$(scripts/s3-server.sh | tail -n 1)"
.build/release/output-upload --s3 "${endpoint}" "$@"
