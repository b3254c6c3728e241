//! The digests: diffID, chunk and file digests and the blob digest, taken
//! in plan order on a thread of their own behind assembly (on the
//! assembly thread they were the largest serial cost besides planning),
//! then filled into the TOC. A chunk's digest is taken in the same pass as
//! the diffID over the same bytes ([`sha256_lanes`]), which makes it nearly
//! free: hashed apart, by the compressing workers, chunk digests took 3-4%
//! of a conversion's CPU, a fifth of what was not compression.

use super::memory::MemberData;
use super::plan::Member;
use crate::digest::Digest;
use crate::toc::TocEntry;
use crate::zstd_chunked::tar_split::Crc64;
use sha2::{Digest as _, Sha256};
use sha256_lanes::update_all;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

/// An assembled batch on its way to the hashing thread.
pub(super) struct HashJob {
    pub(super) members: Vec<Member>,
    pub(super) compressed: Vec<Vec<u8>>,
}

/// The way to the hashing thread, and back the bytes it has finished with.
pub(super) struct HashFeed {
    pub(super) jobs: SyncSender<HashJob>,
    pub(super) hashed: Receiver<u64>,
}

/// What the hashing thread computed over the whole payload, in plan order.
pub(super) struct Hashes {
    pub(super) diff: sha256_lanes::Sha256,
    pub(super) blob: Sha256,
    /// `chunkDigest` of every chunk, by index of its entry, with the index
    /// of its file's `reg` entry if that is its only chunk (its `digest` then).
    pub(super) chunk_digests: Vec<(usize, Option<usize>, Digest)>,
    /// `digest` of every multi-chunk file, by index of its `reg` entry.
    pub(super) file_digests: Vec<(usize, Digest)>,
    /// Containers dialect only: the CRC-64 tar-split records of every
    /// non-empty regular file, by index of its `reg` entry, and the one
    /// being taken.
    pub(super) crcs: Option<(Vec<(usize, Crc64)>, Crc64)>,
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
            if let Some((done, running)) = &mut self.crcs {
                running.update(bytes);
                if chunk.last {
                    done.push((chunk.file, std::mem::take(running)));
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
/// holds counts against the planner's memory budget. With `crc`, also each
/// file's CRC-64 (for tar-split).
pub(super) fn hash_batches(jobs: Receiver<HashJob>, hashed: Sender<u64>, crc: bool) -> Hashes {
    let mut h = Hashes {
        diff: sha256_lanes::Sha256::new(),
        blob: Sha256::new(),
        chunk_digests: Vec::new(),
        file_digests: Vec::new(),
        crcs: crc.then(|| (Vec::new(), Crc64::default())),
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

/// Puts the hashing thread's digests into the TOC entries they belong to.
pub(super) fn fill_digests(
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
