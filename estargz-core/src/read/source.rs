//! Positioned reads: where blob bytes come from.
//!
//! Implemented for files, memory maps and byte slices; implement it for an
//! HTTP client with range requests, or a registry client, to read remote
//! blobs lazily.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// A source of bytes that can be read at any offset, from any thread.
///
/// ```
/// use estargz_core::ReadAt;
/// let blob: &[u8] = b"hello world";
/// let mut buf = [0u8; 5];
/// blob.read_exact_at(6, &mut buf).unwrap();
/// assert_eq!(&buf, b"world");
/// assert_eq!(ReadAt::size(&blob).unwrap(), 11);
/// ```
pub trait ReadAt: Send + Sync {
    /// Total size in bytes.
    fn size(&self) -> io::Result<u64>;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (0 only at or past the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        fill_at(offset, buf, |at, part| self.read_at(at, part))
    }

    /// [`read_at`](Self::read_at), told what the reader goes on to read:
    /// a source that reads ahead (an HTTP client fetching more than asked
    /// for, so that a sequential reader makes few requests) stops where
    /// `hint` says the bytes stop being of use. This default ignores the
    /// hint.
    ///
    /// ```
    /// use estargz_core::{ReadAt, ReadHint};
    /// let blob: &[u8] = b"hello world";
    /// let mut buf = [0u8; 5];
    /// // Reading a file stored in [0, 5) of a region ending at 11.
    /// let n = blob.read_at_hinted(0, &mut buf, ReadHint::new(0..5, 11)).unwrap();
    /// assert_eq!(&buf[..n], b"hello");
    /// ```
    fn read_at_hinted(&self, offset: u64, buf: &mut [u8], hint: ReadHint) -> io::Result<usize> {
        let _ = hint;
        self.read_at(offset, buf)
    }

    /// Reads the range `[offset, offset + len)` into a new buffer.
    fn read_range(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(offset, &mut buf)?;
        Ok(buf)
    }

    /// Reads several ranges, each into a new buffer, in the order given.
    /// A source whose reads each cost a round trip (an HTTP server) may
    /// fetch adjacent and overlapping ranges with one request; this
    /// default reads them one after the other.
    ///
    /// ```
    /// use estargz_core::ReadAt;
    /// let blob: &[u8] = b"hello world";
    /// let got = blob.read_ranges(&[6..11, 0..5]).unwrap();
    /// assert_eq!(got, [b"world".to_vec(), b"hello".to_vec()]);
    /// ```
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        ranges
            .iter()
            .map(|r| self.read_range(r.start, range_len(r)?))
            .collect()
    }
}

/// What a reader of a file's chunks goes on to read, for
/// [`ReadAt::read_at_hinted`]: the compressed bytes of the file it reads,
/// and the end of the region that file lies in (the prefetch region the
/// landmark marks, or the rest of the payload). A reader reading one file
/// needs nothing past the file's bytes; one walking the blob file after
/// file in order needs nothing past the region's end, as the next region
/// is read apart (the prefetch region is fetched, or read, on its own).
///
/// ```
/// use estargz_core::ReadHint;
/// let hint = ReadHint::new(1000..5000, 80_000);
/// assert_eq!((hint.file_start(), hint.file_end(), hint.region_end()), (1000, 5000, 80_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadHint {
    file_start: u64,
    file_end: u64,
    region_end: u64,
}

impl ReadHint {
    /// The file's compressed bytes are `file`, its region ends at
    /// `region_end` (taken as at least `file.end`).
    pub fn new(file: Range<u64>, region_end: u64) -> ReadHint {
        ReadHint {
            file_start: file.start,
            file_end: file.end.max(file.start),
            region_end: region_end.max(file.end),
        }
    }

    /// Where the file's compressed bytes start.
    pub fn file_start(&self) -> u64 {
        self.file_start
    }

    /// Where they end.
    pub fn file_end(&self) -> u64 {
        self.file_end
    }

    /// Where the region holding the file ends.
    pub fn region_end(&self) -> u64 {
        self.region_end
    }
}

