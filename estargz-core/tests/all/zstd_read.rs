//! Reading zstd:chunked (issue #19; spec ../shared/docs/zstd-chunked-format.md):
//! the fixtures of testdata/blobs/zstd/ (stargz dialect by the reference
//! driver, containers dialect by Debian's skopeo) open, list, read, verify
//! and unpack here; damaged footers, TOCs and frames are errors with
//! offsets, never panics; caps hold before allocation; and blobs the
//! reference driver writes now read and verify here.
//!
//! Expected contents come from an independent decoder (`zstd::decode_all`
//! of the whole blob, parsed by the `tar` crate) and from the sidecars the
//! writers' own reports filled.

use crate::common::run_reference;
use crate::common::tar_writer::*;
use estargz_core::{
    blob_info_of, unpack_tar, verify, Blob, Digest, Error, FooterKind, OpenOptions, ProblemKind,
    ReadAt, VerifyOptions, ZstdDialect,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use estargz_test_support::{zstd_fixture as fixture_path, ZSTD_FIXTURES as FIXTURES};

fn fixture(name: &str) -> (Vec<u8>, Value) {
    let blob = std::fs::read(fixture_path(&format!("{name}.zst"))).unwrap();
    let sidecar = std::fs::read(fixture_path(&format!("{name}.json"))).unwrap();
    (blob, serde_json::from_slice(&sidecar).unwrap())
}

/// Regular files of a tar, by name as the `tar` crate reads it.
fn tar_files(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

fn sha(b: &[u8]) -> String {
    Digest::of(b).to_string()
}

/// Every fixture opens with a 40-byte zstd:chunked footer, in the dialect
/// its writer used, with the digests its writer reported; every file reads
/// back as the decompressed tar holds it.
#[test]
fn fixtures_open_list_and_read() {
    let mut files_read = 0;
    for name in FIXTURES {
        let (bytes, sidecar) = fixture(name);
        let blob = Blob::open(&bytes[..], &OpenOptions::default()).unwrap();
        assert_eq!(blob.kind(), FooterKind::ZstdChunked40, "{name}");
        assert!(blob.kind().is_zstd_chunked());
        let z = blob.zstd_chunked().expect("zstd:chunked info");
        let dialect = match z.dialect {
            ZstdDialect::Stargz => "stargz",
            ZstdDialect::Containers => "containers",
        };
        assert_eq!(dialect, sidecar["dialect"], "{name}");
        assert_eq!(z.manifest_position, blob_position(&bytes), "{name}");
        match z.dialect {
            ZstdDialect::Stargz => assert_eq!(
                blob.toc_digest().to_string(),
                sidecar["ref"]["toc_digest"],
                "{name}"
            ),
            ZstdDialect::Containers => {
                let ann = &sidecar["layer"]["annotations"];
                assert_eq!(
                    z.manifest_checksum.to_string(),
                    ann["io.containers.zstd-chunked.manifest-checksum"],
                    "{name}"
                );
                assert_eq!(
                    z.manifest_position,
                    ann["io.containers.zstd-chunked.manifest-position"]
                );
            }
        }
        let tar = zstd::decode_all(&bytes[..]).unwrap();
        let files = tar_files(&tar);
        let listed: Vec<String> = blob
            .index()
            .walk()
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        for (path, data) in &files {
            assert!(
                listed.iter().any(|l| l == path),
                "{name}: {path} not listed in {listed:?}"
            );
            assert!(blob.read_file(path).unwrap() == *data, "{name}: {path}");
            // Random access inside the file, across chunk boundaries.
            if data.len() > 10 {
                let file = blob.open_file(path).unwrap();
                let mut buf = vec![0u8; data.len() - 7];
                assert_eq!(file.read_at(5, &mut buf).unwrap(), data.len() - 7);
                assert!(buf[..] == data[5..data.len() - 2], "{name}: {path}");
            }
            files_read += 1;
        }
    }
    assert!(files_read >= 10, "{files_read}");
}

/// `M:L:U:1` from the blob's last 48 bytes.
fn blob_position(blob: &[u8]) -> String {
    let p = &blob[blob.len() - 40..];
    let n = |i: usize| u64::from_le_bytes(p[i * 8..i * 8 + 8].try_into().unwrap());
    format!("{}:{}:{}:{}", n(0), n(1), n(2), n(3))
}

/// verify is clean; unpack_tar gives exactly the whole blob decompressed
/// (the DiffID input), which is the source tar for the lossless stargz
/// blobs; blob_info_of reports that DiffID.
#[test]
fn fixtures_verify_unpack_and_diff_id() {
    for name in FIXTURES {
        let (bytes, sidecar) = fixture(name);
        let report = verify(&bytes[..], &VerifyOptions::default());
        assert!(report.is_valid(), "{name}: {:?}", report.problems);
        assert_eq!(report.footer, Some(FooterKind::ZstdChunked40));
        assert!(report.manifest_checksum.is_some() && report.zstd_dialect.is_some());
        let mut tar = Vec::new();
        let n = unpack_tar(&bytes[..], &mut tar).unwrap();
        assert_eq!(n, tar.len() as u64);
        let whole = zstd::decode_all(&bytes[..]).unwrap();
        assert!(tar == whole, "{name}: unpack_tar differs from zstd -dc");
        let info = blob_info_of(&bytes[..]).unwrap();
        assert_eq!(info.diff_id, Digest::of(&whole), "{name}");
        assert_eq!(info.uncompressed_size, whole.len() as u64);
        assert_eq!(info.digest, Digest::of(&bytes));
        if let Some(diff_id) = sidecar["ref"]["diff_id"].as_str() {
            assert_eq!(info.diff_id.to_string(), diff_id, "{name}");
        }
        if name.starts_with("s-lossless") {
            assert_eq!(info.diff_id.hex(), sidecar["source_sha256"], "{name}");
        }
        // The blob's own tar stream reader agrees.
        let blob = Blob::open(&bytes[..], &OpenOptions::default()).unwrap();
        let mut stream = Vec::new();
        blob.tar_stream().read_to_end(&mut stream).unwrap();
        assert!(stream == whole, "{name}");
    }
    // Z22: skopeo dropped small.tar's trailing 7,680 bytes.
    let (bytes, _) = fixture("c40-small");
    let mut tar = Vec::new();
    unpack_tar(&bytes[..], &mut tar).unwrap();
    let small = std::fs::read(fixture_path("small.tar")).unwrap();
    assert!(tar.len() == 2560 && tar[..] == small[..2560]);
}

/// An expected TOC digest matches either name of the TOC (Z32), and a
/// wrong one is reported with both.
#[test]
fn expected_toc_digest_is_either_digest() {
    let (bytes, _) = fixture("c40-small");
    let blob = Blob::open(&bytes[..], &OpenOptions::default()).unwrap();
    let z = blob.zstd_chunked().unwrap();
    for good in [blob.toc_digest(), z.manifest_checksum] {
        let mut opts = VerifyOptions::default();
        opts.expected_toc_digest = Some(good);
        assert!(verify(&bytes[..], &opts).is_valid());
    }
    let mut opts = VerifyOptions::default();
    opts.expected_toc_digest = Some(Digest::of(b"wrong"));
    let report = verify(&bytes[..], &opts);
    let p = &report.problems[0];
    assert_eq!(p.kind, ProblemKind::TocDigestMismatch);
    assert!(p.message.contains(&blob.toc_digest().to_string()), "{p}");
    assert!(p.message.contains(&z.manifest_checksum.to_string()), "{p}");
}

// ---------------------------------------------------------------------------
// Blobs built here, stargz dialect: data frames, TOC skippable frame, footer.
// ---------------------------------------------------------------------------

fn skippable(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x50, 0x2a, 0x4d, 0x18];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The 48-byte footer: skippable header, M, L, U, type, `GnUlInUx`.
fn footer40(m: u64, l: u64, u: u64, kind: u64) -> Vec<u8> {
    let mut out = vec![0x50, 0x2a, 0x4d, 0x18, 40, 0, 0, 0];
    for v in [m, l, u, kind] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"GnUlInUx");
    out
}

/// `payload` (data frames), then the TOC `json` in its skippable frame,
/// then the footer.
pub(crate) fn assemble(payload: &[u8], json: &[u8]) -> Vec<u8> {
    let frame = zstd::bulk::compress(json, 3).unwrap();
    let mut blob = payload.to_vec();
    let m = blob.len() as u64 + 8;
    blob.extend_from_slice(&skippable(&frame));
    blob.extend_from_slice(&footer40(m, frame.len() as u64, json.len() as u64, 1));
    blob
}

/// A tar of one file `name` with `data`, as stargz-dialect frames: one
/// for the header, one for the data, padding and end-of-archive. Returns
/// the payload, the data frame's offset, and the TOC JSON.
fn one_file(name: &str, data: &[u8]) -> (Vec<u8>, u64, Vec<u8>) {
    let tar = build_tar(Format::Ustar, &[file(name, data)], 0);
    let mut payload = zstd::bulk::compress(&tar[..512], 3).unwrap();
    let offset = payload.len() as u64;
    payload.extend_from_slice(&zstd::bulk::compress(&tar[512..], 3).unwrap());
    let json = toc_json(name, data.len() as u64, offset, &sha(data));
    (payload, offset, json)
}

fn toc_json(name: &str, size: u64, offset: u64, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "entries": [{
            "name": name, "type": "reg", "size": size, "offset": offset,
            "digest": digest, "chunkDigest": digest,
        }]
    }))
    .unwrap()
}

