//! The footer and the TOC of an eStargz blob, read from the format
//! contract (`../shared/docs/estargz-format.md`: the 51-byte footer of
//! §2.2, the TOC member of §2.1), not from estargz-core.
//!
//! Written from the spec, not from the library, on purpose: this is the
//! one independent check of the library's footer and TOC parsing. A
//! writer bug that the library's reader shares (both read the footer the
//! same wrong way) passes every test that reads back through the library;
//! it fails here. Other helpers read blobs through this module or through
//! the library, never through a third parser.

use std::io::Read;

/// Size of the eStargz footer.
pub const FOOTER_SIZE: usize = 51;

/// Name of the TOC's tar entry.
pub const TOC_NAME: &[u8] = b"stargz.index.json";

/// The footer a writer must emit for a TOC at `toc_offset` (§2.2: exactly
/// these bytes; an empty gzip member whose extra field holds the offset).
pub fn footer(toc_offset: u64) -> [u8; FOOTER_SIZE] {
    let mut f = [0u8; FOOTER_SIZE];
    // ID1 ID2, CM deflate, FLG FEXTRA, MTIME 0, XFL 0, OS 255.
    f[..10].copy_from_slice(&[0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0x00, 0xff]);
    // XLEN 26; subfield SI1 'S' SI2 'G', LEN 22.
    f[10..16].copy_from_slice(&[26, 0, b'S', b'G', 22, 0]);
    f[16..32].copy_from_slice(format!("{toc_offset:016x}").as_bytes());
    f[32..38].copy_from_slice(b"STARGZ");
    // A final stored block of length 0, then CRC32 0 and ISIZE 0.
    f[38..43].copy_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    f
}

/// The TOC offset of an eStargz blob, read from its footer: the last 51
/// bytes, whose bytes 16..32 are the offset in 16 lower-case hex digits.
/// Panics unless the footer is exactly what §2.2 prescribes.
pub fn toc_offset(blob: &[u8]) -> usize {
    assert!(blob.len() > FOOTER_SIZE, "blob too short for a footer");
    let footer_bytes = &blob[blob.len() - FOOTER_SIZE..];
    assert_eq!(&footer_bytes[32..38], b"STARGZ", "footer magic");
    let hex = std::str::from_utf8(&footer_bytes[16..32]).expect("TOC offset is not ASCII");
    assert!(
        hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "TOC offset {hex:?} is not 16 lower-case hex digits"
    );
    let offset = usize::from_str_radix(hex, 16).unwrap();
    assert!(offset < blob.len() - FOOTER_SIZE, "TOC offset out of range");
    assert_eq!(
        footer_bytes,
        &footer(offset as u64)[..],
        "footer bytes differ from the spec's"
    );
    offset
}

/// The TOC member decompressed: a tar whose only entry is
/// `stargz.index.json`, then two zero blocks. Panics if the member is not
/// the last one before the footer.
pub fn toc_tar(blob: &[u8]) -> Vec<u8> {
    let offset = toc_offset(blob);
    let mut decoder = flate2::bufread::GzDecoder::new(&blob[offset..blob.len() - FOOTER_SIZE]);
    let mut toc_tar = Vec::new();
    decoder
        .read_to_end(&mut toc_tar)
        .expect("TOC member is not valid gzip");
    assert!(
        decoder.into_inner().is_empty(),
        "the TOC must be the last member before the footer"
    );
    toc_tar
}

/// The raw TOC JSON of an eStargz blob: the gzip member at the footer's
/// offset holds a tar whose only entry is `stargz.index.json`.
pub fn toc_json(blob: &[u8]) -> Vec<u8> {
    let toc_tar = toc_tar(blob);
    assert!(toc_tar.len() >= 512, "TOC tar shorter than one header");

    let header = &toc_tar[..512];
    let name_end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
    assert_eq!(&header[..name_end], TOC_NAME, "TOC entry name");
    let size_field = std::str::from_utf8(&header[124..135]).expect("TOC size is not ASCII");
    let size = usize::from_str_radix(size_field, 8)
        .unwrap_or_else(|e| panic!("TOC size {size_field:?} is not 11 octal digits: {e}"));
    assert_eq!(
        header_checksum(header),
        stored_checksum(header),
        "TOC tar header checksum"
    );
    assert_eq!(
        toc_tar.len(),
        512 + size.div_ceil(512) * 512 + 1024,
        "TOC tar: one header, the padded JSON, two zero blocks"
    );
    assert!(
        toc_tar[512 + size..].iter().all(|&b| b == 0),
        "TOC tar: padding and end blocks are zeros"
    );
    toc_tar[512..512 + size].to_vec()
}

/// The sum of a tar header's bytes with its checksum field read as spaces.
fn header_checksum(header: &[u8]) -> u32 {
    header
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { b' ' } else { b })
        .map(u32::from)
        .sum()
}

/// The checksum field: octal digits, ended by NUL or space.
fn stored_checksum(header: &[u8]) -> u32 {
    let field = std::str::from_utf8(&header[148..156]).expect("checksum is not ASCII");
    let digits = field.trim_matches(|c| c == '\0' || c == ' ');
    u32::from_str_radix(digits, 8).unwrap_or_else(|e| panic!("checksum {field:?}: {e}"))
}
