//! Blob info: the numbers an image needs for a layer, computed in one pass.
//!
//! [`BlobInfoWriter`] is a tee for any gzip layer stream: bytes written to it
//! go on to the inner writer and are hashed (compressed digest and size),
//! while a thread of its own decompresses them and hashes the result (diffID
//! and uncompressed size). Nothing is read twice. A zstd layer
//! (zstd:chunked) is recognised by its first bytes and decoded as zstd.

use crate::channel::ChannelReader;
use crate::digest::Digest;
use crate::error::{Error, Result};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// OCI media type of a gzip layer; eStargz blobs are ordinary gzip layers.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Layer annotation carrying the TOC digest.
pub const ANNOTATION_TOC_DIGEST: &str = "containerd.io/snapshot/stargz/toc.digest";
/// Layer annotation carrying the uncompressed size.
pub const ANNOTATION_UNCOMPRESSED_SIZE: &str = "io.containers.estargz.uncompressed-size";

/// What an OCI descriptor and config need to know about a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BlobInfo {
    /// SHA-256 of the blob as stored (the descriptor digest).
    pub digest: Digest,
    /// Blob size in bytes.
    pub size: u64,
    /// SHA-256 of the decompressed blob (the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Length of the decompressed blob.
    pub uncompressed_size: u64,
}

/// The two eStargz layer annotations for a blob with this TOC digest.
pub fn layer_annotations(toc_digest: &Digest, uncompressed_size: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ANNOTATION_TOC_DIGEST.to_string(), toc_digest.to_string()),
        (
            ANNOTATION_UNCOMPRESSED_SIZE.to_string(),
            uncompressed_size.to_string(),
        ),
    ])
}

/// A tee computing [`BlobInfo`] for the gzip (or zstd) stream written through it.
///
/// ```
/// use estargz_core::{BlobInfoWriter, Digest};
/// use std::io::Write;
///
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gz.write_all(b"hello").unwrap();
/// let layer = gz.finish().unwrap();
///
/// let mut tee = BlobInfoWriter::new(Vec::new());
/// tee.write_all(&layer).unwrap();
/// let (info, copy) = tee.finish().unwrap();
/// assert_eq!(copy, layer);
/// assert_eq!(info.digest, Digest::of(&layer));
/// assert_eq!(info.diff_id, Digest::of(b"hello"));
/// assert_eq!(info.uncompressed_size, 5);
/// ```
pub struct BlobInfoWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
    tx: Option<SyncSender<io::Result<Vec<u8>>>>,
    worker: Option<JoinHandle<Result<(Digest, u64)>>>,
}

impl<W: Write> BlobInfoWriter<W> {
    /// Wraps `inner`; starts the decompression thread.
    pub fn new(inner: W) -> Self {
        // A few buffers in flight keep both threads busy while bounding memory.
        let (tx, rx) = sync_channel(8);
        let worker = std::thread::spawn(move || decompress_and_hash(rx));
        BlobInfoWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
            tx: Some(tx),
            worker: Some(worker),
        }
    }

    /// Flushes, waits for the decompression thread and returns the numbers
    /// and the inner writer. Fails if the stream was not valid gzip.
    pub fn finish(mut self) -> Result<(BlobInfo, W)> {
        self.inner.flush().map_err(Error::Write)?;
        drop(self.tx.take());
        let worker = self.worker.take().expect("worker present until finish");
        let (diff_id, uncompressed_size) = worker.join().map_err(|_| Error::Gzip {
            offset: self.size,
            message: "decompression thread failed".into(),
        })??;
        let digest = Digest::from_hasher(std::mem::take(&mut self.hasher));
        let info = BlobInfo {
            digest,
            size: self.size,
            diff_id,
            uncompressed_size,
        };
        let BlobInfoWriter { inner, .. } = self;
        Ok((info, inner))
    }
}

impl<W: Write> Write for BlobInfoWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        if let Some(tx) = &self.tx {
            // A send error means the worker stopped on bad gzip; `finish` reports it.
            if tx.send(Ok(buf[..n].to_vec())).is_err() {
                self.tx = None;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn decompress_and_hash(received: Receiver<io::Result<Vec<u8>>>) -> Result<(Digest, u64)> {
    let mut reader = ChannelReader::new(received);
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Gzip {
                    offset: reader.consumed(),
                    message: e.to_string(),
                })
            }
        }
    }
    let zstd = is_zstd(&head[..got]);
    let mut stream = (&head[..got]).chain(&mut reader);
    let result = if zstd {
        // Every frame in order, skippable ones contributing nothing: the
        // DiffID of a zstd:chunked layer is that of the whole stream, as a
        // full-pull client decompresses it (spec §7.1).
        zstd::stream::read::Decoder::new(&mut stream).and_then(|mut d| {
            d.window_log_max(crate::zstd_chunked::READ_MAX_WINDOW_LOG)?;
            hash_stream(&mut d)
        })
    } else {
        hash_stream(&mut flate2::read::MultiGzDecoder::new(&mut stream))
    };
    match result {
        Ok(_) if reader.consumed() == 0 => Err(Error::Gzip {
            offset: 0,
            message: "empty stream: not a gzip layer".into(),
        }),
        Ok(numbers) => Ok(numbers),
        Err(e) if zstd => Err(Error::ZstdChunked {
            offset: reader.consumed(),
            reason: format!(
                "zstd stream invalid near compressed byte {}: {e}",
                reader.consumed()
            ),
        }),
        Err(e) => Err(Error::Gzip {
            offset: reader.consumed(),
            message: e.to_string(),
        }),
    }
}

/// The stream starts with a zstd frame, data or skippable.
fn is_zstd(head: &[u8]) -> bool {
    use crate::zstd_chunked::{FRAME_MAGIC, SKIPPABLE_MAGIC};
    head.len() == 4
        && (head == FRAME_MAGIC || (head[0] & 0xf0 == 0x50 && head[1..] == SKIPPABLE_MAGIC[1..]))
}

/// SHA-256 and length of everything `r` yields.
pub(crate) fn hash_stream(r: &mut impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((Digest::from_hasher(hasher), total))
}

/// [`BlobInfo`] of a gzip or zstd layer read from `r`.
pub fn blob_info_of(mut r: impl Read) -> Result<BlobInfo> {
    let mut tee = BlobInfoWriter::new(io::sink());
    io::copy(&mut r, &mut tee).map_err(|source| Error::Read {
        offset: tee.size,
        source,
    })?;
    Ok(tee.finish()?.0)
}
