//! Verification: everything a blob claims, checked (spec §6).
//!
//! 1. footer and TOC: strictly valid, within caps, the TOC digest equal to
//!    the expected one when given;
//! 2. structure: known types, non-negative numbers, well-formed digests,
//!    data offsets inside the payload and non-decreasing, each file's chunks
//!    contiguous from 0 to its size, hardlinks resolvable and acyclic;
//! 3. content, in one pass over the payload: the members tile
//!    `[0, TOC offset)` as complete gzip members, the tar inside lists the
//!    TOC's entries in order (name, type, size, link), every chunk starts
//!    where the TOC says and matches its `chunkDigest`, and every file its
//!    `digest`. Chunk digests are checked in parallel batches.
//!
//! Every problem found is reported with the entry and offset concerned.

use crate::digest::Digest;
use crate::footer::FooterKind;
use crate::read::{Index, OpenOptions, RangeReader, ReadAt, TocInfo};
use crate::tar::{EntryKind, Item, NamePolicy, ScanLimits, Scanner};
use crate::toc::{EntryType, Toc, TocEntry};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

/// What to verify against.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The TOC digest the blob must have (from the layer annotation).
    pub expected_toc_digest: Option<Digest>,
    /// Limits for opening the blob.
    pub open: OpenOptions,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry concerned, as named in the TOC or tar.
    pub entry: Option<String>,
    /// The blob offset concerned.
    pub offset: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.entry {
            write!(f, "entry {e:?}: ")?;
        }
        if let Some(o) = self.offset {
            write!(f, "at byte {o}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Footer layout, when one was found.
    pub footer: Option<FooterKind>,
    /// Digest of the stored TOC JSON, when it could be read.
    pub toc_digest: Option<Digest>,
    /// Offset of the TOC member.
    pub toc_offset: Option<u64>,
    /// TOC entries.
    pub entries: usize,
    /// Regular files with data checked.
    pub files: usize,
    /// Chunks whose digest was checked.
    pub chunks: usize,
    /// Payload members decoded.
    pub members: usize,
    /// Everything wrong, in the order found.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, entry: Option<&str>, offset: Option<u64>, message: impl Into<String>) {
        self.problems.push(Problem {
            entry: entry.map(str::to_string),
            offset,
            message: message.into(),
        });
    }
}

/// Verifies the blob read from `source`. Never fails: every failure is a
/// [`Problem`] in the report.
///
/// ```
/// use estargz_core::verify::{verify, VerifyOptions};
/// use estargz_core::{convert, ConvertOptions};
///
/// let mut tar = tar::Builder::new(Vec::new());
/// let mut h = tar::Header::new_ustar();
/// h.set_size(3);
/// h.set_cksum();
/// tar.append_data(&mut h, "a.txt", &b"abc"[..]).unwrap();
/// let mut blob = Vec::new();
/// let report = convert(&tar.into_inner().unwrap()[..], &mut blob, &ConvertOptions::default()).unwrap();
///
/// let opts = VerifyOptions { expected_toc_digest: Some(report.toc_digest), ..Default::default() };
/// assert!(verify(&blob[..], &opts).is_valid());
/// let last = blob.len() - 60;
/// blob[last] ^= 0xff; // inside the TOC member
/// assert!(!verify(&blob[..], &opts).is_valid());
/// ```
pub fn verify<S: ReadAt>(source: S, opts: &VerifyOptions) -> VerifyReport {
    let mut report = VerifyReport::default();
    let (info, source) = match TocInfo::read(source, &opts.open) {
        Ok(v) => v,
        Err(e) => {
            // The message already names the offset where one applies.
            report.problem(None, None, e.to_string());
            return report;
        }
    };
    report.footer = Some(info.footer.kind);
    report.toc_digest = Some(info.digest);
    report.toc_offset = Some(info.toc_offset);
    report.entries = info.toc.entries.len();
    let footer_at = info.blob_size - info.footer.kind.size() as u64;
    for w in &info.footer.warnings {
        report.problem(None, Some(footer_at), format!("footer: {w}"));
    }
    if info.slack > 0 {
        report.problem(
            None,
            Some(info.toc_offset),
            format!("{} bytes between the TOC member and the footer", info.slack),
        );
    }
    if let Some(want) = opts.expected_toc_digest {
        if want != info.digest {
            report.problem(
                None,
                Some(info.toc_offset),
                format!("TOC digest is {}, expected {want}", info.digest),
            );
        }
    }
    check_structure(&info.toc, info.payload_end, &mut report);
    let index = match Index::build(&info.toc, info.payload_end, &opts.open.index) {
        Ok(index) => Some(index),
        Err(e) => {
            report.problem(None, None, e.to_string());
            None
        }
    };
    // Fast path: members decoded in parallel between the offsets the TOC
    // names. If that fails (a TOC offset that is not a member start, a
    // damaged member), walk again member by member, which names the problem
    // precisely.
    let mut fast = report.clone();
    let walked = if walk_payload(&source, &info, true, &mut fast)
        && !fast
            .problems
            .iter()
            .any(|p| p.message.contains(DECODE_FAILURE))
    {
        report = fast;
        true
    } else {
        walk_payload(&source, &info, false, &mut report)
    };
    if !walked {
        // The payload is not a readable tar stream: still check every chunk
        // the TOC describes, by random access.
        if let Some(index) = &index {
            check_chunks_random_access(&source, index, &mut report);
        }
    }
    report
}

