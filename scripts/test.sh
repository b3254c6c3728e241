#!/usr/bin/env bash
# The whole test suite, from a fresh clone: builds the reference driver that
# the interop tests run (once, into target/tools/), then every test.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/ref-driver.sh
. scripts/ref-driver.sh

# Tests that run real peers: the remote-blob tests
# (estargz-cli/tests/cli_remote.rs) serve blobs with nginx, over HTTPS with
# certificates made by openssl; convert-image's tests check their output
# with skopeo; the registry client's tests (estargz-registry/tests) start
# Debian's docker-registry (CNCF distribution), with htpasswd files made by
# apache2-utils. Under CI they fail rather than skip without them.
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
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # shellcheck disable=SC2086 # one word per package
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >/dev/null \
      || echo "scripts/test.sh: installing$missing failed; the tests that need it fail under CI" >&2
  else
    echo "scripts/test.sh: not found:$missing (not root, or no apt-get): the tests that need it will skip" >&2
  fi
fi

cargo test --workspace --release "$@"
