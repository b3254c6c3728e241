//! The zstd:chunked writer, stargz dialect (docs/zstd-chunked-format.md §3,
//! §7.1-7.3): every input byte in data frames, so the whole blob
//! decompresses to the input tar; every TOC offset a frame start; the TOC in
//! a skippable frame; the 40-byte footer; the §7.2 annotations; the same
//! bytes for any thread count. Interop with the reference is in
//! `zstd_chunked_interop.rs`.

use crate::common::{fixture_tars, testdata, unzstd};
use estargz_core::internals::zstd_chunked::{frame_starts, parse_footer};
use estargz_core::{
    Compression, ConvertReport, Converter, Digest, EntryType, Error, Input, SharedInput, Toc,
    DEFAULT_ZSTD_LEVEL, MEDIA_TYPE_LAYER_ZSTD,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Every valid fixture tar, decompressed when it is a tar.gz: (name, tar).
fn valid_tars() -> Vec<(String, Vec<u8>)> {
    let out = fixture_tars("valid");
    assert!(out.len() > 20, "fixtures missing: {}", out.len());
    out
}

fn zstd_converter(chunk_size: u64, min_chunk_size: u64, threads: usize) -> Converter {
    Converter::builder()
        .compression(Compression::ZstdChunked)
        .chunk_size(chunk_size)
        .min_chunk_size(min_chunk_size)
        .threads(Some(threads))
        .build()
        .unwrap()
}

fn convert(converter: &Converter, input: &[u8]) -> (Vec<u8>, ConvertReport) {
    let mut blob = Vec::new();
    let report = converter.convert(input, &mut blob).unwrap();
    (blob, report)
}

/// The blob's layout, checked frame by frame: data frames written as
/// §7.3 rule 2 says, then exactly two skippable frames (TOC, footer).
/// Returns the data frame starts and the TOC skippable frame's offset.
fn frame_layout(blob: &[u8]) -> (BTreeSet<u64>, u64) {
    let (data, skippable) = frame_starts(blob).unwrap();
    if let (Some(last), Some(first)) = (data.last(), skippable.first()) {
        assert!(last < first, "a data frame after the TOC");
    }
    assert_eq!(skippable.len(), 2, "TOC and footer frames: {skippable:?}");
    assert_eq!(skippable[1] as usize, blob.len() - 48, "footer frame");
    (data.into_iter().collect(), skippable[0])
}

/// Checks everything the writer promises about one blob of `tar`; returns
/// the TOC.
fn check_blob(label: &str, tar: &[u8], blob: &[u8], report: &ConvertReport) -> Toc {
    assert_eq!(unzstd(blob), tar, "{label}: not lossless");
    assert_eq!(report.compression, Compression::ZstdChunked);
    assert_eq!(report.blob.diff_id, Digest::of(tar), "{label}");
    assert_eq!(report.blob.uncompressed_size, tar.len() as u64, "{label}");
    assert_eq!(report.tar_size, tar.len() as u64, "{label}");
    assert_eq!(report.blob.digest, Digest::of(blob), "{label}");
    assert_eq!(report.blob.size, blob.len() as u64, "{label}");

    let (starts, toc_at) = frame_layout(blob);
    assert_eq!(report.toc_offset, toc_at, "{label}");
    let footer = parse_footer(&blob[blob.len() - 48..], blob.len() as u64)
        .unwrap()
        .expect("a zstd:chunked footer");
    assert_eq!(footer.manifest_offset, toc_at + 8, "{label}");
    assert_eq!(footer.manifest_type, 1);
    assert_eq!(footer.payload_len, 40);
    assert!(!footer.tar_split);
    let frame = &blob[footer.manifest_offset as usize..][..footer.toc_compressed as usize];
    assert_eq!(
        footer.manifest_offset + footer.toc_compressed,
        blob.len() as u64 - 48,
        "{label}: the footer follows the TOC frame"
    );
    let json = zstd::decode_all(frame).unwrap();
    assert_eq!(json.len() as u64, footer.toc_uncompressed, "{label}");
    assert_eq!(report.toc_digest, Digest::of(&json), "{label}");
    let checksum = Digest::of(frame);
    assert_eq!(report.manifest_checksum, Some(checksum), "{label}");

    let a = report.annotations();
    let position = format!(
        "{}:{}:{}:1",
        footer.manifest_offset, footer.toc_compressed, footer.toc_uncompressed
    );
    let want = [
        (
            "containerd.io/snapshot/stargz/toc.digest",
            report.toc_digest.to_string(),
        ),
        (
            "io.containers.estargz.uncompressed-size",
            tar.len().to_string(),
        ),
        (
            "io.containers.zstd-chunked.manifest-checksum",
            checksum.to_string(),
        ),
        ("io.containers.zstd-chunked.manifest-position", position),
    ];
    assert_eq!(
        a,
        want.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        "{label}"
    );

    let toc: Toc = serde_json::from_slice(&json).unwrap();
    for e in &toc.entries {
        let has_data = (e.kind == EntryType::Reg && e.size > 0) || e.kind == EntryType::Chunk;
        if has_data {
            assert!(
                starts.contains(&(e.offset as u64)),
                "{label}: {} offset {} is not a frame start ({starts:?})",
                e.name,
                e.offset
            );
        }
    }
    toc
}

#[test]
fn every_valid_tar_decompresses_to_itself() {
    let converter = zstd_converter(4 << 20, 0, 2);
    for (name, tar) in valid_tars() {
        let (blob, report) = convert(&converter, &tar);
        check_blob(&name, &tar, &blob, &report);
        // A tar.gz input gives the same blob as its tar.
        let path = testdata().join("tars/valid").join(&name);
        if name.ends_with(".gz") {
            let gz = std::fs::read(path).unwrap();
            assert_eq!(convert(&converter, &gz).0, blob, "{name}");
        }
    }
}

#[test]
fn small_chunks_and_shared_frames_stay_lossless() {
    let tar = std::fs::read(testdata().join("sample-layer.tar")).unwrap();
    for (chunk, min) in [(4096, 0), (1000, 0), (4096, 64 << 10), (1 << 20, 1 << 20)] {
        let (blob, report) = convert(&zstd_converter(chunk, min, 2), &tar);
        let toc = check_blob(&format!("chunk {chunk} min {min}"), &tar, &blob, &report);
        let inner = toc.entries.iter().filter(|e| e.inner_offset > 0).count();
        assert_eq!(inner > 0, min > 0, "chunk {chunk} min {min}");
        if chunk == 1000 {
            assert!(report.chunks > report.files, "files were chunked");
        }
    }
}

#[test]
fn same_bytes_for_any_thread_count_and_input_kind() {
    let tar = std::fs::read(testdata().join("sample-layer.tar")).unwrap();
    let (one, report) = convert(&zstd_converter(8192, 0, 1), &tar);
    for threads in [2, 3, 8] {
        let (blob, r) = convert(&zstd_converter(8192, 0, threads), &tar);
        assert!(blob == one, "{threads} threads");
        assert_eq!(r, report);
    }
    let shared: SharedInput = Arc::new(tar.clone());
    let mut mapped = Vec::new();
    zstd_converter(8192, 0, 4)
        .convert(Input::from(shared), &mut mapped)
        .unwrap();
    assert!(mapped == one, "in memory");
}

#[test]
fn gzip_is_still_the_default_and_unchanged() {
    let tar = std::fs::read(testdata().join("sample-layer.tar")).unwrap();
    let (default, report) = convert(&Converter::new(), &tar);
    let gzip = Converter::builder()
        .compression(Compression::Gzip)
        .build()
        .unwrap();
    assert!(convert(&gzip, &tar).0 == default);
    assert_eq!(report.compression, Compression::Gzip);
    assert_eq!(report.manifest_checksum, None);
    assert_eq!(report.annotations().len(), 2);
    assert_eq!(&default[..2], &[0x1f, 0x8b]);
}

#[test]
fn levels_are_checked_per_codec() {
    let zstd = |level| {
        Converter::builder()
            .compression(Compression::ZstdChunked)
            .level(level)
            .build()
    };
    for bad in [0, 23, 100] {
        assert!(
            matches!(zstd(bad), Err(Error::InvalidOption(_))),
            "zstd level {bad}"
        );
    }
    for good in [1, 19, 22] {
        assert_eq!(zstd(good).unwrap().level(), good);
    }
    let gzip = |level| Converter::builder().level(level).build();
    assert!(matches!(gzip(13), Err(Error::InvalidOption(_))));
    assert_eq!(gzip(0).unwrap().level(), 0);
    let default = Converter::builder()
        .compression(Compression::ZstdChunked)
        .build()
        .unwrap();
    assert_eq!(default.level(), DEFAULT_ZSTD_LEVEL);
    assert_eq!(Converter::new().level(), estargz_core::DEFAULT_LEVEL);
    let external = Converter::builder()
        .compression(Compression::ZstdChunked)
        .external_toc(true)
        .build();
    assert!(matches!(external, Err(Error::InvalidOption(_))));
}

#[test]
fn high_levels_keep_the_window_small() {
    let tar = std::fs::read(testdata().join("sample-layer.tar")).unwrap();
    for level in [1, 19, 22] {
        let converter = Converter::builder()
            .compression(Compression::ZstdChunked)
            .level(level)
            .threads(Some(2))
            .build()
            .unwrap();
        let (blob, report) = convert(&converter, &tar);
        // check_written refuses windows over 8 MiB (§7.3 rule 2).
        check_blob(&format!("level {level}"), &tar, &blob, &report);
    }
}

#[test]
fn empty_input_is_refused_as_for_gzip() {
    let mut blob = Vec::new();
    let err = zstd_converter(4 << 20, 0, 1).convert(&[][..], &mut blob);
    assert!(matches!(err, Err(Error::EmptyInput)), "{err:?}");
    assert!(matches!(
        Converter::new().convert(&[][..], &mut blob),
        Err(Error::EmptyInput)
    ));
}

#[test]
fn names_and_media_type() {
    assert_eq!(
        "zstd:chunked".parse::<Compression>().unwrap(),
        Compression::ZstdChunked
    );
    assert_eq!("gzip".parse::<Compression>().unwrap(), Compression::Gzip);
    assert!("zstd".parse::<Compression>().is_err());
    assert_eq!(Compression::ZstdChunked.to_string(), "zstd:chunked");
    assert_eq!(Compression::ZstdChunked.media_type(), MEDIA_TYPE_LAYER_ZSTD);
    assert_eq!(
        MEDIA_TYPE_LAYER_ZSTD,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

/// Tars the TOC cannot describe (sparse files, spec §7.1) or that are not
/// tars are refused as for gzip, with the same error.
#[test]
fn invalid_and_sparse_tars_are_refused_as_for_gzip() {
    let mut seen = 0;
    for dir in ["tars/invalid", "tars/sparse"] {
        for entry in std::fs::read_dir(testdata().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let mut sink = Vec::new();
            let gzip = Converter::new().convert(&bytes, &mut sink);
            let zstd = zstd_converter(4 << 20, 0, 2).convert(&bytes, &mut sink);
            match (gzip, zstd) {
                (Err(g), Err(z)) => assert_eq!(g.to_string(), z.to_string(), "{path:?}"),
                (Ok(_), Ok(_)) => {}
                (g, z) => panic!("{path:?}: gzip {g:?}, zstd {z:?}"),
            }
            if dir == "tars/sparse" {
                let mut sink = Vec::new();
                let zstd = zstd_converter(4 << 20, 0, 2).convert(&bytes, &mut sink);
                assert!(
                    matches!(zstd, Err(Error::SparseEntry { .. })),
                    "{path:?}: {zstd:?}"
                );
            }
            seen += 1;
        }
    }
    assert!(seen > 15, "fixtures missing: {seen}");
}
