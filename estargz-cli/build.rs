//! Names the codecs in `--version`: their versions come from the workspace's
//! Cargo.lock, so the text cannot drift from what is really linked.

use std::path::Path;

fn main() {
    let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let version = |name: &str| locked_version(&lock, name).unwrap_or_else(|| "?".into());
    println!(
        "cargo:rustc-env=ESTARGZ_CODECS=deflate: libdeflate (libdeflate-sys {}); inflate: zlib-rs {} (flate2 {})",
        version("libdeflate-sys"),
        version("zlib-rs"),
        version("flate2"),
    );
}

/// The version of the package `name` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let next = lines.next()?.trim();
            return next
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}
