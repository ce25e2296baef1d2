#!/usr/bin/env bash
# vast.ai "onstart" entrypoint. With the ssh and jupyter run types vast replaces the image's
# ENTRYPOINT with its own and runs this script once per container start, so this script must
# start swarm-worker in the background and return.
#
# - The worker runs under a small supervisor: restarted with backoff when it crashes, left
#   alone after a clean exit 0 (a deliberate stop).
# - Output goes to $VOLUME_PATH/logs/swarm-worker.log (size-capped, rotated) and to the
#   container's stdout, which is what vast's request_logs returns.
# - Running it again (after a reboot, or by hand) does not start a second copy: a pidfile on the
#   volume names the live supervisor.
#
# Template onstart field: bash /opt/swarm/onstart.sh
set -euo pipefail

# Under ssh/jupyter run types the template's env is written to /etc/environment for login
# shells and is not always in this script's environment, and neither may be the image's own ENV
# defaults (saved to /opt/swarm/image.env at build). Fill in only what is missing, in that order.
import_env() {
    local file=$1 line name value
    [[ -r "$file" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        name=${BASH_REMATCH[2]}
        value=${BASH_REMATCH[3]}
        # Strip one pair of surrounding quotes, as pam_env does.
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
            value=${BASH_REMATCH[1]}
        fi
        [[ -v "$name" ]] || export "$name=$value"
    done < "$file"
}
import_env "${SWARM_ENV_FILE:-/etc/environment}"
import_env "${SWARM_IMAGE_ENV:-/opt/swarm/image.env}"

VOLUME_PATH=${VOLUME_PATH:-/workspace}
export VOLUME_PATH
worker=${SWARM_WORKER_BIN:-swarm-worker}
log_dir="$VOLUME_PATH/logs"
log_file="$log_dir/swarm-worker.log"
log_max_bytes=${SWARM_LOG_MAX_BYTES:-52428800}
log_keep=${SWARM_LOG_KEEP:-3}
pid_file="$VOLUME_PATH/.swarm-worker/onstart.pid"
backoff_max=${SWARM_RESTART_BACKOFF_MAX:-60}

mkdir -p "$log_dir" "$(dirname "$pid_file")"

say() { printf '%s onstart: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

# A pidfile can outlive its process (the container restarted); only a live supervisor counts.
if [[ -s "$pid_file" ]]; then
    old_pid=$(<"$pid_file")
    if [[ "$old_pid" =~ ^[0-9]+$ ]] && kill -0 "$old_pid" 2>/dev/null \
        && tr '\0' ' ' < "/proc/$old_pid/cmdline" 2>/dev/null | grep -q 'onstart.sh'; then
        say "swarm-worker supervisor already running (pid $old_pid); nothing to do"
        exit 0
    fi
fi

# The container's output: PID 1's stdout is what `docker logs` and vast's request_logs read,
# whatever vast's init does with this script's own output. Without it, only the file is written.
console=${SWARM_CONSOLE:-/proc/1/fd/1}
if [[ "$console" == /proc/* && ! -w "$console" ]]; then console=/dev/null; fi

# Copies each line to the console and the log file; rotates the file when it passes the cap.
# Sizes are counted in the shell (bytes, LC_ALL=C) to avoid a stat per line.
log_sink() {
    local LC_ALL=C line size i
    size=$(stat -c %s "$log_file" 2>/dev/null || echo 0)
    while IFS= read -r line || [[ -n "$line" ]]; do
        printf '%s\n' "$line" >> "$console"
        printf '%s\n' "$line" >> "$log_file"
        size=$(( size + ${#line} + 1 ))
        if (( size > log_max_bytes )); then
            for (( i = log_keep - 1; i >= 1; i-- )); do
                if [[ -f "$log_file.$i" ]]; then mv -f "$log_file.$i" "$log_file.$((i + 1))"; fi
            done
            mv -f "$log_file" "$log_file.1"
            size=0
        fi
    done
}

supervise() {
    local delay=1 started status
    while true; do
        say "starting $worker"
        started=$SECONDS
        set +e
        "$worker" "$@" 9>&- &
        child=$!
        wait "$child"
        status=$?
        set -e
        child=
        if (( status == 0 )); then
            say "swarm-worker exited cleanly; not restarting"
            return 0
        fi
        # A run that lasted a while was healthy: start the backoff over.
        if (( SECONDS - started > 300 )); then delay=1; fi
        say "swarm-worker exited with status $status; restarting in ${delay}s"
        # Backgrounded so a SIGTERM during the wait is handled at once, not after the sleep.
        sleep "$delay" &
        wait $!
        delay=$(( delay * 2 > backoff_max ? backoff_max : delay * 2 ))
    done
}

child=
# SIGTERM to the supervisor (docker stop via vast's init, or by hand) stops the worker and
# does not restart it: the worker finishes its current job within SHUTDOWN_GRACE first.
stop() {
    say "stopping"
    if [[ -n "$child" ]]; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    rm -f "$pid_file"
    exit 0
}

# Detach: setsid gives the supervisor its own session, so it outlives the shell that vast
# runs this script from.
if [[ "${1:-}" != "--supervise" ]]; then
    setsid bash "${BASH_SOURCE[0]}" --supervise "$@" < /dev/null > /dev/null 2>&1 &
    say "swarm-worker supervisor started (pid $!); log: $log_file"
    exit 0
fi
shift

exec > >(log_sink) 2>&1
# The lock closes the gap between the pidfile check above and this write: of two supervisors
# started at the same moment, one gets it and the other leaves.
exec 9> "$pid_file.lock"
if ! flock -n 9; then
    say "another swarm-worker supervisor holds $pid_file.lock; leaving"
    exit 0
fi
echo "$$" > "$pid_file"
trap stop TERM INT
trap 'rm -f "$pid_file"' EXIT
supervise "$@"
