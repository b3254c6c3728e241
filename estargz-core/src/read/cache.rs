//! Decoded chunks kept between reads, shared by every reader of a blob.
//!
//! Without a cache, each read decodes its whole chunk again: a FUSE
//! read pattern of 128 KiB pieces decodes a 4 MiB chunk 32 times. The
//! cache keeps decoded chunks under a byte budget, and concurrent readers
//! of one missing chunk wait for a single decode instead of each doing it.

use crate::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Where a decoded chunk sits in its blob: the offset of the compressed
/// member (or frame) holding it and the chunk's offset inside the member's
/// decoded bytes. Unique within one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    /// Blob offset of the member holding the chunk.
    pub member: u64,
    /// The chunk's offset in the member's decoded bytes.
    pub inner_offset: u64,
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
}

/// The default cache: at most `budget` bytes of chunks, the least recently
/// used dropped first.
///
/// ```
/// use estargz_core::{CachedChunk, ChunkCache, ChunkKey, LruChunkCache};
///
/// let cache = LruChunkCache::new(10);
/// let key = |member| ChunkKey { member, inner_offset: 0 };
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
    finished: Mutex<bool>,
    done: Condvar,
}

impl InFlight {
    /// The chunk at `key` from `cache`, or decoded by `decode` (and stored)
    /// when it is missing, or unverified and `verified` is asked for. A
    /// reader that finds the chunk being decoded waits for that decode,
    /// then looks again; when the decode failed, it tries on its own.
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
                flight.wait();
                continue;
            }
            // Whatever happens to the decode, waiters are released.
            let _landing = Landing {
                in_flight: self,
                key,
                flight,
            };
            let decode = decode.take().expect("only a leader decodes, once");
            let chunk = decode()?;
            cache.insert(key, chunk.clone());
            return Ok(chunk);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkKey, Arc<Flight>>> {
        self.decoding.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Flight {
    fn wait(&self) {
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        while !*finished {
            finished = self
                .done
                .wait(finished)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Ends a flight when the leader is done, even by a panic.
struct Landing<'a> {
    in_flight: &'a InFlight,
    key: ChunkKey,
    flight: Arc<Flight>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.key);
        *self
            .flight
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
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
        member: 100,
        inner_offset: 0,
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
    fn chunks_larger_than_the_budget_are_not_kept() {
        let cache = LruChunkCache::new(100);
        cache.insert(KEY, chunk(101, true));
        assert!(cache.get(&KEY).is_none());
        assert_eq!(cache.used(), 0);
    }
}
