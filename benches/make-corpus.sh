#!/usr/bin/env bash
# Builds the comparison corpus from package registries (cached in
# target/bench-corpus): a Debian minbase root filesystem (debootstrap), a
# Python site-packages tree (pip install --target) and a node_modules tree
# (npm). Each becomes one uncompressed layer tar. Needs root for apt and
# debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-corpus
mkdir -p "$out"
export DEBIAN_FRONTEND=noninteractive

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -q --no-install-recommends "$2" >/dev/null; }; }
need debootstrap debootstrap
need pigz pigz

layer() { # layer NAME DIR: a deterministic tar of DIR
  tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@1700000000 --format=posix \
      --pax-option=delete=atime,delete=ctime -C "$2" -cf "$out/$1.tar.partial" . && mv "$out/$1.tar.partial" "$out/$1.tar"
}

if [ ! -f "$out/debian-minbase.tar" ]; then
  work=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$out/debootstrap.log" 2>&1
  layer debian-minbase "$work/rootfs"
  rm -rf "$work"
fi
if [ ! -f "$out/python-site-packages.tar" ]; then
  work=$(mktemp -d)
  pip install --quiet --no-cache-dir --target "$work/site-packages" numpy requests flask jinja2 pyyaml cryptography pip setuptools
  layer python-site-packages "$work/site-packages"
  rm -rf "$work"
fi
if [ ! -f "$out/node-modules.tar" ]; then
  work=$(mktemp -d)
  (cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund typescript react react-dom express lodash webpack >/dev/null)
  layer node-modules "$work"
  rm -rf "$work"
fi
ls -l "$out"/*.tar
