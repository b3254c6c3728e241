//! A layer holding every kind of entry (the kinds the unpack tests use),
//! and the comparison of a mounted tree with the tar it came from: the
//! expectations are read back from the tar bytes, not from the converter.

use super::read_all;
use crate::common::noise::noise;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use tar::{EntryType, Header};

/// Files of the fixture to read in the random-order test.
pub const BIG: &str = "data/big.bin";
pub const SMALL: &str = "etc/hostname";

struct Builder {
    tar: tar::Builder<Vec<u8>>,
}

impl Builder {
    fn add(
        &mut self,
        path: &str,
        kind: EntryType,
        mode: u32,
        data: &[u8],
        edit: impl FnOnce(&mut Header),
    ) {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        edit(&mut h);
        h.set_cksum();
        self.tar.append_data(&mut h, path, data).unwrap();
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) {
        self.tar
            .append_pax_extensions(records.iter().copied())
            .unwrap();
    }

    fn dir(&mut self, path: &str, mode: u32) {
        self.add(path, EntryType::Directory, mode, b"", |_| {});
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.add(path, EntryType::Regular, mode, data, |_| {});
    }

    fn link(&mut self, path: &str, kind: EntryType, target: &str) {
        self.add(path, kind, 0o777, b"", |h| h.set_link_name(target).unwrap());
    }

    fn device(&mut self, path: &str, kind: EntryType, mode: u32, major: u32, minor: u32) {
        self.add(path, kind, mode, b"", |h| {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        });
    }
}

/// The fixture: directories with odd modes and owners, regular files
/// (setuid, setgid, empty, several chunks), symlinks, a hardlink, a fifo,
/// character and block devices (one with numbers past 8 bits), xattrs on
/// a file and a directory, a sub-second mtime, a whiteout and an opaque
/// directory, and 40 small files.
pub fn layer_tar() -> Vec<u8> {
    let mut b = Builder {
        tar: tar::Builder::new(Vec::new()),
    };
    b.dir("etc", 0o755);
    b.pax(&[
        ("SCHILY.xattr.user.comment", b"hello"),
        ("SCHILY.xattr.trusted.bin", &[0, 1, 2, 255]),
    ]);
    b.file(SMALL, 0o644, b"fixture-host\n");
    b.link("etc/hostname.hard", EntryType::Link, SMALL);
    b.add(
        "etc/shadow",
        EntryType::Regular,
        0o640,
        b"root:*:1::::::\n",
        |h| h.set_gid(42),
    );
    b.file("etc/.wh.removed", 0o644, b"");
    b.dir("bin", 0o755);
    b.file("bin/suid", 0o4755, b"#!/bin/sh\necho suid\n");
    b.file("bin/sgid", 0o2711, b"#!/bin/sh\necho sgid\n");
    b.link("bin/sh", EntryType::Symlink, "busybox");
    b.link("bin/abs", EntryType::Symlink, "/etc/hostname");
    b.dir("tmp", 0o1777);
    b.pax(&[("SCHILY.xattr.user.dir", b"on a directory")]);
    b.dir("home", 0o755);
    b.add("home/user", EntryType::Directory, 0o700, b"", |h| {
        h.set_uid(1000);
        h.set_gid(1000);
    });
    b.pax(&[("mtime", b"1700000000.75")]);
    b.add(
        "home/user/notes.txt",
        EntryType::Regular,
        0o600,
        b"sub-second\n",
        |h| {
            h.set_uid(1000);
            h.set_gid(1000);
        },
    );
    b.file("home/user/name with spaces & ünïcode", 0o444, b"odd name\n");
    b.dir("dev", 0o755);
    b.device("dev/null", EntryType::Char, 0o666, 1, 3);
    b.device("dev/sda", EntryType::Block, 0o660, 8, 0);
    b.device("dev/big", EntryType::Char, 0o600, 300, 70000);
    b.dir("run", 0o755);
    b.add("run/fifo", EntryType::Fifo, 0o620, b"", |_| {});
    b.dir("opq", 0o755);
    b.file("opq/.wh..wh..opq", 0o644, b"");
    b.file("opq/kept", 0o644, b"kept\n");
    b.dir("data", 0o755);
    b.file(BIG, 0o644, &noise(7, (5 << 20) + 12345));
    b.file("data/medium.bin", 0o644, &noise(8, 300 << 10));
    b.file("data/empty", 0o644, b"");
    b.dir("data/small", 0o755);
    for i in 0..40 {
        let data = noise(100 + i, 1000 + 997 * i as usize);
        b.file(&format!("data/small/f{i:02}"), 0o644, &data);
    }
    b.tar.into_inner().unwrap()
}

