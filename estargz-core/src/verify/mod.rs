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
//! zstd:chunked blobs go through the same steps, data frames in the place
//! of gzip members; with a tar-split frame (containers dialect, 64-byte
//! footer) its digest, its entries and the tar it rebuilds are checked too.
//!
//! Every problem found is a [`Problem`]: a [`ProblemKind`] to match on, the
//! entry, its position in the TOC and the blob offset concerned where they
//! apply, and a message.

mod payload;
mod problem;
mod structure;
mod tar_split;

pub use problem::{Problem, ProblemKind};

use crate::digest::Digest;
use crate::footer::FooterKind;
use crate::read::{read_footer, Index, OpenOptions, ReadAt, TocInfo, ZstdDialect};
use payload::{check_chunks_random_access, walk_payload};
use serde::{Serialize, Serializer};
use structure::check_structure;

/// What to verify against.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// The TOC digest the blob must have (from the layer annotation).
    pub expected_toc_digest: Option<Digest>,
    /// Limits for opening the blob.
    pub open: OpenOptions,
}

/// The outcome of [`verify`]. Serializes (with serde) to the object
/// `estargz verify --json` prints, less its `blob` and `valid` keys: the
/// footer and digest as their display text.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Footer layout, when one was found.
    #[serde(serialize_with = "as_display")]
    pub footer: Option<FooterKind>,
    /// Digest of the stored TOC JSON, when it could be read.
    #[serde(serialize_with = "as_display")]
    pub toc_digest: Option<Digest>,
    /// Offset of the TOC member (zstd:chunked: of the TOC frame).
    pub toc_offset: Option<u64>,
    /// zstd:chunked: the dialect.
    #[serde(serialize_with = "as_display", skip_serializing_if = "Option::is_none")]
    pub zstd_dialect: Option<ZstdDialect>,
    /// zstd:chunked: sha256 of the compressed TOC frame (the
    /// `manifest-checksum` annotation).
    #[serde(serialize_with = "as_display", skip_serializing_if = "Option::is_none")]
    pub manifest_checksum: Option<Digest>,
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

/// `Some(x)` as the string `x.to_string()`, `None` as null.
fn as_display<T: std::fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }
}

/// Verifies the blob read from `source`. Never fails: every failure is a
/// [`Problem`] in the report.
///
/// ```
/// use estargz_core::{verify, Converter, VerifyOptions};
///
/// let mut tar = tar::Builder::new(Vec::new());
/// let mut h = tar::Header::new_ustar();
/// h.set_size(3);
/// h.set_cksum();
/// tar.append_data(&mut h, "a.txt", &b"abc"[..]).unwrap();
/// let mut blob = Vec::new();
/// let report = Converter::new().convert(&tar.into_inner().unwrap(), &mut blob).unwrap();
///
/// let mut opts = VerifyOptions::default();
/// opts.expected_toc_digest = Some(report.toc_digest);
/// assert!(verify(&blob[..], &opts).is_valid());
/// let last = blob.len() - 60;
/// blob[last] ^= 0xff; // inside the TOC member
/// assert!(!verify(&blob[..], &opts).is_valid());
/// ```
pub fn verify<S: ReadAt>(source: S, opts: &VerifyOptions) -> VerifyReport {
    let mut report = VerifyReport::default();
    let (footer, size) = match read_footer(&source) {
        Ok(v) => v,
        Err(e) => {
            let kind = match e {
                crate::Error::Footer(_) | crate::Error::ZstdChunked { .. } => ProblemKind::Footer,
                _ => ProblemKind::Toc,
            };
            report.push(Problem::from_error(ProblemKind::of(&e, kind), &e));
            return report;
        }
    };
    let (info, source) = match TocInfo::after_footer(source, footer, size, &opts.open) {
        Ok(v) => v,
        Err(e) => {
            report.push(Problem::from_error(
                ProblemKind::of(&e, ProblemKind::Toc),
                &e,
            ));
            return report;
        }
    };
    report.footer = Some(info.footer.kind);
    report.toc_digest = Some(info.digest);
    report.toc_offset = Some(info.toc_offset);
    if let Some(z) = &info.zstd_chunked {
        report.zstd_dialect = Some(z.dialect);
        report.manifest_checksum = Some(z.manifest_checksum);
    }
    report.entries = info.toc.entries.len();
    let footer_at = info.blob_size - info.footer.kind.size() as u64;
    for w in &info.footer.warnings {
        report.push(
            Problem::new(ProblemKind::FooterWarning, format!("footer: {w}")).at(Some(footer_at)),
        );
    }
    if info.slack > 0 {
        report.push(
            Problem::new(
                ProblemKind::TocSlack,
                format!("{} bytes between the TOC member and the footer", info.slack),
            )
            .at(Some(info.toc_offset)),
        );
    }
    if let Some(want) = opts.expected_toc_digest {
        check_toc_digest(&info, want, &mut report);
    }
    check_structure(&info.toc, info.payload_end, &mut report);
    let index = match Index::build(&info.toc, info.payload_end, &opts.open.index) {
        Ok(index) => Some(index),
        Err(e) => {
            report.push(Problem::from_error(ProblemKind::Index, &e));
            None
        }
    };
    let split = tar_split::read_tar_split(&source, &info, &mut report);
    let matcher = split.as_deref().map(tar_split::matcher);
    let walk_from = report.problems.len();
    let walked = walk_payload(&source, &info, matcher.as_ref(), &mut report);
    if let (true, Some(matcher)) = (walked, matcher) {
        tar_split::finish(matcher, info.payload_end, &mut report);
    }
    let unreadable = report.problems[walk_from..]
        .iter()
        .any(|p| p.kind == ProblemKind::Unreadable);
    if !walked && !unreadable {
        // The payload is not a readable tar stream: still check every chunk
        // the TOC describes, by random access. Not when the source failed:
        // each chunk would most likely fail the same way, one problem each.
        if let Some(index) = &index {
            check_chunks_random_access(
                &source,
                index,
                info.footer.kind.is_zstd_chunked(),
                &mut report,
            );
        }
    }
    report
}

/// The expected TOC digest against the blob's. A zstd:chunked TOC has two
/// names (spec §8 #3): the sha256 of its JSON (stargz `toc.digest`) and of
/// its compressed frame (the `manifest-checksum` containers/image calls the
/// TOC digest); either matches, and a mismatch names both.
fn check_toc_digest(info: &TocInfo, want: Digest, report: &mut VerifyReport) {
    let checksum = info.zstd_chunked.as_ref().map(|z| z.manifest_checksum);
    if want == info.digest || Some(want) == checksum {
        return;
    }
    let message = match checksum {
        Some(c) => format!(
            "TOC digest is {} and manifest checksum {c}, expected {want}",
            info.digest
        ),
        None => format!("TOC digest is {}, expected {want}", info.digest),
    };
    report.push(Problem::new(ProblemKind::TocDigestMismatch, message).at(Some(info.toc_offset)));
}
