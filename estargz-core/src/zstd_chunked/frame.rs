//! zstd frames: skippable frames, frame headers and block walking (RFC 8878
//! §3.1, spec §2), and the codec for one frame at a time.
//!
//! Headers and block boundaries are parsed here rather than left to
//! libzstd, because the format's rules are about them: where frames start
//! and end, what a writer must put in the header, which windows a reader
//! agrees to allocate. libzstd then only decodes frames already found
//! acceptable, and never produces more output than asked for.

use super::footer::skippable_header;
use super::{ZstdError, FRAME_MAGIC, SKIPPABLE_HEADER, SKIPPABLE_MAGIC, WRITE_MAX_WINDOW_LOG};
use zstd::zstd_safe::{self, CCtx, CParameter, DCtx, DParameter, InBuffer, OutBuffer};

/// Largest block content (RFC 8878 §3.1.1.2.4).
const MAX_BLOCK: u64 = 128 << 10;
/// Output buffer for bytes decoded only to be skipped.
const SKIP_BUFFER: usize = 64 << 10;

/// A skippable frame around `payload`; its length must fit the u32 field
/// (spec §7.3 rule 3: the references silently truncate it).
pub fn skippable(payload: &[u8]) -> Result<Vec<u8>, ZstdError> {
    let len = u32::try_from(payload.len()).map_err(|_| {
        ZstdError::Write(format!(
            "{} bytes do not fit a skippable frame (at most 4 GiB - 1)",
            payload.len()
        ))
    })?;
    let mut out = Vec::with_capacity(payload.len() + SKIPPABLE_HEADER as usize);
    out.extend_from_slice(&skippable_header(len));
    out.extend_from_slice(payload);
    Ok(out)
}

/// The length field of a skippable frame header, if `bytes` starts with one
/// (any of the 16 skippable magics 0x184D2A5?, as decoders accept them all).
pub fn skippable_len(bytes: &[u8]) -> Option<u64> {
    let h = bytes.get(..8)?;
    let magic_ok = h[0] & 0xf0 == 0x50 && h[1..4] == SKIPPABLE_MAGIC[1..4];
    magic_ok.then(|| u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]])))
}

/// A data frame's header (RFC 8878 §3.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes from the magic to the first block header.
    pub header_len: usize,
    /// Single_Segment_flag: no window descriptor, the window is the content size.
    pub single_segment: bool,
    /// The frame ends with a 4-byte checksum of its content.
    pub checksum: bool,
    /// Dictionary ID, when the header has one (0 is written as none).
    pub dict_id: Option<u32>,
    /// Frame_Content_Size, when present.
    pub content_size: Option<u64>,
    /// Window a decoder needs, in bytes.
    pub window_size: u64,
}

