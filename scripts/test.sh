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

# convert-image's tests check their output with skopeo (under CI they fail
# without it rather than skip).
if ! command -v skopeo >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo >/dev/null
fi

cargo test --workspace --release "$@"
