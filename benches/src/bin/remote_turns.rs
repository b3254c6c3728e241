//! Requests and bytes of two readers taking turns on adjacent regions of
//! a remote blob (issue #20: "reading two adjacent 4 MiB chunks
//! alternately, 40 reads"), against a local nginx (the test harness's).
//!
//! `cargo run --release -p estargz-benches --bin remote-turns`
//!
//! Two measurements: `HttpBlob` read directly (two 4 MiB ranges), and a
//! file of a converted layer read through `Blob` with the decoded-chunk
//! cache off (4 KiB reads alternating between its two 4 MiB chunks), so
//! that every read reaches the `HttpBlob`.

use estargz_core::{Blob, Converter, LruChunkCache, OpenOptions, ReadAt};
use estargz_remote::{HttpBlob, HttpOptions};
use estargz_test_support::nginx::Nginx;
use estargz_test_support::noise::noise;
use std::sync::Arc;

const READS: u64 = 40;
const REGION: u64 = 4 << 20;

fn main() {
    let Some(server) = Nginx::start() else {
        eprintln!("nginx is needed");
        std::process::exit(1);
    };
    let opts = HttpOptions {
        tail_size: 64 << 10,
        ..HttpOptions::default()
    };

    let bytes = noise(1, 20 << 20);
    server.serve("blob", &bytes);
    let blob = HttpBlob::open(&server.url("blob"), &opts).expect("open");
    let (before, bytes_before) = (blob.requests(), blob.bytes_received());
    for i in 0..READS {
        let at = (1 << 20) + (i % 2) * REGION;
        let got = blob.read_range(at, REGION as usize).expect("read");
        assert!(got == bytes[at as usize..][..REGION as usize]);
    }
    report(
        "HttpBlob, 4 MiB ranges",
        READS * REGION,
        blob.requests() - before,
        blob.bytes_received() - bytes_before,
    );

    let data = noise(2, 2 * REGION as usize);
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_cksum();
    tar.append_data(&mut h, "big", &data[..]).expect("tar");
    let mut layer = Vec::new();
    Converter::new()
        .convert(&tar.into_inner().expect("tar"), &mut layer)
        .expect("convert");
    server.serve("layer", &layer);
    let source = HttpBlob::open(&server.url("layer"), &opts).expect("open");
    let blob = Blob::open(source, &OpenOptions::default())
        .expect("open")
        .with_cache(Arc::new(LruChunkCache::new(0)));
    let (before, bytes_before) = (blob.source().requests(), blob.source().bytes_received());
    let file = blob.open_file("big").expect("file");
    let mut buf = vec![0u8; 4096];
    for i in 0..READS {
        let at = (i % 2) * REGION + i * 4096;
        file.read_at(at, &mut buf).expect("read");
    }
    report(
        "Blob (chunk cache off), 4 KiB reads in two chunks",
        READS * 4096,
        blob.source().requests() - before,
        blob.source().bytes_received() - bytes_before,
    );
}

fn report(what: &str, read: u64, requests: u64, moved: u64) {
    println!(
        "{what}: {READS} reads of {read} bytes in all: {requests} requests, {moved} bytes moved ({:.1} MB)",
        moved as f64 / 1e6
    );
}
