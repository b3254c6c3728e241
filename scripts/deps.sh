#!/usr/bin/env bash
# The system tools the tests run, installed when missing: nginx (the
# remote-blob tests serve blobs with it), openssl (their HTTPS
# certificates), skopeo (convert-image's tests check their output with
# it), docker-registry (CNCF distribution: the registry client's tests
# start it) and apache2-utils (htpasswd, for its Basic-auth instance).
# Installs with apt-get, which needs root; does nothing, and needs
# nothing, when all are there. .ci/run runs it before the tests;
# scripts/test.sh runs it too, so one command sets up a fresh machine.
# Exits non-zero when a tool is still missing.
set -euo pipefail

missing=""
if [ -z "${ESTARGZ_NGINX:-}" ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  missing=" nginx"
fi
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v skopeo >/dev/null 2>&1 || missing="$missing skopeo"
if [ -z "${ESTARGZ_DOCKER_REGISTRY:-}" ] && ! command -v docker-registry >/dev/null 2>&1; then
  missing="$missing docker-registry"
fi
command -v htpasswd >/dev/null 2>&1 || missing="$missing apache2-utils"
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
