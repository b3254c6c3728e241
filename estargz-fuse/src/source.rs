//! The blob's bytes as the mount reads them: counted, and served from a
//! staged window while a prefetch decodes what one large read brought.

use estargz_core::{ReadAt, ReadHint};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Reads made of the underlying source, and what the mount served.
#[derive(Debug, Default)]
pub struct Counters {
    source_reads: AtomicU64,
    source_bytes: AtomicU64,
    file_reads: AtomicU64,
    file_bytes: AtomicU64,
    failed_reads: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Reads of the underlying source (for an HTTP source, at least one
    /// request each), the TOC's on open included.
    pub source_reads: u64,
    /// Bytes those reads returned.
    pub source_bytes: u64,
    /// File reads the mount answered.
    pub file_reads: u64,
    /// Bytes those reads returned.
    pub file_bytes: u64,
    /// File reads that failed (answered with `EIO`).
    pub failed_reads: u64,
}

impl Counters {
    /// The numbers so far.
    pub fn stats(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            source_reads: get(&self.source_reads),
            source_bytes: get(&self.source_bytes),
            file_reads: get(&self.file_reads),
            file_bytes: get(&self.file_bytes),
            failed_reads: get(&self.failed_reads),
        }
    }

    pub(crate) fn file_read(&self, result: Option<usize>) {
        self.file_reads.fetch_add(1, Ordering::Relaxed);
        match result {
            Some(n) => self.file_bytes.fetch_add(n as u64, Ordering::Relaxed),
            None => self.failed_reads.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Compressed bytes fetched in one read and held while their chunks are
/// decoded into the cache.
struct Staged {
    start: u64,
    bytes: Arc<[u8]>,
}

/// A [`ReadAt`] that counts the reads it passes on, and answers reads that
/// fall inside a staged window from memory.
///
/// ```
/// use estargz_core::ReadAt;
/// use estargz_fuse::CountedSource;
///
/// let source = CountedSource::new(b"hello world".to_vec());
/// let mut buf = [0u8; 5];
/// source.read_exact_at(6, &mut buf).unwrap();
/// assert_eq!(&buf, b"world");
/// assert_eq!(source.counters().stats().source_reads, 1);
/// ```
pub struct CountedSource<S> {
    inner: S,
    counters: Arc<Counters>,
    staged: RwLock<Option<Staged>>,
}

impl<S: ReadAt> CountedSource<S> {
    /// Counts the reads of `inner`.
    pub fn new(inner: S) -> CountedSource<S> {
        CountedSource {
            inner,
            counters: Arc::default(),
            staged: RwLock::new(None),
        }
    }

    /// The underlying source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The counters, shared with the file system serving the blob.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Reads `[start, end)` in one read and serves reads inside it from
    /// memory until [`unstage`](Self::unstage).
    pub(crate) fn stage(&self, start: u64, end: u64) -> io::Result<()> {
        let len = usize::try_from(end.saturating_sub(start))
            .map_err(|_| io::Error::other("window too large"))?;
        let bytes = self.read_range(start, len)?;
        *self.staged.write().unwrap_or_else(PoisonError::into_inner) = Some(Staged {
            start,
            bytes: bytes.into(),
        });
        Ok(())
    }

    pub(crate) fn unstage(&self) {
        *self.staged.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Copies from the staged window when it holds `offset`.
    fn read_staged(&self, offset: u64, buf: &mut [u8]) -> Option<usize> {
        let staged = self.staged.read().unwrap_or_else(PoisonError::into_inner);
        let staged = staged.as_ref()?;
        let from = usize::try_from(offset.checked_sub(staged.start)?).ok()?;
        let held = staged.bytes.get(from..).filter(|b| !b.is_empty())?;
        let n = held.len().min(buf.len());
        buf[..n].copy_from_slice(&held[..n]);
        Some(n)
    }
}

impl<S: ReadAt> ReadAt for CountedSource<S> {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.read_counted(offset, buf, None)
    }

    fn read_at_hinted(&self, offset: u64, buf: &mut [u8], hint: ReadHint) -> io::Result<usize> {
        self.read_counted(offset, buf, Some(hint))
    }
}

impl<S: ReadAt> CountedSource<S> {
    /// A read from the staged window, else from the source (passing on
    /// the hint, if any), counted.
    fn read_counted(
        &self,
        offset: u64,
        buf: &mut [u8],
        hint: Option<ReadHint>,
    ) -> io::Result<usize> {
        if let Some(n) = self.read_staged(offset, buf) {
            return Ok(n);
        }
        let n = match hint {
            Some(hint) => self.inner.read_at_hinted(offset, buf, hint)?,
            None => self.inner.read_at(offset, buf)?,
        };
        self.counters.source_reads.fetch_add(1, Ordering::Relaxed);
        self.counters
            .source_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
