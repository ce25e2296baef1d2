#!/usr/bin/env bash
# Debian/Ubuntu packages the runtime image needs. Run once by the Dockerfile as root.
set -euo pipefail

apt-get update
# python3.12-dev and gcc: triton compiles small C launchers at run time (sageattention, torch.compile).
# ffmpeg: SwarmUI uses the system ffmpeg for video outputs. tini: PID 1.
# dotnet-sdk-8.0: SwarmUI targets net8.0 (Ubuntu 24.04 ships the SDK in its archive).
apt-get install -y --no-install-recommends \
    ca-certificates curl git tini ffmpeg \
    python3.12 python3.12-venv python3.12-dev gcc libc6-dev \
    dotnet-sdk-8.0 \
    libgl1 libglib2.0-0t64 libgomp1
rm -rf /var/lib/apt/lists/*

# The volume may be owned by another uid than the image's files; SwarmUI's launch script
# runs `git rev-parse HEAD` and would trigger a rebuild if git refused the repository.
git config --system --add safe.directory '*'
