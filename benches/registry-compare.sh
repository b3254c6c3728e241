#!/usr/bin/env bash
# Registry to registry conversion on loopback, side by side in one run:
#   (a)  estargz convert-image docker://… docker://… with a cold (empty) cache;
#   (a0) the same with --no-cache (what the layers alone cost on disk);
#   (b)  skopeo copy docker://… oci:IN, estargz convert-image oci:IN oci:OUT
#        (cold cache), skopeo copy oci:OUT docker://…: the three-tool way;
#   (c)  the layer conversion alone: estargz convert of each source layer
#        blob, the three summed;
#   (d)  (a) again with the cache (a) filled, to the destination (a) pushed:
#        what it moves is counted from the registry's access log (the goal is
#        manifests only: no blob GET, no upload).
# The image is the comparison corpus (benches/make-corpus.sh; see
# docs/benchmarks.md) as a 3-layer OCI image: each layer tar gzipped with
# `pigz -n -6` (registries hold gzip layers), a config with their diffIDs,
# pushed by skopeo to a docker-registry this script starts.
#
# Usage: benches/registry-compare.sh        (root for apt when tools are missing)
# Environment: RUNS=N (rounds, default 3: each round runs c, a, d, a0, b in
# that order, each row keeps its round with the least CPU time), CORPUS=DIR
# (default target/bench-corpus, built there by make-corpus.sh only when the
# default is used), RESULTS=FILE (default benches/RESULTS-registry.md),
# ESTARGZ=BIN (the binary to measure; default: built with cargo and copied).
#
# Measured for each row with GNU time (children included): wall seconds,
# CPU seconds (user + system), peak RSS (the largest single process), and
# disk bytes read and written (the kernel's block I/O accounting, 512-byte
# units: page-cache hits are not reads; writes are counted when pages are
# dirtied, even if the file is deleted before writeback). Besides: the
# registry's own CPU seconds and bytes it wrote (/proc/PID/stat and io,
# before and after), and the CPU seconds the rest of the machine used
# meanwhile (from /proc/stat), as the machine may be shared.
#
# Everything lives in one directory under target/ (on disk, as a user's
# TMPDIR would be); the registry is stopped by its PID and the directory
# removed on exit (trap).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD
# The invocation, for the report: the settings given, then the command.
invocation=""
for v in RUNS CORPUS RESULTS ESTARGZ; do [ -z "${!v:-}" ] || invocation="$invocation$v=${!v} "; done
invocation="${invocation}benches/registry-compare.sh"
RUNS=${RUNS:-3}
layers_wanted=(debian-minbase python-site-packages node-modules)
default_corpus=$root/target/bench-corpus
CORPUS=$(cd "$caller" && realpath -m "${CORPUS:-$default_corpus}")
RESULTS=$(cd "$caller" && realpath -m "${RESULTS:-$root/benches/RESULTS-registry.md}")
[ -z "${ESTARGZ:-}" ] || ESTARGZ=$(cd "$caller" && realpath -m "$ESTARGZ")
export DEBIAN_FRONTEND=noninteractive

log() { printf '%s\n' "$*" >&2; }
die() { log "registry-compare: $*"; exit 1; }
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "$1 not found (apt-get install $2)"
  apt-get update -qq && apt-get install -y -q --no-install-recommends "$2" >/dev/null
}

# ---------------------------------------------------------------- cleanup
mkdir -p "$root/target"
work=$(mktemp -d "$root/target/registry-compare.XXXXXX")
reg_pid=""
# stop PID: SIGTERM, up to 15 s, then SIGKILL; reaps it.
stop() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  trap '' INT TERM
  [ -z "$reg_pid" ] || stop "$reg_pid"
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
need docker-registry docker-registry
need skopeo skopeo
need curl curl
need pigz pigz
need python3 python3
[ -x /usr/bin/time ] || need time time
if [ ! -d "$CORPUS" ] && [ "$CORPUS" = "$default_corpus" ]; then
  log "== corpus (benches/make-corpus.sh)"
  benches/make-corpus.sh "${layers_wanted[@]}" >&2
fi
for l in "${layers_wanted[@]}"; do
  if [ ! -f "$CORPUS/$l.tar" ]; then
    [ "$CORPUS" = "$default_corpus" ] || die "no $CORPUS/$l.tar"
    benches/make-corpus.sh "$l" >&2
  fi
