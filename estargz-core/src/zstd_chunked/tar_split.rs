//! tar-split (spec §4.5): the NDJSON stream of the containers dialect
//! (C56, C64) that lets a client rebuild the exact tar from the files it
//! has: every tar byte outside file contents as base64 `segment`s, and for
//! every entry a `file` line with its name, size and CRC-64 (vbatts/tar-split
//! `tar/storage`, `tar/asm`).
//!
//! ```text
//! {"type":2,"payload":"<base64>","position":0}
//! {"type":1,"name":"foo/bar.txt","size":13,"payload":"O7Wrbp3hjDc=","position":1}
//! ```
//!
//! Segmentation is part of the format: current containers/storage reads a
//! tar header out of each segment (`asm.IterateHeaders`), so a segment
//! holds the previous entry's padding and all of one entry's header blocks
//! (PAX `x`, GNU `L`/`K`, the header); at the end one segment holds the last
//! padding and both end-of-archive blocks, then the trailing bytes, then an
//! empty segment.
//!
//! Reading is streaming over the decoded bytes: nothing is allocated per
//! line beyond the line itself, so a stream within its cap cannot make the
//! reader allocate more.

use super::footer::TarSplitLocation;
use super::frame::FrameDecoder;
use super::toc::MetadataFrame;
use super::{Limits, ZstdError};
use crate::digest::Digest;
use crate::toc::write_go_string;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::HashSet;

const FILE: i64 = 1;
/// Length of a CRC-64 (8 bytes) in base64.
const CRC_BASE64_LEN: usize = 12;
const SEGMENT: i64 = 2;

/// One line of a tar-split stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarSplitItem {
    /// Raw tar bytes: headers, padding, end-of-archive, trailing bytes.
    Segment(Vec<u8>),
    /// An entry: its contents (`size` bytes, none for links and
    /// directories) follow in the tar.
    File {
        /// The tar header's name (`name`, or the raw bytes of `name_raw`).
        name: Vec<u8>,
        /// Content length.
        size: u64,
        /// CRC-64/ISO of the content, big-endian; `None` when `size` is 0.
        crc: Option<[u8; 8]>,
    },
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: i64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_raw: Option<String>,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    payload: Option<String>,
    position: i64,
}

/// Iterates over the lines of a decoded tar-split stream, checking each.
#[derive(Debug, Clone)]
pub struct TarSplitReader<'a> {
    rest: &'a [u8],
    position: u64,
}

impl<'a> TarSplitReader<'a> {
    /// A reader of `stream`, the decompressed tar-split frame.
    pub fn new(stream: &'a [u8]) -> Self {
        TarSplitReader {
            rest: stream,
            position: 0,
        }
    }

    /// Lines read so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    fn err(&self, reason: String) -> ZstdError {
        ZstdError::TarSplit {
            position: self.position,
            reason,
        }
    }

    fn parse(&self, line: &[u8]) -> Result<TarSplitItem, ZstdError> {
        let l: Line =
            serde_json::from_slice(line).map_err(|e| self.err(format!("not JSON: {e}")))?;
        if u64::try_from(l.position).ok() != Some(self.position) {
            return Err(self.err(format!(
                "position {}, expected {}",
                l.position, self.position
            )));
        }
        let b64 = |field: &str, v: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .map_err(|e| self.err(format!("{field}: bad base64: {e}")))
        };
        let payload = l
            .payload
            .as_deref()
            .map(|p| b64("payload", p))
            .transpose()?;
        match l.kind {
            SEGMENT => Ok(TarSplitItem::Segment(payload.unwrap_or_default())),
            FILE => {
                let name = match (l.name, l.name_raw) {
                    (_, Some(raw)) => b64("name_raw", &raw)?,
                    (Some(name), None) => name.into_bytes(),
                    (None, None) => Vec::new(),
                };
                let size = u64::try_from(l.size)
                    .map_err(|_| self.err(format!("negative size {}", l.size)))?;
                let crc = match (size, payload) {
                    (0, None) => None,
                    (_, Some(p)) => Some(<[u8; 8]>::try_from(p.as_slice()).map_err(|_| {
                        self.err(format!("CRC-64 of {} bytes, expected 8", p.len()))
                    })?),
                    (_, None) => {
                        return Err(self.err(format!("file of {size} bytes without a CRC-64")))
                    }
                };
                Ok(TarSplitItem::File { name, size, crc })
            }
            other => Err(self.err(format!("unknown entry type {other}"))),
        }
    }
}

