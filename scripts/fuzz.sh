#!/usr/bin/env bash
# Coverage-guided fuzzing of estargz-core with cargo fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGETs default to all of them:
# footer toc_index open_and_read verify convert unpack prioritize (fuzz/fuzz_targets/).
#
# Runs on the stable toolchain: cargo fuzz passes -Z flags (sanitizer,
# coverage instrumentation), which stable accepts with RUSTC_BOOTSTRAP=1.
# Installs cargo-fuzz from crates.io if it is missing. Builds with debug
# assertions (integer overflow panics) and AddressSanitizer: estargz-core
# forbids unsafe code, but verify and unpack decode through gzip-member's FFI
# into libdeflate (C), and sha256-lanes has one unsafe call, so a memory error
# there must be caught where it happens, not when it later corrupts something.
# FUZZ_SANITIZER=none builds without it (about five times the executions per
# second, for quick runs over safe code only). Leak
# detection is off: a leak is no crash, and LeakSanitizer's scan after every
# input that leaves a thread-local allocation behind cut the rate fourfold.
#
# Seed corpora are made at run time from testdata/ (tars/valid, tars/invalid,
# tars/sparse, blobs/**/*.esgz, plus the TOC JSON and footer bytes of those
# blobs) under target/fuzz/seeds/; what libFuzzer finds goes to
# target/fuzz/corpus/TARGET (kept between runs, never committed), crashes to
# target/fuzz/artifacts/TARGET/. The unpack target runs as user nobody when
# this script runs as root, with its own private TMPDIR, so that a bug that
# writes outside the unpack directory cannot touch the machine's files.
#
# Prints the executions per target and exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${1:-60}
shift || true
ALL_TARGETS=(footer toc_index open_and_read verify convert unpack prioritize)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
SANITIZER=${FUZZ_SANITIZER:-address}

export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ "$SANITIZER" = address ]; then
  # cargo fuzz instruments only Rust code; the cc crate passes CFLAGS on to
  # libdeflate's C, so its reads and writes are checked too.
  export CFLAGS="${CFLAGS:-} -fsanitize=address"
