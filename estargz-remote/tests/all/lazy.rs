//! Reads the way a lazy-pulling snapshotter makes them, against a real
//! nginx, with requests counted from its access log: redirect targets
//! remembered, readers taking turns, sequential read-ahead, a refreshed
//! token, prefetch, and errors that say whether the blob or the network
//! is at fault.

use crate::layer;
use estargz_core::{
    Blob, ErrorKind, LruChunkCache, OpenOptions, ProblemKind, ReadAt, DEFAULT_CHUNK_SIZE,
};
use estargz_remote::{Challenge, Error, HttpBlob, HttpOptions, UnauthorizedHook};
use estargz_test_support::nginx::{Nginx, TOKEN};
use estargz_test_support::noise::noise;
use std::sync::{Arc, Mutex};

fn tail(tail_size: u64) -> HttpOptions {
    HttpOptions {
        tail_size,
        ..HttpOptions::default()
    }
}

#[test]
fn a_redirect_target_is_asked_directly_until_it_fails() {
    let Some(server) = Nginx::start() else { return };
    let bytes = noise(30, 2 << 20);
    server.serve("blob", &bytes);
    let blob = HttpBlob::open(&server.url("temp/blob"), &tail(4096)).unwrap();
    let target = blob.redirect_target().expect("the target is remembered");
    assert!(target.ends_with("/stored/blob?…"), "{target}");
    for i in 0..5u64 {
        let offset = i * 300_000;
        assert!(blob.read_range(offset, 1000).unwrap() == bytes[offset as usize..][..1000]);
    }
    let logged = server.requests();
    let redirects = logged
        .iter()
        .filter(|r| r.uri.starts_with("/temp/"))
        .count();
    assert_eq!(redirects, 1, "{logged:?}");
    assert_eq!(logged.len(), 7, "{logged:?}");
    assert!(logged[1..]
        .iter()
        .all(|r| r.uri == "/stored/blob?X-Amz-Expires=600" && r.status == 206));

    // The target fails: the URL given is asked again (and redirects to a
    // target that fails too).
    std::fs::remove_file(server.www().join("blob")).unwrap();
    let err = blob.read_range(1_900_000, 10).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let logged = server.requests();
    let uris: Vec<&str> = logged[7..].iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "/stored/blob?X-Amz-Expires=600",
            "/temp/blob",
            "/stored/blob?X-Amz-Expires=600"
        ]
    );
}

#[test]
fn readers_taking_turns_on_adjacent_regions_fetch_each_byte_once() {
    let Some(server) = Nginx::start() else { return };
    let bytes = noise(31, 12 << 20);
    server.serve("blob", &bytes);
    let blob = HttpBlob::open(&server.url("blob"), &tail(64 << 10)).unwrap();
    let region = 4u64 << 20;
    let (a, b) = (1u64 << 20, (1u64 << 20) + region);
    let (_, logged) = server.requests_during(|| {
        for i in 0..40 {
            let at = if i % 2 == 0 { a } else { b };
            let got = blob.read_range(at, region as usize).unwrap();
            assert!(got == bytes[at as usize..][..region as usize]);
        }
    });
    let moved: u64 = logged.iter().map(|r| r.body_bytes).sum();
    // Was 40 requests and 240 MiB: each read of the second region read
    // 8 MiB ahead, and evicted the first.
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(moved, 2 * region);
    assert!(
        moved <= 2 * (2 * region),
        "at most twice the distinct bytes"
    );
}

#[test]
fn a_file_read_in_turns_through_blob_without_a_chunk_cache_fetches_each_chunk_once() {
    let Some(server) = Nginx::start() else { return };
    let data = noise(32, 8 << 20);
    server.serve(
        "layer",
        &layer(&[("big", data.clone())], DEFAULT_CHUNK_SIZE),
    );
    let source = HttpBlob::open(&server.url("layer"), &tail(64 << 10)).unwrap();
    let blob = Blob::open(source, &OpenOptions::default())
        .unwrap()
        .with_cache(Arc::new(LruChunkCache::new(0)));
    let file = blob.open_file("big").unwrap();
    let mut buf = vec![0u8; 4096];
    let (_, logged) = server.requests_during(|| {
        for i in 0..40u64 {
            let at = (i % 2) * (4 << 20) + i * 4096;
            assert_eq!(file.read_at(at, &mut buf).unwrap(), buf.len());
            assert!(buf == data[at as usize..][..4096]);
        }
    });
    let moved: u64 = logged.iter().map(|r| r.body_bytes).sum();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(moved <= (8 << 20) + (64 << 10), "{moved}");
}

