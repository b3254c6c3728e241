# shellcheck shell=bash
# Sourced (bash), from the repository root: sets and exports ESTARGZ_REF, the
# reference driver that the interop tests, benches/compare.sh and
# scripts/real-tars.sh run. An ESTARGZ_REF already set wins; then one built
# before into target/tools/; then estargz-ref on PATH; else it is built from
# ../shared/tools/estargz-ref into target/tools/ (its progress on stderr).
if [ -z "${ESTARGZ_REF:-}" ]; then
  if [ -x target/tools/estargz-ref ]; then
    ESTARGZ_REF="$PWD/target/tools/estargz-ref"
  elif command -v estargz-ref >/dev/null 2>&1; then
    ESTARGZ_REF="$(command -v estargz-ref)"
  else
    mkdir -p target/tools
    ../shared/tools/estargz-ref/build.sh "$PWD/target/tools" >&2
    ESTARGZ_REF="$PWD/target/tools/estargz-ref"
  fi
fi
export ESTARGZ_REF
