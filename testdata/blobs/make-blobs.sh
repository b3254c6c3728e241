#!/usr/bin/env bash
# Regenerates the eStargz test blobs under testdata/blobs/:
#
#   ref/      blobs written by the reference driver (estargz-ref) + sidecars
#   bad/      corrupted/malicious blobs derived from ref/lossless-python-ustar-c1024.esgz
#   hostile/  unpack-escape blobs (Python tarfile tars converted by estargz-ref)
#   control/  valid blobs rewritten by make_blobs.py (controls for bad/)
#   README.md table of every blob and the reference's verdict on it
#
# Usage: testdata/blobs/make-blobs.sh
#
# Needs python3 (stdlib only) and the reference driver estargz-ref
# (../shared/tools/estargz-ref/build.sh), taken from $ESTARGZ_REF or PATH.
# Output is deterministic for a given driver, zlib and CPU count (the
# reference's `build` partitions by GOMAXPROCS, spec 4.6; lossless does not).
# `estargz-ref verify` is run on every blob; a crash of the reference there is
# recorded, never fatal.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TD=$(dirname "$HERE")            # testdata/
PY=${PYTHON:-python3}
GEN="$HERE/make_blobs.py"
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

if [[ -n ${ESTARGZ_REF:-} ]]; then
  REF=$ESTARGZ_REF
  [[ -x $REF ]] || { echo "make-blobs.sh: \$ESTARGZ_REF=$REF is not an executable" >&2; exit 1; }
elif REF=$(command -v estargz-ref); then
  :
else
  echo "make-blobs.sh: estargz-ref not found: put it on PATH or set ESTARGZ_REF" >&2
  echo "  (build it with ../shared/tools/estargz-ref/build.sh [OUT_DIR])" >&2
  exit 1
fi
export ESTARGZ_REF=$REF
command -v "$PY" >/dev/null || { echo "make-blobs.sh: $PY not found" >&2; exit 1; }
command -v timeout >/dev/null || { echo "make-blobs.sh: timeout (coreutils) not found" >&2; exit 1; }

log() { printf '==> %s\n' "$*" >&2; }

