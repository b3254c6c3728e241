//! Lossless tar scanning.
//!
//! [`Scanner`] walks a tar stream and hands out, for every real entry, the
//! exact bytes consumed since the previous entry's data (padding, extension
//! headers, the header itself) together with the parsed metadata; the data
//! is then read by the caller, so nothing is lost and nothing is re-encoded.
//! PAX (`x`, `g`), GNU long names (`L`, `K`), base-256 numbers, star and v7
//! headers are understood; sparse entries are refused.

mod header;
mod pax;
mod scan;
mod strip;

pub use header::{Header, BLOCK};
pub use scan::{Entry, EntryKind, Item, NamePolicy, ScanLimits, Scanner};
pub use strip::WithoutEstargzEntries;

use crate::error::{Error, Result};
use std::io::{Chain, Cursor, Read};

/// An input whose first bytes were read and are served again.
pub type Sniffed<R> = Chain<Cursor<Vec<u8>>, R>;

/// Reads the first bytes of a layer and puts them back in front of the
/// rest: whether the input is gzip (`1f 8b 08`), and the whole input.
/// An input with no bytes at all is [`Error::EmptyInput`].
///
/// ```
/// use std::io::Read;
/// let (gzip, mut all) = estargz_core::internals::sniff_gzip(&b"\x1f\x8b\x08rest"[..]).unwrap();
/// let mut bytes = Vec::new();
/// all.read_to_end(&mut bytes).unwrap();
/// assert!(gzip);
/// assert_eq!(bytes, b"\x1f\x8b\x08rest");
/// ```
pub fn sniff_gzip<R: Read>(mut input: R) -> Result<(bool, Sniffed<R>)> {
    let mut magic = Vec::with_capacity(3);
    (&mut input)
        .take(3)
        .read_to_end(&mut magic)
        .map_err(|source| Error::Read { offset: 0, source })?;
    if magic.is_empty() {
        return Err(Error::EmptyInput);
    }
    let is_gzip = magic == [0x1f, 0x8b, 0x08];
    Ok((is_gzip, Cursor::new(magic).chain(input)))
}

/// Decodes bytes as UTF-8 the way Go's `encoding/json` does: every byte of an
/// invalid sequence becomes one U+FFFD.
pub fn lossy_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for _ in chunk.invalid() {
            out.push('\u{fffd}');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_each_invalid_byte() {
        assert_eq!(
            super::lossy_utf8(b"d/bad\xff\xfename"),
            "d/bad\u{fffd}\u{fffd}name"
        );
        assert_eq!(super::lossy_utf8(b"\xe2\x82A"), "\u{fffd}\u{fffd}A");
        assert_eq!(
            super::lossy_utf8(b"\xed\xa0\x80"),
            "\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(super::lossy_utf8("é".as_bytes()), "é");
    }
}
