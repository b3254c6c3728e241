#!/usr/bin/env bash
# Counts, under valgrind's callgrind, the user-space instructions of
# `estargz convert TAR` and of the bare codec on the same members
# (`bare-codec TAR`: the instructions inside `gzip_member`, which is all its
# compression phase runs), and prints their ratio: the "convert CPU <= 1.2x
# the bare codec's" target of issue #4 measured in a unit this machine's
# drifting clock cannot move. Callgrind runs the threads one at a time and
# counts what they execute, so the count depends neither on the load nor on
# the machine's speed; two runs of the same command differ by a fraction of a
# percent (the order the threads run in changes waiting and allocation a
# little).
#
# What it does not see: kernel work (page faults, read and write system
# calls), and that an instruction of SHA-256 or memcpy may take more or
# fewer cycles than one of libdeflate's. The "system CPU s" columns are the
# kernel time of one native run of each (for bare-codec, of its compression
# phase, as it reports it), for scale.
#
# Usage: benches/instructions.sh TAR...   (prints a Markdown table)
# Environment: LEVEL=N (default: the converter's default level).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
[ "$#" -gt 0 ] || { echo "usage: benches/instructions.sh TAR..." >&2; exit 2; }
command -v valgrind >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -q --no-install-recommends valgrind >/dev/null; }
[ -x /usr/bin/time ] || { apt-get update -qq; apt-get install -y -q --no-install-recommends time >/dev/null; }
cargo build --release -p estargz-cli -p estargz-benches >&2
work=$(mktemp -d "$PWD/target/instructions.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp target/release/estargz target/release/bare-codec "$work/"
level_args=()
[ -z "${LEVEL:-}" ] || level_args=(--level "$LEVEL")

# ir FILE: the instructions a callgrind profile counted.
ir() {
  callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { n = $1; gsub(",", "", n) } END { printf "%.0f\n", n + 0 }'
}
# sys_seconds CMD...: kernel CPU seconds of one native run of CMD.
sys_seconds() {
  /usr/bin/time -f '%S' -o "$work/time" "$@" >/dev/null
  cat "$work/time"
}

echo "| layer | convert instructions | bare codec instructions | ratio | convert system CPU s | bare codec system CPU s (compression phase) |"
echo "|---|---:|---:|---:|---:|---:|"
for tar in "$@"; do
  tar=$(cd "$caller" && realpath "$tar")
  name=$(basename "$tar" .tar)
  echo "== $name" >&2
  # The two profiles are taken side by side: counts do not depend on load.
  valgrind --tool=callgrind --callgrind-out-file="$work/convert.cg" \
    "$work/estargz" convert "$tar" -o "$work/out.esgz" -q "${level_args[@]}" 2>"$work/convert.log" &
  convert_pid=$!
  # Counting only inside gzip_member (and what it calls) leaves out
  # bare-codec's own reading and planning of the tar.
  valgrind --tool=callgrind --toggle-collect='*gzip_member*' --callgrind-out-file="$work/bare.cg" \
    "$work/bare-codec" "$tar" "${level_args[@]}" >/dev/null 2>"$work/bare.log" \
    || { cat "$work/bare.log" >&2; exit 1; }
  wait "$convert_pid" || { cat "$work/convert.log" >&2; exit 1; }
  conv=$(ir "$work/convert.cg")
  codec=$(ir "$work/bare.cg")
  [ "$codec" -gt 0 ] || { echo "no gzip_member in bare-codec's profile" >&2; exit 1; }
  conv_sys=$(sys_seconds "$work/estargz" convert "$tar" -o "$work/out.esgz" -q "${level_args[@]}")
  # bare-codec reports its compression phase's own system time.
  bare_sys=$("$work/bare-codec" "$tar" "${level_args[@]}" | sed -E 's/.*"sys_seconds":([0-9.]+).*/\1/')
  awk -v n="$name" -v c="$conv" -v b="$codec" -v cs="$conv_sys" -v bs="$bare_sys" 'BEGIN {
    printf "| %s | %.3f G | %.3f G | %.3f | %s | %s |\n", n, c / 1e9, b / 1e9, c / b, cs, bs }'
  rm -f "$work"/*.cg "$work/out.esgz"
done
