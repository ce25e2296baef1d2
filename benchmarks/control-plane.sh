#!/usr/bin/env bash
# The control plane's benchmark: throughput of submit+take+done with 32 concurrent HTTP workers as a ratio to the
# same server's no-op route, dispatch latency to a long-polling worker, and a 10,000-job bulk submit, from one run
# against a server in the same process on loopback (release build).
# Usage: benchmarks/control-plane.sh [control-plane-bench options (benchmarks/control-plane/), e.g. --database postgres://...]
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --product control-plane-bench
exec .build/release/control-plane-bench "$@"
