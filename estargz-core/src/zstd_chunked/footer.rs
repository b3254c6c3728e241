//! The footer: the last skippable frame, locating the TOC frame and (C64)
//! the tar-split frame (spec §3.3, §4.6, §7.4 rules 1–2).
//!
//! Four layouts exist with three sizes. The 40-byte payload (`GnUlInUx`)
//! is written by the stargz package and by containers/storage up to
//! v1.46, byte for byte alike; the 56-byte one (v1.47–v1.49) put its
//! magic 16 bytes early, so no reader ever found it; the 64-byte one
//! (v1.50 on) adds the tar-split location and changed the magic to
//! `GNUlInUx`. All numbers are little-endian u64.

use super::{ZstdError, SKIPPABLE_HEADER, SKIPPABLE_MAGIC};
use std::fmt;

/// Magic ending the 40- and 56-byte footer payloads.
pub const MAGIC_40: [u8; 8] = *b"GnUlInUx";
/// Magic ending the 64-byte footer payload (capital N).
pub const MAGIC_64: [u8; 8] = *b"GNUlInUx";
/// The only manifest type any writer uses (`ManifestTypeCRFS`).
pub const MANIFEST_TYPE_CRFS: u64 = 1;
/// Smallest zstd frame: magic, frame header descriptor, one byte of window
/// or content size, one block header.
pub const MIN_FRAME: u64 = 9;
/// Most tail bytes [`parse`] looks at.
pub const MAX_FOOTER_SIZE: usize = 72;

/// Footer layout, named by its payload size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterVersion {
    /// 40 bytes, `GnUlInUx`: stargz dialect, or containers/storage ≤ v1.46.
    V40,
    /// 56 bytes, magic at 32–40 then 16 zero bytes: containers/storage
    /// v1.47–v1.49; accepted with a warning.
    V56,
    /// 64 bytes, `GNUlInUx`, with the tar-split location: containers/storage ≥ v1.50.
    V64,
}

impl FooterVersion {
    /// Payload bytes (the skippable frame's length field).
    pub fn payload_len(self) -> u64 {
        match self {
            FooterVersion::V40 => 40,
            FooterVersion::V56 => 56,
            FooterVersion::V64 => 64,
        }
    }

    /// Bytes at the end of the blob, skippable header included.
    pub fn size(self) -> u64 {
        SKIPPABLE_HEADER + self.payload_len()
    }

    /// The skippable header this layout starts with.
    fn header(self) -> [u8; 8] {
        skippable_header(self.payload_len() as u32)
    }
}

impl fmt::Display for FooterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-byte", self.payload_len())
    }
}

/// Where the tar-split frame is (64-byte footer, or the
/// `tarsplit-position` annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarSplitLocation {
    /// Offset of the tar-split frame's magic (its skippable header is 8 bytes before).
    pub offset: u64,
    /// Compressed length: the skippable frame's length field.
    pub compressed: u64,
    /// Length of the decompressed NDJSON stream.
    pub uncompressed: u64,
}

/// A parsed zstd:chunked footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZstdFooter {
    /// Layout found.
    pub version: FooterVersion,
    /// Offset of the TOC frame's magic ("manifest offset" M).
    pub manifest_offset: u64,
    /// Compressed TOC length L (the TOC skippable frame's length field).
    pub toc_compressed: u64,
    /// TOC JSON length U.
    pub toc_uncompressed: u64,
    /// Manifest type; [`parse`] accepts only 1.
    pub manifest_type: u64,
    /// The tar-split frame (64-byte footer only).
    pub tar_split: Option<TarSplitLocation>,
    /// What a reader may accept but `verify` should report (the 56-byte layout).
    pub warnings: Vec<String>,
}

impl ZstdFooter {
    /// Where the data frames end: the TOC's skippable header (M − 8).
    pub fn payload_end(&self) -> u64 {
        self.manifest_offset - SKIPPABLE_HEADER
    }

    /// The TOC's skippable frame: its offset and length, header included.
    #[cfg(test)]
    pub fn toc_skippable(&self) -> (u64, u64) {
        (self.payload_end(), SKIPPABLE_HEADER + self.toc_compressed)
    }

    /// The tar-split's skippable frame: its offset and length, header included.
    pub fn tar_split_skippable(&self) -> Option<(u64, u64)> {
        self.tar_split
            .map(|t| (t.offset - SKIPPABLE_HEADER, SKIPPABLE_HEADER + t.compressed))
    }

