//! Shared test helpers: build tars, convert, and check blobs with an
//! implementation independent of the crate's own writer (flate2 decoding,
//! hand-rolled member splitting).

pub mod heap;
pub mod tar_writer;
pub use estargz_test_support::reference_driver;

use estargz_core::internals::footer;
use estargz_core::{ConvertReport, Converter, Digest, EntryType, Input, Toc, TocEntry};
use estargz_test_support::spec;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Converts `tar` with `chunk_size` and default options otherwise.
pub fn convert_with(tar: &[u8], chunk_size: u64) -> (Vec<u8>, ConvertReport) {
    convert_min(tar, chunk_size, 0)
}

/// Converts with a chunk size and a minimum chunk size (spec §4.4).
pub fn convert_min(tar: &[u8], chunk_size: u64, min_chunk_size: u64) -> (Vec<u8>, ConvertReport) {
    let opts = Converter::builder()
        .chunk_size(chunk_size)
        .min_chunk_size(min_chunk_size)
        .build()
        .unwrap();
    let mut blob = Vec::new();
    let report = opts.convert(tar, &mut blob).expect("conversion succeeds");
    // Every test that converts through here also checks the in-place path.
    let mut in_place = Vec::new();
    let in_place_report = opts
        .convert(Input::InMemory(Arc::new(tar.to_vec())), &mut in_place)
        .expect("in-memory conversion succeeds");
    assert_eq!(in_place, blob, "convert_in_memory differs from convert");
    assert_eq!(in_place_report, report);
    (blob, report)
}

/// The blob's gzip members: (offset, decompressed bytes).
pub fn members(blob: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        let offset = (blob.len() - rest.len()) as u64;
        let mut dec = flate2::bufread::GzDecoder::new(rest);
        let mut data = Vec::new();
        dec.read_to_end(&mut data)
            .unwrap_or_else(|e| panic!("member at {offset}: {e}"));
        rest = dec.into_inner();
        out.push((offset, data));
    }
    out
}

/// Everything the blob decompresses to.
pub fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(blob)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The workspace's testdata directory.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// A fixture tar, decompressed when it is a tar.gz.
pub fn read_tar(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&bytes)
    } else {
        bytes
    }
}

/// Every tar of `testdata/tars/DIR` as (file name, tar), by name.
pub fn fixture_tars(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(testdata().join("tars").join(dir)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, read_tar(&path)));
    }
    out.sort();
    out
}

/// What a full-pull client sees of a zstd blob: the zstd stream decoder,
/// which passes over skippable frames.
pub fn unzstd(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(blob)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The TOC, its exact JSON and the TOC offset, found through the footer:
/// read as the spec says ([`estargz_test_support::spec`]), and the
/// library's footer parser must agree.
pub fn read_toc(blob: &[u8]) -> (Toc, Vec<u8>, u64) {
    let tail = &blob[blob.len().saturating_sub(footer::FOOTER_SIZE)..];
    let f = footer::parse(tail, blob.len() as u64).unwrap();
    assert_eq!(f.kind, footer::FooterKind::Estargz);
    let toc_offset = spec::toc_offset(blob) as u64;
    assert_eq!(
        f.toc_offset,
        Some(toc_offset),
        "the library reads the footer as the spec does"
    );
    let json = spec::toc_json(blob);
    let toc: Toc = serde_json::from_slice(&json).unwrap();
    (toc, json, toc_offset)
}

/// Checks every invariant of a lossless blob made from `tar` and returns its TOC.
pub fn check_lossless(tar: &[u8], blob: &[u8], report: &ConvertReport, chunk_size: u64) -> Toc {
    let (toc, json, toc_offset) = read_toc(blob);
    check_stream_and_report(tar, blob, report, &json, toc_offset);
    assert_eq!(toc.version, 1);
    assert_eq!(toc.to_json(), json, "TOC re-encodes to the same bytes");
    let members = check_members_tile(tar, blob, toc_offset);
    check_data_entries(&toc, &members, chunk_size);

    // Member starts: 0 (the leading headers) and every data offset (§7.3's
    // count, which assumes the first entry has offset 0, generalised).
    let mut expected: Vec<i64> = toc
        .entries
        .iter()
        .map(|e| e.offset)
        .filter(|&o| o > 0)
        .collect();
    expected.push(0);
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(members.len(), expected.len() + 2, "member count");
    toc
}

/// The decompressed stream is the input tar then the TOC tar, and the
/// report describes exactly this blob.
fn check_stream_and_report(
    tar: &[u8],
    blob: &[u8],
    report: &ConvertReport,
    json: &[u8],
    toc_offset: u64,
) {
    let all = gunzip(blob);
    assert!(
        all.len() >= tar.len() && &all[..tar.len()] == tar,
        "decompressed blob does not start with the input tar"
    );
    assert_eq!(
        &all[tar.len()..],
        &estargz_core::internals::tar_bytes(json)[..],
        "TOC tar follows the input"
    );
    assert_eq!(report.blob.digest, Digest::of(blob));
    assert_eq!(report.blob.size, blob.len() as u64);
    assert_eq!(report.blob.diff_id, Digest::of(&all));
    assert_eq!(report.blob.uncompressed_size, all.len() as u64);
    assert_eq!(report.toc_digest, Digest::of(json));
    assert_eq!(report.toc_offset, toc_offset);
    assert_eq!(report.tar_size, tar.len() as u64);
}

/// The blob's members: payload members that tile `tar`, the TOC member at
/// `toc_offset`, then an empty footer member.
fn check_members_tile(tar: &[u8], blob: &[u8], toc_offset: u64) -> Vec<(u64, Vec<u8>)> {
    let members = members(blob);
    assert_eq!(
        members.last().unwrap().1.len(),
        0,
        "footer is an empty member"
    );
    assert_eq!(members[members.len() - 2].0, toc_offset);
    // Members tile the input: each member is a contiguous piece of the tar.
    let payload: Vec<u8> = members[..members.len() - 2]
        .iter()
        .flat_map(|m| m.1.clone())
        .collect();
    assert_eq!(payload, tar);
    members
}

/// Every data entry starts a member that begins with its chunk; chunks
/// follow the chunkSize rule and together give each file's size and digest.
fn check_data_entries(toc: &Toc, members: &[(u64, Vec<u8>)], chunk_size: u64) {
    let starts: Vec<u64> = members.iter().map(|m| m.0).collect();
    let mut file: Option<(TocEntry, Vec<u8>)> = None;
    for e in &toc.entries {
        match e.kind {
            EntryType::Reg | EntryType::Chunk => {
                if e.kind == EntryType::Reg {
                    check_file_complete(file.take());
                    assert!(!e.digest.is_empty(), "{}: reg has a digest", e.name);
                    file = Some((e.clone(), Vec::new()));
                }
                let (reg, data) = file.as_mut().expect("chunk after reg");
                assert_eq!(e.name, reg.name);
                if reg.size == 0 {
                    assert_eq!(
                        (e.offset, e.chunk_digest.as_str()),
                        (0, ""),
                        "{}: empty file",
                        e.name
                    );
                    continue;
                }
                let chunk = check_chunk(e, reg, data.len(), members, &starts, chunk_size);
                data.extend_from_slice(chunk);
            }
            _ => {
                assert!(
                    e.digest.is_empty() && e.chunk_digest.is_empty() && e.offset == 0,
                    "{}: no data fields",
                    e.name
                );
            }
        }
    }
    check_file_complete(file.take());
}

/// Checks one chunk entry of `reg`, of which `done` bytes are already
/// covered, and returns the chunk's bytes from the member it starts.
fn check_chunk<'m>(
    e: &TocEntry,
    reg: &TocEntry,
    done: usize,
    members: &'m [(u64, Vec<u8>)],
    starts: &[u64],
    chunk_size: u64,
) -> &'m [u8] {
    assert_eq!(e.chunk_offset, done as i64, "{}: chunks contiguous", e.name);
    let remaining = reg.size - e.chunk_offset;
    let want_size = if remaining >= chunk_size as i64 {
        chunk_size as i64
    } else {
        0
    };
    assert_eq!(e.chunk_size, want_size, "{}: chunkSize rule", e.name);
    let len = remaining.min(chunk_size as i64) as usize;
    let idx = starts
        .binary_search(&(e.offset as u64))
        .unwrap_or_else(|_| panic!("{}: offset {} is not a member start", e.name, e.offset));
    let chunk = &members[idx].1[..len];
    assert_eq!(
        e.chunk_digest,
        Digest::of(chunk).to_string(),
        "{}: chunkDigest",
        e.name
    );
    chunk
}

