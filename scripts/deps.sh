#!/usr/bin/env bash
# The system tools the tests run, installed when missing: nginx (the
# remote-blob tests serve blobs with it), openssl (their HTTPS
# certificates), skopeo (convert-image's tests check their output with
# it), docker-registry (CNCF distribution: the registry client's tests
# start it), apache2-utils (htpasswd, for its Basic-auth instance), and
# the runtimes that pull convert-image's output in the estargz-cli tests
# (runtime_pulls): containerd (its `ctr` too) and podman (without its
# recommends: only conmon and a few libraries come with it).
# Installs with apt-get, which needs root; does nothing, and needs
# nothing, when all are there. The packages' own services are kept from
# starting (docker-registry's would take port 5000). .ci/run runs it before the tests;
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
if [ -z "${ESTARGZ_CONTAINERD:-}" ] && ! command -v containerd >/dev/null 2>&1; then
  missing="$missing containerd"
fi
command -v podman >/dev/null 2>&1 || missing="$missing podman"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/deps.sh: not found:$missing (not root, or no apt-get): install it by hand" >&2
  exit 1
fi
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
fi
# shellcheck disable=SC2086 # one word per package
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >/dev/null; then
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  echo "scripts/deps.sh: installing$missing failed" >&2
  exit 1
fi
[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
exit 0
