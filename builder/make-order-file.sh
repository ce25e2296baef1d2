#!/usr/bin/env bash
# Writes builder/swarm-worker.order, the functions a starting and idling swarm-worker runs, which
# builder/build-worker.sh asks the linker to place together. Run it after changes to what the worker does at start
# or while it waits for work (a stale list only costs resident memory).
#
#   builder/make-order-file.sh [idle-seconds]     (default 45; needs valgrind)
#
# It runs the image's build of the worker under callgrind, attached to the SwarmUI emulator and long-polling a
# `swarmctl serve` on loopback with no jobs, and lists every function callgrind saw run.
set -euo pipefail
cd "$(dirname "$0")/.."
idle="${1:-45}"
command -v valgrind >/dev/null || { echo "make-order-file.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

binary="$(builder/build-worker.sh | tail -n 1)"
swift build -c release --product swarmctl >&2
swift build -c release --product swarmui-emulator >&2
bin="$(swift build -c release --show-bin-path)"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "${work}"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

swarm_port="$(free_port)"
"${bin}/swarmui-emulator" --port "${swarm_port}" --data-dir "${work}/swarmui" >"${work}/emulator.log" 2>&1 &
pids+=($!)
queue_port="$(free_port)"
SWARM_WORKER_KEYS=order-worker SWARM_API_KEYS=order-client \
    "${bin}/swarmctl" serve --port "${queue_port}" --data-dir "${work}/queue" >"${work}/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:${queue_port}/healthz" 2>/dev/null && break
    sleep 0.1
done

# valgrind cannot read the debug information of this binary; the symbol table is all it needs.
strip --strip-debug -o "${work}/swarm-worker" "${binary}"
echo "make-order-file.sh: profiling ${idle} s of start and idle under callgrind" >&2
SWARMUI_ATTACH=1 SWARMUI_API_URL="http://127.0.0.1:${swarm_port}" \
    SWARM_QUEUE_URL="http://127.0.0.1:${queue_port}/v2/swarmui" SWARM_WORKER_KEY=order-worker \
    VOLUME_PATH="${work}/volume" WORKER_HEALTH_HOST=127.0.0.1 WORKER_HEALTH_PORT="$(free_port)" LOG_LEVEL=error \
    timeout -s TERM "${idle}" valgrind --tool=callgrind --demangle=no --callgrind-out-file="${work}/callgrind.out" \
    "${work}/swarm-worker" >"${work}/worker.log" 2>&1 || true
[[ -s "${work}/callgrind.out" ]] || { cat "${work}/worker.log" >&2; exit 1; }

# Function names as the linker knows them: callgrind marks recursion depth with 'N and names code without a
# symbol by its address, which cannot be ordered.
# Only names the binary defines: what ran in glibc and libstdc++ is not the linker's to place.
nm --defined-only "${binary}" | awk '{ print $3 }' >"${work}/defined.txt"
python3 - "${work}/callgrind.out" builder/swarm-worker.order "${work}/defined.txt" <<'PY'
import re, sys
defined = set(open(sys.argv[3]).read().split())
names = set()
for line in open(sys.argv[1], errors="replace"):
    match = re.match(r"c?fn=\(\d+\) (.+)$", line.rstrip("\n"))
    if match:
        name = re.sub(r"'\d+$", "", match.group(1))
        if name in defined:
            names.add(name)
with open(sys.argv[2], "w") as out:
    out.write("".join(name + "\n" for name in sorted(names)))
print(f"make-order-file.sh: {len(names)} functions in {sys.argv[2]}", file=sys.stderr)
PY
