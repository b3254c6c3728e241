//! The table of contents: `stargz.index.json`.
//!
//! [`Toc`] is the model; [`Toc::to_json`] writes it exactly as the reference's
//! Go `json.MarshalIndent(toc, "", "\t")` does (spec §3.3): field order, omit
//! rules, tab indentation and Go's string escaping. The TOC digest is the
//! SHA-256 of those exact bytes, so every byte matters.

use crate::digest::Digest;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Name of the TOC file inside its tar member.
pub const TOC_NAME: &str = "stargz.index.json";

/// The whole TOC.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Toc {
    /// Always 1 when written.
    #[serde(default)]
    pub version: i64,
    /// Entries in blob order; `null` in JSON when empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub entries: Vec<TocEntry>,
}

impl Default for Toc {
    fn default() -> Self {
        Toc {
            version: 1,
            entries: Vec::new(),
        }
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TocEntry>, D::Error> {
    Ok(Option::<Vec<TocEntry>>::deserialize(d)?.unwrap_or_default())
}

/// The `type` of a TOC entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// `dir`
    Dir,
    /// `reg`: a regular file (its first chunk).
    Reg,
    /// `symlink`
    Symlink,
    /// `hardlink`
    Hardlink,
    /// `char`
    Char,
    /// `block`
    Block,
    /// `fifo`
    Fifo,
    /// `chunk`: a further chunk of the preceding `reg`.
    Chunk,
    /// Anything else: readers accept it, verify reports it.
    Other(String),
}

impl EntryType {
    /// The JSON spelling.
    pub fn as_str(&self) -> &str {
        match self {
            EntryType::Dir => "dir",
            EntryType::Reg => "reg",
            EntryType::Symlink => "symlink",
            EntryType::Hardlink => "hardlink",
            EntryType::Char => "char",
            EntryType::Block => "block",
            EntryType::Fifo => "fifo",
            EntryType::Chunk => "chunk",
            EntryType::Other(s) => s,
        }
    }

    /// Parses the JSON spelling; unknown strings become [`EntryType::Other`].
    pub fn parse(s: &str) -> EntryType {
        match s {
            "dir" => EntryType::Dir,
            "reg" => EntryType::Reg,
            "symlink" => EntryType::Symlink,
            "hardlink" => EntryType::Hardlink,
            "char" => EntryType::Char,
            "block" => EntryType::Block,
            "fifo" => EntryType::Fifo,
            "chunk" => EntryType::Chunk,
            other => EntryType::Other(other.to_string()),
        }
    }
}

impl fmt::Display for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EntryType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(EntryType::parse(&String::deserialize(d)?))
    }
}

/// One TOC entry. Zero and empty fields are omitted from the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TocEntry {
    /// Raw tar name (`./x`, `/x` kept). Chunks repeat their file's name.
    pub name: String,
    /// Entry type.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// File size (`reg` only).
    #[serde(default)]
    pub size: i64,
    /// RFC 3339 modification time, see [`format_modtime`].
    #[serde(default)]
    pub modtime: String,
    /// Symlink or hardlink target, raw.
    #[serde(default)]
    pub link_name: String,
    /// Raw tar mode.
    #[serde(default)]
    pub mode: i64,
    /// Owner id.
    #[serde(default)]
    pub uid: i64,
    /// Group id.
    #[serde(default)]
    pub gid: i64,
    /// Owner name, de-duplicated per uid (spec §3.7).
    #[serde(default)]
    pub user_name: String,
    /// Group name, de-duplicated per gid.
    #[serde(default)]
    pub group_name: String,
    /// Blob offset of the gzip member holding this data entry.
    #[serde(default)]
    pub offset: i64,
    /// Uncompressed bytes to skip inside the member at `offset`.
    #[serde(default)]
    pub inner_offset: i64,
    /// Device major number.
    #[serde(default)]
    pub dev_major: i64,
    /// Device minor number.
    #[serde(default)]
    pub dev_minor: i64,
    /// Extended attributes (values base64 in JSON).
    #[serde(default, deserialize_with = "xattrs_from_base64")]
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Whole-file digest (`reg` only, even when empty).
    #[serde(default)]
    pub digest: String,
    /// Offset of this chunk in its file.
    #[serde(default)]
    pub chunk_offset: i64,
    /// Chunk length; omitted when the rest of the file is shorter than the chunk size.
    #[serde(default)]
    pub chunk_size: i64,
    /// Digest of this chunk's bytes.
    #[serde(default)]
    pub chunk_digest: String,
}