/// A file's collected chunks cover its size and match its digest.
fn check_file_complete(file: Option<(TocEntry, Vec<u8>)>) {
    if let Some((reg, data)) = file {
        assert_eq!(
            data.len() as i64,
            reg.size,
            "{}: chunks cover the file",
            reg.name
        );
        assert_eq!(
            reg.digest,
            Digest::of(&data).to_string(),
            "{}: digest",
            reg.name
        );
    }
}

/// The non-chunk entries of a TOC.
pub fn non_chunks(toc: &Toc) -> Vec<&TocEntry> {
    toc.entries
        .iter()
        .filter(|e| e.kind != EntryType::Chunk)
        .collect()
}

/// Rebuilds a blob after `edit` changed its payload members (decompressed,
/// in order) and/or its TOC. TOC offsets that named a member start are moved
/// to where that member starts after recompression; others are kept.
pub fn tamper(blob: &[u8], edit: impl FnOnce(&mut Vec<Vec<u8>>, &mut Toc)) -> (Vec<u8>, Digest) {
    let (mut toc, _, _) = read_toc(blob);
    let all = members(blob);
    let payload = &all[..all.len() - 2];
    let old_starts: Vec<u64> = payload.iter().map(|m| m.0).collect();
    let mut data: Vec<Vec<u8>> = payload.iter().map(|m| m.1.clone()).collect();
    edit(&mut data, &mut toc);
    let mut out = Vec::new();
    let mut new_starts = Vec::new();
    for d in &data {
        new_starts.push(out.len() as u64);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, d).unwrap();
        out.extend(enc.finish().unwrap());
    }
    for e in &mut toc.entries {
        if let Ok(i) = old_starts.binary_search(&(e.offset as u64)) {
            if e.offset > 0 && i < new_starts.len() {
                e.offset = new_starts[i] as i64;
            }
        }
    }
    let json = toc.to_json();
    let toc_offset = out.len() as u64;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &estargz_core::internals::tar_bytes(&json)).unwrap();
    out.extend(enc.finish().unwrap());
    out.extend_from_slice(&footer::encode(toc_offset));
    (out, Digest::of(&json))
}

/// Counts the bytes read through it.
pub struct CountingSource<'a> {
    pub inner: &'a [u8],
    pub bytes: std::sync::atomic::AtomicU64,
    pub calls: std::sync::atomic::AtomicU64,
}

impl<'a> CountingSource<'a> {
    pub fn new(inner: &'a [u8]) -> Self {
        CountingSource {
            inner,
            bytes: Default::default(),
            calls: Default::default(),
        }
    }
}

impl estargz_core::ReadAt for CountingSource<'_> {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.inner.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read_at(offset, buf)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Runs the reference driver: (success, stdout, stderr).
pub fn run_reference(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(reference_driver())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("estargz-ref runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