#[test]
fn built_blob_reads_and_verifies() {
    let data = b"hello, zstd:chunked\n".repeat(100);
    let (payload, _, json) = one_file("a.txt", &data);
    let blob = assemble(&payload, &json);
    let opened = Blob::open(&blob[..], &OpenOptions::default()).unwrap();
    assert_eq!(opened.read_file("a.txt").unwrap(), data);
    let report = verify(&blob[..], &VerifyOptions::default());
    assert!(report.is_valid(), "{:?}", report.problems);
    assert_eq!(report.members, 2);
}

/// A flipped byte inside a data frame: `verify` names the chunk's frame
/// offset, and reading the file is an error with that offset.
#[test]
fn corrupted_chunk_is_reported_with_its_offset() {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (payload, offset, json) = one_file("data.bin", &data);
    let mut blob = assemble(&payload, &json);
    blob[offset as usize + 20] ^= 0x40;
    let opened = Blob::open(&blob[..], &OpenOptions::default()).unwrap();
    match opened.read_file("data.bin") {
        Err(Error::CorruptData {
            offset: at, entry, ..
        }) => {
            assert_eq!((at, entry.as_str()), (offset, "data.bin"))
        }
        other => panic!("{other:?}"),
    }
    let report = verify(&blob[..], &VerifyOptions::default());
    assert!(!report.is_valid());
    assert!(
        report.problems.iter().any(|p| p.offset == Some(offset)
            && matches!(p.kind, ProblemKind::ChunkRead | ProblemKind::ChunkDigest)),
        "{:?}",
        report.problems
    );
    // The fixture of many chunks, one frame damaged in its middle.
    let (mut bytes, _) = fixture("s-lossless-mixed-c4096");
    let blob = Blob::open(&bytes[..], &OpenOptions::default()).unwrap();
    let node = blob.index().lookup("mixed/text.txt").unwrap();
    let chunk = node.chunks()[node.chunks().len() / 2].clone();
    drop(blob);
    bytes[(chunk.offset() + chunk.next_offset()) as usize / 2] ^= 0x01;
    let blob = Blob::open(&bytes[..], &OpenOptions::default()).unwrap();
    let err = blob.read_file("mixed/text.txt").unwrap_err();
    assert!(
        matches!(err, Error::CorruptData { offset, .. } if offset == chunk.offset()),
        "{err}"
    );
    assert!(
        err.to_string().contains(&chunk.offset().to_string()),
        "{err}"
    );
    let report = verify(&bytes[..], &VerifyOptions::default());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.offset == Some(chunk.offset())),
        "{:?}",
        report.problems
    );
    // unpack fails too, naming the frame.
    let err = unpack_tar(&bytes[..], std::io::sink()).unwrap_err();
    assert!(
        matches!(err, Error::ZstdChunked { offset, .. } if offset == chunk.offset()),
        "{err}"
    );
}