fn is_data(e: &TocEntry) -> bool {
    matches!(e.kind, EntryType::Chunk) || (e.kind == EntryType::Reg && e.size > 0)
}

/// §6.3: what the TOC says about itself.
fn check_structure(toc: &Toc, payload_end: u64, report: &mut VerifyReport) {
    if toc.version != 1 {
        report.problem(
            None,
            None,
            format!("TOC version is {}, expected 1", toc.version),
        );
    }
    // Legacy stargz TOCs have no chunkDigest; their files are checked by `digest`.
    let legacy = !toc.entries.iter().any(|e| e.kind == EntryType::Chunk)
        && toc
            .entries
            .iter()
            .filter(|e| is_data(e))
            .all(|e| e.chunk_digest.is_empty() && !e.digest.is_empty());
    let mut last: Option<(i64, i64)> = None;
    let mut file: Option<(usize, i64, i64)> = None; // (toc index, size, next chunk offset)
    let close_file = |file: Option<(usize, i64, i64)>, report: &mut VerifyReport| {
        if let Some((i, size, next)) = file {
            if next != size {
                let name = &toc.entries[i].name;
                report.problem(
                    Some(name),
                    None,
                    format!("chunks cover {next} of the file's {size} bytes"),
                );
            }
        }
    };
    for (i, e) in toc.entries.iter().enumerate() {
        let name = Some(e.name.as_str());
        if let EntryType::Other(t) = &e.kind {
            report.problem(name, None, format!("unknown entry type {t:?}"));
        }
        for (field, v) in [
            ("size", e.size),
            ("offset", e.offset),
            ("innerOffset", e.inner_offset),
            ("chunkOffset", e.chunk_offset),
            ("chunkSize", e.chunk_size),
            ("mode", e.mode),
            ("devMajor", e.dev_major),
            ("devMinor", e.dev_minor),
        ] {
            if v < 0 {
                report.problem(name, None, format!("{field} is negative ({v})"));
            }
        }
        for (field, d) in [("digest", &e.digest), ("chunkDigest", &e.chunk_digest)] {
            if !d.is_empty() && d.parse::<Digest>().is_err() {
                report.problem(name, None, format!("{field} {d:?} is not a sha256 digest"));
            }
        }
        if e.kind == EntryType::Reg && e.digest.is_empty() {
            report.problem(name, None, "regular file without a digest");
        }
        if e.kind != EntryType::Chunk {
            close_file(file.take(), report);
        }
        if !is_data(e) {
            if e.kind == EntryType::Reg && e.offset != 0 {
                report.problem(name, None, "empty file with an offset");
            }
            continue;
        }
        if e.chunk_digest.is_empty() && !legacy {
            report.problem(
                name,
                Some(e.offset as u64),
                "data entry without a chunkDigest",
            );
        }
        if e.offset >= 0 && e.offset as u64 >= payload_end {
            report.problem(
                name,
                Some(e.offset as u64),
                format!("offset outside the payload [0, {payload_end})"),
            );
        }
        if let Some((lo, li)) = last {
            if e.offset < lo || (e.offset == lo && e.inner_offset <= li) {
                report.problem(
                    name,
                    Some(e.offset as u64),
                    format!(
                        "data offset ({}, innerOffset {}) does not follow ({lo}, {li})",
                        e.offset, e.inner_offset
                    ),
                );
            }
        }
        last = Some((e.offset, e.inner_offset));
        match (e.kind.clone(), file.as_mut()) {
            (EntryType::Reg, _) => {
                if e.chunk_offset != 0 {
                    report.problem(
                        name,
                        None,
                        format!("first chunk starts at file offset {}", e.chunk_offset),
                    );
                }
                let len = if e.chunk_size > 0 && e.chunk_size < e.size {
                    e.chunk_size
                } else {
                    e.size
                };
                file = Some((i, e.size, len));
            }
            (EntryType::Chunk, Some((_, size, next))) => {
                if e.chunk_offset != *next {
                    let what = if e.chunk_offset > *next {
                        "gap"
                    } else {
                        "overlap"
                    };
                    report.problem(
                        name,
                        Some(e.offset as u64),
                        format!(
                            "chunk at file offset {} leaves a {what} after byte {next}",
                            e.chunk_offset
                        ),
                    );
                }
                let len = if e.chunk_size > 0 {
                    e.chunk_size
                } else {
                    *size - e.chunk_offset
                };
                *next = e.chunk_offset.saturating_add(len);
                if *next > *size {
                    report.problem(
                        name,
                        Some(e.offset as u64),
                        format!("chunk ends at {next}, past the file size {size}"),
                    );
                }
            }
            (_, None) => report.problem(
                name,
                Some(e.offset as u64),
                "chunk entry does not follow a regular file",
            ),
            _ => {}
        }
    }
    close_file(file.take(), report);
}

