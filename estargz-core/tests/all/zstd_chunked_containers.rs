//! The zstd:chunked writer, containers/storage dialect
//! (`TocFormat::Containers`, docs/zstd-chunked-format.md §4, §7.2): every
//! fixture tar the gzip writer is tested with either round-trips (the
//! whole blob decompresses to it, the diffID is its sha256, our reader
//! opens, reads and verifies it, tar-split included) or is refused with
//! the entry and byte offset the dialect cannot carry. Nothing else on
//! this machine reads or writes the 64-byte dialect, so the format itself
//! is checked against the spec's bytes in the crate's conformance tests.

use crate::common::{fixture_tars, testdata, unzstd};
use estargz_core::internals::zstd_chunked::{frame_starts, parse_footer};
use estargz_core::{
    unpack_tar, verify, Blob, Compression, ConvertReport, Converter, Digest, Error, Input,
    OpenOptions, ProblemKind, SharedInput, TocFormat, VerifyOptions, ZstdDialect,
};
use std::sync::Arc;

fn converter(chunk_size: u64, threads: usize) -> Converter {
    Converter::builder()
        .compression(Compression::ZstdChunked)
        .toc_format(TocFormat::Containers)
        .chunk_size(chunk_size)
        .threads(Some(threads))
        .build()
        .unwrap()
}

/// The fixtures the dialect cannot carry: (file, entry, header offset, why).
const REFUSED: [(&str, &str, u64, &str); 7] = [
    (
        "git-archive.tar",
        "pax_global_header",
        0,
        "PAX global header",
    ),
    ("gnu-duplicate-names.tar", "dup.txt", 2048, "same name"),
    (
        "gnu-incremental-level0.tar",
        "./",
        0,
        "data on a non-regular entry",
    ),
    (
        "gnu-incremental-level1.tar",
        "./",
        0,
        "data on a non-regular entry",
    ),
    ("python-duplicate-types.tar", "dup/x", 1536, "same name"),
    (
        "python-pax-global.tar",
        "././@PaxHeader",
        0,
        "PAX global header",
    ),
    (
        "python-gnu-nonutf8-name.tar",
        "bad\u{fffd}\u{fffd}name",
        512,
        "name is not valid UTF-8",
    ),
];

/// Everything promised about one containers-dialect blob of `tar`.
fn check_blob(label: &str, tar: &[u8], blob: &[u8], report: &ConvertReport) {
    assert!(unzstd(blob) == tar, "{label}: not lossless");
    assert_eq!(report.blob.diff_id, Digest::of(tar), "{label}");
    assert_eq!(report.blob.digest, Digest::of(blob), "{label}");
    assert_eq!(report.toc_format, TocFormat::Containers);
    assert!(blob.ends_with(b"GNUlInUx"), "{label}");
    let footer = parse_footer(&blob[blob.len() - 72..], blob.len() as u64)
        .unwrap()
        .expect("a zstd:chunked footer");
    assert_eq!(
        (footer.payload_len, footer.tar_split),
        (64, true),
        "{label}"
    );
    // Data frames (each as §7.3 rule 2 says), then TOC, tar-split, footer.
    let (data, skippable) = frame_starts(blob).unwrap();
    assert_eq!(skippable.len(), 3, "{label}: {skippable:?}");
    assert!(data.last().is_none_or(|&d| d < skippable[0]), "{label}");
    assert_eq!(skippable[0], report.toc_offset, "{label}");

    let opened = Blob::open(blob, &OpenOptions::default()).unwrap();
    let z = opened.zstd_chunked().expect("zstd:chunked");
    assert_eq!(z.dialect, ZstdDialect::Containers, "{label}");
    assert_eq!(
        Some(&z.manifest_checksum),
        report.manifest_checksum.as_ref()
    );
    let verified = verify(blob, &VerifyOptions::default());
    assert!(verified.is_valid(), "{label}: {:?}", verified.problems);
    let mut back = Vec::new();
    unpack_tar(blob, &mut back).unwrap();
    assert!(back == tar, "{label}: unpack_tar differs");

    let a = report.annotations();
    let keys: Vec<&str> = a.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "io.containers.zstd-chunked.manifest-checksum",
            "io.containers.zstd-chunked.manifest-position",
            "io.github.containers.zstd-chunked.manifest-checksum",
            "io.github.containers.zstd-chunked.manifest-position",
            "io.github.containers.zstd-chunked.tarsplit-position",
        ],
        "{label}"
    );
    assert_eq!(
        a["io.github.containers.zstd-chunked.manifest-checksum"],
        z.manifest_checksum.to_string()
    );
    assert_eq!(
        a["io.github.containers.zstd-chunked.manifest-position"],
        z.manifest_position
    );
    assert_eq!(
        Some(&a["io.github.containers.zstd-chunked.tarsplit-position"]),
        z.tar_split_position.as_ref()
    );
}

