#!/usr/bin/env bash
# Puts ComfyUI and the ComfyUI-GGUF nodes into the SwarmUI seed, where SwarmUI's self-start
# backend expects them, points ComfyUI's venv at the image's venv, and installs their Python
# requirements together with the image's pins (one resolution, so a conflict fails the build).
# Usage: install-comfyui.sh <seed dir> <venv dir> <requirements.txt> <comfy repo> <comfy commit> <gguf repo> <gguf commit> <freeze file>
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
checkout "$comfy" "$comfy_repo" "$comfy_ref"
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
