//! §6.3: what the TOC says about itself, checked without reading the payload.

use super::{Problem, ProblemKind, VerifyReport};
use crate::digest::Digest;
use crate::toc::{EntryType, Toc, TocEntry};

/// §6.3: what the TOC says about itself.
pub(super) fn check_structure(toc: &Toc, payload_end: u64, report: &mut VerifyReport) {
    if toc.version != 1 {
        report.push(Problem::new(
            ProblemKind::TocVersion,
            format!("TOC version is {}, expected 1", toc.version),
        ));
    }
    // Legacy stargz TOCs have no chunkDigest; their files are checked by `digest`.
    let legacy = !toc.entries.iter().any(|e| e.kind == EntryType::Chunk)
        && toc
            .entries
            .iter()
            .filter(|e| e.is_data())
            .all(|e| e.chunk_digest.is_empty() && !e.digest.is_empty());
    let mut layout = Layout {
        payload_end,
        legacy,
        last: None,
        file: None,
    };
    for (i, e) in toc.entries.iter().enumerate() {
        check_fields(i, e, report);
        if e.kind != EntryType::Chunk {
            layout.close_file(toc, report);
        }
        if !e.is_data() {
            if e.kind == EntryType::Reg && e.offset != 0 {
                report.push(located(
                    ProblemKind::EmptyFileOffset,
                    i,
                    e,
                    None,
                    "empty file with an offset",
                ));
            }
            continue;
        }
        layout.check_offsets(i, e, report);
        layout.check_chunk(i, e, report);
    }
    layout.close_file(toc, report);
}

/// A problem with TOC entry `i`.
fn located(
    kind: ProblemKind,
    i: usize,
    e: &TocEntry,
    offset: Option<u64>,
    message: impl Into<String>,
) -> Problem {
    Problem::new(kind, message)
        .entry(&e.name)
        .index(i)
        .at(offset)
}

/// Each field of one entry on its own: type known, numbers non-negative,
/// digests well-formed, a regular file's digest present.
fn check_fields(i: usize, e: &TocEntry, report: &mut VerifyReport) {
    if let EntryType::Other(t) = &e.kind {
        report.push(located(
            ProblemKind::UnknownType,
            i,
            e,
            None,
            format!("unknown entry type {t:?}"),
        ));
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
            report.push(located(
                ProblemKind::NegativeField,
                i,
                e,
                None,
                format!("{field} is negative ({v})"),
            ));
        }
    }
    for (field, d) in [("digest", &e.digest), ("chunkDigest", &e.chunk_digest)] {
        if !d.is_empty() && d.parse::<Digest>().is_err() {
            report.push(located(
                ProblemKind::MalformedDigest,
                i,
                e,
                None,
                format!("{field} {d:?} is not a sha256 digest"),
            ));
        }
    }
    if e.kind == EntryType::Reg && e.digest.is_empty() {
        report.push(located(
            ProblemKind::MissingDigest,
            i,
            e,
            None,
            "regular file without a digest",
        ));
    }
}

/// The regular file whose chunks are being followed.
struct FileRun {
    /// Its TOC index.
    index: usize,
    /// Its size.
    size: u64,
    /// File offset just past the chunks seen so far.
    next: u64,
}

/// The data entries in TOC order: offsets within the payload and
/// non-decreasing, each file's chunks contiguous from 0 to its size.
struct Layout {
    payload_end: u64,
    legacy: bool,
    /// (offset, innerOffset) of the previous data entry.
    last: Option<(i64, i64)>,
    file: Option<FileRun>,
}

impl Layout {
    /// The data entry's member offset: inside the payload, after the
    /// previous one's, its chunkDigest present.
    fn check_offsets(&mut self, i: usize, e: &TocEntry, report: &mut VerifyReport) {
        // A negative offset is reported by check_fields; it names no byte.
        let offset = e.offset_u64();
        if e.chunk_digest.is_empty() && !self.legacy {
            report.push(located(
                ProblemKind::MissingDigest,
                i,
                e,
                offset,
                "data entry without a chunkDigest",
            ));
        }
        if offset.is_some_and(|o| o >= self.payload_end) {
            report.push(located(
                ProblemKind::OffsetOutsidePayload,
                i,
                e,
                offset,
                format!("offset outside the payload [0, {})", self.payload_end),
            ));
        }
        if let Some((lo, li)) = self.last {
            if e.offset < lo || (e.offset == lo && e.inner_offset <= li) {
                report.push(located(
                    ProblemKind::OffsetOrder,
                    i,
                    e,
                    offset,
                    format!(
                        "data offset ({}, innerOffset {}) does not follow ({lo}, {li})",
                        e.offset, e.inner_offset
                    ),
                ));
            }
        }
        self.last = Some((e.offset, e.inner_offset));
    }

    /// A data entry's place in its file: a regular file starts a run at 0,
    /// a chunk continues it where the previous chunk ended.
    fn check_chunk(&mut self, i: usize, e: &TocEntry, report: &mut VerifyReport) {
        let offset = e.offset_u64();
        if e.kind == EntryType::Reg {
            if e.chunk_offset != 0 {
                report.push(located(
                    ProblemKind::ChunkCoverage,
                    i,
                    e,
                    None,
                    format!("first chunk starts at file offset {}", e.chunk_offset),
                ));
            }
            // A data entry's size is positive.
            let size = e.size_u64().unwrap_or(0);
            // A negative chunkSize, reported by check_fields, counts as none.
            let next = e.chunk_len(size).unwrap_or(size);
            self.file = Some(FileRun {
                index: i,
                size,
                next,
            });
            return;
        }
        let Some(file) = self.file.as_mut() else {
            report.push(located(
                ProblemKind::OrphanChunk,
                i,
                e,
                offset,
                "chunk entry does not follow a regular file",
            ));
            return;
        };
        // A negative chunkOffset, reported by check_fields, places the
        // chunk nowhere in the file.
        let Some(chunk_offset) = e.chunk_offset_u64() else {
            return;
        };
        let (size, next) = (file.size, file.next);
        if chunk_offset != next {
            let what = if chunk_offset > next {
                "gap"
            } else {
                "overlap"
            };
            report.push(located(
                ProblemKind::ChunkCoverage,
                i,
                e,
                offset,
                format!("chunk at file offset {chunk_offset} leaves a {what} after byte {next}"),
            ));
        }
        // Without a length (none given, or negative) a chunk runs to the
        // file's end.
        file.next = e
            .chunk_len(size)
            .map_or(size, |len| chunk_offset.saturating_add(len));
        if file.next > size {
            report.push(located(
                ProblemKind::ChunkCoverage,
                i,
                e,
                offset,
                format!("chunk ends at {}, past the file size {size}", file.next),
            ));
        }
    }

    /// The file's chunks, all seen, must end at its size.
    fn close_file(&mut self, toc: &Toc, report: &mut VerifyReport) {
        if let Some(FileRun { index, size, next }) = self.file.take() {
            if next != size {
                report.push(located(
                    ProblemKind::ChunkCoverage,
                    index,
                    &toc.entries[index],
                    None,
                    format!("chunks cover {next} of the file's {size} bytes"),
                ));
            }
        }
    }
}
