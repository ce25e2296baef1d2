#!/usr/bin/env bash
# Builds the swarm-worker binary the image ships: release, static Swift runtime, laid out for a small resident set.
#
#   builder/build-worker.sh [--scratch-path DIR]     (default .build-image); the last line on stdout is the binary
#
# Why the flags (measured idle RSS of the static binary: 32 MiB with plain `--static-swift-stdlib`; README, Benchmarks):
#   -function-sections (Swift and C)  every function in a section of its own, so that the linker can move it;
#   lld --symbol-ordering-file        the functions a starting and idling worker runs (builder/swarm-worker.order,
#                                     made by builder/make-order-file.sh) placed together at the start of .text:
#                                     the kernel maps a binary 64 KiB or more at a time, and the 1.6 MiB of code an
#                                     idle worker runs, scattered over 28 MiB of text, kept 16 MiB of it resident;
#   -z pack-relative-relocs           RELR relocations: 3 MiB less relocation table to read at every start
#                                     (needs glibc 2.36 or later at run time; the image has 2.39);
#   --no-export-dynamic               swiftc's static-stdlib link exports every public symbol (40,000 of them), and
#                                     the runtime's start-up dladdr scans them all.
# An order file that no longer matches the code costs memory, never correctness: lld places unknown names nowhere.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=.build-image
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scratch-path) scratch="$2"; shift 2 ;;
        *) echo "usage: builder/build-worker.sh [--scratch-path DIR]" >&2; exit 2 ;;
    esac
done

flags=(
    -c release --static-swift-stdlib --product swarm-worker --scratch-path "${scratch}"
    -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections
    -Xswiftc -use-ld=lld
    -Xlinker "--symbol-ordering-file=${PWD}/builder/swarm-worker.order" -Xlinker --no-warn-symbol-ordering
    -Xlinker -z -Xlinker pack-relative-relocs
    -Xlinker --no-export-dynamic
)
binary="$(swift build "${flags[@]}" --show-bin-path)/swarm-worker"
# The build system tracks the flags, not the order file's contents: relink when the file changed.
if [[ -e "${binary}" && builder/swarm-worker.order -nt "${binary}" ]]; then rm -f "${binary}"; fi
swift build "${flags[@]}" >&2
echo "${binary}"
