//! The footer: a final, empty gzip member whose extra field points at the TOC.
//!
//! Three layouts exist (spec §2.2–2.4): the eStargz footer (51 bytes, the only
//! one written), the legacy stargz footer (47 bytes, read only) and the
//! external-TOC footer (46 bytes, recognised: its TOC lives in another blob).
//! Parsing checks every field and never indexes past the bytes it was given.
//!
//! zstd:chunked blobs end in a skippable zstd frame instead (48, 64 or 72
//! bytes, `crate::zstd_chunked::footer`); [`FooterKind`] names those too, so
//! that one footer type serves both codecs.

use crate::zstd_chunked::footer::{FooterVersion, ZstdFooter};
use std::fmt;

/// Size of the eStargz footer.
pub const FOOTER_SIZE: usize = 51;
/// Size of the legacy stargz footer.
pub const LEGACY_FOOTER_SIZE: usize = 47;
/// Size of the external-TOC footer.
pub const EXTERNAL_TOC_FOOTER_SIZE: usize = 46;

/// The smallest complete gzip member (10-byte header, empty final block,
/// 8-byte trailer): a TOC offset must leave at least this much room.
const MIN_GZIP_MEMBER: u64 = 20;

const GZIP_FEXTRA_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff];
/// Stored final block of length 0, then CRC32 0 and ISIZE 0.
const EMPTY_BODY_AND_TRAILER: [u8; 13] = [0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
const MAGIC: &[u8; 6] = b"STARGZ";
const EXTERNAL_MAGIC: &[u8; 17] = b"STARGZEXTERNALTOC";

/// Which footer layout a blob ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FooterKind {
    /// eStargz, 51 bytes.
    Estargz,
    /// Legacy stargz (google/crfs), 47 bytes.
    Legacy,
    /// External TOC, 46 bytes: the blob holds no TOC.
    ExternalToc,
    /// zstd:chunked with the 40-byte footer payload (48 bytes with its
    /// skippable header): the stargz dialect, or containers/storage ≤ v1.46.
    ZstdChunked40,
    /// zstd:chunked with the 56-byte payload of containers/storage
    /// v1.47–v1.49 (read with a warning).
    ZstdChunked56,
    /// zstd:chunked with the 64-byte payload of containers/storage ≥ v1.50.
    ZstdChunked64,
}

impl FooterKind {
    /// Footer length in bytes.
    pub fn size(self) -> usize {
        match self {
            FooterKind::Estargz => FOOTER_SIZE,
            FooterKind::Legacy => LEGACY_FOOTER_SIZE,
            FooterKind::ExternalToc => EXTERNAL_TOC_FOOTER_SIZE,
            FooterKind::ZstdChunked40 => 48,
            FooterKind::ZstdChunked56 => 64,
            FooterKind::ZstdChunked64 => 72,
        }
    }

    /// A zstd:chunked footer: the payload is zstd frames, not gzip members.
    pub fn is_zstd_chunked(self) -> bool {
        matches!(
            self,
            FooterKind::ZstdChunked40 | FooterKind::ZstdChunked56 | FooterKind::ZstdChunked64
        )
    }

    pub(crate) fn of_zstd(version: FooterVersion) -> FooterKind {
        match version {
            FooterVersion::V40 => FooterKind::ZstdChunked40,
            FooterVersion::V56 => FooterKind::ZstdChunked56,
            FooterVersion::V64 => FooterKind::ZstdChunked64,
        }
    }
}

impl fmt::Display for FooterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FooterKind::Estargz => "eStargz",
            FooterKind::Legacy => "legacy stargz",
            FooterKind::ExternalToc => "external TOC",
            FooterKind::ZstdChunked40 => "zstd:chunked 40-byte",
            FooterKind::ZstdChunked56 => "zstd:chunked 56-byte",
            FooterKind::ZstdChunked64 => "zstd:chunked 64-byte",
        })
    }
}

/// A parsed footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Layout found.
    pub kind: FooterKind,
    /// Offset of the TOC member; `None` for an external TOC. For
    /// zstd:chunked, the offset of the TOC frame's magic (the manifest
    /// offset M of the `manifest-position` annotation).
    pub toc_offset: Option<u64>,
    /// Deviations in bytes the reference never checks (MTIME, XFL, OS, the
    /// empty body and trailer; the 56-byte zstd:chunked layout): tolerated
    /// when reading, reported by verify.
    pub warnings: Vec<String>,
    /// The zstd:chunked footer's fields.
    pub(crate) zstd: Option<ZstdFooter>,
}

