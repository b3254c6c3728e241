//! Reading blobs: footer → TOC → validated index → random-access file reads.
//!
//! Opening a blob reads its footer and its TOC, nothing else; reading a file
//! then reads and decodes only the members holding that file's chunks. The
//! bytes come from any [`ReadAt`] source, so a snapshotter can serve them
//! from range requests.
//!
//! ```
//! use estargz_core::{Blob, Converter, OpenOptions};
//!
//! let mut tar = tar::Builder::new(Vec::new());
//! let mut header = tar::Header::new_ustar();
//! header.set_size(2);
//! header.set_cksum();
//! tar.append_data(&mut header, "etc/hostname", &b"h\n"[..]).unwrap();
//! let mut blob = Vec::new();
//! Converter::new().convert(&tar.into_inner().unwrap(), &mut blob).unwrap();
//!
//! let blob = Blob::open(blob, &OpenOptions::default()).unwrap();
//! assert_eq!(blob.read_file("/etc/hostname").unwrap(), b"h\n");
//! assert!(blob.index().lookup("etc").is_some()); // synthesised parent
//! ```

mod cache;
mod disk_cache;
mod file;
mod handle;
mod index;
mod node;
mod payload;
mod prefetch;
mod source;
mod summary;
mod toc_stream;
mod tree;
mod zstd;
mod zstd_payload;

pub use cache::{CachedChunk, ChunkCache, ChunkKey, LruChunkCache, DEFAULT_CACHE_BUDGET};
pub use disk_cache::{DiskCacheStats, DiskChunkCache};
pub(crate) use file::decode_chunk;
pub use file::FileReader;
pub use handle::OwnedFile;
pub use index::{
    owner_names, parse_rfc3339, Index, IndexLimits, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK,
};
pub use node::{Chunk, Node, NodeId, StoredDigest};
pub use payload::{MemberStarts, PayloadReader};
pub use prefetch::Prefetched;
pub(crate) use source::read_exact_hinted;
#[cfg(test)]
pub(crate) use source::SourceError;
pub use source::{RangeReader, ReadAt, ReadHint};
pub use summary::{ListedEntry, Prefetch};
pub use tree::{Stat, Whiteout};
pub(crate) use zstd::decode_frame_prefix;
pub use zstd::{ZstdChunkedInfo, ZstdDialect};
pub use zstd_payload::{FrameError, SkippableFrames, ZstdPayloadReader};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::footer::{self, Footer, FooterKind};
use crate::tar::{Header, BLOCK};
use crate::toc::{EntryType, TocEntry};
use crate::toc::{Toc, TOC_NAME};
use crate::zstd_chunked::footer as zstd_footer;
use cache::InFlight;
use std::io::{self, Read};
use std::sync::{Arc, OnceLock};
use toc_stream::{expected_entries, parse_entries, Capped, HashedJson, IndexSink};

/// Limits and extra inputs for [`Blob::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Largest compressed TOC member accepted.
    pub max_toc_compressed: u64,
    /// Largest TOC JSON accepted (decompressed).
    pub max_toc_json: u64,
    /// Caps on the index.
    pub index: IndexLimits,
    /// The TOC of an external-TOC blob (the gzip member holding its tar).
    pub external_toc: Option<Vec<u8>>,
    /// The TOC digest the layer's annotation names: the stored JSON is
    /// checked against it (for zstd:chunked, its manifest checksum is
    /// accepted too), else [`Error::TocDigestMismatch`]. `None` (the
    /// default) checks nothing. [`Blob::open`] hashes the JSON as it
    /// streams into the index and checks the digest once the stream ends:
    /// nothing built from a TOC that fails it is returned, and the mismatch
    /// is the error reported whatever else is wrong with that TOC. (The
    /// manifest checksum, and the TOC digest of a 40-byte zstd:chunked
    /// footer, are checked before any JSON is parsed.)
    pub expected_toc_digest: Option<Digest>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_toc_compressed: 64 << 20,
            max_toc_json: 512 << 20,
            index: IndexLimits::default(),
            external_toc: None,
            expected_toc_digest: None,
        }
    }
}

