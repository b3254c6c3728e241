//! The library's one error type.
//!
//! Every variant carries what a user needs to act on it: the entry name and
//! the byte offset where that applies. The CLI adds the file name.

use std::io;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input tar is malformed.
    #[error("malformed tar at byte {offset}{}: {kind}", entry_suffix(.entry))]
    Tar {
        /// Byte offset in the (decompressed) tar stream.
        offset: u64,
        /// Name of the entry being read, when known.
        entry: Option<String>,
        /// What is wrong.
        kind: TarErrorKind,
    },
    /// A sparse entry: the TOC cannot describe holes, so a lossless blob
    /// cannot be made from it.
    #[error(
        "entry {entry:?} at byte {offset} is a sparse file ({format}); eStargz TOCs cannot \
         describe holes, so it cannot be converted losslessly (re-create the tar without \
         --sparse)"
    )]
    SparseEntry {
        /// Entry name.
        entry: String,
        /// Byte offset of its header.
        offset: u64,
        /// Which sparse encoding it uses.
        format: &'static str,
    },
    /// An input entry would collide with the TOC's own name.
    #[error(
        "entry {entry:?} at byte {offset}: an input entry named stargz.index.json is not \
         allowed (is the input already an eStargz blob? decompress it and drop the TOC first)"
    )]
    ExistingToc {
        /// Entry name as stored.
        entry: String,
        /// Byte offset of its header.
        offset: u64,
    },
    /// A name is not UTF-8 and strict name handling was requested.
    #[error("entry {entry:?} at byte {offset}: {field} is not valid UTF-8 (strict names)")]
    NonUtf8 {
        /// Entry name (lossily decoded for display).
        entry: String,
        /// Byte offset of its header.
        offset: u64,
        /// Which field: "name", "link name" or "xattr key".
        field: &'static str,
    },
    /// The blob would hold an entry that makes readers refuse its TOC: a
    /// hardlink to a name absent from the layer, to a directory or in a
    /// cycle, or an entry that has children but is not a directory.
    #[error(
        "entry {entry:?} at byte {offset}: {reason}; eStargz readers refuse a TOC with this \
         entry (`estargz verify` does, and the reference does for missing or cyclic hardlink \
         targets), so the blob would not open lazily"
    )]
    UnreadableEntry {
        /// Entry name as stored.
        entry: String,
        /// Byte offset of its header in the input tar.
        offset: u64,
        /// What readers object to.
        reason: String,
    },
    /// An entry the chosen format cannot carry: the containers dialect of
    /// zstd:chunked refuses PAX global headers, names that are not UTF-8,
    /// duplicate names and data on anything but a regular file, because
    /// its tar-split stream or containers/storage's check of the TOC
    /// against it cannot hold them (docs/zstd-chunked-format.md §4.5, §7.2).
    #[error(
        "entry {entry:?} at byte {offset}: {reason}; the {format} cannot carry it \
         (the stargz dialect, --toc-format stargz, can)"
    )]
    UnsupportedInDialect {
        /// Entry name (lossily decoded for display).
        entry: String,
        /// Byte offset of its header in the input tar.
        offset: u64,
        /// What the format cannot hold.
        reason: String,
        /// The format, for the message.
        format: &'static str,
    },
    /// An eStargz-only entry (TOC, landmark) cannot be dropped from a
    /// layer being converted again without changing the entries after it.
    #[error("entry {entry:?} at byte {offset}: cannot be dropped: {reason}")]
    CannotDrop {
        /// Entry name (lossily decoded for display).
        entry: String,
        /// Byte offset of what is in the way.
        offset: u64,
        /// Why.
        reason: &'static str,
    },
    /// The input holds no bytes at all.
    #[error("input is empty (0 bytes): not a tar archive")]
    EmptyInput,
    /// Reading the input failed.
    #[error("reading input at byte {offset}: {source}")]
    Read {
        /// Byte offset in the (decompressed) input where the read failed.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Write(#[source] io::Error),
    /// Writing the temporary copy of the input (`prioritize::spool`) failed,
    /// typically because the temporary directory is full.
    #[error("writing the temporary spool in {} ($TMPDIR): {source}", .dir.display())]
    Spool {
        /// The temporary directory.
        dir: std::path::PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A gzip stream could not be decoded.
    #[error("gzip stream invalid near compressed byte {offset}: {message}")]
    Gzip {
        /// Approximate offset in the compressed stream.
        offset: u64,
        /// What the decoder said.
        message: String,
    },
    /// A footer could not be parsed.
    #[error(transparent)]
    Footer(#[from] crate::footer::FooterError),
    /// The blob's TOC cannot be used.
    #[error("invalid TOC at byte {offset}: {reason}")]
    InvalidToc {
        /// Offset of the TOC member in the blob.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The TOC is not the one
    /// [`OpenOptions::expected_toc_digest`](crate::OpenOptions::expected_toc_digest)
    /// names: checked on the stored JSON (hashed as `Blob::open` streams
    /// it), before anything parsed from it is used, and reported before any
    /// error in what it holds.
    #[error("the TOC at byte {offset} has digest {actual}, not the expected {expected}")]
    TocDigestMismatch {
        /// Offset of the TOC member (or frame) in the blob.
        offset: u64,
        /// The digest asked for.
        expected: crate::digest::Digest,
        /// The stored TOC JSON's digest.
        actual: crate::digest::Digest,
    },
    /// A zstd:chunked footer, skippable frame, TOC frame or data frame is
    /// malformed or points outside the blob.
    #[error("{reason}")]
    ZstdChunked {
        /// Blob offset of the footer or frame concerned.
        offset: u64,
        /// What is wrong; names that offset.
        reason: String,
    },
    /// A TOC entry is inconsistent.
    #[error("TOC entry {index} ({entry:?}): {reason}")]
    InvalidEntry {
        /// Position in the TOC's `entries` array.
        index: usize,
        /// Entry name as stored.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A limit was exceeded.
    #[error("{what} of {value} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was measured.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The configured limit.
        limit: u64,
    },
    /// No entry of that name.
    #[error("{0:?}: no such entry in the TOC")]
    NotFound(String),
    /// The entry is not a regular file.
    #[error("{path:?} is a {kind}, not a regular file")]
    NotRegular {
        /// Path looked up.
        path: String,
        /// Its type.
        kind: String,
    },
    /// File data in the blob does not match the TOC.
    #[error("{entry:?}: data at blob byte {offset}: {reason}")]
    CorruptData {
        /// Entry name.
        entry: String,
        /// Blob offset of the member concerned.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading a file's data from the blob's source (a file, a server)
    /// failed: nothing is known to be wrong with the blob, and the same
    /// read may work later. The source's error is kept, with its
    /// [`io::ErrorKind`] and, for a remote source, the client's own error
    /// inside it ([`io::Error::get_ref`]).
    #[error("{entry:?}: data at blob byte {offset}: reading {len} bytes: {source}")]
    Io {
        /// Entry name.
        entry: String,
        /// Blob offset of the read.
        offset: u64,
        /// Bytes asked for.
        len: u64,
        /// The source's error.
        source: io::Error,
    },
    /// Unpacking into a directory would leave it, or hit something unsafe.
    #[error("unpack: entry {entry:?}: {reason}")]
    Unsafe {
        /// Entry name as stored.
        entry: String,
        /// What was refused.
        reason: String,
    },
    /// A filesystem operation failed while unpacking.
    #[error("unpack: {path}: {source}")]
    Fs {
        /// Path concerned.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The compressor failed (should not happen: buffers are sized by its bound).
    #[error("compressor failed: {0}")]
    Compress(String),
    /// The tar cannot be reordered for prefetching.
    #[error("cannot reorder the tar at byte {offset}{}: {reason}", entry_suffix(.entry))]
    Reorder {
        /// Byte offset in the (decompressed) tar.
        offset: u64,
        /// The entry concerned, when there is one.
        entry: Option<String>,
        /// Why.
        reason: String,
    },
    /// Prioritized files are not in the tar.
    #[error("{} prioritized file(s) not found in the tar: {}", .names.len(), quoted(.names))]
    PrioritizedNotFound {
        /// The names as given in the list.
        names: Vec<String>,
    },
    /// A line of a prioritized-files list cannot be parsed.
    #[error("prioritized-files list, line {line}: {reason}")]
    PrioritizedList {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// What kind of failure an [`Error`] is: what a caller decides on
/// (retry, report the blob as bad, fix the request).
///
/// ```
/// use estargz_core::{Error, ErrorKind};
///
/// let err = Error::NotFound("etc/passwd".into());
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert!(!err.is_retryable());
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
/// let err = Error::Io { entry: "a".into(), offset: 0, len: 1, source: io };
/// assert_eq!(err.kind(), ErrorKind::Io);
/// assert!(err.is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No entry of that name or id.
    NotFound,
    /// The entry is not a regular file.
    NotRegular,
    /// The data is malformed or does not match what describes it: a bad
    /// footer, TOC, member, chunk digest, tar header.
    Corrupt,
    /// Reading or writing the bytes failed (a file, a server); the
    /// [`io::Error`] is the error's `source()`.
    Io,
    /// A configured limit was exceeded.
    Limit,
    /// The input cannot be converted as asked (sparse files, names that
    /// are not UTF-8 in strict mode, entries readers would refuse).
    Unsupported,
    /// An option or an argument is wrong.
    InvalidInput,
    /// Unpacking refused an entry that would leave the target directory.
    Unsafe,
    /// Anything else.
    Other,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::NotRegular { .. } => ErrorKind::NotRegular,
            Error::Tar { .. }
            | Error::EmptyInput
            | Error::Gzip { .. }
            | Error::Footer(_)
            | Error::InvalidToc { .. }
            | Error::TocDigestMismatch { .. }
            | Error::ZstdChunked { .. }
            | Error::InvalidEntry { .. }
            | Error::CorruptData { .. } => ErrorKind::Corrupt,
            // A reader's own verdict on the bytes (bad gzip, a blob that
            // ends early) rather than a failure to get them.
            Error::Read { source, .. }
                if !crate::read::is_source_error(source)
                    && matches!(
                        source.kind(),
                        io::ErrorKind::InvalidData
                            | io::ErrorKind::InvalidInput
                            | io::ErrorKind::UnexpectedEof
                    ) =>
            {
                ErrorKind::Corrupt
            }
            Error::Read { .. }
            | Error::Write(_)
            | Error::Spool { .. }
            | Error::Io { .. }
            | Error::Fs { .. } => ErrorKind::Io,
            Error::LimitExceeded { .. } => ErrorKind::Limit,
            Error::SparseEntry { .. }
            | Error::ExistingToc { .. }
            | Error::NonUtf8 { .. }
            | Error::UnreadableEntry { .. }
            | Error::UnsupportedInDialect { .. }
            | Error::CannotDrop { .. }
            | Error::Reorder { .. } => ErrorKind::Unsupported,
            Error::InvalidOption(_)
            | Error::PrioritizedNotFound { .. }
            | Error::PrioritizedList { .. } => ErrorKind::InvalidInput,
            Error::Unsafe { .. } => ErrorKind::Unsafe,
            Error::Compress(_) => ErrorKind::Other,
        }
    }

    /// The I/O error behind an [`ErrorKind::Io`] failure.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Read { source, .. }
            | Error::Spool { source, .. }
            | Error::Io { source, .. }
            | Error::Fs { source, .. }
            | Error::Write(source) => Some(source),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: the bytes could not be
    /// read (a timeout, a connection lost, a server failing), which says
    /// nothing about the blob. Not for a source that answered that the
    /// blob is missing or forbidden (`NotFound`, `PermissionDenied`), nor
    /// for an answer that cannot change (`InvalidInput`, `Unsupported`).
    pub fn is_retryable(&self) -> bool {
        use io::ErrorKind as K;
        if self.kind() != ErrorKind::Io {
            return false;
        }
        match self {
            Error::Read { source, .. } | Error::Io { source, .. } => !matches!(
                source.kind(),
                K::NotFound | K::PermissionDenied | K::InvalidInput | K::Unsupported
            ),
            _ => false,
        }
    }
}

impl From<Error> for io::Error {
    /// The error inside an [`io::Error`] of the matching kind (an I/O
    /// failure keeps its own), for [`std::io::Read`] implementations.
    fn from(e: Error) -> io::Error {
        let kind = match (e.kind(), e.io_error()) {
            (ErrorKind::Io, Some(source)) => source.kind(),
            (ErrorKind::NotFound, _) => io::ErrorKind::NotFound,
            (ErrorKind::InvalidInput, _) => io::ErrorKind::InvalidInput,
            (ErrorKind::Unsupported, _) => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// `"a", "b"`: names for a message, each quoted and escaped.
pub(crate) fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn entry_suffix(entry: &Option<String>) -> String {
    match entry {
        Some(name) => format!(" (entry {name:?})"),
        None => String::new(),
    }
}

/// What is wrong with a malformed tar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarErrorKind {
    /// Header checksum does not match.
    #[error("header checksum mismatch (stored {stored:?}, computed {computed}){}",
        if *.at_start { "; the input is not a tar archive" } else { "" })]
    BadChecksum {
        /// The stored checksum field, as text.
        stored: String,
        /// The checksum computed over the block.
        computed: u32,
        /// The failing header is the first block of the input.
        at_start: bool,
    },
    /// A numeric field is not a number.
    #[error("{field} field is not a valid number: {value:?}")]
    BadNumber {
        /// Field name.
        field: &'static str,
        /// Field text.
        value: String,
    },
    /// A numeric field is negative where that makes no sense.
    #[error("{field} field is negative")]
    Negative {
        /// Field name.
        field: &'static str,
    },
    /// The input ends inside something.
    #[error("unexpected end of input inside {what} (needed {needed} more bytes)")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// How many bytes were missing.
        needed: u64,
    },
    /// A PAX extended header record is malformed.
    #[error("bad PAX record: {0}")]
    BadPaxRecord(String),
    /// An extension header is larger than the limit.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Claimed size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A type flag this converter does not support.
    #[error("unsupported entry type {0:?}")]
    UnsupportedType(char),
    /// Extension headers with no entry after them.
    #[error("extension header not followed by an entry")]
    DanglingExtension,
    /// More data after the end-of-archive block than the limit accepts.
    #[error(
        "more than {limit} bytes of trailing data from byte {from}, after the end-of-archive \
         block (tars carry at most a little record padding there; the limit is configurable)"
    )]
    TrailingTooLarge {
        /// Offset of the first trailing byte.
        from: u64,
        /// The limit.
        limit: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(e: io::Error) -> Error {
        Error::Read {
            offset: 7,
            source: e,
        }
    }

    #[test]
    fn kinds_tell_the_source_failing_from_bad_data() {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no answer");
        assert_eq!(read(timed_out()).kind(), ErrorKind::Io);
        assert!(read(timed_out()).is_retryable());
        // A decoder's verdict is about the data...
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, "corrupt deflate stream");
        assert_eq!(read(bad()).kind(), ErrorKind::Corrupt);
        assert!(!read(bad()).is_retryable());
        // ...unless the source itself said it.
        let marked = crate::read::SourceError::mark(bad());
        assert_eq!(marked.to_string(), "corrupt deflate stream");
        assert_eq!(read(marked).kind(), ErrorKind::Io);
        let gone = io::Error::new(io::ErrorKind::NotFound, "404");
        assert!(!read(gone).is_retryable());
        assert_eq!(
            Error::LimitExceeded {
                what: "x",
                value: 2,
                limit: 1
            }
            .kind(),
            ErrorKind::Limit
        );
        let as_io = io::Error::from(Error::NotFound("a".into()));
        assert_eq!(as_io.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            io::Error::from(read(timed_out())).kind(),
            io::ErrorKind::TimedOut
        );
    }
}
