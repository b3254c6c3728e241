# shellcheck shell=bash
# Sourced by the comparison scripts.

# estargz_binary DIR: copies the estargz binary to measure into DIR and
# prints its path there: $ESTARGZ when set, else a release build of this
# checkout. A copy, because the shared target/ may be rebuilt meanwhile.
estargz_binary() {
  mkdir -p "$1"
  if [ -n "${ESTARGZ:-}" ]; then
    cp "$ESTARGZ" "$1/estargz"
  else
    printf '%s\n' "== build" >&2
    nice cargo build --release -q -p estargz-cli >&2
    cp target/release/estargz "$1/estargz"
  fi
  printf '%s\n' "$1/estargz"
}
