//! The plan: where the gzip members start, and the TOC entries they carry.
//!
//! A member starts at every chunk of every non-empty regular file (spec §2.1);
//! headers, padding and non-file entries go into whatever member is open.
//! Chunks are the chunk size long, except in the containers dialect of
//! zstd:chunked, which ends them where containers/storage does
//! ([`super::cdc`]) and where the chunk size caps them.
//! With a minimum chunk size (spec §4.4), a chunk joins the open member, at
//! an `innerOffset`, until that member holds at least that many bytes.
//! Bytes after the end-of-archive block go into the open member up to a
//! chunk size (at least 1 MiB) of them, then into members of that size, so
//! a long zero tail costs no more memory than a large file.
//! The plan is a function of the input bytes and the options only, never of
//! threads or timing: that is what makes the output deterministic.

use super::cdc::{next_cut, Cut, HOLE_MIN, WINDOW};
use super::containers::ContainersPlan;
use super::memory::{MemberData, MemoryReader, SharedInput};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::name;
use crate::read::{NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK};
use crate::tar::{Entry, EntryKind, Item, NamePolicy, ScanLimits, Scanner};
use crate::toc::{format_modtime, EntryType, TocEntry, TOC_NAME};
use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;

/// Room reserved after a chunk for the padding and headers that follow it
/// in the same member, so that they rarely reallocate the chunk's buffer.
const HEADER_SLACK: usize = 16 << 10;

/// Trailing bytes read per step (a step never reserves more than this
/// beyond what it has read), and the least a member takes of them: tars
/// carry a record of padding at most, 1 MiB at the largest blocking factor.
const TRAILING_PIECE: u64 = 1 << 20;

/// A planned member: its uncompressed bytes and the chunks inside them.
#[derive(Debug, Default)]
pub struct Member {
    /// Uncompressed bytes (a contiguous range of the input).
    pub data: MemberData,
    /// File chunks that start in this member (at most one with MinChunkSize 0).
    pub chunks: Vec<PlannedChunk>,
}

/// A chunk of a regular file's data inside a [`Member`].
#[derive(Debug, Clone)]
pub struct PlannedChunk {
    /// Index of the chunk's TOC entry (`reg` for the first chunk, else `chunk`).
    pub entry: usize,
    /// Index of the file's `reg` entry.
    pub file: usize,
    /// Byte range inside [`Member::data`].
    pub range: Range<usize>,
    /// The file has more than one chunk (its `digest` needs its own hash).
    pub multi: bool,
    /// This is the file's last chunk.
    pub last: bool,
}

/// A regular file whose chunks are still being planned.
struct FileCursor {
    reg: usize,
    name: String,
    header_offset: u64,
    size: u64,
    at: u64,
    /// Containers dialect: the last chunk was a zero run the chunk size
    /// ended, which may go on.
    in_hole: bool,
}

/// An input held in memory: members are ranges of it, and file data is
/// skipped rather than copied.
struct InMemory<R> {
    input: SharedInput,
    skip: fn(&mut R, u64) -> std::io::Result<u64>,
}

