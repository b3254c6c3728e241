//! Readers missing the same bytes at once, against a real nginx, requests
//! counted from its access log: one request for all of them, its bytes
//! or its failure handed to each.

use estargz_core::ReadAt;
use estargz_remote::{HttpBlob, HttpOptions};
use estargz_test_support::nginx::{Nginx, Request};
use estargz_test_support::noise::noise;
use std::sync::Barrier;
use std::time::Duration;

const READERS: usize = 8;

/// `READERS` threads reading `[offset, offset + len)` of `blob` at once.
fn read_at_once(blob: &HttpBlob, offset: u64, len: usize) -> Vec<std::io::Result<Vec<u8>>> {
    let start = Barrier::new(READERS);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    blob.read_range(offset, len)
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// 2 MiB of noise from `seed` served by nginx at 256 KiB/s, opened with
/// nothing kept between reads (so a second request would be seen).
fn slow_blob(seed: u64) -> Option<(Nginx, Vec<u8>, HttpBlob)> {
    let server = Nginx::start()?;
    let bytes = noise(seed, 2 << 20);
    server.serve("blob", &bytes);
    let opts = HttpOptions {
        tail_size: 4096,
        cache_size: 0,
        ..HttpOptions::default()
    };
    let blob = HttpBlob::open(&server.url("slow/blob"), &opts).unwrap();
    Some((server, bytes, blob))
}

fn of_range<'a>(logged: &'a [Request], range: &str) -> Vec<&'a Request> {
    logged
        .iter()
        .filter(|r| r.range.as_deref() == Some(range))
        .collect()
}

#[test]
fn readers_missing_the_same_range_at_once_wait_for_one_request() {
    // 512 KiB at 256 KiB/s: the readers find the request under way.
    let Some((server, bytes, blob)) = slow_blob(60) else {
        return;
    };
    let (results, logged) = server.requests_during(|| read_at_once(&blob, 1000, 512 << 10));
    for r in results {
        assert!(r.unwrap() == bytes[1000..][..512 << 10]);
    }
    assert_eq!(logged.len(), 1, "{logged:?}");
    let range = format!("bytes=1000-{}", 1000 + (512 << 10) - 1);
    assert_eq!(of_range(&logged, &range).len(), 1, "{logged:?}");
    assert_eq!(blob.requests(), 2); // the tail, and the one read
}

#[test]
fn a_failed_request_reaches_every_reader_waiting_for_it() {
    let Some(server) = Nginx::start() else { return };
    server.serve("blob", &noise(61, 1 << 20));
    // /flaky/ answers 503 to reads: the request and its two retries take
    // 3 s (waits of 1 and 2 s), long enough for every reader to come.
    let opts = HttpOptions {
        tail_size: 4096,
        cache_size: 0,
        max_retries: 2,
        retry_backoff: Duration::from_secs(1),
        ..HttpOptions::default()
    };
    let blob = HttpBlob::open(&server.url("flaky/blob"), &opts).unwrap();
    let (results, logged) = server.requests_during(|| read_at_once(&blob, 0, 100_000));
    for r in results {
        let e = r.unwrap_err();
        let message = e.to_string();
        assert!(message.contains("HTTP 503"), "{message}");
        assert!(message.contains("gave up after 3 attempts"), "{message}");
        assert_eq!(e.kind(), std::io::ErrorKind::Other, "{e:?}");
        // As a Blob reports it: the request's error is found in it.
        let core = as_blob_error(e);
        let found = estargz_remote::Error::of(&core);
        assert!(
            matches!(
                found,
                Some(estargz_remote::Error::GaveUp { attempts: 3, .. })
            ),
            "{found:?}"
        );
    }
    // One request and its retries, for all the readers.
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert_eq!(of_range(&logged, "bytes=0-99999").len(), 3, "{logged:?}");
    // Nothing is left waiting: the next read asks again, and fails alike.
    let (result, logged) = server.requests_during(|| blob.read_range(0, 10));
    assert!(result.is_err());
    assert_eq!(logged.len(), 3, "{logged:?}");
}

#[test]
fn readers_of_other_bytes_do_not_wait_and_error_of_finds_a_shared_failure() {
    let Some((server, bytes, blob)) = slow_blob(62) else {
        return;
    };
    // Two readers of disjoint ranges: two requests.
    let (_, logged) = server.requests_during(|| {
        std::thread::scope(|s| {
            let a = s.spawn(|| blob.read_range(0, 256 << 10).unwrap());
            let b = s.spawn(|| blob.read_range(1 << 20, 256 << 10).unwrap());
            assert!(a.join().unwrap() == bytes[..256 << 10]);
            assert!(b.join().unwrap() == bytes[1 << 20..][..256 << 10]);
        })
    });
    assert_eq!(logged.len(), 2, "{logged:?}");
    // A shared failure still names the request's error.
    std::fs::remove_file(server.www().join("blob")).unwrap();
    for r in read_at_once(&blob, 5000, 100) {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        let core = as_blob_error(e);
        let found = estargz_remote::Error::of(&core);
        assert!(
            matches!(
                found,
                Some(estargz_remote::Error::Status { status: 404, .. })
            ),
            "{found:?}"
        );
    }
}

/// `e` as a [`estargz_core::Blob`] read returns it.
fn as_blob_error(e: std::io::Error) -> estargz_core::Error {
    estargz_core::Error::Io {
        entry: "f".into(),
        offset: 0,
        len: 1,
        source: e,
    }
}