/// Footer fields that cannot be right (spec §9 Z4–Z7): each an error
/// naming an offset, none a panic, none an allocation of what they claim.
#[test]
fn broken_footers_are_errors_with_offsets() {
    let (blob, _) = fixture("s-lossless-small");
    let n = blob.len();
    let footer_at = (n - 48) as u64;
    let with_footer = |m: u64, l: u64, u: u64, kind: u64| {
        let mut b = blob[..n - 48].to_vec();
        b.extend_from_slice(&footer40(m, l, u, kind));
        b
    };
    // 173:274:566:1 is the good one.
    assert!(Blob::open(&with_footer(173, 274, 566, 1)[..], &OpenOptions::default()).is_ok());
    for (what, bad) in [
        ("type 7", with_footer(173, 274, 566, 7)),
        ("M = 0", with_footer(0, 274, 566, 1)),
        ("M = 3", with_footer(3, 274, 566, 1)),
        ("M past the footer", with_footer(400, 274, 566, 1)),
        ("L = 0", with_footer(173, 0, 566, 1)),
    ] {
        match Blob::open(&bad[..], &OpenOptions::default()) {
            Err(Error::ZstdChunked { offset, reason }) => {
                assert_eq!(offset, footer_at, "{what}: {reason}");
                assert!(reason.contains(&footer_at.to_string()), "{what}: {reason}");
            }
            other => panic!("{what}: {other:?}"),
        }
        let report = verify(&bad[..], &VerifyOptions::default());
        assert_eq!(report.problems[0].kind, ProblemKind::Footer, "{what}");
        assert_eq!(report.problems[0].offset, Some(footer_at), "{what}");
    }
    // U wrong: the TOC frame decodes to another length.
    let err = Blob::open(&with_footer(173, 274, 565, 1)[..], &OpenOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::ZstdChunked { offset: 173, .. }),
        "{err}"
    );
    // GNUlInUx (the 64-byte magic) in the 40-byte layout.
    let mut b = blob.clone();
    b[n - 7] = b'N';
    assert!(matches!(
        Blob::open(&b[..], &OpenOptions::default()),
        Err(Error::ZstdChunked { .. })
    ));
    // Bytes at M - 8 not the TOC's skippable header (Z6).
    let mut b = blob.clone();
    b[165] = 0x51;
    let err = Blob::open(&b[..], &OpenOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::ZstdChunked { offset: 165, .. }),
        "{err}"
    );
    // Blobs of 0, 39 and 47 bytes (Z7).
    for len in [0, 39, 47] {
        let tail = &blob[n - len..];
        assert!(Blob::open(tail, &OpenOptions::default()).is_err(), "{len}");
        assert!(!verify(tail, &VerifyOptions::default()).is_valid());
    }
}

