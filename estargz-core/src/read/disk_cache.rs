//! Decoded chunks kept on disk by content digest, shared by every blob and
//! every process that uses the directory.
//!
//! The memory cache dies with the process and keys by blob. A layer read
//! again after a restart, or another layer or image holding the same
//! files, finds its chunks here without fetching them. Each entry is one
//! chunk named by its SHA-256 and checked against it when read, so a torn,
//! corrupted or planted file is removed, never served; that check is also
//! why writes need no fsync. Writes go to a temporary file renamed into
//! place, so a reader, in this process or another, sees an entry whole or
//! not at all.

use super::cache::{CachedChunk, ChunkCache, ChunkKey, LruChunkCache};
use crate::convert::MAX_CHUNK_SIZE;
use crate::digest::Digest;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Temporary files older than this are a crashed writer's: removed at open.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A [`ChunkCache`] on disk under a byte budget, with an in-memory
/// [`LruChunkCache`] in front.
///
/// Only chunks checked against their `chunkDigest` are written, under that
/// digest (`DIR/sha256/xx/<hex>`): identical chunks of any blob share one
/// entry. A thread of the cache's writes them, so that reads do not wait
/// for the disk (unless 64 MiB of chunks are already waiting for it). When the directory grows past its budget, the entries used
/// longest ago (by modification time, refreshed on every hit, so across
/// processes too) are removed until a tenth of the budget is free.
/// Anything at an entry's name that is not a regular file (a symbolic
/// link, a FIFO) is removed unread. Failures to write are counted, not
/// returned: a cache that cannot store only costs fetches.
///
/// ```
/// use estargz_core::{Blob, Converter, DiskChunkCache, OpenOptions};
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
/// let dir = tempfile::tempdir()?;
/// let mut bytes = Vec::new();
/// Converter::new().convert(&tar, &mut bytes)?;
///
/// let cache = Arc::new(DiskChunkCache::open(dir.path(), 1 << 30, 64 << 20)?);
/// let blob = Blob::open(bytes.clone(), &OpenOptions::default())?.with_cache(cache.clone());
/// assert_eq!(blob.read_file("greeting")?, b"hello");
/// cache.flush(); // written in the background
/// assert_eq!(cache.stats().writes, 1);
///
/// // Another process, or this one later: the chunk comes from disk.
/// let cache = Arc::new(DiskChunkCache::open(dir.path(), 1 << 30, 64 << 20)?);
/// let blob = Blob::open(bytes, &OpenOptions::default())?.with_cache(cache.clone());
/// assert_eq!(blob.read_file("greeting")?, b"hello");
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DiskChunkCache {
    store: Arc<Store>,
    memory: LruChunkCache,
    writer: Writer,
}

/// The directory, and what was done with it.
#[derive(Debug)]
struct Store {
    root: PathBuf,
    max_bytes: u64,
    /// Bytes of entries on disk as this process knows them: recounted
    /// from the directory whenever it is trimmed.
    used: AtomicU64,
    hits: AtomicU64,
    writes: AtomicU64,
    bytes_written: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
}

/// Most bytes of chunks waiting for the writer thread; an insert beyond
/// it waits (a background fetch then goes no faster than the disk).
const MAX_PENDING: u64 = 64 << 20;

