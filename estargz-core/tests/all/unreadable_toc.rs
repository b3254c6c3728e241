//! A tar whose TOC readers would refuse (hardlinks to nothing, to a
//! directory or in a cycle; children under a non-directory) is refused by
//! the converter, naming the entry and its header's offset, instead of
//! becoming a blob that fails when it is mounted. What readers accept
//! (forward hardlinks, a bad entry replaced by a later duplicate) converts
//! and opens.

use crate::common;

use common::tar_writer::*;
use estargz_core::{Blob, Converter, Error, Input, OpenOptions};
use std::sync::Arc;

/// Offset of the ustar header of the entry named `name` (the last one of
/// that name), read with the `tar` crate rather than this crate's scanner.
fn header_offset(tar: &[u8], name: &str) -> u64 {
    let mut archive = tar::Archive::new(tar);
    let mut found = None;
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path_bytes().as_ref() == name.as_bytes() {
            found = Some(entry.raw_header_position());
        }
    }
    found.unwrap_or_else(|| panic!("{name} not in the tar"))
}

#[test]
fn entries_readers_refuse_are_conversion_errors() {
    let cases: Vec<(&str, Vec<TestEntry>, &str, &str)> = vec![
        (
            "hardlink to a name not in the layer",
            vec![
                dir("usr"),
                file("usr/a", "x"),
                hardlink("usr/h", "usr/nope"),
            ],
            "usr/h",
            "linkname \"usr/nope\" isn't found",
        ),
        (
            "hardlink cycle",
            vec![hardlink("l1", "l2"), hardlink("l2", "l1")],
            "l1",
            "hardlink cycle",
        ),
        (
            "hardlink to itself",
            vec![file("a", "x"), hardlink("self", "self")],
            "self",
            "hardlink cycle",
        ),
        (
            "hardlink to a directory",
            vec![dir("d"), file("d/f", "x"), hardlink("h", "d")],
            "h",
            "hardlink to directory",
        ),
        (
            "a file with children",
            vec![file("a", "x"), file("a/b", "y")],
            "a",
            "not a directory",
        ),
        (
            "a symlink with children",
            vec![symlink("s", "t"), file("s/x", "y")],
            "s",
            "not a directory",
        ),
    ];
    for (what, entries, entry, reason) in cases {
        let tar = build_tar(Format::Ustar, &entries, 0);
        let mut blob = Vec::new();
        let err = Converter::new()
            .convert(&tar[..], &mut blob)
            .expect_err(what)
            .to_string();
        let in_place = Converter::new()
            .convert(Input::InMemory(Arc::new(tar.clone())), &mut Vec::new())
            .expect_err(what)
            .to_string();
        assert_eq!(in_place, err, "{what}");
        let offset = header_offset(&tar, entry);
        assert!(
            err.starts_with(&format!("entry {entry:?} at byte {offset}: ")),
            "{what}: {err}"
        );
        assert!(err.contains(reason), "{what}: {err}");
        assert!(err.contains("would not open"), "{what}: {err}");
    }
}

#[test]
fn the_error_is_typed() {
    let tar = build_tar(
        Format::Gnu,
        &[dir("d"), file("d/x", "1"), hardlink("d/h", "gone")],
        0,
    );
    match Converter::new().convert(&tar[..], &mut Vec::new()) {
        Err(Error::UnreadableEntry {
            entry,
            offset,
            reason,
        }) => {
            assert_eq!(entry, "d/h");
            assert_eq!(offset, header_offset(&tar, "d/h"));
            assert!(reason.contains("gone"), "{reason}");
        }
        other => panic!("expected UnreadableEntry, got {other:?}"),
    }
}

#[test]
fn what_readers_accept_converts_and_opens() {
    let cases: Vec<(&str, Vec<TestEntry>)> = vec![
        (
            "hardlink before its target",
            vec![hardlink("h", "later"), file("later", "x")],
        ),
        (
            "hardlink to a hardlink",
            vec![file("f", "x"), hardlink("h1", "f"), hardlink("h2", "h1")],
        ),
        (
            "dangling hardlink replaced by a later file",
            vec![hardlink("h", "nope"), file("h", "x")],
        ),
        (
            "file replaced by a directory before its children",
            vec![file("a", "x"), dir("a"), file("a/b", "y")],
        ),
        (
            "children without their directory entries",
            vec![file("p/q/r", "x"), hardlink("p/h", "p/q/r")],
        ),
    ];
    for (what, entries) in cases {
        for format in FORMATS {
            for prefix in PREFIXES {
                let tar = build_tar(format, &prefixed(&entries, prefix), 0);
                let (blob, _) = common::convert_with(&tar, estargz_core::DEFAULT_CHUNK_SIZE);
                Blob::open(&blob[..], &OpenOptions::default())
                    .unwrap_or_else(|e| panic!("{what} ({format:?}, {prefix:?}): {e}"));
            }
        }
    }
}

#[test]
fn skip_open_check_converts_anyway_and_readers_refuse() {
    let tar = build_tar(Format::Ustar, &[hardlink("h", "elsewhere")], 0);
    let opts = Converter::builder().skip_open_check(true).build().unwrap();
    let mut blob = Vec::new();
    opts.convert(&tar[..], &mut blob).unwrap();
    assert_eq!(
        common::gunzip(&blob)[..tar.len()],
        tar[..],
        "still lossless"
    );
    let err = Blob::open(&blob[..], &OpenOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("isn't found"), "{err}");
}
