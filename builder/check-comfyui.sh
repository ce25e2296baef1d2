#!/usr/bin/env bash
# Starts the seed's ComfyUI once, on CPU, the way SwarmUI 0.9.8.2 starts it on an RTX 30/40/50 card
# (ComfyUISelfStartBackend.Init: --port, --extra-model-paths-config with its comfy-auto-model.yaml
# layout, --fast fp16_accumulation cublas_ops, --preview-method latent2rgb), and fails the build unless
# the node types the Wan 2.2 GGUF path needs registered. Without this, a ComfyUI that rejects an
# argument never starts (the backend stays "loading"), and a node pack that fails to import only
# shows up as a failed first job on a rented GPU.
# Output, input and user folders go to a temporary directory, so the seed copied to volumes stays as installed.
# Usage: check-comfyui.sh <seed dir> [seconds to wait, default 600] [port, default 18188]
set -euo pipefail

seed=${1:?seed directory}
timeout=${2:-600}
comfy="$(cd "$seed/dlbackend/ComfyUI" && pwd)"
python="$comfy/venv/bin/python"
extension="$seed/src/BuiltinExtensions/ComfyUIBackend"
port=${3:-18188}
# SwarmUI's own nodes, ComfyUI-GGUF's loader, and ComfyUI's Wan 2.2 image-to-video node.
required=(SwarmKSampler SwarmSaveAnimationWS SwarmLoadImageB64 SwarmSaveImageWS UnetLoaderGGUF WanImageToVideo)

# SwarmUI reads ComfyUI's requirements.txt at every backend start (ComfyUISelfStartBackend.Init at 062407c): on each
# line of letters, digits and ".-_" around ==, >= or <=, the version goes to .NET's Version.Parse, which takes 2 to 4
# numeric parts, and names go into a dictionary. A "2" or a "1.0.post1" there, or a name twice, throws and the
# backend never starts.
"$python" - "$comfy/requirements.txt" <<'PY' || exit 1
import re, sys
part = re.compile(r"[A-Za-z0-9._-]+")
seen, bad = set(), []
for raw in open(sys.argv[1]).read().splitlines():
    line = raw.strip()
    if not line or line.startswith("#"):
        continue
    pair = raw.replace(">=", "==").replace("<=", "==").split("==")
    if not part.fullmatch(pair[0]) or (len(pair) > 1 and not part.fullmatch(pair[1])):
        continue
    if pair[0] in seen:
        bad.append(f"{raw!r}: {pair[0]} is listed twice")
    seen.add(pair[0])
    if len(pair) > 1:
        numbers = pair[1].split(".")
        if not 2 <= len(numbers) <= 4 or not all(n.isdigit() and int(n) < 2**31 for n in numbers):
            bad.append(f"{raw!r}: SwarmUI's Version.Parse cannot read '{pair[1]}'")
if bad:
    print("check-comfyui: ComfyUI's requirements.txt would stop SwarmUI's backend start:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
PY

work=$(mktemp -d)
models="$work/Models"
mkdir -p "$models"/{Stable-Diffusion,diffusion_models,unet,Lora,VAE,text_encoders,clip,clip_vision,upscale_models,Embeddings,controlnet}
# The shape SwarmUI writes to Data/comfy-auto-model.yaml (EnsureComfyFile): model folders under one
# root, and the node folders as a separate, non-default section.
cat > "$work/comfy-auto-model.yaml" <<YAML
swarmui:
    base_path: $models
    is_default: true
    checkpoints: |
       Stable-Diffusion
    vae: |
       VAE
    loras: |
       Lora
    upscale_models: |
       upscale_models
    embeddings: |
       Embeddings
    controlnet: |
       controlnet
    clip: |
       text_encoders
       clip
    clip_vision: |
       clip_vision
    diffusion_models: |
       diffusion_models
       unet

swarmui_nodes:
    custom_nodes: |
       $extension/DLNodes
       $extension/ExtraNodes
YAML

log="$work/comfyui.log"
(cd "$comfy" && exec "$python" main.py --cpu --listen 127.0.0.1 --port "$port" \
    --extra-model-paths-config "$work/comfy-auto-model.yaml" \
    --fast fp16_accumulation cublas_ops --preview-method latent2rgb \
    --output-directory "$work/output" --input-directory "$work/input" --user-directory "$work/user") > "$log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "check-comfyui: $*" >&2
    echo "--- last lines of ComfyUI's output ---" >&2
    tail -n 60 "$log" >&2 || true
    exit 1
}

# /object_info lists every registered node type once ComfyUI serves.
object_info="$work/object_info.json"
deadline=$((SECONDS + timeout))
until "$python" -c "import urllib.request, sys; sys.stdout.buffer.write(urllib.request.urlopen('http://127.0.0.1:$port/object_info', timeout=10).read())" > "$object_info" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || fail "ComfyUI exited during start (bad argument, or an import error)"
    (( SECONDS < deadline )) || fail "ComfyUI did not answer within ${timeout}s"
    sleep 2
done

missing=$("$python" - "$object_info" "${required[@]}" <<'PY'
import json, sys
nodes = json.load(open(sys.argv[1]))
print(" ".join(name for name in sys.argv[2:] if name not in nodes))
PY
)
[[ -z "$missing" ]] || fail "node types not registered: $missing"
if grep -q "IMPORT FAILED" "$log"; then
    fail "a custom node pack failed to import: $(grep "IMPORT FAILED" "$log" | tr '\n' ' ')"
fi
echo "check-comfyui: ComfyUI started with SwarmUI's arguments and registered ${required[*]}"
