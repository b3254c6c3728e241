//! The containers/storage dialect of zstd:chunked (docs/zstd-chunked-format.md
//! §4, §7.2): what the planner records beside the eStargz TOC entries so
//! that the containers TOC and the tar-split stream can be written.
//!
//! The planner itself cuts the frames (each chunk alone in its frame) and
//! the hashing thread adds each file's CRC-64; this keeps the tar-split
//! stream as it grows, the times as the containers TOC writes them
//! (nanoseconds, UTC), and refuses, with the entry and its offset, what
//! tar-split or containers/storage's check of the TOC against it cannot
//! hold.

use crate::error::{Error, Result};
use crate::tar::{Entry, EntryKind, BLOCK};
use crate::toc::{EntryType, TocEntry};
use crate::zstd_chunked::tar_split::{Crc64, TarSplitWriter};
use crate::zstd_chunked::toc::{format_rfc3339_nano, ContainersEntry, ContainersToc};
use base64::Engine as _;

/// The format named in refusals.
const FORMAT: &str = "containers dialect of zstd:chunked";

/// Per non-chunk entry, what the eStargz [`TocEntry`] does not keep.
#[derive(Debug)]
struct Meta {
    modtime: String,
    accesstime: String,
    changetime: String,
    dev_major: i64,
    dev_minor: i64,
}

/// The containers-dialect side of a plan.
#[derive(Debug)]
pub struct ContainersPlan {
    split: TarSplitWriter,
    /// Where each non-empty regular file's CRC-64 goes in `split`, by the
    /// index of its `reg` entry.
    crc_slots: Vec<(usize, usize)>,
    /// One per non-chunk entry, in TOC order.
    meta: Vec<Meta>,
    /// The bytes from the last entry's padding to the first end-of-archive block.
    end: Option<Vec<u8>>,
    /// Everything after that block.
    trailing: Vec<u8>,
    /// Entries whose chunk is a run of zeros (`chunkType: "zeros"`), in
    /// increasing order.
    zeros: Vec<usize>,
}

fn refuse(entry: &str, offset: u64, reason: String) -> Error {
    Error::UnsupportedInDialect {
        entry: entry.to_string(),
        offset,
        reason,
        format: FORMAT,
    }
}

/// The time as the containers TOC writes it, or why it cannot.
fn time(e: &Entry, what: &str, t: Option<(i64, u32)>) -> Result<String> {
    t.map_or(Ok(String::new()), |(s, n)| {
        format_rfc3339_nano(s, n)
            .map_err(|r| refuse(&e.name, e.header_offset, format!("{what}: {r}")))
    })
}

impl ContainersPlan {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        ContainersPlan {
            split: TarSplitWriter::new(),
            crc_slots: Vec::new(),
            meta: Vec::new(),
            end: None,
            trailing: Vec::new(),
            zeros: Vec::new(),
        }
    }

    /// Refuses the PAX global header at `offset`: tar-split and
    /// containers/storage's TOC check fail on one (spec §8 #14).
    pub fn global_header(name: &str, offset: u64) -> Error {
        refuse(
            name,
            offset,
            "a PAX global header (typeflag g): containers/storage cannot describe it in the TOC"
                .into(),
        )
    }

    /// A name, link name or xattr key that is not UTF-8, which the
    /// scanner (strict in this dialect) reported: the TOC would hold
    /// U+FFFD where tar-split holds the bytes, and containers/storage's
    /// check of one against the other fails (spec §8 #15).
    pub fn non_utf8(error: Error) -> Error {
        match error {
            Error::NonUtf8 {
                entry,
                offset,
                field,
            } => refuse(&entry, offset, format!("its {field} is not valid UTF-8")),
            other => other,
        }
    }

    /// Records entry `index` (its header bytes, tar-split line and times);
    /// refuses what the dialect cannot carry.
    pub fn entry(&mut self, index: usize, e: &Entry) -> Result<()> {
        if e.kind != EntryKind::Regular && e.size > 0 {
            return Err(refuse(
                &e.name,
                e.header_offset,
                format!(
                    "{} bytes of data on a non-regular entry (a GNU dumpdir): the containers \
                     TOC has no frame for them",
                    e.size
                ),
            ));
        }
        if e.size > i64::MAX as u64 {
            return Err(refuse(
                &e.name,
                e.header_offset,
                format!("size {} does not fit tar-split's signed size", e.size),
            ));
        }
        let meta = Meta {
            modtime: time(e, "modification time", Some(e.mtime))?,
            accesstime: time(e, "access time", e.atime)?,
            changetime: time(e, "change time", e.ctime)?,
            dev_major: e.dev_major,
            dev_minor: e.dev_minor,
        };
        self.split.segment(&e.raw);
        let slot = self.split.file_deferred(&e.raw_name, e.size).map_err(|_| {
            refuse(
                &e.name,
                e.header_offset,
                "an earlier entry has the same name (tar-split refuses duplicates)".into(),
            )
        })?;
        if let Some(at) = slot {
            self.crc_slots.push((index, at));
        }
        self.meta.push(meta);
        Ok(())
    }

    /// Marks the chunk of entry `index` as a run of zeros (spec §4.3).
    pub fn zeros_chunk(&mut self, index: usize) {
        self.zeros.push(index);
    }

    /// The bytes up to and including the first end-of-archive block.
    pub fn end(&mut self, raw: &[u8]) {
        self.end = Some(raw.to_vec());
    }

    /// Bytes after the first end-of-archive block, in order.
    pub fn trailing(&mut self, bytes: &[u8]) {
        self.trailing.extend_from_slice(bytes);
    }

    /// The containers TOC (without `tarSplitDigest`, which comes from the
    /// compressed tar-split) and the tar-split stream, from the eStargz
    /// entries the pipeline completed, the end of the frame holding each
    /// file's last chunk and each file's CRC-64 (both by `reg` index).
    pub fn finish(
        mut self,
        entries: &[TocEntry],
        end_offsets: &[(usize, u64)],
        crcs: &[(usize, Crc64)],
    ) -> (ContainersToc, Vec<u8>) {
        // Both lists are in file order, as are the slots.
        let mut crcs = crcs.iter().peekable();
        for &(file, at) in &self.crc_slots {
            while crcs.next_if(|(f, _)| *f < file).is_some() {}
            if let Some((_, crc)) = crcs.next_if(|(f, _)| *f == file) {
                self.split.patch_crc(at, *crc);
            }
        }
        // Go's tar reader takes both end-of-archive blocks; tar-split
        // writes them as one segment with the padding before them, then
        // the rest, then an empty segment (spec §4.5).
        let mut end = self.end.unwrap_or_default();
        let second = self.trailing.len().min(BLOCK);
        end.extend_from_slice(&self.trailing[..second]);
        if !end.is_empty() {
            self.split.segment(&end);
        }
        let split = self.split.finish(&self.trailing[second..]);
        let toc = ContainersToc {
            version: 1,
            entries: toc_entries(entries, &self.meta, end_offsets, &self.zeros),
            tar_split_digest: String::new(),
        };
        (toc, split)
    }
}