/// Counts the bytes read from a slice.
#[derive(Debug)]
struct Counting<'a> {
    bytes: &'a [u8],
    read: AtomicU64,
}

impl ReadAt for Counting<'_> {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes[offset as usize..].len().min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[offset as usize..offset as usize + n]);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Caps are checked against the footer's lengths before the TOC is read
/// or anything of that size allocated (spec §7.5, Z5 L = 2^40, Z26).
#[test]
fn toc_limits_hold_before_reading() {
    let (blob, _) = fixture("s-lossless-small");
    let n = blob.len();
    let huge = |l: u64, u: u64| {
        let mut b = blob[..n - 48].to_vec();
        b.extend_from_slice(&footer40(173, l, u, 1));
        b
    };
    // A TOC JSON of 2^40 bytes: refused from the footer alone.
    let b = huge(274, 1 << 40);
    let source = Counting {
        bytes: &b,
        read: AtomicU64::new(0),
    };
    match Blob::open(&source, &OpenOptions::default()) {
        Err(Error::LimitExceeded { value, .. }) => assert_eq!(value, 1 << 40),
        other => panic!("{other:?}"),
    }
    assert!(source.read.load(Ordering::Relaxed) <= 72);
    // L = 2^40 runs past the footer: refused by the footer's bounds.
    assert!(Blob::open(&huge(1 << 40, 566)[..], &OpenOptions::default()).is_err());
    // Caps from the options apply to both lengths.
    let mut opts = OpenOptions::default();
    opts.max_toc_json = 565;
    assert!(matches!(
        Blob::open(&blob[..], &opts),
        Err(Error::LimitExceeded {
            value: 566,
            limit: 565,
            ..
        })
    ));
    let mut opts = OpenOptions::default();
    opts.max_toc_compressed = 273;
    assert!(matches!(
        Blob::open(&blob[..], &opts),
        Err(Error::LimitExceeded { value: 274, .. })
    ));
    let mut verify_opts = VerifyOptions::default();
    verify_opts.open = opts;
    let report = verify(&blob[..], &verify_opts);
    assert_eq!(report.problems[0].kind, ProblemKind::Toc);
}

