//! One 512-byte tar header block: field extraction, numbers, checksum.
//!
//! Handles the v7, ustar, star and GNU layouts. Numbers are octal (with the
//! usual space/NUL padding) or GNU base-256.

use crate::error::TarErrorKind;

/// Tar block size.
pub const BLOCK: usize = 512;

/// Which header layout a block uses (decides where the prefix lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// No magic: only name, mode, ids, size, mtime, type and link name.
    V7,
    /// POSIX ustar (also the base of PAX): 155-byte prefix.
    Ustar,
    /// star: ustar magic with `tar\0` at 508 and a 131-byte prefix.
    Star,
    /// GNU (`ustar  \0`): no prefix; atime/ctime and sparse data there instead.
    Gnu,
}

/// A borrowed header block.
pub struct Header<'a>(pub &'a [u8; BLOCK]);

impl<'a> Header<'a> {
    /// True for an all-zero block (end-of-archive marker).
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// The header layout, from the magic and version fields.
    pub fn layout(&self) -> Layout {
        let b = self.0;
        match (&b[257..263], &b[263..265]) {
            (b"ustar\0", _) if &b[508..512] == b"tar\0" => Layout::Star,
            (b"ustar\0", _) => Layout::Ustar,
            (b"ustar ", b" \0") => Layout::Gnu,
            _ => Layout::V7,
        }
    }

    /// Checks the header checksum; accepts the unsigned sum (POSIX) and the
    /// signed sum some old writers produced.
    pub fn verify_checksum(&self, at_start: bool) -> Result<(), TarErrorKind> {
        let field = &self.0[148..156];
        let (mut unsigned, mut signed) = (0u32, 0i32);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u32::from(b);
            signed += i32::from(b as i8);
        }
        let bad = || TarErrorKind::BadChecksum {
            stored: String::from_utf8_lossy(field).into_owned(),
            computed: unsigned,
            at_start,
        };
        let stored = parse_octal(field).ok_or_else(bad)?;
        if stored == u64::from(unsigned) || i64::try_from(stored).ok() == Some(i64::from(signed)) {
            Ok(())
        } else {
            Err(bad())
        }
    }

    /// The type flag byte.
    pub fn typeflag(&self) -> u8 {
        self.0[156]
    }

    /// The name, with the ustar/star prefix joined in front.
    pub fn path(&self) -> Vec<u8> {
        let name = cstr(&self.0[0..100]);
        let prefix = match self.layout() {
            Layout::Ustar => cstr(&self.0[345..500]),
            Layout::Star => cstr(&self.0[345..476]),
            Layout::V7 | Layout::Gnu => &[],
        };
        if prefix.is_empty() {
            name.to_vec()
        } else {
            let mut p = prefix.to_vec();
            p.push(b'/');
            p.extend_from_slice(name);
            p
        }
    }

    /// The link name field.
    pub fn link_name(&self) -> Vec<u8> {
        cstr(&self.0[157..257]).to_vec()
    }

    /// The owner name (empty in v7 headers).
    pub fn user_name(&self) -> Vec<u8> {
        self.ustar_string(265..297)
    }

    /// The group name (empty in v7 headers).
    pub fn group_name(&self) -> Vec<u8> {
        self.ustar_string(297..329)
    }

    fn ustar_string(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        if self.layout() == Layout::V7 {
            Vec::new()
        } else {
            cstr(&self.0[range]).to_vec()
        }
    }

    /// Mode field.
    pub fn mode(&self) -> Result<i64, TarErrorKind> {
        self.signed("mode", 100..108)
    }
    /// Owner id field.
    pub fn uid(&self) -> Result<i64, TarErrorKind> {
        self.signed("uid", 108..116)
    }
    /// Group id field.
    pub fn gid(&self) -> Result<i64, TarErrorKind> {
        self.signed("gid", 116..124)
    }
    /// Size field; negative sizes are an error.
    pub fn size(&self) -> Result<u64, TarErrorKind> {
        let v = self.signed("size", 124..136)?;
        u64::try_from(v).map_err(|_| TarErrorKind::Negative { field: "size" })
    }
    /// Modification time, whole seconds.
    pub fn mtime(&self) -> Result<i64, TarErrorKind> {
        self.signed("mtime", 136..148)
    }
    /// Device major (0 in v7 headers).
    pub fn dev_major(&self) -> Result<i64, TarErrorKind> {
        self.device("devmajor", 329..337)
    }
    /// Device minor (0 in v7 headers).
    pub fn dev_minor(&self) -> Result<i64, TarErrorKind> {
        self.device("devminor", 337..345)
    }

    fn device(
        &self,
        field: &'static str,
        range: std::ops::Range<usize>,
    ) -> Result<i64, TarErrorKind> {
        if self.layout() == Layout::V7 {
            Ok(0)
        } else {
            self.signed(field, range)
        }
    }

    fn signed(
        &self,
        field: &'static str,
        range: std::ops::Range<usize>,
    ) -> Result<i64, TarErrorKind> {
        parse_numeric(&self.0[range]).ok_or_else(|| TarErrorKind::BadNumber {
            field,
            value: String::from_utf8_lossy(&self.0[field_range(field)]).into_owned(),
        })
    }

    /// Access and change times in whole seconds where the layout has them,
    /// as Go's `archive/tar` reads them: GNU headers when the field's first
    /// byte is set, star headers always (0 there means none). Unparseable
    /// fields count as absent: nothing but the containers TOC uses them.
    pub fn atime_ctime(&self) -> (Option<i64>, Option<i64>) {
        let field = |range: std::ops::Range<usize>| match self.layout() {
            Layout::Gnu if self.0[range.start] != 0 => parse_numeric(&self.0[range]),
            Layout::Star => parse_numeric(&self.0[range]).filter(|&t| t != 0),
            _ => None,
        };
        match self.layout() {
            Layout::Gnu => (field(345..357), field(357..369)),
            Layout::Star => (field(476..488), field(488..500)),
            _ => (None, None),
        }
    }

    /// The name for error messages, before extension headers are applied
    /// (cut short: a garbage block can hold 255 bytes of noise).
    pub fn display_name(&self) -> String {
        let name = crate::tar::lossy_utf8(&self.path());
        match name.char_indices().nth(120) {
            Some((cut, _)) => format!("{}…", &name[..cut]),
            None => name,
        }
    }
}

