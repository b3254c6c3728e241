//! Filling the chunk cache ahead of reads: the prefetch region the
//! landmark marks, then (if asked) the rest of the blob, each in a few
//! large reads, every chunk checked against its digest as it is decoded.

use crate::source::CountedSource;
use estargz_core::{Blob, ChunkKey, ReadAt};
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest read a fetch makes at once: the compressed bytes of one window
/// are held in memory while its chunks are decoded.
pub const MAX_WINDOW: u64 = 64 << 20;

/// Window of the background fetch: small enough that file reads arriving
/// meanwhile wait little for the source.
pub const BACKGROUND_WINDOW: u64 = 8 << 20;

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchReport {
    /// Reads of the source (one per window).
    pub reads: u64,
    /// Compressed bytes read.
    pub bytes: u64,
    /// Chunks decoded, checked and cached.
    pub chunks: u64,
    /// Why the fetch ended before its end, if it did.
    pub stopped: Option<Stopped>,
}

/// Why a fetch ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// Asked to (the file system is unmounting).
    Cancelled,
    /// The cache is full: fetching more would evict what readers use.
    CacheFull,
    /// A read or a chunk failed; the chunks fetched so far stay cached.
    Failed(String),
}

/// A chunk to fetch: the file it belongs to, the file offset it starts
/// at, and the compressed bytes holding it.
struct Planned {
    path: String,
    file_offset: u64,
    size: u64,
    key: ChunkKey,
    end: u64,
}

/// Every chunk of the blob whose member run lies in `[start, end)`, by
/// blob offset.
fn plan<S: ReadAt>(blob: &Blob<S>, start: u64, end: u64) -> Vec<Planned> {
    let mut out: Vec<Planned> = blob
        .index()
        .files()
        .into_iter()
        .flat_map(|node| {
            node.chunks().iter().map(|c| Planned {
                path: node.name().to_string(),
                file_offset: c.chunk_offset(),
                size: c.size(),
                key: blob.chunk_key(c),
                end: c.next_offset(),
            })
        })
        .filter(|p| p.key.member >= start && p.end <= end && p.size > 0)
        .collect();
    out.sort_by_key(|p| (p.key.member, p.key.inner_offset));
    out
}

/// What one fetch run is allowed: how large a read, and when to stop. It
/// also stops when the blob's cache has no [`room`](estargz_core::ChunkCache::room)
/// left: fetching more would evict what readers use.
///
/// ```
/// use estargz_core::{Blob, Converter, LruChunkCache, OpenOptions};
/// use estargz_fuse::{CountedSource, Fetch, MAX_WINDOW};
/// use std::sync::atomic::AtomicBool;
/// use std::sync::Arc;
/// # let tar = {
/// # let mut b = tar::Builder::new(Vec::new());
/// # let mut h = tar::Header::new_ustar();
/// # h.set_size(5);
/// # h.set_mode(0o644);
/// # h.set_cksum();
/// # b.append_data(&mut h, "greeting", &b"hello"[..]).unwrap();
/// # b.into_inner().unwrap()
/// # };
/// let mut bytes = Vec::new();
/// Converter::new().convert(&tar, &mut bytes)?;
/// let cache = Arc::new(LruChunkCache::new(64 << 20));
/// let blob = Blob::open(CountedSource::new(bytes), &OpenOptions::default())?
///     .with_cache(cache.clone());
/// let cancel = AtomicBool::new(false);
/// let fetch = Fetch { window: MAX_WINDOW, cancel: &cancel };
/// let report = fetch.run(&blob, 0, blob.payload_end());
/// assert_eq!((report.reads, report.chunks), (1, 1));
/// let reads = blob.source().counters().stats().source_reads;
/// assert_eq!(blob.read_file("greeting")?, b"hello"); // from the cache
/// assert_eq!(blob.source().counters().stats().source_reads, reads);
/// # Ok::<(), estargz_core::Error>(())
/// ```
pub struct Fetch<'a> {
    /// Largest read.
    pub window: u64,
    /// Set to stop between chunks.
    pub cancel: &'a AtomicBool,
}

impl Fetch<'_> {
    /// Fetches the chunks of `[start, end)` of `blob` not cached yet, in
    /// windows of at most [`window`](Self::window) bytes, decoding and
    /// checking each chunk into the cache.
    pub fn run<S: ReadAt>(
        &self,
        blob: &Blob<CountedSource<S>>,
        start: u64,
        end: u64,
    ) -> FetchReport {
        let cache = blob.cache();
        let todo: Vec<Planned> = plan(blob, start, end)
            .into_iter()
            .filter(|p| !cache.contains_verified(&p.key))
            .collect();
        let mut report = FetchReport::default();
        let mut rest = &todo[..];
        while let Some(first) = rest.first() {
            if self.cancel.load(Ordering::Relaxed) {
                report.stopped = Some(Stopped::Cancelled);
                break;
            }
            let room = cache.room().unwrap_or(u64::MAX);
            let (n, window_end) = self.window_of(rest, room);
            if n == 0 {
                report.stopped = Some(Stopped::CacheFull);
                break;
            }
            if let Err(e) = fill(blob, first.key.member, window_end, &rest[..n]) {
                report.stopped = Some(Stopped::Failed(e));
                break;
            }
            report.reads += 1;
            report.bytes += window_end - first.key.member;
            report.chunks += n as u64;
            rest = &rest[n..];
        }
        report
    }

    /// How many of `chunks` one read covers and where that read ends: at
    /// most [`window`](Self::window) bytes (a first chunk whose run is
    /// longer still goes alone), decoding to at most `room` bytes (0
    /// chunks when even the first does not fit).
    fn window_of(&self, chunks: &[Planned], room: u64) -> (usize, u64) {
        let start = chunks[0].key.member;
        let (mut n, mut end, mut decoded) = (0, start, 0u64);
        for c in chunks {
            let too_long = n > 0 && c.end.max(end) - start > self.window;
            if too_long || decoded.saturating_add(c.size) > room {
                break;
            }
            n += 1;
            end = end.max(c.end);
            decoded += c.size;
        }
        (n, end)
    }
}

/// Reads `[start, end)` once and decodes `chunks` from it into the cache.
fn fill<S: ReadAt>(
    blob: &Blob<CountedSource<S>>,
    start: u64,
    end: u64,
    chunks: &[Planned],
) -> Result<(), String> {
    let source = blob.source();
    source
        .stage(start, end)
        .map_err(|e| format!("reading blob bytes [{start}, {end}): {e}"))?;
    let mut byte = [0u8; 1];
    let result = chunks.iter().try_for_each(|c| {
        // Reading one byte decodes, checks and caches the whole chunk.
        blob.open_file(&c.path)
            .and_then(|f| f.verifying(true).read_at(c.file_offset, &mut byte))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    source.unstage();
    result
}

/// The prefetch region of `blob`: `[0, end)` when its landmark marks one.
pub fn prefetch_region<S: ReadAt>(blob: &Blob<S>) -> Option<(u64, u64)> {
    blob.index().prefetch_end().map(|end| (0, end))
}
