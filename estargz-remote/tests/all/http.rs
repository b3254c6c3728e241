//! `HttpBlob` against a real nginx on loopback (the harness is
//! test-support's, shared with the CLI tests): read-ahead, bounded requests, a blob replaced while open,
//! reads from several threads; and against a server that misbehaves on
//! purpose: deadlines, retries.

use crate::misbehaving;
use estargz_test_support::{nginx, noise};

use estargz_core::ReadAt;
use estargz_remote::{Error, HttpBlob, HttpOptions};
use misbehaving::{Reply, Server};
use nginx::Nginx;
use noise::noise;
use std::time::{Duration, Instant};

fn opts(tail: u64, max_request: u64) -> HttpOptions {
    HttpOptions {
        tail_size: tail,
        max_request,
        ..HttpOptions::default()
    }
}

#[test]
fn sequential_reads_double_the_request_size_up_to_the_cap() {
    let Some(server) = Nginx::start() else { return };
    let bytes = noise(3, 20 << 20);
    server.serve("noise", &bytes);
    let tail = 64 << 10;
    let blob = HttpBlob::open(&server.url("noise"), &opts(tail, 4 << 20)).unwrap();
    assert_eq!(blob.size(), bytes.len() as u64);
    assert_eq!(blob.requests(), 1);

    let mut got = Vec::with_capacity(bytes.len());
    let mut buf = vec![0u8; 64 << 10];
    while (got.len() as u64) < blob.size() {
        let n = blob.read_at(got.len() as u64, &mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == bytes, "bytes differ");

    // 64 KiB twice (two adjacent reads are not yet a sequential reader),
    // then 128 KiB, ... 4 MiB, then 4 MiB at a time; the tail is not
    // fetched again.
    let logged = server.requests();
    let lens: Vec<u64> = logged[1..].iter().map(|r| r.body_bytes).collect();
    assert_eq!(
        &lens[..8],
        &[
            64 << 10,
            64 << 10,
            128 << 10,
            256 << 10,
            512 << 10,
            1 << 20,
            2 << 20,
            4 << 20
        ]
    );
    assert!(lens[8..].iter().all(|&l| l <= 4 << 20), "{lens:?}");
    let total: u64 = lens.iter().sum();
    assert_eq!(total, bytes.len() as u64 - tail, "each byte fetched once");
    assert_eq!(blob.requests(), logged.len() as u64);
    assert_eq!(blob.bytes_received(), bytes.len() as u64);
}

#[test]
fn random_reads_fetch_what_is_asked_and_reuse_the_last_response() {
    let Some(server) = Nginx::start() else { return };
    let bytes = noise(4, 1 << 20);
    server.serve("noise", &bytes);
    let blob = HttpBlob::open(&server.url("noise"), &opts(4096, 1 << 20)).unwrap();
    let read = |offset: u64, len: usize| blob.read_range(offset, len).unwrap();

    assert_eq!(read(1000, 500), &bytes[1000..1500]);
    assert_eq!(
        read(1100, 100),
        &bytes[1100..1200],
        "served from the last response"
    );
    assert_eq!(read(500_000, 10), &bytes[500_000..500_010]);
    // Straddling the tail: only the part before it is requested.
    let size = bytes.len();
    assert_eq!(read(size as u64 - 5000, 5000), &bytes[size - 5000..]);
    let ranges: Vec<Option<String>> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(
        ranges,
        [
            "bytes=-4096".to_string(),
            "bytes=1000-1499".into(),
            "bytes=500000-500009".into(),
            format!("bytes={}-{}", size - 5000, size - 4096 - 1),
        ]
        .map(Some)
    );
    // Past the end: nothing, and no request.
    let mut buf = [0u8; 4];
    assert_eq!(blob.read_at(size as u64, &mut buf).unwrap(), 0);
    assert_eq!(blob.requests(), 4);
}

#[test]
fn a_blob_replaced_while_open_is_an_error() {
    let Some(server) = Nginx::start() else { return };
    server.serve("blob", &noise(5, 100_000));
    let url = server.url("blob");
    let blob = HttpBlob::open(&url, &opts(1024, 1 << 20)).unwrap();
    server.serve("blob", &noise(6, 90_000));
    let err = blob.read_range(0, 10).unwrap_err().to_string();
    assert!(err.contains(&url) && err.contains("bytes=0-9"), "{err}");
    assert!(err.contains("90000") && err.contains("100000"), "{err}");
}

#[test]
fn reads_from_several_threads() {
    let Some(server) = Nginx::start() else { return };
    let bytes = noise(7, 2 << 20);
    server.serve("noise", &bytes);
    let blob = HttpBlob::open(&server.url("noise"), &opts(1024, 256 << 10)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (blob, bytes) = (&blob, &bytes);
            s.spawn(move || {
                for i in 0..20u64 {
                    let offset = (t * 7919 + i * 104_729) % (bytes.len() as u64 - 70_000);
                    let len = 1 + ((t + i) * 3331 % 65_536) as usize;
                    let got = blob.read_range(offset, len).unwrap();
                    assert!(got == bytes[offset as usize..offset as usize + len]);
                }
            });
        }
    });
}

#[test]
fn an_empty_blob_has_size_zero() {
    let Some(server) = Nginx::start() else { return };
    server.serve("empty", b"");
    let blob = HttpBlob::open(&server.url("empty"), &HttpOptions::default()).unwrap();
    assert_eq!(blob.size(), 0);
    let mut buf = [0u8; 8];
    assert_eq!(blob.read_at(0, &mut buf).unwrap(), 0);
}