#[test]
fn verify_over_http_still_reads_ahead_in_few_large_requests() {
    let Some(server) = Nginx::start() else { return };
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a", noise(33, 9 << 20)),
        ("b", b"small".to_vec()),
        ("c", noise(34, 7 << 20)),
    ];
    let bytes = layer(&files, DEFAULT_CHUNK_SIZE);
    server.serve("layer", &bytes);
    let source = HttpBlob::open(&server.url("layer"), &tail(64 << 10)).unwrap();
    let report = estargz_core::verify(&source, &Default::default());
    assert!(report.is_valid(), "{report:?}");
    let logged = server.requests();
    let moved: u64 = logged.iter().map(|r| r.body_bytes).sum();
    // 16 MiB of payload in requests of 4 MiB or more.
    assert!(logged.len() <= 6, "{} requests: {logged:?}", logged.len());
    assert!(moved <= bytes.len() as u64 + (64 << 10), "{moved}");
}

#[test]
fn a_401_asks_the_hook_for_fresh_headers_and_the_read_goes_on() {
    let Some(server) = Nginx::start() else { return };
    let bytes = noise(35, 1 << 20);
    server.serve("blob", &bytes);
    let url = server.url("challenge/blob");
    let expired = vec![("Authorization".to_string(), "Bearer expired".to_string())];

    // Without a hook, the 401 is the error, its challenge kept.
    let opts = HttpOptions {
        headers: expired.clone(),
        ..tail(4096)
    };
    let err = HttpBlob::open(&url, &opts).unwrap_err();
    let Error::Status {
        status: 401,
        challenge: Some(challenge),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        challenge.param("realm").as_deref(),
        Some("https://auth.example/token")
    );
    assert!(
        err.to_string().contains("WWW-Authenticate: Bearer"),
        "{err}"
    );

    let seen: Arc<Mutex<Vec<Challenge>>> = Arc::default();
    let hook = {
        let seen = seen.clone();
        UnauthorizedHook::new(move |c: &Challenge| {
            seen.lock().unwrap().push(c.clone());
            Some(vec![("Authorization".into(), format!("Bearer {TOKEN}"))])
        })
    };
    let opts = HttpOptions {
        on_unauthorized: Some(hook),
        ..opts
    };
    let blob = HttpBlob::open(&url, &opts).unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(seen.lock().unwrap()[0].scheme(), Some("Bearer"));
    assert!(blob.read_range(1000, 10).unwrap() == bytes[1000..1010]);
    // The token expires while the blob is open.
    blob.set_headers(expired).unwrap();
    assert!(blob.read_range(500_000, 10).unwrap() == bytes[500_000..500_010]);
    assert_eq!(seen.lock().unwrap().len(), 2);
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 206, 206, 401, 206]);
}

#[test]
fn prefetch_is_one_request_and_prefetched_files_read_nothing_more() {
    let Some(server) = Nginx::start() else { return };
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("bin/sh", noise(36, 300_000)),
        ("lib/libc.so", noise(37, 5 << 20)),
        ("etc/passwd", b"root:x:0:0\n".to_vec()),
        (".prefetch.landmark", vec![0x0f]),
        ("usr/share/doc", noise(38, 200_000)),
    ];
    server.serve("layer", &layer(&files, DEFAULT_CHUNK_SIZE));
    let source = HttpBlob::open(&server.url("layer"), &tail(4096)).unwrap();
    let blob = Blob::open(source, &OpenOptions::default()).unwrap();
    let (done, logged) = server.requests_during(|| blob.prefetch().unwrap());
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(done.chunks, 4, "{done:?}"); // libc.so is two chunks
    assert_eq!(done.bytes, 300_000 + (5 << 20) + 11);
    let (_, logged) = server.requests_during(|| {
        for (name, data) in &files[..3] {
            assert!(blob.read_file(name).unwrap() == *data, "{name}");
        }
    });
    assert!(logged.is_empty(), "{logged:?}");
    let (_, logged) = server.requests_during(|| blob.read_file("usr/share/doc").unwrap());
    assert_eq!(logged.len(), 1);

    // HttpBlob's own prefetch: one request, then reads inside it are free.
    let source = HttpBlob::open(&server.url("layer"), &tail(4096)).unwrap();
    let (fetched, logged) = server.requests_during(|| source.prefetch(0..1_000_000).unwrap());
    assert_eq!((fetched, logged.len()), (1_000_000, 1));
    let (_, logged) = server.requests_during(|| source.read_range(400_000, 500_000).unwrap());
    assert!(logged.is_empty());
    // Adjacent and overlapping ranges: one request for what is missing.
    let (parts, logged) = server.requests_during(|| {
        source
            .read_ranges(&[
                2_000_000..2_100_000,
                1_500_000..2_000_000,
                1_900_000..1_950_000,
            ])
            .unwrap()
    });
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].range.as_deref(), Some("bytes=1500000-2099999"));
    assert_eq!(
        parts.iter().map(Vec::len).collect::<Vec<_>>(),
        [100_000, 500_000, 50_000]
    );
}

