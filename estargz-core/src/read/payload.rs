//! The payload decoded member after member: the tar stream that `verify`
//! walks and `unpack` writes out.
//!
//! libdeflate decodes a whole gzip member about twice as fast as zlib-rs
//! streams it (`docs/design.md`: 931 vs 446 MB/s), and eStargz members are
//! bounded by the chunk size (4 MiB by default, here and in the reference),
//! so nearly every member is decoded whole into a bounded buffer by
//! [`gzip_member`]. A member that does not fit, or that libdeflate refuses
//! (damaged, truncated), is decoded again by flate2 as a stream: the output
//! and the errors are then exactly what a streaming gunzip gives, and
//! memory stays bounded whatever the blob claims.
//!
//! Decoding is sequential on purpose. Decoding the ranges between TOC
//! offsets in parallel was measured on the 2-vCPU machines here (204 MB
//! Debian layer): about 20% less wall time but 15-20% more CPU time and
//! 120 MB more memory, so `verify` runs the digests in parallel instead.

use super::{RangeReader, ReadAt};
use gzip_member::{DecodeError, MemberDecoder};
use std::io::{self, BufReader, Read};
use std::sync::{Arc, Mutex};

/// Largest member output decoded whole: a 4 MiB chunk plus the headers
/// that may follow it in its member, with room to spare.
const MAX_WHOLE_OUTPUT: usize = 6 << 20;
/// Largest member input decoded whole: stored blocks add 5 bytes per 64 KiB,
/// and gzip headers may carry a name or comment.
const MAX_WHOLE_INPUT: usize = MAX_WHOLE_OUTPUT + (MAX_WHOLE_OUTPUT >> 3);
/// First size of the output buffer; it grows to [`MAX_WHOLE_OUTPUT`] on
/// the first member that needs it, so small blobs stay small.
const FIRST_OUTPUT: usize = 256 << 10;

/// Where each member starts: (compressed offset, uncompressed offset).
pub type MemberStarts = Arc<Mutex<Vec<(u64, u64)>>>;

/// Reads the decompressed payload `[0, payload_end)` of a blob.
pub struct PayloadReader<S> {
    source: S,
    payload_end: u64,
    /// Compressed offset of the next member to decode.
    next: u64,
    /// Uncompressed bytes handed out so far.
    produced: u64,
    /// Compressed bytes `[window_start, window_start + window.len())`.
    window: Vec<u8>,
    window_start: u64,
    /// The current member, decoded whole: `out[out_pos..out_len]` is left.
    out: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    decoder: Option<MemberDecoder>,
    /// The current member, when it is decoded as a stream.
    stream: Option<flate2::bufread::GzDecoder<BufReader<RangeReader<S>>>>,
    starts: Option<MemberStarts>,
}

impl<S: ReadAt + Clone> PayloadReader<S> {
    /// A reader of `[0, payload_end)` of `source`, decoded.
    pub fn new(source: S, payload_end: u64) -> Self {
        PayloadReader {
            source,
            payload_end,
            next: 0,
            produced: 0,
            window: Vec::new(),
            window_start: 0,
            out: Vec::new(),
            out_pos: 0,
            out_len: 0,
            decoder: None,
            stream: None,
            starts: None,
        }
    }

    /// Also records where each member starts, in `starts`.
    pub fn recording(mut self, starts: MemberStarts) -> Self {
        self.starts = Some(starts);
        self
    }

    /// Makes `window` hold the compressed bytes from `next` on: at least
    /// [`MAX_WHOLE_INPUT`] of them, or all up to the payload's end. Returns
    /// false when the blob has no byte at `next` (it ends early).
    fn fill_window(&mut self) -> io::Result<bool> {
        let left = self.payload_end - self.next;
        let want = left.min(MAX_WHOLE_INPUT as u64) as usize;
        let window_end = self.window_start + self.window.len() as u64;
        let have = window_end.saturating_sub(self.next) as usize;
        if self.next >= self.window_start && have >= want {
            return Ok(true);
        }
        // Keep what is already read, then read twice the bound at once, so
        // that each byte is read once and moved at most once.
        if self.next >= self.window_start && have > 0 {
            let from = (self.next - self.window_start) as usize;
            self.window.drain(..from);
        } else {
            self.window.clear();
        }
        self.window_start = self.next;
        let target = left.min(2 * MAX_WHOLE_INPUT as u64) as usize;
        let mut filled = self.window.len();
        self.window.resize(target, 0);
        while filled < target {
            let n = match self
                .source
                .read_at(self.next + filled as u64, &mut self.window[filled..])
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(super::source::SourceError::mark(e)),
            };
            if n == 0 {
                break;
            }
            filled += n;
        }
        self.window.truncate(filled);
        Ok(filled > 0)
    }

    /// Starts the member at `next`: decoded whole when it fits, else as a
    /// stream. Returns false at the end of the payload.
    fn start_member(&mut self) -> io::Result<bool> {
        if self.next >= self.payload_end || !self.fill_window()? {
            return Ok(false);
        }
        if let Some(starts) = &self.starts {
            starts
                .lock()
                .map_err(|_| io::Error::other("member list poisoned"))?
                .push((self.next, self.produced));
        }
        let input = &self.window[(self.next - self.window_start) as usize..];
        let decoder = self.decoder.get_or_insert_with(MemberDecoder::new);
        if self.out.is_empty() {
            self.out.resize(FIRST_OUTPUT, 0);
        }
        let mut result = decoder.decode(input, &mut self.out);
        if result == Err(DecodeError::InsufficientSpace) && self.out.len() < MAX_WHOLE_OUTPUT {
            self.out.resize(MAX_WHOLE_OUTPUT, 0);
            result = decoder.decode(input, &mut self.out);
        }
        match result {
            Ok(done) => {
                self.out_pos = 0;
                self.out_len = done.produced;
                self.next += done.consumed as u64;
            }
            Err(_) => {
                let range =
                    RangeReader::new(self.source.clone(), self.next, self.payload_end).filling();
                let reader = BufReader::with_capacity(1 << 20, range);
                self.stream = Some(flate2::bufread::GzDecoder::new(reader));
            }
        }
        Ok(true)
    }
}

