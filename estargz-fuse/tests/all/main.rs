//! estargz-fuse's tests that need no mount: what the view shows, and what
//! fetching puts in the cache at what cost. Mounting itself is tested end
//! to end through `estargz mount` (estargz-cli's `mount` tests).

mod fetch;
mod view;

use estargz_core::{Blob, Converter, LruChunkCache, OpenOptions};
use estargz_fuse::CountedSource;
use std::sync::Arc;

/// A blob on a counted in-memory source.
pub type TestBlob = Blob<CountedSource<Vec<u8>>>;

pub use estargz_test_support::tar_of;

/// `tar` converted with `chunk_size`, opened on a counted in-memory source
/// with an LRU cache of `budget` bytes.
pub fn open(tar: &[u8], chunk_size: u64, budget: u64) -> (Arc<TestBlob>, Arc<LruChunkCache>) {
    let converter = Converter::builder().chunk_size(chunk_size).build().unwrap();
    let mut blob = Vec::new();
    converter.convert(tar, &mut blob).unwrap();
    let cache = Arc::new(LruChunkCache::new(budget));
    let blob = Blob::open(CountedSource::new(blob), &OpenOptions::default())
        .unwrap()
        .with_cache(cache.clone());
    (Arc::new(blob), cache)
}
