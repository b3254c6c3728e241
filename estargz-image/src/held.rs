//! Blobs held until they are uploaded: in memory while a shared budget
//! ([`MemoryPool`]) lasts, the rest spooled to an unnamed temporary file.
//!
//! The spool file is created with no name (`O_TMPFILE` where the file
//! system has it, else created and unlinked at once), so it is gone when
//! the blob is dropped or the process ends, however it ends.
//!
//! ```
//! use estargz_image::held::{HeldBlob, MemoryPool};
//! use std::io::{Read, Write};
//!
//! let pool = MemoryPool::new(1 << 20);
//! let dir = std::env::temp_dir();
//! let mut blob = HeldBlob::new(pool.clone(), &dir);
//! blob.write_all(&vec![7u8; 3 << 20])?; // 1 MiB in memory, 2 MiB spooled
//! assert_eq!((blob.len(), blob.spooled()), (3 << 20, 2 << 20));
//! let mut back = Vec::new();
//! blob.reader().read_to_end(&mut back)?;
//! assert_eq!(back.len(), 3 << 20);
//! drop(blob);
//! assert_eq!(pool.used(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

use estargz_core::ReadAt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Memory is taken from the pool in pieces of this size: small enough
/// that a blob overshoots its share by little, large enough that a big
/// blob is few allocations.
const PIECE: usize = 1 << 20;

/// A byte budget shared by every [`HeldBlob`] made with it.
#[derive(Debug)]
pub struct MemoryPool {
    limit: AtomicU64,
    used: AtomicU64,
}

impl MemoryPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: u64) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
        })
    }

    /// Changes the budget; what is held already stays.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::SeqCst);
    }

    /// The budget.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::SeqCst)
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    fn try_take(&self, n: u64) -> bool {
        let limit = self.limit();
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(n).filter(|&u| u <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// A blob written once, then read any number of times: its first bytes
/// in memory pieces taken from a [`MemoryPool`], the rest (once the pool
/// says no) in an unnamed file in the spool directory.
#[derive(Debug)]
pub struct HeldBlob {
    pool: Arc<MemoryPool>,
    dir: PathBuf,
    /// Every piece but the last is full; the file starts after them.
    pieces: Vec<Vec<u8>>,
    file: Option<File>,
    in_memory: u64,
    spooled: u64,
}

impl HeldBlob {
    /// An empty blob taking memory from `pool`, spooling to `dir`.
    pub fn new(pool: Arc<MemoryPool>, dir: &Path) -> HeldBlob {
        HeldBlob {
            pool,
            dir: dir.to_path_buf(),
            pieces: Vec::new(),
            file: None,
            in_memory: 0,
            spooled: 0,
        }
    }

    /// Bytes written.
    pub fn len(&self) -> u64 {
        self.in_memory + self.spooled
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes written to the spool file.
    pub fn spooled(&self) -> u64 {
        self.spooled
    }

    /// Reads the blob from its start.
    pub fn reader(&self) -> HeldReader<'_> {
        HeldReader {
            blob: self,
            offset: 0,
        }
    }

    /// The piece to write into, a new one if the pool allows it.
    fn piece_with_room(&mut self) -> Option<&mut Vec<u8>> {
        let full = self.pieces.last().is_none_or(|p| p.len() == PIECE);
        if full {
            if self.file.is_some() || !self.pool.try_take(PIECE as u64) {
                return None;
            }
            self.pieces.push(Vec::with_capacity(PIECE));
        }
        self.pieces.last_mut()
    }

    fn spool(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            let file = tempfile::tempfile_in(&self.dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("spooling to {} ($TMPDIR): {e}", self.dir.display()),
                )
            })?;
            self.file = Some(file);
        }
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("no spool"))
    }
}

impl Write for HeldBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(piece) = self.piece_with_room() {
            let n = buf.len().min(PIECE - piece.len());
            piece.extend_from_slice(&buf[..n]);
            self.in_memory += n as u64;
            return Ok(n);
        }
        let at = self.spooled;
        let n = self.spool()?.write_at(buf, at)?;
        self.spooled += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for HeldBlob {
    fn drop(&mut self) {
        self.pool.give_back(self.pieces.len() as u64 * PIECE as u64);
    }
}

impl ReadAt for HeldBlob {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset < self.in_memory {
            // Pieces are full but the last: the index is the quotient.
            let (index, within) = (offset / PIECE as u64, offset % PIECE as u64);
            let piece = usize::try_from(index)
                .ok()
                .and_then(|i| self.pieces.get(i))
                .ok_or_else(|| io::Error::other("held blob: offset past its pieces"))?;
            let from = &piece[within as usize..];
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            return Ok(n);
        }
        let at = offset - self.in_memory;
        match &self.file {
            Some(file) if at < self.spooled => {
                let left = usize::try_from(self.spooled - at).unwrap_or(usize::MAX);
                let n = buf.len().min(left);
                FileExt::read_at(file, &mut buf[..n], at)
            }
            _ => Ok(0),
        }
    }
}

/// A [`HeldBlob`] read front to back.
#[derive(Debug)]
pub struct HeldReader<'a> {
    blob: &'a HeldBlob,
    offset: u64,
}

impl Read for HeldReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.blob.read_at(self.offset, buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_first_then_the_spool_and_reads_across_the_seam() {
        let dir = tempfile::tempdir().unwrap();
        let pool = MemoryPool::new(2 * PIECE as u64);
        let data: Vec<u8> = (0..5 * PIECE + 123).map(|i| (i * 7 % 251) as u8).collect();
        let mut blob = HeldBlob::new(pool.clone(), dir.path());
        for part in data.chunks(300_001) {
            blob.write_all(part).unwrap();
        }
        assert_eq!(blob.len(), data.len() as u64);
        assert_eq!(blob.spooled(), (data.len() - 2 * PIECE) as u64);
        assert_eq!(pool.used(), 2 * PIECE as u64);
        // A second blob finds the pool spent: all of it goes to the spool.
        let mut other = HeldBlob::new(pool.clone(), dir.path());
        other.write_all(b"abc").unwrap();
        assert_eq!(other.spooled(), 3);
        let mut back = Vec::new();
        blob.reader().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let mut seam = [0u8; 10];
        let at = 2 * PIECE as u64 - 5;
        let n = blob.read_at(at, &mut seam).unwrap();
        assert_eq!(&seam[..n], &data[at as usize..at as usize + n]);
        // The spool has no name: nothing in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop((blob, other));
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_missing_spool_directory_matters_only_once_memory_runs_out() {
        let pool = MemoryPool::new(PIECE as u64);
        let missing = Path::new("/nonexistent/spool");
        let mut blob = HeldBlob::new(pool, missing);
        blob.write_all(&vec![1u8; PIECE]).unwrap();
        let err = blob.write_all(b"more").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/spool"), "{err}");
    }
}
