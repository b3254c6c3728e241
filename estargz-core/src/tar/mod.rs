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

pub use header::{Header, Layout, BLOCK};
pub use scan::{Entry, EntryKind, Item, NamePolicy, ScanLimits, Scanner};

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
