//! The crate's one error type. Every variant names the file it is about
//! (a path in the source or destination, or `ARCHIVE.tar:blobs/...`) so a
//! user can go and look.

use std::io;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, converting or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A JSON document (index, manifest, config) does not parse.
    #[error("{file}: invalid JSON: {source}")]
    Json {
        /// The document.
        file: String,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// Well-formed JSON, or a tar, that does not say what an OCI image must.
    #[error("{file}: {message}")]
    Invalid {
        /// The document or archive.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A digest string that is not `sha256:` and 64 lower-case hex digits.
    #[error("{file}: invalid digest {digest:?}: {reason}")]
    BadDigest {
        /// The document holding the descriptor.
        file: String,
        /// The digest as written.
        digest: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A descriptor points at a blob the image does not contain.
    #[error("{file}: blob is missing (referenced by {referrer})")]
    MissingBlob {
        /// Where the blob should be.
        file: String,
        /// The document holding the descriptor.
        referrer: String,
    },
    /// A blob's content does not hash to its name.
    #[error("{file}: digest mismatch: content hashes to {actual}")]
    DigestMismatch {
        /// The blob.
        file: String,
        /// What the content hashes to.
        actual: String,
    },
    /// A blob's length differs from its descriptor's size.
    #[error("{file}: size mismatch: the descriptor says {expected} bytes, the blob has {actual}")]
    SizeMismatch {
        /// The blob.
        file: String,
        /// The descriptor's size.
        expected: u64,
        /// The blob's length (or a lower bound when it is longer).
        actual: u64,
    },
    /// The converter refused a layer.
    #[error("{file}: converting the layer failed: {source}")]
    Convert {
        /// The layer blob.
        file: String,
        /// The converter's error.
        source: estargz_core::Error,
    },
    /// A registry refused a request or could not be reached.
    #[error("{what}: {source}")]
    Registry {
        /// The image, manifest or blob asked for.
        what: String,
        /// The registry client's error (boxed: it is large, and every
        /// `Result` of this crate would carry its size).
        source: Box<estargz_registry::Error>,
    },
    /// The conversion cache could not be opened or written.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
}

pub(crate) fn io_err(file: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    let file = file.to_string();
    move |source| Error::Io { file, source }
}

pub(crate) fn invalid(file: impl std::fmt::Display, message: impl Into<String>) -> Error {
    Error::Invalid {
        file: file.to_string(),
        message: message.into(),
    }
}