/// Every truncation and every single-byte change of the metadata frames
/// and footer: an error or a blob that opens, never a panic.
#[test]
fn truncated_and_garbled_tails_never_panic() {
    for name in ["s-lossless-small", "c40-small"] {
        let (blob, _) = fixture(name);
        for len in 0..blob.len() {
            let cut = &blob[..len];
            assert!(
                Blob::open(cut, &OpenOptions::default()).is_err(),
                "{name} {len}"
            );
            let _ = verify(cut, &VerifyOptions::default());
            let _ = unpack_tar(cut, std::io::sink());
        }
        let toc_start = blob.len() - 48 - 300;
        for at in toc_start..blob.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = blob.clone();
                b[at] ^= flip;
                if let Ok(opened) = Blob::open(&b[..], &OpenOptions::default()) {
                    let _ = opened.read_file("foo/bar.txt");
                }
                let _ = verify(&b[..], &VerifyOptions::default());
            }
        }
    }
}

/// A regular frame between the TOC and the footer enters the DiffID but
/// no TOC: verify reports it (Z23). A skippable frame between data frames
/// leaves the DiffID alone but no entry reaches it: a verify problem of
/// its own (Z24).
#[test]
fn frames_outside_the_payload_and_skippable_frames_inside() {
    let (blob, _) = fixture("s-lossless-small");
    let n = blob.len();
    let mut b = blob[..n - 48].to_vec();
    b.extend_from_slice(&zstd::bulk::compress(b"extra", 3).unwrap());
    b.extend_from_slice(&blob[n - 48..]);
    let report = verify(&b[..], &VerifyOptions::default());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::TocSlack),
        "{:?}",
        report.problems
    );

    let data = b"some data\n".repeat(50);
    let (payload, offset, _) = one_file("a.txt", &data);
    let extra = skippable(b"hidden");
    let mut with_skippable = payload[..offset as usize].to_vec();
    with_skippable.extend_from_slice(&extra);
    with_skippable.extend_from_slice(&payload[offset as usize..]);
    let moved = offset + extra.len() as u64;
    let json = toc_json("a.txt", data.len() as u64, moved, &sha(&data));
    let b = assemble(&with_skippable, &json);
    let opened = Blob::open(&b[..], &OpenOptions::default()).unwrap();
    assert_eq!(opened.read_file("a.txt").unwrap(), data);
    let report = verify(&b[..], &VerifyOptions::default());
    let kinds: Vec<_> = report.problems.iter().map(|p| (p.kind, p.offset)).collect();
    assert_eq!(kinds, [(ProblemKind::SkippableInPayload, Some(offset))]);
    assert_eq!(
        blob_info_of(&b[..]).unwrap().diff_id,
        blob_info_of(&assemble(&payload, &json)[..])
            .unwrap()
            .diff_id
    );
}

/// An entry whose offset is inside a frame (Z27); a frame with the
/// reserved header bit (Z29): errors naming the entry and offset.
#[test]
fn bad_offsets_and_bad_frame_headers() {
    let data = b"0123456789".repeat(30);
    let (payload, offset, _) = one_file("a.txt", &data);
    let json = toc_json("a.txt", data.len() as u64, offset + 1, &sha(&data));
    let b = assemble(&payload, &json);
    let report = verify(&b[..], &VerifyOptions::default());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::MemberStart
                && p.offset == Some(offset + 1)
                && p.entry.as_deref() == Some("a.txt")
                && p.message.contains("zstd frame")),
        "{:?}",
        report.problems
    );
    let opened = Blob::open(&b[..], &OpenOptions::default()).unwrap();
    assert!(matches!(
        opened.read_file("a.txt"),
        Err(Error::CorruptData { offset: o, .. }) if o == offset + 1
    ));

    let json = toc_json("a.txt", data.len() as u64, offset, &sha(&data));
    let mut b = assemble(&payload, &json);
    b[offset as usize + 4] |= 0x08;
    let opened = Blob::open(&b[..], &OpenOptions::default()).unwrap();
    let err = opened.read_file("a.txt").unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    let report = verify(&b[..], &VerifyOptions::default());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.message.contains("reserved")),
        "{:?}",
        report.problems
    );
    let err = unpack_tar(&b[..], std::io::sink()).unwrap_err();
    assert!(
        matches!(err, Error::ZstdChunked { offset: o, .. } if o == offset),
        "{err}"
    );
}