fn xattrs_from_base64<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
    let raw = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?.unwrap_or_default();
    raw.into_iter()
        .map(|(k, v)| {
            let v = v.unwrap_or_default();
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .map(|bytes| (k.clone(), bytes))
                .map_err(|e| serde::de::Error::custom(format!("xattr {k:?}: bad base64: {e}")))
        })
        .collect()
}

impl TocEntry {
    /// An entry with only a name and a type.
    pub fn new(name: impl Into<String>, kind: EntryType) -> TocEntry {
        TocEntry {
            name: name.into(),
            kind,
            size: 0,
            modtime: String::new(),
            link_name: String::new(),
            mode: 0,
            uid: 0,
            gid: 0,
            user_name: String::new(),
            group_name: String::new(),
            offset: 0,
            inner_offset: 0,
            dev_major: 0,
            dev_minor: 0,
            xattrs: BTreeMap::new(),
            digest: String::new(),
            chunk_offset: 0,
            chunk_size: 0,
            chunk_digest: String::new(),
        }
    }

    /// Length of the data this entry covers, for a file of `file_size`
    /// bytes (its own size for a `reg` entry, its file's for a `chunk`):
    /// the one rule the reader and the verifier share.
    ///
    /// A `reg` entry holds the first chunk: `chunkSize` bytes when that is
    /// set and shorter than the file, else the whole file. A `chunk` entry
    /// holds `chunkSize` bytes, or without one (the last chunk) the rest of
    /// the file from its `chunkOffset`. `None` for other types, a negative
    /// `chunkSize` or `chunkOffset`, or a last chunk starting past the end
    /// of its file.
    pub fn chunk_len(&self, file_size: u64) -> Option<u64> {
        let chunk_size = u64::try_from(self.chunk_size).ok()?;
        match self.kind {
            EntryType::Reg if chunk_size > 0 && chunk_size < file_size => Some(chunk_size),
            EntryType::Reg => Some(file_size),
            EntryType::Chunk if chunk_size > 0 => Some(chunk_size),
            EntryType::Chunk => file_size.checked_sub(self.chunk_offset_u64()?),
            _ => None,
        }
    }

    /// `size`, unless negative.
    pub(crate) fn size_u64(&self) -> Option<u64> {
        u64::try_from(self.size).ok()
    }

    /// `offset`, unless negative (a negative one names no byte of the blob).
    pub(crate) fn offset_u64(&self) -> Option<u64> {
        u64::try_from(self.offset).ok()
    }

    /// `innerOffset`, unless negative.
    pub(crate) fn inner_offset_u64(&self) -> Option<u64> {
        u64::try_from(self.inner_offset).ok()
    }

    /// `chunkOffset`, unless negative.
    pub(crate) fn chunk_offset_u64(&self) -> Option<u64> {
        u64::try_from(self.chunk_offset).ok()
    }
}

impl Toc {
    /// The exact JSON the reference writes for this TOC (tab-indented, no
    /// trailing newline). Its SHA-256 is the TOC digest.
    ///
    /// ```
    /// use estargz_core::{EntryType, Toc, TocEntry};
    /// let mut toc = Toc::default();
    /// assert_eq!(toc.to_json(), b"{\n\t\"version\": 1,\n\t\"entries\": null\n}");
    /// toc.entries.push(TocEntry::new("a<b", EntryType::Dir));
    /// let json = String::from_utf8(toc.to_json()).unwrap();
    /// assert!(json.contains("\"name\": \"a\\u003cb\""));
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 256);
        out.extend_from_slice(b"{\n\t\"version\": ");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.extend_from_slice(b",\n\t\"entries\": ");
        if self.entries.is_empty() {
            out.extend_from_slice(b"null");
        } else {
            out.extend_from_slice(b"[");
            for (i, e) in self.entries.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"\n\t\t{" } else { b",\n\t\t{" });
                write_entry(&mut out, e);
                out.extend_from_slice(b"\n\t\t}");
            }
            out.extend_from_slice(b"\n\t]");
        }
        out.extend_from_slice(b"\n}");
        out
    }

    /// [`Digest`] of [`Toc::to_json`].
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_json())
    }
}

