#!/usr/bin/env bash
# Regenerates the tar fixture corpus from scratch:
#
#   testdata/tars/{valid,sparse,invalid}/  + testdata/tars/README.md
#   testdata/sample-layer.tar
#
# Usage: testdata/make-fixtures.sh [--no-install] [--no-check]
#
# Needs GNU tar, gzip, python3 and git. bsdtar (libarchive-tools), busybox
# and setfattr (attr) are installed with apt-get when missing and possible
# (run as root); without them the fixtures that need them are skipped.
# Device nodes need mknod (root); without it they are left out. As root,
# unshare (PID and private mount namespaces) pins the PID in GNU tar's
# GNUSparseFile.<pid> names and the user names busybox looks up; without it
# those two details depend on the run/machine.
#
# Everything is built in a temporary directory inside testdata/ and moved
# into place at the end. Output is deterministic for a given set of tool
# versions (fixed mtimes, sorted names, fixed owners, gzip -n), except
# testdata/sample-layer.tar, which copies a few files from this machine's
# /usr/lib/python3.* and /etc/os-release.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-python3}
GEN="$HERE/make_fixtures.py"
export SOURCE_DATE_EPOCH=1600000000
EPOCH=$SOURCE_DATE_EPOCH
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

INSTALL=1
CHECK=1
for arg in "$@"; do
  case $arg in
    --no-install) INSTALL=0 ;;
    --no-check) CHECK=0 ;;
    *) echo "usage: $0 [--no-install] [--no-check]" >&2; exit 2 ;;
  esac
done

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

# --------------------------------------------------------------------------
# tools

for t in tar gzip git "$PY"; do
  command -v "$t" >/dev/null || { echo "missing required tool: $t" >&2; exit 1; }
done
tar --version | head -1 | grep -q 'GNU tar' || { echo "tar is not GNU tar" >&2; exit 1; }