/// One entry of the source tar, as the mount should show it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub path: String,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds and nanoseconds, as the tar has them.
    pub mtime: (i64, u32),
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub link: String,
    pub dev: (u32, u32),
    pub data: Vec<u8>,
}

/// The entries of `tar`, in order.
pub fn expected(tar: &[u8]) -> Vec<Expected> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let mut xattrs = BTreeMap::new();
        let mut mtime = (h.mtime().unwrap() as i64, 0);
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for r in pax {
                let r = r.unwrap();
                let key = r.key().unwrap();
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), r.value_bytes().to_vec());
                } else if key == "mtime" {
                    let v = r.value().unwrap();
                    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
                    let nanos = format!("{frac:0<9}")[..9].parse().unwrap();
                    mtime = (secs.parse().unwrap(), nanos);
                }
            }
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.push(Expected {
            path: entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string(),
            kind: h.entry_type(),
            mode: h.mode().unwrap() & 0o7777,
            uid: h.uid().unwrap() as u32,
            gid: h.gid().unwrap() as u32,
            mtime,
            xattrs,
            link: h
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dev: match h.entry_type() {
                EntryType::Char | EntryType::Block => (
                    h.device_major().unwrap().unwrap_or(0),
                    h.device_minor().unwrap().unwrap_or(0),
                ),
                _ => (0, 0),
            },
            data,
        });
    }
    out
}

/// glibc's `major` and `minor`.
fn major_minor(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Every path under `dir`, relative, sorted.
pub fn walk(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// The xattrs of `path` (not following a symlink).
pub fn xattrs_of(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names).unwrap();
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let mut value = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(path, name, &mut value).unwrap();
        out.insert(name.to_string(), value[..len].to_vec());
    }
    out
}

/// Checks one entry of the mount against the tar.
/// With `exact_times`, the TOC keeps nanoseconds (containers/storage's
/// zstd:chunked); otherwise it keeps seconds, rounded to the nearest.
pub fn check_entry(
    mnt: &Path,
    e: &Expected,
    by_path: &BTreeMap<&str, &Expected>,
    exact_times: bool,
) {
    let path = mnt.join(&e.path);
    let what = &e.path;
    let meta = fs::symlink_metadata(&path).unwrap_or_else(|err| panic!("{what}: {err}"));
    // A hardlink shows its target's inode, and everything else of it.
    if e.kind == EntryType::Link {
        let target = by_path[e.link.as_str()];
        let target_meta = fs::symlink_metadata(mnt.join(&target.path)).unwrap();
        assert_eq!(
            meta.ino(),
            target_meta.ino(),
            "{what}: a hardlink shares its inode"
        );
        assert_eq!(meta.nlink(), 2, "{what}");
        assert_eq!(target_meta.nlink(), 2, "{}", target.path);
        return check_entry_as(&path, &meta, target, what, exact_times);
    }
    check_entry_as(&path, &meta, e, what, exact_times);
}