/// Decodes the payload member after member; records where each starts.
struct MemberStream<S> {
    reader: Option<BufReader<RangeReader<S>>>,
    decoder: Option<flate2::bufread::GzDecoder<BufReader<RangeReader<S>>>>,
    payload_end: u64,
    produced: u64,
    /// (compressed start, uncompressed start) of every member so far.
    starts: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl<S: ReadAt> MemberStream<S> {
    fn compressed_pos(reader: &BufReader<RangeReader<S>>) -> u64 {
        reader.get_ref().position() - reader.buffer().len() as u64
    }
}

impl<S: ReadAt> Read for MemberStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(dec) = self.decoder.as_mut() {
                let n = dec.read(buf)?;
                if n > 0 || buf.is_empty() {
                    self.produced += n as u64;
                    return Ok(n);
                }
                let dec = self.decoder.take().expect("decoder present");
                self.reader = Some(dec.into_inner());
            }
            let mut reader = self.reader.take().expect("reader present between members");
            let pos = Self::compressed_pos(&reader);
            if pos >= self.payload_end || reader.fill_buf()?.is_empty() {
                self.reader = Some(reader);
                return Ok(0);
            }
            self.starts
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .push((pos, self.produced));
            self.decoder = Some(flate2::bufread::GzDecoder::new(reader));
        }
    }
}

/// Marks problems caused by the parallel decoder, so the walk is redone sequentially.
const DECODE_FAILURE: &str = "parallel member decoding failed";

/// Largest decompressed size accepted for the members between two TOC
/// offsets: bounds memory against decompression bombs in the payload.
const MAX_RANGE_DECODED: usize = 1 << 30;

/// Compressed bytes decoded per parallel batch.
const BATCH_COMPRESSED: u64 = 8 << 20;

/// The payload decoded in parallel: the ranges between consecutive member
/// starts named by the TOC are independent, so a batch of them is decoded
/// at once (each range may hold several members) and served in order.
struct ParallelMembers<'a, S> {
    source: &'a S,
    ranges: Vec<(u64, u64)>,
    next_range: usize,
    ready: std::collections::VecDeque<DecodedRange>,
    current: Vec<u8>,
    pos: usize,
    produced: u64,
    starts: Arc<Mutex<Vec<(u64, u64)>>>,
}

struct DecodedRange {
    /// (compressed start, offset in `data`) of each member.
    members: Vec<(u64, usize)>,
    data: Vec<u8>,
    error: Option<String>,
}