impl FrameHeader {
    /// Parses the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, String> {
        if bytes.len() < 5 {
            return Err(format!("{} bytes cannot hold a frame header", bytes.len()));
        }
        if bytes[..4] != FRAME_MAGIC {
            return Err(format!("magic {:02x?} is not a zstd frame's", &bytes[..4]));
        }
        let fhd = bytes[4];
        if fhd & 0x08 != 0 {
            return Err(format!(
                "frame header descriptor {fhd:#04x} sets the reserved bit"
            ));
        }
        let single_segment = fhd & 0x20 != 0;
        let fcs_len = match (fhd >> 6, single_segment) {
            (0, false) => 0,
            (0, true) => 1,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        let did_len = [0, 1, 2, 4][usize::from(fhd & 3)];
        let wd_len = usize::from(!single_segment);
        let header_len = 5 + wd_len + did_len + fcs_len;
        let field = bytes.get(5..header_len).ok_or_else(|| {
            format!(
                "frame header needs {header_len} bytes, {} given",
                bytes.len()
            )
        })?;
        let le = |b: &[u8]| b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x));
        let dict = le(&field[wd_len..wd_len + did_len]) as u32;
        let fcs = &field[wd_len + did_len..];
        let content_size = match fcs_len {
            0 => None,
            2 => Some(le(fcs) + 256),
            _ => Some(le(fcs)),
        };
        let window_size = if single_segment {
            content_size.unwrap_or(0)
        } else {
            let wd = field[0];
            let log = 10 + u32::from(wd >> 3);
            let base = 1u64 << log;
            base + (base / 8) * u64::from(wd & 7)
        };
        Ok(FrameHeader {
            header_len,
            single_segment,
            checksum: fhd & 0x04 != 0,
            dict_id: (dict != 0).then_some(dict),
            content_size,
            window_size,
        })
    }

    /// Spec §7.4 rule 5: no dictionary, a window of at most 2^`max_window_log` bytes.
    pub fn check_readable(&self, max_window_log: u32) -> Result<(), String> {
        if let Some(id) = self.dict_id {
            return Err(format!(
                "frame needs dictionary {id}; zstd:chunked uses none"
            ));
        }
        let max = 1u64 << max_window_log.min(63);
        if self.window_size > max {
            return Err(format!(
                "frame window of {} bytes exceeds the limit of {max} (windowLog {max_window_log})",
                self.window_size
            ));
        }
        Ok(())
    }

    /// Spec §7.3 rule 2, what this project's frames carry: checksum,
    /// content size, no dictionary, windowLog ≤ 23.
    pub fn check_written(&self) -> Result<(), String> {
        if !self.checksum {
            return Err("frame has no content checksum".into());
        }
        if self.content_size.is_none() {
            return Err("frame has no content size".into());
        }
        self.check_readable(WRITE_MAX_WINDOW_LOG)
    }
}

/// A data frame's extent, found by walking its block headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameExtent {
    /// Its header.
    pub header: FrameHeader,
    /// Compressed length, header to checksum.
    pub len: u64,
    /// Blocks in it.
    pub blocks: u64,
}

/// Finds where the data frame at the start of `bytes` ends without decoding
/// it: reserved block types, oversized blocks and truncation are errors.
pub fn frame_extent(bytes: &[u8]) -> Result<FrameExtent, String> {
    let header = FrameHeader::parse(bytes)?;
    let max_block = header.window_size.clamp(1, MAX_BLOCK);
    let mut at = header.header_len as u64;
    let mut blocks = 0u64;
    loop {
        let h = usize::try_from(at)
            .ok()
            .and_then(|i| bytes.get(i..i + 3))
            .ok_or_else(|| format!("frame truncated: block header expected at frame byte {at}"))?;
        let bh = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
        let (last, kind, size) = (bh & 1 == 1, (bh >> 1) & 3, u64::from(bh >> 3));
        let stored = match kind {
            0 => size,
            1 => 1,
            2 => size,
            _ => return Err(format!("block at frame byte {at} has the reserved type 3")),
        };
        if size > max_block {
            return Err(format!(
                "block at frame byte {at} holds {size} bytes, more than the block maximum {max_block}"
            ));
        }
        at += 3 + stored;
        blocks += 1;
        if last {
            break;
        }
    }
    at += if header.checksum { 4 } else { 0 };
    if at > bytes.len() as u64 {
        return Err(format!(
            "frame truncated: it needs {at} bytes, {} are there",
            bytes.len()
        ));
    }
    Ok(FrameExtent {
        header,
        len: at,
        blocks,
    })
}

/// One frame of a stream of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A data frame.
    Data(FrameExtent),
    /// A skippable frame of this many bytes, header included.
    Skippable(u64),
}

impl Frame {
    /// Bytes the frame takes in the stream.
    pub fn len(&self) -> u64 {
        match self {
            Frame::Data(extent) => extent.len,
            Frame::Skippable(len) => *len,
        }
    }
}

/// The frame at the start of `bytes`, data or skippable.
pub fn next_frame(bytes: &[u8]) -> Result<Frame, String> {
    match skippable_len(bytes) {
        Some(len) if SKIPPABLE_HEADER + len > bytes.len() as u64 => Err(format!(
            "skippable frame of {len} bytes runs past the {} bytes there",
            bytes.len()
        )),
        Some(len) => Ok(Frame::Skippable(SKIPPABLE_HEADER + len)),
        None => frame_extent(bytes).map(Frame::Data),
    }
}

