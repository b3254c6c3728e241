//! # estargz-core
//!
//! Reading and writing eStargz, the seekable `tar.gz` layer format that lets
//! container runtimes start a container before its image is pulled.
//!
//! An eStargz blob is an ordinary gzip layer made of independent gzip
//! members, with a table of contents (`stargz.index.json`) and a 51-byte
//! footer at the end that locate every file and chunk. This crate writes
//! such blobs losslessly: decompressing one up to its TOC gives back the
//! input tar byte for byte.
//!
//! The data flows one way on each side: a tar is scanned, planned into
//! members, compressed and assembled ([`Converter`]); a blob is read from
//! its footer, to its TOC, to an index, to the file bytes ([`Blob`]).
//!
//! ## Convert
//!
//! ```
//! use estargz_core::{blob_info_of, Converter};
//!
//! # let tar = {
//! # let mut b = tar::Builder::new(Vec::new());
//! # let mut h = tar::Header::new_ustar();
//! # h.set_size(3);
//! # h.set_mode(0o644);
//! # h.set_cksum();
//! # b.append_data(&mut h, "etc/motd", &b"hi\n"[..]).unwrap();
//! # b.into_inner().unwrap()
//! # };
//! let converter = Converter::builder().level(9).build()?;
//! let mut blob = Vec::new();
//! let report = converter.convert(&tar, &mut blob)?;
//! // The numbers an image manifest needs, computed in the same pass...
//! println!("{} {}", report.blob.digest, report.toc_digest);
//! // ...and they agree with what any gzip reader sees in the blob.
//! assert_eq!(blob_info_of(&blob[..])?, report.blob);
//! # Ok::<(), estargz_core::Error>(())
//! ```
//!
//! ## Open and read
//!
//! A [`Blob`] reads only its footer and TOC on open; a file read then
//! decodes only the members holding that file. The bytes come from any
//! [`ReadAt`]: a slice, a file, or range requests (`estargz-remote`).
//!
//! ```
//! use estargz_core::{Blob, Converter, OpenOptions};
//! # let tar = {
//! # let mut b = tar::Builder::new(Vec::new());
//! # let mut h = tar::Header::new_ustar();
//! # h.set_size(3);
//! # h.set_mode(0o644);
//! # h.set_cksum();
//! # b.append_data(&mut h, "etc/motd", &b"hi\n"[..]).unwrap();
//! # b.into_inner().unwrap()
//! # };
//! # let mut bytes = Vec::new();
//! # Converter::new().convert(&tar, &mut bytes)?;
//! let blob = Blob::open(&bytes[..], &OpenOptions::default())?;
//! assert_eq!(blob.read_file("etc/motd")?, b"hi\n");
//! let file = blob.open_file("etc/motd")?;
//! let mut buf = [0; 2];
//! assert_eq!(file.read_at(1, &mut buf)?, 2);
//! assert_eq!(&buf, b"i\n");
//! # Ok::<(), estargz_core::Error>(())
//! ```
//!
//! ## Verify
//!
//! Every problem comes with its kind, the entry and the byte offset.
//!
//! ```
//! use estargz_core::{verify, Converter, VerifyOptions};
//! # let tar = {
//! # let mut b = tar::Builder::new(Vec::new());
//! # let mut h = tar::Header::new_ustar();
//! # h.set_size(3);
//! # h.set_mode(0o644);
//! # h.set_cksum();
//! # b.append_data(&mut h, "etc/motd", &b"hi\n"[..]).unwrap();
//! # b.into_inner().unwrap()
//! # };
//! # let mut blob = Vec::new();
//! # Converter::new().convert(&tar, &mut blob)?;
//! let report = verify(&blob[..], &VerifyOptions::default());
//! assert!(report.is_valid(), "{:?}", report.problems);
//!
//! let last = blob.len() - 60;
//! blob[last] ^= 1; // inside the TOC member
//! let report = verify(&blob[..], &VerifyOptions::default());
//! assert!(!report.is_valid());
//! # Ok::<(), estargz_core::Error>(())
//! ```
//!
//! ## Unpack
//!
//! Back to the tar ([`unpack_tar`]), or into a directory that no entry
//! can climb out of ([`unpack_to_dir`]).
//!
//! ```
//! use estargz_core::{unpack_tar, unpack_to_dir, Converter, UnpackOptions};
//! # let tar = {
//! # let mut b = tar::Builder::new(Vec::new());
//! # let mut h = tar::Header::new_ustar();
//! # h.set_size(3);
//! # h.set_mode(0o644);
//! # h.set_cksum();
//! # b.append_data(&mut h, "etc/motd", &b"hi\n"[..]).unwrap();
//! # b.into_inner().unwrap()
//! # };
//! # let mut blob = Vec::new();
//! # Converter::new().convert(&tar, &mut blob)?;
//! let mut out = Vec::new();
//! unpack_tar(&blob[..], &mut out)?;
//! assert_eq!(out, tar); // lossless
//!
//! let dir = tempfile::tempdir().unwrap();
//! unpack_to_dir(&blob[..], dir.path(), &UnpackOptions::default())?;
//! assert_eq!(std::fs::read(dir.path().join("etc/motd")).unwrap(), b"hi\n");
//! # Ok::<(), estargz_core::Error>(())
//! ```
//!
//! ## zstd:chunked
//!
//! Blobs in the zstd variant of the format, in both of its dialects (the
//! stargz package's and containers/storage's), open, read, verify and
//! unpack through the same calls: the footer tells which codec the payload
//! uses. [`Blob::zstd_chunked`] says which dialect wrote the blob and gives
//! the second digest naming its TOC (the manifest checksum).
//!
//! Reordering a tar so the files a container reads first come first (the
//! prefetch landmark; not lossless) is in [`prioritize`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod blob_info;
mod channel;
mod convert;
mod digest;
mod error;
mod footer;
mod name;
pub mod prioritize;
mod read;
mod tar;
mod toc;
mod unpack;
mod verify;
mod zstd_chunked;