impl Footer {
    /// Where the payload (the members or frames before the TOC) ends: for
    /// zstd:chunked, at the TOC's skippable frame, 8 bytes before its magic.
    pub fn payload_end(&self, blob_size: u64) -> u64 {
        if let Some(z) = &self.zstd {
            return z.payload_end();
        }
        self.toc_offset
            .unwrap_or(blob_size.saturating_sub(self.kind.size() as u64))
    }

    /// A zstd:chunked footer as a [`Footer`].
    pub(crate) fn from_zstd(z: ZstdFooter) -> Footer {
        Footer {
            kind: FooterKind::of_zstd(z.version),
            toc_offset: Some(z.manifest_offset),
            warnings: z.warnings.clone(),
            zstd: Some(z),
        }
    }
}

/// Why a footer was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FooterError {
    /// The blob cannot hold any footer.
    #[error("blob is too small for a footer: {size} bytes (the smallest footer is 46)")]
    TooSmall {
        /// Blob size.
        size: u64,
    },
    /// No layout matched; one reason per layout tried.
    #[error("no valid footer at the end of the blob: {}", .0.join("; "))]
    NoFooter(Vec<String>),
    /// The footer matched but points outside the blob.
    #[error(
        "{kind} footer at byte {footer_offset}: TOC offset {toc_offset} leaves no room for a \
         TOC member before the footer"
    )]
    TocOffsetOutOfRange {
        /// Footer layout.
        kind: FooterKind,
        /// Offset of the footer in the blob.
        footer_offset: u64,
        /// The offset it names.
        toc_offset: u64,
    },
}

/// The 51-byte eStargz footer for a TOC at `toc_offset`, built by hand (spec
/// §2.2: a no-compression gzip writer stopped producing these bytes in Go 1.27).
///
/// ```
/// use estargz_core::internals::footer::{encode, parse};
/// use estargz_core::FooterKind;
/// let bytes = encode(774);
/// let footer = parse(&bytes, 1000).unwrap();
/// assert_eq!((footer.kind, footer.toc_offset), (FooterKind::Estargz, Some(774)));
/// ```
pub fn encode(toc_offset: u64) -> [u8; FOOTER_SIZE] {
    let mut out = [0u8; FOOTER_SIZE];
    out[..10].copy_from_slice(&GZIP_FEXTRA_HEADER);
    out[10..12].copy_from_slice(&26u16.to_le_bytes());
    out[12..14].copy_from_slice(b"SG");
    out[14..16].copy_from_slice(&22u16.to_le_bytes());
    out[16..32].copy_from_slice(format!("{toc_offset:016x}").as_bytes());
    out[32..38].copy_from_slice(MAGIC);
    out[38..].copy_from_slice(&EMPTY_BODY_AND_TRAILER);
    out
}

/// The 46-byte external-TOC footer (spec §2.4): the blob holds no TOC member;
/// its TOC is shipped separately.
///
/// ```
/// use estargz_core::internals::footer::{encode_external, parse};
/// use estargz_core::FooterKind;
/// let footer = parse(&encode_external(), 1000).unwrap();
/// assert_eq!((footer.kind, footer.toc_offset), (FooterKind::ExternalToc, None));
/// ```
pub fn encode_external() -> [u8; EXTERNAL_TOC_FOOTER_SIZE] {
    let mut out = [0u8; EXTERNAL_TOC_FOOTER_SIZE];
    out[..10].copy_from_slice(&GZIP_FEXTRA_HEADER);
    out[10..12].copy_from_slice(&21u16.to_le_bytes());
    out[12..14].copy_from_slice(b"SG");
    out[14..16].copy_from_slice(&17u16.to_le_bytes());
    out[16..33].copy_from_slice(EXTERNAL_MAGIC);
    out[33..].copy_from_slice(&EMPTY_BODY_AND_TRAILER);
    out
}

