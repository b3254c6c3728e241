//! Our zstd:chunked blobs (stargz dialect) read by the reference, for real,
//! through its driver `estargz-ref` (docs/zstd-chunked-format.md §10): it
//! verifies them against our TOC digest, every chunk digest included, and
//! unpacks them to the input tar byte for byte.

use crate::common::{read_tar, run_reference, testdata};

use estargz_core::{Compression, Converter, Digest};

/// Converts `tar` to zstd:chunked, then has the reference verify and
/// unpack it.
fn check_with_reference(label: &str, tar: &[u8], chunk_size: u64, min_chunk_size: u64) {
    let converter = Converter::builder()
        .compression(Compression::ZstdChunked)
        .chunk_size(chunk_size)
        .min_chunk_size(min_chunk_size)
        .build()
        .unwrap();
    let mut blob = Vec::new();
    let report = converter.convert(tar, &mut blob).unwrap();
    assert_eq!(report.blob.diff_id, Digest::of(tar), "{label}");
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("blob");
    std::fs::write(&blob_path, &blob).unwrap();
    let blob_arg = blob_path.to_str().unwrap();

    let digest = report.toc_digest.to_string();
    let (ok, out, err) = run_reference(&["verify", "-toc-digest", &digest, blob_arg]);
    let empty_layer = report.toc_entries == 0;
    if empty_layer {
        // v0.12.0 has no root for an empty TOC (spec §8.1 #13), as for gzip.
        assert!(!ok && err.contains("no root"), "{label}: {out}{err}");
    } else if min_chunk_size > 0 {
        // v0.12.0 predates MinChunkSize (innerOffset, v0.13.0): it takes
        // two chunks at one offset for a broken TOC, as for gzip blobs.
        assert!(!ok && err.contains("found twice"), "{label}: {out}{err}");
    } else {
        assert!(ok, "{label}: estargz-ref verify: {out}{err}");
        assert!(out.contains(&digest), "{label}: {out}");
    }

    let unpacked = dir.path().join("out.tar");
    let (ok, out, err) = run_reference(&["unpack", blob_arg, unpacked.to_str().unwrap()]);
    assert!(ok, "{label}: estargz-ref unpack: {out}{err}");
    let back = std::fs::read(&unpacked).unwrap();
    assert!(back == tar, "{label}: unpacked tar differs");

    if empty_layer || min_chunk_size > 0 {
        return;
    }
    // A wrong TOC digest is refused: the check above is not vacuous.
    let wrong = Digest::of(b"not the TOC").to_string();
    let (ok, _, _) = run_reference(&["verify", "-toc-digest", &wrong, blob_arg]);
    assert!(!ok, "{label}: estargz-ref accepted a wrong TOC digest");
}

#[test]
fn reference_verifies_and_unpacks_every_valid_tar() {
    let mut seen = 0;
    for entry in std::fs::read_dir(testdata().join("tars/valid")).unwrap() {
        let path = entry.unwrap().path();
        let tar = read_tar(&path);
        check_with_reference(&path.display().to_string(), &tar, 4 << 20, 0);
        seen += 1;
    }
    assert!(seen > 20, "fixtures missing: {seen}");
}

#[test]
fn reference_reads_chunked_files_and_shared_frames() {
    let tar = std::fs::read(testdata().join("sample-layer.tar")).unwrap();
    check_with_reference("default", &tar, 4 << 20, 0);
    check_with_reference("chunk 4096", &tar, 4096, 0);
    check_with_reference("chunk 4096, min 64 KiB", &tar, 4096, 64 << 10);
}
