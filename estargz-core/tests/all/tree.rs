//! The index as a file system sees it: stat, readdir, parent, whiteouts,
//! and owned file handles.

use estargz_core::{Blob, Converter, EntryType, OpenOptions, OwnedFile, Whiteout};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

fn layer() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(100);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Char {
            h.set_device_major(8).unwrap();
            h.set_device_minor(1).unwrap();
        }
        if let Some(target) = link {
            h.set_link_name(target).unwrap();
        }
        h.set_path(name).unwrap();
        h.set_cksum();
        tar.append(&h, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "etc/passwd",
        tar::EntryType::Regular,
        0o4644,
        b"root:x:0:0\n",
        None,
    );
    add(
        "etc/sh",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("/bin/sh"),
    );
    add("dev/sda1", tar::EntryType::Char, 0o600, b"", None);
    add("gone/.wh.old", tar::EntryType::Regular, 0o644, b"", None);
    add(
        "gone/.wh..wh..opq",
        tar::EntryType::Regular,
        0o644,
        b"",
        None,
    );
    let mut blob = Vec::new();
    Converter::new()
        .convert(&tar.into_inner().unwrap(), &mut blob)
        .unwrap();
    blob
}

#[test]
fn stat_gives_type_bits_devices_and_times() {
    let blob = Blob::open(layer(), &OpenOptions::default()).unwrap();
    let index = blob.index();
    let stat = |path: &str| {
        let id = index.lookup_id(path).unwrap();
        index.node(id).stat(id)
    };
    let passwd = stat("etc/passwd");
    assert_eq!(passwd.mode, 0o100000 | 0o4644);
    assert_eq!((passwd.uid, passwd.gid, passwd.size), (1000, 100, 11));
    assert_eq!((passwd.mtime, passwd.mtime_nsec), (1_600_000_000, 0));
    assert_eq!(stat("etc").mode, 0o040755);
    let link = stat("etc/sh");
    assert_eq!((link.mode & 0o170000, link.size), (0o120000, 7));
    let dev = stat("dev/sda1");
    assert_eq!((dev.mode & 0o170000, dev.rdev), (0o020000, 0x801));
    assert_eq!(stat("").ino, 1, "the root is inode 1");
}

#[test]
fn readdir_is_sorted_and_parents_lead_back_to_the_root() {
    let blob = Blob::open(layer(), &OpenOptions::default()).unwrap();
    let index = blob.index();
    let etc = index.lookup_id("etc").unwrap();
    let listed: Vec<(&str, EntryType)> = index
        .readdir(etc)
        .map(|(name, _, kind)| (name, kind.clone()))
        .collect();
    assert_eq!(
        listed,
        [("passwd", EntryType::Reg), ("sh", EntryType::Symlink)]
    );
    let passwd = index.lookup_id("etc/passwd").unwrap();
    assert_eq!(index.parent(passwd), Some(etc));
    let root = index.parent(etc).unwrap();
    assert_eq!(index.node(root).name(), "");
    assert_eq!(index.parent(root), None);
}

#[test]
fn whiteouts_are_recognised() {
    let blob = Blob::open(layer(), &OpenOptions::default()).unwrap();
    let index = blob.index();
    let whiteout = |path: &str| index.lookup(path).unwrap().whiteout();
    assert_eq!(
        whiteout("gone/.wh.old"),
        Some(Whiteout::Remove("gone/old".into()))
    );
    assert_eq!(
        whiteout("gone/.wh..wh..opq"),
        Some(Whiteout::Opaque("gone".into()))
    );
    assert_eq!(whiteout("etc/passwd"), None);
}

#[test]
fn owned_handles_read_seek_and_outlive_their_borrow() {
    let blob = Arc::new(Blob::open(layer(), &OpenOptions::default()).unwrap());
    let id = blob.index().lookup_id("etc/passwd").unwrap();
    let handles: Vec<OwnedFile<Vec<u8>>> = (0..3)
        .map(|_| OwnedFile::open(blob.clone(), id).unwrap())
        .collect();
    drop(blob);
    let mut h = handles[1].clone();
    h.seek(SeekFrom::End(-3)).unwrap();
    let mut tail = String::new();
    h.read_to_string(&mut tail).unwrap();
    assert_eq!(tail, ":0\n");
    let mut buf = [0u8; 4];
    assert_eq!(handles[2].read_at(0, &mut buf).unwrap(), 4);
    assert_eq!(&buf, b"root");
    assert!(h.seek(SeekFrom::Current(-100)).is_err());
    let dir = handles[0].clone();
    assert!(
        OwnedFile::open(
            Arc::new(Blob::open(layer(), &OpenOptions::default()).unwrap()),
            0
        )
        .is_err(),
        "the root is no regular file"
    );
    assert_eq!(dir.size(), 11);
}