/// An opened eStargz, legacy stargz or zstd:chunked blob.
///
/// File reads go through a cache of decoded chunks shared by every reader
/// of the blob ([`LruChunkCache`] of [`DEFAULT_CACHE_BUDGET`] bytes unless
/// [`with_cache`](Self::with_cache) gives another).
#[derive(Debug)]
pub struct Blob<S> {
    source: S,
    cache: SharedCache,
    in_flight: InFlight,
    size: u64,
    footer: Footer,
    /// Parsed from `stored_toc` on first use: the index is what reads
    /// need, and a parsed TOC is about 1 KB an entry.
    toc: OnceLock<Toc>,
    stored_toc: StoredToc,
    toc_digest: Digest,
    toc_json_len: u64,
    toc_slack: u64,
    index: Index,
    zstd: Option<ZstdChunkedInfo>,
}

impl<S: ReadAt> Blob<S> {
    /// Reads the footer and the TOC and builds the index. Every failure is
    /// an error naming the offset; nothing on any input panics.
    pub fn open(source: S, opts: &OpenOptions) -> Result<Blob<S>> {
        let (footer, size) = read_footer(&source)?;
        let payload_end = footer.payload_end(size);
        let (opened, stored, zstd) = match &footer.zstd {
            Some(z) => {
                let toc = zstd::open_toc(&source, z, size, opts, payload_end)?;
                let stored = StoredToc::Zstd {
                    frame: toc.frame.into_boxed_slice(),
                };
                (toc.opened, stored, Some(toc.info))
            }
            None => {
                let (member, offset) = toc_member(&source, &footer, size, opts)?;
                let opened = stream_toc_member(&member, offset, opts, payload_end)?;
                let stored = StoredToc::Gzip {
                    member: member.into_boxed_slice(),
                    offset,
                };
                (opened, stored, None)
            }
        };
        Ok(Blob {
            source,
            cache: SharedCache(Arc::new(LruChunkCache::new(DEFAULT_CACHE_BUDGET))),
            in_flight: InFlight::default(),
            size,
            footer,
            toc: OnceLock::new(),
            stored_toc: stored,
            toc_digest: opened.digest,
            toc_json_len: opened.json_len,
            toc_slack: opened.slack,
            index: opened.index,
            zstd,
        })
    }

    /// The same blob reading through `cache` (a budget of 0,
    /// `LruChunkCache::new(0)`, turns caching off).
    pub fn with_cache(mut self, cache: Arc<dyn ChunkCache>) -> Blob<S> {
        self.cache = SharedCache(cache);
        self
    }

    /// The cache of decoded chunks file reads go through.
    pub fn cache(&self) -> &Arc<dyn ChunkCache> {
        &self.cache.0
    }

    /// `chunk` of the file `name`, from the cache or decoded (and checked
    /// against its digest when `verify`) and cached; concurrent readers of
    /// a missing chunk wait for one decode.
    /// `node`'s `chunk` is read through the source with a [`ReadHint`]
    /// naming the file's bytes and its region, so that the source reads
    /// ahead no further than a reader of that file needs.
    pub(crate) fn chunk_data(&self, node: &Node, chunk: &Chunk, verify: bool) -> Result<Arc<[u8]>> {
        let key = self.chunk_key(chunk);
        let zstd = self.kind().is_zstd_chunked();
        let name = node.name();
        let decode = || {
            let hint = Some(self.read_hint(node, chunk));
            decode_chunk(&self.source, name, chunk, verify, zstd, hint)
        };
        let loaded = self.in_flight.load(&*self.cache.0, key, verify, || {
            Ok(CachedChunk {
                data: decode()?.into(),
                verified: verify,
            })
        })?;
        // A cache of the caller's may not keep its keys apart; a chunk of
        // the wrong length is one it got wrong.
        if loaded.data.len() as u64 != chunk.size {
            return Ok(decode()?.into());
        }
        Ok(loaded.data)
    }

    /// The key `chunk` of this blob is cached under.
    pub fn chunk_key(&self, chunk: &Chunk) -> ChunkKey {
        ChunkKey {
            toc_digest: self.toc_digest,
            member: chunk.offset,
            inner_offset: chunk.inner_offset,
            size: chunk.size,
            digest: chunk.digest.sha256(),
        }
    }

