//! Parallel compression and ordered assembly.
//!
//! Members are planned in batches; while the pool compresses one batch (and
//! hashes its chunks in the same pass over the bytes), the planner reads the
//! next. Assembly is sequential and in plan order, so offsets, digests and
//! bytes are the same whatever the thread count.

use super::compress::gzip_member;
use super::plan::{Member, Planner};
use super::{ConvertOptions, ConvertReport, ExternalToc};
use crate::blob_info::BlobInfo;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::footer;
use crate::toc::{self, Toc};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Members per batch at most: bounds the bookkeeping for layers of tiny files.
const MAX_BATCH_MEMBERS: usize = 4096;
/// Largest TOC JSON a ustar size field can describe (11 octal digits).
const MAX_TOC_JSON: usize = 0o77777777777;

/// A compressed member and the digests of the chunks in it.
struct Compressed {
    bytes: Vec<u8>,
    chunk_digests: Vec<Digest>,
}

/// Counts and hashes what goes to the output.
struct Output<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Output<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write_all(bytes).map_err(Error::Write)?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Runs the whole conversion: plan, compress, assemble, finish.
///
/// With `external_toc`, the TOC member goes there instead of into the blob,
/// and the blob ends with the external-TOC footer (spec §2.4).
pub fn run<R: Read + Send, W: Write>(
    mut planner: Planner<R>,
    opts: &ConvertOptions,
    out: W,
    external_toc: Option<&mut dyn Write>,
) -> Result<ConvertReport> {
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Three batches are in flight (being planned, compressed, assembled):
    // one chunk per thread each keeps memory flat at roughly
    // 3 x threads x chunk size, whatever the layer size.
    let batch_bytes = (threads as u64 * opts.chunk_size).max(4 << 20);

    let mut asm = Assembler {
        out: Output {
            inner: out,
            hasher: Sha256::new(),
            written: 0,
        },
        diff: Sha256::new(),
        uncompressed: 0,
        file_hasher: None,
        members: 0,
        chunks: 0,
    };
    // Three stages overlap: workers compress batch N while this thread
    // assembles batch N-1 and plans batch N+1.
    let mut compressed_batch: Option<(Vec<Member>, Vec<Compressed>)> = None;
    let mut next = read_batch(&mut planner, batch_bytes)?;
    while !next.is_empty() {
        let batch = std::mem::take(&mut next);
        let (compressed, following) = std::thread::scope(|s| {
            let worker = s.spawn(|| compress_batch(&batch, opts.level, threads));
            let following = match compressed_batch.take() {
                Some((members, comp)) => asm.batch(&members, comp, &mut planner.entries),
                None => Ok(()),
            }
            .and_then(|()| read_batch(&mut planner, batch_bytes));
            let compressed = worker
                .join()
                .unwrap_or_else(|_| Err(Error::Compress("compression worker panicked".into())));
            (compressed, following)
        });
        compressed_batch = Some((batch, compressed?));
        next = following?;
    }
    if let Some((members, comp)) = compressed_batch {
        asm.batch(&members, comp, &mut planner.entries)?;
    }

    let toc = Toc {
        version: 1,
        entries: std::mem::take(&mut planner.entries),
    };
    let json = toc.to_json();
    if json.len() > MAX_TOC_JSON {
        return Err(Error::InvalidOption(format!(
            "TOC JSON of {} bytes is too large for a tar entry",
            json.len()
        )));
    }
    let toc_tar = toc::tar_bytes(&json);
    let mut toc_member = Vec::with_capacity(json.len() / 4 + 1024);
    gzip_member(opts.level, &toc_tar, &mut toc_member)?;
    let tar_size = asm.uncompressed;
    let (toc_offset, external) = match external_toc {
        None => {
            let toc_offset = asm.out.written;
            asm.out.write(&toc_member)?;
            asm.diff.update(&toc_tar);
            asm.uncompressed += toc_tar.len() as u64;
            asm.out.write(&footer::encode(toc_offset))?;
            (toc_offset, None)
        }
        Some(toc_out) => {
            // The TOC never enters this blob's diffID: a lossless blob keeps the input's.
            toc_out.write_all(&toc_member).map_err(Error::Write)?;
            toc_out.flush().map_err(Error::Write)?;
            asm.out.write(&footer::encode_external())?;
            let toc_blob = ExternalToc {
                digest: Digest::of(&toc_member),
                size: toc_member.len() as u64,
            };
            (0, Some(toc_blob))
        }
    };
    asm.out.inner.flush().map_err(Error::Write)?;

    Ok(ConvertReport {
        blob: BlobInfo {
            digest: Digest::from_hasher(asm.out.hasher),
            size: asm.out.written,
            diff_id: Digest::from_hasher(asm.diff),
            uncompressed_size: asm.uncompressed,
        },
        toc_digest: Digest::of(&json),
        toc_offset,
        toc_entries: toc.entries.len(),
        files: planner.files,
        chunks: asm.chunks,
        members: asm.members,
        tar_size,
        external_toc: external,
        warnings: std::mem::take(&mut planner.warnings),
    })
}

