//! The decoded-chunk cache behind `FileReader`: a file read in small
//! pieces, or by several threads at once, decodes each chunk once.

use estargz_core::{Blob, Converter, LruChunkCache, OpenOptions, ReadAt};
pub use estargz_test_support::tar_of;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A blob in memory that counts the reads it serves.
pub struct Counting {
    pub blob: Vec<u8>,
    pub reads: AtomicUsize,
}

impl Counting {
    pub fn new(blob: Vec<u8>) -> Arc<Counting> {
        Arc::new(Counting {
            blob,
            reads: AtomicUsize::new(0),
        })
    }

    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl ReadAt for Counting {
    fn size(&self) -> io::Result<u64> {
        Ok(self.blob.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.blob.as_slice().read_at(offset, buf)
    }
}

/// One 4 MiB file in one 4 MiB chunk, opened through a counting source.
fn opened() -> (Blob<Arc<Counting>>, Arc<Counting>, Vec<u8>) {
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_cksum();
    tar.append_data(&mut header, "big", &data[..]).unwrap();
    let mut blob = Vec::new();
    Converter::new()
        .convert(&tar.into_inner().unwrap(), &mut blob)
        .unwrap();
    let source = Counting::new(blob);
    let opened = Blob::open(source.clone(), &OpenOptions::default()).unwrap();
    (opened, source, data)
}

#[test]
fn small_reads_of_one_chunk_decode_it_once() {
    let (blob, source, data) = opened();
    let file = blob.open_file("big").unwrap().verifying(true);
    let before = source.reads.load(Ordering::SeqCst);
    let mut buf = vec![0u8; 128 << 10];
    for (i, piece) in data.chunks(128 << 10).enumerate() {
        let n = file.read_at((i * (128 << 10)) as u64, &mut buf).unwrap();
        assert_eq!(&buf[..n], piece);
    }
    let reads = source.reads.load(Ordering::SeqCst) - before;
    assert_eq!(
        reads, 1,
        "32 reads of one chunk read its member {reads} times"
    );
}

#[test]
fn without_a_cache_every_read_decodes_again() {
    let (blob, source, _) = opened();
    let blob = blob.with_cache(Arc::new(LruChunkCache::new(0)));
    let file = blob.open_file("big").unwrap();
    let before = source.reads.load(Ordering::SeqCst);
    let mut buf = vec![0u8; 128 << 10];
    for i in 0..4u64 {
        file.read_at(i * (128 << 10), &mut buf).unwrap();
    }
    assert_eq!(source.reads.load(Ordering::SeqCst) - before, 4);
}

#[test]
fn concurrent_readers_of_one_chunk_share_a_decode() {
    let (blob, source, data) = opened();
    let before = source.reads.load(Ordering::SeqCst);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (blob, data) = (&blob, &data);
            s.spawn(move || {
                let file = blob.open_file("big").unwrap();
                let mut buf = vec![0u8; 4096];
                let at = t * 500_000;
                let n = file.read_at(at, &mut buf).unwrap();
                assert_eq!(&buf[..n], &data[at as usize..at as usize + n]);
            });
        }
    });
    assert_eq!(source.reads.load(Ordering::SeqCst) - before, 1);
}

#[test]
fn a_verifying_reader_checks_a_chunk_an_unverified_read_cached() {
    let (blob, source, _) = opened();
    let mut buf = [0u8; 16];
    blob.open_file("big").unwrap().read_at(0, &mut buf).unwrap();
    let before = source.reads.load(Ordering::SeqCst);
    let verifying = blob.open_file("big").unwrap().verifying(true);
    verifying.read_at(100, &mut buf).unwrap();
    verifying.read_at(200, &mut buf).unwrap();
    // Decoded (and checked) once more, then served from the cache.
    assert_eq!(source.reads.load(Ordering::SeqCst) - before, 1);
}

/// An eStargz blob of [`tar_of`] `files`.
pub fn blob_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut blob = Vec::new();
    Converter::new().convert(&tar_of(files), &mut blob).unwrap();
    blob
}

#[test]
fn blobs_sharing_a_cache_never_read_each_others_chunks() {
    // Same name, same size: the chunks sit at the same offsets of both
    // blobs, so only the blob's identity tells them apart.
    let cache = Arc::new(LruChunkCache::new(64 << 20));
    let open = |data: &[u8]| {
        Blob::open(blob_of(&[("f", data)]), &OpenOptions::default())
            .unwrap()
            .with_cache(cache.clone())
    };
    let (a, b) = (open(b"hello"), open(b"world"));
    assert_eq!(a.read_file("f").unwrap(), b"hello");
    assert_eq!(b.read_file("f").unwrap(), b"world");
    let mut buf = [0u8; 5];
    b.open_file("f").unwrap().read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"world");
}