fn codec(what: &str, code: usize) -> ZstdError {
    ZstdError::Codec(format!("{what}: {}", zstd_safe::get_error_name(code)))
}

/// Compresses one member at a time into one frame each (spec §7.3 rule 2).
///
/// Each frame is a function of its bytes and the level alone: libzstd runs
/// single-threaded here, and every frame starts a new session, so a
/// context that compressed other frames first writes the same bytes.
pub struct FrameEncoder {
    cctx: CCtx<'static>,
    level: i32,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("level", &self.level)
            .finish()
    }
}

impl FrameEncoder {
    /// An encoder at zstd `level` (1–22, or negative for the fast levels).
    pub fn new(level: i32) -> Result<FrameEncoder, ZstdError> {
        if level == 0 || level < zstd_safe::min_c_level() || level > zstd_safe::max_c_level() {
            return Err(ZstdError::Write(format!(
                "zstd level {level} is not in {}..=-1 or 1..={}",
                zstd_safe::min_c_level(),
                zstd_safe::max_c_level()
            )));
        }
        let mut cctx = CCtx::try_create().ok_or_else(|| ZstdError::Codec("no memory".into()))?;
        let set = |cctx: &mut CCtx, p: CParameter| {
            cctx.set_parameter(p)
                .map(|_| ())
                .map_err(|c| codec("parameter", c))
        };
        set(&mut cctx, CParameter::CompressionLevel(level))?;
        set(&mut cctx, CParameter::ChecksumFlag(true))?;
        set(&mut cctx, CParameter::ContentSizeFlag(true))?;
        set(&mut cctx, CParameter::DictIdFlag(false))?;
        // Levels up to 19 use windows of at most 8 MiB (libzstd's clevels.h,
        // and smaller still for smaller frames); 20-22 use 32-128 MiB, which
        // readers may refuse to allocate.
        if level >= 20 {
            set(&mut cctx, CParameter::WindowLog(WRITE_MAX_WINDOW_LOG))?;
        }
        Ok(FrameEncoder { cctx, level })
    }

    /// The level.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Appends `data` to `out` as one frame with content size and checksum.
    /// Empty data is refused: writers never emit an empty frame (spec §7.3 rule 1).
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ZstdError> {
        if data.is_empty() {
            return Err(ZstdError::Write("an empty frame was requested".into()));
        }
        let start = out.len();
        out.reserve(zstd_safe::compress_bound(data.len()));
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        self.cctx
            .compress2(&mut cursor, data)
            .map_err(|c| codec("compressing", c))?;
        Ok(())
    }

    /// `data` as one frame in a skippable frame (the TOC and tar-split
    /// layout, spec §7.3 rule 3); returns the skippable frame and the
    /// compressed frame's length.
    pub fn skippable(&mut self, data: &[u8]) -> Result<(Vec<u8>, u64), ZstdError> {
        let mut frame = Vec::new();
        self.compress(data, &mut frame)?;
        let len = frame.len() as u64;
        Ok((skippable(&frame)?, len))
    }
}

/// Decodes single frames, within a window limit, never producing more than asked.
pub struct FrameDecoder {
    dctx: DCtx<'static>,
    max_window_log: u32,
    skip: Vec<u8>,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("max_window_log", &self.max_window_log)
            .finish()
    }
}

impl FrameDecoder {
    /// A decoder refusing windows above 2^`max_window_log` bytes (10–31).
    pub fn new(max_window_log: u32) -> Result<FrameDecoder, ZstdError> {
        let mut dctx = DCtx::try_create().ok_or_else(|| ZstdError::Codec("no memory".into()))?;
        dctx.set_parameter(DParameter::WindowLogMax(max_window_log))
            .map_err(|c| codec("window limit", c))?;
        Ok(FrameDecoder {
            dctx,
            max_window_log,
            skip: Vec::new(),
        })
    }

