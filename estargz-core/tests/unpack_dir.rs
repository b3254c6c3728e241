//! Unpacking into a directory: what a tar holds lands inside, exactly; what
//! a hostile tar tries never leaves the directory.

mod common;

use common::tar_writer::*;
use estargz_core::unpack::{unpack_to_dir, UnpackOptions};
use estargz_core::{convert, ConvertOptions, Error};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A blob of `entries`, hostile ones included: readers refuse some of these
/// TOCs, but other writers make such blobs, so the unpacker must be safe on
/// them.
fn blob_of(entries: &[TestEntry]) -> Vec<u8> {
    let opts = ConvertOptions {
        chunk_size: 4,
        skip_open_check: true,
        ..ConvertOptions::default()
    };
    let mut blob = Vec::new();
    convert(&build_tar(Format::Pax, entries, 0)[..], &mut blob, &opts).unwrap();
    blob
}

/// Everything under `dir`, as sorted relative paths.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A sandbox: `outside/` sits next to the target so escapes would show.
struct Sandbox {
    _tmp: tempfile::TempDir,
    target: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), "untouched").unwrap();
    Sandbox {
        target,
        outside,
        _tmp: tmp,
    }
}

impl Sandbox {
    fn assert_outside_untouched(&self) {
        assert_eq!(tree(&self.outside), vec!["keep"]);
        assert_eq!(
            fs::read_to_string(self.outside.join("keep")).unwrap(),
            "untouched"
        );
        let parent = self.target.parent().unwrap();
        let mut top: Vec<String> = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert!(
            top.iter().all(|n| n == "target" || n == "outside"),
            "{top:?}"
        );
    }
}

