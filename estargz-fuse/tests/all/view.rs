//! The tree as the mount shows it, whiteouts both ways.

use crate::{open, tar_of};
use estargz_fuse::{View, Whiteouts, OPAQUE_XATTR};

fn layer() -> Vec<u8> {
    tar_of(&[
        ("etc/", b""),
        ("etc/passwd", b"root\n"),
        ("etc/.wh.shadow", b""),
        ("etc/.wh.group", b""),
        ("etc/group", b"replaced in this very layer\n"),
        ("opq/", b""),
        ("opq/.wh..wh..opq", b""),
        ("opq/new", b"new\n"),
        (".prefetch.landmark", b"f"),
    ])
}

fn names(view: &View<'_>, dir: usize) -> Vec<String> {
    view.entries(dir).into_iter().map(|e| e.name).collect()
}

#[test]
fn overlay_whiteouts_are_devices_and_opaque_directories_carry_the_xattr() {
    let (blob, _) = open(&layer(), 1 << 20, 1 << 20);
    let index = blob.index();
    let view = View::new(index, Whiteouts::Overlay);
    let etc = view.lookup(0, "etc").unwrap();
    // The landmark is the converter's, not the layer's.
    assert_eq!(names(&view, 0), ["etc", "opq"]);
    assert_eq!(view.lookup(0, ".prefetch.landmark"), None);
    // `.wh.shadow` is `shadow`, a 0:0 character device; `.wh.group` gives
    // way to the real `group` of the same layer.
    assert_eq!(names(&view, etc), ["group", "passwd", "shadow"]);
    let shadow = view.lookup(etc, "shadow").unwrap();
    assert_eq!(Some(shadow), index.lookup_id("etc/.wh.shadow"));
    let stat = view.stat(shadow).unwrap();
    assert_eq!(
        (stat.mode, stat.rdev, stat.size, stat.uid),
        (0o020000, 0, 0, 0)
    );
    assert_eq!(view.lookup(etc, ".wh.shadow"), None);
    assert_eq!(view.lookup(etc, "group"), index.lookup_id("etc/group"));
    // The opaque marker is hidden and becomes an xattr.
    let opq = view.lookup(0, "opq").unwrap();
    assert_eq!(names(&view, opq), ["new"]);
    assert_eq!(view.lookup(opq, ".wh..wh..opq"), None);
    assert_eq!(
        view.xattrs(opq),
        [(OPAQUE_XATTR.to_string(), b"y".to_vec())]
    );
    assert_eq!(view.xattrs(etc), []);
    assert_eq!(view.parent(opq), 0);
    assert_eq!(view.parent(0), 0);
}

#[test]
fn stored_whiteouts_are_plain_files() {
    let (blob, _) = open(&layer(), 1 << 20, 1 << 20);
    let view = View::new(blob.index(), Whiteouts::AsStored);
    let etc = view.lookup(0, "etc").unwrap();
    assert_eq!(
        names(&view, etc),
        [".wh.group", ".wh.shadow", "group", "passwd"]
    );
    assert_eq!(view.lookup(etc, "shadow"), None);
    let wh = view.lookup(etc, ".wh.shadow").unwrap();
    assert_eq!(view.stat(wh).unwrap().mode, 0o100644);
    let opq = view.lookup(0, "opq").unwrap();
    assert_eq!(names(&view, opq), [".wh..wh..opq", "new"]);
    assert_eq!(view.xattrs(opq), []);
}

#[test]
fn names_that_are_not_children_are_not_found() {
    let (blob, _) = open(&layer(), 1 << 20, 1 << 20);
    let view = View::new(blob.index(), Whiteouts::Overlay);
    let etc = view.lookup(0, "etc").unwrap();
    let passwd = view.lookup(etc, "passwd").unwrap();
    for name in ["", ".", "..", "passwd/..", "../etc", "etc/passwd"] {
        assert_eq!(view.lookup(etc, name), None, "{name:?}");
    }
    assert_eq!(view.lookup(passwd, "x"), None, "a file has no children");
    assert_eq!(view.lookup(9999, "x"), None);
    assert!(view.stat(9999).is_none());
    assert!(view.entries(9999).is_empty());
}
