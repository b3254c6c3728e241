#!/usr/bin/env bash
# Lazy reads of one eStargz layer: `estargz mount` against the stargz
# snapshotter (the runtime that lazily pulls eStargz today), on the same blob
# served by the same loopback registry. Prints a Markdown table on stdout
# (and to RESULTS=FILE when set); progress goes to stderr.
#
# Usage (root: FUSE, mount(8), containerd):
#   benches/snapshotter-compare.sh [LAYER]
# LAYER is a plain tar or an eStargz blob. A plain tar is converted with
# `estargz convert` (with --prioritized-files PRIORITIZED when that is set);
# an eStargz blob is served as it is. Default: the corpus layer
# python-site-packages (benches/make-corpus.sh builds it in
# target/bench-corpus, 116 MB, 4,400 entries, files from 0 to 25 MB) converted
# with the files of the Flask stack (flask, werkzeug, jinja2, click,
# itsdangerous, markupsafe, blinker: "import flask") prioritized, so that the
# layer has a prefetch region (a layer without .prefetch.landmark has none:
# both sides then prefetch nothing).
#
# Environment: RESULTS=FILE (also write the report there), RANDOM_READS=N
# (4 KiB preads per random-read measurement, default 100000), RUNS=N (run 2
# is repeated N times, default 3, each from a cold start; its times are the
# least of the runs, as this machine is shared), SIDES="snapshotter
# estargz" (which sides to run), PRIORITIZED=FILE (paths to prioritize when
# converting a tar LAYER), STARGZ_TOOLS=DIR (where build.sh of the stargz-grpc
# daemon lives, run when stargz-grpc is not on PATH; default
# /work/shared/tools/stargz-snapshotter), ESTARGZ=BIN (the estargz binary;
# default: built with cargo and copied), MOUNT_ARGS="..." (more options for
# `estargz mount`, e.g. "--cache-size 256MiB").
#
# What runs: one docker-registry on a free loopback port (distribution cannot
# listen on port 0, so a port is picked by binding port 0 and the registry is
# started again on another one when it loses the port; it is ready when /v2/
# answers with a header unique to this instance), with its access log (one line
# per request: status and body bytes). The layer becomes a one-layer OCI image
# (`estargz convert-image` adds the TOC digest annotation) pushed there. Each
# side then mounts the layer three times, each time from a cold start (fresh
# daemon, fresh cache directory):
#   run 1, on demand: the mount, one small file outside the prefetch region,
#          then the files of the prefetch region (read on demand);
#   run 2, on demand: every file cold (timed), again warm (page cache), again
#          with O_DIRECT (served by the daemon's cache, not the page cache),
#          4 KiB random preads inside the first chunk of the largest
#          multi-chunk file after reading it (page cache, and O_DIRECT), the
#          daemon's peak RSS (VmHWM);
#   run 3, with prefetch: the mount and its prefetch of the landmark region,
#          then the files of the prefetch region (which should cost nothing).
#   run 4, estargz only (when its mount has --disk-cache): one mount fills a
#          disk cache with --background-fetch, then a new mount on that cache
#          reads every file (timed). The snapshotter keeps its cache on disk
#          too, but reuses it only across a daemon restart with its snapshots
#          restored, which this script does not drive: its cell stays empty.
# The snapshotter side is stargz-grpc (its library, Debian's v0.12) under a
# private containerd (proxy plugin), lazily pulled with `ctr-remote images
# rpull --plain-http`, the layer read through a view snapshot bind-mounted on a
# temporary directory. "On demand" is its -no-prefetch (no prefetch and no
# background fetch; with background fetch on, it fetches the whole blob 5 s
# after the mount and every later count would depend on timing). The estargz
# side is `estargz mount [--toc-digest D] http://127.0.0.1:PORT/v2/REPO/blobs/DIGEST
# DIR` (without --background-fetch; with --no-prefetch in runs 1 and 2 if it
# has that option, otherwise its mount rows include the prefetch). Requests and
# bytes are the registry's access log lines for the layer blob between marks
# (HEAD and GET; bytes are response bodies); containerd's manifest and config
# requests are counted apart. The side is reported as "estargz mount not
# available" when the estargz binary has no `mount` subcommand.
#
# Everything lives in one temporary directory; every process is stopped by
# its PID and every mount under that directory unmounted on exit (trap).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD
RANDOM_READS=${RANDOM_READS:-100000}
RUNS=${RUNS:-3}
SIDES=${SIDES:-snapshotter estargz}
STARGZ_TOOLS=${STARGZ_TOOLS:-/work/shared/tools/stargz-snapshotter}
[ -z "${RESULTS:-}" ] || RESULTS=$(cd "$caller" && realpath -m "$RESULTS")
[ -z "${PRIORITIZED:-}" ] || PRIORITIZED=$(cd "$caller" && realpath -m "$PRIORITIZED")
layer_arg=""
[ $# -eq 0 ] || layer_arg=$(cd "$caller" && realpath -m "$1")

log() { printf '%s\n' "$*" >&2; }
die() { log "snapshotter-compare: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (FUSE mounts, mount(8), containerd)"
[ -e /dev/fuse ] || die "no /dev/fuse"

# ---------------------------------------------------------------- cleanup
work=$(mktemp -d /tmp/snapshotter-compare.XXXXXX)
pids=()
# stop PID: SIGTERM, up to 15 s, then SIGKILL; reaps it.
stop() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# unmount_under DIR: every mount at or below DIR, deepest first.
unmount_under() {
  local m
  awk -v d="$1" '{ p = $5; gsub(/\\040/, " ", p); if (p == d || index(p, d "/") == 1) print length(p) " " p }' /proc/self/mountinfo |
    sort -rn | cut -d' ' -f2- | while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done
}
cleanup() {
  local i
  set +e
  trap '' INT TERM # finish cleaning up
  log "== cleaning up"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[$i]}"; done
  unmount_under "$work"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# start NAME LOGFILE CMD...: runs CMD in the background, its PID in $last_pid.
start() {
  local name=$1 logf=$2
  shift 2
  "$@" >"$logf" 2>&1 </dev/null &
  last_pid=$!
  pids+=("$last_pid")
  log "   started $name (pid $last_pid)"
}
# stop_started PID: stop and forget.
stop_started() {
  local pid=$1 keep=() p
  stop "$pid"
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# ---------------------------------------------------------------- tools
for t in docker-registry curl python3 cc mount umount; do command -v "$t" >/dev/null || die "$t not found"; done
if [[ " $SIDES " == *" snapshotter "* ]]; then
  if ! command -v stargz-grpc >/dev/null; then
    [ -x "$STARGZ_TOOLS/build.sh" ] || die "stargz-grpc not found and no $STARGZ_TOOLS/build.sh"
    log "== building stargz-grpc ($STARGZ_TOOLS/build.sh)"
    nice "$STARGZ_TOOLS/build.sh" >&2
  fi
  for t in stargz-grpc containerd ctr ctr-remote; do command -v "$t" >/dev/null || die "$t not found"; done
fi
mkdir -p "$work/bin"
# shellcheck source=benches/lib/estargz.sh
. "$root/benches/lib/estargz.sh"
estargz=$(estargz_binary "$work/bin")
cat >"$work/rd.c" <<'EOF'
/* rd all [-d]: reads every file named on stdin (NUL-separated) to its end in
 * 128 KiB reads; prints "files bytes seconds".
 * rd rand [-d] FILE SPAN N: reads [0, SPAN) once, then times N 4 KiB preads
 * at random 4 KiB-aligned offsets in it; prints microseconds per read.
 * -d: O_DIRECT, so that FUSE sends every read to the daemon. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  int direct = argc > 2 && strcmp(argv[2], "-d") == 0, a = 2 + direct, flags = O_RDONLY | (direct ? O_DIRECT : 0);
  char *buf; size_t bs = 128 << 10;
  if (argc < 2 || posix_memalign((void **)&buf, 4096, bs)) return 2;
  if (strcmp(argv[1], "all") == 0) {
    char *line = NULL; size_t cap = 0; ssize_t n; long files = 0; long long bytes = 0; double t0 = now();
    while ((n = getdelim(&line, &cap, 0, stdin)) > 0) {
      int fd = open(line, flags); ssize_t r;
      if (fd < 0) { perror(line); return 1; }
      while ((r = read(fd, buf, bs)) > 0) bytes += r;
      if (r < 0) { perror(line); return 1; }
      close(fd); files++;
    }
    printf("%ld %lld %.3f\n", files, bytes, now() - t0);
    return 0;
  }
  if (strcmp(argv[1], "rand") == 0 && argc == a + 3) {
    long long span = atoll(argv[a + 1]), pages = span / 4096, i, n = atoll(argv[a + 2]), off;
    int fd = open(argv[a], flags); double t0;
    if (fd < 0 || pages < 1) { perror(argv[a]); return 1; }
    for (off = 0; off < pages * 4096; off += 4096) if (pread(fd, buf, 4096, off) != 4096) { perror("pread"); return 1; }
    srand(42); t0 = now();
    for (i = 0; i < n; i++) if (pread(fd, buf, 4096, (long long)(rand() % pages) * 4096) != 4096) { perror("pread"); return 1; }
    printf("%.2f\n", (now() - t0) * 1e6 / n);
    return 0;
  }
  return 2;
}
EOF
cc -O2 -o "$work/bin/rd" "$work/rd.c"
rd=$work/bin/rd

# ---------------------------------------------------------------- the layer
if [ -n "$layer_arg" ]; then
  layer_src=$layer_arg
  layer_name=$(basename "$layer_arg")
else
  layer_src=$root/target/bench-corpus/python-site-packages.tar
  layer_name="python-site-packages (benches/make-corpus.sh), Flask stack prioritized"
  [ -f "$layer_src" ] || { log "== corpus"; benches/make-corpus.sh python-site-packages >&2; }
  tar tf "$layer_src" | grep -E '^(\./)?(flask|werkzeug|jinja2|click|itsdangerous|markupsafe|blinker)/.*[^/]$' |
    sed 's|^\./||' >"$work/prioritized.txt"
  PRIORITIZED=$work/prioritized.txt
fi
[ -f "$layer_src" ] || die "no layer $layer_src"
blob=$work/layer.esgz
if "$estargz" info --json "$layer_src" >"$work/info.json" 2>/dev/null && grep -q '"footer": "eStargz"' "$work/info.json"; then
  cp "$layer_src" "$blob"
else
  log "== convert $layer_src"
  nice "$estargz" convert -q ${PRIORITIZED:+--prioritized-files "$PRIORITIZED"} -o "$blob" "$layer_src" >&2
fi
"$estargz" info --json "$blob" >"$work/info.json"
"$estargz" ls --json "$blob" >"$work/ls.json"
# jget KEY...: a value of info.json.
jget() { python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: v=(v or {}).get(k)
print("" if v is None else v)' "$work/info.json" "$@"; }
diff_id=$(jget diff_id); toc_digest=$(jget toc_digest); blob_size=$(jget size)
entries=$(jget entries); prefetch_end=$(jget prefetch end)
# Which files each phase reads: one small file after the prefetch region,
# the regular files of the prefetch region, the largest multi-chunk file and
# the span of its first chunk.
(python3 - "$work" <<'EOF'
import json, sys
w = sys.argv[1]
es = json.load(open(w + "/ls.json"))
names = [e["name"] for e in es]
land = names.index("./.prefetch.landmark") if "./.prefetch.landmark" in names else (names.index(".prefetch.landmark") if ".prefetch.landmark" in names else -1)
rel = lambda n: n[2:] if n.startswith("./") else n.lstrip("/")
regs = [(i, e) for i, e in enumerate(es) if e["type"] == "reg"]
pre = [e for i, e in regs if i < land and e["size"] > 0 and rel(e["name"]) != ".prefetch.landmark"]
small = [e for i, e in regs if i > land and 1024 <= e["size"] <= 8192]
small = small[len(small) // 2] if small else min((e for i, e in regs if e["size"] > 0), key=lambda e: e["size"])
big = max((e for i, e in regs if e["chunks"] > 1), key=lambda e: e["size"], default=None) or max((e for i, e in regs), key=lambda e: e["size"])
span = max(4096, big["size"] // max(1, big["chunks"]) // 4096 * 4096)
with open(w + "/prefetch.list", "wb") as f:
    for e in pre: f.write(rel(e["name"]).encode() + b"\0")
for v in (rel(small["name"]), small["size"], rel(big["name"]), big["size"], big["chunks"], span, len(pre), sum(e["size"] for e in pre)):
    print(v)
EOF
) >"$work/pick.txt"
{ read -r small; read -r small_size; read -r big; read -r big_size; read -r big_chunks; read -r span; read -r pre_files; read -r pre_bytes; } <"$work/pick.txt"
all_files=$(python3 -c 'import json,sys; es=json.load(open(sys.argv[1])); print(sum(1 for e in es if e["type"]=="reg"), sum(e["size"] for e in es if e["type"]=="reg"))' "$work/ls.json")
log "== layer: $blob_size bytes, $entries TOC entries, prefetch end ${prefetch_end:-none}; small file $small ($small_size B); big $big ($big_size B, $big_chunks chunks, span $span)"

# ---------------------------------------------------------------- registry
# shellcheck source=benches/lib/registry.sh
. "$root/benches/lib/registry.sh"
token="sc-$$-$(date +%s%N)"
mkdir -p "$work/registry"
reg_log=$work/registry/registry.log
mapfile -t unset_reg < <(registry_env)
ready=0
for _ in 1 2 3 4 5 6 7 8; do
  port=$(free_port)
  registry_config "$work/registry" "$port" X-Snapshotter-Compare "$token"
  start docker-registry "$reg_log" env "${unset_reg[@]}" docker-registry serve "$work/registry/config.yml"
  reg_pid=$last_pid
  if registry_ready "$reg_pid" "$port" X-Snapshotter-Compare "$token" 100; then ready=1; break; fi
  stop_started "$reg_pid"
  grep -q "address already in use" "$reg_log" || die "docker-registry did not start: $(cat "$reg_log")"
done
[ "$ready" = 1 ] || die "docker-registry: no free port after 8 attempts"
registry=127.0.0.1:$port
repo=bench/layer
log "== registry $registry (pid $reg_pid)"

# The image: a one-layer OCI layout around the blob, pushed by convert-image
# (which passes an eStargz layer through and adds its annotations).
oci=$work/oci
mkdir -p "$oci/blobs/sha256"
put_blob() { # put_blob FILE: moves FILE into the layout, prints "HEX SIZE"
  local h s
  h=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1")
  mv "$1" "$oci/blobs/sha256/$h"; echo "$h $s"
}
cp "$blob" "$work/layer.copy"
read -r lhex lsize < <(put_blob "$work/layer.copy")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$diff_id" >"$work/config.json"
read -r chex csize < <(put_blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$chex" "$csize" "$lhex" "$lsize" >"$work/manifest.json"
read -r mhex msize < <(put_blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' "$mhex" "$msize" >"$oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
"$estargz" convert-image -q --dest-tls-verify=false "oci:$oci" "docker://$registry/$repo:latest" >&2
# The layer as pushed (the digest convert-image gave it).
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$registry/v2/$repo/manifests/latest" >"$work/pushed.json"
layer_digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$work/pushed.json")
grep -q "containerd.io/snapshot/stargz/toc.digest" "$work/pushed.json" || die "the pushed manifest has no TOC digest annotation"
blob_url=http://$registry/v2/$repo/blobs/$layer_digest
log "== pushed $registry/$repo:latest, layer $layer_digest"

# ---------------------------------------------------------------- counting
# Access log lines: '... "GET /v2/... HTTP/1.1" STATUS BYTES "referer" "agent"'.
access_lines() { grep -c '" [0-9][0-9][0-9] ' "$reg_log" || true; }
mark() { access_lines; }
# settle: waits until the access log has not grown for 1 s (at most 30 s),
# so that requests answered just before are logged.
settle() {
  local a b i
  a=$(access_lines)
  for i in $(seq 30); do sleep 1; b=$(access_lines); [ "$a" = "$b" ] && return 0; a=$b; done
}
# since MARK: "REQUESTS BYTES OTHER" for the lines after MARK: requests
# to the layer blob, their body bytes, and requests for anything else.
since() {
  grep '" [0-9][0-9][0-9] ' "$reg_log" | tail -n +$(($1 + 1)) | awk -v blob="/blobs/$layer_digest" '
    { split($0, q, "\""); split(q[3], f, " "); if (index(q[2], blob)) { n++; b += f[2] } else o++ }
    END { printf "%d %d %d\n", n, b, o }'
}
# phase KEY MARK: records since(MARK) as R[KEY], B[KEY], O[KEY].
declare -A R B O T
# Repeated runs (RUNS) keep every count: RS/BS list them, the report shows
# their range.
declare -A RS BS
phase() {
  local n b o
  settle
  read -r n b o < <(since "$2")
  R["$1"]=$n; B["$1"]=$b; O["$1"]=$o; RS["$1"]+="$n "; BS["$1"]+="$b "
  log "   $1: $n requests, $b bytes (+$o other)"
}
# cpu_s PID: user + system CPU seconds of PID so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
# read_files MNT LIST: reads the NUL-separated relative paths of LIST under MNT.
read_files() { (cd "$1" && "$rd" all <"$2") >/dev/null; }
# timed_all KEY MNT [-d]: reads every file under MNT; T[KEY] seconds.
timed_all() {
  local key=$1 mnt=$2 out t0 t1
  shift 2
  t0=$(date +%s%N)
  out=$(cd "$mnt" && find . -type f -print0 | "$rd" all "$@") || return 1
  t1=$(date +%s%N)
  keep_min "$key" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b - a) / 1e9}')"
  log "   $key: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b - a) / 1e9}') s ($out)"
}
# keep_min KEY VALUE: T[KEY] becomes VALUE when that is less (or T[KEY] unset).
keep_min() {
  if [ -z "${T[$1]:-}" ] || awk -v a="$2" -v b="${T[$1]}" 'BEGIN { exit !(a + 0 < b + 0) }'; then T["$1"]=$2; fi
}
hwm_mb() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# measure SIDE RUN MNT DAEMON_PID: the phases of run RUN (1, 2 or 3).
measure() {
  local side=$1 run=$2 mnt=$3 dpid=$4 m u ud h c0
  case $run in
  1)
    m=$(mark); cat "$mnt/$small" >/dev/null; phase "$side|small" "$m"
    m=$(mark); read_files "$mnt" "$work/prefetch.list"; phase "$side|pre-ondemand" "$m"
    ;;
  2)
    c0=$(cpu_s "$dpid")
    m=$(mark); timed_all "$side|all-cold" "$mnt"; phase "$side|all-cold" "$m"
    keep_min "$side|cpu-cold" "$(awk -v a="$c0" -v b="$(cpu_s "$dpid")" 'BEGIN { printf "%.2f", b - a }')"
    log "   daemon CPU for the cold read: $(awk -v a="$c0" -v b="$(cpu_s "$dpid")" 'BEGIN { printf "%.2f", b - a }') s"
    timed_all "$side|all-warm" "$mnt"
    m=$(mark)
    if timed_all "$side|all-direct" "$mnt" -d 2>"$work/direct.err"; then phase "$side|all-direct" "$m"; else T["$side|all-direct"]="n/a"; log "   O_DIRECT: $(head -1 "$work/direct.err")"; fi
    u=$("$rd" rand "$mnt/$big" "$span" "$RANDOM_READS"); keep_min "$side|rand" "$u"
    ud=$("$rd" rand -d "$mnt/$big" "$span" "$RANDOM_READS" 2>/dev/null) || ud=n/a
    if [ "$ud" = n/a ]; then T["$side|rand-direct"]=n/a; else keep_min "$side|rand-direct" "$ud"; fi
    log "   4 KiB random reads: $u us (page cache), $ud us (O_DIRECT)"
    h=$(hwm_mb "$dpid"); [ "$h" -le "${T[$side|hwm]:-0}" ] || T["$side|hwm"]=$h
    log "   peak RSS $h MB"
    ;;
  3)
    m=$(mark); read_files "$mnt" "$work/prefetch.list"; phase "$side|pre-after" "$m"
    ;;
  esac
}

# ---------------------------------------------------------------- snapshotter
# snap_run RUN: one cold start of stargz-grpc + containerd, lazy pull, view.
snap_run() {
  local run=$1 d=$work/snap$1 sp cp m key parent flags=()
  rm -rf --one-file-system "$d"
  mkdir -p "$d/mnt"
  [ "$run" = 3 ] || flags=(-no-prefetch)
  log "== snapshotter, run $run ${flags[*]}"
  start stargz-grpc "$d/stargz.log" stargz-grpc -address "$d/stargz.sock" -root "$d/root" "${flags[@]}"
  sp=$last_pid
  for i in $(seq 300); do [ -S "$d/stargz.sock" ] && break; kill -0 "$sp" || die "stargz-grpc exited: $(tail -5 "$d/stargz.log")"; sleep 0.1; done
  cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd-root"
state = "$d/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[proxy_plugins.stargz]
  type = "snapshot"
  address = "$d/stargz.sock"
EOF
  start containerd "$d/containerd.log" containerd --config "$d/containerd.toml"
  cp=$last_pid
  for i in $(seq 300); do ctr -a "$d/containerd.sock" version >/dev/null 2>&1 && break; kill -0 "$cp" || die "containerd exited: $(tail -5 "$d/containerd.log")"; sleep 0.1; done
  local c=(ctr -a "$d/containerd.sock" -n bench)
  m=$(mark)
  ctr-remote -a "$d/containerd.sock" -n bench images rpull --plain-http "$registry/$repo:latest" >"$d/rpull.log" 2>&1 ||
    die "rpull failed: $(tail -5 "$d/rpull.log")"
  grep -q '"msg":"verified"' "$d/stargz.log" || die "the snapshotter did not mount the layer lazily (no \"verified\" in $d/stargz.log)"
  parent=$("${c[@]}" snapshots --snapshotter stargz ls | awk '$NF == "Committed" { print $1; exit }')
  [ -n "$parent" ] || die "no committed snapshot after rpull"
  "${c[@]}" snapshots --snapshotter stargz view --mounts view "$parent" >"$d/mounts.json"
  python3 - "$d/mounts.json" "$d/mnt" >"$d/mount.sh" <<'EOF'
import json, shlex, sys
ms = json.load(open(sys.argv[1]))
assert len(ms) == 1, ms
m = {k.lower(): v for k, v in ms[0].items()}  # ctr prints the Go field names
t = "" if m["type"] == "bind" else "-t " + shlex.quote(m["type"])
print("mount %s -o %s %s %s" % (t, shlex.quote(",".join(m["options"])), shlex.quote(m["source"]), shlex.quote(sys.argv[2])))
EOF
  sh "$d/mount.sh"
  if [ "$run" = 3 ]; then
    for i in $(seq 600); do grep -q '"msg":"completed to prefetch"' "$d/stargz.log" && break; sleep 0.1; done
    grep -q '"msg":"completed to prefetch"' "$d/stargz.log" || log "   prefetch did not complete in 60 s"
    # Background fetch starts 5 s after the mount; the phase ends before.
    local n b o
    read -r n b o < <(since "$m"); R["snapshotter|mount-prefetch"]=$n; B["snapshotter|mount-prefetch"]=$b; O["snapshotter|mount-prefetch"]=$o
    log "   mount + prefetch: $n requests, $b bytes (+$o other)"
  else
    phase "snapshotter|mount$run" "$m"
  fi
  measure snapshotter "$run" "$d/mnt" "$sp"
  umount "$d/mnt"
  stop_started "$cp"
  stop_started "$sp"
  unmount_under "$d"
}

# ---------------------------------------------------------------- estargz mount
esgz_has_mount() { "$estargz" mount --help >/dev/null 2>&1; }
esgz_no_prefetch=0
if "$estargz" mount --help 2>/dev/null | grep -q -- '--no-prefetch'; then esgz_no_prefetch=1; fi
# esgz_run RUN: one cold start of `estargz mount` on the blob's URL.
esgz_run() {
  local run=$1 d=$work/esgz$1 ep m flags=(--toc-digest "$toc_digest")
  # shellcheck disable=SC2206 # MOUNT_ARGS is a list of options
  [ -z "${MOUNT_ARGS:-}" ] || flags+=($MOUNT_ARGS)
  rm -rf --one-file-system "$d"
  mkdir -p "$d/mnt"
  if [ "$run" != 3 ] && [ "$esgz_no_prefetch" = 1 ]; then flags+=(--no-prefetch); fi
  log "== estargz mount, run $run ${flags[*]}"
  m=$(mark)
  esgz_start "$d" "${flags[@]}"
  ep=$last_pid
  if [ "$run" = 3 ]; then phase "estargz|mount-prefetch" "$m"; else phase "estargz|mount$run" "$m"; fi
  measure estargz "$run" "$d/mnt" "$ep"
  esgz_stop "$ep" "$d"
  T["estargz|report$run"]=$(grep -iE 'request|bytes' "$d/mount.log" | tail -3 | tr '\n' ' ' || true)
}
# esgz_start DIR FLAGS...: `estargz mount FLAGS` of the blob on DIR/mnt,
# logging to DIR/mount.log; returns once it is mounted, its PID in $last_pid.
esgz_start() {
  local d=$1 i
  shift
  start "estargz mount" "$d/mount.log" "$estargz" mount "$@" "$blob_url" "$d/mnt"
  for i in $(seq 600); do
    awk -v p="$d/mnt" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo && break
    kill -0 "$last_pid" 2>/dev/null || die "estargz mount exited: $(tail -5 "$d/mount.log")"
    sleep 0.1
  done
  ls "$d/mnt" >/dev/null
}
# esgz_stop PID DIR: as Ctrl-C (SIGINT is ignored by background jobs of a
# script, so SIGTERM): it unmounts and reports.
esgz_stop() {
  local i
  kill -TERM "$1"
  for i in $(seq 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  stop_started "$1"
  unmount_under "$2"
}
# esgz_disk: run 4, estargz only, when it has --disk-cache: one mount fills a
# disk cache (--background-fetch, until done), then a new mount on that cache
# reads every file (timed).
esgz_disk() {
  local d=$work/esgz4 ep m i
  rm -rf --one-file-system "$d"
  mkdir -p "$d/mnt" "$d/cache"
  log "== estargz mount, run 4: filling --disk-cache"
  esgz_start "$d" --toc-digest "$toc_digest" --disk-cache "$d/cache" --background-fetch
  ep=$last_pid
  for i in $(seq 3000); do grep -q 'background fetch:' "$d/mount.log" && break; sleep 0.1; done
  log "   $(grep -E 'background fetch:' "$d/mount.log" || echo 'background fetch did not end in 300 s')"
  esgz_stop "$ep" "$d"
  log "== estargz mount, run 4: a new mount on the filled cache"
  esgz_start "$d" --toc-digest "$toc_digest" --disk-cache "$d/cache" --no-prefetch
  ep=$last_pid
  m=$(mark)
  timed_all "estargz|all-disk" "$d/mnt"
  phase "estargz|all-disk" "$m"
  esgz_stop "$ep" "$d"
  log "   $(grep -o 'disk cache .*' "$d/mount.log" | tail -1)"
}

esgz_available=0
for side in $SIDES; do
  case $side in
  snapshotter) for r in 1 $(yes 2 | head -n "$RUNS") 3; do snap_run "$r"; done ;;
  estargz)
    if esgz_has_mount; then
      esgz_available=1
      for r in 1 $(yes 2 | head -n "$RUNS") 3; do esgz_run "$r"; done
      if "$estargz" mount --help | grep -q -- '--disk-cache'; then esgz_disk; fi
    else
      log "== estargz mount not available ($estargz has no mount subcommand)"
    fi
    ;;
  *) die "unknown side $side" ;;
  esac
done

# ---------------------------------------------------------------- report
report=$work/report.md
: >"$report"
say() { printf '%s\n' "$*" | tee -a "$report"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
# range "N...": N, or MIN-MAX when the runs differed; range_mib the same in MiB.
range() { tr ' ' '\n' <<<"$1" | awk 'NF { if (n++ == 0 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 } END { if (lo == hi) print lo; else print lo "-" hi }'; }
range_mib() { tr ' ' '\n' <<<"$1" | awk 'NF { if (n++ == 0 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 } END { if (lo == hi) printf "%.2f MiB", lo / 1048576; else printf "%.2f-%.2f MiB", lo / 1048576, hi / 1048576 }'; }
cell() { # cell SIDE KIND KEY
  local s=$1 kind=$2 k="$1|$3"
  if [ "$s" = estargz ] && [ "$esgz_available" = 0 ]; then printf 'estargz mount not available'; return; fi
  case $kind in
  rb) if [ -n "${R[$k]:-}" ]; then printf '%s / %s' "$(range "${RS[$k]:-${R[$k]}}")" "$(range_mib "${BS[$k]:-${B[$k]}}")"; [ "${O[$k]:-0}" = 0 ] || printf ' (+%s manifest/config)' "${O[$k]}"; else printf -- '-'; fi ;;
  rbt) if [ -n "${R[$k]:-}" ]; then printf '%s / %s / %s s' "$(range "${RS[$k]}")" "$(range_mib "${BS[$k]}")" "${T[$k]}"; else printf -- '-'; fi ;;
  t) printf '%s' "${T[$k]:--}" ;;
  esac
}
row() { # row LABEL KIND KEY
  printf '| %s | %s | %s |\n' "$1" "$(cell snapshotter "$2" "$3")" "$(cell estargz "$2" "$3")" | tee -a "$report"
}
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
read -r nfiles nbytes <<<"$all_files"
say "## Lazy reads: estargz mount vs the stargz snapshotter"
say ""
say "Layer: $layer_name: $(mib "$blob_size") blob, $entries TOC entries ($nfiles files, $(mib "$nbytes")), prefetch region [0, ${prefetch_end:-0}) with $pre_files files ($(mib "$pre_bytes")); small file \`$small\` ($small_size B); random reads in the first chunk ($span B) of \`$big\` ($big_size B, $big_chunks chunks)."
say "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); loopback registry (docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}')); $(date -u +%Y-%m-%d); commit $commit. Cells: requests / bytes to the layer blob (from the registry's access log)."
say ""
say "| | stargz snapshotter (stargz-grpc, library v0.12) | estargz mount |"
say "|---|---|---|"
row "mount, on demand (TOC)" rb mount1
row "one small file" rb small
row "prefetch region, read on demand" rb pre-ondemand
row "mount with prefetch (TOC + prefetch region)" rb mount-prefetch
row "prefetch region read after the prefetch" rb pre-after
row "every file, cold: requests / bytes / seconds" rbt all-cold
row "every file, cold: CPU seconds of the daemon" t cpu-cold
row "every file, warm (page cache): seconds" t all-warm
row "every file, warm, O_DIRECT (the daemon's cache): requests / bytes / seconds" rbt all-direct
row "every file, a new mount on a disk cache filled before (estargz --disk-cache): requests / bytes / seconds" rbt all-disk
row "4 KiB random pread in a cached chunk (page cache): µs" t rand
row "4 KiB random pread in a cached chunk (O_DIRECT, served by the daemon): µs" t rand-direct
row "daemon peak RSS (VmHWM, after reading every file): MB" t hwm
say ""
say "Times, CPU seconds and µs: the least of $RUNS cold starts (requests and bytes: their range); peak RSS the largest."
if [ "$esgz_available" = 1 ] && [ "$esgz_no_prefetch" = 0 ]; then
  say "estargz mount has no --no-prefetch: it prefetches the landmark region at every mount (its on-demand rows count that in the mount)."
fi
if [ "$esgz_available" = 1 ]; then
  for r in 1 2 3; do [ -z "${T[estargz|report$r]:-}" ] || say "estargz mount's own report, run $r: ${T[estargz|report$r]}"; done
fi
envs="RUNS=$RUNS RANDOM_READS=$RANDOM_READS"
[ "$SIDES" = "snapshotter estargz" ] || envs="SIDES=\"$SIDES\" $envs"
[ -z "${MOUNT_ARGS:-}" ] || envs="$envs MOUNT_ARGS=\"$MOUNT_ARGS\""
say "Command: \`$envs benches/snapshotter-compare.sh${layer_arg:+ $layer_arg}\`."
[ -z "${RESULTS:-}" ] || cp "$report" "$RESULTS"
