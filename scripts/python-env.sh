#!/usr/bin/env bash
# Creates the project-local Python environment .venv (gitignored) with the pinned packages of requirements-dev.txt.
# Re-running is cheap: packages are installed again only when requirements-dev.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.requirements-dev.sha256"
wanted="$(sha256sum requirements-dev.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    echo "$wanted" > "$stamp"
fi
