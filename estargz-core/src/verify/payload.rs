//! §6.5: one pass over the payload: member tiling, the tar against the TOC,
//! chunk positions, chunk and file digests.

use super::tar_split::{Shared, Tee};
use super::{Problem, ProblemKind, VerifyReport};
use crate::digest::Digest;
use crate::read::{Index, MemberStarts, Payload, ReadAt, SkippableFrames, TocInfo};
use crate::tar::{Entry, EntryKind, Item, NamePolicy, ScanLimits, Scanner};
use crate::toc::{EntryType, TocEntry};
use rayon::prelude::*;
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::io::BufReader;
use std::sync::{Arc, Mutex};

/// Most bytes reserved for a chunk before its data is read (4x the default chunk size).
const RESERVE_CAP: u64 = 16 << 20;

/// Chunk bytes collected before their digests are checked in parallel. At
/// 32 MiB every batch was fresh memory (a page fault per 4 KiB, 100 MB peak
/// RSS on a Debian layer); at 4 MiB the allocator reuses the last batch's
/// buffers: 11-15% less CPU for verify, 40 MB peak, the same parallelism.
const FLUSH_BYTES: usize = 4 << 20;

/// Trailing bytes read at a time after the end-of-archive block.
const TRAILING_PIECE: u64 = 1 << 20;

/// A chunk waiting for its digest check.
struct PendingChunk<'a> {
    entry: &'a str,
    toc_index: usize,
    offset: Option<u64>,
    chunk_offset: u64,
    tar_offset: u64,
    data: Vec<u8>,
    digest: &'a str,
}

fn chunk_mismatch(
    entry: &str,
    toc_index: usize,
    offset: Option<u64>,
    chunk_offset: u64,
) -> Problem {
    Problem::new(
        ProblemKind::ChunkDigest,
        format!("chunk at file offset {chunk_offset} does not match its chunkDigest"),
    )
    .entry(entry)
    .index(toc_index)
    .at(offset)
}

/// Checks a batch of chunk digests in parallel.
fn flush_chunks(pending: &mut Vec<PendingChunk>, report: &mut VerifyReport) {
    let bad: Vec<Problem> = pending
        .par_iter()
        .filter(|c| Digest::of(&c.data).to_string() != c.digest)
        .map(|c| {
            chunk_mismatch(c.entry, c.toc_index, c.offset, c.chunk_offset).tar_at(c.tar_offset)
        })
        .collect();
    report.chunks += pending.len();
    report.problems.extend(bad);
    pending.clear();
}

/// §6.5: one pass over the payload. Returns false when the payload could
/// not be walked as a tar stream to its end.
pub(super) fn walk_payload<S: ReadAt>(
    source: &S,
    info: &TocInfo,
    tar_split: Option<&Shared<'_>>,
    report: &mut VerifyReport,
) -> bool {
    let starts: MemberStarts = Arc::new(Mutex::new(Vec::new()));
    let skippables: SkippableFrames = Arc::default();
    let stream = Payload::new(source, &info.footer, info.blob_size)
        .recording(Arc::clone(&starts))
        .recording_skippable(Arc::clone(&skippables));
    let stream = Tee {
        inner: stream,
        matcher: tar_split.cloned(),
    };
    let member = if info.footer.kind.is_zstd_chunked() {
        "zstd frame"
    } else {
        "gzip member"
    };
    // The converter's cap on trailing data is about what it accepts; a
    // blob's tail is checked whatever its length, in bounded pieces.
    let limits = ScanLimits {
        max_trailing: u64::MAX,
        ..ScanLimits::default()
    };
    let mut walk = PayloadWalk {
        scanner: Scanner::new(
            BufReader::with_capacity(1 << 20, stream),
            NamePolicy::Replace,
            limits,
        ),
        entries: &info.toc.entries,
        cursor: 0,
        starts: Arc::clone(&starts),
        pending: Vec::new(),
        pending_bytes: 0,
        buf: Vec::new(),
        member,
    };
    let ok = walk.run(report);
    flush_chunks(&mut walk.pending, report);
    if ok {
        walk.report_unmatched(report);
    }
    let starts = starts.lock().map(|s| s.clone()).unwrap_or_default();
    report.members = starts.len();
    if ok {
        check_member_starts(&info.toc.entries, &starts, member, report);
    }
    for (at, len) in skippables.lock().map(|s| s.clone()).unwrap_or_default() {
        report.push(
            Problem::new(
                ProblemKind::SkippableInPayload,
                format!(
                    "skippable frame of {len} bytes between the data frames: decoders pass over \
                     it, no TOC entry reaches it"
                ),
            )
            .at(Some(at)),
        );
    }
    ok
}