impl Iterator for TarSplitReader<'_> {
    type Item = Result<TarSplitItem, ZstdError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Go's decoder tolerates a last line without its newline.
        let end = self.rest.iter().position(|&b| b == b'\n');
        let (line, rest) = match end {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &[][..]),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            if rest.is_empty() {
                self.rest = rest;
                return None;
            }
            let e = self.err("empty line".into());
            self.rest = &[];
            return Some(Err(e));
        }
        let item = self.parse(line);
        self.rest = if item.is_ok() { rest } else { &[] };
        self.position += 1;
        Some(item)
    }
}

/// CRC-64 with the ISO polynomial, as Go's `hash/crc64` computes it
/// (reflected, inverted in and out), by 8 bytes at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crc64(u64);

const CRC_TABLES: [[u64; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u64; 256]; 8] {
    const POLY: u64 = 0xD800_0000_0000_0000;
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut j = 0;
        while j < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            j += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

impl Crc64 {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        let t = &CRC_TABLES;
        let mut crc = !self.0;
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let mut v = [0u8; 8];
            v.copy_from_slice(w);
            crc ^= u64::from_le_bytes(v);
            crc = t[7][(crc & 0xff) as usize]
                ^ t[6][(crc >> 8 & 0xff) as usize]
                ^ t[5][(crc >> 16 & 0xff) as usize]
                ^ t[4][(crc >> 24 & 0xff) as usize]
                ^ t[3][(crc >> 32 & 0xff) as usize]
                ^ t[2][(crc >> 40 & 0xff) as usize]
                ^ t[1][(crc >> 48 & 0xff) as usize]
                ^ t[0][(crc >> 56) as usize];
        }
        for &b in words.remainder() {
            crc = t[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.0 = !crc;
    }

    /// The checksum as tar-split stores it: 8 bytes, big-endian.
    pub fn bytes(&self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

/// Checks a tar stream, fed in order, against a tar-split stream: every
/// segment byte equal, every file's size and CRC-64 matching, nothing
/// missing or left over (spec §7.4 rule 6: reassembly gives the tar).
pub struct TarSplitMatcher<'a> {
    lines: TarSplitReader<'a>,
    current: Current,
    /// Tar bytes matched so far.
    offset: u64,
    files: u64,
}

enum Current {
    None,
    Segment(Vec<u8>, usize),
    File {
        name: Vec<u8>,
        left: u64,
        crc: Crc64,
        want: Option<[u8; 8]>,
    },
}

impl<'a> TarSplitMatcher<'a> {
    /// A matcher against the decoded tar-split `stream`.
    pub fn new(stream: &'a [u8]) -> Self {
        TarSplitMatcher {
            lines: TarSplitReader::new(stream),
            current: Current::None,
            offset: 0,
            files: 0,
        }
    }

    fn err(&self, reason: String) -> ZstdError {
        ZstdError::TarSplit {
            position: self.lines.position().saturating_sub(1),
            reason: format!("at tar byte {}: {reason}", self.offset),
        }
    }

    /// The next line with bytes to match, `false` when the stream ended.
    /// Files of no content are checked and passed here.
    fn advance(&mut self) -> Result<bool, ZstdError> {
        loop {
            match self.lines.next().transpose()? {
                None => return Ok(false),
                Some(TarSplitItem::Segment(bytes)) if bytes.is_empty() => continue,
                Some(TarSplitItem::Segment(bytes)) => self.current = Current::Segment(bytes, 0),
                Some(TarSplitItem::File { size: 0, .. }) => {
                    self.files += 1;
                    continue;
                }
                Some(TarSplitItem::File { name, size, crc }) => {
                    self.files += 1;
                    self.current = Current::File {
                        name,
                        left: size,
                        crc: Crc64::default(),
                        want: crc,
                    };
                }
            }
            return Ok(true);
        }
    }

    /// Matches the next tar bytes.
    pub fn update(&mut self, mut tar: &[u8]) -> Result<(), ZstdError> {
        while !tar.is_empty() {
            let (n, done) = match &mut self.current {
                Current::None => {
                    if !self.advance()? {
                        return Err(self.err(format!(
                            "the tar goes on for {} bytes after the tar-split ends",
                            tar.len()
                        )));
                    }
                    continue;
                }
                Current::Segment(bytes, at) => {
                    let n = tar.len().min(bytes.len() - *at);
                    if tar[..n] != bytes[*at..*at + n] {
                        let i = (0..n).find(|&i| tar[i] != bytes[*at + i]).unwrap_or(0);
                        return Err(self.err(format!(
                            "tar byte {} differs from the tar-split segment",
                            self.offset + i as u64
                        )));
                    }
                    *at += n;
                    (n, *at == bytes.len())
                }
                Current::File { left, crc, .. } => {
                    let n = (tar.len() as u64).min(*left) as usize;
                    crc.update(&tar[..n]);
                    *left -= n as u64;
                    (n, *left == 0)
                }
            };
            if done {
                self.close_current()?;
            }
            self.offset += n as u64;
            tar = &tar[n..];
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), ZstdError> {
        if let Current::File {
            name, crc, want, ..
        } = &self.current
        {
            if Some(crc.bytes()) != *want {
                return Err(self.err(format!(
                    "contents of {:?} do not match their CRC-64",
                    String::from_utf8_lossy(name)
                )));
            }
        }
        self.current = Current::None;
        Ok(())
    }

    /// The tar ended: the tar-split must have ended too. Returns the number
    /// of file lines and tar bytes matched.
    pub fn finish(mut self) -> Result<(u64, u64), ZstdError> {
        match &self.current {
            Current::None => {}
            Current::Segment(bytes, at) => {
                return Err(self.err(format!(
                    "the tar ends {} bytes into a {}-byte segment",
                    at,
                    bytes.len()
                )))
            }
            Current::File { name, left, .. } => {
                return Err(self.err(format!(
                    "the tar ends with {left} bytes of {:?} missing",
                    String::from_utf8_lossy(name)
                )))
            }
        }
        if self.advance()? {
            return Err(self.err("the tar ends before the tar-split does".into()));
        }
        Ok((self.files, self.offset))
    }
}

/// Rebuilds the tar from a tar-split stream and the files' contents, which
/// `contents` returns by name and size; each is checked against its size and
/// CRC-64. Returns the tar bytes written. The tests' independent check:
/// `verify` streams the payload through [`TarSplitMatcher`] instead.
#[cfg(test)]
pub fn reassemble<W: std::io::Write>(
    stream: &[u8],
    mut contents: impl FnMut(&[u8], u64) -> Result<Vec<u8>, String>,
    mut out: W,
) -> Result<u64, ZstdError> {
    let mut lines = TarSplitReader::new(stream);
    let mut written = 0u64;
    while let Some(item) = lines.next() {
        let position = lines.position() - 1;
        let err = |reason: String| ZstdError::TarSplit { position, reason };
        let bytes = match item? {
            TarSplitItem::Segment(bytes) => bytes,
            TarSplitItem::File { size: 0, .. } => continue,
            TarSplitItem::File { name, size, crc } => {
                let data = contents(&name, size).map_err(err)?;
                let mut got = Crc64::default();
                got.update(&data);
                if data.len() as u64 != size || Some(got.bytes()) != crc {
                    return Err(err(format!(
                        "contents of {:?} do not match its size {size} and CRC-64",
                        String::from_utf8_lossy(&name)
                    )));
                }
                data
            }
        };
        out.write_all(&bytes)
            .map_err(|e| err(format!("writing: {e}")))?;
        written += bytes.len() as u64;
    }
    Ok(written)
}

/// Checks the file lines against the TOC's entries (chunks left out), one
/// to one and in order: same name and size, what current containers/storage
/// requires before a partial pull (`ensureTOCMatchesTarSplit`, spec §4.5).
/// `toc` yields (name, size) per non-chunk entry.
pub fn check_against_toc<'t>(
    stream: &[u8],
    toc: impl IntoIterator<Item = (&'t str, u64)>,
) -> Result<(), ZstdError> {
    let mut lines = TarSplitReader::new(stream);
    let mut toc = toc.into_iter();
    loop {
        let file = loop {
            match lines.next().transpose()? {
                Some(TarSplitItem::File { name, size, .. }) => break Some((name, size)),
                Some(TarSplitItem::Segment(_)) => continue,
                None => break None,
            }
        };
        let position = lines.position().saturating_sub(1);
        let err = |reason: String| ZstdError::TarSplit { position, reason };
        match (file, toc.next()) {
            (None, None) => return Ok(()),
            (Some((name, size)), Some((toc_name, toc_size))) => {
                let name = crate::tar::lossy_utf8(&name);
                if name != toc_name || size != toc_size {
                    return Err(err(format!(
                        "entry {name:?} of {size} bytes, the TOC has {toc_name:?} of {toc_size}"
                    )));
                }
            }
            (Some((name, _)), None) => {
                return Err(err(format!(
                    "entry {:?} is not in the TOC",
                    crate::tar::lossy_utf8(&name)
                )))
            }
            (None, Some((toc_name, _))) => {
                return Err(err(format!(
                    "TOC entry {toc_name:?} is not in the tar-split"
                )))
            }
        }
    }
}

/// Checks the caps, then decodes the tar-split frame at `location`: `bytes`
/// is the blob range of [`MetadataFrame::range`]. Returns the stream and
/// the sha256 of the compressed frame, which the TOC's `tarSplitDigest`
/// must equal.
pub fn decode_tar_split_frame(
    location: &TarSplitLocation,
    bytes: &[u8],
    limits: &Limits,
    decoder: &mut FrameDecoder,
) -> Result<(Vec<u8>, Digest), ZstdError> {
    let frame = MetadataFrame::tar_split(location);
    frame.check_limits(limits.max_tar_split_compressed, limits.max_tar_split)?;
    frame.decode(bytes, decoder)
}

/// Writes a tar-split stream as the containers writer does (Go's
/// `json.Encoder`, one line per entry, positions from 0).
#[derive(Debug, Default)]
pub struct TarSplitWriter {
    out: Vec<u8>,
    position: u64,
    seen: HashSet<Vec<u8>>,
}

impl TarSplitWriter {
    /// An empty stream.
    pub fn new() -> Self {
        TarSplitWriter::default()
    }

    /// Raw tar bytes: one segment per entry (previous padding and all of
    /// its header blocks), see the module docs.
    pub fn segment(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(b"{\"type\":2,\"payload\":\"");
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.out.extend_from_slice(encoded.as_bytes());
        self.out.extend_from_slice(b"\",\"position\":");
        self.end_line();
    }

    /// An entry's line after its header segment: its name as the tar
    /// header gives it, its size and the CRC-64 of its `size` content bytes
    /// ([`Crc64`]). Names that clean to one already written are refused, as
    /// the tar-split packer refuses them (`duplicates of file paths not
    /// supported`).
    pub fn file(&mut self, name: &[u8], size: u64, crc: Option<Crc64>) -> Result<(), ZstdError> {
        if !self.seen.insert(go_clean(name)) {
            return Err(ZstdError::Write(format!(
                "duplicate name {:?}: tar-split (and so the containers dialect) cannot carry it",
                String::from_utf8_lossy(name)
            )));
        }
        if size > i64::MAX as u64 || (size > 0) != crc.is_some() {
            return Err(ZstdError::Write(format!(
                "entry {:?}: size {size} and CRC-64 disagree",
                String::from_utf8_lossy(name)
            )));
        }
        self.out.extend_from_slice(b"{\"type\":1,");
        match std::str::from_utf8(name) {
            Ok(text) => {
                self.out.extend_from_slice(b"\"name\":");
                write_go_string(&mut self.out, text);
            }
            Err(_) => {
                self.out.extend_from_slice(b"\"name_raw\":\"");
                let encoded = base64::engine::general_purpose::STANDARD.encode(name);
                self.out.extend_from_slice(encoded.as_bytes());
                self.out.push(b'"');
            }
        }
        if size > 0 {
            self.out
                .extend_from_slice(format!(",\"size\":{size}").as_bytes());
        }
        match crc {
            Some(crc) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(crc.bytes());
                self.out.extend_from_slice(b",\"payload\":\"");
                self.out.extend_from_slice(encoded.as_bytes());
                self.out.extend_from_slice(b"\",\"position\":");
            }
            None => self
                .out
                .extend_from_slice(b",\"payload\":null,\"position\":"),
        }
        self.end_line();
        Ok(())
    }

    /// [`file`](Self::file) for an entry whose CRC-64 is not known yet (the
    /// converter hashes file data on another thread): the line gets a
    /// placeholder of the CRC's fixed size, and the returned position
    /// (`None` for an entry without content) is where [`patch_crc`](Self::patch_crc)
    /// puts the real one.
    pub fn file_deferred(&mut self, name: &[u8], size: u64) -> Result<Option<usize>, ZstdError> {
        let crc = (size > 0).then(Crc64::default);
        self.file(name, size, crc)?;
        // The line ends `"<12 base64 bytes>","position":N}\n`.
        let tail = "\",\"position\":".len() + (self.position - 1).to_string().len() + 2;
        Ok(crc.map(|_| self.out.len() - tail - CRC_BASE64_LEN))
    }

    /// Puts `crc` where [`file_deferred`](Self::file_deferred) left its placeholder.
    pub fn patch_crc(&mut self, at: usize, crc: Crc64) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(crc.bytes());
        if let Some(slot) = self.out.get_mut(at..at + CRC_BASE64_LEN) {
            slot.copy_from_slice(encoded.as_bytes());
        }
    }

    fn end_line(&mut self) {
        self.out
            .extend_from_slice(self.position.to_string().as_bytes());
        self.out.extend_from_slice(b"}\n");
        self.position += 1;
    }

    /// Ends the stream after the end-of-archive segment: the trailing bytes
    /// in one segment (when there are any), then the empty segment the
    /// packer always ends with (spec §7.3 rule 5).
    pub fn finish(mut self, trailing: &[u8]) -> Vec<u8> {
        if !trailing.is_empty() {
            self.segment(trailing);
        }
        self.segment(b"");
        self.out
    }
}

/// Go's `filepath.Clean`, on bytes: the key tar-split de-duplicates by.
fn go_clean(name: &[u8]) -> Vec<u8> {
    let rooted = name.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in name.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." if parts.last().is_some_and(|p| *p != b"..") => {
                parts.pop();
            }
            b".." if rooted => {}
            s => parts.push(s),
        }
    }
    let mut out = if rooted { b"/".to_vec() } else { Vec::new() };
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::tar::{Item, NamePolicy, ScanLimits, Scanner};

    /// The tar-split the containers writer makes of `tar`, built from the
    /// scanner's raw bytes (the same segmentation: see the module docs).
    pub fn split_of(tar: &[u8]) -> Vec<u8> {
        let mut scanner = Scanner::new(tar, NamePolicy::Replace, ScanLimits::default());
        let mut w = TarSplitWriter::new();
        loop {
            match scanner.next_item().unwrap() {
                Some(Item::Entry(e)) => {
                    w.segment(&e.raw);
                    let mut data = Vec::new();
                    scanner.read_data(&mut data, e.size).unwrap();
                    let crc = (e.size > 0).then(|| {
                        let mut c = Crc64::default();
                        c.update(&data);
                        c
                    });
                    w.file(&e.raw_name, e.size, crc).unwrap();
                }
                Some(Item::End { mut raw, .. }) => {
                    // Go's tar reader takes both end-of-archive blocks.
                    scanner.read_trailing(&mut raw, 512).unwrap();
                    w.segment(&raw);
                    let mut trailing = Vec::new();
                    while scanner.read_trailing(&mut trailing, 1 << 20).unwrap() > 0 {}
                    return w.finish(&trailing);
                }
                None => return w.finish(b""),
            }
        }
    }

    fn crc(data: &[u8]) -> [u8; 8] {
        let mut c = Crc64::default();
        c.update(data);
        c.bytes()
    }

    #[test]
    fn crc64_is_gos_iso_crc() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(crc(b"Some contents"));
        assert_eq!(b64, "O7Wrbp3hjDc=");
        assert_eq!(crc(b""), [0; 8]);
        // Slicing by 8 and byte by byte agree, at every split.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for split in [0, 1, 7, 8, 9, 500, 999] {
            let mut c = Crc64::default();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.bytes(), crc(&data));
        }
        // Check value of CRC-64/GO-ISO ("123456789").
        assert_eq!(u64::from_be_bytes(crc(b"123456789")), 0xb909_56c7_75a4_1001);
    }

    /// Z16/§4.8: small.tar's tar-split is 13,958 bytes, segments 512, file
    /// `foo/`, 512, file `foo/bar.txt` (13), 1,523, 7,680, empty.
    #[test]
    fn splits_small_tar_as_the_worked_example() {
        let tar = std::fs::read(super::super::fixtures::path("small.tar")).unwrap();
        let split = split_of(&tar);
        assert_eq!(split.len(), 13958);
        let items: Vec<TarSplitItem> = TarSplitReader::new(&split).map(Result::unwrap).collect();
        let shape: Vec<(char, usize)> = items
            .iter()
            .map(|i| match i {
                TarSplitItem::Segment(b) => ('s', b.len()),
                TarSplitItem::File { size, .. } => ('f', *size as usize),
            })
            .collect();
        assert_eq!(
            shape,
            [
                ('s', 512),
                ('f', 0),
                ('s', 512),
                ('f', 13),
                ('s', 1523),
                ('s', 7680),
                ('s', 0)
            ]
        );
        assert_eq!(
            items[3],
            TarSplitItem::File {
                name: b"foo/bar.txt".to_vec(),
                size: 13,
                crc: Some(crc(b"Some contents"))
            }
        );
        let text = String::from_utf8(split.clone()).unwrap();
        assert!(text.contains(
            "{\"type\":1,\"name\":\"foo/bar.txt\",\"size\":13,\"payload\":\"O7Wrbp3hjDc=\",\"position\":3}\n"
        ));
        assert!(text.contains("{\"type\":1,\"name\":\"foo/\",\"payload\":null,\"position\":1}\n"));
        assert!(text.ends_with("{\"type\":2,\"payload\":\"\",\"position\":6}\n"));

        let mut m = TarSplitMatcher::new(&split);
        for piece in tar.chunks(1000) {
            m.update(piece).unwrap();
        }
        assert_eq!(m.finish().unwrap(), (2, 10240));
        let mut rebuilt = Vec::new();
        let n = reassemble(
            &split,
            |name, _| {
                assert_eq!(name, b"foo/bar.txt");
                Ok(b"Some contents".to_vec())
            },
            &mut rebuilt,
        )
        .unwrap();
        assert_eq!((n, rebuilt == tar), (10240, true));
        check_against_toc(&split, [("foo/", 0), ("foo/bar.txt", 13)]).unwrap();
        assert!(check_against_toc(&split, [("foo/", 0), ("foo/bar.txt", 12)]).is_err());
        assert!(check_against_toc(&split, [("foo/", 0)]).is_err());
        assert!(check_against_toc(&split, [("foo/", 0), ("foo/bar.txt", 13), ("x", 0)]).is_err());
    }

    #[test]
    fn matcher_finds_every_difference() {
        let tar = std::fs::read(super::super::fixtures::path("small.tar")).unwrap();
        let split = split_of(&tar);
        let run = |t: &[u8]| {
            let mut m = TarSplitMatcher::new(&split);
            m.update(t).and_then(|_| m.finish())
        };
        for at in [0, 600, 1030, 2000, 10239] {
            let mut bad = tar.clone();
            bad[at] ^= 1;
            let err = run(&bad).unwrap_err().to_string();
            assert!(
                err.contains("tar byte") || err.contains("CRC-64"),
                "{at}: {err}"
            );
        }
        assert!(run(&tar[..10000]).is_err());
        let mut longer = tar.clone();
        longer.push(0);
        assert!(run(&longer).is_err());
        assert!(reassemble(&split, |_, _| Ok(b"Some content!".to_vec()), Vec::new()).is_err());
    }

    #[test]
    fn reader_rejects_malformed_lines() {
        for bad in [
            &b"{\"type\":2,\"payload\":\"\",\"position\":1}\n"[..],
            b"{\"type\":3,\"payload\":\"\",\"position\":0}\n",
            b"{\"type\":2,\"payload\":\"!!\",\"position\":0}\n",
            b"{\"type\":1,\"name\":\"a\",\"size\":5,\"payload\":null,\"position\":0}\n",
            b"{\"type\":1,\"name\":\"a\",\"size\":5,\"payload\":\"AAAA\",\"position\":0}\n",
            b"{\"type\":1,\"name\":\"a\",\"size\":-5,\"payload\":null,\"position\":0}\n",
            b"\n{\"type\":2,\"payload\":\"\",\"position\":0}\n",
            b"{\"type\":2,\"payload\":\"\",\"position\":0} x\n",
        ] {
            let first_err = TarSplitReader::new(bad).find_map(Result::err);
            assert!(first_err.is_some(), "{}", String::from_utf8_lossy(bad));
        }
        // The reader stops after an error.
        let mut r = TarSplitReader::new(b"x\n{\"type\":2,\"payload\":\"\",\"position\":1}\n");
        assert!(r.next().unwrap().is_err());
        assert!(r.next().is_none());
    }

    #[test]
    fn writer_refuses_duplicates_and_encodes_raw_names() {
        let mut w = TarSplitWriter::new();
        w.file(b"./a/b/", 0, None).unwrap();
        assert!(w.file(b"a/b", 0, None).is_err());
        assert!(w.file(b"a/c", 3, None).is_err());
        w.file(b"bad\xffname", 0, None).unwrap();
        w.file(b"/a/b", 0, None).unwrap();
        let out = w.finish(b"xyz");
        let items: Vec<_> = TarSplitReader::new(&out).map(Result::unwrap).collect();
        assert_eq!(items.len(), 5);
        assert!(String::from_utf8_lossy(&out).contains("\"name_raw\":\"YmFk/25hbWU=\""));
        assert_eq!(
            items[1],
            TarSplitItem::File {
                name: b"bad\xffname".to_vec(),
                size: 0,
                crc: None
            }
        );
        assert_eq!(items[3], TarSplitItem::Segment(b"xyz".to_vec()));
        assert_eq!(items[4], TarSplitItem::Segment(Vec::new()));
        for (name, clean) in [
            (&b"a/../b"[..], &b"b"[..]),
            (b"../x", b"../x"),
            (b"/../x", b"/x"),
            (b"", b"."),
            (b"./", b"."),
            (b"a//b/./", b"a/b"),
        ] {
            assert_eq!(go_clean(name), clean);
        }
    }
}
