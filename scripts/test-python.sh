#!/usr/bin/env bash
# Drives a built swarmctl with the real runpod SDK (client and serverless worker), and its web page in Debian's
# headless Chromium (scripts/chromium.sh installs it when missing).
# Usage: SWARMCTL_BIN=.build/debug/swarmctl scripts/test-python.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

: "${SWARMCTL_BIN:?set SWARMCTL_BIN to the built swarmctl, e.g. .build/debug/swarmctl}"
if [ ! -x "$SWARMCTL_BIN" ]; then
    echo "SWARMCTL_BIN=$SWARMCTL_BIN is not an executable; build it with 'swift build --product swarmctl'" >&2
    exit 1
fi
SWARMCTL_BIN="$(cd "$(dirname "$SWARMCTL_BIN")" && pwd)/$(basename "$SWARMCTL_BIN")"
export SWARMCTL_BIN

scripts/python-env.sh
scripts/chromium.sh
exec .venv/bin/python -m pytest tests/python -q "$@"
