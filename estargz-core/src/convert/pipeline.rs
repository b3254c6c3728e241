//! Parallel compression and ordered assembly.
//!
//! Members are planned in batches; while the pool compresses one batch, the
//! planner reads the next. Assembly is sequential and in plan order, so
//! offsets, digests and bytes are the same whatever the thread count. The
//! digests (diffID, chunk and file digests, blob digest) are in-order too,
//! but run on their own thread behind assembly: on the assembly thread they
//! were the largest serial cost besides planning. A chunk's digest is taken
//! in the same pass as the diffID over the same bytes ([`sha256_lanes`]),
//! which makes it nearly free: hashed apart, by the compressing workers,
//! chunk digests took 3-4% of a conversion's CPU, a fifth of what was not
//! compression.

use super::compress::gzip_member;
use super::memory::MemberData;
use super::plan::{Member, Planner};
use super::{ConvertOptions, ConvertReport, ExternalToc};
use crate::blob_info::BlobInfo;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::footer;
use crate::read::{Index, IndexLimits};
use crate::toc::{self, EntryType, Toc, TocEntry};
use sha2::{Digest as _, Sha256};
use sha256_lanes::update_all;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Mutex;

/// Members planned but not yet assembled, at most: bounds the bookkeeping
/// for layers of tiny files.
const MAX_IN_FLIGHT_MEMBERS: usize = 3 * 4096;
/// Largest TOC JSON a ustar size field can describe (11 octal digits).
const MAX_TOC_JSON: usize = 0o77777777777;

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

/// The way to the hashing thread, and back the bytes it has finished with.
struct HashFeed {
    jobs: SyncSender<HashJob>,
    hashed: Receiver<u64>,
}

/// What the hashing thread computed over the whole payload, in plan order.
struct Hashes {
    diff: sha256_lanes::Sha256,
    blob: Sha256,
    /// `chunkDigest` of every chunk, by index of its entry, with the index
    /// of its file's `reg` entry if that is its only chunk (its `digest` then).
    chunk_digests: Vec<(usize, Option<usize>, Digest)>,
    /// `digest` of every multi-chunk file, by index of its `reg` entry.
    file_digests: Vec<(usize, Digest)>,
}

impl Hashes {
    /// Hashes one member's uncompressed bytes: all into the diffID, and each
    /// chunk into its own digest (and its file's, if the file has several
    /// chunks) in the same pass.
    fn member(&mut self, m: &Member, file: &mut Option<sha256_lanes::Sha256>) {
        let mut at = 0;
        for chunk in &m.chunks {
            let bytes = &m.data[chunk.range.clone()];
            let mut digest = sha256_lanes::Sha256::new();
            // Chunks are planned in order and apart; were one not, it would
            // get a pass of its own rather than a wrong diffID.
            let in_step = chunk.range.start >= at;
            if in_step {
                self.diff.update(&m.data[at..chunk.range.start]);
                at = chunk.range.end;
            }
            let whole = chunk
                .multi
                .then(|| file.get_or_insert_with(sha256_lanes::Sha256::new));
            match (in_step, whole) {
                (true, Some(whole)) => update_all(&mut [&mut self.diff, &mut digest, whole], bytes),
                (true, None) => update_all(&mut [&mut self.diff, &mut digest], bytes),
                (false, Some(whole)) => update_all(&mut [&mut digest, whole], bytes),
                (false, None) => digest.update(bytes),
            }
            if chunk.multi && chunk.last {
                if let Some(done) = file.take() {
                    self.file_digests
                        .push((chunk.file, Digest(done.finalize())));
                }
            }
            let single = (!chunk.multi).then_some(chunk.file);
            self.chunk_digests
                .push((chunk.entry, single, Digest(digest.finalize())));
        }
        self.diff.update(&m.data[at..]);
    }
}