    /// What a reader of `node` reading `chunk` needs: the file's member
    /// runs, and the end of its region: the prefetch region when the
    /// chunk lies in it, else the payload.
    fn read_hint(&self, node: &Node, chunk: &Chunk) -> ReadHint {
        let chunks = node.chunks();
        let start = chunks
            .iter()
            .map(|c| c.offset)
            .min()
            .unwrap_or(chunk.offset);
        let end = chunks
            .iter()
            .map(|c| c.next_offset)
            .max()
            .unwrap_or(chunk.next_offset);
        let payload_end = self.payload_end();
        let region_end = match self.index.prefetch_end() {
            Some(prefetch_end) if chunk.offset < prefetch_end => prefetch_end,
            _ => payload_end,
        };
        ReadHint::new(start..end, region_end)
    }

    /// The TOC as stored. Parsed on first use from the compressed bytes
    /// kept from [`open`](Self::open) (an opened blob keeps its index, not
    /// its TOC), then kept.
    pub fn toc(&self) -> &Toc {
        self.toc.get_or_init(|| {
            // The same bytes parsed at open: they parse again. Should they
            // not, an empty TOC is better than a panic.
            self.stored_toc.parse(&self.footer).unwrap_or_default()
        })
    }

    /// SHA-256 of the stored TOC JSON.
    pub fn toc_digest(&self) -> Digest {
        self.toc_digest
    }

    /// Length of the TOC JSON.
    pub fn toc_json_len(&self) -> u64 {
        self.toc_json_len
    }

    /// Compressed bytes between the end of the TOC member and the footer
    /// (0 in a well-formed blob).
    pub fn toc_slack(&self) -> u64 {
        self.toc_slack
    }

    /// The footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// Blob size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The validated index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The byte source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Where the payload (the tar members) ends.
    pub fn payload_end(&self) -> u64 {
        self.index.payload_end()
    }

    /// The footer kind.
    pub fn kind(&self) -> FooterKind {
        self.footer.kind
    }

    /// For a zstd:chunked blob: its dialect and manifest checksum.
    pub fn zstd_chunked(&self) -> Option<&ZstdChunkedInfo> {
        self.zstd.as_ref()
    }

    /// A random-access reader for the regular file at `path`.
    pub fn open_file(&self, path: &str) -> Result<FileReader<'_, S>> {
        let node = self
            .index
            .lookup(path)
            .ok_or_else(|| Error::NotFound(path.to_string()))?;
        FileReader::new(self, node, path)
    }

    /// A regular file's whole contents, with every chunk digest checked.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let reader = self.open_file(path)?.verifying(true);
        // Sizes come from the TOC: grow with the data actually decoded
        // rather than trusting them for one allocation.
        let cap = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(64 << 20);
        let largest_chunk = reader
            .node()
            .chunks
            .iter()
            .map(|c| c.size)
            .max()
            .unwrap_or(0);
        let mut out = Vec::with_capacity(cap(reader.size()));
        let mut buf = vec![0u8; cap(largest_chunk).max(1)];
        while (out.len() as u64) < reader.size() {
            let n = reader.read_at(out.len() as u64, &mut buf)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }

    /// A reader of the decompressed payload: the tar stream (for a lossless
    /// blob, the original tar byte for byte).
    pub fn tar_stream(&self) -> impl Read + '_ {
        decompressed_payload(&self.source, &self.footer, self.size)
    }
}

/// Whether `e` is a failure of the blob's source rather than of decoding.
pub(crate) fn is_source_error(e: &io::Error) -> bool {
    source::SourceError::is(e)
}

/// A failed read of the blob's source at `offset`.
pub(crate) fn source_error(offset: u64, e: io::Error) -> Error {
    Error::Read {
        offset,
        source: source::SourceError::mark(e),
    }
}

/// The cache of a [`Blob`], printable.
struct SharedCache(Arc<dyn ChunkCache>);

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkCache")
    }
}

/// Reads and parses the footer at the end of `source`; returns it with the
/// blob size. The last 51 bytes are read, as much as the largest gzip
/// footer; only when they end as a zstd:chunked footer does (one) more read
/// fetch the rest of the largest of those (72 bytes). A gzip footer ends in
/// fixed bytes that cannot be mistaken for a zstd:chunked magic.
pub fn read_footer<S: ReadAt + ?Sized>(source: &S) -> Result<(Footer, u64)> {
    let size = source.size().map_err(|e| source_error(0, e))?;
    let read = |offset: u64, len: u64| {
        source
            .read_range(offset, len as usize)
            .map_err(|e| source_error(offset, e))
    };
    let tail_len = size.min(footer::FOOTER_SIZE as u64);
    let mut tail = read(size - tail_len, tail_len)?;
    if zstd_footer::may_end_a_footer(&tail) {
        let want = size.min(zstd_footer::MAX_FOOTER_SIZE as u64);
        let mut more = read(size - want, want - tail_len)?;
        more.extend_from_slice(&tail);
        tail = more;
        match zstd_footer::parse(&tail, size) {
            Ok(Some(z)) => return Ok((Footer::from_zstd(z), size)),
            Ok(None) => {}
            Err(e) => return Err(zstd::zstd_error(e, size - want)),
        }
    }
    let gzip_tail = &tail[tail.len().saturating_sub(footer::FOOTER_SIZE)..];
    Ok((footer::parse(gzip_tail, size)?, size))
}

