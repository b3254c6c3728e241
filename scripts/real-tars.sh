#!/usr/bin/env bash
# Round trips of tars that people really ship, through this converter and the
# reference driver, both ways.
#
#   scripts/real-tars.sh [--pypi N] [PATH...]
#
# Every file under the PATHs (files or directories) that is a tar or a
# gzip-compressed tar is checked; the format is sniffed from the first bytes,
# not the name (a tar is one with the ustar magic: GNU, ustar and pax tars),
# and other files are skipped. Without PATH: cargo's download
# cache (~/.cargo/registry/cache, .crate files written by cargo's tar crate)
# and npm's (~/.npm/_cacache/content-v2, tarballs written by npm's node-tar),
# where they exist. `--pypi N` also downloads the source distributions of up
# to N of the package names below from PyPI's JSON API, four releases of each
# spread over its history (oldest, newest and two between), into
# target/real-tars/pypi (kept between runs): tarballs written by the tar code
# of distutils, setuptools, flit, hatch and others, from the oldest release
# each package has on PyPI to the newest, in GNU, ustar and pax formats.
#
# For each tar:
#  1. `estargz convert`; `estargz verify` and `estargz-ref verify` accept the
#     blob, and `estargz unpack -o` gives back the tar byte for byte;
#  2. `estargz-ref lossless`; `estargz verify` accepts that blob, and
#     `estargz unpack -o` of it gives back the tar byte for byte.
# A step that fails is listed with the file and the first line of what the
# tool said. A tar that `estargz-ref lossless` refuses (it has no support
# for pax global headers, for one) is listed apart: the reference's limit,
# not a failure. Prints the counts per source and exits 1 if any step
# failed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYPI=0
paths=()
while [ $# -gt 0 ]; do
  case $1 in
    --pypi)
      PYPI=${2:-}
      case $PYPI in '' | *[!0-9]*) echo "real-tars.sh: --pypi needs a number" >&2; exit 2 ;; esac
      shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "real-tars.sh: unknown option $1" >&2; exit 2 ;;
    *) paths+=("$1"); shift ;;
  esac
done