#[test]
fn a_server_gone_is_an_io_error_and_a_damaged_chunk_is_corruption() {
    let Some(server) = Nginx::start() else { return };
    let files: Vec<(&str, Vec<u8>)> =
        vec![("one", noise(39, 100_000)), ("two", noise(40, 100_000))];
    let bytes = layer(&files, DEFAULT_CHUNK_SIZE);
    server.serve("layer", &bytes);
    let opts = HttpOptions {
        max_retries: 0,
        ..tail(4096)
    };

    // A damaged byte inside the first file's member.
    let mut damaged = bytes.clone();
    damaged[50_000] ^= 0x55;
    server.serve("damaged", &damaged);
    let blob = Blob::open(
        HttpBlob::open(&server.url("damaged"), &opts).unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    let err = blob.read_file("one").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(!err.is_retryable());
    let err = estargz_core::unpack_tar(blob.source(), std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");

    let blob = Blob::open(
        HttpBlob::open(&server.url("layer"), &opts).unwrap(),
        &OpenOptions::default(),
    )
    .unwrap();
    assert!(blob.read_file("one").unwrap() == files[0].1);
    drop(server);
    let err = blob.read_file("two").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.is_retryable(), "{err}");
    let remote = Error::of(&err).expect("the request failure is kept");
    assert!(matches!(remote, Error::Transport { .. }), "{remote:?}");
    let text = err.to_string();
    assert!(
        text.contains("\"two\"") && text.contains("/layer"),
        "{text}"
    );
    // The same through the payload reader that unpack and verify use.
    let err = estargz_core::unpack_tar(blob.source(), std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(
        matches!(Error::of(&err), Some(Error::Transport { .. })),
        "{err:?}"
    );
}

/// A source that stops the server at the first read in `stop_in` (inside
/// the payload: the footer and TOC are read first, at the end), and reads
/// at most 64 KiB a call, so that the payload is fetched in steps and the
/// stop falls in its middle.
struct StopsMidway {
    inner: HttpBlob,
    server: Mutex<Option<Nginx>>,
    stop_in: std::ops::Range<u64>,
}

impl ReadAt for StopsMidway {
    fn size(&self) -> std::io::Result<u64> {
        ReadAt::size(&self.inner)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop_in.contains(&offset) {
            // Dropping the harness stops nginx (by its PID) and waits.
            drop(self.server.lock().unwrap().take());
        }
        let n = buf.len().min(64 << 10);
        self.inner.read_at(offset, &mut buf[..n])
    }
}

#[test]
fn verify_with_the_server_stopped_mid_payload_reports_the_blob_unreadable() {
    let Some(server) = Nginx::start() else { return };
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("one", noise(41, 300_000)),
        ("two", noise(42, 300_000)),
        ("three", noise(43, 300_000)),
    ];
    let bytes = layer(&files, DEFAULT_CHUNK_SIZE);
    server.serve("layer", &bytes);
    let opts = HttpOptions {
        max_retries: 0,
        max_request: 64 << 10,
        ..tail(64 << 10)
    };
    let inner = HttpBlob::open(&server.url("layer"), &opts).unwrap();
    let url = server.url("layer");
    // The whole blob over the same server first: valid.
    let report = estargz_core::verify(&inner, &Default::default());
    assert!(report.is_valid(), "{report:?}");

    let source = StopsMidway {
        inner: HttpBlob::open(&url, &opts).unwrap(),
        server: Mutex::new(Some(server)),
        stop_in: 450_000..800_000,
    };
    let report = estargz_core::verify(&source, &Default::default());
    assert!(source.server.lock().unwrap().is_none(), "never stopped");
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::Unreadable], "{:?}", report.problems);
    let message = report.problems[0].to_string();
    assert!(
        message.contains(&url) && message.contains("could not be read"),
        "{message}"
    );
    assert!(!report.is_valid());
}