impl<S: ReadAt + Clone> Read for PayloadReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_pos < self.out_len {
                let n = buf.len().min(self.out_len - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                self.produced += n as u64;
                return Ok(n);
            }
            if let Some(stream) = self.stream.as_mut() {
                let n = stream.read(buf)?;
                if n > 0 {
                    self.produced += n as u64;
                    return Ok(n);
                }
                // The member ended: the next one starts after what the
                // stream took from its buffer.
                let reader = self.stream.take().map(|s| s.into_inner());
                if let Some(reader) = reader {
                    self.next = reader.get_ref().position() - reader.buffer().len() as u64;
                }
                continue;
            }
            if !self.start_member()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Incompressible bytes, so that compressed sizes are close to the
    /// plain ones and windows fill up.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Members of these sizes, back to back; with where each starts.
    fn members(sizes: &[usize]) -> (Vec<u8>, Vec<u8>, Vec<(u64, u64)>) {
        let (mut blob, mut plain, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &n) in sizes.iter().enumerate() {
            let data = noise(n, i as u64);
            starts.push((blob.len() as u64, plain.len() as u64));
            blob.extend_from_slice(&gzip(&data));
            plain.extend_from_slice(&data);
        }
        (blob, plain, starts)
    }

    fn decode(blob: &[u8], end: u64, chunk: usize) -> (io::Result<Vec<u8>>, Vec<(u64, u64)>) {
        let starts = MemberStarts::default();
        let mut r = PayloadReader::new(blob, end).recording(Arc::clone(&starts));
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        let result = loop {
            match r.read(&mut buf) {
                Ok(0) => break Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        let starts = starts.lock().unwrap().clone();
        (result, starts)
    }

    #[test]
    fn whole_grown_streamed_and_refilled_members() {
        // Empty and small members, one past the first output buffer, one
        // past the whole-member bound (streamed), and enough bytes that the
        // window is refilled several times, members straddling its end.
        let mut sizes = vec![
            0,
            1,
            5000,
            FIRST_OUTPUT + 1,
            MAX_WHOLE_OUTPUT + 4096,
            0,
            700,
        ];
        sizes.extend((0..12).map(|i| 1_500_000 + i * 77_777));
        let (blob, plain, starts) = members(&sizes);
        assert!(blob.len() > 3 * MAX_WHOLE_INPUT);
        for chunk in [1 << 20, 4099] {
            let (out, got) = decode(&blob, blob.len() as u64, chunk);
            assert!(out.unwrap() == plain, "output differs (read size {chunk})");
            assert_eq!(got, starts);
        }
    }

    #[test]
    fn stops_at_payload_end() {
        let (blob, plain, starts) = members(&[1000, 2000, 3000]);
        let end = starts[2].0;
        let (out, got) = decode(&blob, end, 1 << 16);
        assert_eq!(out.unwrap(), &plain[..3000]);
        assert_eq!(got, &starts[..2]);
    }

    #[test]
    fn damage_and_truncation_fail_as_a_stream_does() {
        let (blob, _, starts) = members(&[1000, 200_000, 3000]);
        // A flipped byte inside the second member's deflate data.
        let mut bad = blob.clone();
        bad[starts[1].0 as usize + 500] ^= 0x55;
        let (out, _) = decode(&bad, bad.len() as u64, 1 << 16);
        assert!(out.is_err());
        let mut reference = flate2::read::MultiGzDecoder::new(&bad[..]);
        assert!(io::copy(&mut reference, &mut io::sink()).is_err());
        // A blob that ends inside a member: an error, not a short stream.
        let cut = &blob[..starts[1].0 as usize + 100];
        let (out, _) = decode(cut, blob.len() as u64, 1 << 16);
        assert_eq!(out.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        // One that ends between members: the stream just ends there.
        let cut = &blob[..starts[2].0 as usize];
        let (out, got) = decode(cut, blob.len() as u64, 1 << 16);
        assert_eq!(out.unwrap().len(), 201_000);
        assert_eq!(got, &starts[..2]);
        // Garbage where a member should start.
        let mut junk = blob[..starts[1].0 as usize].to_vec();
        junk.extend_from_slice(b"not gzip");
        let (out, _) = decode(&junk, junk.len() as u64, 1 << 16);
        assert!(out.is_err());
    }
}
