//! zstd:chunked, containers dialect with a tar-split frame (64-byte
//! footer): the stream is read within its caps, its digest is the TOC's
//! `tarSplitDigest`, its entries are the TOC's, and with the payload's tar
//! it rebuilds exactly that tar (spec §7.4 rule 6).

use super::{Problem, ProblemKind, VerifyReport};
use crate::read::{ReadAt, TocInfo};
use crate::toc::EntryType;
use crate::zstd_chunked::frame::FrameDecoder;
use crate::zstd_chunked::tar_split::{check_against_toc, decode_tar_split_frame, TarSplitMatcher};
use crate::zstd_chunked::toc::MetadataFrame;
use crate::zstd_chunked::{Limits, ZstdError};
use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

fn problem(message: String, offset: u64) -> Problem {
    Problem::new(ProblemKind::TarSplit, message).at(Some(offset))
}

/// Reads and checks the tar-split stream the footer names, if any; returns
/// it for the reassembly check when it could be read.
pub(super) fn read_tar_split<S: ReadAt>(
    source: &S,
    info: &TocInfo,
    report: &mut VerifyReport,
) -> Option<Vec<u8>> {
    let z = info.zstd_chunked.as_ref()?;
    let location = z.footer.tar_split?;
    let frame = MetadataFrame::tar_split(&location);
    let (start, len) = frame.range();
    let limits = Limits::default();
    // Whether the source failed, rather than the frame being bad.
    let mut unreadable = false;
    let read = frame
        .check_limits(limits.max_tar_split_compressed, limits.max_tar_split)
        .and_then(|()| {
            source.read_range(start, len as usize).map_err(|e| {
                unreadable = true;
                ZstdError::Skippable {
                    what: "tar-split",
                    offset: start,
                    reason: format!("reading {len} bytes: {e}"),
                }
            })
        })
        .and_then(|bytes| {
            let mut decoder = FrameDecoder::new(limits.max_window_log)?;
            decode_tar_split_frame(&location, &bytes, &limits, &mut decoder)
        });
    let (stream, digest) = match read {
        Ok(v) => v,
        Err(e) => {
            let mut p = problem(e.to_string(), location.offset);
            if unreadable {
                p.kind = ProblemKind::Unreadable;
            }
            report.push(p);
            return None;
        }
    };
    match &z.tar_split_digest {
        Some(want) if *want != digest.to_string() => report.push(problem(
            format!("tar-split frame digest is {digest}, the TOC's tarSplitDigest is {want}"),
            location.offset,
        )),
        _ => {}
    }
    let entries = info
        .toc
        .entries
        .iter()
        .filter(|e| e.kind != EntryType::Chunk)
        .map(|e| (e.name.as_str(), e.size_u64().unwrap_or(u64::MAX)));
    if let Err(e) = check_against_toc(&stream, entries) {
        report.push(problem(e.to_string(), location.offset));
    }
    Some(stream)
}

/// The matcher's state, shared between the tee the payload walk reads
/// through and the check at the end.
pub(super) type Shared<'a> = Rc<RefCell<Result<TarSplitMatcher<'a>, ZstdError>>>;

/// A new shared matcher against `stream`.
pub(super) fn matcher(stream: &[u8]) -> Shared<'_> {
    Rc::new(RefCell::new(Ok(TarSplitMatcher::new(stream))))
}

/// Feeds everything read through it to the tar-split matcher; the first
/// mismatch is kept and matching stops there.
pub(super) struct Tee<'a, R> {
    pub inner: R,
    pub matcher: Option<Shared<'a>>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let Some(matcher) = &self.matcher else {
            return Ok(n);
        };
        let mut state = matcher.borrow_mut();
        if let Ok(m) = state.as_mut() {
            if let Err(e) = m.update(&buf[..n]) {
                *state = Err(e);
            }
        }
        Ok(n)
    }
}

/// With the payload read to its end: the tar-split must have ended too.
pub(super) fn finish(matcher: Shared<'_>, offset: u64, report: &mut VerifyReport) {
    let state = Rc::try_unwrap(matcher).map(RefCell::into_inner);
    let result = match state {
        Ok(Ok(m)) => m.finish().map(|_| ()),
        Ok(Err(e)) => Err(e),
        Err(_) => return,
    };
    if let Err(e) = result {
        report.push(problem(
            format!("the payload's tar is not what the tar-split rebuilds: {e}"),
            offset,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::zstd_chunked::conformance::c64_of;
    use crate::{unpack_tar, verify, Blob, FooterKind, OpenOptions, ProblemKind, VerifyOptions};
    use crate::{Digest, ZstdDialect};

    fn small_tar() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/blobs/zstd/small.tar"
        );
        std::fs::read(path).unwrap()
    }

    /// The C64 layout of small.tar (spec §4.8) reads, verifies with its
    /// tar-split, and unpacks to the tar.
    #[test]
    fn c64_blob_reads_and_verifies_with_its_tar_split() {
        let tar = small_tar();
        let (blob, ..) = c64_of(&tar);
        let opened = Blob::open(&blob[..], &OpenOptions::default()).unwrap();
        assert_eq!(opened.kind(), FooterKind::ZstdChunked64);
        let z = opened.zstd_chunked().unwrap();
        assert_eq!(z.dialect, ZstdDialect::Containers);
        assert!(z.tar_split_position.is_some() && z.tar_split_digest.is_some());
        assert_eq!(opened.read_file("foo/bar.txt").unwrap(), b"Some contents");
        let report = verify(&blob[..], &VerifyOptions::default());
        assert!(report.is_valid(), "{:?}", report.problems);
        let mut out = Vec::new();
        unpack_tar(&blob[..], &mut out).unwrap();
        assert!(out == tar);
        assert_eq!(
            crate::blob_info_of(&blob[..]).unwrap().diff_id,
            Digest::of(&tar)
        );
    }

    /// A tar-split that does not rebuild the payload: the metadata frames
    /// of a tar whose file has other contents of the same length, spliced
    /// after this payload (the frames are the same sizes, so every offset
    /// still holds).
    #[test]
    fn tar_split_mismatches_are_reported() {
        let tar = small_tar();
        let (good, ..) = c64_of(&tar);
        let at = tar.windows(13).position(|w| w == b"Some contents").unwrap();
        let mut changed = tar.clone();
        changed[at + 5] = b'C';
        let (other, ..) = c64_of(&changed);
        let payload_end = |b: &[u8]| {
            let f = &b[b.len() - 64..];
            u64::from_le_bytes(f[0..8].try_into().unwrap()) as usize - 8
        };
        let (a, b) = (payload_end(&good), payload_end(&other));
        assert_eq!(a, b);
        let mut spliced = good[..a].to_vec();
        spliced.extend_from_slice(&other[b..]);
        let report = verify(&spliced[..], &VerifyOptions::default());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.kind == ProblemKind::TarSplit),
            "{:?}",
            report.problems
        );
        // A damaged tar-split frame: its digest no longer matches the TOC's.
        let mut damaged = good.clone();
        let at = damaged.len() - 72 - 10;
        damaged[at] ^= 0x01;
        let report = verify(&damaged[..], &VerifyOptions::default());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.kind == ProblemKind::TarSplit),
            "{:?}",
            report.problems
        );
    }
}