/// The containers TOC's entries (spec §4.4): chunk fields only on files of
/// two or more chunks, `digest` and `offset` only on files with data.
fn toc_entries(
    entries: &[TocEntry],
    meta: &[Meta],
    end_offsets: &[(usize, u64)],
    zeros: &[usize],
) -> Vec<ContainersEntry> {
    let mut out = Vec::with_capacity(entries.len());
    let mut meta = meta.iter();
    let mut end_offsets = end_offsets.iter().peekable();
    let mut zeros = zeros.iter().peekable();
    let mut chunk_type = |i: usize| {
        while zeros.next_if(|&&z| z < i).is_some() {}
        match zeros.next_if(|&&z| z == i) {
            Some(_) => "zeros".to_string(),
            None => String::new(),
        }
    };
    let mut file_size = 0i64;
    for (i, e) in entries.iter().enumerate() {
        let next_chunk = entries
            .get(i + 1)
            .filter(|n| n.kind == EntryType::Chunk)
            .map(|n| n.chunk_offset);
        let mut c = ContainersEntry {
            kind: e.kind.as_str().to_string(),
            name: e.name.clone(),
            ..ContainersEntry::default()
        };
        if e.kind == EntryType::Chunk {
            c.offset = e.offset;
            c.chunk_offset = e.chunk_offset;
            c.chunk_size = next_chunk.unwrap_or(file_size) - e.chunk_offset;
            c.chunk_digest.clone_from(&e.chunk_digest);
            c.chunk_type = chunk_type(i);
            out.push(c);
            continue;
        }
        let m = meta.next();
        c.link_name.clone_from(&e.link_name);
        c.mode = e.mode;
        c.size = e.size;
        c.uid = e.uid;
        c.gid = e.gid;
        if let Some(m) = m {
            c.modtime.clone_from(&m.modtime);
            c.accesstime.clone_from(&m.accesstime);
            c.changetime.clone_from(&m.changetime);
            c.dev_major = m.dev_major;
            c.dev_minor = m.dev_minor;
        }
        c.xattrs = e
            .xattrs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    base64::engine::general_purpose::STANDARD.encode(v),
                )
            })
            .collect();
        if e.kind == EntryType::Reg && e.size > 0 {
            file_size = e.size;
            c.digest.clone_from(&e.digest);
            c.offset = e.offset;
            while end_offsets.next_if(|(f, _)| *f < i).is_some() {}
            if let Some((_, end)) = end_offsets.next_if(|(f, _)| *f == i) {
                c.end_offset = *end as i64;
            }
            if let Some(next) = next_chunk {
                c.chunk_size = next;
                c.chunk_digest.clone_from(&e.chunk_digest);
                c.chunk_type = chunk_type(i);
            }
        }
        out.push(c);
    }
    out
}
