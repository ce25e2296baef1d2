#!/usr/bin/env bash
# The web page's weight (bytes transferred) and time to first render, with an empty store and with 10,000 jobs,
# side by side in one run against `swarmctl serve` on loopback (release build), in Debian's headless Chromium.
# Usage: benchmarks/web-page.sh   (WEB_BENCH_JOBS=N for another store size; SWARMCTL_BIN for another build)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${SWARMCTL_BIN:-}" ]]; then
    swift build -c release --product swarmctl
    SWARMCTL_BIN="$PWD/.build/release/swarmctl"
fi
export SWARMCTL_BIN
scripts/python-env.sh
scripts/chromium.sh
exec .venv/bin/python benchmarks/web_page.py
