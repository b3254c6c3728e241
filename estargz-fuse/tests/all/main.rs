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

/// A tar of `(name, data)` files and `(name/)` directories.
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        if let Some(dir) = name.strip_suffix('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            tar.append_data(&mut h, dir, &b""[..]).unwrap();
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_cksum();
            tar.append_data(&mut h, name, *data).unwrap();
        }
    }
    tar.into_inner().unwrap()
}

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