/// The walk over the payload's tar, TOC entry by TOC entry.
struct PayloadWalk<'a, R> {
    scanner: Scanner<R>,
    entries: &'a [TocEntry],
    /// The TOC entry the next tar entry should match.
    cursor: usize,
    /// Member starts, recorded by the payload reader as it decodes.
    starts: MemberStarts,
    /// Chunks waiting for their digest checks, and their bytes.
    pending: Vec<PendingChunk<'a>>,
    pending_bytes: usize,
    buf: Vec<u8>,
    /// What the payload is made of, for messages: gzip members or zstd frames.
    member: &'static str,
}

impl<'a, R: std::io::Read> PayloadWalk<'a, R> {
    /// Every tar entry to the end of the payload. False if the payload
    /// could not be walked to its end.
    fn run(&mut self, report: &mut VerifyReport) -> bool {
        loop {
            let item = match self.scanner.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => return true,
                Err(e) => {
                    report.push(stream_failed(&e));
                    return false;
                }
            };
            match item {
                Item::End { .. } => return drain_trailing(&mut self.scanner, report),
                Item::Entry(entry) => self.next_entry(&entry, report),
            }
        }
    }

    /// One tar entry: matched with the next TOC entry, its data read.
    fn next_entry(&mut self, entry: &Entry, report: &mut VerifyReport) {
        // Skip chunk entries of the previous file (already consumed) to the next TOC entry.
        while self
            .entries
            .get(self.cursor)
            .is_some_and(|e| e.kind == EntryType::Chunk)
        {
            self.cursor += 1;
        }
        let reg_index = self.cursor;
        let Some(toc_entry) = self.entries.get(reg_index) else {
            report.push(
                Problem::new(
                    ProblemKind::NotInToc,
                    format!(
                        "tar entry at uncompressed byte {} is not in the TOC",
                        entry.header_offset
                    ),
                )
                .entry(&entry.name)
                .tar_at(entry.header_offset),
            );
            return;
        };
        compare_with_toc(entry, reg_index, toc_entry, report);
        self.cursor += 1;
        if entry.kind != EntryKind::Regular || toc_entry.kind != EntryType::Reg || entry.size == 0 {
            return;
        }
        report.files += 1;
        self.read_file(entry, reg_index, report);
    }

    /// A regular file's data, chunk by chunk as the TOC lists them: each
    /// chunk's position and digest, then the file's digest.
    fn read_file(&mut self, entry: &Entry, reg_index: usize, report: &mut VerifyReport) {
        let entries = self.entries;
        let toc_entry = &entries[reg_index];
        let name = toc_entry.name.as_str();
        let data_start = self.scanner.position();
        let mut file_hash = sha256_lanes::Sha256::new();
        let chunks = 1 + entries[reg_index + 1..]
            .iter()
            .take_while(|e| e.kind == EntryType::Chunk)
            .count();
        // A one-chunk file whose chunk digest is its digest needs no second hash.
        let skip_file_hash = chunks == 1
            && !toc_entry.chunk_digest.is_empty()
            && toc_entry.chunk_digest == toc_entry.digest;
        // A negative size is reported by the structure check; its data is skipped.
        let file_size = toc_entry.size_u64();
        let mut read_so_far = 0u64;
        for (ci, c) in entries.iter().enumerate().skip(reg_index).take(chunks) {
            let place = file_size.and_then(|size| {
                let off = c.chunk_offset_u64()?;
                Some((off, c.chunk_len(size)?))
            });
            let Some((c_off, c_len)) = place else { break };
            if c_off != read_so_far || c_off.checked_add(c_len).is_none_or(|end| end > entry.size) {
                break; // structure already reported; the rest of the data is skipped below
            }
            let at = Chunk {
                index: ci,
                entry: c,
                file_offset: c_off,
                len: c_len,
            };
            if !self.read_chunk(entry, &at, data_start, report) {
                break;
            }
            read_so_far += c_len;
            if !skip_file_hash && !c.chunk_digest.is_empty() {
                // The chunk's digest and the file's in one pass over the
                // bytes (on SHA-NI the second costs next to nothing), here
                // rather than in the parallel batch, which would hash them
                // a second time.
                let mut chunk_hash = sha256_lanes::Sha256::new();
                sha256_lanes::update_all(&mut [&mut file_hash, &mut chunk_hash], &self.buf);
                report.chunks += 1;
                if Digest(chunk_hash.finalize()).to_string() != c.chunk_digest {
                    report.push(at.mismatch(name).tar_at(entry.header_offset));
                }
            } else if !skip_file_hash {
                file_hash.update(&self.buf);
            } else if !c.chunk_digest.is_empty() {
                self.pending_bytes += self.buf.len();
                self.pending.push(PendingChunk {
                    entry: name,
                    toc_index: ci,
                    offset: at.offset(),
                    chunk_offset: c_off,
                    tar_offset: entry.header_offset,
                    data: std::mem::take(&mut self.buf),
                    digest: &c.chunk_digest,
                });
            }
            if self.pending_bytes >= FLUSH_BYTES {
                flush_chunks(&mut self.pending, report);
                self.pending_bytes = 0;
            }
        }
        if read_so_far == entry.size && !skip_file_hash {
            let got = Digest(file_hash.finalize()).to_string();
            if got != toc_entry.digest {
                report.push(
                    Problem::new(
                        ProblemKind::FileDigest,
                        "file data does not match its digest",
                    )
                    .entry(name)
                    .index(reg_index)
                    .at(toc_entry.offset_u64())
                    .tar_at(entry.header_offset),
                );
            }
        }
    }

    /// Reads one chunk's bytes into `buf` and checks that it starts where
    /// the TOC says. False if the data could not be read.
    fn read_chunk(
        &mut self,
        entry: &Entry,
        at: &Chunk,
        data_start: u64,
        report: &mut VerifyReport,
    ) -> bool {
        let name = self.entries[at.index].name.as_str();
        let located = |kind, message: String| {
            Problem::new(kind, message)
                .entry(name)
                .index(at.index)
                .at(at.offset())
                .tar_at(entry.header_offset)
        };
        self.buf.clear();
        // Sized up front: grown by doubling, each chunk cost a chain of
        // copies and fresh pages. The length is the TOC's, so capped
        // here; past the cap it grows only as real data arrives.
        self.buf.reserve_exact(at.len.min(RESERVE_CAP) as usize);
        if let Err(e) = self.scanner.read_data(&mut self.buf, at.len) {
            report.push(located(
                ProblemKind::of(&e, ProblemKind::ChunkRead),
                format!("reading chunk data: {e}"),
            ));
            return false;
        }
        let here = data_start + at.file_offset;
        match at.offset().and_then(|o| start_of(&self.starts, o)) {
            None => report.push(located(
                ProblemKind::MemberStart,
                format!("offset is not the start of a {}", self.member),
            )),
            Some(u) => {
                // A negative innerOffset is reported by the structure check.
                let inner = at.entry.inner_offset_u64();
                if let Some(toc_says) = inner.map(|inner| u + inner) {
                    if toc_says != here {
                        report.push(located(
                            ProblemKind::ChunkPosition,
                            format!(
                                "chunk at file offset {} is at uncompressed byte {here} of the payload, the TOC says {toc_says}",
                                at.file_offset
                            ),
                        ));
                    }
                }
            }
        }
        true
    }

    /// With the tar walked to its end: the TOC entries it never reached.
    fn report_unmatched(&self, report: &mut VerifyReport) {
        for (i, e) in self.entries.iter().enumerate().skip(self.cursor) {
            if e.kind != EntryType::Chunk {
                report.push(
                    Problem::new(
                        ProblemKind::MissingFromPayload,
                        "TOC entry has no counterpart in the payload tar",
                    )
                    .entry(&e.name)
                    .index(i),
                );
            }
        }
    }
}