WORK=$(mktemp -d "$HERE/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/ref" "$WORK/bad" "$WORK/hostile" "$WORK/control"

# --------------------------------------------------------------------------
# ref/: NAME MODE CHUNK SOURCE [PRIORITIZED]

ref() {
  local name=$1 mode=$2 chunk=$3 src=$4 prio=${5:-} line
  local args=("$mode" -chunk "$chunk")
  [[ -n $prio ]] && args+=(-prioritized "$prio")
  line=$("$REF" "${args[@]}" "$TD/$src" "$WORK/ref/$name.esgz")
  "$PY" "$GEN" ref-sidecar "$WORK/ref/$name.json" "$line" "$src" "$mode" "$chunk" "$prio"
  log "ref/$name.esgz ($(stat -c %s "$WORK/ref/$name.esgz") B)"
}

V=tars/valid
# lossless, default chunk (4 MiB)
ref lossless-sample-layer          lossless 0    sample-layer.tar
ref lossless-gnu-gnu               lossless 0    $V/gnu-gnu.tar
ref lossless-gnu-posix-xattrs      lossless 0    $V/gnu-posix-xattrs.tar
ref lossless-python-ustar          lossless 0    $V/python-ustar.tar
ref lossless-python-pax-mtime-fraction lossless 0 $V/python-pax-mtime-fraction.tar
ref lossless-python-gnu-nonutf8-name   lossless 0 $V/python-gnu-nonutf8-name.tar
ref lossless-eoa-only              lossless 0    $V/eoa-only.tar       # known gap: verify says "no root"
# lossless, tiny chunks (many chunk entries)
ref lossless-sample-layer-c1024    lossless 1024 sample-layer.tar
ref lossless-python-ustar-c1024    lossless 1024 $V/python-ustar.tar   # base of bad/ and control/
ref lossless-python-ustar-c4       lossless 4    $V/python-ustar.tar
ref lossless-gnu-posix-xattrs-c4   lossless 4    $V/gnu-posix-xattrs.tar
# build (lossy, landmark, parallel)
ref build-sample-layer             build    0    sample-layer.tar
ref build-gnu-gnu                  build    0    $V/gnu-gnu.tar
ref build-python-ustar             build    0    $V/python-ustar.tar
ref build-python-ustar-c64         build    64   $V/python-ustar.tar
ref build-sample-layer-prio        build    0    sample-layer.tar \
    etc/passwd,usr/bin/hello,usr/lib/python3.11/json/decoder.py
# (git-archive.tar, python-pax-global.tar: PAX global header 'g'; gnu-incremental-*:
#  dumpdir 'D' -- the reference rejects them, so they are not here.)

for b in "$WORK"/ref/*.esgz; do
  case $(basename "$b") in lossless-eoa-only.esgz) continue ;; esac
  "$PY" "$GEN" selftest "$b" >/dev/null
done
log "make_blobs.py selftest passed on every ref/ blob but lossless-eoa-only"

# --------------------------------------------------------------------------
# bad/, hostile/, control/

BASE="$WORK/ref/lossless-python-ustar-c1024"
"$PY" "$GEN" bad "$WORK/bad" "$BASE.esgz" "$BASE.json" "$TD/$V/python-ustar.tar"
"$PY" "$GEN" hostile "$WORK/hostile"
"$PY" "$GEN" control "$WORK/control" "$BASE.esgz" "$BASE.json"

# --------------------------------------------------------------------------
# sanity check: estargz-ref verify on everything; crashes are recorded

RESULTS="$WORK/verify.tsv"
: >"$RESULTS"
verify() {  # REL RUN [ARGS...]: one verify run, one TSV row
  local rel=$1 run=$2 out rc first
  shift 2
  set +e
  out=$(timeout 300 "$REF" verify "$@" "$WORK/$rel" 2>&1)
  rc=$?
  set -e
  first=$(printf '%s\n' "$out" | head -n 1)
  if [[ $first == *"occurred:" ]]; then   # multi-error: append the errors
    first="$first $(printf '%s\n' "$out" | sed -n '2,5p' | sed 's/^[[:space:]]*//' | paste -sd' ' -)"
  fi
  first=${first//$'\t'/ }
  printf '%s\t%s\t%s\t%s\t%s\n' "$rel" "$run" "$rc" "$*" "$first" >>"$RESULTS"
  printf '    verify %-42s %-7s exit %-3s %s\n' "$rel" "$run" "$rc" "${first:0:100}" >&2
}
for b in "$WORK"/{ref,bad,hostile,control}/*.esgz; do
  rel=${b#"$WORK"/}
  want=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("toc_digest",""))' "${b%.esgz}.json")
  if [[ -n $want ]]; then
    verify "$rel" sidecar -toc-digest "$want"
    if [[ $rel == bad/* ]]; then verify "$rel" own; fi
  else
    verify "$rel" sidecar
  fi
done
"$PY" "$GEN" record "$WORK" "$RESULTS"

# ref/ blobs must verify (known gap: lossless-eoa-only, "no root"); control/ too
fail=0
while IFS=$'\t' read -r rel _ rc _ first; do
  case $rel in
    ref/lossless-eoa-only.esgz) [[ $first == *"no root"* ]] || { echo "unexpected: $rel: $first" >&2; fail=1; } ;;
    ref/*|control/*) [[ $rc == 0 ]] || { echo "reference fails on $rel: $first" >&2; fail=1; } ;;
  esac
done <"$RESULTS"
[[ $fail == 0 ]] || { echo "make-blobs.sh: sanity check failed" >&2; exit 1; }

"$PY" "$GEN" readme "$WORK"

# size budget: each blob < 200 KB, total < 3 MB
total=0
for b in "$WORK"/*/*.esgz; do
  s=$(stat -c %s "$b")
  (( s < 200000 )) || { echo "make-blobs.sh: $b is $s bytes (>= 200 KB)" >&2; exit 1; }
  total=$((total + s))
done
(( total < 3000000 )) || { echo "make-blobs.sh: total $total bytes (>= 3 MB)" >&2; exit 1; }
log "total blob size: $total bytes"

# --------------------------------------------------------------------------
# move into place

rm -rf "$HERE/ref" "$HERE/bad" "$HERE/hostile" "$HERE/control" "$HERE/README.md"
mv "$WORK/ref" "$WORK/bad" "$WORK/hostile" "$WORK/control" "$WORK/README.md" "$HERE/"
log "done: $HERE"