/// Turns a tar stream into members and TOC entries, one member at a time.
pub struct Planner<R> {
    scanner: Scanner<R>,
    chunk_size: u64,
    min_chunk_size: u64,
    /// TOC entries so far; offsets and digests are filled in at assembly.
    pub entries: Vec<TocEntry>,
    /// Input offset of the tar header behind each of `entries` (a chunk's
    /// is its file's), for errors found once the TOC is complete.
    pub header_offsets: Vec<u64>,
    /// The open member's bytes (stream input only) and chunks.
    open: Vec<u8>,
    open_chunks: Vec<PlannedChunk>,
    /// Input offset where the open member starts.
    open_start: u64,
    memory: Option<InMemory<R>>,
    ready: Option<Member>,
    file: Option<FileCursor>,
    /// The end-of-archive block is planned; trailing bytes come next.
    trailing: bool,
    /// Trailing bytes in the open member.
    trailing_in_open: u64,
    /// Where the open member's last chunk ends (0: it holds none). What
    /// follows it is headers and non-file data, bounded per member.
    chunk_end_in_open: usize,
    /// Data of a non-file entry (a GNU dumpdir's) still to add.
    other_data_left: u64,
    user_names: HashMap<i64, String>,
    group_names: HashMap<i64, String>,
    done: bool,
    /// Non-fatal findings, in input order.
    pub warnings: Vec<String>,
    /// Regular files seen.
    pub files: usize,
    /// The containers dialect's records; `Some` when writing it, which
    /// also puts every chunk alone in its member.
    pub containers: Option<ContainersPlan>,
    /// The open member holds one chunk and nothing else may join it.
    cut_after_chunk: bool,
    /// Containers dialect, stream input: the current file's bytes read
    /// ahead to find where its chunks end, from up to [`WINDOW`] bytes
    /// before the next chunk (the rolling sum's history) on.
    look: Vec<u8>,
    /// Where the next chunk starts in `look`.
    look_start: usize,
}

impl Planner<MemoryReader> {
    /// A planner over a tar held in memory: its members are ranges of
    /// `input`, with no copy of file data.
    pub fn in_memory(
        input: SharedInput,
        names: NamePolicy,
        limits: ScanLimits,
        chunk_size: u64,
    ) -> Self {
        let scanner = Scanner::new(MemoryReader::new(input.clone()), names, limits);
        let mut planner = Planner::new(scanner, chunk_size);
        planner.memory = Some(InMemory {
            input,
            skip: MemoryReader::skip,
        });
        planner
    }
}

impl<R: Read> Planner<R> {
    /// A planner reading tar bytes from `scanner`.
    pub fn new(scanner: Scanner<R>, chunk_size: u64) -> Self {
        Planner {
            scanner,
            chunk_size,
            min_chunk_size: 0,
            entries: Vec::new(),
            header_offsets: Vec::new(),
            open: Vec::new(),
            open_chunks: Vec::new(),
            open_start: 0,
            memory: None,
            ready: None,
            file: None,
            trailing: false,
            trailing_in_open: 0,
            chunk_end_in_open: 0,
            other_data_left: 0,
            user_names: HashMap::new(),
            group_names: HashMap::new(),
            done: false,
            warnings: Vec::new(),
            files: 0,
            containers: None,
            cut_after_chunk: false,
            look: Vec::new(),
            look_start: 0,
        }
    }

    /// Plans the containers dialect of zstd:chunked: each chunk alone in
    /// its member, the tar-split and the containers TOC's fields recorded
    /// on the way. The scanner must be strict about names
    /// ([`NamePolicy::Strict`]): this dialect cannot carry others.
    pub fn with_containers(mut self) -> Self {
        self.containers = Some(ContainersPlan::new());
        self
    }

    /// Lets chunks share a member until it holds `bytes` uncompressed bytes
    /// (0, the default, starts a member at every chunk).
    ///
    /// The reference closes a member once its *compressed* size reaches the
    /// minimum, which ties the grouping to the codec and forces it to
    /// compress one member at a time. Counting uncompressed bytes decides
    /// every boundary before compression, so members are still compressed
    /// in parallel and the grouping is the same for any codec or level; it
    /// also bounds what a reader decompresses to reach a file to about
    /// `bytes` plus one chunk.
    pub fn with_min_chunk_size(mut self, bytes: u64) -> Self {
        self.min_chunk_size = bytes;
        self
    }