/// Writes the fields of one entry (between its braces) in the reference's order.
fn write_entry(out: &mut Vec<u8>, e: &TocEntry) {
    let mut fields = FieldWriter {
        out,
        first: true,
        indent: b"\n\t\t\t",
    };
    fields.string("name", &e.name, true);
    fields.string("type", e.kind.as_str(), true);
    fields.int("size", e.size);
    fields.string("modtime", &e.modtime, false);
    fields.string("linkName", &e.link_name, false);
    fields.int("mode", e.mode);
    fields.int("uid", e.uid);
    fields.int("gid", e.gid);
    fields.string("userName", &e.user_name, false);
    fields.string("groupName", &e.group_name, false);
    fields.int("offset", e.offset);
    fields.int("innerOffset", e.inner_offset);
    fields.int("devMajor", e.dev_major);
    fields.int("devMinor", e.dev_minor);
    if !e.xattrs.is_empty() {
        fields.key("xattrs");
        fields.out.push(b'{');
        for (i, (k, v)) in e.xattrs.iter().enumerate() {
            fields.out.extend_from_slice(if i == 0 {
                b"\n\t\t\t\t"
            } else {
                b",\n\t\t\t\t"
            });
            write_go_string(fields.out, k);
            fields.out.extend_from_slice(b": \"");
            fields.out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(v)
                    .as_bytes(),
            );
            fields.out.push(b'"');
        }
        fields.out.extend_from_slice(b"\n\t\t\t}");
    }
    fields.string("digest", &e.digest, false);
    fields.int("chunkOffset", e.chunk_offset);
    fields.int("chunkSize", e.chunk_size);
    fields.string("chunkDigest", &e.chunk_digest, false);
}

struct FieldWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    indent: &'static [u8],
}

impl FieldWriter<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(self.indent);
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\": ");
    }

    fn string(&mut self, key: &str, value: &str, always: bool) {
        if always || !value.is_empty() {
            self.key(key);
            write_go_string(self.out, value);
        }
    }

    fn int(&mut self, key: &str, value: i64) {
        if value != 0 {
            self.key(key);
            self.out.extend_from_slice(value.to_string().as_bytes());
        }
    }
}