/// Parses the footer from `tail`, the last bytes of a blob of `blob_size`
/// bytes (at least [`FOOTER_SIZE`] of them when the blob is that large).
///
/// Layouts are tried in the reference's order: eStargz, legacy, external TOC.
pub fn parse(tail: &[u8], blob_size: u64) -> Result<Footer, FooterError> {
    if blob_size < EXTERNAL_TOC_FOOTER_SIZE as u64 || (tail.len() as u64) > blob_size {
        return Err(FooterError::TooSmall { size: blob_size });
    }
    let mut reasons = Vec::new();
    for kind in [
        FooterKind::Estargz,
        FooterKind::Legacy,
        FooterKind::ExternalToc,
    ] {
        let len = kind.size();
        if tail.len() < len {
            reasons.push(format!("{kind}: blob shorter than {len} bytes"));
            continue;
        }
        let bytes = &tail[tail.len() - len..];
        let footer_offset = blob_size - len as u64;
        match parse_layout(kind, bytes) {
            Ok((toc_offset, warnings)) => {
                if let Some(off) = toc_offset {
                    if off
                        .checked_add(MIN_GZIP_MEMBER)
                        .is_none_or(|end| end > footer_offset)
                    {
                        return Err(FooterError::TocOffsetOutOfRange {
                            kind,
                            footer_offset,
                            toc_offset: off,
                        });
                    }
                }
                return Ok(Footer {
                    kind,
                    toc_offset,
                    warnings,
                    zstd: None,
                });
            }
            Err(reason) => {
                reasons.push(format!("{kind}: {reason} (footer at byte {footer_offset})"))
            }
        }
    }
    Err(FooterError::NoFooter(reasons))
}

/// Checks one layout; returns the TOC offset (None for external) and warnings.
fn parse_layout(kind: FooterKind, b: &[u8]) -> Result<(Option<u64>, Vec<String>), String> {
    if b[0] != 0x1f || b[1] != 0x8b {
        return Err("not a gzip member (bad ID1/ID2)".into());
    }
    if b[2] != 8 {
        return Err(format!("compression method {} is not deflate", b[2]));
    }
    if b[3] != 0x04 {
        return Err(format!("flags {:#04x}: want FEXTRA only", b[3]));
    }
    let mut warnings = Vec::new();
    if b[4..10] != GZIP_FEXTRA_HEADER[4..10] {
        warnings.push(format!(
            "gzip MTIME/XFL/OS bytes are {:02x?}, not 00000000 00 ff",
            &b[4..10]
        ));
    }
    let xlen = usize::from(u16::from_le_bytes([b[10], b[11]]));
    let (want_xlen, extra) = (kind.size() - 12 - EMPTY_BODY_AND_TRAILER.len(), &b[12..]);
    if xlen != want_xlen {
        return Err(format!("extra field length {xlen}, want {want_xlen}"));
    }
    let payload = match kind {
        FooterKind::Legacy => &extra[..xlen],
        _ => {
            if &extra[0..2] != b"SG" {
                return Err(format!(
                    "extra subfield id {:02x?}, want \"SG\"",
                    &extra[0..2]
                ));
            }
            let sub_len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
            if sub_len != xlen - 4 {
                return Err(format!(
                    "extra subfield length {sub_len}, want {}",
                    xlen - 4
                ));
            }
            &extra[4..xlen]
        }
    };
    let body = &extra[xlen..];
    if body != EMPTY_BODY_AND_TRAILER {
        warnings.push(format!("empty-member body/trailer bytes are {body:02x?}"));
    }
    if kind == FooterKind::ExternalToc {
        if payload != EXTERNAL_MAGIC {
            return Err("missing STARGZEXTERNALTOC magic".into());
        }
        return Ok((None, warnings));
    }
    let (hex, magic) = payload.split_at(16);
    if magic != MAGIC {
        return Err("missing STARGZ magic".into());
    }
    Ok((Some(parse_hex_offset(hex)?), warnings))
}

