#!/usr/bin/env bash
# The main job on the embedded default: builds swarmctl, serves the queue on SQLite in ./.swarm with a local worker
# (attached to a SwarmUI at SWARMUI_API_URL if one answers, else the bundled emulator), submits a text-to-image job
# and an image-to-video job, waits for both, and downloads their files under ./.swarm/downloads, checking each sha256.
#   --keep      leave the server running afterwards (Ctrl-C stops it)
#   SWARM_DEMO_MODEL=<name>   the text-to-image model (default: the emulator's SDXL)
set -euo pipefail
cd "$(dirname "$0")/.."

keep=0
[[ "${1:-}" == "--keep" ]] && keep=1
port="${SWARM_DEMO_PORT:-8288}"
data=.swarm
model="${SWARM_DEMO_MODEL:-OfficialStableDiffusion/sd_xl_base_1.0.safetensors}"

echo "==> building swarmctl"
swift build --product swarmctl
bin="$(swift build --show-bin-path)/swarmctl"

mkdir -p "$data"
log="$data/serve.log"
echo "==> swarmctl serve --local-worker on 127.0.0.1:$port (log: $log)"
"$bin" serve --local-worker --port "$port" --data-dir "$data" > "$log" 2>&1 &
server=$!
cleanup() {
    if kill "$server" 2>/dev/null; then wait "$server" 2>/dev/null || true; fi
}
[[ $keep == 1 ]] || trap cleanup EXIT
for _ in $(seq 1 100); do
    grep -q "listening on" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "swarmctl serve exited" >&2; exit 1; }
    sleep 0.2
done
grep "swarmctl serve: listening on" "$log"
grep -i "emulator\|attaching" "$log" || true

export SWARM_URL="http://127.0.0.1:$port"
# A 64x64 PNG as the image-to-video start frame.
start_frame="data:image/png;base64,$(python3 -c 'import base64,struct,zlib
w=h=64
raw=b"".join(b"\x00"+bytes(v for x in range(w) for v in (x*4%256,y*4%256,128)) for y in range(h))
def chunk(t,d): return struct.pack(">I",len(d))+t+d+struct.pack(">I",zlib.crc32(t+d))
png=b"\x89PNG\r\n\x1a\n"+chunk(b"IHDR",struct.pack(">IIBBBBB",w,h,8,2,0,0,0))+chunk(b"IDAT",zlib.compress(raw))+chunk(b"IEND",b"")
print(base64.b64encode(png).decode())')"

run_job() {
    local label=$1 input=$2
    echo "==> $label"
    local result
    # A failed job exits non-zero; the check below prints its error.
    result="$("$bin" submit --wait --input "$input")" || true
    python3 - "$label" "$result" <<'PY'
import json, sys
label = sys.argv[1]
job = json.loads(sys.argv[2])
if job.get("status") != "COMPLETED":
    sys.exit(f"{label}: {job.get('status')}: {job.get('error')}")
for f in job["output"]["files"]:
    print(f"  {job['id']}: {f['name']}, {f['content_type']}, {f['bytes']} bytes, sha256 {f['sha256'][:16]}...")
PY
    # Inline data URLs or links to the control plane's storage alike: download fetches and checks each sha256.
    local id
    id="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$result")"
    "$bin" download "$id" --out "$data/downloads/$id"
}

run_job "text-to-image" "{\"prompt\": \"a lighthouse at dusk, oil painting\", \"model\": \"$model\", \"steps\": 8}"
run_job "image-to-video (preset wan22-i2v-lightx2v)" \
    "{\"preset\": \"wan22-i2v-lightx2v\", \"prompt\": \"waves roll in, the camera slowly pans\", \"init_image\": \"$start_frame\", \"video\": {\"frames\": 17}}"

echo "==> done: both jobs completed; files in $data/downloads"
if [[ $keep == 1 ]]; then
    echo "server still running (pid $server) at $SWARM_URL; stop it with: kill $server"
fi
