#!/usr/bin/env bash
# The system tools the tests run, installed when missing: nginx (the
# remote-blob tests serve blobs with it), openssl (their HTTPS
# certificates) and skopeo (convert-image's tests check their output with
# it). Installs with apt-get, which needs root; does nothing, and needs
# nothing, when all three are there. .ci/run runs it before the tests;
# scripts/test.sh runs it too, so one command sets up a fresh machine.
# Exits non-zero when a tool is still missing.
set -euo pipefail

missing=""
if [ -z "${ESTARGZ_NGINX:-}" ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  missing=" nginx"
fi
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v skopeo >/dev/null 2>&1 || missing="$missing skopeo"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/deps.sh: not found:$missing (not root, or no apt-get): install it by hand" >&2
  exit 1
fi
# shellcheck disable=SC2086 # one word per package
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >/dev/null; then
  echo "scripts/deps.sh: installing$missing failed" >&2
  exit 1
fi
