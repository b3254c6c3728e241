#!/usr/bin/env bash
# Builds the comparison corpus from package registries (cached in
# target/bench-corpus): a Debian minbase root filesystem (debootstrap), a
# Python site-packages tree (pip install --target) and a node_modules tree
# (npm). Each becomes one uncompressed layer tar. Needs root for apt and
# debootstrap.
#
# `make-corpus.sh NAME...` builds only the named layers of the default corpus
# (debian-minbase, python-site-packages, node-modules).
#
# `make-corpus.sh --held-out` builds instead, in target/bench-corpus-heldout,
# four layers of other shapes that no tuning looked at (benches/RESULTS-heldout.md
# is `CORPUS=target/bench-corpus-heldout benches/compare.sh` on them): the files
# `apt-get install build-essential` adds on Debian bookworm (binaries, static
# libraries, headers), a site-packages of pandas and botocore (native
# extensions, thousands of JSON service models), a node_modules of next,
# react and eslint (native SWC binaries beside many small scripts), and this
# workspace's `cargo vendor` tree (Rust sources). They come from the
# registries' current versions, so their bytes drift over time.
set -euo pipefail
cd "$(dirname "$0")/.."
held_out=0
[ "${1:-}" = --held-out ] && held_out=1
# want NAME: NAME was asked for (all when no names were given).
want() { [ ${#names[@]} -eq 0 ] && return 0; local n; for n in "${names[@]}"; do [ "$n" = "$1" ] && return 0; done; return 1; }
names=()
[ "$held_out" = 1 ] || names=("$@")
out=target/bench-corpus
[ "$held_out" = 0 ] || out=target/bench-corpus-heldout
mkdir -p "$out"
export DEBIAN_FRONTEND=noninteractive

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -q --no-install-recommends "$2" >/dev/null; }; }
need debootstrap debootstrap
need pigz pigz

layer() { # layer NAME DIR: a deterministic tar of DIR
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@1700000000 --format=posix \
      --pax-option=delete=atime,delete=ctime -C "$2" -cf "$out/$1.tar.partial" . && mv "$out/$1.tar.partial" "$out/$1.tar"
}

if [ "$held_out" = 1 ]; then
  if [ ! -f "$out/debian-build-essential.tar" ]; then
    work=$(mktemp -d)
    # The packages `apt-get install build-essential` adds to a minbase system
    # (its dependency closure without the libraries minbase already ships), as of bookworm.
    keep=(binutils binutils-common binutils-x86-64-linux-gnu build-essential bzip2 cpp cpp-12
      dpkg-dev g++ g++-12 gcc gcc-12 gcc-12-base install-info libasan8 libatomic1 libbinutils
      libc-dev-bin libc6-dev libcc1-0 libcrypt-dev libctf-nobfd0 libctf0 libgcc-12-dev
      libgdbm-compat4 libgomp1 libgprofng0 libisl23 libitm1 libjansson4 liblsan0 libmpc3 libmpfr6
      libnsl-dev libperl5.36 libquadmath0 libstdc++-12-dev libtirpc-dev libtsan2 libubsan1
      linux-libc-dev make patch perl perl-modules-5.36 rpcsvc-proto xz-utils)
    apt-get update -qq
    (cd "$work" && apt-get download "${keep[@]}" >/dev/null)
    mkdir "$work/root"
    for d in "$work"/*.deb; do dpkg-deb -x "$d" "$work/root"; done
    layer debian-build-essential "$work/root"
    rm -rf "$work"
  fi
  if [ ! -f "$out/python-pandas-botocore.tar" ]; then
    work=$(mktemp -d)
    pip install --quiet --no-cache-dir --target "$work/site-packages" pandas botocore
    layer python-pandas-botocore "$work/site-packages"
    rm -rf "$work"
  fi
  if [ ! -f "$out/node-next-eslint.tar" ]; then
    work=$(mktemp -d)
    (cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund next react react-dom eslint >/dev/null)
    layer node-next-eslint "$work"
    rm -rf "$work"
  fi
  if [ ! -f "$out/rust-vendor.tar" ]; then
    work=$(mktemp -d)
    cargo vendor --versioned-dirs "$work/vendor" >/dev/null
    layer rust-vendor "$work"
    rm -rf "$work"
  fi
  ls -l "$out"/*.tar
  exit 0
fi
if want debian-minbase && [ ! -f "$out/debian-minbase.tar" ]; then
  work=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$out/debootstrap.log" 2>&1
  layer debian-minbase "$work/rootfs"
  rm -rf "$work"
fi
if want python-site-packages && [ ! -f "$out/python-site-packages.tar" ]; then
  work=$(mktemp -d)
  pip install --quiet --no-cache-dir --target "$work/site-packages" numpy requests flask jinja2 pyyaml cryptography pip setuptools
  layer python-site-packages "$work/site-packages"
  rm -rf "$work"
fi
if want node-modules && [ ! -f "$out/node-modules.tar" ]; then
  work=$(mktemp -d)
  (cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund typescript react react-dom express lodash webpack >/dev/null)
  layer node-modules "$work"
  rm -rf "$work"
fi
ls -l "$out"/*.tar
