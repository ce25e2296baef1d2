#!/usr/bin/env bash
# Checks out SwarmUI at a pinned commit into the seed directory, builds it, and writes the
# settings that skip the install wizard. The worker copies the seed to $VOLUME_PATH/SwarmUI
# on first boot, so nothing here may depend on the volume.
# Usage: install-swarmui.sh <seed dir> <repo url> <commit> <expected version> <builder dir>
set -euo pipefail

seed=${1:?seed directory}
repo=${2:?repository url}
ref=${3:?commit}
version=${4:?expected SwarmUI version}
builder=${5:?builder directory}

git init --quiet "$seed"
git -C "$seed" remote add origin "$repo"
git -C "$seed" fetch --quiet --depth 1 origin "$ref"
git -C "$seed" checkout --quiet --detach FETCH_HEAD

cd "$seed"
actual=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' src/SwarmUI.csproj)
if [[ "$actual" != "$version" ]]; then
    echo "SwarmUI at $ref is version '$actual', expected '$version'" >&2
    exit 1
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# linux-x64 only: without a runtime identifier the output carries every platform's native libraries
# (LLamaSharp's CPU and CUDA backends for Windows and macOS too), which the worker copies to the volume.
# Framework-dependent: the image's .NET runtime runs it, as launch-linux.sh expects.
dotnet build src/SwarmUI.csproj --configuration Release -r linux-x64 --self-contained false -o ./src/bin/live_release
# launch-linux.sh rebuilds when HEAD differs from this file; a matching value keeps starts fast.
git rev-parse HEAD > src/bin/last_build
# The build output holds every assembly it needs; the package cache would only double the layer.
rm -rf "${HOME:?}/.nuget/packages" src/obj

mkdir -p Data
install -m 0644 "$builder/Settings.fds" Data/Settings.fds
install -m 0644 "$builder/Backends.fds" Data/Backends.fds