/// Fills `buf` from `offset` with [`ReadAt::read_at_hinted`], or fails
/// with `UnexpectedEof`.
pub(crate) fn read_exact_hinted<S: ReadAt + ?Sized>(
    source: &S,
    offset: u64,
    buf: &mut [u8],
    hint: ReadHint,
) -> io::Result<()> {
    fill_at(offset, buf, |at, part| {
        source.read_at_hinted(at, part, hint)
    })
}

/// Fills `buf` from `offset` with `read` (a positioned read), or fails
/// with `UnexpectedEof`.
fn fill_at(
    mut offset: u64,
    mut buf: &mut [u8],
    mut read: impl FnMut(u64, &mut [u8]) -> io::Result<usize>,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read(offset, buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("blob ends before byte {}", offset + buf.len() as u64),
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The length of `r` as a buffer length; empty when it is reversed.
pub(crate) fn range_len(r: &Range<u64>) -> io::Result<usize> {
    usize::try_from(r.end.saturating_sub(r.start)).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("range {r:?} does not fit in memory"),
        )
    })
}

impl ReadAt for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> io::Result<u64> {
        self.as_slice().size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.as_slice().read_at(offset, buf)
    }
}

impl ReadAt for memmap2::Mmap {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self[..].read_at(offset, buf)
    }
}

impl ReadAt for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    #[cfg(unix)]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }

    #[cfg(windows)]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(self, buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
    fn read_at_hinted(&self, offset: u64, buf: &mut [u8], hint: ReadHint) -> io::Result<usize> {
        (**self).read_at_hinted(offset, buf, hint)
    }
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        (**self).read_ranges(ranges)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
    fn read_at_hinted(&self, offset: u64, buf: &mut [u8], hint: ReadHint) -> io::Result<usize> {
        (**self).read_at_hinted(offset, buf, hint)
    }
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        (**self).read_ranges(ranges)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
    fn read_at_hinted(&self, offset: u64, buf: &mut [u8], hint: ReadHint) -> io::Result<usize> {
        (**self).read_at_hinted(offset, buf, hint)
    }
    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        (**self).read_ranges(ranges)
    }
}

/// A failure of the source itself (a file, a server), as opposed to one
/// found decoding what it gave: what [`Error::kind`](crate::Error::kind)
/// tells apart inside an [`io::Error`] that a reader of the payload
/// returns. It shows as the source's error, which it keeps as its
/// `source()`.
#[derive(Debug)]
pub(crate) struct SourceError {
    source: io::Error,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl SourceError {
    /// `e`, of the same kind, marked as the source's.
    pub(crate) fn mark(e: io::Error) -> io::Error {
        if SourceError::is(&e) {
            return e;
        }
        io::Error::new(e.kind(), SourceError { source: e })
    }

    /// Whether `e` is marked as the source's.
    pub(crate) fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<SourceError>())
    }
}

/// A [`std::io::Read`] over `[start, end)` of a source.
pub struct RangeReader<S> {
    source: S,
    pos: u64,
    end: u64,
    /// Each read fills the buffer (to the range's end), however the source
    /// splits it.
    fill: bool,
}

impl<S: ReadAt> RangeReader<S> {
    /// Reads `[start, end)` of `source` sequentially.
    pub fn new(source: S, start: u64, end: u64) -> Self {
        RangeReader {
            source,
            pos: start,
            end,
            fill: false,
        }
    }

    /// Makes each read fill the buffer, up to the range's end: what a
    /// decoder reading through a `BufReader` gets is then the same slices
    /// of the blob whatever sizes the source reads in, and so is where it
    /// notices damage (flate2 drops a call's output when it fails).
    pub(crate) fn filling(mut self) -> Self {
        self.fill = true;
        self
    }

    /// The next offset to be read.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl<S: ReadAt> io::Read for RangeReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.fill {
            return self.read_once(buf);
        }
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_once(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // What was read comes first; the next call fails again.
                Err(_) if filled > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

impl<S: ReadAt> RangeReader<S> {
    /// One read of the source.
    fn read_once(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .source
            .read_at(self.pos, &mut buf[..want])
            .map_err(SourceError::mark)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "blob ends at byte {} before the expected {}",
                    self.pos, self.end
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}