/// Writes entries on a thread of its own, so that a read which decoded a
/// chunk does not also wait for the disk.
#[derive(Debug)]
struct Writer {
    queue: Option<mpsc::Sender<(Digest, Arc<[u8]>)>>,
    pending: Arc<Pending>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Chunks handed to the writer and not written yet.
#[derive(Debug, Default)]
struct Pending {
    state: Mutex<PendingState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PendingState {
    count: u64,
    bytes: u64,
    /// The writer thread has ended: nothing pending will be written, and
    /// no one should wait for it.
    closed: bool,
}

/// What a [`DiskChunkCache`] did since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskCacheStats {
    /// Chunks read from disk (after a miss in memory).
    pub hits: u64,
    /// Entries written.
    pub writes: u64,
    /// Bytes of the entries written.
    pub bytes_written: u64,
    /// Entries that did not match their digest, removed unserved.
    pub dropped: u64,
    /// Entries that could not be written.
    pub failures: u64,
    /// Bytes of entries on disk, as last counted.
    pub used: u64,
}

impl DiskChunkCache {
    /// Opens (creating it if need be) the cache directory `dir`, at most
    /// `max_bytes` of entries, with `memory_budget` bytes of chunks kept in
    /// memory in front of it. Counts the entries there and removes the
    /// temporary files a crashed writer left.
    pub fn open(dir: &Path, max_bytes: u64, memory_budget: u64) -> io::Result<DiskChunkCache> {
        let named = |what: &Path, e: io::Error| {
            io::Error::new(e.kind(), format!("{}: {e}", what.display()))
        };
        for sub in ["sha256", "tmp"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|e| named(&path, e))?;
        }
        let store = Arc::new(Store {
            root: dir.to_path_buf(),
            max_bytes,
            used: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        let entries = store.entries().map_err(|e| named(dir, e))?;
        let used = entries.iter().map(|e| e.len).sum();
        store.used.store(used, Ordering::Relaxed);
        store.remove_stale_temps();
        Ok(DiskChunkCache {
            writer: Writer::start(store.clone())?,
            store,
            memory: LruChunkCache::new(memory_budget),
        })
    }

    /// The cache in memory in front of the directory.
    pub fn memory(&self) -> &LruChunkCache {
        &self.memory
    }

    /// What the cache did since it was opened.
    pub fn stats(&self) -> DiskCacheStats {
        let store = &self.store;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        DiskCacheStats {
            hits: load(&store.hits),
            writes: load(&store.writes),
            bytes_written: load(&store.bytes_written),
            dropped: load(&store.dropped),
            failures: load(&store.failures),
            used: load(&store.used),
        }
    }

    /// Waits until every chunk stored so far is written to disk (or
    /// failed to be). Writes go on in the background; dropping the cache
    /// waits for them too.
    pub fn flush(&self) {
        self.writer.pending.wait_until(|p| p.count == 0);
    }
}

impl Store {
    fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// The entry for `digest`, if it is there and holds those `size`
    /// bytes.
    fn read(&self, digest: &Digest, size: u64) -> Option<Vec<u8>> {
        let path = self.path(digest);
        let file = match open_entry(&path) {
            Ok(Some(file)) => file,
            Ok(None) => return self.drop_entry(&path),
            Err(_) => return None,
        };
        // Never more than the chunk holds: a longer entry is not it.
        let cap = usize::try_from(size.min(MAX_CHUNK_SIZE)).unwrap_or(0);
        let mut data = Vec::with_capacity(cap);
        (&file)
            .take(size.saturating_add(1))
            .read_to_end(&mut data)
            .ok()?;
        if data.len() as u64 != size || Digest::of(&data) != *digest {
            return self.drop_entry(&path);
        }
        // The modification time orders entries for trimming.
        let _ = file.set_modified(SystemTime::now());
        Some(data)
    }

