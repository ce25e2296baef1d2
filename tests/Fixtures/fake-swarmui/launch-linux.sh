#!/usr/bin/env bash
# Stand-in for SwarmUI's launch-linux.sh: the worker runs `launch-linux.sh --launch_mode none --host H --port P`
# from $VOLUME_PATH/SwarmUI; this execs the emulator with those flags plus $SWARMUI_EMULATOR_ARGS
# (for example "--loading-seconds 3 --step-ms 50"), so signals reach the emulator directly.
set -euo pipefail

if [[ -z "${SWARMUI_EMULATOR_BIN:-}" ]]; then
    echo "launch-linux.sh (fake): set SWARMUI_EMULATOR_BIN to the swarmui-emulator binary" >&2
    exit 1
fi

# Word splitting of SWARMUI_EMULATOR_ARGS is intended: it carries several flags.
# shellcheck disable=SC2086
exec "$SWARMUI_EMULATOR_BIN" "$@" ${SWARMUI_EMULATOR_ARGS:-}