/// A chunk of the file being read, as the TOC places it.
struct Chunk<'a> {
    /// Its TOC index.
    index: usize,
    entry: &'a TocEntry,
    /// Where it starts in its file.
    file_offset: u64,
    len: u64,
}

impl Chunk<'_> {
    /// The blob offset of its member (a negative one names no byte).
    fn offset(&self) -> Option<u64> {
        self.entry.offset_u64()
    }

    fn mismatch(&self, name: &str) -> Problem {
        chunk_mismatch(name, self.index, self.offset(), self.file_offset)
    }
}

/// The uncompressed payload offset of the member starting at blob offset
/// `offset`, if one does.
fn start_of(starts: &MemberStarts, offset: u64) -> Option<u64> {
    let starts = starts.lock().ok()?;
    let i = starts.binary_search_by_key(&offset, |s| s.0).ok()?;
    Some(starts[i].1)
}

/// The tar entry against its TOC entry: name, type, link target, size.
fn compare_with_toc(
    entry: &Entry,
    toc_index: usize,
    toc_entry: &TocEntry,
    report: &mut VerifyReport,
) {
    let name = toc_entry.name.as_str();
    // The TOC entry's member, for a data entry; where its header is in the
    // uncompressed payload, for any.
    let offset = if toc_entry.is_data() {
        toc_entry.offset_u64()
    } else {
        None
    };
    let mismatch = |kind, message: String| {
        Problem::new(kind, message)
            .entry(name)
            .index(toc_index)
            .at(offset)
            .tar_at(entry.header_offset)
    };
    if entry.name != toc_entry.name {
        report.push(mismatch(
            ProblemKind::NameMismatch,
            format!("the tar has {:?} where the TOC has {name:?}", entry.name),
        ));
    }
    let want_kind = entry.kind.toc_type();
    if want_kind != toc_entry.kind {
        report.push(mismatch(
            ProblemKind::TypeMismatch,
            format!(
                "the tar has a {want_kind} where the TOC has a {}",
                toc_entry.kind
            ),
        ));
    }
    if matches!(entry.kind, EntryKind::Symlink | EntryKind::Hardlink)
        && entry.link_name != toc_entry.link_name
    {
        report.push(mismatch(
            ProblemKind::LinkMismatch,
            format!(
                "link target {:?} in the tar, {:?} in the TOC",
                entry.link_name, toc_entry.link_name
            ),
        ));
    }
    if entry.kind == EntryKind::Regular && Some(entry.size) != toc_entry.size_u64() {
        report.push(mismatch(
            ProblemKind::SizeMismatch,
            format!(
                "size {} in the tar, {} in the TOC",
                entry.size, toc_entry.size
            ),
        ));
    }
}

