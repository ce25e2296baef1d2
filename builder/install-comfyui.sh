#!/usr/bin/env bash
# Puts ComfyUI and the ComfyUI-GGUF nodes into the SwarmUI seed, where SwarmUI's self-start
# backend expects them, points ComfyUI's venv at the image's venv, and installs their Python
# requirements together with the image's pins (one resolution, so a conflict fails the build).
#
# ComfyUI must be from the same week as the SwarmUI commit in the seed: SwarmUI's nodes import
# ComfyUI internals (comfy_api.latest, comfy_api.input_impl, comfy_extras.nodes_audio) and pass it
# arguments (--fast fp16_accumulation cublas_ops) that a ComfyUI of another time may lack. A
# <comfy commit> more than 7 days from SwarmUI's fails the build; `swarmui-week` instead takes
# the last ComfyUI master commit at or before SwarmUI's commit time (deterministic: master is
# append-only). The commits and dates used are written to versions.txt beside the freeze file.
# Usage: install-comfyui.sh <seed dir> <venv dir> <requirements.txt> <comfy repo> <comfy commit|swarmui-week> <gguf repo> <gguf commit> <freeze file>
set -euo pipefail

seed=${1:?seed directory}
venv=${2:?venv directory}
requirements=${3:?requirements file}
comfy_repo=${4:?ComfyUI repository}
comfy_ref=${5:?ComfyUI commit}
gguf_repo=${6:?ComfyUI-GGUF repository}
gguf_ref=${7:?ComfyUI-GGUF commit}
freeze=${8:?file to record the installed packages in}

# Shallow checkout of one commit; .git stays so SwarmUI's git calls see a normal repository.
checkout() {
    local dir=$1 repo=$2 ref=$3
    mkdir -p "$dir"
    git init --quiet "$dir"
    git -C "$dir" remote add origin "$repo"
    git -C "$dir" fetch --quiet --depth 1 origin "$ref"
    git -C "$dir" checkout --quiet --detach FETCH_HEAD
}

comfy="$seed/dlbackend/ComfyUI"
nodes="$seed/src/BuiltinExtensions/ComfyUIBackend/DLNodes"
week=$((7 * 86400))
swarm_time=$(git -C "$seed" log -1 --format=%ct HEAD)
if [[ "$comfy_ref" == swarmui-week ]]; then
    # History back to a week before SwarmUI's commit is enough to find the last commit before it.
    resolve=$(mktemp -d)
    git init --quiet "$resolve"
    git -C "$resolve" fetch --quiet --shallow-since="$(date -u -d "@$((swarm_time - week))" +%Y-%m-%dT%H:%M:%SZ)" "$comfy_repo" master
    comfy_ref=$(git -C "$resolve" rev-list -1 --first-parent --before="$(date -u -d "@$swarm_time" +%Y-%m-%dT%H:%M:%SZ)" FETCH_HEAD)
    rm -rf "$resolve"
    if [[ -z "$comfy_ref" ]]; then
        echo "no ComfyUI master commit in the week before SwarmUI's ($(git -C "$seed" log -1 --format=%cI HEAD))" >&2
        exit 1
    fi
fi
checkout "$comfy" "$comfy_repo" "$comfy_ref"
comfy_time=$(git -C "$comfy" log -1 --format=%ct HEAD)
if (( comfy_time > swarm_time + week || comfy_time < swarm_time - week )); then
    echo "ComfyUI $comfy_ref is from $(git -C "$comfy" log -1 --format=%cI HEAD), more than 7 days from SwarmUI's" \
        "$(git -C "$seed" log -1 --format='%h (%cI)' HEAD); SwarmUI's nodes and launch arguments target the ComfyUI of" \
        "their week. Set COMFYUI_REF to a commit of that week, or to swarmui-week." >&2
    exit 1
fi
checkout "$nodes/ComfyUI-GGUF" "$gguf_repo" "$gguf_ref"

# SwarmUI runs dlbackend/ComfyUI/venv/bin/python when it exists; the venv itself stays in the
# image (several GB) and only this link is copied to the volume.
ln -sfn "$venv" "$comfy/venv"

"$venv/bin/pip" install --no-cache-dir --disable-pip-version-check \
    -r "$requirements" \
    -r "$comfy/requirements.txt" \
    -r "$nodes/ComfyUI-GGUF/requirements.txt" \
    -r "$seed/src/BuiltinExtensions/ComfyUIBackend/ExtraNodes/SwarmComfyExtra/requirements.txt"
"$venv/bin/pip" check
"$venv/bin/pip" freeze --all > "$freeze"
{
    echo "swarmui $(git -C "$seed" log -1 --format='%H %cI' HEAD)"
    echo "comfyui $(git -C "$comfy" log -1 --format='%H %cI' HEAD)"
    echo "comfyui-gguf $(git -C "$nodes/ComfyUI-GGUF" log -1 --format='%H %cI' HEAD)"
} > "$(dirname "$freeze")/versions.txt"
cat "$(dirname "$freeze")/versions.txt"
