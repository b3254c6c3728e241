//! unpack_tar to a sink, and unpack_to_dir into a fresh temporary directory
//! (created in a fresh sandbox directory): asserts that nothing appeared next
//! to it, neither in the sandbox nor in the temporary directory's parent
//! (`$TMPDIR`, which scripts/fuzz.sh makes private to this run).
//! See estargz_fuzz::for_each_blob for how the input becomes blobs.
#![no_main]
use estargz_core::{unpack_tar, unpack_to_dir, UnpackOptions};
use estargz_fuzz::for_each_blob;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every path under `dir` with its file type, symlinks not followed, `skip`
/// listed but not descended into.
fn listing(dir: &Path, skip: &Path, out: &mut BTreeSet<(PathBuf, String)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let ft = fs::symlink_metadata(&p).map(|m| format!("{:?}", m.file_type()));
        out.insert((p.clone(), ft.unwrap_or_else(|e| e.to_string())));
        if p != skip && e.file_type().is_ok_and(|t| t.is_dir()) {
            listing(&p, skip, out);
        }
    }
}

fn names(dir: &Path) -> BTreeSet<OsString> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// Makes every directory under `dir` traversable and writable again so
/// that the temporary directory can be removed (entries may set mode 000).
fn open_up(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            open_up(&e.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Options from the low bits of the length, so that every input runs with
    // one combination and a mutation that changes the length tries another.
    let opts = {
        let mut o = UnpackOptions::default();
        o.xattrs = data.len() & 1 == 1;
        o.apply_whiteouts = data.len() & 2 == 2;
        o.skip_unsafe = data.len() & 4 == 4;
        o.max_total_bytes = if data.len() & 8 == 8 { 1000 } else { 1 << 40 };
        o
    };
    for_each_blob(data, |blob| {
        let _ = unpack_tar(blob, io::sink());

        let parent = std::env::temp_dir();
        let parent_before = names(&parent);
        let sandbox = tempfile::tempdir().expect("sandbox tempdir");
        let dir = tempfile::tempdir_in(sandbox.path()).expect("target tempdir");
        let mut before = BTreeSet::new();
        listing(sandbox.path(), dir.path(), &mut before);

        let _ = unpack_to_dir(blob, dir.path(), &opts);

        let mut after = BTreeSet::new();
        listing(sandbox.path(), dir.path(), &mut after);
        assert_eq!(
            before, after,
            "unpack_to_dir changed the sandbox outside its directory"
        );
        let mut parent_after = names(&parent);
        parent_after.remove(sandbox.path().file_name().unwrap());
        let created: Vec<_> = parent_after.difference(&parent_before).collect();
        assert!(
            created.is_empty(),
            "unpack_to_dir created {created:?} in {}",
            parent.display()
        );
        open_up(sandbox.path());
    });
});