/// Every data offset must be a member start (checked as chunks are read);
/// with the payload fully walked, also check the ones never read. An
/// offset the text of an earlier problem names is not reported again.
fn check_member_starts(
    entries: &[TocEntry],
    starts: &[(u64, u64)],
    member: &str,
    report: &mut VerifyReport,
) {
    let known: HashSet<u64> = starts.iter().map(|s| s.0).collect();
    let mut reported: HashSet<u64> = report
        .problems
        .iter()
        .filter_map(Problem::offset_in_text)
        .collect();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.is_data()) {
        // A negative offset is reported by the structure check.
        let Some(offset) = e.offset_u64() else {
            continue;
        };
        if !known.contains(&offset) && reported.insert(offset) {
            report.push(
                Problem::new(
                    ProblemKind::MemberStart,
                    format!("offset is not the start of a {member}"),
                )
                .entry(&e.name)
                .index(i)
                .at(Some(offset)),
            );
        }
    }
}

/// The payload's tar stream stopped at `e`: not a complete tar stream, or
/// the source failed to give the rest.
fn stream_failed(e: &crate::Error) -> Problem {
    match ProblemKind::of(e, ProblemKind::PayloadNotTar) {
        ProblemKind::Unreadable => Problem::new(
            ProblemKind::Unreadable,
            format!("the payload could not be read to its end: {e}"),
        ),
        kind => Problem::new(kind, format!("payload is not a complete tar stream: {e}")),
    }
}

/// Reads the payload's trailing data to its end, a piece at a time, so
/// that every member start is recorded and the tiling checked. Returns
/// false if the payload could not be read to its end.
fn drain_trailing<R: std::io::Read>(scanner: &mut Scanner<R>, report: &mut VerifyReport) -> bool {
    let mut piece = Vec::with_capacity(TRAILING_PIECE as usize);
    loop {
        piece.clear();
        match scanner.read_trailing(&mut piece, TRAILING_PIECE) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                report.push(stream_failed(&e));
                return false;
            }
        }
    }
}

/// Fallback when the payload is not a readable tar: every chunk by random access.
pub(super) fn check_chunks_random_access<S: ReadAt>(
    source: &S,
    index: &Index,
    zstd: bool,
    report: &mut VerifyReport,
) {
    let files = index.files();
    let problems: Vec<Problem> = files
        .par_iter()
        .flat_map_iter(|node| {
            let mut out = Vec::new();
            let mut hasher = Sha256::new();
            for c in node.chunks() {
                match crate::read::decode_chunk(source, node.name(), c, false, zstd, None) {
                    Ok(data) => {
                        if !c.digest().is_absent() && !c.digest().matches(&Digest::of(&data)) {
                            out.push(chunk_mismatch(
                                node.raw_name(),
                                c.toc_index(),
                                Some(c.offset()),
                                c.chunk_offset(),
                            ));
                        }
                        hasher.update(&data);
                    }
                    Err(e) => out.push(
                        Problem::new(ProblemKind::of(&e, ProblemKind::ChunkRead), e.to_string())
                            .entry(node.raw_name())
                            .index(c.toc_index())
                            .at(Some(c.offset())),
                    ),
                }
            }
            if out.is_empty() && !node.digest().matches(&Digest::from_hasher(hasher)) {
                let mut p = Problem::new(
                    ProblemKind::FileDigest,
                    "file data does not match its digest",
                )
                .entry(node.raw_name());
                p.toc_index = node.toc_index();
                out.push(p);
            }
            out
        })
        .collect();
    report.files = files.len();
    report.chunks = files.iter().map(|f| f.chunks().len()).sum();
    report.problems.extend(problems);
}