/// Digests every assembled batch in order until the sender hangs up.
/// Reports the uncompressed bytes of each job once hashed, so that what it
/// holds counts against the planner's memory budget.
fn hash_batches(jobs: Receiver<HashJob>, hashed: Sender<u64>) -> Hashes {
    let mut h = Hashes {
        diff: sha256_lanes::Sha256::new(),
        blob: Sha256::new(),
        chunk_digests: Vec::new(),
        file_digests: Vec::new(),
    };
    let mut file = None;
    for job in jobs {
        let mut job_bytes = 0u64;
        for (m, bytes) in job.members.iter().zip(&job.compressed) {
            job_bytes += m.data.len() as u64;
            h.member(m, &mut file);
            h.blob.update(bytes);
        }
        if let Some(MemberData::Shared(input, range)) = job.members.last().map(|m| &m.data) {
            input.release(range.end);
        }
        drop(job);
        // The planner may have finished already; nothing waits for this then.
        let _ = hashed.send(job_bytes);
    }
    h
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
    // Up to three chunks per thread planned but not yet hashed (queued,
    // being compressed, waiting for an earlier member, being hashed) keep the workers fed
    // and memory flat at roughly 3 x threads x chunk size, whatever the layer size.
    let budget = (3 * threads as u64 * opts.chunk_size).max(12 << 20);

    let mut asm = Assembler {
        out: Output {
            inner: out,
            hasher: Sha256::new(),
            written: 0,
        },
        diff: sha256_lanes::Sha256::new(),
        uncompressed: 0,
        members: 0,
        chunks: 0,
    };
    let hashes = std::thread::scope(|s| -> Result<Hashes> {
        // A rendezvous channel: nothing queues between assembly and hashing,
        // and what the hashing thread holds counts against the budget.
        let (to_hasher, jobs) = sync_channel(0);
        let (acks, hashed) = channel();
        let hasher = s.spawn(move || hash_batches(jobs, acks));
        let to_hasher = HashFeed {
            jobs: to_hasher,
            hashed,
        };
        let assembled = assemble_all(&mut planner, &mut asm, opts, threads, budget, to_hasher);
        let hashes = hasher
            .join()
            .map_err(|_| Error::Compress("hashing thread panicked".into()));
        assembled?;
        hashes
    })?;
    asm.out.hasher = hashes.blob;
    asm.diff = hashes.diff;
    fill_digests(
        &mut planner.entries,
        hashes.chunk_digests,
        hashes.file_digests,
    );

    let toc = Toc {
        version: 1,
        entries: std::mem::take(&mut planner.entries),
    };
    // The check needs no TOC bytes, so it runs beside their encoding.
    let (opens, encoded) = std::thread::scope(|s| {
        let check = (!opts.skip_open_check)
            .then(|| s.spawn(|| check_opens(&toc, asm.out.written, &planner.header_offsets)));
        let encoded = encode_toc(&toc, opts.level);
        let opens = check.map_or(Ok(()), |c| {
            c.join()
                .unwrap_or_else(|_| Err(Error::Compress("TOC check panicked".into())))
        });
        (opens, encoded)
    });
    opens?;
    let (json, toc_tar, toc_member) = encoded?;
    let tar_size = asm.uncompressed;
    let (toc_offset, external) = write_toc(&mut asm, external_toc, &toc_tar, &toc_member)?;
    asm.out.inner.flush().map_err(Error::Write)?;

    Ok(ConvertReport {
        blob: BlobInfo {
            digest: Digest::from_hasher(asm.out.hasher),
            size: asm.out.written,
            diff_id: Digest(asm.diff.finalize()),
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

/// Puts the hashing thread's digests into the TOC entries they belong to.
fn fill_digests(
    entries: &mut [TocEntry],
    chunk_digests: Vec<(usize, Option<usize>, Digest)>,
    file_digests: Vec<(usize, Digest)>,
) {
    for (entry, file, digest) in chunk_digests {
        let text = digest.to_string();
        if let Some(e) = file.and_then(|f| entries.get_mut(f)) {
            e.digest.clone_from(&text);
        }
        if let Some(e) = entries.get_mut(entry) {
            e.chunk_digest = text;
        }
    }
    for (file, digest) in file_digests {
        if let Some(e) = entries.get_mut(file) {
            e.digest = digest.to_string();
        }
    }
}

/// Writes the TOC member and the footer: into the blob (the TOC tar then
/// counts in the diffID), or the member to `external_toc` and only the
/// external-TOC footer into the blob. Returns the TOC's offset in the blob
/// (0 when external) and, when external, the TOC blob's digest and size.
fn write_toc<W: Write>(
    asm: &mut Assembler<W>,
    external_toc: Option<&mut dyn Write>,
    toc_tar: &[u8],
    toc_member: &[u8],
) -> Result<(u64, Option<ExternalToc>)> {
    match external_toc {
        None => {
            let toc_offset = asm.out.written;
            asm.out.write(toc_member)?;
            asm.diff.update(toc_tar);
            asm.uncompressed += toc_tar.len() as u64;
            asm.out.write(&footer::encode(toc_offset))?;
            Ok((toc_offset, None))
        }
        Some(toc_out) => {
            // The TOC never enters this blob's diffID: a lossless blob keeps the input's.
            toc_out.write_all(toc_member).map_err(Error::Write)?;
            toc_out.flush().map_err(Error::Write)?;
            asm.out.write(&footer::encode_external())?;
            let toc_blob = ExternalToc {
                bytes: Vec::new(),
                digest: Digest::of(toc_member),
                size: toc_member.len() as u64,
            };
            Ok((0, Some(toc_blob)))
        }
    }
}

/// The TOC's JSON, the tar holding it, and that tar as a gzip member.
fn encode_toc(toc: &Toc, level: u32) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let json = toc.to_json();
    if json.len() > MAX_TOC_JSON {
        return Err(Error::InvalidOption(format!(
            "TOC JSON of {} bytes is too large for a tar entry",
            json.len()
        )));
    }
    let toc_tar = toc::tar_bytes(&json);
    let mut toc_member = Vec::with_capacity(json.len() / 4 + 1024);
    gzip_member(level, &toc_tar, &mut toc_member)?;
    Ok((json, toc_tar, toc_member))
}

/// Fails if readers would refuse `toc`: the index a reader builds (name
/// resolution, hardlinks, parents) is built here with the same code and
/// the reader's default limits (entries, name length, path depth), so that
/// the error names the input entry and its offset instead of surfacing
/// when the blob is opened.
///
/// Only names, types and link targets decide whether an index builds, so
/// the index is built over a skeleton of the TOC with just those: no
/// chunks, digests, owner names or times to copy, which halves the cost.
fn check_opens(toc: &Toc, payload_end: u64, header_offsets: &[u64]) -> Result<()> {
    let mut skeleton = Toc {
        version: toc.version,
        entries: Vec::new(),
    };
    // Skeleton index -> TOC index.
    let mut from = Vec::new();
    for (i, e) in toc.entries.iter().enumerate() {
        if e.kind != EntryType::Chunk {
            let mut bare = TocEntry::new(e.name.clone(), e.kind.clone());
            bare.link_name.clone_from(&e.link_name);
            skeleton.entries.push(bare);
            from.push(i);
        }
    }
    // The skeleton leaves chunks out; the reader counts them.
    let limits = IndexLimits::default();
    if toc.entries.len() > limits.max_entries {
        return Err(Error::LimitExceeded {
            what: "TOC entry count (chunks included)",
            value: toc.entries.len() as u64,
            limit: limits.max_entries as u64,
        });
    }
    let skeleton_limits = IndexLimits {
        max_entries: usize::MAX,
        ..limits
    };
    match Index::build(&skeleton, payload_end, &skeleton_limits) {
        Ok(_) => Ok(()),
        Err(Error::InvalidEntry {
            index,
            entry,
            reason,
        }) => Err(Error::UnreadableEntry {
            entry,
            offset: from
                .get(index)
                .and_then(|&i| header_offsets.get(i))
                .copied()
                .unwrap_or(0),
            reason,
        }),
        Err(e) => Err(e),
    }
}

/// Plans, compresses and assembles every member, handing what was assembled
/// to the hashing thread.
///
/// Workers live for the whole conversion and take batches one at a time
/// from a queue, so a large member never leaves the others idle at a batch
/// boundary, and each keeps its compressor and scratch buffer. This thread
/// plans ahead while fewer than `budget` bytes are planned but not yet
/// hashed, and assembles the results in plan order as they arrive.
fn assemble_all<R: Read + Send, W: Write>(
    planner: &mut Planner<R>,
    asm: &mut Assembler<W>,
    opts: &ConvertOptions,
    threads: usize,
    budget: u64,
    to_hasher: HashFeed,
) -> Result<()> {
    let (work, queue) = channel::<(usize, Vec<Member>)>();
    let queue = Mutex::new(queue);
    let (done, results) = channel::<Done>();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done = done.clone();
            let queue = &queue;
            let level = opts.level;
            s.spawn(move || compress_worker(queue, done, level));
        }
        drop(done);
        // `work` is dropped on the way out, error or not, which lets the workers finish.
        let result = feed_and_assemble(planner, asm, budget, work, &results, &to_hasher);
        drop(results);
        result
    })
}

