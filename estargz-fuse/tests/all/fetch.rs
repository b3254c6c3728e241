//! Fetching ahead: one read per window, every chunk checked into the
//! cache, and the fetch stops rather than evict what readers use.

use crate::{open, tar_of, TestBlob};
use estargz_core::prioritize::{reorder, PrioritizeOptions};
use estargz_fuse::{prefetch_region, Fetch, FetchReport, Stopped, BACKGROUND_WINDOW, MAX_WINDOW};
use estargz_test_support::noise::noise;
use std::io::Read;
use std::sync::atomic::AtomicBool;

/// A fetch of the whole payload in the largest windows, `cancelled`
/// from the start or not.
fn fetch_all(blob: &TestBlob, cancelled: bool) -> FetchReport {
    let cancel = AtomicBool::new(cancelled);
    let fetch = Fetch {
        window: MAX_WINDOW,
        cancel: &cancel,
    };
    fetch.run(blob, 0, blob.payload_end())
}

/// Two prioritized files, then the rest, reordered with the landmark.
fn prioritized_layer() -> Vec<u8> {
    let big = noise(1, 3 << 20);
    let tar = tar_of(&[
        ("a/first", &noise(2, 100_000)),
        ("a/second", b"second\n"),
        ("b/big", &big),
        ("b/small", b"small\n"),
    ]);
    let list = ["a/second".to_string(), "b/small".to_string()];
    let mut reordered = reorder(&tar[..], Some(&list), &PrioritizeOptions::default()).unwrap();
    let mut out = Vec::new();
    reordered.read_to_end(&mut out).unwrap();
    out
}

fn cached(blob: &crate::TestBlob, path: &str) -> bool {
    let node = blob.index().lookup(path).unwrap();
    node.chunks()
        .iter()
        .all(|c| blob.cache().contains_verified(&blob.chunk_key(c)))
}

#[test]
fn the_prefetch_region_is_one_read_and_its_files_then_cost_none() {
    let (blob, _) = open(&prioritized_layer(), 256 << 10, 64 << 20);
    let cancel = AtomicBool::new(false);
    let fetch = Fetch {
        window: MAX_WINDOW,
        cancel: &cancel,
    };
    let (start, end) = prefetch_region(&*blob).expect("a landmark");
    let before = blob.source().counters().stats();
    let report = fetch.run(&blob, start, end);
    assert_eq!(report.stopped, None);
    assert_eq!((report.reads, report.chunks), (1, 2), "{report:?}");
    let after = blob.source().counters().stats();
    assert_eq!(after.source_reads - before.source_reads, 1);
    assert!(cached(&blob, "a/second") && cached(&blob, "b/small"));
    assert!(!cached(&blob, "b/big"));
    // Served from the cache: no read of the source.
    assert_eq!(blob.read_file("b/small").unwrap(), b"small\n");
    assert_eq!(
        blob.source().counters().stats().source_reads,
        after.source_reads
    );

    // The rest, in windows; what is cached already is not fetched again.
    let rest = Fetch {
        window: BACKGROUND_WINDOW,
        ..fetch
    };
    let report = rest.run(&blob, 0, blob.payload_end());
    assert_eq!(report.stopped, None);
    assert!(report.reads >= 1 && report.chunks >= 12, "{report:?}");
    assert!(cached(&blob, "b/big") && cached(&blob, "a/first"));
    let again = rest.run(&blob, 0, blob.payload_end());
    assert_eq!((again.reads, again.chunks), (0, 0));
}

#[test]
fn a_fetch_stops_when_the_cache_is_full_or_when_cancelled() {
    let (blob, cache) = open(&prioritized_layer(), 256 << 10, 1 << 20);
    let cancel = AtomicBool::new(false);
    let fetch = Fetch {
        window: 512 << 10,
        cancel: &cancel,
    };
    let report = fetch.run(&blob, 0, blob.payload_end());
    assert_eq!(report.stopped, Some(Stopped::CacheFull), "{report:?}");
    // Filled up to the budget first: 256 KiB chunks, four fit at most.
    assert!(report.chunks >= 3, "{report:?}");
    assert!(
        cache.used() <= 1 << 20 && cache.used() > 512 << 10,
        "{}",
        cache.used()
    );

    let (blob, _) = open(&prioritized_layer(), 256 << 10, 64 << 20);
    let report = fetch_all(&blob, true);
    assert_eq!(
        (report.stopped, report.reads),
        (Some(Stopped::Cancelled), 0)
    );
}

#[test]
fn a_corrupt_window_stops_the_fetch_and_caches_nothing_bad() {
    let (good, _) = open(&prioritized_layer(), 256 << 10, 64 << 20);
    let mut bytes = good.source().inner().clone();
    let node = good.index().lookup("b/big").unwrap();
    let c = &node.chunks()[1];
    bytes[((c.offset() + c.next_offset()) / 2) as usize] ^= 0x55;
    let cache = std::sync::Arc::new(estargz_core::LruChunkCache::new(64 << 20));
    let blob = estargz_core::Blob::open(
        estargz_fuse::CountedSource::new(bytes),
        &estargz_core::OpenOptions::default(),
    )
    .unwrap()
    .with_cache(cache.clone());
    let report = fetch_all(&blob, false);
    assert!(
        matches!(report.stopped, Some(Stopped::Failed(ref why)) if why.contains("b/big")),
        "{report:?}"
    );
    assert!(!cached(&blob, "b/big"));
    assert!(blob.read_file("b/big").is_err());
}