done
mkdir -p "$work/bin" "$work/tmp"
# shellcheck source=benches/lib/estargz.sh
. "$root/benches/lib/estargz.sh"
estargz=$(estargz_binary "$work/bin")
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit + uncommitted changes"; fi

# ---------------------------------------------------------------- registry
# shellcheck source=benches/lib/registry.sh
. "$root/benches/lib/registry.sh"
token="rc-$$-$(date +%s%N)"
mkdir -p "$work/registry"
reg_log=$work/registry/registry.log
mapfile -t unset_reg < <(registry_env)
ready=0
for _ in 1 2 3 4 5 6 7 8; do
  port=$(free_port)
  registry_config "$work/registry" "$port" X-Registry-Compare "$token" delete
  env "${unset_reg[@]}" docker-registry serve "$work/registry/config.yml" >"$reg_log" 2>&1 </dev/null &
  reg_pid=$!
  if registry_ready "$reg_pid" "$port" X-Registry-Compare "$token" 300; then ready=1; break; fi
  stop "$reg_pid"; reg_pid=""
  grep -q "address already in use" "$reg_log" || die "docker-registry did not start: $(cat "$reg_log")"
done
[ "$ready" = 1 ] || die "docker-registry: not ready"
registry=127.0.0.1:$port
log "== registry $registry (pid $reg_pid)"

# ---------------------------------------------------------------- the image
log "== source image (pigz -n -6 of each layer)"
oci=$work/src-layout
mkdir -p "$oci/blobs/sha256" "$work/layers"
put_blob() { # put_blob FILE: moves FILE into the layout, prints "HEX SIZE"
  local h s
  h=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1")
  mv "$1" "$oci/blobs/sha256/$h"; echo "$h $s"
}
layer_descs="" diff_ids="" src_layers=() src_digests=() src_bytes=0 tar_bytes=0
for l in "${layers_wanted[@]}"; do
  diff=$(sha256sum "$CORPUS/$l.tar" | cut -d' ' -f1)
  tar_bytes=$((tar_bytes + $(stat -c %s "$CORPUS/$l.tar")))
  pigz -n -6 -c "$CORPUS/$l.tar" >"$work/layers/$l.tar.gz"
  h=$(sha256sum "$work/layers/$l.tar.gz" | cut -d' ' -f1)
  s=$(stat -c %s "$work/layers/$l.tar.gz")
  cp "$work/layers/$l.tar.gz" "$oci/blobs/sha256/$h"
  src_layers+=("$work/layers/$l.tar.gz")
  src_digests+=("$h")
  src_bytes=$((src_bytes + s))
  layer_descs="$layer_descs${layer_descs:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$h\",\"size\":$s}"
  diff_ids="$diff_ids${diff_ids:+,}\"sha256:$diff\""
