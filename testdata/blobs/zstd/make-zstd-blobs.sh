#!/usr/bin/env bash
# Regenerates the zstd:chunked test blobs under testdata/blobs/zstd/
# (docs: ../../../../shared/docs/zstd-chunked-format.md; the tests live in
# estargz-core/src/zstd_chunked/fixtures.rs):
#
#   small.tar           the spec's §3.6 small.tar (kept: 10 KB)
#   s-*.zst             stargz dialect, written by the reference driver estargz-ref
#   c40-*.zst           containers/storage dialect with the 40-byte footer, written
#                       by skopeo (Debian 12: skopeo 1.9.3, containers/storage 1.43)
#   NAME.json           sidecar: source tar and its sha256, the command, what the
#                       tool printed (estargz-ref's JSON line, or skopeo's layer
#                       descriptor with its annotations), estargz-ref verify's verdict
#   NAME.toc.json       what `estargz-ref toc NAME` prints
#
# Usage: testdata/blobs/zstd/make-zstd-blobs.sh
#
# Needs python3 (stdlib only), estargz-ref ($ESTARGZ_REF or PATH) and skopeo.
# Output is deterministic for a given estargz-ref, skopeo and CPU count
# (`build` partitions by GOMAXPROCS; the sidecar records nproc).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}
GEN="$HERE/make_zstd_blobs.py"
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

REF=${ESTARGZ_REF:-$(command -v estargz-ref || true)}
[[ -x $REF ]] || { echo "make-zstd-blobs.sh: estargz-ref not found (PATH or \$ESTARGZ_REF)" >&2; exit 1; }
command -v skopeo >/dev/null || { echo "make-zstd-blobs.sh: skopeo not found" >&2; exit 1; }

log() { printf '==> %s\n' "$*" >&2; }

W=$(mktemp -d "$HERE/.work.XXXXXX")
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/out"

"$PY" "$GEN" small-tar "$W/out/small.tar"
"$PY" "$GEN" mixed-tar "$W/mixed.tar"
: >"$W/empty.tar"
sha() { sha256sum "$1" | cut -d' ' -f1; }
src_path() { case $1 in small) echo "$W/out/small.tar" ;; *) echo "$W/$1.tar" ;; esac; }

# reference verdict and TOC for one blob
finish() {  # NAME
  local name=$1 rc out
  set +e
  out=$("$REF" verify "$W/out/$name.zst" 2>&1)
  rc=$?
  set -e
  "$REF" toc "$W/out/$name.zst" >"$W/out/$name.toc.json"
  printf '%s\n' "$rc" >"$W/rc"
  printf '%s\n' "$out" | head -n 1 >"$W/verdict"
}

# ref NAME SOURCE ARGS...: estargz-ref -zstd
ref() {
  local name=$1 src=$2 line
  shift 2
  line=$("$REF" "$@" -zstd "$(src_path "$src")" "$W/out/$name.zst")
  finish "$name"
  "$PY" "$GEN" sidecar "$W/out/$name.json" "source=$src.tar" "source_sha256=$(sha "$(src_path "$src")")" \
    "command=estargz-ref $* -zstd $src.tar $name.zst" "writer=estargz-ref (stargz-snapshotter v0.12.0)" \
    "dialect=stargz" "footer=40" "ref=$line" "nproc=$(nproc)" \
    "reference_verify_exit=$(cat "$W/rc")" "reference_verify=$(cat "$W/verdict")"
  log "$name.zst ($(stat -c %s "$W/out/$name.zst") B)"
}

# c40 NAME SOURCE: skopeo copy --dest-compress-format zstd:chunked
c40() {
  local name=$1 src=$2
  "$PY" "$GEN" oci-layout "$(src_path "$src")" "$W/oci-$src"
  skopeo copy -q --dest-compress-format zstd:chunked "oci:$W/oci-$src:latest" "oci:$W/oci-$name:latest"
  "$PY" "$GEN" oci-layer "$W/oci-$name" "$W/out/$name.zst" "$W/layer.json"
  finish "$name"
  "$PY" "$GEN" sidecar "$W/out/$name.json" "source=$src.tar" "source_sha256=$(sha "$(src_path "$src")")" \
    "command=skopeo copy --dest-compress-format zstd:chunked oci:LAYOUT-OF-$src.tar:latest oci:OUT:latest" \
    "writer=$(skopeo --version)" "dialect=containers" "footer=40" "layer=$(cat "$W/layer.json")" \
    "reference_verify_exit=$(cat "$W/rc")" "reference_verify=$(cat "$W/verdict")"
  log "$name.zst ($(stat -c %s "$W/out/$name.zst") B)"
}

ref s-lossless-small       small lossless
ref s-build-small          small build
ref s-lossless-empty       empty lossless
ref s-lossless-mixed-c4096 mixed lossless -chunk 4096
c40 c40-small small
c40 c40-mixed mixed

for f in "$HERE"/*.zst "$HERE"/*.json "$HERE"/small.tar; do
  [[ -e $f ]] && rm -f "$f"
done
mv "$W"/out/* "$HERE/"
log "done: $HERE"