impl<'a, S: ReadAt> ParallelMembers<'a, S> {
    fn new(source: &'a S, info: &TocInfo, starts: Arc<Mutex<Vec<(u64, u64)>>>) -> Self {
        let mut cuts: Vec<u64> = info
            .toc
            .entries
            .iter()
            .filter(|e| is_data(e) && e.offset > 0 && (e.offset as u64) < info.payload_end)
            .map(|e| e.offset as u64)
            .collect();
        cuts.push(0);
        cuts.push(info.payload_end);
        cuts.sort_unstable();
        cuts.dedup();
        let ranges = cuts
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|r| r.0 < r.1)
            .collect();
        ParallelMembers {
            source,
            ranges,
            next_range: 0,
            ready: std::collections::VecDeque::new(),
            current: Vec::new(),
            pos: 0,
            produced: 0,
            starts,
        }
    }

    fn decode_batch(&mut self) {
        let first = self.next_range;
        let mut bytes = 0u64;
        while self.next_range < self.ranges.len()
            && (bytes < BATCH_COMPRESSED || self.next_range == first)
        {
            let (a, b) = self.ranges[self.next_range];
            bytes += b - a;
            self.next_range += 1;
        }
        let source = self.source;
        let decoded: Vec<DecodedRange> = self.ranges[first..self.next_range]
            .par_iter()
            .map(|&(a, b)| decode_range(source, a, b))
            .collect();
        self.ready.extend(decoded);
    }
}

/// Decodes the complete gzip members that make up `[start, end)`.
fn decode_range<S: ReadAt>(source: &S, start: u64, end: u64) -> DecodedRange {
    let mut out = DecodedRange {
        members: Vec::new(),
        data: Vec::new(),
        error: None,
    };
    let compressed = match source.read_range(start, (end - start) as usize) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(format!("reading [{start}, {end}): {e}"));
            return out;
        }
    };
    // The last member's ISIZE is usually the whole range's size (one member
    // per range): reserve it exactly rather than grow by doubling.
    if let Some(tail) = compressed
        .len()
        .checked_sub(4)
        .and_then(|at| compressed.get(at..))
    {
        let isize = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
        out.data.reserve_exact(isize.min(64 << 20));
    }
    let mut rest = &compressed[..];
    while !rest.is_empty() {
        let member_start = end - rest.len() as u64;
        out.members.push((member_start, out.data.len()));
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let limit = (MAX_RANGE_DECODED - out.data.len()) as u64;
        match (&mut decoder).take(limit + 1).read_to_end(&mut out.data) {
            Ok(_) if out.data.len() > MAX_RANGE_DECODED => {
                out.error = Some(format!(
                    "members at byte {start} decompress to more than {MAX_RANGE_DECODED} bytes"
                ));
                return out;
            }
            Ok(_) => rest = decoder.into_inner(),
            Err(e) => {
                out.error = Some(format!("member at byte {member_start}: {e}"));
                return out;
            }
        }
    }
    out
}

impl<S: ReadAt> Read for ParallelMembers<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.ready.is_empty() {
                if self.next_range == self.ranges.len() {
                    return Ok(0);
                }
                self.decode_batch();
            }
            let Some(range) = self.ready.pop_front() else {
                return Ok(0);
            };
            let mut starts = self
                .starts
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            for (compressed, at) in &range.members {
                starts.push((*compressed, self.produced + *at as u64));
            }
            drop(starts);
            if let Some(e) = range.error {
                return Err(io::Error::other(format!("{DECODE_FAILURE}: {e}")));
            }
            self.current = range.data;
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}

/// A chunk waiting for its digest check.
struct PendingChunk {
    entry: String,
    offset: u64,
    chunk_offset: i64,
    data: Vec<u8>,
    digest: String,
}

/// Checks a batch of chunk digests in parallel.
fn flush_chunks(pending: &mut Vec<PendingChunk>, report: &mut VerifyReport) {
    let bad: Vec<Problem> = pending
        .par_iter()
        .filter(|c| Digest::of(&c.data).to_string() != c.digest)
        .map(|c| Problem {
            entry: Some(c.entry.clone()),
            offset: Some(c.offset),
            message: format!(
                "chunk at file offset {} does not match its chunkDigest",
                c.chunk_offset
            ),
        })
        .collect();
    report.chunks += pending.len();
    report.problems.extend(bad);
    pending.clear();
}

