//! zstd:chunked in the reader: the TOC frame, chunk decoding, and what a
//! blob says about itself beyond the eStargz model ([`ZstdChunkedInfo`]).
//!
//! The format layer (`crate::zstd_chunked`) parses and checks the bytes; this
//! file fetches them from a [`ReadAt`] and turns its errors into [`Error`]s.

use super::toc_stream::{expected_entries, parse_entries, Capped, HashedJson, IndexSink};
use super::OpenedToc;
use super::{OpenOptions, ReadAt};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::toc::Toc;
use crate::toc::{EntryType, TocEntry};
use crate::zstd_chunked::annotations;
use crate::zstd_chunked::footer::{FooterVersion, ZstdFooter};
use crate::zstd_chunked::frame::{ExactReader, FrameDecoder};
use crate::zstd_chunked::toc::{
    decode_toc_frame, mapped_entry, parse_toc, ContainersEntry, KeyScan, MetadataFrame,
};
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
}

/// The frame limits for a TOC read with `opts`' caps.
fn toc_limits(opts: &OpenOptions) -> Limits {
    Limits {
        max_toc_compressed: opts.max_toc_compressed,
        max_toc_json: opts.max_toc_json,
        ..Limits::default()
    }
}

/// Reads the TOC frame the footer names: caps checked before anything is
/// fetched or allocated (spec §7.5), then skippable header, frame and JSON.
pub(crate) fn read_toc<S: ReadAt + ?Sized>(
    source: &S,
    footer: &ZstdFooter,
    blob_size: u64,
    opts: &OpenOptions,
) -> Result<ZstdToc> {
    let limits = toc_limits(opts);
    let at = footer.manifest_offset;
    let bytes = fetch_toc_frame(source, footer, &limits)?;
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
    let info = ZstdChunkedInfo::new(
        footer,
        parsed.dialect,
        decoded.manifest_checksum,
        parsed.containers.and_then(|c| c.tar_split_digest),
    );
    Ok(ZstdToc {
        toc: parsed.toc,
        digest: decoded.toc_digest,
        json_len: decoded.json.len() as u64,
        slack: slack(footer, blob_size),
        info,
    })
}

impl ZstdChunkedInfo {
    fn new(
        footer: &ZstdFooter,
        dialect: ZstdDialect,
        manifest_checksum: Digest,
        tar_split_digest: Option<String>,
    ) -> ZstdChunkedInfo {
        ZstdChunkedInfo {
            dialect,
            manifest_checksum,
            manifest_position: footer.manifest_position(),
            tar_split_position: footer
                .tar_split
                .as_ref()
                .map(annotations::tar_split_position),
            tar_split_digest,
            footer: footer.clone(),
        }
    }
}

/// The TOC frame `footer` names, with its skippable header: caps checked
/// before anything is fetched or allocated (spec §7.5).
fn fetch_toc_frame<S: ReadAt + ?Sized>(
    source: &S,
    footer: &ZstdFooter,
    limits: &Limits,
) -> Result<Vec<u8>> {
    let frame = MetadataFrame::toc(footer);
    frame
        .check_limits(limits.max_toc_compressed, limits.max_toc_json)
        .map_err(|e| zstd_error(e, footer.manifest_offset))?;
    let (start, len) = frame.range();
    source
        .read_range(start, len as usize)
        .map_err(|e| super::source_error(start, e))
}

/// What [`open_toc`] gives `Blob::open`.
pub(crate) struct OpenedZstdToc {
    pub opened: OpenedToc,
    pub info: ZstdChunkedInfo,
    /// The compressed TOC frame, as read.
    pub frame: Vec<u8>,
}

/// [`read_toc`] for `Blob::open`: the index built while the TOC frame
/// decodes, the TOC never held whole. A 40-byte footer does not say which
/// dialect wrote the TOC; only keys that one of them writes do, and one of
/// those may come last (`tarSplitDigest`, after the entries). So its TOC is
/// built as the stargz dialect while the JSON is scanned for those keys,
/// and built again as the containers dialect when one shows up: one pass
/// for ours, two for skopeo's. As for gzip, nothing built is returned
/// unless the digest matches. The other footers are the containers
/// dialect's.
pub(crate) fn open_toc<S: ReadAt + ?Sized>(
    source: &S,
    footer: &ZstdFooter,
    blob_size: u64,
    opts: &OpenOptions,
    payload_end: u64,
) -> Result<OpenedZstdToc> {
    let limits = toc_limits(opts);
    let at = footer.manifest_offset;
    let bytes = fetch_toc_frame(source, footer, &limits)?;
    let frame = MetadataFrame::toc(footer);
    let body = frame.frame_of(&bytes).map_err(|e| zstd_error(e, at))?;
    let stream = TocFrameStream {
        frame,
        body,
        manifest_checksum: Digest::of(body),
    };
    let mut decoder = FrameDecoder::new(limits.max_window_log).map_err(|e| zstd_error(e, at))?;
    let stargz = match footer.version {
        FooterVersion::V40 => {
            let mut containers = false;
            let built = stream.build(
                &mut decoder,
                false,
                Some(&mut containers),
                payload_end,
                opts,
            );
            (!containers).then_some(built)
        }
        _ => None,
    };
    let (containers, built) = match stargz {
        Some(built) => (false, built),
        None => (
            true,
            stream.build(&mut decoder, true, None, payload_end, opts),
        ),
    };
    let (opened, tar_split_digest) = built?;
    let dialect = match containers {
        true => ZstdDialect::Containers,
        false => ZstdDialect::Stargz,
    };
    let manifest_checksum = stream.manifest_checksum;
    Ok(OpenedZstdToc {
        opened: OpenedToc {
            slack: slack(footer, blob_size),
            ..opened
        },
        info: ZstdChunkedInfo::new(footer, dialect, manifest_checksum, tar_split_digest),
        frame: bytes,
    })
}