fn field_range(field: &str) -> std::ops::Range<usize> {
    match field {
        "mode" => 100..108,
        "uid" => 108..116,
        "gid" => 116..124,
        "size" => 124..136,
        "mtime" => 136..148,
        "devmajor" => 329..337,
        _ => 337..345,
    }
}

/// Bytes up to the first NUL.
fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric field: GNU base-256 when the high bit of the first byte is set
/// (0xff first byte = negative), otherwise octal.
pub fn parse_numeric(field: &[u8]) -> Option<i64> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => parse_base256(field),
        _ => parse_octal(field).and_then(|v| i64::try_from(v).ok()),
    }
}

/// Two's-complement big-endian after the marker bit; bit 0x40 of the first
/// byte is the sign (Go's archive/tar rule).
fn parse_base256(field: &[u8]) -> Option<i64> {
    let inv: u8 = if field[0] & 0x40 != 0 { 0xff } else { 0 };
    let mut x: u64 = 0;
    for (i, &c) in field.iter().enumerate() {
        let mut c = c ^ inv;
        if i == 0 {
            c &= 0x7f;
        }
        if x >> 56 != 0 {
            return None;
        }
        x = (x << 8) | u64::from(c);
    }
    if x >> 63 != 0 {
        return None;
    }
    let x = x as i64;
    Some(if inv == 0xff { !x } else { x })
}

/// Octal digits with leading spaces/NULs skipped and a space/NUL terminator;
/// anything after the terminator must be padding.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let start = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .unwrap_or(field.len());
    let rest = &field[start..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .unwrap_or(rest.len());
    let (digits, padding) = rest.split_at(end);
    if !padding.iter().all(|&b| b == b' ' || b == 0) {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"   644 \0"), Some(0o644));
        assert_eq!(parse_numeric(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b"0000000000000"), Some(0));
        assert_eq!(parse_numeric(b"00006x4\0"), None);
        assert_eq!(parse_numeric(b"0644\0 9\0"), None);
        assert_eq!(parse_numeric(b"99999999"), None);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[7] = 1;
        assert_eq!(parse_numeric(&b256), Some(1 << 32));
        let minus_one = [0xffu8; 12];
        assert_eq!(parse_numeric(&minus_one), Some(-1));
        let mut minus_256 = [0xffu8; 12];
        minus_256[11] = 0;
        assert_eq!(parse_numeric(&minus_256), Some(-256));
        let huge = [
            0x80u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(parse_numeric(&huge), None);
    }
}
