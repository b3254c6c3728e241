//! Criterion benchmarks: conversion, the read side (verify, unpack, random
//! access), TOC JSON, the footer, and SHA-256 lanes.
//!
//! Inputs are built once, outside the timed loops, from the deterministic
//! generator in `estargz_benches`. Sample counts and measurement times are
//! kept small so that `cargo bench -p estargz-benches` finishes in a few
//! minutes on a small machine; pass criterion options after `--` for more.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use estargz_core::internals::footer;
use estargz_core::{
    unpack_tar, verify, Blob, Converter, LruChunkCache, OpenOptions, Toc, VerifyOptions,
};
use std::hint::black_box;
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

/// Small files in the benchmark layer.
const SMALL_FILES: usize = 3000;
/// Large files in the benchmark layer.
const LARGE_FILES: usize = 3;
/// Size of each large file.
const LARGE_SIZE: usize = 11 << 19; // 5.5 MiB: two 4 MiB chunks each
/// Seed of the benchmark layer.
const SEED: u64 = 0x5eed_e57a_7672;
/// Entries wanted in the TOC JSON benchmarks.
const TOC_ENTRIES: usize = 20_000;

/// The ~48.5 MiB synthetic layer (an uncompressed tar).
fn layer() -> &'static [u8] {
    static LAYER: OnceLock<Vec<u8>> = OnceLock::new();
    LAYER.get_or_init(|| {
        estargz_benches::synthetic_layer(SMALL_FILES, LARGE_FILES, LARGE_SIZE, SEED)
    })
}

/// The layer converted with the default options (default level, 4 MiB chunks).
fn blob() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| {
        let mut blob = Vec::new();
        Converter::new()
            .convert(layer(), &mut blob)
            .expect("convert the benchmark layer");
        blob
    })
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

fn bench_convert(c: &mut Criterion) {
    let tar = layer();
    let mut group = configure(c, "convert");
    // Each iteration takes around a second: one iteration per sample.
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(tar.len() as u64));
    for level in [6u32, 9] {
        for (label, threads) in [("1", Some(1)), ("all", None)] {
            let options = Converter::builder()
                .level(level)
                .threads(threads)
                .build()
                .unwrap();
            group.bench_with_input(
                BenchmarkId::new(format!("level{level}"), format!("threads={label}")),
                &options,
                |b, options| {
                    b.iter(|| {
                        options
                            .convert(black_box(tar), io::sink())
                            .expect("convert")
                    });
                },
            );
        }
    }
    group.finish();
}

fn bench_read(c: &mut Criterion) {
    let blob = blob();
    let mut group = configure(c, "read");
    group.throughput(Throughput::Bytes(blob.len() as u64));

    let report = verify(blob, &VerifyOptions::default());
    assert!(
        report.is_valid(),
        "benchmark blob invalid: {:?}",
        report.problems
    );
    group.bench_function("verify", |b| {
        b.iter(|| {
            let report = verify(black_box(blob), &VerifyOptions::default());
            assert!(report.is_valid());
            report
        });
    });

    let tar_len = unpack_tar(blob, io::sink()).expect("unpack");
    assert_eq!(tar_len, layer().len() as u64);
    group.bench_function("unpack_tar", |b| {
        b.iter(|| unpack_tar(black_box(blob), io::sink()).expect("unpack"));
    });

    group.bench_function("open_read_all_files", |b| {
        b.iter(|| {
            let blob = Blob::open(black_box(blob), &OpenOptions::default()).expect("open");
            let mut total = 0usize;
            for node in blob.index().files() {
                total += blob.read_file(node.name()).expect("read file").len();
            }
            total
        });
    });
    group.finish();

    // 4 KiB reads inside one 4 MiB chunk: decoded once, then served from
    // the chunk cache (issue #20's goal: under 20 µs each).
    let opened = Blob::open(blob, &OpenOptions::default()).expect("open");
    let large = opened
        .index()
        .files()
        .into_iter()
        .max_by_key(|n| n.size())
        .map(|n| n.name().to_string())
        .expect("a large file");
    let file = opened.open_file(&large).expect("open file");
    let mut group = configure(c, "cached_read");
    group.throughput(Throughput::Bytes(4096));
    let mut buf = vec![0u8; 4096];
    let mut at = 0u64;
    group.bench_function("4KiB_in_a_cached_chunk", |b| {
        b.iter(|| {
            at = (at + 40_961) % (4 << 20);
            file.read_at(at, black_box(&mut buf)).expect("read")
        });
    });
    // The same reads with caching off: every read decodes its chunk.
    let uncached = Blob::open(blob, &OpenOptions::default())
        .expect("open")
        .with_cache(std::sync::Arc::new(LruChunkCache::new(0)));
    let file = uncached.open_file(&large).expect("open file");
    group.bench_function("4KiB_uncached", |b| {
        b.iter(|| {
            at = (at + 40_961) % (4 << 20);
            file.read_at(at, black_box(&mut buf)).expect("read")
        });
    });
    group.finish();
}