/// §6.5: one pass over the payload. Returns false when the payload could
/// not be walked as a tar stream to its end.
fn walk_payload<S: ReadAt>(
    source: &S,
    info: &TocInfo,
    parallel: bool,
    report: &mut VerifyReport,
) -> bool {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let stream: Box<dyn Read + '_> = if parallel {
        Box::new(ParallelMembers::new(source, info, Arc::clone(&starts)))
    } else {
        Box::new(MemberStream {
            reader: Some(BufReader::with_capacity(
                1 << 20,
                RangeReader::new(source, 0, info.payload_end),
            )),
            decoder: None,
            payload_end: info.payload_end,
            produced: 0,
            starts: Arc::clone(&starts),
        })
    };
    let mut scanner = Scanner::new(
        BufReader::with_capacity(1 << 20, stream),
        NamePolicy::Replace,
        ScanLimits::default(),
    );
    let entries = &info.toc.entries;
    let mut cursor = 0usize;
    let mut pending: Vec<PendingChunk> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut buf = Vec::new();
    let start_of = |offset: u64| -> Option<u64> {
        let starts = starts.lock().ok()?;
        let i = starts.binary_search_by_key(&offset, |s| s.0).ok()?;
        Some(starts[i].1)
    };
    let ok = loop {
        let item = match scanner.next_item() {
            Ok(Some(item)) => item,
            Ok(None) => break true,
            Err(e) => {
                report.problem(
                    None,
                    None,
                    format!("payload is not a complete tar stream: {e}"),
                );
                break false;
            }
        };
        let entry = match item {
            Item::End { .. } => break true,
            Item::Entry(entry) => entry,
        };
        // Skip chunk entries of the previous file (already consumed) to the next TOC entry.
        while cursor < entries.len() && entries[cursor].kind == EntryType::Chunk {
            cursor += 1;
        }
        let Some(toc_entry) = entries.get(cursor) else {
            report.problem(
                Some(&entry.name),
                None,
                format!(
                    "tar entry at uncompressed byte {} is not in the TOC",
                    entry.header_offset
                ),
            );
            continue;
        };
        let name = toc_entry.name.as_str();
        if entry.name != toc_entry.name {
            report.problem(
                Some(name),
                None,
                format!("the tar has {:?} where the TOC has {name:?}", entry.name),
            );
        }
        let want_kind = entry.kind.toc_type();
        if want_kind != toc_entry.kind {
            report.problem(
                Some(name),
                None,
                format!(
                    "the tar has a {want_kind} where the TOC has a {}",
                    toc_entry.kind
                ),
            );
        }
        if matches!(entry.kind, EntryKind::Symlink | EntryKind::Hardlink)
            && entry.link_name != toc_entry.link_name
        {
            report.problem(
                Some(name),
                None,
                format!(
                    "link target {:?} in the tar, {:?} in the TOC",
                    entry.link_name, toc_entry.link_name
                ),
            );
        }
        if entry.kind == EntryKind::Regular && entry.size as i64 != toc_entry.size {
            report.problem(
                Some(name),
                None,
                format!(
                    "size {} in the tar, {} in the TOC",
                    entry.size, toc_entry.size
                ),
            );
        }
        let reg_index = cursor;
        cursor += 1;
        if entry.kind != EntryKind::Regular || toc_entry.kind != EntryType::Reg || entry.size == 0 {
            continue;
        }
        report.files += 1;
        let data_start = scanner.position();
        let mut file_hash = Sha256::new();
        let mut chunk_list: Vec<&TocEntry> = vec![toc_entry];
        chunk_list.extend(
            entries[reg_index + 1..]
                .iter()
                .take_while(|e| e.kind == EntryType::Chunk),
        );
        // A one-chunk file whose chunk digest is its digest needs no second hash.
        let skip_file_hash = chunk_list.len() == 1
            && !toc_entry.chunk_digest.is_empty()
            && toc_entry.chunk_digest == toc_entry.digest;
        let mut read_so_far = 0u64;
        for (k, c) in chunk_list.iter().enumerate() {
            let c_off = c.chunk_offset.max(0) as u64;
            let c_len = if k == 0 {
                if c.chunk_size > 0 && c.chunk_size < c.size {
                    c.chunk_size
                } else {
                    c.size
                }
            } else if c.chunk_size > 0 {
                c.chunk_size
            } else {
                toc_entry.size - c.chunk_offset
            }
            .max(0) as u64;
            if c_off != read_so_far || c_off + c_len > entry.size {
                break; // structure already reported; the rest of the data is skipped below
            }
            buf.clear();
            if let Err(e) = scanner.read_data(&mut buf, c_len) {
                report.problem(
                    Some(name),
                    Some(c.offset as u64),
                    format!("reading chunk data: {e}"),
                );
                break;
            }
            read_so_far += c_len;
            match start_of(c.offset as u64) {
                None => report.problem(Some(name), Some(c.offset as u64), "offset is not the start of a gzip member"),
                Some(u) if u + c.inner_offset.max(0) as u64 != data_start + c_off => report.problem(
                    Some(name),
                    Some(c.offset as u64),
                    format!(
                        "chunk at file offset {c_off} is at uncompressed byte {} of the payload, the TOC says {}",
                        data_start + c_off,
                        u + c.inner_offset.max(0) as u64
                    ),
                ),
                Some(_) => {}
            }
            if !skip_file_hash {
                file_hash.update(&buf);
            }
            if !c.chunk_digest.is_empty() {
                pending_bytes += buf.len();
                pending.push(PendingChunk {
                    entry: name.to_string(),
                    offset: c.offset as u64,
                    chunk_offset: c.chunk_offset,
                    data: std::mem::take(&mut buf),
                    digest: c.chunk_digest.clone(),
                });
            }
            if pending_bytes >= 32 << 20 {
                flush_chunks(&mut pending, report);
                pending_bytes = 0;
            }
        }
        if read_so_far == entry.size && !skip_file_hash {
            let got = Digest::from_hasher(file_hash).to_string();
            if got != toc_entry.digest {
                report.problem(
                    Some(name),
                    Some(toc_entry.offset as u64),
                    "file data does not match its digest",
                );
            }
        }
    };
    flush_chunks(&mut pending, report);
    if ok {
        let rest: Vec<&TocEntry> = entries[cursor..]
            .iter()
            .filter(|e| e.kind != EntryType::Chunk)
            .collect();
        for e in rest {
            report.problem(
                Some(&e.name),
                None,
                "TOC entry has no counterpart in the payload tar",
            );
        }
    }
    let starts = starts.lock().map(|s| s.clone()).unwrap_or_default();
    report.members = starts.len();
    // Every data offset must be a member start (checked above for chunks
    // read); with the payload fully walked, also check the ones never read.
    if ok {
        let known: HashMap<u64, ()> = starts.iter().map(|s| (s.0, ())).collect();
        for e in entries.iter().filter(|e| is_data(e)) {
            if !known.contains_key(&(e.offset as u64))
                && !report
                    .problems
                    .iter()
                    .any(|p| p.offset == Some(e.offset as u64))
            {
                report.problem(
                    Some(&e.name),
                    Some(e.offset as u64),
                    "offset is not the start of a gzip member",
                );
            }
        }
    }
    ok
}

