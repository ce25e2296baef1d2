#!/usr/bin/env bash
# The warm boot: swarm-worker started on a volume that already holds SwarmUI and every model of the image's manifest,
# timed from exec to /health saying READY, with the SwarmUI emulator standing in for SwarmUI (launched through the
# fake launch-linux.sh, its backend loading for --loading-seconds). Prints each round's time and the worker's own
# stage timings (its "READY ... after start" log line), from which SwarmUI's part (launched -> answers -> ready) and
# the worker's part (everything else) can be told apart. Release build.
# Usage: benchmarks/warm-boot.sh [--rounds N] [--loading-seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
loading=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --loading-seconds) loading="$2"; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--loading-seconds S]" >&2; exit 2 ;;
    esac
done

if [[ -z "${SWARM_WORKER_BIN:-}" || -z "${SWARMUI_EMULATOR_BIN:-}" ]]; then
    swift build -c release --product swarm-worker
    swift build -c release --product swarmui-emulator
    bin="$(swift build -c release --show-bin-path)"
    SWARM_WORKER_BIN="${bin}/swarm-worker"
    SWARMUI_EMULATOR_BIN="${bin}/swarmui-emulator"
fi

out="$(pwd)/.swarm-test/warm-boot"
rm -rf "${out}"
volume="${out}/volume"
mkdir -p "${volume}/SwarmUI/Data"
cp tests/Fixtures/fake-swarmui/launch-linux.sh "${volume}/SwarmUI/launch-linux.sh"
cp builder/Backends.fds "${volume}/SwarmUI/Data/Backends.fds"
# Every model of the image's manifest in place (contents do not matter to the scan).
python3 - "${volume}/SwarmUI/Models" << 'EOF'
import json, os, sys
for entry in json.load(open("builder/models.json"))["models"]:
    path = os.path.join(sys.argv[1], entry["folder"], entry["file"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b"model")
EOF

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

echo "warm boot: SwarmUI emulator backend loading ${loading} s; ${rounds} rounds; ${SWARM_WORKER_BIN}"
for round in $(seq "${rounds}"); do
    swarm_port="$(free_port)"
    health_port="$(free_port)"
    start="$(now)"
    env VOLUME_PATH="${volume}" SWARMUI_PORT="${swarm_port}" WORKER_HEALTH_HOST=127.0.0.1 WORKER_HEALTH_PORT="${health_port}" \
        SWARMUI_EMULATOR_BIN="${SWARMUI_EMULATOR_BIN}" SWARMUI_EMULATOR_ARGS="--loading-seconds ${loading}" \
        SWARM_MODELS_FILE=builder/models.json SWARM_PRESETS_FILE=builder/presets.json \
        SWARM_QUEUE_URL="http://127.0.0.1:9/v2/warm-boot" SWARM_WORKER_KEY=unused SWARM_WORKER_ID=warm-boot \
        "${SWARM_WORKER_BIN}" > "${out}/worker-${round}.log" 2>&1 &
    worker=$!
    ready=""
    for _ in $(seq 3000); do
        if curl -sf "http://127.0.0.1:${health_port}/health" 2> /dev/null | grep -q '"stage":"READY"'; then
            ready="$(now)"
            break
        fi
        sleep 0.01
    done
    kill -TERM "${worker}" 2> /dev/null || true
    wait "${worker}" 2> /dev/null || true
    if [[ -z "${ready}" ]]; then
        echo "round ${round}: not READY within 30 s; log: ${out}/worker-${round}.log" >&2
        exit 1
    fi
    printf 'round %d: start -> READY on /health %.2f s; worker: %s\n' "${round}" "$(echo "${ready} - ${start}" | bc)" \
        "$(grep -o 'READY [0-9.]* s after start.*' "${out}/worker-${round}.log" | head -1)"
done
