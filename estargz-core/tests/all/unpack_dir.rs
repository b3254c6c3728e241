//! Unpacking into a directory: what a tar holds lands inside, exactly; what
//! a hostile tar tries never leaves the directory.

use crate::common;

use common::tar_writer::*;
use estargz_core::{
    unpack_to_dir, unpack_to_dir_with_progress, Converter, Error, UnpackOptions, UnpackProgress,
};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A blob of `entries`, hostile ones included: readers refuse some of these
/// TOCs, but other writers make such blobs, so the unpacker must be safe on
/// them.
fn blob_of(entries: &[TestEntry]) -> Vec<u8> {
    let opts = Converter::builder()
        .chunk_size(4)
        .skip_open_check(true)
        .build()
        .unwrap();
    let mut blob = Vec::new();
    opts.convert(&build_tar(Format::Pax, entries, 0)[..], &mut blob)
        .unwrap();
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
        symlink("etc/localtime", "/usr/share/zoneinfo/UTC").mtime(1_400_000_000, 0),
        hardlink("etc/hosts.bak", "etc/hosts"),
        file("bin/tool", "#!/bin/sh\n").mode(0o4755),
        file(&format!("deep/{}", "n".repeat(200)), "long").mtime(1_450_000_000, 123_456_789),
        fifo("run/fifo").mtime(1_300_000_000, 0),
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
    // Symlinks and FIFOs get their own times too, and PAX nanoseconds land.
    let times = |p: &str| {
        let m = fs::symlink_metadata(t.join(p)).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    assert_eq!(times("etc/localtime"), (1_400_000_000, 0));
    if fs::symlink_metadata(t.join("run/fifo")).is_ok() {
        assert_eq!(times("run/fifo"), (1_300_000_000, 0));
    }
    assert_eq!(
        times(&format!("deep/{}", "n".repeat(200))),
        (1_450_000_000, 123_456_789)
    );
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
    let opts = {
        let mut o = UnpackOptions::default();
        o.apply_whiteouts = true;
        o
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
    let opts = {
        let mut o = UnpackOptions::default();
        o.skip_unsafe = true;
        o
    };
    let report = unpack_to_dir(&blob_of(&entries)[..], &s.target, &opts).unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("link/tmp/evil"));
    assert_eq!(fs::read_to_string(s.target.join("ok.txt")).unwrap(), "fine");
    s.assert_outside_untouched();

    let s = sandbox();
    let opts = {
        let mut o = UnpackOptions::default();
        o.max_total_bytes = 5;
        o
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

/// Opens `rel` under `root` one component at a time, as a path longer than
/// `PATH_MAX` cannot be opened whole.
fn open_deep(root: &Path, rel: &str) -> std::os::fd::OwnedFd {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let mut fd = openat(CWD, root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    for comp in rel.split('/') {
        fd = openat(&fd, comp, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty()).unwrap();
    }
    fd
}

#[test]
fn paths_longer_than_path_max_unpack_and_keep_their_modes_and_times() {
    // 1500 levels of `abcd/`: 7500 bytes, past PATH_MAX (4096), where a
    // check by full path fails with ENAMETOOLONG.
    const DEPTH: usize = 1500;
    let level = |d: usize| vec!["abcd"; d].join("/");
    let mut entries: Vec<TestEntry> = (1..=DEPTH)
        .map(|d| {
            dir(&level(d))
                .mode(0o750)
                .mtime(1_000_000_000 + d as i64, 0)
        })
        .collect();
    let deep = format!("{}/f", level(DEPTH));
    entries.push(file(&deep, "at the bottom").mode(0o640));
    entries.push(hardlink(&format!("{}/h", level(DEPTH - 1)), &deep));
    entries.push(symlink(&format!("{}/s", level(DEPTH)), "f"));
    entries.push(file("top", "back at the top"));
    let s = sandbox();
    let report =
        unpack_to_dir(&blob_of(&entries)[..], &s.target, &UnpackOptions::default()).unwrap();
    assert_eq!(report.entries, DEPTH + 4);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut fs::File::from(open_deep(&s.target, &deep)), &mut text)
        .unwrap();
    assert_eq!(text, "at the bottom");
    let f = rustix::fs::fstat(open_deep(&s.target, &deep)).unwrap();
    let h = rustix::fs::fstat(open_deep(&s.target, &format!("{}/h", level(DEPTH - 1)))).unwrap();
    assert_eq!((f.st_ino, f.st_mode & 0o7777), (h.st_ino, 0o640));
    let link =
        rustix::fs::readlinkat(open_deep(&s.target, &level(DEPTH)), "s", Vec::new()).unwrap();
    assert_eq!(link.to_bytes(), b"f");
    // Directory modes and times are set last, the deepest ones included.
    for d in [1, 700, DEPTH] {
        let st = rustix::fs::fstat(open_deep(&s.target, &level(d))).unwrap();
        assert_eq!(
            (st.st_mode & 0o7777, st.st_mtime),
            (0o750, 1_000_000_000 + d as i64),
            "depth {d}"
        );
    }
    assert_eq!(
        fs::read_to_string(s.target.join("top")).unwrap(),
        "back at the top"
    );
    s.assert_outside_untouched();
}

#[test]
fn a_directory_replaced_by_a_symlink_is_neither_walked_through_nor_changed() {
    // `a` is a directory, then a symlink to `outside`: what comes after must
    // not go through it, and the mode and time recorded for the directory
    // `a` must not land on `outside` when directories are finished.
    let entries = [
        dir("a").mode(0o700).mtime(1_000_000_000, 0),
        file("a/b/x", "x"),
        symlink("a", "../outside"),
        file("a/evil", "x"),
        file("a/b/evil", "x"),
    ];
    let s = sandbox();
    let before = fs::metadata(&s.outside).unwrap();
    let opts = {
        let mut o = UnpackOptions::default();
        o.skip_unsafe = true;
        o
    };
    let report = unpack_to_dir(&blob_of(&entries)[..], &s.target, &opts).unwrap();
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(
        report.warnings.iter().all(|w| w.contains("is a symlink")),
        "{:?}",
        report.warnings
    );
    let after = fs::metadata(&s.outside).unwrap();
    assert_eq!(
        (after.permissions().mode(), after.mtime()),
        (before.permissions().mode(), before.mtime())
    );
    s.assert_outside_untouched();
    // Without --skip-unsafe the first entry through the symlink stops it.
    let s = sandbox();
    let err =
        unpack_to_dir(&blob_of(&entries)[..], &s.target, &UnpackOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Unsafe { entry, .. } if entry == "a/evil"),
        "{err}"
    );
    s.assert_outside_untouched();
}

#[test]
fn a_symlink_already_in_the_directory_is_not_followed() {
    let s = sandbox();
    fs::create_dir_all(s.target.join("d")).unwrap();
    std::os::unix::fs::symlink("../../outside", s.target.join("d/l")).unwrap();
    let err = unpack_to_dir(
        &blob_of(&[file("d/l/evil", "x")])[..],
        &s.target,
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Unsafe { reason, .. } if reason.contains("symlink")),
        "{err}"
    );
    s.assert_outside_untouched();
}

#[test]
fn a_deep_tree_in_the_way_is_removed() {
    // A file replacing a 600-deep chain: removal must not recurse or keep a
    // descriptor per level.
    let chain = vec!["d"; 600].join("/");
    let entries = [
        dir(&chain),
        file(&format!("{chain}/f"), "x"),
        file("d", "now a file"),
    ];
    let s = sandbox();
    unpack_to_dir(&blob_of(&entries)[..], &s.target, &UnpackOptions::default()).unwrap();
    assert_eq!(
        fs::read_to_string(s.target.join("d")).unwrap(),
        "now a file"
    );
    assert_eq!(tree(&s.target), vec!["d"]);
}

#[test]
fn a_failed_unpack_reports_what_it_wrote_and_the_partial_file() {
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let opts = Converter::builder()
        .chunk_size(16 << 10)
        .skip_open_check(true)
        .build()
        .unwrap();
    let mut blob = Vec::new();
    let tar = build_tar(Format::Pax, &[file("a", "first"), file("b", &noise)], 0);
    opts.convert(&tar[..], &mut blob).unwrap();
    // Inside b's data, well past its first chunk.
    let at = blob.len() * 3 / 4;
    for byte in &mut blob[at..at + 64] {
        *byte ^= 0x5a;
    }
    let s = sandbox();
    let progress = UnpackProgress::new();
    let err =
        unpack_to_dir_with_progress(&blob[..], &s.target, &UnpackOptions::default(), &progress)
            .unwrap_err();
    assert!(
        matches!(err, Error::Gzip { .. } | Error::Read { .. }),
        "{err}"
    );
    assert_eq!(progress.entries(), 1);
    assert_eq!(progress.partial().as_deref(), Some("b"));
    assert_eq!(fs::read_to_string(s.target.join("a")).unwrap(), "first");
    let written = fs::metadata(s.target.join("b")).unwrap().len();
    assert!(written < noise.len() as u64, "{written}");
}