fn parse_hex_offset(hex: &[u8]) -> Result<u64, String> {
    let mut value: u64 = 0;
    for &c in hex {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => {
                return Err(format!(
                    "TOC offset {:?} is not 16 hex digits",
                    String::from_utf8_lossy(hex)
                ))
            }
        };
        value = (value << 4) | u64::from(digit);
    }
    if value > i64::MAX as u64 {
        return Err(format!(
            "TOC offset {value:#x} is negative as a signed 64-bit number"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBSERVED_774: &str = "1f8b08040000000000ff1a00534716003030303030303030303030303033303653544152475a010000ffff0000000000000000";
    const EXTERNAL: &str = "1f8b08040000000000ff15005347110053544152475a45585445524e414c544f43010000ffff0000000000000000";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn legacy(offset: &str) -> Vec<u8> {
        let mut b = GZIP_FEXTRA_HEADER.to_vec();
        b.extend_from_slice(&22u16.to_le_bytes());
        b.extend_from_slice(offset.as_bytes());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&EMPTY_BODY_AND_TRAILER);
        b
    }

    #[test]
    fn encodes_the_observed_reference_bytes() {
        assert_eq!(encode(774).to_vec(), unhex(OBSERVED_774));
    }

    #[test]
    fn encodes_the_spec_external_toc_bytes() {
        assert_eq!(encode_external().to_vec(), unhex(EXTERNAL));
    }

    /// F2: offsets 0..200000 step 1023 round-trip, eStargz and legacy.
    #[test]
    fn round_trips_many_offsets() {
        for off in (0..200_000u64).step_by(1023) {
            let size = off + 100;
            let f = parse(&encode(off), size).unwrap();
            assert_eq!(
                (f.kind, f.toc_offset, f.warnings.len()),
                (FooterKind::Estargz, Some(off), 0)
            );
            let l = legacy(&format!("{off:016x}"));
            assert_eq!(l.len(), LEGACY_FOOTER_SIZE);
            let f = parse(&l, size).unwrap();
            assert_eq!((f.kind, f.toc_offset), (FooterKind::Legacy, Some(off)));
        }
    }

    /// F5: the external-TOC footer is recognised, with no TOC offset.
    #[test]
    fn recognises_external_toc_footer() {
        let f = parse(&unhex(EXTERNAL), 1000).unwrap();
        assert_eq!((f.kind, f.toc_offset), (FooterKind::ExternalToc, None));
        assert_eq!(f.payload_end(1000), 954);
    }

    /// F3 and §5.1: every malformed field is an error, never a panic.
    #[test]
    fn rejects_malformed_footers() {
        let good = encode(100);
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("51 zero bytes", vec![0; 51]),
            ("short extra", {
                let mut b = good.to_vec();
                b[10] = 2;
                b
            }),
            ("wrong subfield len", {
                let mut b = good.to_vec();
                b[14] = 21;
                b
            }),
            ("bad SI", {
                let mut b = good.to_vec();
                b[12] = b'X';
                b
            }),
            ("bad magic", {
                let mut b = good.to_vec();
                b[37] = b'Y';
                b
            }),
            ("fname flag", {
                let mut b = good.to_vec();
                b[3] = 0x0c;
                b
            }),
            ("bad CM", {
                let mut b = good.to_vec();
                b[2] = 7;
                b
            }),
        ];
        for bad_offset in [
            "+000000000000064",
            "-000000000000064",
            "00000X0000000000",
            "ffffffffffffffff",
        ] {
            let mut b = good.to_vec();
            b[16..32].copy_from_slice(bad_offset.as_bytes());
            cases.push(("bad offset", b));
        }
        for (what, bytes) in cases {
            let size = (bytes.len() as u64).max(1000);
            assert!(parse(&bytes, size).is_err(), "{what} accepted");
        }
        // Offsets past the end, inside the footer, or leaving no room for a TOC.
        for (off, size) in [(2000, 1000), (980, 1000), (949 - 19, 1000)] {
            let err = parse(&encode(off), size).unwrap_err();
            assert!(
                matches!(err, FooterError::TocOffsetOutOfRange { .. }),
                "{off}: {err}"
            );
        }
        assert!(parse(&encode(929), 1000).is_ok());
        assert!(matches!(
            parse(&encode(0), 40),
            Err(FooterError::TooSmall { .. })
        ));
    }

    #[test]
    fn accepts_upper_case_hex_and_warns_on_unchecked_bytes() {
        let mut b = encode(0xabc);
        b[16..32].copy_from_slice(b"0000000000000ABC");
        assert_eq!(parse(&b, 5000).unwrap().toc_offset, Some(0xabc));
        b[47] = 1;
        let f = parse(&b, 5000).unwrap();
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
    }
}