done
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diff_ids" >"$work/config.json"
read -r chex csize < <(put_blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
  "$chex" "$csize" "$layer_descs" >"$work/manifest.json"
read -r mhex msize < <(put_blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' "$mhex" "$msize" >"$oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
src=docker://$registry/corpus/src:1
skopeo copy -q --dest-tls-verify=false "oci:$oci" "$src" >&2
rm -rf "$oci"
log "== pushed $src: ${#src_layers[@]} layers, $src_bytes bytes gzip ($tar_bytes bytes of tar)"

# ---------------------------------------------------------------- measuring
clk_tck=$(getconf CLK_TCK)
# Busy jiffies of all CPUs (steal excluded).
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat; }
# The registry's "CPU_TICKS WRITE_BYTES".
reg_usage() {
  local stat w
  stat=$(sed 's/.*) //' "/proc/$reg_pid/stat")
  w=$(awk '/^write_bytes/{print $2}' "/proc/$reg_pid/io")
  awk -v w="$w" '{print $12 + $13, w}' <<<"$stat"
}
# warm: the source blobs the registry serves and the layers convert reads,
# read once untimed (this kernel pages out file pages idle for a minute).
warm() {
  local f
  for f in "${src_layers[@]}"; do cat "$f" >/dev/null; done
  find "$work/registry/storage/docker/registry/v2/blobs" -name data -size +1M -exec cat {} + >/dev/null
  cat "$estargz" >/dev/null
}
# Access-log lines between marks: a request for /v2/mark/NAME/tags/list,
# waited for until its line is in the log (the registry writes a line just
# after answering; every request of a finished command came before).
mark() {
  curl -s -o /dev/null "http://$registry/v2/mark/$1/tags/list" || true
  for _ in $(seq 100); do grep -q "/v2/mark/$1/tags/list" "$reg_log" && return 0; sleep 0.05; done
  die "the registry did not log mark $1"
}
# traffic FROM TO: "LAYER_GETS LAYER_BYTES OTHER_BLOB_GETS OTHER_BYTES UPLOAD_REQUESTS
# BLOB_HEADS MANIFEST_REQUESTS" for the access-log lines between marks FROM
# and TO; layer GETs are those of the source image's layers, bytes are
# response bodies.
traffic() {
  awk -v from="/v2/mark/$1/" -v to="/v2/mark/$2/" -v layers="${src_digests[*]}" '
    BEGIN { n = split(layers, l, " "); for (i = 1; i <= n; i++) layer["sha256:" l[i]] = 1 }
    index($0, from) { on = 1; next }
    index($0, to) { on = 0 }
    on && match($0, /"[A-Z]+ \/v2\/[^ ]* HTTP/) {
      split(substr($0, RSTART + 1, RLENGTH - 1), r, " ")
      rest = substr($0, RSTART + RLENGTH); sub(/^[^"]*" /, "", rest); split(rest, f, " ")
      digest = r[2]; sub(/.*\/blobs\//, "", digest)
      if (r[2] ~ /\/blobs\/uploads\//) up++
      else if (r[2] ~ /\/blobs\/sha256:/ && r[1] == "GET" && (digest in layer)) { lg++; lb += f[2] }
      else if (r[2] ~ /\/blobs\/sha256:/ && r[1] == "GET") { og++; ob += f[2] }
      else if (r[2] ~ /\/blobs\/sha256:/ && r[1] == "HEAD") heads++
      else if (r[2] ~ /\/manifests\//) man++
    }
    END { printf "%d %d %d %d %d %d %d\n", lg, lb, og, ob, up, heads, man }' "$reg_log"
}
# Results by row: cpu wall rss(MB) in(MB) out(MB) reg_cpu reg_out(MB) other traffic.
declare -A CPU WALL RSS DIN DOUT RCPU ROUT OTHER TRAFFIC RATIO_A RATIO_B
nmark=0
# timed ROW CMD...: one run of CMD under GNU time, added to the row's
# running sums in S_* (a row may be several commands).
timed() {
  local row=$1 e u s m i o b0 b1 r0 r1 w0 w1
  shift
  read -r r0 w0 < <(reg_usage)
  b0=$(cpu_busy)
  if ! TMPDIR=$work/tmp /usr/bin/time -f '%e %U %S %M %I %O' -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr"; then
    log "FAILED ($row): $*"; cat "$work/stderr" >&2; exit 1
  fi
  b1=$(cpu_busy)
  read -r r1 w1 < <(reg_usage)
  read -r e u s m i o <"$work/time"
  read -r S_WALL S_CPU S_RSS S_IN S_OUT S_RCPU S_ROUT S_BUSY < <(awk -v e="$e" -v u="$u" -v s="$s" -v m="$m" -v i="$i" -v o="$o" \
    -v rc="$((r1 - r0))" -v rw="$((w1 - w0))" -v busy="$((b1 - b0))" -v hz="$clk_tck" \
    -v W="$S_WALL" -v C="$S_CPU" -v R="$S_RSS" -v I="$S_IN" -v O="$S_OUT" -v RC="$S_RCPU" -v RO="$S_ROUT" -v B="$S_BUSY" \
    'BEGIN { printf "%.2f %.2f %.1f %.1f %.1f %.2f %.1f %.2f\n", W + e, C + u + s, (m / 1024 > R ? m / 1024 : R),
      I + i * 512 / 1e6, O + o * 512 / 1e6, RC + rc / hz, RO + rw / 1e6, B + busy / hz }')
}
# measure ROW CMD...; one command. measure_begin/measure_end ROW around
# several timed calls. The row keeps the round with the least CPU.
measure_begin() {
  S_WALL=0 S_CPU=0 S_RSS=0 S_IN=0 S_OUT=0 S_RCPU=0 S_ROUT=0 S_BUSY=0
  nmark=$((nmark + 1)); mark "m$nmark"; warm
}
measure_end() {
  local row=$1 other from=m$nmark
  nmark=$((nmark + 1)); mark "m$nmark"
  other=$(awk -v b="$S_BUSY" -v c="$S_CPU" -v r="$S_RCPU" 'BEGIN { o = b - c - r; printf "%.1f", (o < 0 ? 0 : o) }')
  log "   $row: cpu $S_CPU s, wall $S_WALL s, rss $S_RSS MB, disk in/out $S_IN/$S_OUT MB, registry cpu $S_RCPU s, other $other s"
  ROUND_CPU[$row]=$S_CPU
  if [ -z "${CPU[$row]:-}" ] || awk -v a="$S_CPU" -v b="${CPU[$row]}" 'BEGIN{exit !(a < b)}'; then
    CPU[$row]=$S_CPU WALL[$row]=$S_WALL RSS[$row]=$S_RSS DIN[$row]=$S_IN DOUT[$row]=$S_OUT
    RCPU[$row]=$S_RCPU ROUT[$row]=$S_ROUT OTHER[$row]=$other
    TRAFFIC[$row]=$(traffic "$from" "m$nmark")
  fi
}
measure() { local row=$1; shift; measure_begin; timed "$row" "$@"; measure_end "$row"; }
declare -A ROUND_CPU
tls=(--src-tls-verify=false --dest-tls-verify=false)

for round in $(seq "$RUNS"); do
  log "== round $round of $RUNS"
  measure_begin
  for f in "${src_layers[@]}"; do
    timed c "$estargz" convert -q -o "$work/tmp/layer.esgz" "$f"
    rm -f "$work/tmp/layer.esgz"
  done
  measure_end c
  dst=docker://$registry/corpus/a$round:1
  measure a "$estargz" convert-image -q "${tls[@]}" --cache "$work/cache-a$round" "$src" "$dst"
  measure d "$estargz" convert-image -q "${tls[@]}" --cache "$work/cache-a$round" "$src" "$dst"
  rm -rf "$work/cache-a$round"
  measure a0 "$estargz" convert-image -q "${tls[@]}" --no-cache "$src" "docker://$registry/corpus/a0-$round:1"
  measure_begin
  timed b skopeo copy -q --src-tls-verify=false "$src" "oci:$work/b-in:1"
  timed b "$estargz" convert-image -q --cache "$work/cache-b$round" "oci:$work/b-in:1" "oci:$work/b-out:1"
  timed b skopeo copy -q --dest-tls-verify=false "oci:$work/b-out:1" "docker://$registry/corpus/b$round:1"
  measure_end b
  # skopeo remembers where it pushed a blob (its blob info cache, one per
  # machine, no flag to move it) and would mount the next round's blobs from
  # this repository instead of uploading them: unlink them here.
  for f in "$work/b-out/blobs/sha256"/*; do
    curl -sf -X DELETE -o /dev/null "http://$registry/v2/corpus/b$round/blobs/sha256:${f##*/}" || true
  done
  rm -rf "$work/b-in" "$work/b-out" "$work/cache-b$round"
  RATIO_A[$round]=$(awk -v a="${ROUND_CPU[a]}" -v c="${ROUND_CPU[c]}" 'BEGIN{printf "%.3f", a / c}')
  RATIO_B[$round]=$(awk -v a="${ROUND_CPU[b]}" -v c="${ROUND_CPU[c]}" 'BEGIN{printf "%.3f", a / c}')
done

# ---------------------------------------------------------------- report
median() { tr ' ' '\n' | sort -g | awk '{v[NR] = $1} END {printf "%.2f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
ratio_a=$(awk -v a="${CPU[a]}" -v c="${CPU[c]}" 'BEGIN{printf "%.2f", a / c}')
ratio_b=$(awk -v a="${CPU[b]}" -v c="${CPU[c]}" 'BEGIN{printf "%.2f", a / c}')
median_a=$(echo "${RATIO_A[*]}" | median)
median_b=$(echo "${RATIO_B[*]}" | median)
read -r dlg dlb dog dob du dh dm <<<"${TRAFFIC[d]}"
report=$work/report.md
{
  echo "# Registry to registry: convert-image against the three-tool way and the layers alone"
  echo
  echo "Produced by \`$invocation\` (from the repository root) on $(date -u '+%Y-%m-%d %H:%M UTC'), at commit $commit"
  echo "(release build), on the comparison corpus (\`benches/make-corpus.sh\`): ${layers_wanted[*]},"
  echo "$((tar_bytes / 1000000)) MB of tar, as one 3-layer image with \`pigz -n -6\` layers ($((src_bytes / 1000000)) MB), in a"
  echo "docker-registry ($(docker-registry --version 2>/dev/null | awk '{print $NF}')) on loopback started by the script."
  echo
  echo "Machine: $(nproc) vCPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo),"
  echo "Linux $(uname -r), skopeo $(skopeo --version | awk '{print $NF}'). **Shared with other work** while it ran"
  echo "(other agents building and testing): \"other CPU s\" is what the rest of the machine used during the kept run."
  echo
  echo "Each row ran $RUNS times, interleaved (rounds of c, a, d, a0, b); the round with the least CPU is kept."
  echo "CPU = user + system seconds of the command and its children, peak RSS = the largest single process,"
  echo "disk = block I/O (page-cache hits are not reads), all from GNU time; the registry's own CPU and disk"
  echo "writes are apart (from /proc). Transfers are the registry's access-log lines during the kept run."
  echo
  echo "| row | command | wall s | CPU s | peak RSS MB | disk read MB | disk written MB | registry CPU s | registry written MB | other CPU s |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  row() { echo "| $1 | $2 | ${WALL[$1]} | ${CPU[$1]} | ${RSS[$1]} | ${DIN[$1]} | ${DOUT[$1]} | ${RCPU[$1]} | ${ROUT[$1]} | ${OTHER[$1]} |"; }
  row a "\`estargz convert-image docker://… docker://…\`, cold cache"
  row a0 "the same, \`--no-cache\`"
  row b "\`skopeo copy docker://… oci:IN\` + \`estargz convert-image oci:IN oci:OUT\` + \`skopeo copy oci:OUT docker://…\`"
  row c "\`estargz convert\` of each layer blob, summed"
  row d "(a) again, warm cache, same destination"
  echo
  echo "| row | source layer GETs | their bytes served | other blob GETs | their bytes | upload requests | blob HEADs | manifest requests |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for r in a a0 b c d; do
    read -r lg lb og ob u h m <<<"${TRAFFIC[$r]}"
    echo "| $r | $lg | $lb | $og | $ob | $u | $h | $m |"
  done
  echo
  echo "- CPU of (a) / (c): **$ratio_a** (kept runs; median of the rounds' own ratios $median_a; goal ≤ 1.15)."
  echo "- CPU of (b) / (c): $ratio_b (median of rounds $median_b)."
  if [ "$dlg" = 0 ] && [ "$dog" = 0 ] && [ "$du" = 0 ]; then
    echo "- (d), warm cache: manifests only ($dm manifest requests, $dh blob HEADs, no blob GET, no upload)."
  else
    echo "- (d), warm cache: **not** manifests only: $dlg source layer GETs ($dlb bytes), $dog other blob GETs ($dob bytes),"
    echo "  $du upload requests, $dh blob HEADs, $dm manifest requests."
  fi
  echo
  echo "Commands, as run (\`-q\`; \`--src-tls-verify=false --dest-tls-verify=false\` for plain HTTP; TMPDIR under target/):"
  echo
  echo '```sh'
  echo "estargz convert-image --cache CACHE docker://$registry/corpus/src:1 docker://$registry/corpus/aN:1    # (a), then again for (d)"
  echo "estargz convert-image --no-cache docker://$registry/corpus/src:1 docker://$registry/corpus/a0-N:1     # (a0)"
  echo "skopeo copy docker://$registry/corpus/src:1 oci:IN:1 && estargz convert-image --cache CACHE oci:IN:1 oci:OUT:1 \\"
  echo "  && skopeo copy oci:OUT:1 docker://$registry/corpus/bN:1                                      # (b)"
  echo "for l in LAYER.tar.gz...; do estargz convert -o OUT \$l; done                                  # (c)"
  echo '```'
} >"$report"
cat "$report"
cp "$report" "$RESULTS"
log "== written to $RESULTS"