    /// Decodes the one frame that is all of `frame` into exactly `len`
    /// bytes: a frame that holds more or fewer, a content size other than
    /// `len`, a bad checksum, or bytes after the frame are errors.
    ///
    /// `len` is allocated: the caller checks it against its cap first.
    pub fn decode_exact(&mut self, frame: &[u8], len: u64) -> Result<Vec<u8>, String> {
        self.check_exact(frame, len)?;
        let cap = usize::try_from(len).map_err(|_| format!("{len} bytes do not fit in memory"))?;
        let mut out = Vec::new();
        out.try_reserve_exact(cap)
            .map_err(|_| format!("cannot allocate {len} bytes"))?;
        self.reset()?;
        // One frame, checked above: libzstd writes at most `cap` bytes and
        // fails on more, verifying the checksum at the end.
        let n = self
            .dctx
            .decompress(&mut out, frame)
            .map_err(|c| format!("decoding: {}", zstd_safe::get_error_name(c)))?;
        if n as u64 != len {
            return Err(format!("frame decodes to {n} bytes, expected {len}"));
        }
        Ok(out)
    }

    /// What [`decode_exact`](Self::decode_exact) checks before decoding:
    /// the frame's blocks end exactly at the end of `frame`, its window is
    /// within the limit, and any content size it states is `len`.
    fn check_exact(&self, frame: &[u8], len: u64) -> Result<(), String> {
        let extent = frame_extent(frame)?;
        extent.header.check_readable(self.max_window_log)?;
        if extent.len != frame.len() as u64 {
            return Err(format!(
                "{} bytes follow the frame's {}",
                frame.len() as u64 - extent.len,
                extent.len
            ));
        }
        if let Some(fcs) = extent.header.content_size.filter(|&c| c != len) {
            return Err(format!("frame content size is {fcs}, expected {len}"));
        }
        Ok(())
    }

    /// [`decode_exact`](Self::decode_exact) as a reader: the same checks
    /// first, then the frame decoded as it is read, never more than `len`
    /// bytes held. Its read errors (a frame decoding to more or fewer than
    /// `len` bytes, a bad checksum, a truncated frame) carry the reason.
    pub fn reader<'a>(&'a mut self, frame: &'a [u8], len: u64) -> Result<ExactReader<'a>, String> {
        self.check_exact(frame, len)?;
        self.reset()?;
        Ok(ExactReader {
            dctx: &mut self.dctx,
            input: InBuffer::around(frame),
            produced: 0,
            len,
            done: false,
        })
    }

    /// Decodes `want` bytes of the data frame at the start of `input`, after
    /// skipping its first `skip` bytes, and stops there: a frame expanding
    /// to gigabytes costs no more than the bytes asked for (spec §7.5). The
    /// checksum is verified only when the frame ends within those bytes.
    pub fn decode_prefix(&mut self, input: &[u8], skip: u64, want: u64) -> Result<Vec<u8>, String> {
        let header = FrameHeader::parse(input)?;
        header.check_readable(self.max_window_log)?;
        if let Some(fcs) = header.content_size {
            if fcs < skip.saturating_add(want) {
                return Err(format!(
                    "frame content size {fcs} is shorter than the {skip} + {want} bytes needed"
                ));
            }
        }
        let cap =
            usize::try_from(want).map_err(|_| format!("{want} bytes do not fit in memory"))?;
        self.reset()?;
        let mut input = InBuffer::around(input);
        let mut skipped = 0u64;
        while skipped < skip {
            let n = (skip - skipped).min(SKIP_BUFFER as u64) as usize;
            self.skip.resize(n, 0);
            let mut out = OutBuffer::around(&mut self.skip[..n]);
            let done = stream(&mut self.dctx, &mut out, &mut input)?;
            skipped += out.pos() as u64;
            // Whatever follows the frame in `input` is another frame: a
            // chunk never continues into it.
            if done && (skipped < skip || want > 0) {
                return Err(format!(
                    "frame ends after {skipped} bytes, {want} needed from byte {skip}"
                ));
            }
        }
        let mut data = Vec::new();
        data.try_reserve_exact(cap)
            .map_err(|_| format!("cannot allocate {want} bytes"))?;
        while data.len() < cap {
            let pos = data.len();
            let mut out = OutBuffer::around_pos(&mut data, pos);
            let done = stream(&mut self.dctx, &mut out, &mut input)?;
            if done && data.len() < cap {
                return Err(format!(
                    "frame ends after {} bytes, {want} needed from byte {skip}",
                    skip + data.len() as u64
                ));
            }
        }
        // The vector may have been given more room than asked for.
        data.truncate(cap);
        Ok(data)
    }