    /// The `manifest-position` annotation this footer implies: `M:L:U:type`.
    pub fn manifest_position(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.manifest_offset, self.toc_compressed, self.toc_uncompressed, self.manifest_type
        )
    }

    /// The footer's bytes, skippable header included.
    pub fn encode(&self) -> Vec<u8> {
        let head = [
            self.manifest_offset,
            self.toc_compressed,
            self.toc_uncompressed,
            self.manifest_type,
        ];
        let mut out = self.version.header().to_vec();
        head.iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        match self.version {
            FooterVersion::V40 => out.extend_from_slice(&MAGIC_40),
            FooterVersion::V56 => {
                out.extend_from_slice(&MAGIC_40);
                out.extend_from_slice(&[0; 16]);
            }
            FooterVersion::V64 => {
                let t = self.tar_split.unwrap_or(TarSplitLocation {
                    offset: 0,
                    compressed: 0,
                    uncompressed: 0,
                });
                for v in [t.offset, t.compressed, t.uncompressed] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&MAGIC_64);
            }
        }
        out
    }
}

/// `50 2a 4d 18` and a little-endian u32 length.
pub fn skippable_header(len: u32) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&SKIPPABLE_MAGIC);
    h[4..].copy_from_slice(&len.to_le_bytes());
    h
}

/// The 48 tail bytes of the stargz dialect (and of C40): the TOC frame's
/// magic at `manifest_offset`, `toc_compressed` bytes long, `toc_json`
/// bytes decompressed. For tests from bare numbers; the writer encodes a
/// [`ZstdFooter`].
#[cfg(test)]
pub fn encode_40(manifest_offset: u64, toc_compressed: u64, toc_json: u64) -> [u8; 48] {
    let footer = ZstdFooter {
        version: FooterVersion::V40,
        manifest_offset,
        toc_compressed,
        toc_uncompressed: toc_json,
        manifest_type: MANIFEST_TYPE_CRFS,
        tar_split: None,
        warnings: Vec::new(),
    };
    let mut out = [0u8; 48];
    out.copy_from_slice(&footer.encode());
    out
}