/// The decompressed payload of a blob of `size` bytes ending in `footer`:
/// its tar stream, gzip members or zstd frames alike.
pub fn decompressed_payload<S: ReadAt + Clone>(
    source: S,
    footer: &Footer,
    size: u64,
) -> Payload<S> {
    Payload::new(source, footer, size)
}

/// The decompressed payload, whichever the codec. One of these exists per
/// read of a whole payload: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Payload<S> {
    /// gzip members.
    Gzip(PayloadReader<S>),
    /// zstd frames.
    Zstd(ZstdPayloadReader<S>),
}

impl<S: ReadAt + Clone> Payload<S> {
    /// A reader of the payload of a blob of `size` bytes ending in `footer`.
    pub fn new(source: S, footer: &Footer, size: u64) -> Self {
        let end = footer.payload_end(size);
        if footer.kind.is_zstd_chunked() {
            Payload::Zstd(ZstdPayloadReader::new(source, end))
        } else {
            Payload::Gzip(PayloadReader::new(source, end))
        }
    }

    /// Also records where each member or data frame starts, in `starts`.
    pub fn recording(self, starts: MemberStarts) -> Self {
        match self {
            Payload::Gzip(r) => Payload::Gzip(r.recording(starts)),
            Payload::Zstd(r) => Payload::Zstd(r.recording(starts)),
        }
    }

    /// Also records skippable frames inside a zstd payload, in `skippables`.
    pub fn recording_skippable(self, skippables: SkippableFrames) -> Self {
        match self {
            Payload::Zstd(r) => Payload::Zstd(r.recording_skippable(skippables)),
            gzip => gzip,
        }
    }
}

impl<S: ReadAt + Clone> Read for Payload<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Payload::Gzip(r) => r.read(buf),
            Payload::Zstd(r) => r.read(buf),
        }
    }
}

/// The footer and TOC of a blob, before any index is built: what
/// [`Blob::open`] starts from, and what `verify` inspects on its own.
#[derive(Debug, Clone)]
pub struct TocInfo {
    /// Blob size.
    pub blob_size: u64,
    /// The footer.
    pub footer: Footer,
    /// Where the TOC member starts (0 for an external TOC).
    pub toc_offset: u64,
    /// Where the payload ends.
    pub payload_end: u64,
    /// The TOC.
    pub toc: Toc,
    /// SHA-256 of the stored JSON.
    pub digest: Digest,
    /// JSON length.
    pub json_len: u64,
    /// Compressed bytes after the TOC member, before the footer (for
    /// zstd:chunked, those no metadata frame accounts for).
    pub slack: u64,
    /// For a zstd:chunked blob: its dialect and manifest checksum.
    pub zstd_chunked: Option<ZstdChunkedInfo>,
}

/// A TOC as a blob stores it: what an open [`Blob`] keeps to parse its
/// TOC again if asked (about 75 bytes an entry, compressed).
#[derive(Debug, Clone)]
pub(crate) enum StoredToc {
    /// The gzip member holding the TOC tar, and where it starts.
    Gzip { member: Box<[u8]>, offset: u64 },
    /// The zstd:chunked TOC frame.
    Zstd { frame: Box<[u8]> },
}

impl StoredToc {
    /// The TOC, parsed again; limits were checked when it was read.
    fn parse(&self, footer: &Footer) -> Result<Toc> {
        match (self, &footer.zstd) {
            (StoredToc::Gzip { member, offset }, _) => {
                let opts = OpenOptions {
                    max_toc_json: u64::MAX >> 1,
                    ..OpenOptions::default()
                };
                Ok(parse_toc_member(member, *offset, &opts)?.toc)
            }
            (StoredToc::Zstd { frame }, Some(z)) => zstd::reparse_toc(z, frame),
            (StoredToc::Zstd { .. }, None) => Ok(Toc::default()),
        }
    }
}