    /// Removes a bad entry. Another process may have just renamed a good
    /// one over it; removing that too only costs a fetch.
    fn drop_entry(&self, path: &Path) -> Option<Vec<u8>> {
        let _ = fs::remove_file(path);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        None
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut tmp = tempfile::Builder::new()
            .prefix("chunk-")
            .tempfile_in(self.root.join("tmp"))?;
        tmp.write_all(data)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Writes the entry for `digest` unless it is there already (another
    /// blob or process wrote it); trims the directory when over budget.
    fn store(&self, digest: &Digest, data: &[u8]) {
        let (path, len) = (self.path(digest), data.len() as u64);
        if len > self.max_bytes || path.exists() {
            return;
        }
        if self.write(&path, data).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(len, Ordering::Relaxed);
        if self.used.fetch_add(len, Ordering::Relaxed) + len > self.max_bytes {
            self.trim();
        }
    }

    /// Removes the entries used longest ago until a tenth of the budget
    /// is free (only the writer thread trims).
    fn trim(&self) {
        let Ok(mut entries) = self.entries() else {
            return;
        };
        let mut total: u64 = entries.iter().map(|e| e.len).sum();
        let target = self.max_bytes - self.max_bytes / 10;
        entries.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
        for entry in entries {
            if total <= target {
                break;
            }
            if fs::remove_file(&entry.path).is_ok() {
                total -= entry.len;
            }
        }
        self.used.store(total, Ordering::Relaxed);
    }

    /// Every entry in the directory.
    fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for fan in fs::read_dir(self.root.join("sha256"))? {
            let Ok(files) = fs::read_dir(fan?.path()) else {
                continue;
            };
            // Entries vanish under concurrent trims: skip what is gone.
            for file in files.flatten() {
                let Ok(meta) = file.metadata() else { continue };
                out.push(Entry {
                    path: file.path(),
                    len: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(out)
    }

    fn remove_stale_temps(&self) {
        let Ok(temps) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let now = SystemTime::now();
        for temp in temps.flatten() {
            let stale = temp
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_TEMP);
            if stale {
                let _ = fs::remove_file(temp.path());
            }
        }
    }
}

/// Opens the entry at `path`; `None` when it is not a regular file. A
/// symbolic link is not followed and a FIFO does not block the open: the
/// directory may be shared with less trusted writers.
fn open_entry(path: &Path) -> io::Result<Option<fs::File>> {
    let mut opts = fs::File::options();
    opts.read(true);
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32);
    }
    let file = match opts.open(path) {
        Ok(file) => file,
        // O_NOFOLLOW's answer to a symbolic link.
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok(file.metadata()?.is_file().then_some(file))
}

/// An entry found in the directory.
struct Entry {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

impl Writer {
    fn start(store: Arc<Store>) -> io::Result<Writer> {
        let (queue, jobs) = mpsc::channel::<(Digest, Arc<[u8]>)>();
        let pending = Arc::new(Pending::default());
        let done = pending.clone();
        let thread = std::thread::Builder::new()
            .name("estargz-disk-cache".into())
            .spawn(move || {
                // Whatever ends the thread, no one waits for it any more.
                let _closing = Closing(&done);
                for (digest, data) in jobs {
                    store.store(&digest, &data);
                    done.update(|p| {
                        p.count -= 1;
                        p.bytes -= data.len() as u64;
                    });
                }
            })?;
        Ok(Writer {
            queue: Some(queue),
            pending,
            thread: Some(thread),
        })
    }

    /// Hands `data` to the writer thread, first waiting while too much is
    /// pending.
    fn send(&self, digest: Digest, data: Arc<[u8]>) {
        let len = data.len() as u64;
        if !self.pending.reserve(len) {
            return;
        }
        let sent = self.queue.as_ref().map(|q| q.send((digest, data)));
        if !matches!(sent, Some(Ok(()))) {
            self.pending.update(|p| {
                p.count -= 1;
                p.bytes -= len;
            });
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written the rest.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Marks the pending chunks closed when the writer thread ends.
struct Closing<'a>(&'a Pending);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.update(|p| p.closed = true);
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    fn update(&self, change: impl FnOnce(&mut PendingState)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Counts `len` bytes in once fewer than [`MAX_PENDING`] are pending
    /// (or none at all); false when the writer has ended.
    fn reserve(&self, len: u64) -> bool {
        let mut p = self.lock();
        while !p.closed && p.count > 0 && p.bytes + len > MAX_PENDING {
            p = self.changed.wait(p).unwrap_or_else(PoisonError::into_inner);
        }
        if p.closed {
            return false;
        }
        p.count += 1;
        p.bytes += len;
        true
    }

    /// Waits until `ready` holds of what is pending, or the writer ended.
    fn wait_until(&self, ready: impl Fn(&PendingState) -> bool) {
        let mut p = self.lock();
        while !p.closed && !ready(&p) {
            p = self.changed.wait(p).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl ChunkCache for DiskChunkCache {
    /// From memory; else, or when memory holds it unchecked, from disk.
    fn get(&self, key: &ChunkKey) -> Option<CachedChunk> {
        let in_memory = self.memory.get(key);
        if in_memory.as_ref().is_some_and(|c| c.verified) {
            return in_memory;
        }
        let Some(data) = key.digest.and_then(|d| self.store.read(&d, key.size)) else {
            return in_memory;
        };
        self.store.hits.fetch_add(1, Ordering::Relaxed);
        let chunk = CachedChunk {
            data: data.into(),
            verified: true,
        };
        self.memory.insert(*key, chunk.clone());
        Some(chunk)
    }

    /// Into memory, and, when checked, to the writer thread for the disk.
    fn insert(&self, key: ChunkKey, chunk: CachedChunk) {
        self.memory.insert(key, chunk.clone());
        // Only checked bytes go to disk, where any blob may find them.
        if let (Some(digest), true) = (key.digest, chunk.verified) {
            self.writer.send(digest, chunk.data);
        }
    }

    /// In memory, or an entry on disk (whose bytes are checked only when
    /// read: a bad one is then dropped and the chunk fetched after all).
    fn contains_verified(&self, key: &ChunkKey) -> bool {
        self.memory.contains_verified(key)
            || key.digest.is_some_and(|d| self.store.path(&d).exists())
    }

    /// What the budget leaves, counting the chunks waiting to be written.
    fn room(&self) -> Option<u64> {
        let used = self.store.used.load(Ordering::Relaxed);
        let pending = self.writer.pending.bytes();
        Some(self.store.max_bytes.saturating_sub(used + pending))
    }
}
