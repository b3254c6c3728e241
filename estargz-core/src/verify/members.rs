//! Decoding the payload's gzip members while recording where each starts:
//! sequentially (any layout, precise errors) or in parallel between the
//! offsets the TOC names (the fast path).

use super::is_data;
use crate::read::{RangeReader, ReadAt, TocInfo};
use rayon::prelude::*;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

/// Decodes the payload member after member; records where each starts.
pub(super) struct MemberStream<S> {
    reader: Option<BufReader<RangeReader<S>>>,
    decoder: Option<flate2::bufread::GzDecoder<BufReader<RangeReader<S>>>>,
    payload_end: u64,
    produced: u64,
    /// (compressed start, uncompressed start) of every member so far.
    starts: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl<S: ReadAt> MemberStream<S> {
    pub(super) fn new(source: S, payload_end: u64, starts: Arc<Mutex<Vec<(u64, u64)>>>) -> Self {
        MemberStream {
            reader: Some(BufReader::with_capacity(
                1 << 20,
                RangeReader::new(source, 0, payload_end),
            )),
            decoder: None,
            payload_end,
            produced: 0,
            starts,
        }
    }

    fn compressed_pos(reader: &BufReader<RangeReader<S>>) -> u64 {
        reader.get_ref().position() - reader.buffer().len() as u64
    }
}

impl<S: ReadAt> Read for MemberStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(dec) = self.decoder.as_mut() {
                let n = dec.read(buf)?;
                if n > 0 || buf.is_empty() {
                    self.produced += n as u64;
                    return Ok(n);
                }
                let dec = self.decoder.take().expect("decoder present");
                self.reader = Some(dec.into_inner());
            }
            let mut reader = self.reader.take().expect("reader present between members");
            let pos = Self::compressed_pos(&reader);
            if pos >= self.payload_end || reader.fill_buf()?.is_empty() {
                self.reader = Some(reader);
                return Ok(0);
            }
            self.starts
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .push((pos, self.produced));
            self.decoder = Some(flate2::bufread::GzDecoder::new(reader));
        }
    }
}

/// Marks problems caused by the parallel decoder, so the walk is redone sequentially.
pub(super) const DECODE_FAILURE: &str = "parallel member decoding failed";

/// Largest decompressed size accepted for the members between two TOC
/// offsets: bounds memory against decompression bombs in the payload.
const MAX_RANGE_DECODED: usize = 1 << 30;

/// Compressed bytes decoded per parallel batch.
const BATCH_COMPRESSED: u64 = 8 << 20;

/// The payload decoded in parallel: the ranges between consecutive member
/// starts named by the TOC are independent, so a batch of them is decoded
/// at once (each range may hold several members) and served in order.
pub(super) struct ParallelMembers<'a, S> {
    source: &'a S,
    ranges: Vec<(u64, u64)>,
    next_range: usize,
    ready: std::collections::VecDeque<DecodedRange>,
    current: Vec<u8>,
    pos: usize,
    produced: u64,
    starts: Arc<Mutex<Vec<(u64, u64)>>>,
}

struct DecodedRange {
    /// (compressed start, offset in `data`) of each member.
    members: Vec<(u64, usize)>,
    data: Vec<u8>,
    error: Option<String>,
}

impl<'a, S: ReadAt> ParallelMembers<'a, S> {
    pub(super) fn new(source: &'a S, info: &TocInfo, starts: Arc<Mutex<Vec<(u64, u64)>>>) -> Self {
        let mut cuts: Vec<u64> = info
            .toc
            .entries
            .iter()
            .filter(|e| is_data(e) && e.offset > 0 && (e.offset as u64) < info.payload_end)
            .map(|e| e.offset as u64)
            .collect();
        cuts.push(0);
        cuts.push(info.payload_end);
        cuts.sort_unstable();
        cuts.dedup();
        let ranges = cuts
            .windows(2)
            .map(|w| (w[0], w[1]))
            .filter(|r| r.0 < r.1)
            .collect();
        ParallelMembers {
            source,
            ranges,
            next_range: 0,
            ready: std::collections::VecDeque::new(),
            current: Vec::new(),
            pos: 0,
            produced: 0,
            starts,
        }
    }

    fn decode_batch(&mut self) {
        let first = self.next_range;
        let mut bytes = 0u64;
        while self.next_range < self.ranges.len()
            && (bytes < BATCH_COMPRESSED || self.next_range == first)
        {
            let (a, b) = self.ranges[self.next_range];
            bytes += b - a;
            self.next_range += 1;
        }
        let source = self.source;
        let decoded: Vec<DecodedRange> = self.ranges[first..self.next_range]
            .par_iter()
            .map(|&(a, b)| decode_range(source, a, b))
            .collect();
        self.ready.extend(decoded);
    }
}

/// Decodes the complete gzip members that make up `[start, end)`.
fn decode_range<S: ReadAt>(source: &S, start: u64, end: u64) -> DecodedRange {
    let mut out = DecodedRange {
        members: Vec::new(),
        data: Vec::new(),
        error: None,
    };
    let compressed = match source.read_range(start, (end - start) as usize) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(format!("reading [{start}, {end}): {e}"));
            return out;
        }
    };
    // The last member's ISIZE is usually the whole range's size (one member
    // per range): reserve it exactly rather than grow by doubling.
    if let Some(tail) = compressed
        .len()
        .checked_sub(4)
        .and_then(|at| compressed.get(at..))
    {
        let isize = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
        out.data.reserve_exact(isize.min(64 << 20));
    }
    let mut rest = &compressed[..];
    while !rest.is_empty() {
        let member_start = end - rest.len() as u64;
        out.members.push((member_start, out.data.len()));
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        let limit = (MAX_RANGE_DECODED - out.data.len()) as u64;
        match (&mut decoder).take(limit + 1).read_to_end(&mut out.data) {
            Ok(_) if out.data.len() > MAX_RANGE_DECODED => {
                out.error = Some(format!(
                    "members at byte {start} decompress to more than {MAX_RANGE_DECODED} bytes"
                ));
                return out;
            }
            Ok(_) => rest = decoder.into_inner(),
            Err(e) => {
                out.error = Some(format!("member at byte {member_start}: {e}"));
                return out;
            }
        }
    }
    out
}

impl<S: ReadAt> Read for ParallelMembers<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.ready.is_empty() {
                if self.next_range == self.ranges.len() {
                    return Ok(0);
                }
                self.decode_batch();
            }
            let Some(range) = self.ready.pop_front() else {
                return Ok(0);
            };
            let mut starts = self
                .starts
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            for (compressed, at) in &range.members {
                starts.push((*compressed, self.produced + *at as u64));
            }
            drop(starts);
            if let Some(e) = range.error {
                return Err(io::Error::other(format!("{DECODE_FAILURE}: {e}")));
            }
            self.current = range.data;
            self.pos = 0;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}
