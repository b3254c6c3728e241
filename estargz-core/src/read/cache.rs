//! Decoded chunks kept between reads, shared by every reader of a blob.
//!
//! Without a cache, each read decodes its whole chunk again: a FUSE
//! read pattern of 128 KiB pieces decodes a 4 MiB chunk 32 times. The
//! cache keeps decoded chunks under a byte budget, and concurrent readers
//! of one missing chunk wait for a single decode instead of each doing it.

use crate::digest::Digest;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Which decoded chunk: the blob (by its TOC digest), the offset of the
/// compressed member (or frame) holding the chunk, the chunk's offset
/// inside the member's decoded bytes, its length, and its `chunkDigest`
/// when the TOC gives one. [`Blob::chunk_key`](crate::Blob::chunk_key) makes them.
///
/// Offsets alone are not enough once a cache serves several blobs: the
/// first file of two layers sits at the same offsets of both. Blobs with
/// one TOC digest have one TOC, so their chunks where they are valid are
/// the same bytes. The content digest lets a cache share a chunk between
/// any blobs that hold it ([`DiskChunkCache`](crate::DiskChunkCache)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    /// SHA-256 of the blob's TOC JSON.
    pub toc_digest: Digest,
    /// Blob offset of the member holding the chunk.
    pub member: u64,
    /// The chunk's offset in the member's decoded bytes.
    pub inner_offset: u64,
    /// The chunk's length.
    pub size: u64,
    /// SHA-256 of the chunk's bytes, when the TOC gives it.
    pub digest: Option<Digest>,
}

/// A decoded chunk, and whether it was checked against its `chunkDigest`.
#[derive(Debug, Clone)]
pub struct CachedChunk {
    /// The chunk's bytes.
    pub data: Arc<[u8]>,
    /// Checked against the TOC's `chunkDigest` when decoded.
    pub verified: bool,
}

/// A store of decoded chunks for one blob, shared between threads.
///
/// [`LruChunkCache`] is the default; a snapshotter may supply its own
/// (one shared by several blobs must tell them apart itself, since keys
/// are offsets within a blob).
pub trait ChunkCache: Send + Sync {
    /// The chunk stored under `key`, if any.
    fn get(&self, key: &ChunkKey) -> Option<CachedChunk>;
    /// Stores `chunk` under `key`; the cache may drop entries, this one
    /// included, to stay within its budget.
    fn insert(&self, key: ChunkKey, chunk: CachedChunk);
    /// Whether a verified chunk is stored under `key`, without counting
    /// as a use (a fetch planning what to read asks this of every chunk).
    fn contains_verified(&self, key: &ChunkKey) -> bool {
        self.get(key).is_some_and(|c| c.verified)
    }
    /// Bytes that can still be stored without dropping anything, when
    /// the cache has a budget: a background fetch stops there rather than
    /// evict what readers use.
    fn room(&self) -> Option<u64> {
        None
    }
}

/// The default cache: at most `budget` bytes of chunks, the least recently
/// used dropped first.
///
/// ```
/// use estargz_core::{CachedChunk, ChunkCache, ChunkKey, Digest, LruChunkCache};
///
/// let cache = LruChunkCache::new(10);
/// let toc_digest = Digest::of(b"a TOC");
/// let key = |member| ChunkKey { toc_digest, member, inner_offset: 0, size: 4, digest: None };
/// let chunk = |n: usize| CachedChunk { data: vec![0u8; n].into(), verified: false };
/// cache.insert(key(0), chunk(6));
/// cache.insert(key(1), chunk(4));
/// assert!(cache.get(&key(0)).is_some()); // now the most recently used
/// cache.insert(key(2), chunk(4)); // over budget: key 1 goes
/// assert!(cache.get(&key(1)).is_none());
/// assert_eq!(cache.used(), 10);
/// ```
pub struct LruChunkCache {
    budget: u64,
    state: Mutex<LruState>,
}

struct LruState {
    chunks: lru::LruCache<ChunkKey, CachedChunk>,
    used: u64,
}

/// Budget of the cache a [`Blob`](crate::Blob) starts with: 64 MiB, sixteen
/// chunks of the default size.
pub const DEFAULT_CACHE_BUDGET: u64 = 64 << 20;

impl LruChunkCache {
    /// A cache of at most `budget` bytes.
    pub fn new(budget: u64) -> LruChunkCache {
        LruChunkCache {
            budget,
            state: Mutex::new(LruState {
                chunks: lru::LruCache::unbounded(),
                used: 0,
            }),
        }
    }

    /// Most bytes of chunks held.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of chunks held.
    pub fn used(&self) -> u64 {
        self.lock().used
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruState> {
        // A panic while holding the lock left the map consistent (every
        // update is a single call), so the state is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for LruChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LruChunkCache")
            .field("budget", &self.budget)
            .field("used", &self.used())
            .finish()
    }
}

impl ChunkCache for LruChunkCache {
    fn get(&self, key: &ChunkKey) -> Option<CachedChunk> {
        self.lock().chunks.get(key).cloned()
    }