    /// The next complete member, in order; `None` after the last.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        while self.ready.is_none() && !self.done {
            self.step()?;
        }
        Ok(self.ready.take())
    }

    /// Bytes in the open member so far.
    fn open_len(&self) -> usize {
        match self.memory {
            Some(_) => (self.scanner.position() - self.open_start) as usize,
            None => self.open.len(),
        }
    }

    /// Adds bytes the scanner consumed (headers, padding) to the open member.
    fn append_raw(&mut self, raw: &[u8]) {
        // In memory, the member's range already covers what was consumed.
        if self.memory.is_none() {
            self.open.extend_from_slice(raw);
        }
    }

    /// Adds the next `n` data bytes of the current entry to the open member.
    fn append_data(&mut self, n: u64) -> Result<()> {
        match &self.memory {
            Some(m) => self.scanner.skip_data(n, m.skip),
            None => self.scanner.read_data(&mut self.open, n),
        }
    }

    /// Closes the open member (if it holds anything) and starts a new one.
    fn cut(&mut self) {
        if self.open_len() == 0 {
            return;
        }
        debug_assert!(self.ready.is_none());
        let end = self.scanner.position();
        let data = match &self.memory {
            Some(m) => MemberData::Shared(m.input.clone(), self.open_start as usize..end as usize),
            None => MemberData::Owned(std::mem::take(&mut self.open)),
        };
        self.ready = Some(Member {
            data,
            chunks: std::mem::take(&mut self.open_chunks),
        });
        self.open_start = end;
        self.chunk_end_in_open = 0;
    }

    /// The most a member takes of anything but file chunks: headers of
    /// entries without data, non-file data and trailing bytes. As much as
    /// a chunk, and at least 1 MiB, so that ordinary runs of headers stay
    /// in one member as the reference writes them, while a tar of millions
    /// of empty entries (or a gzip bomb of them) costs no more memory than
    /// a large file.
    fn member_cap(&self) -> u64 {
        self.chunk_size.max(TRAILING_PIECE)
    }

    fn step(&mut self) -> Result<()> {
        if self.cut_after_chunk {
            self.cut_after_chunk = false;
            self.cut();
            return Ok(());
        }
        if let Some(file) = self.file.take() {
            return self.next_chunk(file);
        }
        if self.trailing {
            return self.trailing_step();
        }
        // Between entries (or pieces of non-file data): where members end
        // depends on the bytes and the chunk size only, alike in memory
        // and streamed.
        if (self.open_len() - self.chunk_end_in_open) as u64 >= self.member_cap() {
            self.cut();
            return Ok(());
        }
        if self.other_data_left > 0 {
            let n = self.other_data_left.min(TRAILING_PIECE);
            self.append_data(n)?;
            self.other_data_left -= n;
            return Ok(());
        }
        let item = self.scanner.next_item();
        if let Some(c) = &mut self.containers {
            if let Some((offset, name)) = self.scanner.first_global_header() {
                return Err(ContainersPlan::global_header(name, *offset));
            }
            if let Some(Item::End { raw, .. }) = item.as_ref().ok().and_then(Option::as_ref) {
                c.end(raw);
            }
        }
        match item.map_err(|e| match self.containers {
            Some(_) => ContainersPlan::non_utf8(e),
            None => e,
        })? {
            None => self.done = true,
            Some(Item::End { raw, offset }) => {
                if offset == 0 && raw.is_empty() {
                    return Err(Error::EmptyInput);
                }
                self.append_raw(&raw);
                self.trailing = true;
            }
            Some(Item::Entry(entry)) => self.entry(*entry)?,
        }
        Ok(())
    }

    /// Adds the next piece of trailing data to the open member. A member
    /// takes at most the chunk size of it, and at least 1 MiB: the record
    /// padding real tars carry stays in the open member, as the reference
    /// writes it (whatever the chunk size), and a long tail costs no more
    /// memory than a large file. Where members end depends on the bytes and
    /// the chunk size only, so memory and stream input cut alike.
    fn trailing_step(&mut self) -> Result<()> {
        let per_member = self.member_cap();
        if self.trailing_in_open >= per_member {
            self.cut();
            self.trailing_in_open = 0;
            return Ok(());
        }
        let room = (per_member - self.trailing_in_open).min(TRAILING_PIECE);
        let got = match &self.memory {
            Some(m) => self.scanner.skip_trailing(room, m.skip)?,
            None => {
                // Exactly: doubling growth would hold up to twice a member.
                self.open.reserve_exact(room as usize);
                self.scanner.read_trailing(&mut self.open, room)?
            }
        };
        self.trailing_in_open += got;
        if let Some(c) = &mut self.containers {
            let end = self.scanner.position() as usize;
            let start = end - got as usize;
            match &self.memory {
                Some(m) => c.trailing(&m.input.bytes()[start..end]),
                None => c.trailing(&self.open[self.open.len() - got as usize..]),
            }
        }
        if got == 0 {
            self.cut();
            self.done = true;
        }
        Ok(())
    }

    fn entry(&mut self, e: Entry) -> Result<()> {
        if name::clean(&e.name) == TOC_NAME {
            return Err(Error::ExistingToc {
                entry: e.name,
                offset: e.header_offset,
            });
        }
        self.warnings.extend(e.warnings.iter().cloned());
        let toc_entry = self.toc_entry(&e);
        let index = self.entries.len();
        if let Some(c) = &mut self.containers {
            c.entry(index, &e)?;
        }
        self.append_raw(&e.raw);
        self.entries.push(toc_entry);
        self.header_offsets.push(e.header_offset);
        if e.kind != EntryKind::Regular {
            // Only a GNU dumpdir carries data here: it goes into the open
            // member piece by piece (its size field allows 8 GiB).
            self.other_data_left = e.size;
            return Ok(());
        }
        self.files += 1;
        if e.size == 0 {
            self.entries[index].digest = Digest::of(b"").to_string();
            return Ok(());
        }
        self.file = Some(FileCursor {
            reg: index,
            name: e.name,
            header_offset: e.header_offset,
            size: e.size,
            at: 0,
            in_hole: false,
        });
        Ok(())
    }

    /// Starts a member at the next chunk of the current file and reads it.
    fn next_chunk(&mut self, mut f: FileCursor) -> Result<()> {
        let left = f.size - f.at;
        let cut = match self.containers {
            Some(_) => Some(self.content_cut(&f)?),
            None => None,
        };
        let len = cut.map_or(self.chunk_size.min(left), |c| c.len as u64);
        let entry = if f.at == 0 {
            f.reg
        } else {
            let mut c = TocEntry::new(f.name.clone(), EntryType::Chunk);
            c.chunk_offset = f.at as i64;
            self.entries.push(c);
            self.header_offsets.push(f.header_offset);
            self.entries.len() - 1
        };
        match (&mut self.containers, cut) {
            (Some(c), Some(cut)) => {
                self.entries[entry].chunk_size = len as i64;
                if cut.zeros {
                    c.zeros_chunk(entry);
                }
                f.in_hole = cut.zeros;
            }
            // The reference writes chunkSize whenever a full chunk size remains (spec §3.5).
            _ if left >= self.chunk_size => self.entries[entry].chunk_size = self.chunk_size as i64,
            _ => {}
        }
        if self.min_chunk_size == 0
            || self.open_len() as u64 >= self.min_chunk_size
            || is_landmark(&f.name)
        {
            self.cut();
        }
        // Exactly (plus room for the headers that follow): doubling growth
        // would hold up to twice each chunk in memory.
        if self.memory.is_none() {
            self.open.reserve_exact(len as usize + HEADER_SLACK);
        }
        let start = self.open_len();
        self.take_data(len, left)?;
        self.chunk_end_in_open = self.open_len();
        self.open_chunks.push(PlannedChunk {
            entry,
            file: f.reg,
            range: start..self.open_len(),
            multi: match cut {
                Some(_) => len < f.size,
                None => f.size > self.chunk_size,
            },
            last: len == left,
        });
        // The containers dialect's data frames hold exactly their chunk.
        self.cut_after_chunk = self.containers.is_some();
        f.at += len;
        if f.at < f.size {
            self.file = Some(f);
        }
        Ok(())
    }

    /// Containers dialect: where containers/storage ends the next chunk of
    /// `f` (spec §4.3), or the chunk size if that comes first (a bound on
    /// the memory a chunk takes: containers/storage has none). Reads ahead
    /// into `look` on stream input.
    fn content_cut(&mut self, f: &FileCursor) -> Result<Cut> {
        let cap = usize::try_from(self.chunk_size).unwrap_or(usize::MAX);
        let left = f.size - f.at;
        let ahead = usize::try_from(left.min(self.chunk_size + HOLE_MIN as u64)).unwrap_or(cap);
        let history = f.at.min(WINDOW as u64) as usize;
        let cut = match &self.memory {
            Some(m) => {
                let bytes = m.input.bytes();
                let pos = usize::try_from(self.scanner.position())
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = pos.saturating_add(ahead).min(bytes.len());
                let from = pos.saturating_sub(history);
                next_cut(&bytes[from..end], pos - from, cap, f.in_hole)
            }
            None => {
                let have = self.look.len() - self.look_start;
                if have < ahead {
                    self.look.reserve_exact(ahead - have);
                    self.scanner
                        .read_data(&mut self.look, (ahead - have) as u64)?;
                }
                let from = self.look_start.saturating_sub(history);
                next_cut(&self.look[from..], self.look_start - from, cap, f.in_hole)
            }
        };
        // No bytes at all: the input ends early, which reading the data
        // reports with its offset.
        Ok(match cut.len {
            0 => Cut {
                len: left.min(self.chunk_size) as usize,
                zeros: false,
            },
            _ => cut,
        })
    }

    /// Adds the next `len` data bytes of the current file (of `left`) to
    /// the open member: from the read-ahead when there is one.
    fn take_data(&mut self, len: u64, left: u64) -> Result<()> {
        if self.containers.is_none() || self.memory.is_some() {
            return self.append_data(len);
        }
        let end = self.look_start + len as usize;
        let Some(bytes) = self.look.get(self.look_start..end) else {
            // Fewer bytes read ahead than the chunk: not reached, as the
            // cut is made within them; read the rest as usual.
            let have = self.look.len() - self.look_start;
            self.open.extend_from_slice(&self.look[self.look_start..]);
            self.look.clear();
            self.look_start = 0;
            return self.append_data(len - have as u64);
        };
        self.open.extend_from_slice(bytes);
        self.look_start = end;
        if len == left {
            self.look.clear();
            self.look_start = 0;
        } else if self.look_start > WINDOW && self.look_start - WINDOW >= self.look.len() / 2 {
            // Keep the sum's history; moving at most half of what is held
            // makes each byte's share of the moves constant.
            self.look.drain(..self.look_start - WINDOW);
            self.look_start = WINDOW;
        }
        Ok(())
    }

    fn toc_entry(&mut self, e: &Entry) -> TocEntry {
        let kind = e.kind.toc_type();
        let mut t = TocEntry::new(e.name.clone(), kind);
        match e.kind {
            EntryKind::Regular => t.size = e.size as i64,
            EntryKind::Symlink | EntryKind::Hardlink => t.link_name = e.link_name.clone(),
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                t.dev_major = e.dev_major;
                t.dev_minor = e.dev_minor;
            }
            EntryKind::Directory | EntryKind::Fifo => {}
        }
        t.modtime = format_modtime(e.mtime.0, e.mtime.1);
        t.mode = e.mode;
        t.uid = e.uid;
        t.gid = e.gid;
        t.user_name = name_if_changed(&mut self.user_names, e.uid, &e.user_name);
        t.group_name = name_if_changed(&mut self.group_names, e.gid, &e.group_name);
        t.xattrs = e.xattrs.clone();
        t
    }
}

/// A landmark's data always starts a member: its offset is where the
/// prefetch region ends (spec §4.6).
fn is_landmark(entry_name: &str) -> bool {
    let cleaned = name::clean(entry_name);
    cleaned == PREFETCH_LANDMARK || cleaned == NO_PREFETCH_LANDMARK
}

/// The reference's de-duplication (spec §3.7): a name is written only when it
/// is non-empty and differs from the last one written for the same id.
fn name_if_changed(seen: &mut HashMap<i64, String>, id: i64, name: &str) -> String {
    if name.is_empty() || seen.get(&id).is_some_and(|n| n == name) {
        return String::new();
    }
    seen.insert(id, name.to_string());
    name.to_string()
}
