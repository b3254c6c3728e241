//! `HttpBlob` against a real nginx on loopback (the harness is the CLI
//! tests' one): read-ahead, bounded requests, a blob replaced while open,
//! reads from several threads.

#[path = "../../estargz-cli/tests/common/nginx.rs"]
#[allow(dead_code)] // the CLI tests use more of it
mod nginx;
#[path = "../../estargz-cli/tests/common/noise.rs"]
mod noise;

use estargz_core::read::ReadAt;
use estargz_remote::{HttpBlob, HttpOptions};
use nginx::Nginx;
use noise::noise;

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

    // 64 KiB, 128 KiB, ... 4 MiB, then 4 MiB at a time; the tail is not
    // fetched again.
    let logged = server.requests();
    let lens: Vec<u64> = logged[1..].iter().map(|r| r.body_bytes).collect();
    assert_eq!(
        &lens[..7],
        &[
            64 << 10,
            128 << 10,
            256 << 10,
            512 << 10,
            1 << 20,
            2 << 20,
            4 << 20
        ]
    );
    assert!(lens[7..].iter().all(|&l| l <= 4 << 20), "{lens:?}");
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