pub use blob_info::{
    blob_info_of, layer_annotations, BlobInfo, BlobInfoWriter, ANNOTATION_TOC_DIGEST,
    ANNOTATION_UNCOMPRESSED_SIZE, MEDIA_TYPE_LAYER_GZIP,
};
pub use convert::{
    Compression, ConvertReport, Converter, ConverterBuilder, ExternalToc, Input, InputBytes,
    SharedInput, TocFormat, DEFAULT_CHUNK_SIZE, DEFAULT_LEVEL, DEFAULT_ZSTD_LEVEL, MAX_CHUNK_SIZE,
    MEDIA_TYPE_LAYER_ZSTD,
};
pub use digest::{Digest, ParseDigestError};
pub use error::{Error, ErrorKind, Result, TarErrorKind};
pub use footer::{Footer, FooterKind};
pub use read::{
    Blob, CachedChunk, Chunk, ChunkCache, ChunkKey, DiskCacheStats, DiskChunkCache, FileReader,
    Index, IndexLimits, ListedEntry, LruChunkCache, Node, NodeId, OpenOptions, OwnedFile, Prefetch,
    Prefetched, RangeReader, ReadAt, ReadHint, Stat, StoredDigest, TocInfo, Whiteout,
    ZstdChunkedInfo, ZstdDialect, DEFAULT_CACHE_BUDGET, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK,
};
pub use tar::{NamePolicy, ScanLimits, WithoutEstargzEntries};
pub use toc::{EntryType, Toc, TocEntry, TOC_NAME};
pub use unpack::{
    unpack_tar, unpack_to_dir, unpack_to_dir_with_progress, UnpackOptions, UnpackProgress,
    UnpackReport, DEFAULT_MAX_TOTAL_BYTES,
};
pub use verify::{verify, Problem, ProblemKind, VerifyOptions, VerifyReport};

/// Building blocks for this workspace's benchmarks, fuzz targets and
/// tests: the scanner, planner and codec on their own, the footer and TOC
/// encoders. Not part of the API; they change without notice.
#[doc(hidden)]
pub mod internals {
    pub use crate::convert::compress::gzip_member;
    pub use crate::convert::compress::MAX_LEVEL;
    pub use crate::convert::plan::Planner;
    pub use crate::convert::MemberData;
    pub use crate::name::clean;
    pub use crate::read::{owner_names, parse_rfc3339};
    pub use crate::tar::{sniff_gzip, Header, Item, Scanner, BLOCK};
    pub use crate::toc::{format_modtime, tar_bytes};

    /// The zstd:chunked format layer, for tests of what the writer emits.
    pub mod zstd_chunked {
        use crate::zstd_chunked::frame::{next_frame, Frame};

        /// The numbers of a zstd:chunked footer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct FooterFields {
            /// Payload length: 40 or 64.
            pub payload_len: u64,
            /// Offset of the TOC frame's magic.
            pub manifest_offset: u64,
            /// Compressed TOC length.
            pub toc_compressed: u64,
            /// TOC JSON length.
            pub toc_uncompressed: u64,
            /// Manifest type (1).
            pub manifest_type: u64,
            /// Whether the footer locates a tar-split frame.
            pub tar_split: bool,
        }

        /// Parses the zstd:chunked footer at the end of `tail`, the last
        /// bytes of a blob of `blob_size` bytes; `Ok(None)` when there is none.
        pub fn parse_footer(tail: &[u8], blob_size: u64) -> Result<Option<FooterFields>, String> {
            let footer =
                crate::zstd_chunked::footer::parse(tail, blob_size).map_err(|e| e.to_string())?;
            Ok(footer.map(|f| FooterFields {
                payload_len: f.version.payload_len(),
                manifest_offset: f.manifest_offset,
                toc_compressed: f.toc_compressed,
                toc_uncompressed: f.toc_uncompressed,
                manifest_type: f.manifest_type,
                tar_split: f.tar_split.is_some(),
            }))
        }

        /// The offsets of `blob`'s data frames and of its skippable frames,
        /// each data frame checked to be as this project writes them
        /// (content size, checksum, no dictionary, window ≤ 8 MiB).
        pub fn frame_starts(blob: &[u8]) -> Result<(Vec<u64>, Vec<u64>), String> {
            let (mut data, mut skippable) = (Vec::new(), Vec::new());
            let mut at = 0usize;
            while let Some(rest) = blob.get(at..).filter(|r| !r.is_empty()) {
                let frame = next_frame(rest).map_err(|e| format!("at {at}: {e}"))?;
                match &frame {
                    Frame::Data(extent) => {
                        extent
                            .header
                            .check_written()
                            .map_err(|e| format!("frame at {at}: {e}"))?;
                        data.push(at as u64);
                    }
                    Frame::Skippable(_) => skippable.push(at as u64),
                }
                at = usize::try_from(frame.len())
                    .ok()
                    .and_then(|n| at.checked_add(n))
                    .ok_or_else(|| format!("frame at {at} too long"))?;
            }
            Ok((data, skippable))
        }
    }

    /// The footer codec.
    pub mod footer {
        pub use crate::footer::{
            encode, encode_external, parse, Footer, FooterError, FooterKind,
            EXTERNAL_TOC_FOOTER_SIZE, FOOTER_SIZE, LEGACY_FOOTER_SIZE,
        };
    }
}