/// Plans members until the batch holds `max_bytes` or the input ends.
fn read_batch<R: Read>(planner: &mut Planner<R>, max_bytes: u64) -> Result<Vec<Member>> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    while bytes < max_bytes && batch.len() < MAX_BATCH_MEMBERS {
        match planner.next_member()? {
            Some(m) => {
                bytes += m.data.len() as u64;
                batch.push(m);
            }
            None => break,
        }
    }
    Ok(batch)
}

/// Compresses a batch on `threads` threads that take members in turn.
///
/// Plain scoped threads rather than a rayon pool: no pool to build, and no
/// workers spinning between batches. Measured against the rayon version
/// with benches/compare.sh (RESULTS at a613862 and 058d73f): no CPU
/// difference beyond run-to-run noise on this 2-vCPU machine.
fn compress_batch(batch: &[Member], level: u32, threads: usize) -> Result<Vec<Compressed>> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Compressed>>>> =
        batch.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(batch.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(member) = batch.get(i) else { break };
                let result = compress_member(member, level);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(Error::Compress("a compression thread failed".into())))
        })
        .collect()
}

fn compress_member(m: &Member, level: u32) -> Result<Compressed> {
    let mut bytes = Vec::with_capacity(m.data.len() / 2 + 64);
    gzip_member(level, &m.data, &mut bytes)?;
    // The codec sized the buffer for the worst case; batches in flight keep only what is used.
    bytes.shrink_to_fit();
    let chunk_digests = m
        .chunks
        .iter()
        .map(|c| Digest::of(&m.data[c.range.clone()]))
        .collect();
    Ok(Compressed {
        bytes,
        chunk_digests,
    })
}

/// The in-order stage: offsets, digests, diffID, output.
struct Assembler<W> {
    out: Output<W>,
    diff: Sha256,
    uncompressed: u64,
    /// Running digest of the multi-chunk file being assembled.
    file_hasher: Option<Sha256>,
    members: usize,
    chunks: usize,
}

impl<W: Write> Assembler<W> {
    fn batch(
        &mut self,
        members: &[Member],
        compressed: Vec<Compressed>,
        entries: &mut [toc::TocEntry],
    ) -> Result<()> {
        for (member, comp) in members.iter().zip(compressed) {
            self.member(member, comp, entries)?;
        }
        Ok(())
    }

    fn member(
        &mut self,
        m: &Member,
        comp: Compressed,
        entries: &mut [toc::TocEntry],
    ) -> Result<()> {
        let offset = self.out.written as i64;
        for (chunk, digest) in m.chunks.iter().zip(comp.chunk_digests) {
            let digest_text = digest.to_string();
            entries[chunk.entry].offset = offset;
            entries[chunk.entry].inner_offset = chunk.range.start as i64;
            if chunk.multi {
                let hasher = self.file_hasher.get_or_insert_with(Sha256::new);
                hasher.update(&m.data[chunk.range.clone()]);
                if chunk.last {
                    let whole = self.file_hasher.take().map(Digest::from_hasher);
                    entries[chunk.file].digest = whole.map(|d| d.to_string()).unwrap_or_default();
                }
            } else {
                entries[chunk.file].digest = digest_text.clone();
            }
            entries[chunk.entry].chunk_digest = digest_text;
            self.chunks += 1;
        }
        self.diff.update(&m.data);
        self.uncompressed += m.data.len() as u64;
        self.out.write(&comp.bytes)?;
        self.members += 1;
        Ok(())
    }
}