/// A TOC of at least [`TOC_ENTRIES`] real entries: the benchmark blob's TOC,
/// repeated under distinct top-level directories.
fn big_toc() -> Toc {
    let opened = Blob::open(blob(), &OpenOptions::default()).expect("open");
    let source = opened.toc();
    let mut toc = Toc {
        version: source.version,
        entries: Vec::with_capacity(TOC_ENTRIES + source.entries.len()),
    };
    let mut copy = 0;
    while toc.entries.len() < TOC_ENTRIES {
        for entry in &source.entries {
            let mut entry = entry.clone();
            entry.name = format!("copy{copy}/{}", entry.name);
            toc.entries.push(entry);
        }
        copy += 1;
    }
    toc
}

fn bench_toc(c: &mut Criterion) {
    let toc = big_toc();
    let json = toc.to_json();
    let parsed: Toc = serde_json::from_slice(&json).expect("parse TOC");
    assert_eq!(parsed, toc);

    let mut group = configure(c, "toc");
    group.throughput(Throughput::Bytes(json.len() as u64));
    let id = format!("{}_entries", toc.entries.len());
    group.bench_function(BenchmarkId::new("encode", &id), |b| {
        b.iter(|| black_box(&toc).to_json());
    });
    group.bench_function(BenchmarkId::new("parse", &id), |b| {
        b.iter(|| serde_json::from_slice::<Toc>(black_box(&json)).expect("parse TOC"));
    });
    group.finish();
}

fn bench_footer(c: &mut Criterion) {
    let blob = blob();
    let size = blob.len() as u64;
    let tail = &blob[blob.len() - footer::FOOTER_SIZE..];
    let toc_offset = footer::parse(tail, size)
        .expect("footer")
        .toc_offset
        .expect("embedded TOC");

    let mut group = configure(c, "footer");
    group.throughput(Throughput::Bytes(footer::FOOTER_SIZE as u64));
    group.bench_function("encode", |b| {
        b.iter(|| footer::encode(black_box(toc_offset)));
    });
    group.bench_function("parse", |b| {
        b.iter(|| footer::parse(black_box(tail), black_box(size)).expect("footer"));
    });
    group.finish();
}

/// One stream through the `sha2` crate against 1-3 hashers fed the same
/// bytes by `sha256_lanes` (diffID, chunk and file digests in `convert`):
/// the lanes pay off when 2 lanes cost about what 1 does.
fn bench_sha256(c: &mut Criterion) {
    use sha2::Digest as _;
    let data = &layer()[..16 << 20];
    let mut group = configure(c, "sha256");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("sha2", |b| {
        b.iter(|| sha2::Sha256::digest(black_box(data)));
    });
    for lanes in 1..=3 {
        group.bench_function(BenchmarkId::new("lanes", lanes), |b| {
            b.iter(|| {
                let mut hashers = vec![sha256_lanes::Sha256::new(); lanes];
                let mut refs: Vec<&mut sha256_lanes::Sha256> = hashers.iter_mut().collect();
                sha256_lanes::update_all(&mut refs, black_box(data));
                hashers
                    .into_iter()
                    .map(|h| h.finalize())
                    .collect::<Vec<_>>()
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_convert,
    bench_read,
    bench_toc,
    bench_footer,
    bench_sha256
);
criterion_main!(benches);