/// The uncompressed TOC tar (spec §2.6): a ustar header for
/// `stargz.index.json` as Go's `archive/tar` writes it (mode, ids and mtime
/// 0), the JSON padded to 512 bytes, then two zero blocks.
///
/// ```
/// let tar = estargz_core::internals::tar_bytes(&[b'x'; 3500]);
/// assert_eq!(tar.len(), 5120);
/// assert_eq!(&tar[..17], b"stargz.index.json");
/// ```
pub fn tar_bytes(json: &[u8]) -> Vec<u8> {
    let padded = json.len().div_ceil(512) * 512;
    let mut out = vec![0u8; 512 + padded + 1024];
    let h = &mut out[..512];
    h[..TOC_NAME.len()].copy_from_slice(TOC_NAME.as_bytes());
    for range in [100..108, 108..116, 116..124, 329..337, 337..345] {
        h[range.start..range.end - 1].copy_from_slice(b"0000000");
    }
    h[124..135].copy_from_slice(format!("{:011o}", json.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    h[154] = 0;
    out[512..512 + json.len()].copy_from_slice(json);
    out
}

/// A JSON string as Go's `encoding/json` writes it with HTML escaping on.
///
/// U+FFFD is written as the escape `\ufffd`: this is what Go emits for the
/// invalid UTF-8 bytes that [`crate::tar`] replaced with it.
pub fn write_go_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '\u{8}' => Some(b"\\b"),
            '\u{c}' => Some(b"\\f"),
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            '\u{fffd}' => Some(b"\\ufffd"),
            _ => None,
        };
        let needs_hex = matches!(c, '\0'..='\u{1f}' | '<' | '>' | '&');
        if escape.is_none() && !needs_hex {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + c.len_utf8();
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Formats a tar modification time as the TOC's `modtime` (spec §3.4): empty
/// when the whole seconds are 0; otherwise UTC rounded to the nearest second
/// (halves up), `YYYY-MM-DDTHH:MM:SSZ`.
///
/// `nanos` is the fraction in `[0, 1e9)` added to `secs` (so −0.5 s is
/// `secs = -1, nanos = 500_000_000`).
///
/// ```
/// use estargz_core::internals::format_modtime;
/// assert_eq!(format_modtime(1577934245, 600_000_000), "2020-01-02T03:04:06Z");
/// assert_eq!(format_modtime(0, 0), "");
/// ```
pub fn format_modtime(secs: i64, nanos: u32) -> String {
    // Go's Time.Unix() truncates toward negative infinity, like `secs` here.
    if secs == 0 {
        return String::new();
    }
    let rounded = i128::from(secs) + i128::from(nanos >= 500_000_000);
    let days = rounded.div_euclid(86_400);
    let rem = rounded.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i128) -> (i128, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(s: &str) -> String {
        let mut out = Vec::new();
        write_go_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_strings_like_go() {
        assert_eq!(go("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go("<a>&"), r#""\u003ca\u003e\u0026""#);
        assert_eq!(go("\n\r\t"), r#""\n\r\t""#);
        // Go >= 1.22 writes \b and \f; pinned here (spec §3.3).
        assert_eq!(go("\u{8}\u{c}"), r#""\b\f""#);
        assert_eq!(go("\u{1}\u{1f}"), r#""\u0001\u001f""#);
        assert_eq!(go("\u{7f}é日"), "\"\u{7f}é日\"");
        assert_eq!(go("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(go("bad\u{fffd}\u{fffd}name"), r#""bad\ufffd\ufffdname""#);
    }

    #[test]
    fn formats_modtime_like_the_reference() {
        assert_eq!(
            format_modtime(1577934245, 600_000_000),
            "2020-01-02T03:04:06Z"
        );
        assert_eq!(
            format_modtime(1577934245, 499_999_999),
            "2020-01-02T03:04:05Z"
        );
        assert_eq!(format_modtime(0, 999_999_999), "");
        assert_eq!(format_modtime(-1, 0), "1969-12-31T23:59:59Z");
        assert_eq!(format_modtime(-1, 500_000_000), "1970-01-01T00:00:00Z");
        assert_eq!(format_modtime(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(format_modtime(8_589_934_591, 0), "2242-03-16T12:56:31Z");
        // Absurd base-256 times must format without panicking.
        let _ = format_modtime(i64::MAX, 999_999_999);
        let _ = format_modtime(i64::MIN, 0);
    }

    /// The §3.8 example's `foo/bar.txt` entry, byte for byte.
    #[test]
    fn writes_fields_in_reference_order() {
        let mut e = TocEntry::new("foo/bar.txt", EntryType::Reg);
        e.size = 13;
        e.modtime = "2020-01-02T03:04:06Z".into();
        e.mode = 420;
        e.uid = 1000;
        e.gid = 1000;
        e.offset = 233;
        e.xattrs.insert("user.foo".into(), b"bar".to_vec());
        e.digest = "sha256:d".into();
        e.chunk_size = 4;
        e.chunk_digest = "sha256:c".into();
        let toc = Toc {
            version: 1,
            entries: vec![e, TocEntry::new("x", EntryType::Dir)],
        };
        let want = "{\n\t\"version\": 1,\n\t\"entries\": [\n\t\t{\n\t\t\t\"name\": \"foo/bar.txt\",\n\t\t\t\"type\": \"reg\",\n\t\t\t\"size\": 13,\n\t\t\t\"modtime\": \"2020-01-02T03:04:06Z\",\n\t\t\t\"mode\": 420,\n\t\t\t\"uid\": 1000,\n\t\t\t\"gid\": 1000,\n\t\t\t\"offset\": 233,\n\t\t\t\"xattrs\": {\n\t\t\t\t\"user.foo\": \"YmFy\"\n\t\t\t},\n\t\t\t\"digest\": \"sha256:d\",\n\t\t\t\"chunkSize\": 4,\n\t\t\t\"chunkDigest\": \"sha256:c\"\n\t\t},\n\t\t{\n\t\t\t\"name\": \"x\",\n\t\t\t\"type\": \"dir\"\n\t\t}\n\t]\n}";
        assert_eq!(String::from_utf8(toc.to_json()).unwrap(), want);
        let parsed: Toc = serde_json::from_slice(&toc.to_json()).unwrap();
        assert_eq!(parsed, toc);
    }

    #[test]
    fn empty_toc_is_the_observed_35_bytes() {
        let json = Toc::default().to_json();
        assert_eq!(json.len(), 35);
        let parsed: Toc = serde_json::from_slice(&json).unwrap();
        assert!(parsed.entries.is_empty());
    }
}
