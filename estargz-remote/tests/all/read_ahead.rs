//! Read-ahead that knows what the reader uses, through a `Blob` over
//! `HttpBlob` against a real nginx, requests and their ranges taken from
//! its access log: never past the prefetch region of a reader walking
//! it, never past the file of a reader reading one file.

use crate::layer;
use estargz_core::{Blob, OpenOptions};
use estargz_remote::{HttpBlob, HttpOptions};
use estargz_test_support::nginx::{Nginx, Request};
use estargz_test_support::noise::noise;

/// `[first, last]` of a logged `Range: bytes=FIRST-LAST`.
fn span(r: &Request) -> (u64, u64) {
    let range = r.range.as_deref().expect("a range request");
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .expect("bytes=FIRST-LAST");
    (first.parse().unwrap(), last.parse().unwrap())
}

fn open(server: &Nginx) -> Blob<HttpBlob> {
    let opts = HttpOptions {
        tail_size: 4096,
        ..HttpOptions::default()
    };
    let source = HttpBlob::open(&server.url("layer"), &opts).unwrap();
    Blob::open(source, &OpenOptions::default()).unwrap()
}

#[test]
fn reading_the_prefetch_region_on_demand_fetches_nothing_past_its_end() {
    let Some(server) = Nginx::start() else { return };
    let mut files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("app/f{i:02}"), noise(70 + i, 20_000)))
        .collect();
    let region = files.len();
    files.push((".prefetch.landmark".into(), vec![0x0f]));
    files.push(("rest/a".into(), noise(200, 1 << 20)));
    files.push(("rest/b".into(), noise(201, 1 << 20)));
    server.serve("layer", &layer(&files, 4 << 20));
    let blob = open(&server);
    let end = blob.index().prefetch_end().expect("a prefetch region");
    let (_, logged) = server.requests_during(|| {
        for (name, data) in &files[..region] {
            assert!(blob.read_file(name).unwrap() == *data, "{name}");
        }
    });
    let moved: u64 = logged.iter().map(|r| r.body_bytes).sum();
    for r in &logged {
        assert!(span(r).1 < end, "{r:?} reads past the region's end {end}");
    }
    assert!(moved <= end, "{moved} bytes for a region of {end}");
    // Read-ahead still works: far fewer requests than files.
    assert!(logged.len() <= 10, "{} requests: {logged:?}", logged.len());
}

#[test]
fn a_whole_file_read_stays_within_its_chunks_in_few_requests() {
    let Some(server) = Nginx::start() else { return };
    let files: Vec<(String, Vec<u8>)> = vec![
        ("before".into(), noise(210, 3 << 20)),
        ("big".into(), noise(211, 6 << 20)),
        ("after".into(), noise(212, 3 << 20)),
    ];
    server.serve("layer", &layer(&files, 1 << 20));
    let blob = open(&server);
    let chunks = blob.index().lookup("big").unwrap().chunks().to_vec();
    assert_eq!(chunks.len(), 6);
    let (start, end) = (chunks[0].offset(), chunks[5].next_offset());
    let (data, logged) = server.requests_during(|| blob.read_file("big").unwrap());
    assert!(data == files[1].1);
    for r in &logged {
        let (first, last) = span(r);
        assert!(
            start <= first && last < end,
            "{r:?} outside [{start}, {end})"
        );
    }
    let moved: u64 = logged.iter().map(|r| r.body_bytes).sum();
    assert_eq!(moved, end - start);
    // Two chunks one by one, then the rest of the file at once.
    assert_eq!(logged.len(), 3, "{logged:?}");
}
