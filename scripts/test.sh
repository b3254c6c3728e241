#!/usr/bin/env bash
# The whole test suite, from a fresh clone: builds the reference driver that
# the interop tests run (once, into target/tools/), then every test.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/ref-driver.sh
. scripts/ref-driver.sh

# Tests that run real peers (nginx, openssl, skopeo, docker-registry) fail rather than skip
# under CI without them: scripts/deps.sh installs what is missing (as
# root, with apt) and does nothing when all are there.
scripts/deps.sh || echo "scripts/test.sh: the tests that need the missing tools will skip (and fail under CI)" >&2

cargo test --workspace --release "$@"