# shellcheck source=scripts/ref-driver.sh
. scripts/ref-driver.sh
cargo build --release -q -p estargz-cli
ours=$PWD/target/release/estargz
ref=$ESTARGZ_REF
mkdir -p target/real-tars
tmp=$(mktemp -d "$PWD/target/real-tars/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ ${#paths[@]} -eq 0 ]; then
  for p in "$HOME/.cargo/registry/cache" "$HOME/.npm/_cacache/content-v2"; do
    [ -d "$p" ] && paths+=("$p")
  done
fi
if [ "$PYPI" -gt 0 ]; then
  mkdir -p target/real-tars/pypi
  python3 - "$PYPI" target/real-tars/pypi <<'EOF_PY'
import json, os, sys, urllib.parse, urllib.request
# Long-lived packages first: their oldest releases predate pax and setuptools.
names = """six simplejson docutils pytz zope.interface twisted paramiko pycrypto
lxml pyyaml setuptools pip wheel jinja2 markupsafe pillow django flask sqlalchemy
cffi cryptography python-dateutil psutil mock nose pytest coverage sphinx pygments
babel certifi chardet idna urllib3 boto botocore decorator greenlet gevent tornado
pyzmq cython numpy scipy pandas matplotlib ipython attrs packaging toml pyparsing
click itsdangerous werkzeug mercurial pexpect ptyprocess requests distribute""".split()
limit, dest = int(sys.argv[1]), sys.argv[2]
for name in names[:limit]:
    api = f"https://pypi.org/pypi/{name}/json"
    try:
        with urllib.request.urlopen(api, timeout=30) as r:
            doc = json.load(r)
    except Exception as e:
        print(f"pypi: {name}: {e}", file=sys.stderr)
        continue
    sdists = sorted(
        (f for files in doc["releases"].values() for f in files
         if f["packagetype"] == "sdist" and f["filename"].endswith((".tar.gz", ".tgz"))
         and f["size"] < 15_000_000),
        key=lambda f: f["upload_time"])
    for i in sorted({0, len(sdists) // 3, 2 * len(sdists) // 3, len(sdists) - 1}):
        if i < 0 or i >= len(sdists):
            continue
        f = sdists[i]
        path = os.path.join(dest, f["filename"])
        if os.path.exists(path):
            continue
        try:
            # Some mirrors give file URLs relative to the API's.
            urllib.request.urlretrieve(urllib.parse.urljoin(api, f["url"]), path + ".part")
            os.replace(path + ".part", path)
        except Exception as e:
            print(f"pypi: {f['filename']}: {e}", file=sys.stderr)
EOF_PY
  paths+=(target/real-tars/pypi)
fi
[ ${#paths[@]} -gt 0 ] || { echo "real-tars.sh: nothing to check (no PATH, no cargo or npm cache; try --pypi 20)" >&2; exit 2; }

# kind FILE: gzip, tar or other, from the first bytes.
kind() {
  local hex=(od -An -tx1)
  if [ "$("${hex[@]}" -N2 "$1" | tr -d ' \n')" = 1f8b ]; then echo gzip
  elif [ "$("${hex[@]}" -j257 -N5 "$1" | tr -d ' \n')" = 7573746172 ]; then echo tar # "ustar"
  else echo other
  fi
}

failed=0 refused=0
# step FILE WHAT CMD...: runs CMD; on failure lists FILE, WHAT and the first
# line the command printed, and returns 1.
step() {
  local file=$1 what=$2
  shift 2
  local rc=0
  "$@" >"$tmp/out" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || return 0
  printf 'FAIL %s: %s (exit %d): %s\n' "$file" "$what" "$rc" "$(grep -m1 . "$tmp/out" || true)"
  failed=$((failed + 1))
  return 1
}

for p in "${paths[@]}"; do
  checked=0 skipped=0 before=$failed before_refused=$refused
  while IFS= read -r -d '' f; do
    in=$f
    case $(kind "$f") in
      gzip) in=$tmp/in.tar
            gzip -dc "$f" >"$in" 2>/dev/null || { skipped=$((skipped + 1)); continue; }
            [ "$(kind "$in")" = tar ] || { skipped=$((skipped + 1)); continue; } ;;
      tar) ;;
      *) skipped=$((skipped + 1)); continue ;;
    esac
    checked=$((checked + 1))
    if step "$f" "estargz convert" "$ours" convert -q "$in" -o "$tmp/ours.esgz"; then
      step "$f" "estargz verify (our blob)" "$ours" verify "$tmp/ours.esgz" || true
      step "$f" "estargz-ref verify (our blob)" "$ref" verify "$tmp/ours.esgz" || true
      if step "$f" "estargz unpack (our blob)" "$ours" unpack "$tmp/ours.esgz" -o "$tmp/back.tar"; then
        step "$f" "round trip (our blob)" cmp "$in" "$tmp/back.tar" || true
      fi
    fi
    # The reference's own limits (it refuses pax global headers, for one)
    # are listed, not counted as failures.
    if ! "$ref" lossless "$in" "$tmp/ref.esgz" >"$tmp/out" 2>&1; then
      printf 'reference refused %s: %s\n' "$f" "$(grep -m1 . "$tmp/out" || true)"
      refused=$((refused + 1))
    else
      step "$f" "estargz verify (reference blob)" "$ours" verify "$tmp/ref.esgz" || true
      if step "$f" "estargz unpack (reference blob)" "$ours" unpack "$tmp/ref.esgz" -o "$tmp/back.tar"; then
        step "$f" "round trip (reference blob)" cmp "$in" "$tmp/back.tar" || true
      fi
    fi
  done < <(find "$p" -type f -print0 | sort -z)
  printf '%s: %d tars checked, %d other files skipped, %d failed steps, %d refused by estargz-ref lossless\n' \
    "$p" "$checked" "$skipped" "$((failed - before))" "$((refused - before_refused))"
done
[ "$failed" -eq 0 ]
