#!/usr/bin/env bash
# A throwaway PostgreSQL server for the job store's tests.
#
#   scripts/postgres.sh          start it (installing PostgreSQL from Debian's packages if missing); the last line on
#                                stdout is its URL, for SWARM_TEST_DATABASE_URL
#   scripts/postgres.sh stop     stop it
#
# The cluster lives in .swarm-test/pg (git-ignored) and listens on 127.0.0.1:54329 only. Running it again while it is
# up only prints the URL; so does finding another checkout's test server on that port. Everything but the URL goes to
# stderr.
set -euo pipefail

readonly PORT=54329
readonly HOST=127.0.0.1
readonly DB_USER=swarm
readonly DB_PASSWORD=swarm
readonly DB_NAME=swarm_test
readonly URL="postgres://${DB_USER}:${DB_PASSWORD}@${HOST}:${PORT}/${DB_NAME}?sslmode=disable"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# As root the server runs as `postgres`, which must be able to reach the cluster folder. A checkout below a private
# folder (/root, say) is out of its reach: the cluster then goes to a folder of its own under /tmp, one per checkout.
cluster_folder() {
    if [[ "$(id -u)" != 0 ]] || runuser -u postgres -- test -x "${root}" 2>/dev/null; then
        printf '%s\n' "${root}/.swarm-test/pg"
    else
        printf '/tmp/swarm-test-pg-%s\n' "$(printf '%s' "${root}" | cksum | cut -d ' ' -f 1)"
    fi
}

# Set once PostgreSQL is installed: `cluster_folder` needs its user.
set_paths() {
    CLUSTER="$(cluster_folder)"
    DATA="${CLUSTER}/data"
    SOCKETS="${CLUSTER}/run"
    LOG="${CLUSTER}/server.log"
    readonly CLUSTER DATA SOCKETS LOG
}

say() { printf 'postgres.sh: %s\n' "$*" >&2; }

# The newest server installed from Debian's packages (empty when there is none).
installed_bin() {
    local dirs=() dir
    shopt -s nullglob
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "${dir}/postgres" ]] && dirs+=("${dir}")
    done
    shopt -u nullglob
    ((${#dirs[@]} > 0)) && printf '%s\n' "${dirs[@]}" | sort -V | tail -n 1
    return 0
}

install_server() {
    [[ "$(id -u)" == 0 ]] || { say "PostgreSQL is not installed and installing it needs root"; exit 1; }
    say "installing PostgreSQL from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user the package created.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

is_running() {
    [[ -f "${DATA}/PG_VERSION" ]] && as_owner "${BIN}/pg_ctl" -D "${DATA}" status >/dev/null 2>&1
}

init_cluster() {
    say "creating a cluster in ${DATA}"
    mkdir -p "${CLUSTER}"
    rm -rf "${DATA}" "${SOCKETS}"
    mkdir -p "${DATA}" "${SOCKETS}"
    if [[ "$(id -u)" == 0 ]]; then chown -R postgres:postgres "${CLUSTER}"; fi
    as_owner "${BIN}/initdb" -D "${DATA}" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >&2
    # Loopback only, its own socket folder, and no durability: a test server loses nothing of value on a crash.
    cat >>"${DATA}/postgresql.conf" <<EOF
listen_addresses = '${HOST}'
port = ${PORT}
unix_socket_directories = '${SOCKETS}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
}

psql_admin() {
    as_owner "${BIN}/psql" -h "${SOCKETS}" -p "${PORT}" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}

ensure_database() {
    if [[ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '${DB_USER}'")" != 1 ]]; then
        psql_admin -c "CREATE ROLE ${DB_USER} LOGIN PASSWORD '${DB_PASSWORD}'" >&2
    fi
    if [[ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != 1 ]]; then
        psql_admin -c "CREATE DATABASE ${DB_NAME} OWNER ${DB_USER}" >&2
    fi
}

start() {
    if is_running; then
        say "already running on ${HOST}:${PORT}"
        printf '%s\n' "${URL}"
        return
    fi
    if "${BIN}/pg_isready" -q -h "${HOST}" -p "${PORT}"; then
        # Another checkout's test server (every test works in a schema of its own, so sharing one is safe).
        if PGPASSWORD="${DB_PASSWORD}" "${BIN}/psql" "${URL}" -qtA -c 'SELECT 1' >/dev/null 2>&1; then
            say "using the server already on ${HOST}:${PORT} (not ${DATA})"
            printf '%s\n' "${URL}"
            return
        fi
        say "another server answers on ${HOST}:${PORT} without the ${DB_USER} login; stop it first"
        exit 1
    fi
    [[ -f "${DATA}/PG_VERSION" ]] || init_cluster
    say "starting on ${HOST}:${PORT} (log: ${LOG})"
    if [[ "$(id -u)" == 0 ]]; then chown -R postgres:postgres "${CLUSTER}"; fi
    as_owner "${BIN}/pg_ctl" -D "${DATA}" -l "${LOG}" -w -t 60 start >&2
    ensure_database
    printf '%s\n' "${URL}"
}

stop() {
    if [[ -n "${BIN}" ]] && is_running; then
        as_owner "${BIN}/pg_ctl" -D "${DATA}" -m fast -w stop >&2
    else
        say "not running"
    fi
}

BIN="$(installed_bin)"

case "${1:-start}" in
    start)
        if [[ -z "${BIN}" ]]; then
            install_server
            BIN="$(installed_bin)"
        fi
        set_paths
        start
        ;;
    stop)
        set_paths
        stop
        ;;
    *) say "usage: $0 [start|stop]"; exit 2 ;;
esac