/// A fetched TOC frame, its skippable header checked.
struct TocFrameStream<'a> {
    frame: MetadataFrame,
    body: &'a [u8],
    manifest_checksum: Digest,
}

impl TocFrameStream<'_> {
    /// The frame's bytes as a stream: anything but exactly the length the
    /// footer gives is a failure of the stream.
    fn open<'d>(&'d self, decoder: &'d mut FrameDecoder) -> Result<Capped<ExactReader<'d>>> {
        let len = self.frame.uncompressed;
        let reader = decoder
            .reader(self.body, len)
            .map_err(|reason| self.frame_error(reason))?;
        Ok(Capped::new(reader, len.saturating_add(1)))
    }

    fn frame_error(&self, reason: String) -> Error {
        let e = ZstdError::Frame {
            what: self.frame.what,
            offset: self.frame.offset,
            reason,
        };
        zstd_error(e, self.frame.offset)
    }

    fn toc_error(&self, reason: String) -> Error {
        let at = self.frame.offset;
        zstd_error(ZstdError::Toc { offset: at, reason }, at)
    }

    /// The index, built as the TOC decodes, and the containers TOC's
    /// `tarSplitDigest`; the containers dialect's entries are mapped onto
    /// the eStargz model on the way. What the model has no field for (the
    /// times as stored, `endOffset`, ...) is not kept: nothing reading
    /// through the index needs it, and it cost 150 bytes an entry.
    /// With `scan`, also whether the JSON holds a key only the containers
    /// dialect writes, told whatever the build's outcome.
    fn build(
        &self,
        decoder: &mut FrameDecoder,
        containers: bool,
        scan: Option<&mut bool>,
        payload_end: u64,
        opts: &OpenOptions,
    ) -> Result<(OpenedToc, Option<String>)> {
        let len = self.frame.uncompressed;
        let mut src = self.open(decoder)?;
        let mut scanned = KeyScan::new(&mut src, scan.is_some());
        let mut json = HashedJson::new(&mut scanned, len);
        let mut sink = IndexSink::new(payload_end, &opts.index, expected_entries(len));
        let mut mapped = Mapped::default();
        let parsed = if containers {
            let slot = ContainersEntry::default();
            parse_entries(&mut json, true, slot, |c| mapped.add(c, &mut sink))
        } else {
            let slot = TocEntry::new("", EntryType::Dir);
            parse_entries(&mut json, false, slot, |e| sink.add(e))
        };
        let (digest, _) = json.finish();
        if let Some(found) = scan {
            *found = scanned.found();
        }
        src.drain();
        if let Some(e) = src.take_failure() {
            return Err(self.frame_error(e.to_string()));
        }
        let at = self.frame.offset;
        super::check_toc_digest(opts, at, digest, Some(self.manifest_checksum))?;
        let head = parsed.map_err(|e| self.toc_error(format!("error decoding TOC JSON: {e}")))?;
        if let Some(reason) = mapped.error {
            return Err(self.toc_error(reason));
        }
        let opened = OpenedToc {
            index: sink.finish()?,
            digest,
            json_len: len,
            slack: 0,
        };
        let tar_split_digest =
            (containers && !head.tar_split_digest.is_empty()).then_some(head.tar_split_digest);
        Ok((opened, tar_split_digest))
    }
}

/// Containers entries mapped onto the eStargz model as they stream in.
#[derive(Default)]
struct Mapped {
    /// Entries mapped so far.
    count: usize,
    /// The first entry that does not map; the rest are still parsed, as a
    /// JSON error after it comes first.
    error: Option<String>,
}

impl Mapped {
    fn add(&mut self, c: &ContainersEntry, sink: &mut IndexSink) {
        if self.error.is_some() {
            return;
        }
        match mapped_entry(c) {
            Ok(entry) => {
                self.count += 1;
                sink.add(&entry);
            }
            Err(r) => {
                let i = self.count;
                self.error = Some(format!("entry {i} ({:?}): {r}", c.name));
            }
        }
    }
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