/// Z30: 32 KiB of RLE blocks expanding to 1 GiB behind a 4-byte chunk:
/// the read decodes 4 bytes, and verify stops at the broken tar.
#[test]
fn decompression_bomb_behind_a_small_chunk() {
    let tar = build_tar(Format::Ustar, &[file("bomb", b"AAAA")], 0);
    let mut payload = zstd::bulk::compress(&tar[..512], 3).unwrap();
    let offset = payload.len() as u64;
    // Frame header: no checksum, no content size, windowLog 17; then 8,192
    // RLE blocks of 128 KiB of 'A', the last one flagged.
    payload.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3]);
    for i in 0..8192 {
        let last = u32::from(i == 8191);
        let bh = (128u32 << 10) << 3 | 1 << 1 | last;
        payload.extend_from_slice(&bh.to_le_bytes()[..3]);
        payload.push(b'A');
    }
    let json = toc_json("bomb", 4, offset, &sha(b"AAAA"));
    let b = assemble(&payload, &json);
    let started = std::time::Instant::now();
    let opened = Blob::open(&b[..], &OpenOptions::default()).unwrap();
    assert_eq!(opened.read_file("bomb").unwrap(), b"AAAA");
    let report = verify(&b[..], &VerifyOptions::default());
    assert!(report
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::PayloadNotTar));
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

/// Z34: blobs the reference driver writes now (`lossless -zstd`, `build
/// -zstd`, small chunks) open, read, verify and unpack here; lossless ones
/// unpack to the input and keep its DiffID.
#[test]
fn reference_zstd_blobs_read_and_verify() {
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let entries = [
        dir("etc"),
        file("etc/hostname", b"box\n"),
        file("etc/empty", b""),
        file("usr/big.bin", &big),
        symlink("usr/link", "big.bin"),
        hardlink("usr/hard", "usr/big.bin"),
        file("usr/text.txt", b"text\n".repeat(5000)),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (format, trailing) in [(Format::Pax, 0), (Format::Gnu, 3000)] {
        let tar = build_tar(format, &entries, trailing);
        let input = dir.path().join("in.tar");
        std::fs::write(&input, &tar).unwrap();
        let files = tar_files(&tar);
        for args in [
            &["lossless", "-zstd"][..],
            &["lossless", "-zstd", "-chunk", "10000"],
            &["build", "-zstd", "-chunk", "65536"],
        ] {
            let out = dir.path().join("out.zst");
            let mut cmd: Vec<&str> = args.to_vec();
            cmd.extend([input.to_str().unwrap(), out.to_str().unwrap()]);
            let (ok, stdout, err) = run_reference(&cmd);
            assert!(ok, "{args:?}: {err}");
            let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
            let bytes = std::fs::read(&out).unwrap();
            let blob = Blob::open(&bytes[..], &OpenOptions::default()).unwrap();
            assert_eq!(blob.zstd_chunked().unwrap().dialect, ZstdDialect::Stargz);
            assert_eq!(
                blob.toc_digest().to_string(),
                report["toc_digest"],
                "{args:?}"
            );
            for (path, data) in &files {
                assert!(blob.read_file(path).unwrap() == *data, "{args:?}: {path}");
            }
            let mut opts = VerifyOptions::default();
            opts.expected_toc_digest = Some(blob.toc_digest());
            let v = verify(&bytes[..], &opts);
            assert!(v.is_valid(), "{args:?}: {:?}", v.problems);
            let mut unpacked = Vec::new();
            unpack_tar(&bytes[..], &mut unpacked).unwrap();
            let info = blob_info_of(&bytes[..]).unwrap();
            assert_eq!(info.diff_id.to_string(), report["diff_id"], "{args:?}");
            assert_eq!(info.diff_id, Digest::of(&unpacked));
            if args[0] == "lossless" {
                assert!(unpacked == tar, "{args:?}: unpack differs from the input");
            }
        }
    }
}
