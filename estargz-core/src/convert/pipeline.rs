//! The driver: plan, compress in parallel, assemble in order.
//!
//! Members are planned in batches; while the pool compresses one batch, the
//! planner reads the next. Assembly ([`super::assemble`]) is sequential and
//! in plan order, so offsets, digests and bytes are the same whatever the
//! thread count. The digests ([`super::digests`]) are in plan order too, on
//! a thread of their own behind assembly.

use super::assemble::{finish, Assembler};
use super::compress::{member, Compression};
use super::digests::{fill_digests, hash_batches, HashFeed, HashJob, Hashes};
use super::plan::{Member, Planner};
use super::{ConvertOptions, ConvertReport};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::Mutex;

/// Members planned but not yet assembled, at most: bounds the bookkeeping
/// for layers of tiny files.
const MAX_IN_FLIGHT_MEMBERS: usize = 3 * 4096;

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

    let mut asm = Assembler::new(out);
    let hashes = std::thread::scope(|s| -> Result<Hashes> {
        // A rendezvous channel: nothing queues between assembly and hashing,
        // and what the hashing thread holds counts against the budget.
        let (to_hasher, jobs) = sync_channel(0);
        let (acks, hashed) = channel();
        let crc = opts.containers();
        let hasher = s.spawn(move || hash_batches(jobs, acks, crc));
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
    let Hashes {
        diff,
        blob,
        chunk_digests,
        file_digests,
        crcs,
    } = hashes;
    asm.resume_hashing(blob, diff);
    fill_digests(&mut planner.entries, chunk_digests, file_digests);
    let crcs = crcs.map(|(done, _)| done).unwrap_or_default();
    finish(asm, &mut planner, opts, external_toc, &crcs)
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
            let codec = (opts.compression, opts.level);
            s.spawn(move || compress_worker(queue, done, codec));
        }
        drop(done);
        // `work` is dropped on the way out, error or not, which lets the workers finish.
        let result = feed_and_assemble(planner, asm, budget, work, &results, &to_hasher);
        drop(results);
        result
    })
}

/// A batch's members and their gzip members or zstd frames (or why one failed).
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
fn compress_worker(
    queue: &Mutex<Receiver<(usize, Vec<Member>)>>,
    done: Sender<Done>,
    codec: (Compression, u32),
) {
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
                std::panic::catch_unwind(AssertUnwindSafe(|| compress_member(m, codec)))
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

fn compress_member(m: &Member, (compression, level): (Compression, u32)) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    member(compression, level, &m.data, &mut bytes)?;
    Ok(bytes)
}
