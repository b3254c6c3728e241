//! The tar inside an eStargz or zstd:chunked layer, without the entries
//! only those formats add.

use super::scan::{padding, Item, NamePolicy, ScanLimits, Scanner};
use super::BLOCK;
use crate::error::{Error, Result};
use crate::name;
use crate::read::{NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK};
use crate::toc::TOC_NAME;
use std::io::{self, Read};

/// Data and trailing bytes are passed on in pieces of this size.
const PIECE: u64 = 1 << 20;

/// A tar stream without the entries eStargz writers add: the TOC
/// (`stargz.index.json`) and the prefetch landmarks (`.prefetch.landmark`,
/// `.no.prefetch.landmark`). The reference's `Build` drops the same ones
/// when it converts a layer that is eStargz already (landmarks in
/// `importTar`, the TOC in `Writer.AppendTar`).
///
/// Every other byte passes through unchanged: headers, extension headers,
/// data, padding, the end-of-archive and whatever follows it. A dropped
/// entry goes with its extension headers, data and padding. A stream that
/// stops after its last entry (the payload of a layer cut before its TOC,
/// as the reference writes it) gets the two zero blocks of an
/// end-of-archive. A PAX global header in front of a dropped entry is an
/// error, since its records apply to the entries after it too.
///
/// Decompress the layer first: for a gzip eStargz blob, the gzip members
/// before the TOC member ([`TocInfo::toc_offset`](crate::TocInfo)); for
/// zstd:chunked, the whole blob (its TOC is in a skippable frame).
///
/// ```
/// use estargz_core::{Converter, TocInfo, OpenOptions, WithoutEstargzEntries};
/// use std::io::Read;
/// # let tar = {
/// # let mut b = tar::Builder::new(Vec::new());
/// # let mut h = tar::Header::new_ustar();
/// # h.set_size(3);
/// # h.set_mode(0o644);
/// # h.set_cksum();
/// # b.append_data(&mut h, "etc/motd", &b"hi\n"[..]).unwrap();
/// # b.into_inner().unwrap()
/// # };
/// let mut blob = Vec::new();
/// Converter::new().convert(&tar, &mut blob)?;
/// let (info, _) = TocInfo::read(&blob[..], &OpenOptions::default())?;
/// let payload = &blob[..info.toc_offset as usize];
/// let mut stripped = WithoutEstargzEntries::new(flate2::read::MultiGzDecoder::new(payload));
/// let mut out = Vec::new();
/// stripped.read_to_end(&mut out).unwrap();
/// assert_eq!(out, tar);
/// assert_eq!(stripped.dropped(), 0);
/// # Ok::<(), estargz_core::Error>(())
/// ```
pub struct WithoutEstargzEntries<R> {
    scanner: Scanner<R>,
    out: Vec<u8>,
    at: usize,
    /// Padding of the previous entry, at the start of the next raw bytes.
    prev_pad: u64,
    prev_kept: bool,
    /// Data of the current (kept) entry still to pass on.
    data_left: u64,
    state: State,
    dropped: usize,
}

#[derive(PartialEq, Eq)]
enum State {
    Entries,
    Trailing,
    Done,
}

impl<R: Read> WithoutEstargzEntries<R> {
    /// Filters the tar read from `tar`.
    pub fn new(tar: R) -> Self {
        let limits = ScanLimits {
            // What follows the end-of-archive is passed on, piece by piece;
            // the converter reading this applies its own cap.
            max_trailing: u64::MAX,
            ..ScanLimits::default()
        };
        WithoutEstargzEntries {
            scanner: Scanner::new(tar, NamePolicy::Replace, limits),
            out: Vec::new(),
            at: 0,
            prev_pad: 0,
            prev_kept: true,
            data_left: 0,
            state: State::Entries,
            dropped: 0,
        }
    }

