#!/usr/bin/env bash
# The swarm-worker binary the image ships, built here the way the Dockerfile builds it (builder/build-worker.sh), so
# that CI catches a broken image build without a Docker engine:
#   - it links only against the shared libraries the runtime image has (the Dockerfile's own check);
#   - builder/swarm-worker.order still names the code (a stale list would quietly cost the idle worker memory);
#   - it starts attached to the SwarmUI emulator, answers /health with READY, and exits 0 on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'check-worker-build: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

binary="$(builder/build-worker.sh | tail -n 1)"

libraries="$(ldd "${binary}")"
if grep -vE '(linux-vdso|ld-linux-x86-64|lib(c|m|dl|pthread|rt|util|resolv|stdc\+\+|gcc_s|z)\.so)' <<<"${libraries}"; then
    fail "the binary needs a shared library the runtime image does not have (above)"
fi

# Every name in the order file was defined by the binary it was made from; most must still be.
ordered="$(sort -u builder/swarm-worker.order | wc -l)"
found="$(comm -12 <(sort -u builder/swarm-worker.order) <(nm --defined-only "${binary}" | awk '{ print $3 }' | sort -u) | wc -l)"
say "order file: ${found} of ${ordered} functions still defined"
if (( found * 10 < ordered * 9 )); then
    fail "builder/swarm-worker.order is stale (under 90% of its functions exist); run builder/make-order-file.sh"
fi

swift build -c release --product swarmui-emulator >/dev/null
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
    rm -rf "${work}"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

swarm_port="$(free_port)"
"$(swift build -c release --show-bin-path)/swarmui-emulator" --port "${swarm_port}" --data-dir "${work}/swarmui" \
    >"${work}/emulator.log" 2>&1 &
pids+=($!)
health_port="$(free_port)"
# No queue answers on port 9: the worker retries it, which is enough to come up and report READY.
SWARMUI_ATTACH=1 SWARMUI_API_URL="http://127.0.0.1:${swarm_port}" SWARM_QUEUE_URL="http://127.0.0.1:9/v2/swarmui" \
    SWARM_WORKER_KEY=check VOLUME_PATH="${work}/volume" WORKER_HEALTH_HOST=127.0.0.1 WORKER_HEALTH_PORT="${health_port}" \
    "${binary}" >"${work}/worker.log" 2>&1 &
worker=$!
pids+=("${worker}")
stage=""
for _ in $(seq 1 150); do
    stage="$(curl -fsS "http://127.0.0.1:${health_port}/health" 2>/dev/null \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["stage"])' 2>/dev/null || true)"
    [[ "${stage}" == READY ]] && break
    kill -0 "${worker}" 2>/dev/null || break
    sleep 0.2
done
[[ "${stage}" == READY ]] || { cat "${work}/worker.log"; fail "the worker did not report READY (last stage: ${stage:-none})"; }
kill -TERM "${worker}"
status=0
wait "${worker}" || status=$?
(( status == 0 )) || { cat "${work}/worker.log"; fail "the worker exited ${status} on SIGTERM, not 0"; }
say "OK (${binary}: links, order file current, READY against the emulator, exit 0 on SIGTERM)"
