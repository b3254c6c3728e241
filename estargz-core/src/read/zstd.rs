//! zstd:chunked in the reader: the TOC frame, chunk decoding, and what a
//! blob says about itself beyond the eStargz model ([`ZstdChunkedInfo`]).
//!
//! The format layer (`crate::zstd_chunked`) parses and checks the bytes; this
//! file fetches them from a [`ReadAt`] and turns its errors into [`Error`]s.

use super::{OpenOptions, ReadAt};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::toc::Toc;
use crate::zstd_chunked::annotations;
use crate::zstd_chunked::footer::ZstdFooter;
use crate::zstd_chunked::frame::FrameDecoder;
use crate::zstd_chunked::toc::{decode_toc_frame, parse_toc, ContainersExtras, MetadataFrame};
use crate::zstd_chunked::{Limits, ZstdError, READ_MAX_WINDOW_LOG};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The dialect of a zstd:chunked blob: the stargz package's, or
/// containers/storage's (podman, buildah, skopeo).
pub use crate::zstd_chunked::Dialect as ZstdDialect;

/// What a zstd:chunked blob says beyond the eStargz model: its dialect and
/// the second digest naming its TOC (spec §3.4, §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZstdChunkedInfo {
    /// Which dialect wrote the TOC.
    pub dialect: ZstdDialect,
    /// sha256 of the compressed TOC frame: the `manifest-checksum`
    /// annotation (the TOC digest is the sha256 of the JSON).
    pub manifest_checksum: Digest,
    /// `M:L:U:1`, the `manifest-position` annotation the footer implies.
    pub manifest_position: String,
    /// The tar-split frame's `T:compressed:uncompressed` (64-byte footer).
    pub tar_split_position: Option<String>,
    /// The containers TOC's `tarSplitDigest`.
    pub tar_split_digest: Option<String>,
    pub(crate) footer: ZstdFooter,
    pub(crate) containers: Option<ContainersExtras>,
}

impl ZstdChunkedInfo {
    /// OCI media type of a zstd layer, both dialects.
    pub const MEDIA_TYPE: &'static str = "application/vnd.oci.image.layer.v1.tar+zstd";

    /// The layer annotations a manifest should carry for this blob (spec
    /// §7.2): stargz dialect, the `io.containers.*` keys, the stargz TOC
    /// digest and the uncompressed size; containers dialect, both key
    /// generations and never the stargz key.
    pub fn annotations(
        &self,
        toc_digest: &Digest,
        uncompressed_size: u64,
    ) -> BTreeMap<String, String> {
        annotations::written(
            self.dialect,
            &self.footer,
            &self.manifest_checksum,
            toc_digest,
            uncompressed_size,
            true,
        )
    }
}

/// A format-layer error as a library error, `offset` standing in where the
/// error names none.
pub(crate) fn zstd_error(e: ZstdError, offset: u64) -> Error {
    let offset = match &e {
        ZstdError::Limit { what, value, limit } => {
            return Error::LimitExceeded {
                what,
                value: *value,
                limit: *limit,
            }
        }
        ZstdError::Footer { footer_offset, .. } => *footer_offset,
        ZstdError::Skippable { offset, .. }
        | ZstdError::Frame { offset, .. }
        | ZstdError::Toc { offset, .. } => *offset,
        _ => offset,
    };
    Error::ZstdChunked {
        offset,
        reason: e.to_string(),
    }
}

/// The TOC of a zstd:chunked blob, read and checked.
pub(crate) struct ZstdToc {
    pub toc: Toc,
    pub digest: Digest,
    pub json_len: u64,
    pub slack: u64,
    pub info: ZstdChunkedInfo,
    /// The compressed TOC frame, as read.
    pub frame: Vec<u8>,
}

