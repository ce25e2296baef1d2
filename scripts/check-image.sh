#!/usr/bin/env bash
# Checks everything about the GPU image that can be checked without Docker or a GPU:
# every script through shellcheck, the Dockerfile through hadolint, and pytest tests/image (Dockerfile
# structure, models manifest, FDS templates, onstart.sh behaviour, smoke-test preconditions).
# Installs what it needs: the project-local .venv (scripts/python-env.sh), shellcheck from Debian packages.
# Prints one summary line; exits non-zero when any check fails.
#
# --resolve also asks PyPI (about 2 minutes) whether builder/requirements.txt resolves for the
# image's Python 3.12 on x86_64 Linux; PyPI's torch of the same version stands in for the +cu128
# build, whose index this machine cannot reach.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$SECONDS
venv="$repo/.venv"
failed=()

scripts/python-env.sh

if ! command -v shellcheck > /dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "check-image: shellcheck is missing; install it (apt-get install shellcheck) or run as root" >&2
        exit 1
    fi
    apt-get update -qq > /dev/null
    apt-get install -y -qq --no-install-recommends shellcheck > /dev/null
fi

if [[ "${1:-}" == "--resolve" ]]; then
    echo "== pip resolve builder/requirements.txt (cp312, manylinux x86_64)"
    resolve_dir=$(mktemp -d)
    sed -e 's/+cu128$//' -e '/^--extra-index-url/d' builder/requirements.txt > "$resolve_dir/requirements.txt"
    platforms=()
    for tag in manylinux_2_39 manylinux_2_35 manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1 linux; do
        platforms+=(--platform "${tag}_x86_64")
    done
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed \
        --target "$resolve_dir/target" --python-version 3.12 --implementation cp --only-binary=:all: \
        "${platforms[@]}" -r "$resolve_dir/requirements.txt" || failed+=(resolve)
    rm -rf "$resolve_dir"
fi

scripts=(builder/*.sh scripts/*.sh)
echo "== shellcheck (${#scripts[@]} scripts)"
shellcheck "${scripts[@]}" || failed+=(shellcheck)

echo "== hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile || failed+=(hadolint)

echo "== pytest tests/image"
pytest_out=$(mktemp)
trap 'rm -f "$pytest_out"' EXIT
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/image | tee "$pytest_out" || failed+=(pytest)
tests=$(grep -Eo '[0-9]+ passed|[0-9]+ failed|[0-9]+ error' "$pytest_out" | paste -sd, - | sed 's/,/, /g')

if (( ${#failed[@]} == 0 )); then
    resolved=""
    if [[ "${1:-}" == "--resolve" ]]; then resolved=", requirements resolve"; fi
    echo "check-image: OK (shellcheck ${#scripts[@]} scripts, hadolint, pytest ${tests}${resolved}) in $((SECONDS - started))s"
else
    echo "check-image: FAILED (${failed[*]}; pytest ${tests:-not run}) in $((SECONDS - started))s"
    exit 1
fi