APT_UPDATED=0
ensure() { # ensure COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null && return 0
  if [[ $INSTALL == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing $2 (for $1)"
    if [[ $APT_UPDATED == 0 ]]; then
      apt-get update -qq >/dev/null 2>&1 || true
      APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || true
  fi
  command -v "$1" >/dev/null
}
HAVE_BSDTAR=0 HAVE_BUSYBOX=0 HAVE_SETFATTR=0
if ensure bsdtar libarchive-tools; then HAVE_BSDTAR=1; else warn "bsdtar unavailable: skipping bsdtar fixtures"; fi
if ensure busybox busybox; then HAVE_BUSYBOX=1; else warn "busybox unavailable: skipping busybox fixture"; fi
if ensure setfattr attr; then HAVE_SETFATTR=1; else warn "setfattr unavailable"; fi

# --------------------------------------------------------------------------
# work area (inside testdata/, removed on exit)

W=$(mktemp -d "$HERE/.fixtures-tmp.XXXXXX")
trap 'rm -rf "$W"' EXIT
OUT="$W/out"
mkdir -p "$OUT/valid" "$OUT/sparse" "$OUT/invalid" "$W/trees"

cat >"$W/owner-map" <<EOF
+0 root:0
+1000 alice:1000
+3000000 biguser:3000000
EOF
cat >"$W/group-map" <<EOF
+0 root:0
+1000 staff:1000
+3000000 biggroup:3000000
EOF

# GNU tar with deterministic settings.
GTAR=(tar --sort=name --mtime="@$EPOCH" --owner-map="$W/owner-map" --group-map="$W/group-map"
      --no-acls --no-selinux)
gtar() { "${GTAR[@]}" "$@"; }
PAXOPT="--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"

# GNU tar names PAX sparse entries ".../GNUSparseFile.<pid>/name": run it
# as PID 1 of a new PID namespace where that is allowed.
fixed_pid() {
  if unshare --pid --fork true 2>/dev/null; then unshare --pid --fork "$@"; else "$@"; fi
}
fix_times() { find "$1" -exec touch -h -d "@$EPOCH" {} +; }
# top-level names of a directory, sorted, without "./"
toplevel() { (cd "$1" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort); }

# --------------------------------------------------------------------------
# the source tree for GNU tar / bsdtar / busybox
#   level v7:    what the v7 format can hold
#   level ustar: + devices/fifo, a >100-byte path split into prefix/name
#   level full:  + >100-byte basename, >255-byte path, >100-byte symlink and
#                  hardlink targets, uid/gid 3000000

MKNOD_OK=1
mk_tree() {
  local d=$1 level=$2
  mkdir -p "$d/dir/sub" "$d/modes/sticky" "$d/owners"
  printf 'nested\n' >"$d/dir/sub/nested.txt"
  : >"$d/empty"
  printf 'A' >"$d/one-byte"
  "$PY" "$GEN" bytes text 10000 "$d/ten-k.txt"
  "$PY" "$GEN" bytes binary 70000 "$d/seventy-k.bin"
  ln -s ten-k.txt "$d/symlink"
  ln "$d/ten-k.txt" "$d/hardlink"
  printf 'h\xc3\xa9llo w\xc3\xb6rld\n' >"$d/utf8-名前-ñ-😀.txt"
  printf '#!/bin/sh\necho setuid\n' >"$d/modes/setuid"; chmod 4755 "$d/modes/setuid"
  printf '#!/bin/sh\necho setgid\n' >"$d/modes/setgid"; chmod 2755 "$d/modes/setgid"
  printf 'secret\n' >"$d/modes/private"; chmod 0600 "$d/modes/private"
  printf 'owned by alice\n' >"$d/owners/alice.txt"
  chown 1000:1000 "$d/owners/alice.txt" 2>/dev/null || warn "chown failed (not root?)"
  if [[ $level != v7 ]]; then
    mkdir -p "$d/devs"
    mkfifo "$d/devs/fifo"
    if ! mknod "$d/devs/char" c 1 3 2>/dev/null || ! mknod "$d/devs/block" b 7 0 2>/dev/null; then
      MKNOD_OK=0
      rm -f "$d/devs/char" "$d/devs/block"
    fi
    local ld
    ld="$d/long-ustar/$(printf 'd%.0s' {1..60})"
    mkdir -p "$ld"
    printf 'path > 100 bytes, fits ustar prefix+name\n' >"$ld/$(printf 'f%.0s' {1..90}).txt"
  fi
  if [[ $level == full ]]; then
    local n150; n150=$(printf 'n%.0s' {1..150})
    mkdir -p "$d/long"
    printf 'basename longer than 100 bytes\n' >"$d/long/$n150"
    local deep="$d/long/deep"
    local c
    for c in a b c d; do deep="$deep/$(printf "$c%.0s" {1..70})"; done
    mkdir -p "$deep"
    printf 'path longer than 255 bytes\n' >"$deep/file.txt"
    ln -s "$n150" "$d/long/symlink-long-target"
    ln "$d/long/$n150" "$d/long/zz-hardlink-to-long-name"
    printf 'uid/gid 3000000\n' >"$d/owners/big-id.txt"
    chown 3000000:3000000 "$d/owners/big-id.txt" 2>/dev/null || warn "chown failed (not root?)"
  fi
  find "$d" -type d -exec chmod 0755 {} +
  chmod 1777 "$d/modes/sticky"
  fix_times "$d"
}

log "building source trees"
for level in v7 ustar full; do mk_tree "$W/trees/$level" "$level"; done
[[ $MKNOD_OK == 1 ]] || warn "mknod failed: char/block devices left out"
mapfile -t FULL_TOP < <(toplevel "$W/trees/full")

V="$OUT/valid"

# --------------------------------------------------------------------------
log "GNU tar: one archive per --format"
gtar --format=v7     -cf "$V/gnu-v7.tar"     -C "$W/trees/v7" .
gtar --format=ustar  -cf "$V/gnu-ustar.tar"  -C "$W/trees/ustar" .
gtar --format=oldgnu -cf "$V/gnu-oldgnu.tar" -C "$W/trees/full" .
gtar --format=gnu    -cf "$V/gnu-gnu.tar"    -C "$W/trees/full" "${FULL_TOP[@]}"
gtar --format=posix "$PAXOPT" -cf "$V/gnu-posix.tar" -C "$W/trees/full" "${FULL_TOP[@]}"

# --------------------------------------------------------------------------
log "GNU tar: xattrs"
XD="$W/trees/xattrs"
mkdir -p "$XD/xattrs"
printf 'has user.foo=bar\n' >"$XD/xattrs/foo.txt"
printf 'binary xattr value\n' >"$XD/xattrs/bin.txt"
printf 'no xattrs\n' >"$XD/xattrs/plain.txt"
XATTR_OK=0
if [[ $HAVE_SETFATTR == 1 ]] &&
   setfattr -n user.foo -v bar "$XD/xattrs/foo.txt" 2>/dev/null &&
   setfattr -n user.bin -v 0x00ff01fe "$XD/xattrs/bin.txt" &&
   setfattr -n user.dir -v on-a-directory "$XD/xattrs"; then
  XATTR_OK=1
fi
fix_times "$XD"
if [[ $XATTR_OK == 1 ]]; then
  gtar --format=posix "$PAXOPT" --xattrs --xattrs-include='user.*' \
       -cf "$V/gnu-posix-xattrs.tar" -C "$XD" xattrs
else
  warn "filesystem refuses user xattrs: gnu-posix-xattrs.tar skipped (python-pax-xattrs.tar covers SCHILY.xattr)"
fi

# --------------------------------------------------------------------------
log "GNU tar: incremental dumps (level 0 and 1)"
I="$W/trees/incr"
mkdir -p "$I/a/b" "$I/c"
printf 'one\n' >"$I/a/one.txt"
printf 'two\n' >"$I/a/b/two.txt"
printf 'three\n' >"$I/c/three.txt"
fix_times "$I"
gtar --format=gnu --listed-incremental="$W/snar" -cf "$V/gnu-incremental-level0.tar" -C "$I" .
sleep 1  # file ctimes come from a coarse clock: keep level 1 changes clearly newer
rm "$I/a/one.txt"
printf 'new\n' >"$I/a/new.txt"
printf 'three, changed\n' >"$I/c/three.txt"
gtar --format=gnu --listed-incremental="$W/snar" -cf "$V/gnu-incremental-level1.tar" -C "$I" .
# incremental mode records atime/ctime in the GNU header; pin them
"$PY" "$GEN" normalize-gnu-times "$V/gnu-incremental-level0.tar"
"$PY" "$GEN" normalize-gnu-times "$V/gnu-incremental-level1.tar"

# --------------------------------------------------------------------------
log "GNU tar: duplicate names via tar -r"
D="$W/trees/dup"
mkdir -p "$D"
printf 'first version\n' >"$D/dup.txt"
printf 'other\n' >"$D/other.txt"
fix_times "$D"
gtar --format=gnu -cf "$V/gnu-duplicate-names.tar" -C "$D" dup.txt other.txt
printf 'second, longer version of dup.txt\n' >"$D/dup.txt"
fix_times "$D"
gtar --format=gnu -rf "$V/gnu-duplicate-names.tar" -C "$D" dup.txt

# --------------------------------------------------------------------------
log "GNU tar: exactly 4 MiB file, gzip-compressed"
B="$W/trees/big"
mkdir -p "$B"
"$PY" "$GEN" bytes repeat 4194304 "$B/exact-4mib.bin"
printf 'entry after the 4 MiB file\n' >"$B/zz-after.txt"
fix_times "$B"
gtar --format=gnu -cf - -C "$B" exact-4mib.bin zz-after.txt | gzip -n -9 >"$V/exact-4mib.tar.gz"

# --------------------------------------------------------------------------
if [[ $HAVE_BSDTAR == 1 ]]; then
  # bsdtar reading the file system records the real ctime/atime in pax
  # headers, so it re-encodes deterministic GNU tar archives instead
  # (bsdtar's @archive input); the entries are written by libarchive.
  log "bsdtar: ustar, pax, gnutar"
  setfattr -n user.foo -v bar "$W/trees/full/one-byte" 2>/dev/null || true
  gtar --format=posix "$PAXOPT" --xattrs --xattrs-include='user.*' \
       -cf "$W/full-src.tar" -C "$W/trees/full" "${FULL_TOP[@]}"
  mapfile -t USTAR_TOP < <(toplevel "$W/trees/ustar")
  gtar --format=posix "$PAXOPT" -cf "$W/ustar-src.tar" -C "$W/trees/ustar" "${USTAR_TOP[@]}"
  bsdtar -cf "$V/bsdtar-ustar.tar"  --format ustar  "@$W/ustar-src.tar"
  bsdtar -cf "$V/bsdtar-pax.tar"    --format pax    "@$W/full-src.tar"
  bsdtar -cf "$V/bsdtar-gnutar.tar" --format gnutar "@$W/full-src.tar"
fi

if [[ $HAVE_BUSYBOX == 1 ]]; then
  log "busybox tar"
  (cd "$W/trees/full" && find . -mindepth 1 -printf '%P\0' | LC_ALL=C sort -z) >"$W/bb-list"
  bb_create() {
    cd "$W/trees/full"
    local list; mapfile -d '' -t list <"$W/bb-list"
    busybox tar -cf "$V/busybox.tar" --no-recursion -- "${list[@]}"
  }
  # busybox takes user/group names from /etc/passwd and /etc/group; show it
  # fixed ones through bind mounts in a private mount namespace (when
  # allowed; the real files are not touched).
  printf 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/:/bin/sh\nbiguser:x:3000000:3000000::/:/bin/sh\n' >"$W/passwd"
  printf 'root:x:0:\nstaff:x:1000:\nbiggroup:x:3000000:\n' >"$W/group"
  if unshare --mount true 2>/dev/null; then
    export -f bb_create; export W V
    # shellcheck disable=SC2016  # expanded by the inner bash
    unshare --mount --propagation private bash -c '
      set -euo pipefail
      mount --bind "$W/passwd" /etc/passwd
      mount --bind "$W/group" /etc/group
      bb_create'
  else
    warn "no mount namespace: busybox.tar gets user names from this machine's /etc/passwd"
    (bb_create)
  fi
fi

# --------------------------------------------------------------------------
log "git archive"
G="$W/trees/git"
mkdir -p "$G/src"
printf '# tiny repo\n' >"$G/README.md"
printf 'print("hello")\n' >"$G/src/main.py"
printf '#!/bin/sh\necho run\n' >"$G/run.sh"; chmod 0755 "$G/run.sh"
ln -s src/main.py "$G/main-link.py"
(
  export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$W"
  export GIT_AUTHOR_NAME=Fixture GIT_AUTHOR_EMAIL=fixture@example.invalid
  export GIT_COMMITTER_NAME=Fixture GIT_COMMITTER_EMAIL=fixture@example.invalid
  export GIT_AUTHOR_DATE="@$EPOCH +0000" GIT_COMMITTER_DATE="@$EPOCH +0000"
  cd "$G"
  git init -q -b main .
  git add -A
  git -c commit.gpgsign=false commit -q -m "fixture commit"
  git archive --format=tar HEAD >"$V/git-archive.tar"
)

# --------------------------------------------------------------------------
log "python tarfile fixtures, derived and invalid fixtures"
"$PY" "$GEN" python "$V"
"$PY" "$GEN" derive "$V" "$V/python-ustar.tar"
"$PY" "$GEN" invalid "$OUT/invalid"

# --------------------------------------------------------------------------
log "sparse fixtures"
S="$W/trees/sparse"
mkdir -p "$S"
printf 'regular file before the sparse one\n' >"$S/before.txt"
truncate -s 1M "$S/sparse.bin"
printf 'DATA@4096'   | dd of="$S/sparse.bin" bs=1 seek=4096   conv=notrunc status=none
printf 'DATA@512K'   | dd of="$S/sparse.bin" bs=1 seek=524288 conv=notrunc status=none
printf 'END'         | dd of="$S/sparse.bin" bs=1 seek=$((1048576 - 3)) conv=notrunc status=none
truncate -s 1M "$S/tail-hole.bin"
printf 'data at 0, hole until 1 MiB' | dd of="$S/tail-hole.bin" conv=notrunc status=none
fix_times "$S"
SP="$OUT/sparse"
SPARSE=(--sparse --hole-detection=raw)
gtar --format=oldgnu "${SPARSE[@]}" -cf "$SP/gnu-oldgnu-sparse.tar" -C "$S" before.txt sparse.bin tail-hole.bin
gtar --format=gnu    "${SPARSE[@]}" -cf "$SP/gnu-gnu-sparse.tar"    -C "$S" before.txt sparse.bin tail-hole.bin
for v in 0.0 0.1 1.0; do
  fixed_pid "${GTAR[@]}" --format=posix "$PAXOPT" "${SPARSE[@]}" --sparse-version="$v" \
       -cf "$SP/gnu-posix-sparse-$v.tar" -C "$S" before.txt sparse.bin tail-hole.bin
done
# more than 4 data segments: oldgnu sparse extension headers
S2="$W/trees/sparse-many"
mkdir -p "$S2"
truncate -s 1M "$S2/many-holes.bin"
for i in $(seq 0 15); do
  printf 'segment %02d' "$i" | dd of="$S2/many-holes.bin" bs=1 seek=$((i * 65536 + 1024)) conv=notrunc status=none
done
fix_times "$S2"
gtar --format=oldgnu "${SPARSE[@]}" -cf "$SP/gnu-oldgnu-sparse-extended.tar" -C "$S2" many-holes.bin
if [[ $HAVE_BSDTAR == 1 ]]; then
  # libarchive re-encodes GNU sparse entries as GNU.sparse 1.0 PAX entries
  bsdtar -cf "$SP/bsdtar-pax-sparse.tar" --format pax "@$SP/gnu-posix-sparse-1.0.tar"
fi

# --------------------------------------------------------------------------
log "sample-layer.tar"
L="$W/layer"
mkdir -p "$L"/{etc,root,tmp,usr/bin,usr/lib,usr/share/doc/sample-layer,var/lib/sample,var/log}
ln -s usr/bin "$L/bin"
ln -s usr/lib "$L/lib"
if [[ -f /etc/os-release ]]; then cp -L /etc/os-release "$L/etc/os-release"
else printf 'NAME="Sample"\nID=sample\n' >"$L/etc/os-release"; fi
printf 'sample-layer\n' >"$L/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$L/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$L/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$L/etc/group"
printf 'root:*:18000:0:99999:7:::\n' >"$L/etc/shadow"; chmod 0640 "$L/etc/shadow"
printf 'sample-layer fixture; Python sources are copyright the Python Software Foundation (PSF License).\n' \
  >"$L/usr/share/doc/sample-layer/copyright"
PYLIB=""
for p in /usr/lib/python3.*; do [[ -f $p/json/__init__.py ]] && PYLIB=$p; done
[[ -n $PYLIB ]] || PYLIB=$("$PY" -c 'import json,os;print(os.path.dirname(os.path.dirname(json.__file__)))')
PYVER=$(basename "$PYLIB")
mkdir -p "$L/usr/lib/$PYVER"
(cd "$PYLIB" && find json collections concurrent wsgiref sqlite3 -name '*.py' -print0 2>/dev/null |
   LC_ALL=C sort -z | xargs -0 cp --parents -t "$L/usr/lib/$PYVER")
for f in os.py abc.py textwrap.py string.py shutil.py; do
  [[ -f $PYLIB/$f ]] && cp "$PYLIB/$f" "$L/usr/lib/$PYVER/$f"
done
ln -s "$PYVER" "$L/usr/lib/python3"
printf '#!/bin/sh\nexec python3 -m pydoc "$@"\n' >"$L/usr/bin/pydoc3"
ln "$L/usr/bin/pydoc3" "$L/usr/bin/pydoc"
ln -s "$PYVER" "$L/usr/bin/python3"
printf '#!/bin/sh\necho "hello from the sample layer"\n' >"$L/usr/bin/hello"
chmod 0755 "$L/usr/bin/pydoc3" "$L/usr/bin/hello"
printf 'state\n' >"$L/var/lib/sample/state"
: >"$L/var/log/empty.log"
find "$L" -type d -exec chmod 0755 {} +
find "$L" -type f ! -path "$L/etc/shadow" ! -path "$L/usr/bin/*" -exec chmod 0644 {} +
chmod 1777 "$L/tmp"; chmod 0700 "$L/root"
fix_times "$L"
mapfile -t LAYER_TOP < <(toplevel "$L")
tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner --no-acls --no-selinux \
    --format=posix "$PAXOPT" -cf "$W/sample-layer.tar" -C "$L" "${LAYER_TOP[@]}"

# --------------------------------------------------------------------------
log "README"
"$PY" "$GEN" readme "$OUT"

# --------------------------------------------------------------------------
rm -rf "$HERE/tars"
mv "$OUT" "$HERE/tars"
mv "$W/sample-layer.tar" "$HERE/sample-layer.tar"
log "wrote $HERE/tars and $HERE/sample-layer.tar"

if [[ $CHECK == 1 ]]; then
  log "checking valid and sparse fixtures with GNU tar and python tarfile"
  fail=0
  for f in "$HERE"/tars/valid/* "$HERE"/tars/sparse/* "$HERE/sample-layer.tar"; do
    if tar -tvf "$f" >/dev/null 2>"$W/err"; then
      printf 'gnutar-ok   %s\n' "${f#"$HERE"/}"
    else
      printf 'gnutar-FAIL %s: %s\n' "${f#"$HERE"/}" "$(tr '\n' ' ' <"$W/err")"
      fail=1
    fi
  done
  "$PY" "$GEN" check-valid "$HERE"/tars/valid/* "$HERE"/tars/sparse/* "$HERE/sample-layer.tar" || fail=1
  log "sizes"
  du -b "$HERE"/tars/*/* "$HERE/sample-layer.tar" | sort -n | awk '{printf "%9d %s\n", $1, $2}' | sed "s|$HERE/||"
  du -sb "$HERE/tars" | awk '{print "total tars/: " $1 " bytes"}'
  [[ $fail == 0 ]] || { echo "some valid fixtures failed to read" >&2; exit 1; }
fi
