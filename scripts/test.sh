#!/usr/bin/env bash
# The whole test suite, as CI runs it: Swift unit and integration tests, the runpod SDK against swarmctl, and the
# image checks, with what they need (PostgreSQL, an S3 stand-in, a Python venv) installed and started here, on loopback
# only.
# Usage: scripts/test.sh [extra `swift test` arguments, e.g. --filter WorkerTests]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting (swift format lint, settings in .swift-format)"
swift format lint --recursive --strict --parallel --configuration .swift-format Package.swift Sources tests benchmarks

step "module graph (scripts/check-architecture.sh: Package.swift, docs/architecture.md and the imports agree)"
scripts/check-architecture.sh

step "PostgreSQL for the store tests (scripts/postgres.sh)"
SWARM_TEST_DATABASE_URL="$(scripts/postgres.sh | tail -n 1)"
export SWARM_TEST_DATABASE_URL

step "S3-compatible stand-in for the storage tests (scripts/s3-server.sh: moto on loopback)"
SWARM_TEST_S3_ENDPOINT="$(scripts/s3-server.sh | tail -n 1)"
export SWARM_TEST_S3_ENDPOINT
trap 'scripts/s3-server.sh stop > /dev/null 2>&1 || true' EXIT

step "building (debug, with tests)"
swift build --build-tests

step "Swift tests"
# One test at a time: the suites start servers and child processes, and on a 2-core machine running them all at
# once turns timeouts meant for a hung peer into failures of a merely slow one.
swift test --skip-build --no-parallel "$@"

step "runpod SDK (client and serverless worker) against swarmctl"
SWARMCTL_BIN="$(swift build --show-bin-path)/swarmctl" scripts/test-python.sh

step "the README's first command: scripts/run-local.sh (text-to-image and image-to-video end to end)"
scripts/run-local.sh

step "the image's swarm-worker build (scripts/check-worker-build.sh: builder/build-worker.sh, then start and stop it)"
scripts/check-worker-build.sh

step "image checks (Dockerfile, builder/, scripts; no Docker engine needed)"
scripts/check-image.sh

step "all tests passed"
