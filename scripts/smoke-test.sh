#!/usr/bin/env bash
# End-to-end check of the GPU image on a machine with Docker and an NVIDIA GPU:
# a local `swarmctl serve` is the queue, the image runs as its worker (`docker run --gpus all`),
# and a text-to-image job then an image-to-video job (fed the first job's picture) must both
# come back with a real PNG and a real MP4.
#
# Usage: scripts/smoke-test.sh [IMAGE]        (default: swarm-worker:dev)
# Environment:
#   SMOKE_VOLUME      host directory mounted as /workspace (default .swarm-test/smoke-volume;
#                     keep it between runs so the models are downloaded once)
#   SMOKE_PORT        port of the local swarmctl serve (default 8288)
#   SMOKE_TIMEOUT     seconds to wait for the worker to become READY (default 3600: first boot downloads ~33 GB)
#   SMOKE_T2I_URL     image model fetched for the text-to-image job (default: SD 1.5 fp16, ~2 GB, public)
#   SWARMCTL          swarmctl binary (default: on PATH, else .build/release or .build/debug)
#   HUGGINGFACE_API_TOKEN, CIVITAI_API_TOKEN   passed to the worker; the Civitai one is needed
#                     unless the Civitai model is already on the volume
# Exit status: 0 passed, 1 failed, 2 this machine cannot run it (what is missing is printed).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${1:-swarm-worker:dev}
volume=${SMOKE_VOLUME:-$repo/.swarm-test/smoke-volume}
port=${SMOKE_PORT:-8288}
timeout=${SMOKE_TIMEOUT:-3600}
health_port=18080
t2i_url=${SMOKE_T2I_URL:-https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors}
civitai_files=(wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.gguf wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8L.gguf)

say() { printf 'smoke-test: %s\n' "$*" >&2; }

# --- What this machine needs; everything missing is reported at once. ---
missing=()
if ! command -v docker > /dev/null; then
    missing+=("the docker CLI (https://docs.docker.com/engine/install/)")
elif ! docker info > /dev/null 2>&1; then
    missing+=("a running Docker engine ('docker info' fails)")
elif ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia && ! command -v nvidia-smi > /dev/null; then
    missing+=("an NVIDIA GPU with the NVIDIA Container Toolkit (docker run --gpus all)")
elif ! docker image inspect "$image" > /dev/null 2>&1; then
    missing+=("the image $image (build it: docker build -t $image $repo)")
fi
swarmctl=${SWARMCTL:-$(command -v swarmctl || true)}
for candidate in "$repo/.build/release/swarmctl" "$repo/.build/debug/swarmctl"; do
    [[ -n "$swarmctl" ]] || { [[ -x "$candidate" ]] && swarmctl=$candidate; }
done
[[ -n "$swarmctl" && -x "$swarmctl" ]] || missing+=("swarmctl (swift build --product swarmctl, or set SWARMCTL)")
command -v curl > /dev/null || missing+=("curl")
command -v python3 > /dev/null || missing+=("python3 (checks the outputs)")
for civitai_file in "${civitai_files[@]}"; do
    if [[ -z "${CIVITAI_API_TOKEN:-}" && ! -f "$volume/SwarmUI/Models/diffusion_models/$civitai_file" ]]; then
        missing+=("CIVITAI_API_TOKEN (the preset's Civitai model $civitai_file is not on $volume yet)")
    fi