#[test]
fn unpacks_files_dirs_links_modes_and_times() {
    let s = sandbox();
    let entries = [
        dir("etc").mode(0o750).mtime(1_600_000_000, 0),
        file("etc/hosts", "127.0.0.1 localhost\n")
            .mode(0o640)
            .mtime(1_500_000_000, 0),
        file("etc/big", vec![7u8; 10_000]).mode(0o600),
        symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        hardlink("etc/hosts.bak", "etc/hosts"),
        file("bin/tool", "#!/bin/sh\n").mode(0o4755),
        file(&format!("deep/{}", "n".repeat(200)), "long"),
        fifo("run/fifo"),
    ];
    let report =
        unpack_to_dir(&blob_of(&entries)[..], &s.target, &UnpackOptions::default()).unwrap();
    let t = &s.target;
    assert_eq!(
        fs::read_to_string(t.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    assert_eq!(fs::read(t.join("etc/big")).unwrap(), vec![7u8; 10_000]);
    assert_eq!(
        fs::read_link(t.join("etc/localtime"))
            .unwrap()
            .to_str()
            .unwrap(),
        "/usr/share/zoneinfo/UTC"
    );
    let hosts = fs::metadata(t.join("etc/hosts")).unwrap();
    assert_eq!(
        hosts.ino(),
        fs::metadata(t.join("etc/hosts.bak")).unwrap().ino()
    );
    assert_eq!(hosts.permissions().mode() & 0o7777, 0o640);
    assert_eq!(hosts.mtime(), 1_500_000_000);
    let etc = fs::metadata(t.join("etc")).unwrap();
    assert_eq!(
        (etc.permissions().mode() & 0o7777, etc.mtime()),
        (0o750, 1_600_000_000)
    );
    let tool = fs::metadata(t.join("bin/tool"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    let root = rustix::process::geteuid().is_root();
    assert_eq!(tool, if root { 0o4755 } else { 0o755 });
    assert_eq!(
        fs::read_to_string(t.join("deep").join("n".repeat(200))).unwrap(),
        "long"
    );
    assert!(fs::symlink_metadata(t.join("run/fifo")).is_ok() || !report.warnings.is_empty());
    assert_eq!(report.bytes, 20 + 10_000 + 10 + 4);
    s.assert_outside_untouched();
}

#[test]
fn hostile_names_and_links_stay_inside() {
    // Each case: entries, and whether the unpack must stop with an Unsafe error.
    let cases: Vec<(&str, Vec<TestEntry>, bool)> = vec![
        (
            "dotdot",
            vec![file("../escape.txt", "x"), file("a/../../../escape2", "x")],
            false,
        ),
        ("absolute", vec![file("/abs.txt", "x")], false),
        (
            "symlink to / then through it",
            vec![symlink("link", "/"), file("link/tmp/evil", "x")],
            true,
        ),
        (
            "symlink outside then through it",
            vec![symlink("link", "../outside"), file("link/evil", "x")],
            true,
        ),
        (
            "symlink chain",
            vec![symlink("a", "b"), symlink("b", "../.."), file("a/x", "x")],
            true,
        ),
        (
            "hardlink to /etc/passwd",
            vec![hardlink("h", "/etc/passwd")],
            true,
        ),
        (
            "hardlink climbing out",
            vec![hardlink("h", "../outside/keep")],
            true,
        ),
        (
            "hardlink through a symlink",
            vec![symlink("l", "../outside"), hardlink("h", "l/keep")],
            true,
        ),
        (
            "directory replacing a symlink",
            vec![symlink("d", "../outside"), dir("d"), file("d/f", "inside")],
            false,
        ),
        (
            "file replacing a symlink",
            vec![symlink("f", "../outside/keep"), file("f", "new")],
            false,
        ),
    ];
    for (what, entries, must_fail) in cases {
        let s = sandbox();
        let result = unpack_to_dir(&blob_of(&entries)[..], &s.target, &UnpackOptions::default());
        match (&result, must_fail) {
            (Err(Error::Unsafe { entry, .. }), true) => assert!(!entry.is_empty(), "{what}"),
            (Ok(_), false) => {}
            other => panic!("{what}: {other:?}"),
        }
        s.assert_outside_untouched();
        if what == "dotdot" {
            assert_eq!(tree(&s.target), vec!["escape.txt", "escape2"]);
        }
        if what == "directory replacing a symlink" {
            assert!(fs::symlink_metadata(s.target.join("d")).unwrap().is_dir());
            assert_eq!(fs::read_to_string(s.target.join("d/f")).unwrap(), "inside");
        }
        if what == "file replacing a symlink" {
            assert!(fs::symlink_metadata(s.target.join("f")).unwrap().is_file());
        }
    }
}

#[test]
fn whiteouts_are_files_unless_applied() {
    let entries = [
        file("a/old", "x"),
        file("a/.wh.old", ""),
        file("b/x", "x"),
        file("b/.wh..wh..opq", ""),
        file("b/y", "y"),
    ];
    let blob = blob_of(&entries);
    let s = sandbox();
    unpack_to_dir(&blob[..], &s.target, &UnpackOptions::default()).unwrap();
    assert!(s.target.join("a/.wh.old").exists() && s.target.join("a/old").exists());
    let s = sandbox();
    let opts = UnpackOptions {
        apply_whiteouts: true,
        ..UnpackOptions::default()
    };
    unpack_to_dir(&blob[..], &s.target, &opts).unwrap();
    assert_eq!(tree(&s.target), vec!["a", "b", "b/y"]);
}

#[test]
fn devices_are_created_when_permitted() {
    let s = sandbox();
    let blob = blob_of(&[chardev("dev/null", 1, 3), blockdev("dev/loop9", 7, 9)]);
    let report = unpack_to_dir(&blob[..], &s.target, &UnpackOptions::default()).unwrap();
    if rustix::process::geteuid().is_root() && report.warnings.is_empty() {
        let m = fs::symlink_metadata(s.target.join("dev/null")).unwrap();
        assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
    } else {
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    }
}

#[test]
fn unsafe_entries_can_be_skipped_with_warnings_and_totals_are_capped() {
    let s = sandbox();
    let entries = [
        symlink("link", "/"),
        file("link/tmp/evil", "x"),
        file("ok.txt", "fine"),
    ];
    let opts = UnpackOptions {
        skip_unsafe: true,
        ..UnpackOptions::default()
    };
    let report = unpack_to_dir(&blob_of(&entries)[..], &s.target, &opts).unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("link/tmp/evil"));
    assert_eq!(fs::read_to_string(s.target.join("ok.txt")).unwrap(), "fine");
    s.assert_outside_untouched();

    let s = sandbox();
    let opts = UnpackOptions {
        max_total_bytes: 5,
        ..UnpackOptions::default()
    };
    let err = unpack_to_dir(
        &blob_of(&[file("a", "1234"), file("b", "56")])[..],
        &s.target,
        &opts,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                value: 6,
                limit: 5,
                ..
            }
        ),
        "{err}"
    );
}