/// A batch's members and their gzip members (or why one failed).
type Compressed = (Vec<Member>, Vec<Result<Vec<u8>>>);
/// A compressed batch and its index.
type Done = (usize, Compressed);

/// Consecutive members travel to the workers together until they hold this
/// many uncompressed bytes: a layer of small files would otherwise cost a
/// queue hand-off, a wake-up and a result per file (node_modules: 2-9k
/// voluntary context switches per conversion, about 170 batched).
/// Batches never change what is compressed or in which order it is assembled.
const BATCH_BYTES: u64 = 1 << 20;

fn feed_and_assemble<R: Read, W: Write>(
    planner: &mut Planner<R>,
    asm: &mut Assembler<W>,
    budget: u64,
    work: Sender<(usize, Vec<Member>)>,
    results: &Receiver<Done>,
    to_hasher: &HashFeed,
) -> Result<()> {
    let hashing_stopped = || Error::Compress("hashing thread stopped".into());
    let stopped = || Error::Compress("compression threads stopped".into());
    let mut planned = 0usize;
    let mut sent = 0usize;
    // Batches assembled, and the members in them.
    let mut assembled = 0usize;
    let mut members_assembled = 0usize;
    let mut in_flight_bytes = 0u64;
    let mut input_done = false;
    let mut batch: Vec<Member> = Vec::new();
    let mut batch_bytes = 0u64;
    // Batches that arrived before an earlier one.
    let mut waiting: BTreeMap<usize, Compressed> = BTreeMap::new();
    loop {
        // Members count against the budget until hashed, not just assembled.
        while let Ok(n) = to_hasher.hashed.try_recv() {
            in_flight_bytes = in_flight_bytes.saturating_sub(n);
        }
        while !input_done
            && in_flight_bytes < budget
            && planned - members_assembled < MAX_IN_FLIGHT_MEMBERS
        {
            match planner.next_member()? {
                Some(m) => {
                    let len = m.data.len() as u64;
                    in_flight_bytes += len;
                    batch_bytes += len;
                    batch.push(m);
                    planned += 1;
                    if batch_bytes >= BATCH_BYTES {
                        work.send((sent, std::mem::take(&mut batch)))
                            .map_err(|_| stopped())?;
                        sent += 1;
                        batch_bytes = 0;
                    }
                }
                None => input_done = true,
            }
        }
        // Planning paused (budget, member cap or end of input): what is
        // batched must go now, or nothing would ever free the budget.
        if !batch.is_empty() {
            work.send((sent, std::mem::take(&mut batch)))
                .map_err(|_| stopped())?;
            sent += 1;
            batch_bytes = 0;
        }
        if assembled == sent {
            if input_done {
                return Ok(());
            }
            // The budget is all with the hashing thread: wait for it.
            let n = to_hasher.hashed.recv().map_err(|_| hashing_stopped())?;
            in_flight_bytes = in_flight_bytes.saturating_sub(n);
            continue;
        }
        // Block for one result, then take whatever else is already there.
        let (i, compressed) = results.recv().map_err(|_| stopped())?;
        waiting.insert(i, compressed);
        while let Ok((i, compressed)) = results.try_recv() {
            waiting.insert(i, compressed);
        }
        let mut job = HashJob {
            members: Vec::new(),
            compressed: Vec::new(),
        };
        while let Some((ms, cs)) = waiting.remove(&assembled) {
            for (m, c) in ms.into_iter().zip(cs) {
                let bytes = asm.member(&m, c?, &mut planner.entries)?;
                job.members.push(m);
                job.compressed.push(bytes);
                members_assembled += 1;
            }
            assembled += 1;
        }
        if !job.members.is_empty() {
            to_hasher.jobs.send(job).map_err(|_| hashing_stopped())?;
        }
    }
}