done
if (( ${#missing[@]} > 0 )); then
    say "cannot run here; this machine lacks:"
    printf '  - %s\n' "${missing[@]}" >&2
    exit 2
fi

# --- Queue and worker. ---
work="$repo/.swarm-test/smoke-$$"
mkdir -p "$work" "$volume"
api_key=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
worker_key=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
container="swarm-smoke-$$"
serve_pid=

cleanup() {
    docker logs "$container" > "$work/worker.log" 2>&1 || true
    docker rm -f "$container" > /dev/null 2>&1 || true
    if [[ -n "$serve_pid" ]]; then kill "$serve_pid" 2>/dev/null || true; fi
    say "logs: $work/worker.log, $work/serve.log"
}
trap cleanup EXIT

SWARM_API_KEYS=$api_key SWARM_WORKER_KEYS=$worker_key \
    "$swarmctl" serve --host 127.0.0.1 --port "$port" --data-dir "$work/queue" > "$work/serve.log" 2>&1 &
serve_pid=$!

# Host networking: the worker reaches the queue on the host's loopback, like a real worker
# reaches the control plane over the internet.
docker run -d --name "$container" --gpus all --network host \
    -v "$volume:/workspace" \
    -e SWARM_QUEUE_URL="http://127.0.0.1:$port/v2/swarmui" \
    -e SWARM_WORKER_KEY="$worker_key" \
    -e WORKER_HEALTH_PORT="$health_port" \
    -e HUGGINGFACE_API_TOKEN="${HUGGINGFACE_API_TOKEN:-}" \
    -e CIVITAI_API_TOKEN="${CIVITAI_API_TOKEN:-}" \
    "$image" > /dev/null

say "waiting up to ${timeout}s for the worker to be READY (first boot copies SwarmUI and downloads models)"
deadline=$(( SECONDS + timeout ))
until curl -fsS "http://127.0.0.1:$health_port/health" 2>/dev/null | grep -q '"READY"'; do
    if [[ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != "true" ]]; then
        say "the worker container stopped"; exit 1
    fi
    if (( SECONDS > deadline )); then
        say "not READY after ${timeout}s; last health: $(curl -sS "http://127.0.0.1:$health_port/health" 2>&1 || true)"; exit 1
    fi
    sleep 10
done

export SWARM_URL="http://127.0.0.1:$port" SWARM_API_KEY="$api_key"

# Prints the job's result JSON; fails the test when the job does not complete.
run_job() {
    local label=$1 body=$2
    printf '%s\n' "$body" > "$work/$label.json"
    say "submitting $label"
    if ! "$swarmctl" submit --file "$work/$label.json" --wait > "$work/$label.result.json"; then
        say "$label did not complete: $(head -c 2000 "$work/$label.result.json")"; exit 1
    fi
}

# Checks the first output file's type and magic bytes; prints its data URL.
check_output() {
    python3 - "$1" "$2" <<'PY'
import base64, json, sys
path, kind = sys.argv[1], sys.argv[2]
result = json.load(open(path))
output = result.get("output", result)
files = output.get("files") or []
if not files:
    sys.exit(f"{path}: no output files")
first = files[0]
data = base64.b64decode(first["url"].split(",", 1)[1])
if kind == "png":
    ok = first["content_type"] == "image/png" and data.startswith(b"\x89PNG\r\n\x1a\n")
else:
    ok = first["content_type"] == "video/mp4" and data[4:8] == b"ftyp"
if not ok or len(data) != first["bytes"]:
    sys.exit(f"{path}: expected a {kind}, got {first['content_type']} of {len(data)} bytes")
print(first["url"])
PY
}

run_job download "{\"action\": \"download_model\", \"url\": \"$t2i_url\", \"model_name\": \"smoke/sd15\", \"model_type\": \"Stable-Diffusion\"}"
run_job t2i '{"prompt": "a lighthouse on a cliff at sunset, photo", "model": "smoke/sd15", "width": 512, "height": 512, "steps": 20, "seed": 1}'
image_url=$(check_output "$work/t2i.result.json" png)
python3 - "$image_url" > "$work/i2v.json" <<'PY'
import json, sys
print(json.dumps({"preset": "wan22-i2v-lightx2v", "prompt": "waves crash below the lighthouse, slow push-in",
                  "init_image": sys.argv[1], "seed": 1}))
PY
run_job i2v "$(cat "$work/i2v.json")"
check_output "$work/i2v.result.json" mp4 > /dev/null
say "passed: text-to-image PNG and image-to-video MP4"
