#!/usr/bin/env bash
# Chooses the default zstd:chunked level: for each tar given, the size and CPU
# time (user + system, /usr/bin/time) of `estargz-ref lossless -zstd` at its
# default level, and of `estargz convert --compression zstd:chunked` at levels
# 1..MAX (default 6). One run each; the inputs are read once untimed first.
# Usage: benches/zstd-level.sh TAR... (from the repository root, after
# `cargo build --release -p estargz-cli`).
set -euo pipefail
EST=${EST:-target/release/estargz}
REF=${ESTARGZ_REF:-estargz-ref}
MAX=${MAX:-6}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cpu() { awk '{print $1 + $2}' "$1"; }
printf '| tar | tar bytes | writer | level | blob bytes | vs ref | CPU s |\n|---|---|---|---|---|---|---|\n'
for tar in "$@"; do
  name=$(basename "$tar")
  size=$(stat -c %s "$tar")
  cat "$tar" > /dev/null
  /usr/bin/time -f '%U %S' -o "$OUT/t" "$REF" lossless -zstd "$tar" "$OUT/ref" > /dev/null
  ref=$(stat -c %s "$OUT/ref")
  printf '| %s | %s | estargz-ref lossless -zstd | 3 | %s | 1.0000 | %.2f |\n' "$name" "$size" "$ref" "$(cpu "$OUT/t")"
  for level in $(seq 1 "$MAX"); do
    /usr/bin/time -f '%U %S' -o "$OUT/t" "$EST" convert -q --compression zstd:chunked \
      --level "$level" "$tar" -o "$OUT/ours"
    ours=$(stat -c %s "$OUT/ours")
    printf '| %s | %s | estargz convert | %s | %s | %.4f | %.2f |\n' "$name" "$size" "$level" \
      "$ours" "$(echo "$ours / $ref" | bc -l)" "$(cpu "$OUT/t")"
  done
done
