//! Regression tests for what the fuzz targets (`fuzz/`, `scripts/fuzz.sh`)
//! found. Each feeds the exact input the target gave the library, kept in
//! `testdata/fuzz/` (`NAME.esgz`: the blob passed to the API; `NAME.input`:
//! the fuzz target's input it was derived from, see `fuzz/src/lib.rs`), to
//! the same API, and asserts it returns without panicking and, for unpack,
//! without touching anything outside its directory.

use estargz_core::{unpack_tar, unpack_to_dir, UnpackOptions};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_input(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/fuzz")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every path under `dir`, symlinks not followed, `skip` not descended into.
fn listing(dir: &Path, skip: &Path, out: &mut BTreeSet<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.insert(p.clone());
        if p != skip && e.file_type().unwrap().is_dir() {
            listing(&p, skip, out);
        }
    }
}

/// Unpacks `blob` into `SANDBOX/out`, next to a file and a directory of the
/// caller's, and asserts that unpack returned (any error is fine) and that
/// the sandbox outside `out`, and `out` itself, are as they were.
fn unpack_touches_nothing_outside(blob: &[u8], opts: &UnpackOptions) {
    let sandbox = tempfile::tempdir().unwrap();
    let dir = sandbox.path().join("out");
    fs::create_dir(&dir).unwrap();
    fs::write(sandbox.path().join("sibling.txt"), b"keep me").unwrap();
    fs::create_dir(sandbox.path().join("sibling-dir")).unwrap();
    fs::write(sandbox.path().join("sibling-dir/file"), b"keep me too").unwrap();
    let mut before = BTreeSet::new();
    listing(sandbox.path(), &dir, &mut before);

    let result = unpack_to_dir(blob, &dir, opts);

    let mut after = BTreeSet::new();
    listing(sandbox.path(), &dir, &mut after);
    assert_eq!(
        fs::read(sandbox.path().join("sibling.txt")).ok().as_deref(),
        Some(&b"keep me"[..]),
        "unpack_to_dir removed a file next to its directory (it returned {result:?})"
    );
    assert!(
        dir.is_dir(),
        "unpack_to_dir removed its own directory (it returned {result:?})"
    );
    assert_eq!(
        before, after,
        "unpack_to_dir changed what is next to its directory (it returned {result:?})"
    );
}

fn whiteouts() -> UnpackOptions {
    {
        let mut o = UnpackOptions::default();
        o.apply_whiteouts = true;
        o
    }
}

/// Fuzz target `unpack`: a top-level whiteout named `.wh...` (hiding `..`)
/// made `unpack_to_dir` with `apply_whiteouts` call `remove_dir_all` on
/// `DIR/..`: everything in the unpack directory's parent (the directory and
/// all its siblings) was deleted, and unpack returned `Ok`.
#[test]
fn whiteout_of_dotdot_removes_nothing_outside() {
    let blob = fuzz_input("unpack-whiteout-dotdotdot.esgz");
    let _ = unpack_tar(&blob[..], std::io::sink());
    unpack_touches_nothing_outside(&blob, &whiteouts());
}

/// Fuzz target `unpack`: a top-level whiteout named `.wh.` (hiding the empty
/// name) made `unpack_to_dir` with `apply_whiteouts` remove the unpack
/// directory itself (`DIR/` joined with `""`).
#[test]
fn whiteout_of_empty_name_keeps_the_directory() {
    let blob = fuzz_input("unpack-whiteout-dot.esgz");
    let _ = unpack_tar(&blob[..], std::io::sink());
    unpack_touches_nothing_outside(&blob, &whiteouts());
}

/// The same inputs without `apply_whiteouts` unpack as ordinary files.
#[test]
fn whiteout_inputs_unpack_as_files_without_apply_whiteouts() {
    for name in ["unpack-whiteout-dotdotdot.esgz", "unpack-whiteout-dot.esgz"] {
        let blob = fuzz_input(name);
        unpack_touches_nothing_outside(&blob, &UnpackOptions::default());
    }
}