#[test]
fn every_valid_tar_round_trips_or_is_refused_by_entry_and_offset() {
    let mut written = 0;
    for (name, tar) in fixture_tars("valid") {
        for chunk in [4096, 4 << 20] {
            let label = format!("{name} (chunk {chunk})");
            let mut blob = Vec::new();
            let result = converter(chunk, 2).convert(&tar, &mut blob);
            match REFUSED.iter().find(|r| r.0 == name) {
                Some(&(_, entry, offset, why)) => {
                    let err = result.unwrap_err();
                    let text = err.to_string();
                    match err {
                        Error::UnsupportedInDialect {
                            entry: e,
                            offset: o,
                            ..
                        } => assert_eq!((e.as_str(), o), (entry, offset), "{label}"),
                        other => panic!("{label}: {other}"),
                    }
                    assert!(text.contains(why), "{label}: {text}");
                    assert!(
                        text.contains(&format!("at byte {offset}")),
                        "{label}: {text}"
                    );
                }
                None => {
                    let report = result.unwrap_or_else(|e| panic!("{label}: {e}"));
                    check_blob(&label, &tar, &blob, &report);
                    written += 1;
                }
            }
        }
    }
    assert!(written >= 40, "{written}");
}

#[test]
fn sparse_and_invalid_tars_are_refused_as_for_gzip() {
    for (name, tar) in fixture_tars("sparse") {
        let err = converter(4 << 20, 1).convert(&tar, Vec::new()).unwrap_err();
        assert!(matches!(err, Error::SparseEntry { .. }), "{name}: {err}");
    }
    for (name, tar) in fixture_tars("invalid") {
        let gzip = Converter::new().convert(&tar, Vec::new());
        let zstd = converter(4 << 20, 1).convert(&tar, Vec::new());
        assert!(gzip.is_err(), "{name}");
        assert!(zstd.is_err(), "{name}");
    }
}

#[test]
fn same_bytes_for_any_thread_count_and_input_kind() {
    let tar = std::fs::read(testdata().join("sample-layer.tar")).unwrap();
    for chunk in [1000, 4096, 4 << 20] {
        let mut one = Vec::new();
        converter(chunk, 1).convert(&tar, &mut one).unwrap();
        let mut many = Vec::new();
        converter(chunk, 4).convert(&tar, &mut many).unwrap();
        assert!(one == many, "chunk {chunk}: threads change the bytes");
        let shared: SharedInput = Arc::new(tar.clone());
        let mut mapped = Vec::new();
        converter(chunk, 3)
            .convert(Input::InMemory(shared), &mut mapped)
            .unwrap();
        assert!(one == mapped, "chunk {chunk}: in memory differs");
    }
}

/// verify reads the tar-split: a changed byte in its frame, or a TOC whose
/// `tarSplitDigest` no longer names it, is reported.
#[test]
fn verify_catches_a_damaged_tar_split() {
    let tar = std::fs::read(testdata().join("sample-layer.tar")).unwrap();
    let mut blob = Vec::new();
    converter(4 << 20, 2).convert(&tar, &mut blob).unwrap();
    let footer = parse_footer(&blob[blob.len() - 72..], blob.len() as u64)
        .unwrap()
        .unwrap();
    // The tar-split frame sits between the TOC frame and the footer.
    let split_start = footer.manifest_offset + footer.toc_compressed + 8;
    let mut bad = blob.clone();
    bad[split_start as usize + 20] ^= 0x40;
    let report = verify(&bad[..], &VerifyOptions::default());
    assert!(!report.is_valid());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::TarSplit),
        "{:?}",
        report.problems
    );
}

#[test]
fn the_option_is_checked_once_in_build() {
    let err = Converter::builder()
        .toc_format(TocFormat::Containers)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption(m) if m.contains("gzip")),
        "{err}"
    );
    let err = Converter::builder()
        .compression(Compression::ZstdChunked)
        .toc_format(TocFormat::Containers)
        .min_chunk_size(1 << 20)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err}");
    assert_eq!(
        "containers".parse::<TocFormat>().unwrap(),
        TocFormat::Containers
    );
    assert_eq!("stargz".parse::<TocFormat>().unwrap(), TocFormat::Stargz);
    assert!("c64".parse::<TocFormat>().is_err());
    // The default stays the stargz dialect.
    let c = Converter::builder()
        .compression(Compression::ZstdChunked)
        .build()
        .unwrap();
    assert_eq!(c.toc_format(), TocFormat::Stargz);
}

/// Times the containers TOC cannot hold (Go's years 0-9999) are refused
/// by entry and offset, not written wrong.
#[test]
fn a_time_outside_the_years_a_toc_holds_is_refused() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_cksum();
    b.append_data(&mut h, "ok", &b"1"[..]).unwrap();
    b.append_pax_extensions([("mtime", &b"300000000000"[..])])
        .unwrap();
    b.append_data(&mut h, "future", &b"2"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let err = converter(4 << 20, 1).convert(&tar, Vec::new()).unwrap_err();
    match &err {
        Error::UnsupportedInDialect { entry, offset, .. } => {
            assert_eq!((entry.as_str(), *offset), ("future", 2048), "{err}")
        }
        other => panic!("{other}"),
    }
    // The stargz dialect writes it (its times are whole seconds, any year).
    Converter::builder()
        .compression(Compression::ZstdChunked)
        .build()
        .unwrap()
        .convert(&tar, Vec::new())
        .unwrap();
}
