#!/usr/bin/env bash
# The model download benchmark: one file (256 MiB by default) from a local server that caps what each connection gets
# (benchmarks/capped-file-server.py, paced without a burst), as Hugging Face's and Civitai's CDNs do, fetched by `swarm-worker models sync` (release build, sha256 verified),
# `aria2c -x16 -s16` and `hf_transfer` (as huggingface_hub calls it: 100 files, 10 MiB chunks), in one run. For each
# cap it prints each downloader's time (best of --rounds) and swarm-worker's speed as a ratio to the best of the
# other two (>= 1: as fast). Neither aria2c nor hf_transfer hashes the file; swarm-worker does, so the ratio is
# conservative. Caps: 8 MB/s and 64 MB/s per connection with every downloader's defaults, then an uncapped server
# with one connection each (SWARM_DOWNLOAD_CONNECTIONS=1, aria2c -x1 -s1, hf_transfer max_files=1): the single
# stream must not regress. With SWARM_WORKER_BASE_BIN set to another build (say, the commit before a change), a
# column "base" shows that build's `models sync` too (not in the ratio).
# Needs aria2c (Debian: installed here with apt-get when missing) and PyPI for hf_transfer (a venv under
# .swarm-test/model-download/).
# Usage: benchmarks/model-download.sh [--mib N] [--rounds N] [--caps "8000000 64000000"]
set -euo pipefail
cd "$(dirname "$0")/.."

mib=256
rounds=2
caps="8000000 64000000"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --mib) mib="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --caps) caps="$2"; shift 2 ;;
        *) echo "usage: $0 [--mib N] [--rounds N] [--caps \"bytes/s ...\"]" >&2; exit 2 ;;
    esac
done

if ! command -v aria2c > /dev/null; then
    echo "installing aria2 (apt-get)" >&2
    apt-get install -y aria2 > /dev/null
fi

out="$(pwd)/.swarm-test/model-download"
mkdir -p "${out}"
venv="${out}/venv"
if [[ ! -x "${venv}/bin/python" ]] || ! "${venv}/bin/python" -c 'import hf_transfer' 2> /dev/null; then
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet hf_transfer
fi

if [[ -z "${SWARM_WORKER_BIN:-}" ]]; then
    swift build -c release --product swarm-worker
    SWARM_WORKER_BIN="$(swift build -c release --show-bin-path)/swarm-worker"
fi

# The file, its digest and the server.
data="${out}/www"
mkdir -p "${data}"
file="${data}/model.bin"
if [[ ! -f "${file}" || "$(stat -c %s "${file}")" != "$((mib << 20))" ]]; then
    head -c "$((mib << 20))" /dev/urandom > "${file}"
fi
digest="$(sha256sum "${file}" | cut -d' ' -f1)"
rm -f "${out}/port"
python3 benchmarks/capped-file-server.py "${data}" "${out}/port" &
server_pid=$!
trap 'kill "${server_pid}" 2> /dev/null || true' EXIT
for _ in $(seq 50); do [[ -s "${out}/port" ]] && break; sleep 0.1; done
port="$(cat "${out}/port")"

now() { date +%s.%N; }

# Each downloader gets a fresh target; prints seconds. $1 = URL, $2 = connections ("" = the downloader's default).
run_swarm() { # $3 = the binary (default SWARM_WORKER_BIN)
    local volume="${out}/volume"
    rm -rf "${volume}"
    mkdir -p "${volume}"
    cat > "${out}/models.json" << EOF
{"schema": 1, "models": [{"name": "model.bin", "subtype": "Stable-Diffusion", "folder": "diffusion_models", "file": "model.bin",
  "url": "$1", "size_bytes": $((mib << 20)), "size_exact": true, "sha256": "${digest}", "token_required": false}]}
EOF
    local start; start="$(now)"
    env VOLUME_PATH="${volume}" SWARM_MODELS_FILE="${out}/models.json" LOG_LEVEL=warning \
        ${2:+SWARM_DOWNLOAD_CONNECTIONS=$2} "${3:-${SWARM_WORKER_BIN}}" models sync > "${out}/swarm.log" 2>&1 \
        || { cat "${out}/swarm.log" >&2; exit 1; }
    echo "$(now) - ${start}" | bc
    [[ "$(sha256sum "${volume}/SwarmUI/Models/diffusion_models/model.bin" | cut -d' ' -f1)" == "${digest}" ]] || { echo "swarm-worker: wrong bytes" >&2; exit 1; }
}
run_aria2() {
    rm -rf "${out}/aria2"
    local start; start="$(now)"
    aria2c -q -x "${2:-16}" -s "${2:-16}" -d "${out}/aria2" -o model.bin "$1"
    echo "$(now) - ${start}" | bc
    cmp -s "${out}/aria2/model.bin" "${file}" || { echo "aria2c: wrong bytes" >&2; exit 1; }
}
run_hf() {
    rm -f "${out}/hf.bin"
    local start; start="$(now)"
    "${venv}/bin/python" -c 'import sys, hf_transfer; hf_transfer.download(url=sys.argv[1], filename=sys.argv[2], max_files=int(sys.argv[3]), chunk_size=10 * 1024 * 1024)' \
        "$1" "${out}/hf.bin" "${2:-100}"
    echo "$(now) - ${start}" | bc
    cmp -s "${out}/hf.bin" "${file}" || { echo "hf_transfer: wrong bytes" >&2; exit 1; }
}
best() { # best of $rounds runs of "$@"
    local result=""
    for _ in $(seq "${rounds}"); do
        local t; t="$("$@")"
        if [[ -z "${result}" ]] || (( $(echo "${t} < ${result}" | bc) )); then result="${t}"; fi
    done
    echo "${result}"
}

echo "file: ${mib} MiB, best of ${rounds} rounds; swarm-worker: ${SWARM_WORKER_BIN}"
printf '%-28s %14s %12s %12s %8s%s\n' "server cap per connection" "swarm-worker" "aria2c" "hf_transfer" "ratio" \
    "${SWARM_WORKER_BASE_BIN:+         base}"
bench() { # $1 = label, $2 = cap, $3 = connections for every downloader ("" = defaults)
    local url="http://127.0.0.1:${port}/cap$2/model.bin"
    local swarm aria hf
    swarm="$(best run_swarm "${url}" "$3")"
    aria="$(best run_aria2 "${url}" "$3")"
    hf="$(best run_hf "${url}" "$3")"
    local other; other="$(echo "if (${aria} < ${hf}) ${aria} else ${hf}" | bc -l)"
    local base=""
    if [[ -n "${SWARM_WORKER_BASE_BIN:-}" ]]; then base="$(printf ' %12.2fs' "$(best run_swarm "${url}" "$3" "${SWARM_WORKER_BASE_BIN}")")"; fi
    printf '%-28s %13.2fs %11.2fs %11.2fs %8.2f%s\n' "$1" "${swarm}" "${aria}" "${hf}" "$(echo "${other} / ${swarm}" | bc -l)" "${base}"
}
for cap in ${caps}; do
    bench "$(echo "${cap} / 1000000" | bc) MB/s, defaults" "${cap}" ""
done
bench "uncapped, 1 connection" 0 1
echo "ratio: best of aria2c and hf_transfer's time / swarm-worker's time (>= 1: swarm-worker as fast or faster)"