    fn reset(&mut self) -> Result<(), String> {
        self.dctx
            .reset(zstd_safe::ResetDirective::SessionOnly)
            .map(|_| ())
            .map_err(|c| format!("reset: {}", zstd_safe::get_error_name(c)))
    }
}

/// One frame, decoded as it is read: see [`FrameDecoder::reader`].
pub struct ExactReader<'a> {
    dctx: &'a mut DCtx<'static>,
    input: InBuffer<'a>,
    produced: u64,
    len: u64,
    done: bool,
}

impl std::io::Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let fail = |reason: String| std::io::Error::other(reason);
        loop {
            let mut out = OutBuffer::around(&mut *buf);
            let done = stream(self.dctx, &mut out, &mut self.input).map_err(fail)?;
            let n = out.pos();
            self.produced += n as u64;
            if self.produced > self.len {
                return Err(fail(format!(
                    "frame decodes to more than {} bytes",
                    self.len
                )));
            }
            if done {
                self.done = true;
                if self.produced != self.len {
                    let (n, len) = (self.produced, self.len);
                    return Err(fail(format!("frame decodes to {n} bytes, expected {len}")));
                }
            }
            // libzstd may consume input without producing output yet.
            if n > 0 || done {
                return Ok(n);
            }
        }
    }
}