/// The 72 tail bytes of the containers dialect's current layout (C64).
/// For tests, as [`encode_40`].
#[cfg(test)]
pub fn encode_64(
    manifest_offset: u64,
    toc_compressed: u64,
    toc_json: u64,
    tar_split: TarSplitLocation,
) -> [u8; 72] {
    let footer = ZstdFooter {
        version: FooterVersion::V64,
        manifest_offset,
        toc_compressed,
        toc_uncompressed: toc_json,
        manifest_type: MANIFEST_TYPE_CRFS,
        tar_split: Some(tar_split),
        warnings: Vec::new(),
    };
    let mut out = [0u8; 72];
    out.copy_from_slice(&footer.encode());
    out
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// Which layout `tail` ends with, if any zstd:chunked magic is there.
/// `Err` when a magic is there but its layout is broken.
fn detect(tail: &[u8], blob_size: u64) -> Result<Option<FooterVersion>, ZstdError> {
    let n = tail.len();
    let at = |back: usize| n.checked_sub(back).map(|i| &tail[i..i + 8]);
    let footer_err = |version: FooterVersion, reason: String| ZstdError::Footer {
        footer_offset: blob_size.saturating_sub(version.size()),
        reason,
    };
    let has = |back: usize, v: FooterVersion| at(back) == Some(&v.header()[..]);
    let end = at(8);
    let (version, other) = if end == Some(&MAGIC_40[..]) {
        (FooterVersion::V40, FooterVersion::V64)
    } else if end == Some(&MAGIC_64[..]) {
        (FooterVersion::V64, FooterVersion::V40)
    } else if at(24) == Some(&MAGIC_40[..])
        && at(16).is_some_and(|z| z == [0; 8])
        && at(8).is_some_and(|z| z == [0; 8])
    {
        if has(64, FooterVersion::V56) {
            return Ok(Some(FooterVersion::V56));
        }
        return Err(footer_err(
            FooterVersion::V56,
            "GnUlInUx followed by 16 zero bytes, but no 56-byte skippable header \
             (50 2a 4d 18 38 00 00 00) 64 bytes from the end"
                .into(),
        ));
    } else {
        return Ok(None);
    };
    if blob_size < version.size() {
        return Err(ZstdError::TooSmall {
            size: blob_size,
            need: version.size(),
        });
    }
    if (n as u64) < version.size() {
        return Err(footer_err(
            version,
            format!(
                "only the last {n} bytes were given, the footer has {}",
                version.size()
            ),
        ));
    }
    if has(version.size() as usize, version) {
        return Ok(Some(version));
    }
    let magic = String::from_utf8_lossy(end.unwrap_or_default()).into_owned();
    let reason = if has(other.size() as usize, other) {
        format!(
            "magic {magic} in a {other} footer: the {other} footer's magic is {}",
            String::from_utf8_lossy(if other == FooterVersion::V64 {
                &MAGIC_64
            } else {
                &MAGIC_40
            })
        )
    } else {
        let off = n - version.size() as usize;
        format!(
            "magic {magic}, but the skippable header before the payload is {:02x?}, \
             not {:02x?}",
            &tail[off..off + 8],
            version.header()
        )
    };
    Err(footer_err(version, reason))
}

/// Whether `tail`, the last bytes of a blob, ends as one of the footers
/// does (a magic last, or the 56-byte layout's 16 zero bytes after its
/// magic): then [`parse`] needs [`MAX_FOOTER_SIZE`] bytes to tell.
pub fn may_end_a_footer(tail: &[u8]) -> bool {
    let n = tail.len();
    let end = |back: usize| n.checked_sub(back).map(|i| &tail[i..i + 8]);
    end(8) == Some(&MAGIC_40[..])
        || end(8) == Some(&MAGIC_64[..])
        || (end(24) == Some(&MAGIC_40[..]) && tail[n - 16..].iter().all(|&b| b == 0))
}

/// Parses the footer from `tail`, the last bytes of a blob of `blob_size`
/// bytes: at least [`MAX_FOOTER_SIZE`] of them, or the whole blob.
///
/// `Ok(None)`: no zstd:chunked magic, so try the gzip footers. `Err`: a
/// magic is there but the footer is broken or points outside the blob
/// (spec §7.4 rules 1 and 2, without the reads those need).
pub fn parse(tail: &[u8], blob_size: u64) -> Result<Option<ZstdFooter>, ZstdError> {
    if tail.len() as u64 > blob_size {
        return Err(ZstdError::Footer {
            footer_offset: 0,
            reason: format!("{} tail bytes of a {blob_size}-byte blob", tail.len()),
        });
    }
    let Some(version) = detect(tail, blob_size)? else {
        return Ok(None);
    };
    let p = &tail[tail.len() - version.payload_len() as usize..];
    let tar_split = match version {
        FooterVersion::V64 => Some(TarSplitLocation {
            offset: u64_at(p, 32),
            compressed: u64_at(p, 40),
            uncompressed: u64_at(p, 48),
        })
        .filter(|t| (t.offset, t.compressed, t.uncompressed) != (0, 0, 0)),
        _ => None,
    };
    let mut footer = ZstdFooter {
        version,
        manifest_offset: u64_at(p, 0),
        toc_compressed: u64_at(p, 8),
        toc_uncompressed: u64_at(p, 16),
        manifest_type: u64_at(p, 24),
        tar_split,
        warnings: Vec::new(),
    };
    if version == FooterVersion::V56 {
        footer.warnings.push(
            "56-byte footer of containers/storage v1.47-v1.49: its magic is 16 bytes early, \
             so other readers cannot find it"
                .into(),
        );
    }
    let footer_offset = blob_size - version.size();
    check_bounds(&footer, footer_offset).map_err(|reason| ZstdError::Footer {
        footer_offset,
        reason,
    })?;
    Ok(Some(footer))
}

/// Spec §7.4 rule 2, as far as the footer alone tells: type 1, frames of at
/// least [`MIN_FRAME`] bytes after their skippable headers, in order,
/// before the footer.
fn check_bounds(f: &ZstdFooter, footer_offset: u64) -> Result<(), String> {
    if f.manifest_type != MANIFEST_TYPE_CRFS {
        return Err(format!(
            "manifest type {}, the only one defined is {MANIFEST_TYPE_CRFS}",
            f.manifest_type
        ));
    }
    if f.manifest_offset < SKIPPABLE_HEADER {
        return Err(format!(
            "TOC offset {} leaves no room for its skippable header (it must be at least 8)",
            f.manifest_offset
        ));
    }
    let toc_limit = match f.tar_split {
        Some(t) => t.offset.checked_sub(SKIPPABLE_HEADER).ok_or_else(|| {
            format!(
                "tar-split offset {} leaves no room for its skippable header",
                t.offset
            )
        })?,
        None => footer_offset,
    };
    check_frame("TOC", f.manifest_offset, f.toc_compressed, toc_limit)?;
    if let Some(t) = f.tar_split {
        check_frame("tar-split", t.offset, t.compressed, footer_offset)?;
    }
    Ok(())
}

fn check_frame(what: &str, offset: u64, len: u64, limit: u64) -> Result<(), String> {
    if len < MIN_FRAME {
        return Err(format!(
            "compressed {what} length {len} is shorter than the smallest zstd frame ({MIN_FRAME} bytes)"
        ));
    }
    match offset.checked_add(len) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(format!(
            "{what} frame [{offset}, {offset} + {len}) runs past byte {limit}, where the next \
             skippable frame starts"
        )),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// §3.3/§3.6: the reference's footer of small.tar.
    pub const S_SMALL: &str = "502a4d18 28000000 ad00000000000000 1201000000000000 \
        3602000000000000 0100000000000000 476e556c496e5578";
    /// §4.8: Debian skopeo's C40 footer of small.tar.
    pub const C40_SMALL: &str = "502a4d1828000000 b100000000000000 f300000000000000 \
        e801000000000000 0100000000000000 476e556c496e5578";
    /// §4.6/§4.8: containers/storage main's C64 footer of small.tar.
    pub const C64_SMALL: &str = "502a4d18 40000000 ba00000000000000 0c01000000000000 \
        b301000000000000 0100000000000000 ce01000000000000 4601000000000000 \
        8636000000000000 474e556c496e5578";

    fn parsed(tail: &[u8], size: u64) -> ZstdFooter {
        parse(tail, size).unwrap().unwrap()
    }

    #[test]
    fn encodes_the_worked_examples_byte_for_byte() {
        assert_eq!(encode_40(173, 274, 566).to_vec(), unhex(S_SMALL));
        assert_eq!(encode_40(177, 243, 488).to_vec(), unhex(C40_SMALL));
        let ts = TarSplitLocation {
            offset: 462,
            compressed: 326,
            uncompressed: 13958,
        };
        assert_eq!(encode_64(186, 268, 435, ts).to_vec(), unhex(C64_SMALL));
    }

    #[test]
    fn parses_the_worked_examples() {
        let s = parsed(&unhex(S_SMALL), 495);
        assert_eq!(
            (
                s.version,
                s.manifest_offset,
                s.toc_compressed,
                s.toc_uncompressed
            ),
            (FooterVersion::V40, 173, 274, 566)
        );
        assert_eq!((s.payload_end(), s.toc_skippable()), (165, (165, 282)));
        assert_eq!(s.manifest_position(), "173:274:566:1");
        assert!(s.tar_split.is_none() && s.warnings.is_empty());
        let c = parsed(&unhex(C40_SMALL), 468);
        assert_eq!(c.manifest_position(), "177:243:488:1");
        let c64 = parsed(&unhex(C64_SMALL), 860);
        assert_eq!(c64.version, FooterVersion::V64);
        assert_eq!(c64.manifest_position(), "186:268:435:1");
        assert_eq!(
            c64.tar_split,
            Some(TarSplitLocation {
                offset: 462,
                compressed: 326,
                uncompressed: 13958
            })
        );
        assert_eq!(c64.tar_split_skippable(), Some((454, 334)));
        assert_eq!(c64.payload_end(), 178);
        assert_eq!(c64.encode(), unhex(C64_SMALL));
    }

    /// A gzip eStargz footer, and arbitrary tails, are not zstd:chunked.
    #[test]
    fn other_tails_are_not_zstd() {
        let gzip = crate::footer::encode(774);
        assert_eq!(parse(&gzip, 1000).unwrap(), None);
        assert_eq!(parse(&[0u8; 72], 1000).unwrap(), None);
        assert_eq!(parse(&[], 0).unwrap(), None);
        assert_eq!(parse(b"abc", 3).unwrap(), None);
    }
}
