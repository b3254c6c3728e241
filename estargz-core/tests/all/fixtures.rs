//! The fixture corpus in `testdata/tars/` (made by GNU tar, bsdtar, busybox,
//! Python's tarfile and git archive; see `testdata/make-fixtures.sh`).

use crate::common;

use common::{check_lossless, gunzip};
use estargz_core::{Converter, Error};
use std::path::PathBuf;

fn corpus(dir: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tars")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", root.display());
    files
}

/// The tar bytes a fixture holds (gunzipped when it is a .gz).
pub fn tar_of(path: &PathBuf) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&bytes)
    } else {
        bytes
    }
}

#[test]
fn every_valid_fixture_converts_losslessly() {
    for path in corpus("valid") {
        let raw = std::fs::read(&path).unwrap();
        let tar = tar_of(&path);
        for chunk_size in [4 << 20, 1000] {
            let opts = Converter::builder().chunk_size(chunk_size).build().unwrap();
            let mut blob = Vec::new();
            let report = opts
                .convert(&raw[..], &mut blob)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            check_lossless(&tar, &blob, &report, chunk_size);
        }
    }
}

#[test]
fn non_utf8_names_are_replaced_with_a_warning() {
    let path = corpus("valid")
        .into_iter()
        .find(|p| p.ends_with("python-gnu-nonutf8-name.tar"))
        .unwrap();
    let mut blob = Vec::new();
    let report = Converter::new()
        .convert(&std::fs::read(&path).unwrap()[..], &mut blob)
        .unwrap();
    assert!(!report.warnings.is_empty());
    let (toc, json, _) = common::read_toc(&blob);
    assert!(toc
        .entries
        .iter()
        .any(|e| e.name == "bad\u{fffd}\u{fffd}name"));
    assert!(String::from_utf8(json)
        .unwrap()
        .contains(r#""bad\ufffd\ufffdname""#));

    let strict = Converter::builder()
        .names(estargz_core::NamePolicy::Strict)
        .build()
        .unwrap();
    let err = strict
        .convert(&std::fs::read(&path).unwrap()[..], Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, Error::NonUtf8 { ref entry, .. } if entry.contains('\u{fffd}')),
        "{err}"
    );
}

#[test]
fn pax_global_headers_stay_in_the_stream_and_are_not_entries() {
    for name in ["git-archive.tar", "python-pax-global.tar"] {
        let path = corpus("valid")
            .into_iter()
            .find(|p| p.ends_with(name))
            .unwrap();
        let tar = tar_of(&path);
        let (blob, report) = common::convert_with(&tar, 4 << 20);
        let toc = check_lossless(&tar, &blob, &report, 4 << 20);
        assert!(toc
            .entries
            .iter()
            .all(|e| !e.name.contains("pax_global_header") && !e.name.contains("GlobalHead")));
    }
}

#[test]
fn sparse_fixtures_are_refused_naming_the_entry() {
    for path in corpus("sparse") {
        let err = Converter::new()
            .convert(&std::fs::read(&path).unwrap()[..], Vec::new())
            .unwrap_err();
        match &err {
            Error::SparseEntry { entry, .. } => assert!(
                entry.contains("sparse") || entry.contains("holes"),
                "{entry}"
            ),
            other => panic!("{}: {other}", path.display()),
        }
        assert!(err.to_string().contains("byte"), "{err}");
    }
}

#[test]
fn invalid_fixtures_fail_with_the_entry_and_offset() {
    let expected: &[(&str, &str)] = &[
        ("bad-checksum.tar", "checksum"),
        ("random-header.tar", "checksum"),
        ("zero-header-with-garbage.tar", "checksum"),
        ("not-a-tar.txt", "not a tar archive"),
        ("size-non-octal.tar", "size field is not a valid number"),
        ("size-negative-base256.tar", "size field is negative"),
        (
            "truncated-header.tar",
            "unexpected end of input inside header",
        ),
        (
            "truncated-second-header.tar",
            "unexpected end of input inside header",
        ),
        (
            "truncated-payload.tar",
            "unexpected end of input inside file data",
        ),
        (
            "truncated-padding.tar",
            "unexpected end of input inside padding",
        ),
        ("pax-header-at-eof.tar", "after extension headers"),
        ("gnu-longname-at-eof.tar", "after extension headers"),
        ("pax-bad-length.tar", "bad PAX record"),
        ("pax-length-overflow.tar", "bad PAX record"),
        ("pax-path-nul.tar", "NUL"),
        ("pax-size-garbage.tar", "size value"),
        ("stargz-index.tar", "stargz.index.json is not allowed"),
        (
            "stargz-index-dotslash.tar",
            "stargz.index.json is not allowed",
        ),
        ("empty-file.tar", "input is empty"),
    ];
    let files = corpus("invalid");
    assert_eq!(
        files.len(),
        expected.len(),
        "every invalid fixture has an expectation"
    );
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let want = expected
            .iter()
            .find(|(f, _)| *f == name)
            .unwrap_or_else(|| panic!("no expectation for {name}"))
            .1;
        let err = Converter::new()
            .convert(&std::fs::read(&path).unwrap()[..], Vec::new())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "{name}: {msg:?} lacks {want:?}");
        if !matches!(err, Error::EmptyInput) {
            assert!(msg.contains("byte "), "{name}: no offset in {msg:?}");
        }
    }
}