#[test]
fn a_url_nothing_listens_on_is_a_transport_error() {
    // A port that was free a moment ago: connection refused, quickly.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x");
    let err = HttpBlob::open(&url, &HttpOptions::default()).unwrap_err();
    assert!(
        matches!(err, estargz_remote::Error::Transport { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

/// Options for the misbehaving server: a 1 KiB tail, short waits.
fn quick() -> HttpOptions {
    HttpOptions {
        tail_size: 1024,
        retry_backoff: Duration::from_millis(50),
        ..HttpOptions::default()
    }
}

/// `HttpBlob::open` against `server`, with how long it took.
fn open_timed(server: &Server, opts: &HttpOptions) -> (Result<HttpBlob, Error>, Duration) {
    let started = Instant::now();
    let result = HttpBlob::open(&server.url("blob"), opts);
    (result, started.elapsed())
}

#[test]
fn a_trickling_server_fails_by_the_deadline() {
    let opts = HttpOptions {
        request_timeout: Duration::from_secs(2),
        ..quick()
    };
    // Headers and all one byte per 100 ms; then a good tail and a body so
    // paced.
    let headers = Server::start(noise(10, 10_000), |_| Reply::Trickle);
    let body = Server::start(noise(10, 10_000), |n| match n {
        0 => Reply::Good,
        _ => Reply::TrickleBody,
    });
    let (result, took) = open_timed(&headers, &opts);
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(took < Duration::from_secs(20), "{took:?}: {err}");
    let message = err.to_string();
    assert!(
        message.contains(&headers.url("blob")) && message.contains("bytes=-1024"),
        "{message}"
    );
    assert_eq!(headers.requests(), 1, "a deadline is not retried");

    let blob = HttpBlob::open(&body.url("blob"), &opts).unwrap();
    let started = Instant::now();
    let err = blob.read_range(0, 5000).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("bytes=0-4999") && message.contains("no complete response within 2."),
        "{message}"
    );
    assert_eq!(body.requests(), 2);
}

#[test]
fn a_503_is_retried() {
    let bytes = noise(11, 10_000);
    let server = Server::start(bytes.clone(), |n| match n {
        0 | 1 => Reply::Status(503, vec![]),
        _ => Reply::Good,
    });
    let (blob, _) = open_timed(&server, &quick());
    let blob = blob.unwrap();
    assert_eq!(blob.size(), 10_000);
    assert_eq!((server.requests(), blob.requests()), (3, 3));
    assert!(blob.read_range(9_000, 100).unwrap() == bytes[9_000..9_100]);
}

#[test]
fn a_429_waits_as_long_as_retry_after_says() {
    let server = Server::start(noise(12, 10_000), |n| match n {
        0 => Reply::Status(429, vec![("Retry-After", "1".into())]),
        _ => Reply::Good,
    });
    let (blob, took) = open_timed(&server, &quick());
    blob.unwrap();
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert_eq!(server.requests(), 2);

    // A wait past the retry budget is not waited for.
    let server = Server::start(noise(12, 10_000), |_| {
        Reply::Status(503, vec![("Retry-After", "3600".into())])
    });
    let (result, took) = open_timed(&server, &quick());
    let message = result.unwrap_err().to_string();
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(message.contains("asked to wait 3600 s"), "{message}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn a_connection_reset_mid_body_is_retried() {
    let bytes = noise(13, 10_000);
    let server = Server::start(bytes.clone(), |n| match n {
        1 => Reply::ResetMidBody,
        _ => Reply::Good,
    });
    let (blob, _) = open_timed(&server, &quick());
    let blob = blob.unwrap();
    assert!(blob.read_range(100, 8_000).unwrap() == bytes[100..8_100]);
    assert_eq!(server.requests(), 3);
}

#[test]
fn a_server_always_failing_is_given_up_on_after_the_retries() {
    let server = Server::start(noise(14, 10_000), |_| Reply::Status(500, vec![]));
    let opts = HttpOptions {
        max_retries: 3,
        ..quick()
    };
    let (result, _) = open_timed(&server, &opts);
    let err = result.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 4, .. }), "{err}");
    assert_eq!(server.requests(), 4);
    let message = err.to_string();
    for part in [
        server.url("blob").as_str(),
        "bytes=-1024",
        "500 Internal Server Error",
        "4 attempts",
        "3 retries allowed",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }

    // Nor past the retry budget.
    let opts = HttpOptions {
        retry_budget: Duration::ZERO,
        ..quick()
    };
    let message = open_timed(&server, &opts).0.unwrap_err().to_string();
    assert!(
        message.contains("1 attempt:") && message.contains("budget"),
        "{message}"
    );
    assert_eq!(server.requests(), 5);
}

#[test]
fn answers_about_the_blob_are_not_retried() {
    for (reply, expected) in [
        (Reply::Status(404, vec![]), "404 Not Found"),
        (Reply::Status(416, vec![]), "416 Range Not Satisfiable"),
        (Reply::Status(501, vec![]), "501 Not Implemented"),
        (Reply::WrongContentRange, "is not the range requested"),
    ] {
        let code = match &reply {
            Reply::Status(code, _) => Some(*code),
            _ => None,
        };
        let server = Server::start(noise(15, 10_000), move |_| reply.clone());
        let err = open_timed(&server, &quick()).0.unwrap_err();
        assert!(!matches!(err, Error::GaveUp { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(server.requests(), 1, "{err}");
        if let Some(code) = code {
            // The code itself, for callers that act on it.
            assert!(
                matches!(err, Error::Status { status, .. } if status == code),
                "{err:?}"
            );
        }
    }
}
