//! The payload of a zstd:chunked blob decoded frame after frame: the tar
//! stream that `verify` walks, `unpack` writes out and whose sha256 is the
//! DiffID (spec §7.1).
//!
//! Frame boundaries are found here, not left to libzstd's multi-frame
//! streaming: each data frame's header is checked before libzstd sees it
//! (reserved bit, dictionary, window, spec §7.4 rule 5), its start is
//! recorded for `verify` as gzip member starts are, and skippable frames
//! inside the payload, which decoders pass over silently, are recorded too.

use super::{MemberStarts, ReadAt};
use crate::zstd_chunked::frame::{skippable_len, FrameHeader};
use crate::zstd_chunked::{READ_MAX_WINDOW_LOG, SKIPPABLE_HEADER};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use zstd::zstd_safe::{self, DCtx, DParameter, InBuffer, OutBuffer};

/// Compressed bytes read from the source at a time.
const READ_PIECE: usize = 1 << 20;
/// Longest data frame header (RFC 8878 §3.1.1.1): magic, descriptor,
/// window, 4-byte dictionary ID, 8-byte content size.
const MAX_FRAME_HEADER: usize = 18;

/// Skippable frames met in the payload: (blob offset, length with header).
pub type SkippableFrames = Arc<Mutex<Vec<(u64, u64)>>>;

/// Reads the decompressed payload `[0, payload_end)` of a zstd:chunked blob.
pub struct ZstdPayloadReader<S> {
    source: S,
    payload_end: u64,
    /// Compressed bytes from blob offset `window_start`; `pos` is the next unread.
    window: Vec<u8>,
    window_start: u64,
    pos: usize,
    dctx: Option<DCtx<'static>>,
    /// Blob offset of the frame being decoded, if one is.
    frame: Option<u64>,
    produced: u64,
    starts: Option<MemberStarts>,
    skippables: Option<SkippableFrames>,
}

/// Why the payload could not be decoded, at which blob offset: carried
/// inside the [`io::Error`]s this reader returns.
#[derive(Debug)]
pub struct FrameError {
    /// Blob offset of the frame concerned.
    pub offset: u64,
    /// What is wrong; names that offset.
    pub message: String,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FrameError {}

impl FrameError {
    /// The [`FrameError`] inside `e`, if it holds one.
    pub fn of(e: &io::Error) -> Option<&FrameError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<FrameError>())
    }
}

fn frame_error(kind: io::ErrorKind, offset: u64, message: String) -> io::Error {
    io::Error::new(kind, FrameError { offset, message })
}

fn invalid(offset: u64, message: String) -> io::Error {
    frame_error(io::ErrorKind::InvalidData, offset, message)
}

impl<S: ReadAt> ZstdPayloadReader<S> {
    /// A reader of `[0, payload_end)` of `source`, decoded.
    pub fn new(source: S, payload_end: u64) -> Self {
        ZstdPayloadReader {
            source,
            payload_end,
            window: Vec::new(),
            window_start: 0,
            pos: 0,
            dctx: None,
            frame: None,
            produced: 0,
            starts: None,
            skippables: None,
        }
    }

    /// Also records where each data frame starts, in `starts`.
    pub fn recording(mut self, starts: MemberStarts) -> Self {
        self.starts = Some(starts);
        self
    }

    /// Also records the skippable frames met, in `skippables`.
    pub fn recording_skippable(mut self, skippables: SkippableFrames) -> Self {
        self.skippables = Some(skippables);
        self
    }

    fn offset(&self) -> u64 {
        self.window_start + self.pos as u64
    }

