//! What verify reports: one [`Problem`] per thing found wrong.

use crate::error::{Error, ErrorKind};
use crate::footer::FooterError;
use serde::Serialize;
use std::fmt;

/// What kind of problem was found. Serialized as its snake_case name
/// (`chunk_digest`, `name_mismatch`, ...), which stays stable.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// No usable footer: the blob could not be opened.
    Footer,
    /// The footer was accepted, but has bytes the reference never checks.
    FooterWarning,
    /// The TOC could not be read or parsed, or exceeds a limit.
    Toc,
    /// Bytes between the TOC member and the footer.
    TocSlack,
    /// The TOC digest is not the expected one.
    TocDigestMismatch,
    /// The TOC's `version` is not 1.
    TocVersion,
    /// An entry type the format does not define.
    UnknownType,
    /// A number in a TOC entry is negative.
    NegativeField,
    /// A `digest` or `chunkDigest` is not a sha256 digest.
    MalformedDigest,
    /// A regular file without a `digest`, or a data entry without a
    /// `chunkDigest` (outside legacy stargz TOCs).
    MissingDigest,
    /// An empty regular file with an offset.
    EmptyFileOffset,
    /// A data offset outside the payload.
    OffsetOutsidePayload,
    /// A data offset before the previous one.
    OffsetOrder,
    /// A file's chunks do not cover it exactly: a first chunk not at 0, a
    /// gap, an overlap, or a chunk past the file's end.
    ChunkCoverage,
    /// A chunk entry that does not follow a regular file.
    OrphanChunk,
    /// The TOC cannot be indexed for reading (a hardlink missing, cyclic or
    /// to a directory, children under a non-directory, a limit exceeded...).
    Index,
    /// The payload is not a complete tar stream.
    PayloadNotTar,
    /// A tar entry in the payload with no TOC entry.
    NotInToc,
    /// A TOC entry with no tar entry in the payload.
    MissingFromPayload,
    /// The tar entry's name is not the TOC entry's.
    NameMismatch,
    /// The tar entry's type is not the TOC entry's.
    TypeMismatch,
    /// The tar entry's link target is not the TOC entry's.
    LinkMismatch,
    /// The tar entry's size is not the TOC entry's.
    SizeMismatch,
    /// A chunk's data could not be read or decoded.
    ChunkRead,
    /// A data offset is not the start of a gzip member.
    MemberStart,
    /// A chunk is not at the uncompressed position the TOC gives it.
    ChunkPosition,
    /// A chunk's bytes do not match its `chunkDigest`.
    ChunkDigest,
    /// A file's bytes do not match its `digest`.
    FileDigest,
    /// zstd:chunked: a skippable frame between the data frames. Decoders
    /// pass over it, so the DiffID is unchanged, but no TOC entry can
    /// reach it.
    SkippableInPayload,
    /// zstd:chunked, containers dialect: the tar-split stream cannot be
    /// read, does not match the TOC's `tarSplitDigest` or entries, or does
    /// not rebuild the payload's tar.
    TarSplit,
    /// The blob could not be read: its source (a file, a server) failed
    /// while verify read the footer, the TOC, the payload or a chunk. Says
    /// nothing about the blob; what was not read was not checked, so the
    /// blob is not known to be valid either.
    Unreadable,
}

impl ProblemKind {
    /// [`ProblemKind::Unreadable`] when `e` is a failure to read the
    /// source, else `otherwise`: what the error says about the blob.
    pub(super) fn of(e: &Error, otherwise: ProblemKind) -> ProblemKind {
        if e.kind() == ErrorKind::Io {
            ProblemKind::Unreadable
        } else {
            otherwise
        }
    }

    /// The message is a library [`Error`]'s own text, which already names
    /// the entry, TOC index and offset: the text prefixes none of them.
    fn message_is_located(self) -> bool {
        matches!(
            self,
            ProblemKind::Footer | ProblemKind::Toc | ProblemKind::Index
        )
    }

    /// A tar-vs-TOC comparison: about the entry, not about the bytes at its
    /// offset, which the fields carry but the text does not name.
    fn is_tar_mismatch(self) -> bool {
        matches!(
            self,
            ProblemKind::NameMismatch
                | ProblemKind::TypeMismatch
                | ProblemKind::LinkMismatch
                | ProblemKind::SizeMismatch
        )
    }
}

/// One problem found. Its [`Display`](fmt::Display) text is what
/// `estargz verify` prints; it serializes (with serde) to the object listed
/// in `estargz verify --json`'s `problems`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, to match on.
    pub kind: ProblemKind,
    /// The entry concerned, as named in the TOC, or in the tar for an entry
    /// the TOC lacks.
    pub entry: Option<String>,
    /// The entry's position in the TOC's `entries` (for a chunk, the chunk
    /// entry's).
    pub toc_index: Option<usize>,
    /// The blob (compressed) offset concerned: the gzip member of the data
    /// in question, the TOC member or the footer.
    pub offset: Option<u64>,
    /// For problems found walking the payload's tar: the offset of the tar
    /// header in the uncompressed payload.
    pub tar_offset: Option<u64>,
    /// What is wrong, in words.
    pub message: String,
}

impl Problem {
    pub(super) fn new(kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            entry: None,
            toc_index: None,
            offset: None,
            tar_offset: None,
            message: message.into(),
        }
    }

    /// A library error as a problem, its entry, index and offset kept.
    pub(super) fn from_error(kind: ProblemKind, e: &Error) -> Problem {
        let mut p = Problem::new(kind, e.to_string());
        match e {
            Error::InvalidEntry { index, entry, .. } => {
                p.entry = Some(entry.clone());
                p.toc_index = Some(*index);
            }
            Error::CorruptData { entry, offset, .. } | Error::Io { entry, offset, .. } => {
                p.entry = Some(entry.clone());
                p.offset = Some(*offset);
            }
            Error::InvalidToc { offset, .. } | Error::ZstdChunked { offset, .. } => {
                p.offset = Some(*offset)
            }
            Error::Footer(FooterError::TocOffsetOutOfRange { footer_offset, .. }) => {
                p.offset = Some(*footer_offset);
            }
            _ => {}
        }
        p
    }

    pub(super) fn entry(mut self, name: &str) -> Problem {
        self.entry = Some(name.to_string());
        self
    }

    pub(super) fn index(mut self, toc_index: usize) -> Problem {
        self.toc_index = Some(toc_index);
        self
    }

    pub(super) fn at(mut self, offset: Option<u64>) -> Problem {
        self.offset = offset;
        self
    }

    pub(super) fn tar_at(mut self, tar_offset: u64) -> Problem {
        self.tar_offset = Some(tar_offset);
        self
    }

    /// The offset the text names, if any.
    pub(super) fn offset_in_text(&self) -> Option<u64> {
        if self.kind.message_is_located() || self.kind.is_tar_mismatch() {
            None
        } else {
            self.offset
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.kind.message_is_located() {
            if let Some(e) = &self.entry {
                write!(f, "entry {e:?}: ")?;
            }
        }
        if let Some(o) = self.offset_in_text() {
            write!(f, "at byte {o}: ")?;
        }
        f.write_str(&self.message)
    }
}
