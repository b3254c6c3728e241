//! §6.3: what the TOC says about itself, checked without reading the payload.

use super::{is_data, VerifyReport};
use crate::digest::Digest;
use crate::toc::{EntryType, Toc};

/// §6.3: what the TOC says about itself.
pub(super) fn check_structure(toc: &Toc, payload_end: u64, report: &mut VerifyReport) {
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