/// Reads the TOC frame the footer names: caps checked before anything is
/// fetched or allocated (spec §7.5), then skippable header, frame and JSON.
pub(crate) fn read_toc<S: ReadAt + ?Sized>(
    source: &S,
    footer: &ZstdFooter,
    blob_size: u64,
    opts: &OpenOptions,
) -> Result<ZstdToc> {
    let limits = Limits {
        max_toc_compressed: opts.max_toc_compressed,
        max_toc_json: opts.max_toc_json,
        ..Limits::default()
    };
    let at = footer.manifest_offset;
    let frame = MetadataFrame::toc(footer);
    frame
        .check_limits(limits.max_toc_compressed, limits.max_toc_json)
        .map_err(|e| zstd_error(e, at))?;
    let (start, len) = frame.range();
    let bytes = source
        .read_range(start, len as usize)
        .map_err(|e| super::source_error(start, e))?;
    let mut decoder = FrameDecoder::new(limits.max_window_log).map_err(|e| zstd_error(e, at))?;
    let decoded =
        decode_toc_frame(footer, &bytes, &limits, &mut decoder).map_err(|e| zstd_error(e, at))?;
    super::check_toc_digest(
        opts,
        at,
        decoded.toc_digest,
        Some(decoded.manifest_checksum),
    )?;
    let parsed = parse_toc(&decoded.json, footer.version, at).map_err(|e| zstd_error(e, at))?;
    let info = ZstdChunkedInfo {
        dialect: parsed.dialect,
        manifest_checksum: decoded.manifest_checksum,
        manifest_position: footer.manifest_position(),
        tar_split_position: footer
            .tar_split
            .as_ref()
            .map(annotations::tar_split_position),
        tar_split_digest: parsed
            .containers
            .as_ref()
            .and_then(|c| c.tar_split_digest.clone()),
        footer: footer.clone(),
        containers: parsed.containers,
    };
    Ok(ZstdToc {
        toc: parsed.toc,
        digest: decoded.toc_digest,
        json_len: decoded.json.len() as u64,
        slack: slack(footer, blob_size),
        info,
        frame: bytes,
    })
}

/// The TOC in `frame`, the TOC frame `footer` names, read before: parsed
/// again, its limits already checked.
pub(crate) fn reparse_toc(footer: &ZstdFooter, frame: &[u8]) -> Result<Toc> {
    let at = footer.manifest_offset;
    let limits = Limits {
        max_toc_compressed: u64::MAX,
        max_toc_json: u64::MAX,
        ..Limits::default()
    };
    let mut decoder = FrameDecoder::new(limits.max_window_log).map_err(|e| zstd_error(e, at))?;
    let decoded =
        decode_toc_frame(footer, frame, &limits, &mut decoder).map_err(|e| zstd_error(e, at))?;
    let parsed = parse_toc(&decoded.json, footer.version, at).map_err(|e| zstd_error(e, at))?;
    Ok(parsed.toc)
}

/// Bytes after the TOC frame that no metadata frame accounts for: between
/// it and the tar-split's skippable frame, and between that and the
/// footer. A full-pull client decompresses them (spec §7.1), so they are
/// reported. The footer parser checked the order these subtractions rely on.
fn slack(footer: &ZstdFooter, blob_size: u64) -> u64 {
    let footer_start = blob_size.saturating_sub(footer.version.size());
    let toc_end = footer.manifest_offset.saturating_add(footer.toc_compressed);
    match footer.tar_split_skippable() {
        Some((start, len)) => {
            start.saturating_sub(toc_end) + footer_start.saturating_sub(start.saturating_add(len))
        }
        None => footer_start.saturating_sub(toc_end),
    }
}

thread_local! {
    /// One decoder per thread: a decoding context is a few hundred KiB,
    /// and verify decodes chunks from several threads.
    static DECODER: RefCell<Option<FrameDecoder>> = const { RefCell::new(None) };
}

/// Decodes `want` bytes after the first `skip` of the data frame starting
/// `input`, and no more (spec §7.5).
pub(crate) fn decode_frame_prefix(input: &[u8], skip: u64, want: u64) -> Result<Vec<u8>, String> {
    DECODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(FrameDecoder::new(READ_MAX_WINDOW_LOG).map_err(|e| e.to_string())?);
        }
        match slot.as_mut() {
            Some(decoder) => decoder.decode_prefix(input, skip, want),
            None => Err("no zstd decoder".into()),
        }
    })
}
