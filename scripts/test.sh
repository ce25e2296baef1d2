#!/usr/bin/env bash
# The whole test suite, as CI runs it: Swift unit and integration tests, with the services they need started here
# on loopback only. Usage: scripts/test.sh [extra `swift test` arguments, e.g. --filter WorkerTests]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "building (debug, with tests)"
swift build --build-tests

step "Swift tests"
swift test --skip-build "$@"

step "image checks (Dockerfile, builder/, scripts; no Docker engine needed)"
scripts/check-image.sh