/// Compresses batches from the shared queue until it is closed.
fn compress_worker(queue: &Mutex<Receiver<(usize, Vec<Member>)>>, done: Sender<Done>, level: u32) {
    loop {
        let next = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok((i, members)) = next else { return };
        // A panic must still produce a result: the assembler waits for every index.
        let results = members
            .iter()
            .map(|m| {
                std::panic::catch_unwind(AssertUnwindSafe(|| compress_member(m, level)))
                    .unwrap_or_else(|_| {
                        Err(Error::Compress("a compression thread panicked".into()))
                    })
            })
            .collect();
        if done.send((i, (members, results))).is_err() {
            return;
        }
    }
}

fn compress_member(m: &Member, level: u32) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    gzip_member(level, &m.data, &mut bytes)?;
    Ok(bytes)
}

/// The in-order stage: offsets, output.
struct Assembler<W> {
    out: Output<W>,
    /// The diffID hasher; payload bytes are hashed by the hashing thread.
    diff: sha256_lanes::Sha256,
    uncompressed: u64,
    members: usize,
    chunks: usize,
}

impl<W: Write> Assembler<W> {
    /// Assembles the next member; returns its compressed bytes for the
    /// hashing thread, which also takes the chunks' digests.
    fn member(
        &mut self,
        m: &Member,
        bytes: Vec<u8>,
        entries: &mut [toc::TocEntry],
    ) -> Result<Vec<u8>> {
        let offset = self.out.written as i64;
        for chunk in &m.chunks {
            entries[chunk.entry].offset = offset;
            entries[chunk.entry].inner_offset = chunk.range.start as i64;
            self.chunks += 1;
        }
        self.uncompressed += m.data.len() as u64;
        self.out.write_unhashed(&bytes)?;
        self.members += 1;
        Ok(bytes)
    }
}
