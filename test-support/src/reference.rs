//! Where the reference driver is, for every crate's tests that run it.

/// The reference driver: `$ESTARGZ_REF`, `target/tools/estargz-ref`, or
/// `estargz-ref` on PATH (scripts/test.sh builds it when none is there).
pub fn reference_driver() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os("ESTARGZ_REF") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/estargz-ref");
    if local.exists() {
        return local;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("estargz-ref"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!("estargz-ref not found: run ../shared/tools/estargz-ref/build.sh target/tools (scripts/test.sh does)")
    })
}
