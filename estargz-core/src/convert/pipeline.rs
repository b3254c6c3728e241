//! Parallel compression and ordered assembly.
//!
//! Members are planned in batches; while the pool compresses one batch (and
//! hashes its chunks in the same pass over the bytes), the planner reads the
//! next. Assembly is sequential and in plan order, so offsets, digests and
//! bytes are the same whatever the thread count. The whole-stream digests
//! (diffID, blob digest, multi-chunk file digests) are in-order too, but run
//! on their own thread behind assembly: on the assembly thread they were the
//! largest serial cost besides planning.

use super::compress::gzip_member;
use super::plan::{Member, Planner};
use super::{ConvertOptions, ConvertReport};
use crate::blob_info::BlobInfo;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::footer;
use crate::toc::{self, Toc};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
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
        self.write_unhashed(bytes)?;
        self.hasher.update(bytes);
        Ok(())
    }

    /// For payload members: the hashing thread digests them afterwards.
    fn write_unhashed(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write_all(bytes).map_err(Error::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// An assembled batch on its way to the hashing thread.
struct HashJob {
    members: Vec<Member>,
    compressed: Vec<Vec<u8>>,
}

/// What the hashing thread computed over the whole payload, in plan order.
struct Hashes {
    diff: Sha256,
    blob: Sha256,
    /// `digest` of every multi-chunk file, by index of its `reg` entry.
    file_digests: Vec<(usize, Digest)>,
}

/// Digests every assembled batch in order until the sender hangs up.
fn hash_batches(jobs: Receiver<HashJob>) -> Hashes {
    let mut h = Hashes {
        diff: Sha256::new(),
        blob: Sha256::new(),
        file_digests: Vec::new(),
    };
    let mut file: Option<Sha256> = None;
    for job in jobs {
        for (m, bytes) in job.members.iter().zip(&job.compressed) {
            for chunk in m.chunks.iter().filter(|c| c.multi) {
                let hasher = file.get_or_insert_with(Sha256::new);
                hasher.update(&m.data[chunk.range.clone()]);
                if chunk.last {
                    if let Some(done) = file.take() {
                        h.file_digests.push((chunk.file, Digest::from_hasher(done)));
                    }
                }
            }
            h.diff.update(&m.data);
            h.blob.update(bytes);
        }
    }
    h
}

/// Runs the whole conversion: plan, compress, assemble, finish.
pub fn run<R: Read + Send, W: Write>(
    mut planner: Planner<R>,
    opts: &ConvertOptions,
    out: W,
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
        members: 0,
        chunks: 0,
    };
    let hashes = std::thread::scope(|s| -> Result<Hashes> {
        // A rendezvous channel: the hashing thread holds one batch at most,
        // so memory grows by one batch, not by however far it falls behind.
        let (to_hasher, jobs) = sync_channel(0);
        let hasher = s.spawn(move || hash_batches(jobs));
        let assembled = assemble_all(
            &mut planner,
            &mut asm,
            opts,
            threads,
            batch_bytes,
            to_hasher,
        );
        let hashes = hasher
            .join()
            .map_err(|_| Error::Compress("hashing thread panicked".into()));
        assembled?;
        hashes
    })?;
    asm.out.hasher = hashes.blob;
    asm.diff = hashes.diff;
    for (file, digest) in hashes.file_digests {
        if let Some(e) = planner.entries.get_mut(file) {
            e.digest = digest.to_string();
        }
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
    let toc_offset = asm.out.written;
    asm.out.write(&toc_member)?;
    asm.diff.update(&toc_tar);
    asm.uncompressed += toc_tar.len() as u64;
    asm.out.write(&footer::encode(toc_offset))?;
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
        tar_size: asm.uncompressed - toc_tar.len() as u64,
        warnings: std::mem::take(&mut planner.warnings),
    })
}

/// Plans, compresses and assembles every member, handing each assembled
/// batch to the hashing thread.
fn assemble_all<R: Read + Send, W: Write>(
    planner: &mut Planner<R>,
    asm: &mut Assembler<W>,
    opts: &ConvertOptions,
    threads: usize,
    batch_bytes: u64,
    to_hasher: SyncSender<HashJob>,
) -> Result<()> {
    let mut assemble = |members: Vec<Member>, comp: Vec<Compressed>, entries: &mut [_]| {
        let compressed = asm.batch(&members, comp, entries)?;
        to_hasher
            .send(HashJob {
                members,
                compressed,
            })
            .map_err(|_| Error::Compress("hashing thread stopped".into()))
    };
    // Three stages overlap: workers compress batch N while this thread
    // assembles batch N-1 and plans batch N+1.
    let mut compressed_batch: Option<(Vec<Member>, Vec<Compressed>)> = None;
    let mut next = read_batch(planner, batch_bytes)?;
    while !next.is_empty() {
        let batch = std::mem::take(&mut next);
        let (compressed, following) = std::thread::scope(|s| {
            let worker = s.spawn(|| compress_batch(&batch, opts.level, threads));
            let following = match compressed_batch.take() {
                Some((members, comp)) => assemble(members, comp, &mut planner.entries),
                None => Ok(()),
            }
            .and_then(|()| read_batch(planner, batch_bytes));
            let compressed = worker
                .join()
                .unwrap_or_else(|_| Err(Error::Compress("compression worker panicked".into())));
            (compressed, following)
        });
        compressed_batch = Some((batch, compressed?));
        next = following?;
    }
    if let Some((members, comp)) = compressed_batch {
        assemble(members, comp, &mut planner.entries)?;
    }
    Ok(())
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

/// The in-order stage: offsets, chunk digests, output.
struct Assembler<W> {
    out: Output<W>,
    /// The diffID hasher; payload bytes are hashed by the hashing thread.
    diff: Sha256,
    uncompressed: u64,
    members: usize,
    chunks: usize,
}

impl<W: Write> Assembler<W> {
    /// Assembles a batch; returns the compressed members for the hashing thread.
    fn batch(
        &mut self,
        members: &[Member],
        compressed: Vec<Compressed>,
        entries: &mut [toc::TocEntry],
    ) -> Result<Vec<Vec<u8>>> {
        members
            .iter()
            .zip(compressed)
            .map(|(member, comp)| self.member(member, comp, entries))
            .collect()
    }

    fn member(
        &mut self,
        m: &Member,
        comp: Compressed,
        entries: &mut [toc::TocEntry],
    ) -> Result<Vec<u8>> {
        let offset = self.out.written as i64;
        for (chunk, digest) in m.chunks.iter().zip(comp.chunk_digests) {
            let digest_text = digest.to_string();
            entries[chunk.entry].offset = offset;
            // A multi-chunk file's own digest comes from the hashing thread.
            if !chunk.multi {
                entries[chunk.file].digest = digest_text.clone();
            }
            entries[chunk.entry].chunk_digest = digest_text;
            self.chunks += 1;
        }
        self.uncompressed += m.data.len() as u64;
        self.out.write_unhashed(&comp.bytes)?;
        self.members += 1;
        Ok(comp.bytes)
    }
}
