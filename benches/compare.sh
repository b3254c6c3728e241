#!/usr/bin/env bash
# Side-by-side comparison of this project, the reference driver (estargz-ref)
# and pigz -9 on a corpus built from package registries (make-corpus.sh), and
# the evaluation of the performance targets. Prints Markdown and writes the
# same text to benches/RESULTS.md (or RESULTS).
#
# Usage: benches/compare.sh            (needs root for apt; a few minutes)
# Environment: RUNS=N (default 3: each measurement is run N times and the run
# with the least CPU time is kept; up to EXTRA_RUNS, default 3, more while
# other processes were using the CPUs during every run), QUIET_BUSY=PCT and QUIET_WAIT=SECONDS
# (before each input, wait up to QUIET_WAIT s, default 600, until the
# machine's CPUs are less than QUIET_BUSY %, default 15, busy), BIG_MIB=N
# (size of the stdin test, default 1024; 0 skips it), CORPORA="NAME ..." (a
# subset of the corpus, for trying the script out), CORPUS=DIR (where the
# layers are, default target/bench-corpus, built there by make-corpus.sh only
# when the default is used, so a worktree can read another checkout's
# corpus). A private corpus is any directory of layers or images: plain
# tars, tar+gzip or tar+zstd blobs (whatever their names), OCI layout
# directories, OCI archives and Docker >= 25 `docker save` tars. Each
# distinct layer is imported with import-layers (benches/src/import.rs:
# plain tars symlinked, the rest decompressed into the work directory) and
# named NAME for CORPORA and the report; layers under MIN_MIB MiB
# uncompressed (default 1) are skipped. PROBE=0 (skip level-probe, the
# bound on what levels 10-11 could do for the `--level 9` size within the CPU
# target: about 40 s per 100 MB of tar), PAIR_RUNS=N (pairs behind each
# "median of pairs" ratio, default 5), PERF=0 (skip the codec share sampled
# with perf), RESULTS=FILE (where the report is written, default
# benches/RESULTS.md).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD
export DEBIAN_FRONTEND=noninteractive
RUNS=${RUNS:-3}
PAIR_RUNS=${PAIR_RUNS:-5}
EXTRA_RUNS=${EXTRA_RUNS:-3}
QUIET_BUSY=${QUIET_BUSY:-15}
QUIET_WAIT=${QUIET_WAIT:-600}
BIG_MIB=${BIG_MIB:-1024}
PROBE=${PROBE:-1}
PERF=${PERF:-1}
MIN_MIB=${MIN_MIB:-1}
# CORPUS and RESULTS are relative to the caller's directory.
default_corpus=$root/target/bench-corpus
CORPUS=$(cd "$caller" && realpath -m "${CORPUS:-$default_corpus}")
RESULTS=$(cd "$caller" && realpath -m "${RESULTS:-$root/benches/RESULTS.md}")
[ -e "$CORPUS" ] || [ "$CORPUS" = "$default_corpus" ] || { printf 'no %s\n' "$CORPUS" >&2; exit 1; }

