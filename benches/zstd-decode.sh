#!/usr/bin/env bash
# zstd:chunked against our gzip eStargz on the same tar, and both against the
# bare codecs: CPU seconds (user + system, /usr/bin/time) of `estargz convert`,
# `estargz unpack -o -` and `estargz verify` for each compression, of
# `zstd -3 -T1` and `zstd -dc` on the whole tar, and of `gzip -dc` on our gzip
# blob. One run each, the tar read once untimed first.
# Usage: benches/zstd-decode.sh TAR (from the repository root, after
# `cargo build --release -p estargz-cli`).
set -euo pipefail
EST=${EST:-target/release/estargz}
tar=$1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cat "$tar" > /dev/null
cpu() { awk '{printf "%.2f", $1 + $2}' "$OUT/t"; }
timed() { /usr/bin/time -f '%U %S' -o "$OUT/t" "$@"; cpu; }
printf '| step | gzip eStargz | zstd:chunked | bare codec (zstd) |\n|---|---|---|---|\n'
gz_convert=$(timed "$EST" convert -q "$tar" -o "$OUT/b.gz")
zst_convert=$(timed "$EST" convert -q --compression zstd:chunked "$tar" -o "$OUT/b.zst")
bare_compress=$(timed zstd -q -3 -T1 -f "$tar" -o "$OUT/bare.zst")
printf '| convert (compress) | %s | %s | %s (`zstd -3 -T1`) |\n' "$gz_convert" "$zst_convert" "$bare_compress"
gz_unpack=$(timed sh -c "\"$EST\" unpack \"$OUT/b.gz\" -o - > /dev/null")
zst_unpack=$(timed sh -c "\"$EST\" unpack \"$OUT/b.zst\" -o - > /dev/null")
bare_decode=$(timed sh -c "zstd -dc \"$OUT/b.zst\" > /dev/null")
printf '| unpack -o - (decode) | %s | %s | %s (`zstd -dc`) |\n' "$gz_unpack" "$zst_unpack" "$bare_decode"
gz_verify=$(timed "$EST" verify -q "$OUT/b.gz")
zst_verify=$(timed "$EST" verify -q "$OUT/b.zst")
gzip_decode=$(timed sh -c "gzip -dc \"$OUT/b.gz\" > /dev/null")
printf '| verify | %s | %s | |\n' "$gz_verify" "$zst_verify"
printf '| `gzip -dc` of the gzip blob | %s | | |\n' "$gzip_decode"
