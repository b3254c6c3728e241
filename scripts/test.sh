#!/usr/bin/env bash
# The whole test suite, from a fresh clone: builds the reference driver that
# the interop tests run (once, into target/tools/), then every test.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${ESTARGZ_REF:-}" ]; then
  if [ -x target/tools/estargz-ref ]; then
    export ESTARGZ_REF="$PWD/target/tools/estargz-ref"
  elif command -v estargz-ref >/dev/null 2>&1; then
    ESTARGZ_REF="$(command -v estargz-ref)"
    export ESTARGZ_REF
  else
    mkdir -p target/tools
    ../shared/tools/estargz-ref/build.sh "$PWD/target/tools"
    export ESTARGZ_REF="$PWD/target/tools/estargz-ref"
  fi
fi

# The remote-blob tests (estargz-cli/tests/cli_remote.rs) serve blobs with
# a real nginx, over HTTPS with certificates made by openssl; under CI they
# fail rather than skip without nginx.
missing=""
if [ -z "${ESTARGZ_NGINX:-}" ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  missing=" nginx"
fi
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # shellcheck disable=SC2086 # one word per package
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } >/dev/null \
      || echo "scripts/test.sh: installing$missing failed; the remote-blob tests need it" >&2
  else
    echo "scripts/test.sh: not found:$missing (not root, or no apt-get): the remote-blob tests will skip" >&2
  fi
fi

cargo test --workspace --release "$@"
