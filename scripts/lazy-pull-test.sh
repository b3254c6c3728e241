#!/usr/bin/env bash
# The lazy-pull test, run by hand (not in CI): the stargz snapshotter
# mounts images that convert-image converted registry to registry (gzip
# eStargz and zstd:chunked) and their trees equal the source's. It needs
# stargz-grpc, a Go build on Debian's stargz-snapshotter library (about
# 35 s of CPU once Go and the library's packages are installed, which
# build.sh does with apt): too slow for the CI budget, so the test is
# #[ignore]d and this script builds what is missing, then runs it.
# Root (FUSE, mounts, containerd). Extra arguments go to `cargo test`.
#   STARGZ_TOOLS=DIR   where build.sh lives (default ../shared/tools/stargz-snapshotter)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/lazy-pull-test.sh: needs root" >&2; exit 1; }
scripts/deps.sh
tools="${STARGZ_TOOLS:-../shared/tools/stargz-snapshotter}"
if [ -z "${ESTARGZ_STARGZ_GRPC:-}" ] && ! command -v stargz-grpc >/dev/null 2>&1 &&
  [ ! -x /usr/local/bin/stargz-grpc ]; then
  [ -x "$tools/build.sh" ] || { echo "scripts/lazy-pull-test.sh: no stargz-grpc and no $tools/build.sh" >&2; exit 1; }
  "$tools/build.sh"
fi
command -v ctr-remote >/dev/null 2>&1 || {
  echo "scripts/lazy-pull-test.sh: ctr-remote not found (apt-get install stargz-snapshotter)" >&2
  exit 1
}
CI=1 cargo test -p estargz-cli --release --test all "$@" -- runtime_pulls --include-ignored