log() { printf '%s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -q --no-install-recommends "$2" >/dev/null; }; }

# ---------------------------------------------------------------- setup
log "== corpus"
[ "$CORPUS" != "$default_corpus" ] || benches/make-corpus.sh >&2
log "== build"
cargo build --release -p estargz-cli -p estargz-benches >&2
work=$(mktemp -d "$root/target/bench-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Private copies: the shared target/ may be rebuilt while this runs.
mkdir -p "$work/bin"
cp target/release/estargz target/release/bare-codec target/release/level-probe target/release/import-layers "$work/bin/"
ours=$work/bin/estargz
bare=$work/bin/bare-codec
probe=$work/bin/level-probe

# The layers: NAME.tar in $layers.
if [ "$CORPUS" = "$default_corpus" ]; then
  layers=$CORPUS
  CORPORA=${CORPORA:-debian-minbase python-site-packages node-modules}
else
  log "== importing the layers of $CORPUS"
  layers=$work/layers
  "$work/bin/import-layers" --link --min-size $((MIN_MIB << 20)) "$layers" "$CORPUS" >"$work/import.json"
  CORPORA=${CORPORA:-$(find "$layers" -maxdepth 1 -name '*.tar' -printf '%f\n' | sed 's/\.tar$//' | sort | tr '\n' ' ')}
  [ -n "$CORPORA" ] || { log "no layer of at least $MIN_MIB MiB in $CORPUS"; exit 1; }
fi
read -r -a corpora <<<"$CORPORA"
for c in "${corpora[@]}"; do [ -f "$layers/$c.tar" ] || { log "no layer $c (no $layers/$c.tar)"; exit 1; }; done
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit + uncommitted changes"; fi

# The reference driver, found or built as the test suite finds it.
# shellcheck source=scripts/ref-driver.sh
. scripts/ref-driver.sh
ref=$ESTARGZ_REF
need pigz pigz
[ -x /usr/bin/time ] || { apt-get update -qq; apt-get install -y -q --no-install-recommends time >/dev/null; }
need python3 python3

report=$work/report.md
: >"$report"
say() { printf '%s\n' "$*" | tee -a "$report"; }

# ---------------------------------------------------------------- CPU load
# Busy and total jiffies of all CPUs (steal excluded from busy).
cpu_jiffies() { awk '/^cpu /{b=$2+$3+$4+$7+$8; print b, b+$5+$6+$9; exit}' /proc/stat; }
# Percentage of all CPUs busy over the next 2 seconds.
cpu_busy_pct() {
  local b0 t0 b1 t1
  read -r b0 t0 < <(cpu_jiffies); sleep 2; read -r b1 t1 < <(cpu_jiffies)
  awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN{printf "%.0f", (t > 0 ? 100*b/t : 0)}'
}
# Waits (at most QUIET_WAIT s) until other processes leave the CPUs free.
wait_quiet() { # [MAX_SECONDS]
  local waited=0 busy max=${1:-$QUIET_WAIT}
  busy=$(cpu_busy_pct)
  while [ "$busy" -gt "$QUIET_BUSY" ] && [ "$waited" -lt "$max" ]; do
    log "   CPUs ${busy}% busy (other processes); waiting"
    sleep 10; waited=$((waited + 12))
    busy=$(cpu_busy_pct)
  done
  echo "$busy"
}
clk_tck=$(getconf CLK_TCK)
# warm ARG...: reads every ARG that is a regular file (inputs, blobs, the
# binaries), untimed. This machine's kernel runs DAMON reclaim, which pages
# out file pages nobody touched for about a minute; without this, whichever
# tool ran first after a pause would pay for reading its input back from
# disk, and the bare codec, which loads its members untimed, never would.
warm() { local a; for a in "$@"; do if [ -f "$a" ]; then cat "$a" >/dev/null; fi; done; }

# ---------------------------------------------------------------- measuring
# Results, keyed "INPUT|ROW": cpu, wall, rss (MB), size (bytes), other (CPU s
# used by other processes on the machine during the kept run), clean (1 when
# that was negligible), wmin (least wall time of the runs of the kept kind).
declare -A CPU WALL RSS SIZE OTHER CLEAN WMIN
ncpu=$(nproc)
# measure INPUT ROW STDOUT SIZEFILE CMD...: runs CMD under /usr/bin/time with
# its stdout to STDOUT, RUNS times, and up to EXTRA_RUNS more (after waiting
# for a quieter machine) while every run was contended, i.e. other processes
# used more than 0.2 s + 5% of the run's CPU capacity; keeps the uncontended
# run (else any run) with the least CPU time. SIZEFILE ("-": none) is the
# output whose size is recorded.
measure() {
  local input=$1 row=$2 stdout=$3 sizefile=$4 i=0 e u s m b0 t0 b1 t1 cpu other clean better
  shift 4
  local k="$input|$row" kept_clean="" wmin_clean="" wmin_any=""
  while :; do
    i=$((i + 1))
    [ "$sizefile" = - ] || rm -f "$sizefile"
    warm "$@"
    read -r b0 t0 < <(cpu_jiffies)
    if ! /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >"$stdout" 2>"$work/stderr"; then
      log "FAILED: $*"; cat "$work/stderr" >&2; exit 1
    fi
    read -r b1 t1 < <(cpu_jiffies)
    read -r e u s m <"$work/time"
    cpu=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u + s}')
    other=$(awk -v d="$((b1 - b0))" -v c="$cpu" -v hz="$clk_tck" 'BEGIN{o = d/hz - c; printf "%.1f", (o < 0 ? 0 : o)}')
    clean=$(awk -v o="$other" -v w="$e" -v n="$ncpu" 'BEGIN{print ((o <= 0.2 + 0.05*w*n) ? 1 : 0)}')
    wmin_any=$(awk -v a="$e" -v b="$wmin_any" 'BEGIN{print ((b == "" || a < b) ? a : b)}')
    [ "$clean" = 0 ] || wmin_clean=$(awk -v a="$e" -v b="$wmin_clean" 'BEGIN{print ((b == "" || a < b) ? a : b)}')
    better=0
    if [ -z "$kept_clean" ] || [ "$clean" -gt "$kept_clean" ]; then better=1
    elif [ "$clean" = "$kept_clean" ] && awk -v a="$cpu" -v b="${CPU[$k]}" 'BEGIN{exit !(a < b)}'; then better=1
    fi
    if [ "$better" = 1 ]; then
      kept_clean=$clean
      CPU[$k]=$cpu; WALL[$k]=$e; RSS[$k]=$(awk -v m="$m" 'BEGIN{printf "%.1f", m/1024}'); OTHER[$k]=$other
      if [ "$sizefile" = - ]; then SIZE[$k]=""; else SIZE[$k]=$(stat -c %s "$sizefile"); fi
      [ "$stdout" = /dev/null ] || cp "$stdout" "$work/kept.stdout"
    fi
    if [ "$i" -ge "$RUNS" ] && { [ "$kept_clean" = 1 ] || [ "$i" -ge $((RUNS + EXTRA_RUNS)) ]; }; then break; fi
    if [ "$kept_clean" = 0 ] && [ "$i" -ge "$RUNS" ]; then
      log "   $row: run $i contended (other processes used $other CPU s); waiting for a quieter machine"
      wait_quiet 120 >/dev/null
    fi
  done
  CLEAN[$k]=$kept_clean
  if [ "$kept_clean" = 1 ]; then WMIN[$k]=$wmin_clean; else WMIN[$k]=$wmin_any; fi
  log "   $row: cpu ${CPU[$k]} s, wall ${WALL[$k]} s, rss ${RSS[$k]} MB, other ${OTHER[$k]} s ($i runs, clean $kept_clean)"
}
# bare_codec INPUT ROW [ARGS...]: the compression phase's own numbers
# replace the process's CPU, wall and size (RSS stays the process's: all
# members are held in memory).
declare -A MEMBERS BUSY SAME LEVEL BOUND SPARE
# json_num FILE KEY: the number KEY in the JSON object in FILE.
json_num() { tr -d '\n' <"$1" | sed -E "s/.*\"$2\":[[:space:]]*([0-9.]+).*/\\1/"; }
json_field() { json_num "$work/kept.stdout" "$1"; }
bare_codec() {
  local input=$1 row=$2 k="$1|$2"
  shift 2
  measure "$input" "$row" "$work/bare.json" - "$bare" "$layers/$input.tar" "$@"
  CPU[$k]=$(json_field cpu_seconds); WALL[$k]=$(json_field wall_seconds); SIZE[$k]=$(json_field output_bytes)
  MEMBERS[$input]=$(json_field members)
  log "   $row (compression phase): $(cat "$work/kept.stdout")"
}

# ---------------------------------------------------------------- paired runs
# A ratio of two rows' least CPU (or wall) times compares runs made minutes
# apart, and this machine's speed drifts by 10-20% over minutes. The two
# ratio targets (convert vs the bare codec, two cores vs one) are therefore
# also measured in pairs: A then B, RUNS times, each pair's ratio taken, and
# the median of the pairs whose runs the rest of the machine left alone.
declare -A PAIRED PAIRS
# timed CMD...: "cpu wall other" of one run of CMD (stdout discarded).
timed() {
  local b0 t0 b1 t1 e u s m
  warm "$@"
  read -r b0 t0 < <(cpu_jiffies)
  /usr/bin/time -f '%e %U %S %M' -o "$work/ptime" "$@" >"$work/pout" 2>/dev/null || { log "FAILED: $*"; exit 1; }
  read -r b1 t1 < <(cpu_jiffies)
  read -r e u s m <"$work/ptime"
  awk -v e="$e" -v u="$u" -v s="$s" -v d="$((b1 - b0))" -v hz="$clk_tck" \
    'BEGIN{o = d/hz - u - s; printf "%.2f %.2f %.2f\n", u + s, e, (o < 0 ? 0 : o)}'
}
# timed_bare [taskset -c N] TAR [ARGS...]: the same for bare-codec, with the
# compression phase's own CPU and wall (from its JSON) in place of the process's.
timed_bare() {
  local r cpu wall pin=()
  [ "$1" != taskset ] || { pin=("$1" "$2" "$3"); shift 3; }
  r=$(timed "${pin[@]}" "$bare" "$@")
  cpu=$(json_num "$work/pout" cpu_seconds); wall=$(json_num "$work/pout" wall_seconds)
  echo "$cpu $wall ${r##* }"
}
# The paired commands, on the current input ($tar, work directory $d).
pair_convert() { timed "$ours" convert "$tar" -o "$d/pair.esgz" -q; }
pair_pinned() { timed taskset -c 0 "$ours" convert "$tar" -o "$d/pair.esgz" -q --threads 1; }
pair_bare() { timed_bare "$tar"; }
pair_bare_pinned() { timed_bare taskset -c 0 "$tar" --threads 1; }
# paired KEY FIELD A B: runs the functions A and B in turn PAIR_RUNS times,
# A first in odd pairs and B first in even ones, so neither always runs on
# the heels of the other; PAIRED[KEY] = median of A/B of FIELD (1 = CPU,
# 2 = wall) over the undisturbed pairs (all pairs if none was).
paired() {
  local key=$1 field=$2 a=$3 b=$4 i ra rb r clean=() measured=() all=()
  wait_quiet >/dev/null
  for ((i = 1; i <= PAIR_RUNS; i++)); do
    if ((i % 2)); then ra=$("$a"); rb=$("$b"); else rb=$("$b"); ra=$("$a"); fi
    # Below the clock's 10 ms a side reads 0 and the pair has no ratio.
    r=$(awk -v x="$ra" -v y="$rb" -v f="$field" 'BEGIN{split(x, p, " "); split(y, q, " "); if (p[f] <= 0 || q[f] <= 0) print "–"; else printf "%.3f", p[f]/q[f]}')
    all+=("$r")
    log "   $key pair $i: $ra / $rb -> $r"
    [ "$r" != "–" ] || continue
    measured+=("$r")
    awk -v x="$ra" -v y="$rb" -v n="$ncpu" 'BEGIN{split(x, p, " "); split(y, q, " "); exit !(p[3] <= 0.2 + 0.05*p[2]*n && q[3] <= 0.2 + 0.05*q[2]*n)}' && clean+=("$r")
  done
  [ "${#clean[@]}" -gt 0 ] || clean=("${measured[@]}")
  if [ "${#clean[@]}" -eq 0 ]; then
    PAIRED[$key]="–"
  else
    PAIRED[$key]=$(printf '%s\n' "${clean[@]}" | sort -n | awk '{v[NR]=$1} END{printf "%.3f", (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1])/2}')
  fi
  # Every pair's ratio goes into the row, so the spread shows with the median.
  PAIRS[$key]="${#clean[@]} of $PAIR_RUNS undisturbed pairs: $(printf '%s\n' "${all[@]}" | paste -sd, - | sed 's/,/, /g')"
}

# ---------------------------------------------------------------- codec share
# The paired codec ratio divides two processes' CPU seconds, and both move
# by 10-20% from run to run here. perf samples all threads of one convert run
# instead: the share of its samples in libdeflate's own functions is what the
# codec cost inside that very run, so convert / codec = 100 / share, whatever
# the machine's speed at that moment. The function names are read from the
# libdeflate archive the binary was linked with.
declare -A SHARE
codec_symbols=$work/codec-symbols
if [ "$PERF" != 0 ]; then
  need perf linux-perf
  find target/release/build -path '*/libdeflate-sys-*/out/lib/libdeflate.a' -exec nm --defined-only {} + 2>/dev/null |
    awk '$2 ~ /^[tT]$/ {print $3}' | sort -u >"$codec_symbols"
  [ -s "$codec_symbols" ] || { log "no libdeflate.a under target/release/build: PERF=0"; PERF=0; }
fi
# codec_share KEY CMD...: SHARE[KEY] = "RATIO SHARE% SAMPLES" of one run of CMD
# under perf (cpu-clock, all threads), or "–" when perf cannot sample.
codec_share() {
  local key=$1
  shift
  SHARE[$key]="–"
  [ "$PERF" != 0 ] || return 0
  warm "$@"
  perf record -q -e cpu-clock -F 1999 -o "$work/perf.data" -- "$@" >/dev/null 2>"$work/perf.err" || { log "   perf record failed: $(head -c 300 "$work/perf.err")"; return 0; }
  # "-F overhead,sample,sym" prints "PCT%  SAMPLES  [.] NAME"; GCC's clones
  # (NAME.constprop.N, NAME.isra.N, ...) count as NAME.
  SHARE[$key]=$(perf report -i "$work/perf.data" --no-children --sort symbol -F overhead,sample,sym --stdio -g none 2>/dev/null |
    awk -v list="$codec_symbols" '
      BEGIN { while ((getline s < list) > 0) codec[s] = 1 }
      /^#/ || NF < 4 { next }
      { pct = $1; sub(/%$/, "", pct); n = $2; name = $4; sub(/\..*$/, "", name)
        total += n; if (name in codec) share += pct }
      END { if (share > 0) printf "%.3f %.1f %d", 100 / share, share, total; else print "–" }')
  log "   $key codec share: ${SHARE[$key]}"
}

# ratio A B [DECIMALS]: A/B, "–" when either is missing or B is 0.
ratio() { awk -v a="${1:-}" -v b="${2:-}" -v d="${3:-2}" 'BEGIN{if (a == "" || b == "" || b + 0 == 0) print "–"; else printf "%.*f", d, a/b}'; }
mb() { awk -v b="${1:-}" 'BEGIN{if (b == "") print "–"; else printf "%.1f", b/1048576}'; }

# ---------------------------------------------------------------- machine
say "# Comparison with the reference and pigz"
say ""
say "Produced by \`benches/compare.sh\` (from the repository root) on $(date -u '+%Y-%m-%d %H:%M UTC'),"
say "at commit $commit (release build), corpus from \`${CORPUS/#$root\//}\`."
say ""
say "Each measurement is run $RUNS times (up to $((RUNS + EXTRA_RUNS)) while other processes kept the CPUs"
say "busy) and the run with the least CPU time among the undisturbed ones is kept. CPU = user +"
say "system seconds and peak RSS = max resident set, both from \`/usr/bin/time\`; wall = elapsed"
say "seconds. A run counts as disturbed when the rest of the machine used more than 0.2 s + 5% of"
say "its CPU capacity (from /proc/stat); such rows are marked (!). Before every run, the files it"
say "reads are read once, untimed: the kernel here pages out file pages left untouched for about a"
say "minute (DAMON reclaim), so every tool starts with its input in the page cache."
say ""
say "## Machine"
say ""
say "- nproc: $(nproc)"
say "- CPU: $(lscpu | grep 'Model name' | sed -E 's/^Model name:[[:space:]]*//')"
say "- memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
say "- kernel: $(uname -sr)"
say "- rustc: $(rustc --version)"
say "- codec: libdeflater $(awk '/^name = "libdeflater"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock); reference: estargz-ref (stargz-snapshotter estargz 0.12.0 as packaged by Debian; $(go version 2>/dev/null | awk '{print $3}' || true))"
say "- pigz: $(pigz --version 2>&1)"
say "- load average at start: $(awk '{print $1, $2, $3}' /proc/loadavg)"
say ""
say "Caveat: this machine has $(nproc) vCPUs. The reference's \`lossless\` writer is sequential,"
say "this converter and pigz use every core, and other processes may share the machine:"
say "compare CPU seconds and the ratios built on them, not wall seconds. \"other CPU s\" is the"
say "CPU time the rest of the machine used during the kept run (0 when the measurement had the"
say "machine to itself)."
if [ -f "$work/import.json" ]; then
  say ""
  say "## Corpus"
  say ""
  say "Imported by \`import-layers --link --min-size $((MIN_MIB << 20))\` from \`${CORPUS/#$root\//}\`: each distinct layer once, as its uncompressed tar."
  say ""
  python3 - "$work/import.json" "$CORPUS" <<'EOF_PY' | tee -a "$report"
import json, sys
doc, root = json.load(open(sys.argv[1])), sys.argv[2].rstrip("/") + "/"
print("| layer | from | uncompressed MB | imported as |")
print("|---|---|---:|---|")
for r in doc["layers"]:
    size = "–" if r["size"] is None else f'{r["size"] / 1048576:.1f}'
    what = {"written": "decompressed", "linked": "symlink"}.get(r["outcome"], r["outcome"])
    if r["outcome"] == "duplicate":
        what = f'duplicate of {r["name"]}'
    elif r["outcome"] == "skipped":
        what = f'skipped: {r["reason"]}'
    name = r["name"] if r["outcome"] in ("written", "linked") else "–"
    src = r["source"][len(root):] if r["source"].startswith(root) else r["source"]
    print(f"| {name} | {src} | {size} | {what} |")
EOF_PY
fi

# ---------------------------------------------------------------- per input
for c in "${corpora[@]}"; do
  tar=$layers/$c.tar
  log "== $c"
  BUSY[$c]=$(wait_quiet)
  d=$work/$c; mkdir -p "$d"
  measure "$c" ours-default "$work/out.json" "$d/ours.esgz" "$ours" convert "$tar" -o "$d/ours.esgz" -q --json
  LEVEL[$c]=$(json_field level)
  measure "$c" ours-l9 /dev/null "$d/ours9.esgz" "$ours" convert "$tar" -o "$d/ours9.esgz" -q --level 9
  measure "$c" ours-t1 /dev/null "$d/ours1.esgz" "$ours" convert "$tar" -o "$d/ours1.esgz" -q --threads 1
  measure "$c" ours-1cpu /dev/null "$d/ours1c.esgz" taskset -c 0 "$ours" convert "$tar" -o "$d/ours1c.esgz" -q --threads 1
  measure "$c" ours-stream /dev/null "$d/oursst.esgz" "$ours" convert "$tar" -o "$d/oursst.esgz" -q --no-mmap
  BUSY[$c]="${BUSY[$c]} / $(cpu_busy_pct)"
  bare_codec "$c" bare-default
  bare_codec "$c" bare-l9 --level 9
  paired "$c|codec" 1 pair_convert pair_bare
  paired "$c|codec1" 1 pair_pinned pair_bare_pinned
  paired "$c|scaling" 2 pair_pinned pair_convert
  codec_share "$c|share" "$ours" convert "$tar" -o "$d/pair.esgz" -q
  measure "$c" ref-lossless /dev/null "$d/ref.esgz" "$ref" lossless -level 9 "$tar" "$d/ref.esgz"
  if [ "$PROBE" != 0 ]; then
    # The CPU the --level 9 target leaves unspent, and the most bytes it could buy.
    SPARE[$c]=$(awk -v r="${CPU[$c|ref-lossless]}" -v o="${CPU[$c|ours-l9]}" 'BEGIN{x = 0.35 * r - o; printf "%.2f", (x > 0) ? x : 0}')
    wait_quiet >/dev/null
    log "   level-probe --extra-seconds ${SPARE[$c]}"
    "$probe" "$tar" --extra-seconds "${SPARE[$c]}" >"$work/probe.json"
    log "   $(cat "$work/probe.json")"
    BOUND[$c]=$(json_num "$work/probe.json" saving_bound_bytes)
  fi
  measure "$c" ref-build /dev/null "$d/refbuild.esgz" "$ref" build "$tar" "$d/refbuild.esgz"
  measure "$c" pigz "$d/pigz.gz" "$d/pigz.gz" pigz -9 -c "$tar"
  measure "$c" ours-verify /dev/null - "$ours" verify "$d/ours.esgz"
  measure "$c" ref-verify /dev/null - "$ref" verify "$d/ref.esgz"
  measure "$c" ours-unpack /dev/null "$d/ours.tar" "$ours" unpack "$d/ours.esgz" -o "$d/ours.tar"
  measure "$c" ref-unpack /dev/null "$d/ref.tar" "$ref" unpack "$d/ref.esgz" "$d/ref.tar"
  SAME[$c]="ours unpack $(cmp -s "$tar" "$d/ours.tar" && echo "=" || echo "≠") input tar, ref unpack $(cmp -s "$tar" "$d/ref.tar" && echo "=" || echo "≠") input tar"
  SAME[$c]="${SAME[$c]}; --threads 1, pinned and --no-mmap blobs $(cmp -s "$d/ours.esgz" "$d/ours1.esgz" && cmp -s "$d/ours.esgz" "$d/ours1c.esgz" && cmp -s "$d/ours.esgz" "$d/oursst.esgz" && echo "=" || echo "≠") default blob"
  SIZE["$c|input"]=$(stat -L -c %s "$tar")
  rm -rf "$d"
done

# ---------------------------------------------------------------- 1 GiB from stdin
# The pool the stream's files are cut from: the first layer of the corpus.
big_pool=${corpora[0]}.tar
if [ "$BIG_MIB" -gt 0 ]; then
log "== ${BIG_MIB} MiB tar from stdin"
cat >"$work/gen.py" <<'EOF'
# A tar stream of TARGET bytes of file data on stdout: files of 1-8 MiB cut
# at random offsets out of POOL (a real layer, so semi-compressible).
import io, random, sys, tarfile
pool = open(sys.argv[1], "rb").read()
target = int(sys.argv[2])
rng = random.Random(1)
out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
total = i = 0
while total < target:
    size = min(rng.randint(1 << 20, 8 << 20), target - total)
    off = rng.randrange(0, len(pool) - size)
    info = tarfile.TarInfo(f"data/{i // 100:03d}/{i:05d}.bin")
    info.size, info.mtime, info.mode = size, 1700000000, 0o644
    out.addfile(info, io.BytesIO(pool[off:off + size]))
    total += size
    i += 1
out.close()
EOF
big_busy=$(wait_quiet)
python3 "$work/gen.py" "$layers/$big_pool" $((BIG_MIB << 20)) \
  | /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$ours" convert - -o "$work/big.esgz" -q --json >"$work/big.json"
read -r big_wall big_u big_s big_m <"$work/time"
big_cpu=$(awk -v u="$big_u" -v s="$big_s" 'BEGIN{printf "%.2f", u + s}')
big_rss=$(awk -v m="$big_m" 'BEGIN{printf "%.1f", m/1024}')
big_in=$(json_num "$work/big.json" tar_size)
big_out=$(stat -c %s "$work/big.esgz")
rm -f "$work/big.esgz"
log "   cpu $big_cpu s, wall $big_wall s, rss $big_rss MB"
fi

# ---------------------------------------------------------------- tables
row() { # row INPUT KEY TOOL OPERATION REFKEY
  local k="$1|$2" r="$1|$5"
  say "| $3 | $4 | ${CPU[$k]} | ${WALL[$k]} | ${RSS[$k]} | $(mb "${SIZE[$k]}") | $(ratio "${CPU[$k]}" "${CPU[$r]}") | $(ratio "${SIZE[$k]}" "${SIZE[$r]}") | ${OTHER[$k]}$([ "${CLEAN[$k]}" = 1 ] || echo " (!)") |"
}
for c in "${corpora[@]}"; do
  say ""
  say "## $c.tar ($(mb "${SIZE["$c|input"]}") MB, ${MEMBERS[$c]} gzip members)"
  say ""
  say "CPUs busy before the input / after the three converter runs: ${BUSY[$c]} %. Round trips: ${SAME[$c]}."
  say ""
  say "| tool | operation | CPU s | wall s | peak RSS MB | output MB | CPU ratio to ref | size ratio to ref | other CPU s |"
  say "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  row "$c" ours-default estargz "convert (default: level ${LEVEL[$c]}, all cores)" ref-lossless
  row "$c" ours-l9 estargz "convert --level 9" ref-lossless
  row "$c" ours-t1 estargz "convert --threads 1 (level ${LEVEL[$c]})" ref-lossless
  row "$c" ours-1cpu estargz "convert --threads 1, pinned to one CPU (taskset -c 0)" ref-lossless
  row "$c" ours-stream estargz "convert --no-mmap (input read as a stream, all cores)" ref-lossless
  row "$c" bare-default bare-codec "gzip_member on the same members, default level ${LEVEL[$c]} (compression phase only)" ref-lossless
  row "$c" bare-l9 bare-codec "gzip_member on the same members, level 9 (compression phase only)" ref-lossless
  row "$c" ref-lossless estargz-ref "lossless -level 9" ref-lossless
  row "$c" ref-build estargz-ref "build (level 9)" ref-lossless
  row "$c" pigz pigz "-9 -c" ref-lossless
  row "$c" ours-verify estargz "verify (own blob)" ref-verify
  row "$c" ref-verify estargz-ref "verify (own lossless blob)" ref-verify
  row "$c" ours-unpack estargz "unpack -o OUT.tar (own blob)" ref-unpack
  row "$c" ref-unpack estargz-ref "unpack (own lossless blob)" ref-unpack
done
say ""
say "bare-codec rows: CPU, wall and output are those of the compression phase alone (output ="
say "the gzip members, without TOC and footer); peak RSS is the whole process, which holds every"
say "member in memory (bare-codec measures CPU with /proc/self/stat utime+stime around the"
say "compression phase; see benches/src/bin/bare_codec.rs). Verify and unpack ratios are to the"
say "reference's verify and unpack; size ratios of unpack are of the tar written. The converter"
say "rows include everything the bare codec leaves out: process start, tar scanning, SHA-256"
say "of chunks, diffID and blob, the TOC, and writing the output."

if [ "$BIG_MIB" -gt 0 ]; then
  say ""
  say "## ${BIG_MIB} MiB layer from stdin"
  say ""
  say "A ${BIG_MIB} MiB tar stream (files of 1–8 MiB cut from $big_pool, written by Python's"
  say "tarfile) piped into \`estargz convert - -o FILE\` at default settings; CPUs ${big_busy}% busy before."
  say ""
  say "| input MB | output MB | CPU s | wall s | peak RSS MB |"
  say "|---:|---:|---:|---:|---:|"
  say "| $(mb "$big_in") | $(mb "$big_out") | $big_cpu | $big_wall | $big_rss |"
fi

# ---------------------------------------------------------------- targets
met() { awk -v v="$1" -v lim="$2" 'BEGIN{if (v == "–") print "n/a"; else if (v + 0 <= lim + 0) print "met"; else print "**not met**"}'; }
say ""
say "## Targets"
say ""
say "| target | input | value | limit | result |"
say "|---|---|---:|---:|---|"
# clean_note KEY...: which of these measurements other processes disturbed.
clean_note() {
  local k n=""
  for k in "$@"; do [ "${CLEAN[$k]}" = 1 ] || n="$n ${k#*|} (other CPU ${OTHER[$k]} s)"; done
  [ -z "$n" ] || printf ' — contended:%s' "$n"
}
t() { # t TARGET INPUT VALUE LIMIT KEY...
  local name=$1 input=$2 v=$3 lim=$4
  shift 4
  say "| $name | $input | $v | $lim | $(met "$v" "$lim")$(clean_note "$@") |"
}
for c in "${corpora[@]}"; do
  t "convert (default) CPU / reference lossless CPU" "$c" "$(ratio "${CPU[$c|ours-default]}" "${CPU[$c|ref-lossless]}" 3)" 0.20 "$c|ours-default" "$c|ref-lossless"
  t "convert (default) output / reference lossless output" "$c" "$(ratio "${SIZE[$c|ours-default]}" "${SIZE[$c|ref-lossless]}" 3)" 1.00 "$c|ours-default" "$c|ref-lossless"
  t "convert --level 9 CPU / reference lossless CPU" "$c" "$(ratio "${CPU[$c|ours-l9]}" "${CPU[$c|ref-lossless]}" 3)" 0.35 "$c|ours-l9" "$c|ref-lossless"
  t "convert --level 9 output / reference lossless output" "$c" "$(ratio "${SIZE[$c|ours-l9]}" "${SIZE[$c|ref-lossless]}" 3)" 0.97 "$c|ours-l9" "$c|ref-lossless"
  if [ -n "${BOUND[$c]:-}" ]; then
    v=$(awk -v o="${SIZE[$c|ours-l9]}" -v b="${BOUND[$c]}" -v r="${SIZE[$c|ref-lossless]}" 'BEGIN{printf "%.3f", (o - b) / r}')
    say "| (bound) the same, had the ${SPARE[$c]} CPU s left under 0.35x gone to levels 10-11, member by member, chosen with hindsight | $c | $v | 0.97 | $(awk -v v="$v" 'BEGIN{print ((v + 0 <= 0.97) ? "reachable at best" : "**out of reach** of these levels")}') |"
  fi
  t "convert (default) CPU / bare codec CPU, same members (median of ${PAIRS[$c|codec]})" "$c" "${PAIRED[$c|codec]}" 1.20
  say "| (for information) the same, least CPU of each row above | $c | $(ratio "${CPU[$c|ours-default]}" "${CPU[$c|bare-default]}" 3) | – | – |"
  t "the same with both on one CPU (taskset -c 0, --threads 1; median of ${PAIRS[$c|codec1]})" "$c" "${PAIRED[$c|codec1]}" 1.20
  read -r v pct n <<<"${SHARE[$c|share]}"
  [ "$v" = "–" ] || t "the same within one convert run (default): all perf samples / samples in libdeflate (${pct}% of $n samples)" "$c" "$v" 1.20
  t "convert --level 9 CPU / bare codec CPU, same members" "$c" "$(ratio "${CPU[$c|ours-l9]}" "${CPU[$c|bare-l9]}" 3)" 1.20 "$c|ours-l9" "$c|bare-l9"
  t "verify CPU / reference verify CPU" "$c" "$(ratio "${CPU[$c|ours-verify]}" "${CPU[$c|ref-verify]}" 3)" 0.35 "$c|ours-verify" "$c|ref-verify"
  t "unpack to tar CPU / reference unpack CPU" "$c" "$(ratio "${CPU[$c|ours-unpack]}" "${CPU[$c|ref-unpack]}" 3)" 0.50 "$c|ours-unpack" "$c|ref-unpack"
done
[ "$BIG_MIB" -eq 0 ] || say "| peak RSS converting ${BIG_MIB} MiB from stdin, MB | stdin | $big_rss | 100 | $([ "$BIG_MIB" -ge 1024 ] && awk -v v="$big_rss" 'BEGIN{print ((v < 100) ? "met" : "**not met**")}' || echo "n/a (test smaller than 1 GiB)") |"
for c in "${corpora[@]}"; do
  # Throughput ratio = wall(one CPU) / wall(all CPUs).
  v=${PAIRED[$c|scaling]}
  res=$(awk -v v="$v" 'BEGIN{if (v == "–") print "n/a"; else print ((v + 0 >= 1.6) ? "met" : "**not met**")}')
  if [ "$(nproc)" -lt 2 ]; then res="n/a (1 CPU)"; fi
  say "| throughput 2 threads / 1 thread (wall of pinned --threads 1 / default, median of ${PAIRS[$c|scaling]}) | $c | $v | ≥ 1.6 | $res |"
  say "| (for information) the same, least wall of each row above | $c | $(ratio "${WMIN[$c|ours-1cpu]}" "${WMIN[$c|ours-default]}" 3) | – | – |"
  v=$(ratio "${WMIN[$c|ours-t1]}" "${WMIN[$c|ours-default]}" 3)
  say "| (for information) the same with --threads 1 not pinned | $c | $v | – | – |"
done

if [ "$PROBE" != 0 ]; then
  say ""
  say "The (bound) rows come from \`level-probe TAR --extra-seconds S\` (benches/src/bin/level_probe.rs),"
  say "S = 0.35 x the reference's CPU s - ours at \`--level 9\`: it compresses every member on one"
  say "thread at levels 9, 10 and 11, times each, and prints the optimum of the linear relaxation of"
  say "choosing a level per member within S extra seconds. No real choice of levels saves more, so"
  say "\"out of reach\" means no mix of libdeflate levels meets both --level 9 targets on that layer."
fi
say ""
say "The two ratio targets marked \"median of pairs\" run their two commands one after the other,"
say "$PAIR_RUNS times, alternating which goes first: convert and bare-codec on the same input, and"
say "\`--threads 1\` pinned to one CPU with \`taskset -c 0\` and the default (all $ncpu cores). Each"
say "pair gives a ratio (CPU s for the codec, wall s for throughput); the median over the pairs the"
say "rest of the machine left alone is the value. This machine's speed drifts by 10-20% over"
say "minutes, so the ratio of two rows' least times (shown for information) compares runs made"
say "minutes apart. Throughput is input bytes per wall second, so its ratio is the wall time of one"
say "thread over that of all cores. \`--threads 1\` alone sizes the compression pool only, and tar"
say "scanning, assembly and the hashing thread run beside it, so unpinned it already uses more than"
say "one core (its CPU s above can exceed its wall s); the unpinned ratio is shown for information."
say ""
say "The codec target is measured in pairs twice: as users run convert (all cores), and with"
say "convert and bare-codec both pinned to one CPU with \`--threads 1\`. Two threads busy at once on"
say "these vCPUs slow each other down by an amount that changes from run to run, which moves the CPU"
say "seconds of both commands; on one CPU no thread of either runs beside another. Each of these"
say "rows lists every pair's ratio after the median, so the spread of this run shows beside it."
if [ "$PERF" != 0 ]; then
  say ""
  say "The third codec row needs no second process: \`perf record -e cpu-clock\` samples every thread"
  say "of one default convert run, and the value is all its samples over those that fell in"
  say "libdeflate's functions (the names \`nm\` lists in the libdeflate.a the binary links). Whatever"
  say "the machine's speed during that run, it moves both counts alike. It counts libdeflate's time"
  say "inside convert as the codec's, which matches bare-codec as long as the codec runs as fast in"
  say "both (in a check on one layer, pinned runs of the two had the same libdeflate samples within 1.1%)."
fi

cp "$report" "$RESULTS"
log "== wrote ${RESULTS#"$root"/}"