impl TocInfo {
    /// Reads and checks footer and TOC; gives the source back.
    pub fn read<S: ReadAt>(source: S, opts: &OpenOptions) -> Result<(TocInfo, S)> {
        let (footer, size) = read_footer(&source)?;
        TocInfo::after_footer(source, footer, size, opts)
    }

    /// [`TocInfo::read`] once the footer is read.
    pub(crate) fn after_footer<S: ReadAt>(
        source: S,
        footer: Footer,
        size: u64,
        opts: &OpenOptions,
    ) -> Result<(TocInfo, S)> {
        if let Some(z) = &footer.zstd {
            let toc = zstd::read_toc(&source, z, size, opts)?;
            let info = TocInfo {
                blob_size: size,
                toc_offset: z.manifest_offset,
                payload_end: footer.payload_end(size),
                footer,
                toc: toc.toc,
                digest: toc.digest,
                json_len: toc.json_len,
                slack: toc.slack,
                zstd_chunked: Some(toc.info),
            };
            return Ok((info, source));
        }
        let (member, toc_offset) = toc_member(&source, &footer, size, opts)?;
        let parsed = parse_toc_member(&member, toc_offset, opts)?;
        let payload_end = footer.payload_end(size);
        let info = TocInfo {
            blob_size: size,
            footer,
            toc_offset,
            payload_end,
            toc: parsed.toc,
            digest: parsed.digest,
            json_len: parsed.json_len,
            slack: parsed.slack,
            zstd_chunked: None,
        };
        Ok((info, source))
    }
}

/// The gzip member holding the TOC tar (the external one when the footer
/// says so), and where it starts (0 for an external TOC).
fn toc_member<S: ReadAt>(
    source: &S,
    footer: &Footer,
    size: u64,
    opts: &OpenOptions,
) -> Result<(Vec<u8>, u64)> {
    let footer_start = size - footer.kind.size() as u64;
    match footer.toc_offset {
        Some(offset) => {
            let len = footer_start - offset;
            if len > opts.max_toc_compressed {
                return Err(Error::LimitExceeded {
                    what: "compressed TOC size",
                    value: len,
                    limit: opts.max_toc_compressed,
                });
            }
            let bytes = source
                .read_range(offset, len as usize)
                .map_err(|e| source_error(offset, e))?;
            Ok((bytes, offset))
        }
        None => match &opts.external_toc {
            Some(toc) => Ok((toc.clone(), 0)),
            None => Err(Error::InvalidToc {
                offset: footer_start,
                reason: "the blob has an external-TOC footer: its TOC must be supplied separately"
                    .into(),
            }),
        },
    }
}

/// What [`Blob::open`] keeps of the TOC it read, besides the stored bytes.
pub(crate) struct OpenedToc {
    index: Index,
    digest: Digest,
    json_len: u64,
    slack: u64,
}

/// [`OpenOptions::expected_toc_digest`] against the TOC's `digest` (or its
/// zstd:chunked manifest checksum, `also`).
pub(crate) fn check_toc_digest(
    opts: &OpenOptions,
    offset: u64,
    digest: Digest,
    also: Option<Digest>,
) -> Result<()> {
    match opts.expected_toc_digest {
        Some(expected) if expected != digest && Some(expected) != also => {
            Err(Error::TocDigestMismatch {
                offset,
                expected,
                actual: digest,
            })
        }
        _ => Ok(()),
    }
}

/// The TOC tar's header, at the start of `tar` (the decompressed member,
/// or as much of it as there is when shorter than a header): checked, and
/// the length of the JSON it announces, within `max_json`.
fn toc_json_len(tar: &[u8], offset: u64, max_json: u64) -> Result<u64> {
    let bad = |reason: String| Error::InvalidToc { offset, reason };
    if tar.len() < BLOCK {
        return Err(bad(format!(
            "TOC tar is {} bytes, shorter than one header",
            tar.len()
        )));
    }
    let block: &[u8; BLOCK] = tar[..BLOCK]
        .try_into()
        .map_err(|_| bad("short header".into()))?;
    let header = Header(block);
    header
        .verify_checksum(false)
        .map_err(|e| bad(format!("TOC tar header: {e}")))?;
    let name = header.path();
    if name != TOC_NAME.as_bytes() {
        return Err(bad(format!(
            "TOC tar entry had name {:?}; expected {TOC_NAME:?}",
            String::from_utf8_lossy(&name)
        )));
    }
    let size = header
        .size()
        .map_err(|e| bad(format!("TOC tar header: {e}")))?;
    if size > max_json {
        return Err(Error::LimitExceeded {
            what: "TOC JSON size",
            value: size,
            limit: max_json,
        });
    }
    Ok(size)
}