    /// Entries dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Puts the next bytes into `out`; none once the stream is done.
    fn refill(&mut self) -> Result<()> {
        self.out.clear();
        self.at = 0;
        if self.data_left > 0 {
            let n = self.data_left.min(PIECE);
            self.scanner.read_data(&mut self.out, n)?;
            self.data_left -= n;
            return Ok(());
        }
        match self.state {
            State::Done => Ok(()),
            State::Trailing => {
                if self.scanner.read_trailing(&mut self.out, PIECE)? == 0 {
                    self.state = State::Done;
                }
                Ok(())
            }
            State::Entries => self.next_item(),
        }
    }

    fn next_item(&mut self) -> Result<()> {
        let entry = match self.scanner.next_item()? {
            None => {
                self.state = State::Done;
                return Ok(());
            }
            Some(Item::End { raw, .. }) => {
                let own = self.previous_padding(&raw);
                if own.is_empty() {
                    self.out.extend_from_slice(&[0; 2 * BLOCK]);
                } else {
                    self.out.extend_from_slice(own);
                }
                self.state = State::Trailing;
                return Ok(());
            }
            Some(Item::Entry(entry)) => entry,
        };
        let own_from = entry.raw_offset + (entry.raw.len() as u64).min(self.prev_pad);
        let own = self.previous_padding(&entry.raw);
        let cleaned = name::clean(&entry.name);
        let drop = [TOC_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK].contains(&cleaned.as_str());
        if drop {
            let global = self.scanner.first_global_header();
            if let Some((offset, _)) =
                global.filter(|(at, _)| (own_from..entry.header_offset).contains(at))
            {
                return Err(Error::CannotDrop {
                    entry: entry.name.clone(),
                    offset: *offset,
                    reason: "a PAX global header in front of it applies to the entries after it",
                });
            }
            self.dropped += 1;
        } else {
            self.out.extend_from_slice(own);
            self.data_left = entry.size;
        }
        self.prev_pad = padding(entry.size);
        self.prev_kept = !drop;
        Ok(())
    }

    /// Passes on the previous entry's padding at the start of `raw` (if
    /// that entry is kept); returns the rest.
    fn previous_padding<'r>(&mut self, raw: &'r [u8]) -> &'r [u8] {
        let (padding, own) = raw.split_at((self.prev_pad as usize).min(raw.len()));
        if self.prev_kept {
            self.out.extend_from_slice(padding);
        }
        own
    }
}

impl<R: Read> Read for WithoutEstargzEntries<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.out.len() {
            if self.state == State::Done && self.data_left == 0 {
                return Ok(0);
            }
            self.refill().map_err(io::Error::other)?;
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }

    fn strip(input: &[u8]) -> (Vec<u8>, usize) {
        let mut s = WithoutEstargzEntries::new(input);
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        (out, s.dropped())
    }

    #[test]
    fn drops_toc_and_landmarks_keeps_the_rest() {
        let mut with = tar::Builder::new(Vec::new());
        let mut without = tar::Builder::new(Vec::new());
        entry(&mut with, ".prefetch.landmark", b"\xf0");
        for (name, data) in [("a", &b"abc"[..]), ("b", &[7u8; 700][..])] {
            entry(&mut with, name, data);
            entry(&mut without, name, data);
        }
        entry(&mut with, "./.no.prefetch.landmark", b"\xf0");
        entry(&mut with, "stargz.index.json", b"{}");
        let (with, without) = (with.into_inner().unwrap(), without.into_inner().unwrap());
        assert_eq!(strip(&with), (without, 3));
    }

    #[test]
    fn a_stream_cut_before_its_toc_gets_an_end_of_archive() {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "a", b"abc");
        let full = b.into_inner().unwrap();
        let cut = &full[..1024];
        assert_eq!(strip(cut), (full[..2048].to_vec(), 0));
    }

    #[test]
    fn trailing_bytes_pass_through() {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "a", b"abc");
        let mut full = b.into_inner().unwrap();
        full.extend_from_slice(&[0; 9216]);
        full.extend_from_slice(b"tail");
        assert_eq!(strip(&full), (full.clone(), 0));
    }
}
