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

/// A file of a few MiB that exercises every rule of containers/storage's
/// chunker (spec §4.3): noise (with its natural short zero runs), text,
/// zero runs of 1,023, 1,024 and 300,000 bytes, and a run at the end; a
/// file that starts with a run; a file of zeros only; a small text file.
fn chunking_tar() -> Vec<u8> {
    use estargz_test_support::noise::noise;
    let text: Vec<u8> = (0..20_000)
        .flat_map(|i| format!("line {i}: the quick brown fox, {}\n", i * 7919 % 1000).into_bytes())
        .collect();
    let mut mixed = noise(1, 1 << 20);
    mixed.extend(vec![0; 300_000]);
    mixed.extend(&text);
    mixed.extend(vec![0; 1023]);
    mixed.extend(noise(2, 10_000));
    mixed.extend(vec![0; 1024]);
    mixed.extend(noise(3, 1 << 20));
    mixed.extend(vec![0; 2000]);
    let mut starts = vec![0; 1500];
    starts.extend(noise(4, 100_000));
    estargz_test_support::tar_of(&[
        ("data/", b""),
        ("data/mixed.bin", &mixed),
        ("data/starts-with-zeros.bin", &starts),
        ("data/zeros.bin", &[0; 8192]),
        ("data/small.txt", b"Some contents"),
    ])
}

/// An OCI layout in `dir` with one image, `latest`, of one uncompressed
/// layer: `tar`.
fn oci_layout(dir: &std::path::Path, tar: &[u8]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = Digest::of(bytes);
        std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
        serde_json::json!({"digest": digest.to_string(), "size": bytes.len()})
    };
    let layer = put(tar);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    });
    let config = put(&serde_json::to_vec(&config).unwrap());
    let with_type = |mut d: serde_json::Value, t: &str| {
        d["mediaType"] = t.into();
        d
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": with_type(config, "application/vnd.oci.image.config.v1+json"),
        "layers": [with_type(layer, "application/vnd.oci.image.layer.v1.tar")],
    });
    let mut manifest = with_type(
        put(&serde_json::to_vec(&manifest).unwrap()),
        "application/vnd.oci.image.manifest.v1+json",
    );
    manifest["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// The first layer of the first image of an OCI layout.
fn oci_first_layer(dir: &std::path::Path) -> Vec<u8> {
    let json = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = json(index["manifests"][0]["digest"].as_str().unwrap());
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let hex = layer.strip_prefix("sha256:").unwrap();
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

/// Spec §4.3 against a real containers/storage: Debian's skopeo (1.9.3,
/// containers/storage 1.43, spec §10) converts a tar to its 40-byte
/// containers dialect; our containers-dialect TOC of the same tar lists
/// the same chunks (offsets in the file, sizes, `chunkType`) for every
/// file, and the chunks are what the test data is for: a `zeros` chunk
/// of 300,000 bytes, dozens of rolling-sum chunks.
#[test]
fn chunks_equal_those_skopeo_writes() {
    use estargz_test_support::chunker::{chunks, toc_chunks};
    let tar = chunking_tar();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    oci_layout(&input, &tar);
    let status = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--dest-compress-format", "zstd:chunked"])
        .arg(format!("oci:{}:latest", input.display()))
        .arg(format!("oci:{}:latest", output.display()))
        .status()
        .expect("skopeo (scripts/deps.sh installs it)");
    assert!(status.success(), "skopeo copy: {status}");
    let theirs = oci_first_layer(&output);
    assert!(
        theirs.ends_with(b"GnUlInUx"),
        "not the 40-byte containers dialect"
    );
    let mut ours = Vec::new();
    converter(estargz_core::DEFAULT_CHUNK_SIZE, 2)
        .convert(Input::in_memory(tar.clone()), &mut ours)
        .unwrap();
    let (theirs, ours) = (toc_chunks(&theirs), toc_chunks(&ours));
    assert_eq!(ours, theirs);
    let mixed = &theirs
        .iter()
        .find(|(n, _)| n == "data/mixed.bin")
        .unwrap()
        .1;
    assert!(mixed.len() > 20, "{} chunks", mixed.len());
    let zeros: Vec<_> = mixed.iter().filter(|c| c.zeros).map(|c| c.size).collect();
    assert_eq!(zeros, [300_000, 1024, 2000]);
    // The independent chunker agrees with both on every file.
    let files: Vec<(String, Vec<estargz_test_support::chunker::Chunk>)> = [
        "data/mixed.bin",
        "data/starts-with-zeros.bin",
        "data/zeros.bin",
        "data/small.txt",
    ]
    .iter()
    .map(|n| {
        (
            n.to_string(),
            theirs.iter().find(|(t, _)| t == n).unwrap().1.clone(),
        )
    })
    .collect();
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().unwrap() {
        use std::io::Read;
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let Some((_, want)) = files.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let mut independent = chunks(&data);
        if independent.len() == 1 {
            // A file of one chunk has no chunkType in either TOC.
            independent[0].zeros = false;
        }
        assert_eq!(&independent, want, "{name}");
    }
}