/// Fallback when the payload is not a readable tar: every chunk by random access.
fn check_chunks_random_access<S: ReadAt>(source: &S, index: &Index, report: &mut VerifyReport) {
    let files = index.files();
    let problems: Vec<Problem> = files
        .par_iter()
        .flat_map_iter(|node| {
            let mut out = Vec::new();
            let mut hasher = Sha256::new();
            for c in &node.chunks {
                match crate::read::decode_chunk(source, &node.name, c, false) {
                    Ok(data) => {
                        if !c.digest.is_empty() && Digest::of(&data).to_string() != c.digest {
                            out.push(Problem {
                                entry: Some(node.raw_name.clone()),
                                offset: Some(c.offset),
                                message: format!(
                                    "chunk at file offset {} does not match its chunkDigest",
                                    c.chunk_offset
                                ),
                            });
                        }
                        hasher.update(&data);
                    }
                    Err(e) => out.push(Problem {
                        entry: Some(node.raw_name.clone()),
                        offset: Some(c.offset),
                        message: e.to_string(),
                    }),
                }
            }
            if out.is_empty() && Digest::from_hasher(hasher).to_string() != node.digest {
                out.push(Problem {
                    entry: Some(node.raw_name.clone()),
                    offset: None,
                    message: "file data does not match its digest".into(),
                });
            }
            out
        })
        .collect();
    report.files = files.len();
    report.chunks = files.iter().map(|f| f.chunks.len()).sum();
    report.problems.extend(problems);
}
