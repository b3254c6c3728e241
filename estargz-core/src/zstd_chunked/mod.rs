//! zstd:chunked, the format layer: footers, frames, the TOC frame,
//! tar-split and annotations (docs/zstd-chunked-format.md, "the spec"
//! below).
//!
//! Two dialects share the layout (one zstd frame per chunk, metadata in
//! skippable frames at the end) and differ in footer, TOC keys and
//! checksums: the stargz dialect (S, the Go `zstdchunked` package) and the
//! containers/storage dialect (C, podman/skopeo/buildah). Nothing here
//! reads a blob or writes one: the reader and the convert pipeline call
//! these functions with the bytes they fetched or planned.
//!
//! Every length a blob declares (footer, annotation, frame header) is
//! checked against [`Limits`] before anything of that size is allocated,
//! and no decoder produces more than it was asked for (spec §7.5).

pub mod annotations;
pub mod footer;
pub mod frame;
pub mod tar_split;
pub mod toc;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod fixtures;

/// Magic of the skippable frames the writers use (0x184D2A50, little endian).
pub const SKIPPABLE_MAGIC: [u8; 4] = [0x50, 0x2a, 0x4d, 0x18];
/// Magic of a zstd data frame (0xFD2FB528, little endian).
pub const FRAME_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Bytes of a skippable frame before its payload: magic and u32 length.
pub const SKIPPABLE_HEADER: u64 = 8;
/// Largest windowLog this project writes (8 MiB, spec §7.3 rule 2).
pub const WRITE_MAX_WINDOW_LOG: u32 = 23;
/// Largest windowLog read by default: libzstd's own default limit.
pub const READ_MAX_WINDOW_LOG: u32 = 27;

/// Which of the two dialects a blob is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The stargz dialect (spec §3): the eStargz TOC, 40-byte footer.
    Stargz,
    /// The containers/storage dialect (spec §4): its own TOC keys, and
    /// with the 56- and 64-byte footers a tar-split frame.
    Containers,
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::Stargz => "stargz",
            Dialect::Containers => "containers",
        })
    }
}

/// Caps on what a blob may make a reader allocate or decode (spec §7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest compressed TOC frame.
    pub max_toc_compressed: u64,
    /// Largest TOC JSON.
    pub max_toc_json: u64,
    /// Largest compressed tar-split frame.
    pub max_tar_split_compressed: u64,
    /// Largest decompressed tar-split stream.
    pub max_tar_split: u64,
    /// Largest window a frame may ask for, as a power of two. zstd allows
    /// windows of up to 3.75 TiB; a decoder allocates one.
    pub max_window_log: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_toc_compressed: 64 << 20,
            max_toc_json: 512 << 20,
            max_tar_split_compressed: 512 << 20,
            max_tar_split: 512 << 20,
            max_window_log: READ_MAX_WINDOW_LOG,
        }
    }
}

/// Why zstd:chunked bytes were rejected. Offsets are blob offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZstdError {
    /// The blob ends in a zstd:chunked footer magic but cannot hold the footer.
    #[error(
        "blob of {size} bytes ends in a zstd:chunked footer magic but is too small for that \
         footer ({need} bytes)"
    )]
    TooSmall {
        /// Blob size.
        size: u64,
        /// Bytes the footer needs.
        need: u64,
    },
    /// The footer is malformed or points outside the blob.
    #[error("zstd:chunked footer at byte {footer_offset}: {reason}")]
    Footer {
        /// Offset of the footer's skippable frame.
        footer_offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A skippable frame (TOC, tar-split) is not where the footer says.
    #[error("{what} skippable frame at byte {offset}: {reason}")]
    Skippable {
        /// Which frame.
        what: &'static str,
        /// Offset of its skippable header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A zstd frame is malformed, or decodes to the wrong length.
    #[error("{what} zstd frame at byte {offset}: {reason}")]
    Frame {
        /// Which frame (`TOC`, `tar-split`, `data`).
        what: &'static str,
        /// Offset of its magic.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A declared size exceeds a [`Limits`] cap.
    #[error("{what} of {value} exceeds the limit of {limit}")]
    Limit {
        /// What was measured.
        what: &'static str,
        /// The value declared or found.
        value: u64,
        /// The cap.
        limit: u64,
    },
    /// The TOC JSON cannot be used.
    #[error("invalid TOC at byte {offset}: {reason}")]
    Toc {
        /// Offset of the TOC frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The tar-split stream is malformed or does not match the tar.
    #[error("tar-split, entry {position}: {reason}")]
    TarSplit {
        /// 0-based line of the stream (its `position`).
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// An annotation is malformed or disagrees with the blob.
    #[error("annotation {key}: {reason}")]
    Annotation {
        /// The annotation key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The writer was given something it cannot write.
    #[error("zstd:chunked writer: {0}")]
    Write(String),
    /// libzstd failed where it should not (allocation, parameters).
    #[error("zstd: {0}")]
    Codec(String),
}