fn check_entry_as(path: &Path, meta: &fs::Metadata, e: &Expected, what: &str, exact_times: bool) {
    let ft = meta.file_type();
    let kind_ok = match e.kind {
        EntryType::Regular => ft.is_file(),
        EntryType::Directory => ft.is_dir(),
        EntryType::Symlink => ft.is_symlink(),
        EntryType::Char => ft.is_char_device(),
        EntryType::Block => ft.is_block_device(),
        EntryType::Fifo => ft.is_fifo(),
        other => panic!("{what}: unexpected kind {other:?} in the fixture"),
    };
    assert!(kind_ok, "{what}: {:?} is shown as {ft:?}", e.kind);
    if e.kind != EntryType::Symlink {
        assert_eq!(
            meta.mode() & 0o7777,
            e.mode,
            "{what}: mode {:o}",
            meta.mode()
        );
    }
    assert_eq!((meta.uid(), meta.gid()), (e.uid, e.gid), "{what}: owner");
    let (secs, nanos) = e.mtime;
    let want = if exact_times {
        (secs, i64::from(nanos))
    } else {
        (secs + i64::from(nanos >= 500_000_000), 0)
    };
    assert_eq!((meta.mtime(), meta.mtime_nsec()), want, "{what}: mtime");
    assert_eq!(xattrs_of(path), e.xattrs, "{what}: xattrs");
    match e.kind {
        EntryType::Symlink => {
            assert_eq!(
                fs::read_link(path).unwrap().to_string_lossy(),
                e.link,
                "{what}"
            );
            assert_eq!(meta.len(), e.link.len() as u64, "{what}: size");
        }
        EntryType::Char | EntryType::Block => {
            assert_eq!(major_minor(meta.rdev()), e.dev, "{what}: device numbers");
        }
        EntryType::Regular => {
            assert_eq!(meta.len(), e.data.len() as u64, "{what}: size");
            let read = read_all(path).unwrap_or_else(|err| panic!("{what}: {err}"));
            assert!(read == e.data, "{what}: contents differ");
        }
        _ => {}
    }
}

/// Whether `path` is an OCI whiteout or opaque marker.
pub fn is_whiteout(path: &str) -> bool {
    path.rsplit('/').next().unwrap_or("").starts_with(".wh.")
}

/// Compares the whole mounted tree with `tar`: the same names (whiteouts
/// as `overlay` presents them or as stored), and each entry alike.
pub fn compare_tree(mnt: &Path, tar: &[u8], overlay: bool) {
    let all = expected(tar);
    let by_path: BTreeMap<&str, &Expected> = all.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut names = BTreeSet::new();
    for e in &all {
        if overlay && is_whiteout(&e.path) {
            continue;
        }
        names.insert(e.path.clone());
        let mut e = e.clone();
        if overlay && e.path == "opq" {
            e.xattrs
                .insert("trusted.overlay.opaque".into(), b"y".to_vec());
        }
        check_entry(mnt, &e, &by_path, false);
    }
    if overlay {
        names.insert("etc/removed".to_string());
        check_overlay_whiteouts(mnt);
    }
    assert_eq!(walk(mnt), names, "the mounted names");
}

/// `.wh.removed` is a character device 0:0 named `removed`; `opq` is
/// opaque and its marker hidden.
pub fn check_overlay_whiteouts(mnt: &Path) {
    let removed = fs::symlink_metadata(mnt.join("etc/removed")).unwrap();
    assert!(removed.file_type().is_char_device());
    assert_eq!(removed.rdev(), 0);
    assert!(fs::symlink_metadata(mnt.join("etc/.wh.removed")).is_err());
    assert!(fs::symlink_metadata(mnt.join("opq/.wh..wh..opq")).is_err());
    let opq = xattrs_of(&mnt.join("opq"));
    assert_eq!(
        opq.get("trusted.overlay.opaque").map(Vec::as_slice),
        Some(&b"y"[..])
    );
    assert!(!xattrs_of(&mnt.join("etc")).contains_key("trusted.overlay.opaque"));
}