    fn contains_verified(&self, key: &ChunkKey) -> bool {
        self.lock().chunks.peek(key).is_some_and(|c| c.verified)
    }

    fn room(&self) -> Option<u64> {
        Some(self.budget.saturating_sub(self.used()))
    }

    fn insert(&self, key: ChunkKey, chunk: CachedChunk) {
        let len = chunk.data.len() as u64;
        if len > self.budget {
            return;
        }
        let mut state = self.lock();
        if let Some(old) = state.chunks.put(key, chunk) {
            state.used -= old.data.len() as u64;
        }
        state.used += len;
        while state.used > self.budget {
            match state.chunks.pop_lru() {
                Some((_, dropped)) => state.used -= dropped.data.len() as u64,
                None => break,
            }
        }
    }
}

/// Decodes of missing chunks under way, so that readers of the same chunk
/// wait for one decode.
#[derive(Default, Debug)]
pub(crate) struct InFlight {
    decoding: Mutex<HashMap<ChunkKey, Arc<Flight>>>,
}

#[derive(Default, Debug)]
struct Flight {
    landed: Mutex<Landed>,
    done: Condvar,
}

/// Where a decode is.
#[derive(Default, Debug, Clone)]
enum Landed {
    #[default]
    Running,
    /// Decoded (and cached, if it fit), or given up without a failure to
    /// share: look again.
    Done,
    /// The source failed: every reader that waited gets that failure (the
    /// same read made again by each of them, one after the other, would
    /// each wait out the source's own retries and deadline).
    Failed(SharedIo),
}

/// A source failure shared by the readers of a chunk: the entry, offset
/// and length of [`Error::Io`], and its source error.
#[derive(Debug, Clone)]
struct SharedIo {
    entry: String,
    offset: u64,
    len: u64,
    source: Arc<io::Error>,
}

impl SharedIo {
    /// The failure as each reader gets it: an [`Error::Io`] of the same
    /// kind, whose source error leads to the original.
    fn error(&self) -> Error {
        Error::Io {
            entry: self.entry.clone(),
            offset: self.offset,
            len: self.len,
            source: io::Error::new(self.source.kind(), SharedSource(self.source.clone())),
        }
    }
}

/// The source error of a read failure shared by several readers.
#[derive(Debug)]
struct SharedSource(Arc<io::Error>);

impl std::fmt::Display for SharedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl InFlight {
    /// The chunk at `key` from `cache`, or decoded by `decode` (and stored)
    /// when it is missing, or unverified and `verified` is asked for. A
    /// reader that finds the chunk being decoded waits for that decode,
    /// then looks again; when the source failed, it gets that failure;
    /// when the decode failed otherwise, it tries on its own.
    pub(crate) fn load(
        &self,
        cache: &dyn ChunkCache,
        key: ChunkKey,
        verified: bool,
        decode: impl FnOnce() -> Result<CachedChunk>,
    ) -> Result<CachedChunk> {
        let usable = |c: &CachedChunk| c.verified || !verified;
        let mut decode = Some(decode);
        loop {
            if let Some(hit) = cache.get(&key).filter(usable) {
                return Ok(hit);
            }
            let (flight, leader) = {
                let mut decoding = self.lock();
                match decoding.get(&key) {
                    Some(f) => (f.clone(), false),
                    None => {
                        let f = Arc::new(Flight::default());
                        decoding.insert(key, f.clone());
                        (f, true)
                    }
                }
            };
            if !leader {
                if let Landed::Failed(failure) = flight.wait() {
                    return Err(failure.error());
                }
                continue;
            }
            // Whatever happens to the decode, waiters are released.
            let mut landing = Landing {
                in_flight: self,
                key,
                flight,
                failure: None,
            };
            let decode = decode.take().expect("only a leader decodes, once");
            let chunk = decode().map_err(|e| landing.fail(e))?;
            cache.insert(key, chunk.clone());
            return Ok(chunk);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkKey, Arc<Flight>>> {
        self.decoding.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Flight {
    /// Waits until the decode is over; how it ended.
    fn wait(&self) -> Landed {
        let mut landed = self.landed.lock().unwrap_or_else(PoisonError::into_inner);
        while matches!(*landed, Landed::Running) {
            landed = self
                .done
                .wait(landed)
                .unwrap_or_else(PoisonError::into_inner);
        }
        landed.clone()
    }
}

/// Ends a flight when the leader is done, even by a panic.
struct Landing<'a> {
    in_flight: &'a InFlight,
    key: ChunkKey,
    flight: Arc<Flight>,
    failure: Option<SharedIo>,
}

impl Landing<'_> {
    /// Forgets the flight (readers from now on decode anew); when the
    /// decode failed reading the source and readers wait, `e` is shared
    /// with them and the leader gets it as they do.
    fn fail(&mut self, e: Error) -> Error {
        self.forget();
        // Waiters hold a clone each; the map's is gone.
        let waiters = Arc::strong_count(&self.flight) > 1;
        match e {
            Error::Io {
                entry,
                offset,
                len,
                source,
            } if waiters => {
                let shared = SharedIo {
                    entry,
                    offset,
                    len,
                    source: Arc::new(source),
                };
                let error = shared.error();
                self.failure = Some(shared);
                error
            }
            e => e,
        }
    }

    fn forget(&self) {
        let mut decoding = self.in_flight.lock();
        if decoding
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            decoding.remove(&self.key);
        }
    }
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.forget();
        *self
            .flight
            .landed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = match self.failure.take() {
            Some(failure) => Landed::Failed(failure),
            None => Landed::Done,
        };
        self.flight.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    fn chunk(n: usize, verified: bool) -> CachedChunk {
        CachedChunk {
            data: vec![7u8; n].into(),
            verified,
        }
    }

    const KEY: ChunkKey = ChunkKey {
        toc_digest: Digest([0; 32]),
        member: 100,
        inner_offset: 0,
        size: 7,
        digest: None,
    };

    #[test]
    fn concurrent_readers_of_a_missing_chunk_decode_it_once() {
        let cache = LruChunkCache::new(1 << 20);
        let in_flight = InFlight::default();
        let decodes = AtomicUsize::new(0);
        let start = Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    let got = in_flight
                        .load(&cache, KEY, false, || {
                            decodes.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(chunk(1000, false))
                        })
                        .unwrap();
                    assert_eq!(got.data.len(), 1000);
                });
            }
        });
        assert_eq!(decodes.load(Ordering::SeqCst), 1);
        assert!(in_flight.lock().is_empty());
    }

    #[test]
    fn an_unverified_chunk_is_decoded_again_for_a_verifying_reader() {
        let cache = LruChunkCache::new(1 << 20);
        let in_flight = InFlight::default();
        in_flight
            .load(&cache, KEY, false, || Ok(chunk(10, false)))
            .unwrap();
        let mut decoded = false;
        let got = in_flight
            .load(&cache, KEY, true, || {
                decoded = true;
                Ok(chunk(10, true))
            })
            .unwrap();
        assert!(decoded && got.verified);
        // The verified copy replaced the other, and serves both kinds.
        let again = in_flight
            .load(&cache, KEY, false, || panic!("cached"))
            .unwrap();
        assert!(again.verified);
        assert_eq!(cache.used(), 10);
    }

    #[test]
    fn a_failed_decode_is_not_cached_and_waiters_are_released() {
        let cache = LruChunkCache::new(1 << 20);
        let in_flight = InFlight::default();
        let err = in_flight.load(&cache, KEY, false, || {
            Err(crate::Error::InvalidOption("boom".into()))
        });
        assert!(err.is_err());
        assert!(cache.get(&KEY).is_none());
        assert!(in_flight.lock().is_empty());
        let ok = in_flight.load(&cache, KEY, false, || Ok(chunk(3, false)));
        assert_eq!(ok.unwrap().data.len(), 3);
    }

    #[test]
    fn a_source_failure_reaches_every_waiting_reader_from_one_read() {
        let cache = LruChunkCache::new(1 << 20);
        let in_flight = InFlight::default();
        let reads = AtomicUsize::new(0);
        let start = Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    let err = in_flight
                        .load(&cache, KEY, false, || {
                            reads.fetch_add(1, Ordering::SeqCst);
                            // Until the 7 others wait (the map, this
                            // leader and each waiter hold the flight).
                            for _ in 0..1000 {
                                let holders = in_flight.lock().get(&KEY).map(Arc::strong_count);
                                if holders == Some(9) {
                                    break;
                                }
                                std::thread::sleep(std::time::Duration::from_millis(10));
                            }
                            Err(Error::Io {
                                entry: "f".into(),
                                offset: 100,
                                len: 10,
                                source: io::Error::new(io::ErrorKind::TimedOut, "server gone"),
                            })
                        })
                        .unwrap_err();
                    assert_eq!(err.kind(), crate::ErrorKind::Io);
                    assert_eq!(err.io_error().unwrap().kind(), io::ErrorKind::TimedOut);
                    assert!(err.to_string().contains("server gone"), "{err}");
                });
            }
        });
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(in_flight.lock().is_empty());
        // The failure is not kept: the next reader reads again.
        let ok = in_flight.load(&cache, KEY, false, || Ok(chunk(3, false)));
        assert_eq!(ok.unwrap().data.len(), 3);
    }

    #[test]
    fn chunks_larger_than_the_budget_are_not_kept() {
        let cache = LruChunkCache::new(100);
        cache.insert(KEY, chunk(101, true));
        assert!(cache.get(&KEY).is_none());
        assert_eq!(cache.used(), 0);
    }
}
