//! The whiteout form is the one overlayfs understands: two mounted layers
//! stacked by the kernel's overlayfs give the tree with the upper layer's
//! whiteouts applied.

use super::{convert, fuse_available, is_mounted, Mount};
use std::fs;
use std::path::Path;

pub(super) use estargz_test_support::tar_of;

/// An overlay mount, unmounted (lazily) on drop.
struct Overlay<'a>(&'a Path);

impl Drop for Overlay<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0)
            .status();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn overlayfs_applies_the_whiteouts_of_mounted_layers() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tar_of(&[
        ("etc/", b""),
        ("etc/keep", b"kept\n"),
        ("etc/gone", b"removed by the upper layer\n"),
        ("d/", b""),
        ("d/old", b"hidden by the opaque directory\n"),
    ]);
    let upper = tar_of(&[
        ("etc/", b""),
        ("etc/.wh.gone", b""),
        ("etc/new", b"new\n"),
        ("d/", b""),
        ("d/.wh..wh..opq", b""),
        ("d/fresh", b"fresh\n"),
    ]);
    let lower = convert(tmp.path(), "lower.esgz", &lower, &[]);
    let upper = convert(tmp.path(), "upper.esgz", &upper, &[]);
    let lower = Mount::start(lower.to_str().unwrap(), &[]);
    let upper = Mount::start(upper.to_str().unwrap(), &[]);
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let merged = merged.canonicalize().unwrap();
    let options = format!(
        "lowerdir={}:{}",
        upper.dir().display(),
        lower.dir().display()
    );
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "mount -t overlay -o {options}");
    let overlay = Overlay(&merged);
    assert!(is_mounted(&merged));

    assert_eq!(names(&merged.join("etc")), ["keep", "new"]);
    assert_eq!(names(&merged.join("d")), ["fresh"]);
    assert_eq!(fs::read(merged.join("etc/keep")).unwrap(), b"kept\n");
    assert_eq!(fs::read(merged.join("d/fresh")).unwrap(), b"fresh\n");
    assert!(fs::symlink_metadata(merged.join("etc/gone")).is_err());

    drop(overlay);
    upper.stop();
    lower.stop();
}
