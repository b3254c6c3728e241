//! Input held in memory as a whole, such as a memory-mapped file.
//!
//! A member is a contiguous range of the input, so when the whole input is
//! addressable the planner hands out ranges of it instead of copying file
//! data into buffers of its own: compression, chunk digests and the diffID
//! then read the same bytes in place. On a layer of small files, the copies
//! and the page faults of fresh member buffers were the converter's largest
//! cost after the codec and SHA-256.

use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

/// Bytes the converter may read in place, from any thread.
///
/// ```
/// use estargz_core::{Converter, Digest, Input};
///
/// let mut tar = tar::Builder::new(Vec::new());
/// let mut header = tar::Header::new_ustar();
/// header.set_size(5);
/// header.set_mode(0o644);
/// header.set_cksum();
/// tar.append_data(&mut header, "hello.txt", &b"hello"[..]).unwrap();
/// let tar = tar.into_inner().unwrap();
///
/// let mut blob = Vec::new();
/// let converter = Converter::new();
/// let report = converter.convert(Input::in_memory(tar.clone()), &mut blob).unwrap();
///
/// // The same bytes as converting the stream.
/// let mut streamed = Vec::new();
/// converter.convert(&tar, &mut streamed).unwrap();
/// assert_eq!(blob, streamed);
/// assert_eq!(report.blob.digest, Digest::of(&blob));
/// ```
pub trait InputBytes: Send + Sync {
    /// The whole input: the same bytes, of the same length, on every call.
    fn bytes(&self) -> &[u8];

    /// Every byte before `end` has been compressed and hashed and is not
    /// read again: a mapping may give back those pages (which would
    /// otherwise count towards the process's resident set). The default does nothing.
    fn release(&self, _end: usize) {}
}

impl InputBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Shared handle on an in-memory input.
pub type SharedInput = Arc<dyn InputBytes>;

/// A member's uncompressed bytes: its own buffer, or a range of an
/// in-memory input.
pub enum MemberData {
    /// Copied from a stream.
    Owned(Vec<u8>),
    /// In place, in the input.
    Shared(SharedInput, Range<usize>),
}

impl Default for MemberData {
    fn default() -> Self {
        MemberData::Owned(Vec::new())
    }
}

impl std::ops::Deref for MemberData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            MemberData::Owned(v) => v,
            MemberData::Shared(input, range) => &input.bytes()[range.clone()],
        }
    }
}

impl AsRef<[u8]> for MemberData {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for MemberData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberData::Owned(v) => write!(f, "Owned({} bytes)", v.len()),
            MemberData::Shared(_, range) => write!(f, "Shared({range:?})"),
        }
    }
}

/// Reads an in-memory input: headers are copied out like from any reader,
/// data is skipped ([`MemoryReader::skip`]) and taken in place.
pub struct MemoryReader {
    input: SharedInput,
    pos: usize,
}

impl MemoryReader {
    /// A reader at the start of `input`.
    pub fn new(input: SharedInput) -> Self {
        MemoryReader { input, pos: 0 }
    }

    /// The input read.
    pub fn input(&self) -> &SharedInput {
        &self.input
    }

    /// Moves up to `n` bytes ahead; returns how many.
    pub fn skip(&mut self, n: u64) -> std::io::Result<u64> {
        let left = self.input.bytes().len() - self.pos;
        let n = usize::try_from(n).map_or(left, |n| n.min(left));
        self.pos += n;
        Ok(n as u64)
    }
}

impl Read for MemoryReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.input.bytes()[self.pos..];
        let n = out.len().min(rest.len());
        out[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}
