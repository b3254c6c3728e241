//! The disk chunk cache: checked chunks shared by content digest across
//! blobs, compressions and processes, bad entries dropped unserved, the
//! directory kept within its budget.

use crate::chunk_cache::{blob_of, tar_of, Counting};
use estargz_core::{Blob, Compression, Converter, Digest, DiskChunkCache, OpenOptions};
use estargz_test_support::noise::noise;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn open_cache(dir: &Path, max: u64) -> Arc<DiskChunkCache> {
    Arc::new(DiskChunkCache::open(dir, max, 64 << 20).unwrap())
}

fn open_blob(bytes: &[u8], cache: &Arc<DiskChunkCache>) -> (Blob<Arc<Counting>>, Arc<Counting>) {
    let source = Counting::new(bytes.to_vec());
    let blob = Blob::open(source.clone(), &OpenOptions::default())
        .unwrap()
        .with_cache(cache.clone());
    (blob, source)
}

/// Every entry file under the cache directory.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for fan in std::fs::read_dir(dir.join("sha256")).unwrap() {
        for file in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            out.push(file.unwrap().path());
        }
    }
    out.sort();
    out
}

fn zstd_blob_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    Converter::builder()
        .compression(Compression::ZstdChunked)
        .build()
        .unwrap()
        .convert(&tar_of(files), &mut out)
        .unwrap();
    out
}

#[test]
fn a_chunk_cached_by_one_blob_serves_another_blob_and_a_later_run() {
    let dir = tempfile::tempdir().unwrap();
    let shared = noise(1, 300_000);
    let cache = open_cache(dir.path(), 1 << 30);
    let (a, _) = open_blob(&blob_of(&[("lib/shared", &shared)]), &cache);
    assert_eq!(a.read_file("lib/shared").unwrap(), shared);
    cache.flush();
    assert_eq!(cache.stats().writes, 1);
    assert_eq!(entries(dir.path()).len(), 1);

    // Another layer with the file at another place, compressed otherwise,
    // read through a cache opened afresh (a later mount, another process).
    let other = zstd_blob_of(&[("first", b"first\n"), ("usr/lib/shared", &shared)]);
    let cache = open_cache(dir.path(), 1 << 30);
    assert_eq!(cache.stats().used, shared.len() as u64);
    let (b, source) = open_blob(&other, &cache);
    let before = source.reads();
    assert_eq!(b.read_file("usr/lib/shared").unwrap(), shared);
    assert_eq!(source.reads(), before, "the chunk came from disk");
    assert_eq!((cache.stats().hits, cache.stats().writes), (1, 0));
    assert_eq!(b.read_file("first").unwrap(), b"first\n");
    assert_eq!(source.reads(), before + 1);
}

#[test]
fn a_bad_entry_is_dropped_never_served_and_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = noise(2, 100_000);
    let bytes = blob_of(&[("f", &data)]);
    let cache = open_cache(dir.path(), 1 << 30);
    open_blob(&bytes, &cache).0.read_file("f").unwrap();
    cache.flush();
    let [entry] = &entries(dir.path())[..] else {
        panic!("one entry")
    };
    // A flipped bit, then the right bytes with more after them.
    let flipped = {
        let mut d = data.clone();
        d[500] ^= 1;
        d
    };
    let longer = [&data[..], b"more"].concat();
    for planted in [flipped, longer] {
        std::fs::write(entry, &planted).unwrap();
        let cache = open_cache(dir.path(), 1 << 30);
        let (blob, source) = open_blob(&bytes, &cache);
        let before = source.reads();
        assert_eq!(blob.read_file("f").unwrap(), data);
        assert_eq!(source.reads(), before + 1, "decoded from the blob");
        cache.flush();
        let stats = cache.stats();
        assert_eq!((stats.dropped, stats.hits, stats.writes), (1, 0, 1));
        assert_eq!(std::fs::read(entry).unwrap(), data, "rewritten whole");
    }
    assert!(std::fs::read_dir(dir.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_planted_fifo_or_symlink_is_dropped_without_blocking_or_following() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("outside");
    let (a, b) = (noise(3, 70_000), noise(4, 70_000));
    std::fs::write(&target, &a).unwrap();
    let bytes = blob_of(&[("a", &a), ("b", &b)]);
    let cache = open_cache(dir.path(), 1 << 30);
    let (entry_a, entry_b) = (entry_of(dir.path(), &a), entry_of(dir.path(), &b));
    std::fs::create_dir_all(entry_a.parent().unwrap()).unwrap();
    std::fs::create_dir_all(entry_b.parent().unwrap()).unwrap();
    // A symbolic link to the right bytes, and a FIFO no one writes to.
    std::os::unix::fs::symlink(&target, &entry_a).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &entry_b,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let (blob, source) = open_blob(&bytes, &cache);
    let before = source.reads();
    assert_eq!(blob.read_file("a").unwrap(), a);
    assert_eq!(blob.read_file("b").unwrap(), b);
    assert_eq!(source.reads(), before + 2, "both decoded from the blob");
    cache.flush();
    assert_eq!(cache.stats().dropped, 2);
    for entry in [&entry_a, &entry_b] {
        assert!(entry.symlink_metadata().unwrap().is_file(), "{entry:?}");
    }
    assert_eq!(std::fs::read(&target).unwrap(), a, "the link's target");
}

#[test]
fn unchecked_reads_are_not_written_and_a_checked_one_finds_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open_cache(dir.path(), 1 << 30);
    let (blob, source) = open_blob(&blob_of(&[("f", b"unchecked")]), &cache);
    let mut buf = [0u8; 9];
    blob.open_file("f").unwrap().read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"unchecked");
    cache.flush();
    assert_eq!(cache.stats().writes, 0);
    assert!(entries(dir.path()).is_empty());

    // Another process checks and writes the chunk; a checked read here
    // then takes it from disk rather than decode the unchecked copy again.
    let other = open_cache(dir.path(), 1 << 30);
    let (elsewhere, _) = open_blob(&blob_of(&[("f", b"unchecked")]), &other);
    assert_eq!(elsewhere.read_file("f").unwrap(), b"unchecked");
    other.flush();
    assert_eq!(other.stats().writes, 1);
    let before = source.reads();
    assert_eq!(blob.read_file("f").unwrap(), b"unchecked");
    assert_eq!(source.reads(), before);
    assert_eq!(cache.stats().hits, 1);
}

