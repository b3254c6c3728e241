//! What can go wrong talking to a registry.
//!
//! No variant holds a password or a token: URLs here never carry
//! credentials (they travel in headers), and the text of a response is
//! kept only from the registry's error JSON.

use std::path::PathBuf;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference that is not `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`.
    #[error("invalid image reference {reference:?}: {reason}")]
    BadReference {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A digest this crate cannot check (not `sha256:` and 64 hex digits).
    #[error("{reason}")]
    BadDigest {
        /// What is wrong with it.
        reason: String,
    },
    /// `404`: the repository, manifest or blob does not exist (or the
    /// credentials may not see it).
    #[error("not found (404{}): {url}", code_suffix(.code, .message))]
    NotFound {
        /// The URL asked for.
        url: String,
        /// The registry's error code (`MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`,
        /// `NAME_UNKNOWN`), when it sent one.
        code: Option<String>,
        /// The registry's message for that code.
        message: Option<String>,
    },
    /// Any other unexpected status, `401` after authenticating included.
    #[error("{method} {url}: status {status}{}", code_suffix(.code, .message))]
    Status {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's error code (`UNAUTHORIZED`, `DENIED`,
        /// `DIGEST_INVALID`, …), when it sent one.
        code: Option<String>,
        /// The registry's message for that code.
        message: Option<String>,
    },
    /// The connection failed, timed out, or TLS was refused.
    #[error("{method} {url}: {cause}")]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// What ureq reported.
        #[source]
        cause: Box<ureq::Error>,
    },
    /// Content whose digest is not the one asked for.
    #[error("{url}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Where it came from.
        url: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A body shorter or longer than announced.
    #[error("{url}: {received} bytes received, {expected} expected")]
    SizeMismatch {
        /// Where it came from.
        url: String,
        /// What was announced (`Content-Length` or the caller's size).
        expected: u64,
        /// What arrived.
        received: u64,
    },
    /// A response that breaks the protocol (no `Location` on an upload,
    /// a manifest too large, a token response without a token, …).
    #[error("{url}: {reason}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What is wrong with the response.
        reason: String,
    },
    /// A `WWW-Authenticate` challenge this client cannot answer.
    #[error("{url}: cannot authenticate: {reason}")]
    Auth {
        /// The URL that asked for authentication.
        url: String,
        /// Why.
        reason: String,
    },
    /// The extra CA certificates are not PEM certificates.
    #[error("CA certificates: {reason}")]
    BadCaCerts {
        /// Why.
        reason: String,
    },
    /// An auth file (`auth.json`, `config.json`) that cannot be read or
    /// parsed.
    #[error("{}: {reason}", .path.display())]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        reason: String,
    },
    /// Reading a body or the caller's reader failed.
    #[error("{url}: {cause}")]
    Io {
        /// The URL being read or written.
        url: String,
        /// The failure.
        #[source]
        cause: std::io::Error,
    },
}

impl Error {
    /// The HTTP status, for [`Error::NotFound`] and [`Error::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NotFound { .. } => Some(404),
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry's error code (`BLOB_UNKNOWN`, `UNAUTHORIZED`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::NotFound { code, .. } | Error::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

fn code_suffix(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(", {c}: {m}"),
        (Some(c), None) => format!(", {c}"),
        (None, Some(m)) => format!(", {m}"),
        (None, None) => String::new(),
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