/// One streaming step; true once the frame is complete. No progress on
/// either side means the input ended inside the frame.
fn stream<C: zstd_safe::WriteBuf + ?Sized>(
    dctx: &mut DCtx<'static>,
    out: &mut OutBuffer<'_, C>,
    input: &mut InBuffer<'_>,
) -> Result<bool, String> {
    let (in_before, out_before) = (input.pos(), out.pos());
    let hint = dctx
        .decompress_stream(out, input)
        .map_err(|c| format!("decoding: {}", zstd_safe::get_error_name(c)))?;
    if hint == 0 {
        return Ok(true);
    }
    if input.pos() == in_before && out.pos() == out_before && out.pos() < out.capacity() {
        return Err("frame truncated".into());
    }
    Ok(false)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"the quick brown fox jumps over the lazy dog "[i % 44] ^ (i / 997) as u8)
            .collect()
    }

    /// A frame as the references often write them: no content size.
    pub fn no_content_size(data: &[u8]) -> Vec<u8> {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::ContentSizeFlag(false))
            .unwrap();
        cctx.set_parameter(CParameter::ChecksumFlag(true)).unwrap();
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(data.len()));
        cctx.compress2(&mut out, data).unwrap();
        out
    }

    fn frame(level: i32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FrameEncoder::new(level)
            .unwrap()
            .compress(data, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn skippable_frames_round_trip() {
        let f = skippable(b"hello").unwrap();
        assert_eq!(&f[..8], &[0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]);
        assert_eq!(skippable_len(&f), Some(5));
        assert_eq!(next_frame(&f), Ok(Frame::Skippable(13)));
        assert!(next_frame(&f[..12]).is_err());
        // Every magic of the skippable range is one; others are not.
        let mut g = f.clone();
        g[0] = 0x5f;
        assert_eq!(skippable_len(&g), Some(5));
        g[0] = 0x60;
        assert_eq!(skippable_len(&g), None);
        assert_eq!(skippable_len(&f[..7]), None);
    }

    /// Z13 on frames of several sizes and levels.
    #[test]
    fn written_frames_carry_checksum_content_size_and_a_small_window() {
        for (level, len) in [(1, 1), (3, 1000), (3, 300_000), (10, 9 << 20), (19, 70_000)] {
            let data = text(len);
            let f = frame(level, &data);
            let extent = frame_extent(&f).unwrap();
            assert_eq!(extent.len, f.len() as u64, "level {level} len {len}");
            extent.header.check_written().unwrap();
            assert_eq!(extent.header.content_size, Some(len as u64));
            let mut d = FrameDecoder::new(27).unwrap();
            assert!(d.decode_exact(&f, len as u64).unwrap() == data);
        }
    }

    /// Levels 20-22 default to windows of 32-128 MiB: capped at 8 MiB.
    #[test]
    fn ultra_levels_keep_window_log_23() {
        let data = text(9 << 20);
        let f = frame(20, &data);
        let h = FrameHeader::parse(&f).unwrap();
        assert!(!h.single_segment);
        assert_eq!(h.window_size, 1 << 23);
        h.check_written().unwrap();
    }

    #[test]
    fn frames_do_not_depend_on_what_the_encoder_did_before() {
        let (a, b) = (text(200_000), text(5000));
        let fresh = frame(3, &b);
        let mut enc = FrameEncoder::new(3).unwrap();
        let mut out = b"prefix".to_vec();
        enc.compress(&a, &mut out).unwrap();
        let first = out.len();
        enc.compress(&b, &mut out).unwrap();
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(out[first..], fresh[..]);
        let parallel: Vec<Vec<u8>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| frame(3, &b))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(parallel.iter().all(|f| *f == fresh));
    }

    #[test]
    fn refuses_bad_levels_and_empty_frames() {
        assert!(FrameEncoder::new(0).is_err());
        assert!(FrameEncoder::new(23).is_err());
        let mut enc = FrameEncoder::new(-1).unwrap();
        assert!(enc.compress(b"", &mut Vec::new()).is_err());
    }

    #[test]
    fn decode_exact_refuses_wrong_lengths_and_trailing_bytes() {
        let data = text(5000);
        let f = frame(3, &data);
        let mut d = FrameDecoder::new(27).unwrap();
        assert!(d
            .decode_exact(&f, 4999)
            .unwrap_err()
            .contains("content size"));
        assert!(d
            .decode_exact(&f, 5001)
            .unwrap_err()
            .contains("content size"));
        let mut extra = f.clone();
        extra.push(0);
        assert!(d.decode_exact(&extra, 5000).unwrap_err().contains("follow"));
        assert!(d.decode_exact(&f[..f.len() - 1], 5000).is_err());
        // The decoder is usable after every failure.
        assert!(d.decode_exact(&f, 5000).unwrap() == data);
    }

    #[test]
    fn decode_prefix_skips_and_stops() {
        let data = text(300_000);
        let f = frame(3, &data);
        let mut d = FrameDecoder::new(27).unwrap();
        assert!(d.decode_prefix(&f, 0, 10).unwrap() == data[..10]);
        assert!(d.decode_prefix(&f, 200_000, 100_000).unwrap() == data[200_000..]);
        assert!(d.decode_prefix(&f, 100_001, 3).unwrap() == data[100_001..100_004]);
        assert!(d.decode_prefix(&f, 200_000, 100_001).is_err());
        // Without a content size the shortfall shows when the frame ends.
        let rebuilt = no_content_size(&data);
        assert_eq!(FrameHeader::parse(&rebuilt).unwrap().content_size, None);
        assert!(d.decode_prefix(&rebuilt, 0, 300_000).unwrap() == data);
        let err = d.decode_prefix(&rebuilt, 299_999, 2).unwrap_err();
        assert!(err.contains("ends after 300000"), "{err}");
        assert!(d
            .decode_prefix(&rebuilt[..rebuilt.len() / 2], 0, 300_000)
            .is_err());
        // A chunk never runs on into the next frame, whether the first ends
        // while skipping or while reading.
        let mut two = rebuilt.clone();
        two.extend_from_slice(&f);
        assert!(d.decode_prefix(&two, 300_000, 1).is_err());
        assert!(d.decode_prefix(&two, 299_000, 1001).is_err());
        assert!(d.decode_prefix(&two, 299_000, 1000).unwrap() == data[299_000..]);
    }
}