/// [`parse_toc_member`] for [`Blob::open`]: the index is built while the
/// JSON streams out of the member (see `toc_stream`), and the same checks
/// fail in the same order.
fn stream_toc_member(
    member: &[u8],
    offset: u64,
    opts: &OpenOptions,
    payload_end: u64,
) -> Result<OpenedToc> {
    let bad = |reason: String| Error::InvalidToc { offset, reason };
    let limit = opts.max_toc_json + 512 + 1024 + 512;
    let mut src = Capped::new(flate2::bufread::GzDecoder::new(member), limit + 1);
    let mut head = [0u8; BLOCK];
    let got = src.fill(&mut head);
    let streamed = toc_json_len(&head[..got], offset, opts.max_toc_json).map(|size| {
        let mut json = HashedJson::new(&mut src, size);
        let mut sink = IndexSink::new(payload_end, &opts.index, expected_entries(size));
        let slot = TocEntry::new("", EntryType::Dir);
        let parsed = parse_entries(&mut json, false, slot, |e| sink.add(e));
        let (digest, missing) = json.finish();
        (size, parsed, sink, digest, missing)
    });
    // The rest of the member: its CRC and length are checked at its end.
    src.drain();
    if let Some(e) = src.take_failure() {
        return Err(bad(format!("TOC member is not valid gzip: {e}")));
    }
    if src.at_cap() {
        return Err(Error::LimitExceeded {
            what: "decompressed TOC size",
            value: src.total(),
            limit,
        });
    }
    let (size, parsed, sink, digest, missing) = streamed?;
    if missing > 0 {
        return Err(bad(format!(
            "TOC tar claims {size} bytes of JSON but holds {}",
            src.total() - BLOCK as u64
        )));
    }
    check_toc_digest(opts, offset, digest, None)?;
    parsed.map_err(|e| bad(format!("error decoding TOC JSON: {e}")))?;
    Ok(OpenedToc {
        index: sink.finish()?,
        digest,
        json_len: size,
        slack: src.into_inner().into_inner().len() as u64,
    })
}

/// A parsed TOC member.
struct ParsedToc {
    toc: Toc,
    digest: Digest,
    json_len: u64,
    slack: u64,
}

/// Decodes the TOC member at `offset`: one gzip member (CRC and length
/// checked) holding a tar whose first entry is `stargz.index.json`.
fn parse_toc_member(member: &[u8], offset: u64, opts: &OpenOptions) -> Result<ParsedToc> {
    let max_json = opts.max_toc_json;
    let bad = |reason: String| Error::InvalidToc { offset, reason };
    let mut decoder = flate2::bufread::GzDecoder::new(member);
    let mut tar = Vec::new();
    let limit = max_json + 512 + 1024 + 512;
    (&mut decoder)
        .take(limit + 1)
        .read_to_end(&mut tar)
        .map_err(|e| bad(format!("TOC member is not valid gzip: {e}")))?;
    if tar.len() as u64 > limit {
        return Err(Error::LimitExceeded {
            what: "decompressed TOC size",
            value: tar.len() as u64,
            limit,
        });
    }
    let slack = decoder.into_inner().len() as u64;
    let size = toc_json_len(&tar, offset, max_json)?;
    let json = tar.get(BLOCK..BLOCK + size as usize).ok_or_else(|| {
        bad(format!(
            "TOC tar claims {size} bytes of JSON but holds {}",
            tar.len() - BLOCK
        ))
    })?;
    let digest = Digest::of(json);
    check_toc_digest(opts, offset, digest, None)?;
    let toc: Toc =
        serde_json::from_slice(json).map_err(|e| bad(format!("error decoding TOC JSON: {e}")))?;
    Ok(ParsedToc {
        toc,
        digest,
        json_len: size,
        slack,
    })
}
