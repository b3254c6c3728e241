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

mod payload;
mod structure;

use crate::digest::Digest;
use crate::footer::FooterKind;
use crate::read::{Index, OpenOptions, ReadAt, TocInfo};
use crate::toc::{EntryType, TocEntry};
use payload::{check_chunks_random_access, walk_payload};
use structure::check_structure;

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
    let walked = walk_payload(&source, &info, &mut report);
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
