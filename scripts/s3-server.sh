#!/usr/bin/env bash
# A throwaway S3-compatible server (moto's, from PyPI, pinned in requirements-dev.txt) for the storage tests.
#
#   scripts/s3-server.sh          start it on 127.0.0.1 on a free port; the last line on stdout is its endpoint URL,
#                                 for SWARM_TEST_S3_ENDPOINT
#   scripts/s3-server.sh stop     stop it
#
# State (pid, port, log) lives in .swarm-test/s3 (git-ignored). Running it again while it is up only prints the URL.
# Everything but the URL goes to stderr. moto does not check signatures: the botocore fixtures prove the signing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${root}/.swarm-test/s3"
pid_file="${state}/server.pid"
port_file="${state}/server.port"
log="${state}/server.log"

say() { printf 's3-server.sh: %s\n' "$*" >&2; }

running() {
    [[ -f "${pid_file}" ]] && kill -0 "$(cat "${pid_file}")" 2>/dev/null
}

stop() {
    if running; then
        local pid
        pid="$(cat "${pid_file}")"
        kill "${pid}"
        for _ in $(seq 1 50); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.1
        done
        say "stopped"
    fi
    rm -f "${pid_file}" "${port_file}"
}

start() {
    if running; then
        printf 'http://127.0.0.1:%s\n' "$(cat "${port_file}")"
        return
    fi
    "${root}/scripts/python-env.sh" >&2
    mkdir -p "${state}"
    local python="${root}/.venv/bin/python" port
    port="$("${python}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # Its own session, so that stop (or the caller's Ctrl-C) never races with the test runner's process group.
    setsid "${root}/.venv/bin/moto_server" -H 127.0.0.1 -p "${port}" >"${log}" 2>&1 </dev/null &
    echo $! >"${pid_file}"
    echo "${port}" >"${port_file}"
    for _ in $(seq 1 100); do
        if curl -fsS -o /dev/null "http://127.0.0.1:${port}/moto-api/" 2>/dev/null; then
            say "moto_server is up (pid $(cat "${pid_file}"), log ${log})"
            printf 'http://127.0.0.1:%s\n' "${port}"
            return
        fi
        running || break
        sleep 0.1
    done
    say "moto_server did not come up; its log:"
    cat "${log}" >&2
    stop
    exit 1
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) say "usage: $0 [start|stop]"; exit 2 ;;
esac