fi
echo "== building fuzz targets (sanitizer: $SANITIZER, debug assertions on)"
TARGET_DIR="$ROOT/fuzz/target/san-$SANITIZER"
(cd fuzz && cargo fuzz build --debug-assertions --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR")
BIN_DIR="$TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"

WORK="$ROOT/target/fuzz"
SEEDS="$WORK/seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS"

echo "== making seed corpora from testdata/"
python3 - "$ROOT/testdata" "$SEEDS" <<'PY'
import glob, io, os, random, sys, tarfile, zlib

testdata, seeds = sys.argv[1], sys.argv[2]
for t in ("footer", "toc_index", "open_and_read", "verify", "convert", "unpack", "prioritize"):
    os.makedirs(os.path.join(seeds, t), exist_ok=True)

def put(target, name, data):
    with open(os.path.join(seeds, target, name), "wb") as f:
        f.write(data)

def toc_json(blob):
    """The TOC JSON of an eStargz or legacy stargz blob, or None."""
    tail = blob[-51:]
    i = tail.find(b"STARGZ")
    if i < 16:
        return None
    try:
        off = int(tail[i - 16:i], 16)
    except ValueError:
        return None
    if off >= len(blob):
        return None
    try:
        raw = zlib.decompressobj(31).decompress(blob[off:])
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            for m in t:
                if m.name == "stargz.index.json":
                    return t.extractfile(m).read()
    except Exception:
        return None
    return None

def flat(path):
    return os.path.relpath(path, testdata).replace(os.sep, "-")

tars = sorted(glob.glob(os.path.join(testdata, "tars", "*", "*")))
tars = [p for p in tars if os.path.isfile(p)]
blobs = sorted(glob.glob(os.path.join(testdata, "blobs", "**", "*.esgz"), recursive=True))

rng = random.Random(0)
for p in tars:
    data = open(p, "rb").read()
    for t in ("convert", "open_and_read", "verify", "unpack"):
        put(t, flat(p), data)
    # prioritize: a mode byte, then a plain tar (see fuzz_targets/prioritize.rs).
    if not data.startswith(b"\x1f\x8b"):
        for mode in (0, 1, 0x83):
            put("prioritize", flat(p) + f".m{mode}", bytes([mode]) + data)
    # A tar-mode input with TOC edits (see fuzz/src/lib.rs): ops, then their count.
    if len(data) <= 64 << 10 and not data.startswith(b"\x1f\x8b"):
        ops = bytes(rng.randrange(256) for _ in range(30)) + bytes([3])
        for t in ("open_and_read", "verify", "unpack"):
            put(t, flat(p) + ".ops", data + ops)
for p in blobs:
    data = open(p, "rb").read()
    for t in ("open_and_read", "verify", "unpack"):
        put(t, flat(p), data)
    put("footer", flat(p) + ".tail", data[-64:])
    j = toc_json(data)
    if j is not None:
        put("toc_index", flat(p) + ".json", j)
put("toc_index", "empty.json", b'{"version": 1, "entries": null}')
for t in sorted(os.listdir(seeds)):
    print(f"   {t}: {len(os.listdir(os.path.join(seeds, t)))} seeds")
PY

# Run the unpack target unprivileged when we are root (see above).
AS_NOBODY=()
if [ "$(id -u)" = 0 ] && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
  AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi

declare -A EXECS RESULT
FAILED=0
for t in "${TARGETS[@]}"; do
  corpus="$WORK/corpus/$t"
  artifacts="$WORK/artifacts/$t"
  tmp="$WORK/tmp/$t"
  log="$WORK/logs/$t.log"
  rm -rf "$tmp"
  mkdir -p "$corpus" "$artifacts" "$tmp" "$(dirname "$log")"
  extra=()
  case $t in
    toc_index) extra=(-dict="$ROOT/fuzz/toc.dict") ;;
    # convert: a tar's cost grows with its chunks (64-byte chunks), so
    # inputs are kept smaller than the largest seeds.
    convert | prioritize) extra=(-dict="$ROOT/fuzz/tar.dict" -max_len=65536) ;;
    open_and_read | verify | unpack) extra=(-dict="$ROOT/fuzz/tar.dict") ;;
  esac
  wrap=()
  if [ "$t" = unpack ] && [ ${#AS_NOBODY[@]} -gt 0 ]; then
    chown -R 65534:65534 "$corpus" "$artifacts" "$tmp"
    chmod o+rx "$WORK" "$WORK/corpus" "$WORK/artifacts" "$WORK/tmp" "$SEEDS" "$SEEDS/$t"
    wrap=("${AS_NOBODY[@]}")
  fi
  echo "== fuzzing $t for ${SECS}s (log: $log)"
  set +e
  TMPDIR="$tmp" "${wrap[@]}" "$BIN_DIR/$t" "$corpus" "$SEEDS/$t" \
    -max_total_time="$SECS" -timeout=30 -rss_limit_mb=4096 -detect_leaks=0 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1
  rc=$?
  set -e
  if [ ${#wrap[@]} -gt 0 ]; then chown -R "$(id -u):$(id -g)" "$corpus" "$artifacts" "$tmp"; fi
  EXECS[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    RESULT[$t]=ok
  else
    FAILED=1
    RESULT[$t]="CRASH (exit $rc): $(grep -o 'Test unit written to .*' "$log" | tail -1)"
    grep -m1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" || true
  fi
done

echo
echo "== executions per target (${SECS}s each)"
for t in "${TARGETS[@]}"; do
  printf '%-14s %12s execs  %s\n' "$t" "${EXECS[$t]:-?}" "${RESULT[$t]}"
done
exit $FAILED