/// `n` files `f0`, `f1`, … of `size` bytes of noise from `seed` on, each
/// one chunk, and their blob.
fn files_and_blob(n: u64, seed: u64, size: usize) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("f{i}"), noise(seed + i, size)))
        .collect();
    let named: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let bytes = blob_of(&named);
    (files, bytes)
}

/// Eight 64 KiB files and their blob.
fn eight_files() -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    files_and_blob(8, 10, 64 << 10)
}

fn entry_of(dir: &Path, data: &[u8]) -> PathBuf {
    let hex = Digest::of(data).hex();
    dir.join("sha256").join(&hex[..2]).join(hex)
}

#[test]
fn the_directory_stays_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (files, bytes) = eight_files();
    let max = 5 * (64 << 10);
    let cache = open_cache(dir.path(), max);
    let (blob, _) = open_blob(&bytes, &cache);
    for (name, data) in &files {
        assert_eq!(&blob.read_file(name).unwrap(), data);
    }
    cache.flush();
    let on_disk: u64 = entries(dir.path())
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= max, "{on_disk} bytes on disk, budget {max}");
    assert_eq!(cache.stats().used, on_disk);
    assert_eq!(cache.stats().writes, 8);
}

#[test]
fn a_trim_drops_the_entries_used_longest_ago() {
    let dir = tempfile::tempdir().unwrap();
    let (files, bytes) = eight_files();
    let cache = open_cache(dir.path(), 5 * (64 << 10));
    let (blob, _) = open_blob(&bytes, &cache);
    for (name, _) in &files[..5] {
        blob.read_file(name).unwrap();
    }
    cache.flush();
    // Written in turn, a second apart (file times can be coarser than the
    // time the writes took).
    let now = SystemTime::now();
    for (i, (_, data)) in files[..5].iter().enumerate() {
        let entry = std::fs::File::options()
            .write(true)
            .open(entry_of(dir.path(), data))
            .unwrap();
        entry
            .set_modified(now - Duration::from_secs(10 - i as u64))
            .unwrap();
    }
    // f0, the oldest, is used again: a hit refreshes its time.
    let cache = open_cache(dir.path(), 5 * (64 << 10));
    let (blob, source) = open_blob(&bytes, &cache);
    blob.read_file("f0").unwrap();
    assert_eq!(cache.stats().hits, 1);
    // The sixth entry goes over: the two used longest ago, f1 and f2, go.
    blob.read_file("f5").unwrap();
    cache.flush();
    let kept: Vec<bool> = files[..6]
        .iter()
        .map(|(_, data)| entry_of(dir.path(), data).exists())
        .collect();
    assert_eq!(kept, [true, false, false, true, true, true]);
    let before = source.reads();
    assert_eq!(blob.read_file("f3").unwrap(), files[3].1);
    assert_eq!(source.reads(), before);
}

#[test]
fn two_caches_on_one_directory_read_and_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let (files, bytes) = files_and_blob(16, 40, 50_000);
    let caches = [
        open_cache(dir.path(), 1 << 30),
        open_cache(dir.path(), 1 << 30),
    ];
    std::thread::scope(|s| {
        for t in 0..8 {
            let (cache, bytes, files) = (&caches[t % 2], &bytes, &files);
            s.spawn(move || {
                let (blob, _) = open_blob(bytes, cache);
                for i in 0..files.len() {
                    let (name, data) = &files[(i + t) % files.len()];
                    assert_eq!(&blob.read_file(name).unwrap(), data);
                }
            });
        }
    });
    for cache in &caches {
        cache.flush();
    }
    assert_eq!(entries(dir.path()).len(), files.len());
    for cache in &caches {
        assert_eq!(cache.stats().dropped, 0);
    }
}