    /// Makes at least `n` unread bytes available, or all that are left
    /// before the payload end; returns how many are.
    fn ensure(&mut self, n: usize) -> io::Result<usize> {
        let avail = self.window.len() - self.pos;
        if avail >= n {
            return Ok(avail);
        }
        self.window.drain(..self.pos);
        self.window_start += self.pos as u64;
        self.pos = 0;
        let end = self.window_start + self.window.len() as u64;
        let left = self.payload_end.saturating_sub(end);
        let want = left.min(n.max(READ_PIECE) as u64) as usize;
        let mut filled = self.window.len();
        self.window.resize(filled + want, 0);
        let target = self.window.len();
        while filled < target {
            match self.source.read_at(
                self.window_start + filled as u64,
                &mut self.window[filled..],
            ) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(super::source::SourceError::mark(e)),
            }
        }
        self.window.truncate(filled);
        Ok(self.window.len())
    }

    /// Moves past the skippable frames at the read position to the next
    /// data frame, checks its header and starts decoding it. False at the
    /// end of the payload.
    fn start_frame(&mut self) -> io::Result<bool> {
        loop {
            let avail = self.ensure(MAX_FRAME_HEADER)?;
            if avail == 0 {
                return Ok(false);
            }
            let at = self.offset();
            let head = &self.window[self.pos..self.pos + avail];
            if let Some(len) = skippable_len(head) {
                let total = SKIPPABLE_HEADER + len;
                if at + total > self.payload_end {
                    return Err(invalid(
                        at,
                        format!(
                        "skippable frame at byte {at} ({total} bytes) runs past the payload end \
                         at byte {}",
                        self.payload_end
                    ),
                    ));
                }
                if let Some(list) = &self.skippables {
                    list.lock()
                        .map_err(|_| io::Error::other("frame list poisoned"))?
                        .push((at, total));
                }
                self.skip(total);
                continue;
            }
            FrameHeader::parse(head)
                .and_then(|h| h.check_readable(READ_MAX_WINDOW_LOG))
                .map_err(|reason| invalid(at, format!("zstd frame at byte {at}: {reason}")))?;
            if let Some(starts) = &self.starts {
                starts
                    .lock()
                    .map_err(|_| io::Error::other("frame list poisoned"))?
                    .push((at, self.produced));
            }
            self.new_session(at)?;
            self.frame = Some(at);
            return Ok(true);
        }
    }

    fn skip(&mut self, n: u64) {
        let avail = (self.window.len() - self.pos) as u64;
        if n <= avail {
            self.pos += n as usize;
        } else {
            self.window_start = self.offset() + n;
            self.window.clear();
            self.pos = 0;
        }
    }

    fn new_session(&mut self, at: u64) -> io::Result<()> {
        let codec = |what: &str, code: usize| {
            invalid(
                at,
                format!(
                    "zstd frame at byte {at}: {what}: {}",
                    zstd_safe::get_error_name(code)
                ),
            )
        };
        if self.dctx.is_none() {
            let mut dctx = DCtx::try_create().ok_or_else(|| io::Error::other("no memory"))?;
            dctx.set_parameter(DParameter::WindowLogMax(READ_MAX_WINDOW_LOG))
                .map_err(|c| codec("window limit", c))?;
            self.dctx = Some(dctx);
        }
        if let Some(dctx) = self.dctx.as_mut() {
            dctx.reset(zstd_safe::ResetDirective::SessionOnly)
                .map_err(|c| codec("reset", c))?;
        }
        Ok(())
    }

    /// Decodes from the current frame into `buf`; 0 only when the frame
    /// ended without producing more.
    fn decode(&mut self, frame: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let avail = self.ensure(1)?;
            if avail == 0 {
                return Err(frame_error(
                    io::ErrorKind::UnexpectedEof,
                    frame,
                    format!(
                        "zstd frame at byte {frame} is truncated: the payload ends at byte {}",
                        self.payload_end
                    ),
                ));
            }
            let Some(dctx) = self.dctx.as_mut() else {
                return Err(io::Error::other("no zstd decoder"));
            };
            let mut input = InBuffer::around(&self.window[self.pos..self.pos + avail]);
            let mut out = OutBuffer::around(buf);
            let hint = dctx.decompress_stream(&mut out, &mut input).map_err(|c| {
                invalid(
                    frame,
                    format!(
                        "zstd frame at byte {frame}: {}",
                        zstd_safe::get_error_name(c)
                    ),
                )
            })?;
            let (consumed, n) = (input.pos(), out.pos());
            self.pos += consumed;
            self.produced += n as u64;
            if hint == 0 {
                self.frame = None;
                return Ok(n);
            }
            if n > 0 {
                return Ok(n);
            }
            if consumed == 0 && self.ensure(avail + 1)? == avail {
                return Err(frame_error(
                    io::ErrorKind::UnexpectedEof,
                    frame,
                    format!(
                        "zstd frame at byte {frame} is truncated: the payload ends at byte {}",
                        self.payload_end
                    ),
                ));
            }
        }
    }
}

impl<S: ReadAt> Read for ZstdPayloadReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let frame = match self.frame {
                Some(frame) => frame,
                None => {
                    if !self.start_frame()? {
                        return Ok(0);
                    }
                    continue;
                }
            };
            let n = self.decode(frame, buf)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
}
