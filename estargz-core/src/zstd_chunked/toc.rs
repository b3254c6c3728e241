//! The TOC frame and the two TOC schemas (spec §3.2, §4.4, §7.4 rule 3).
//!
//! The stargz dialect stores the eStargz TOC JSON of [`crate::toc`],
//! indented, not wrapped in a tar. The containers dialect stores its own
//! compact schema: the same key names where they overlap, plus `endOffset`,
//! `chunkType`, `accesstime`, `changetime` and a top-level
//! `tarSplitDigest`; no `userName`/`groupName`/`innerOffset`; times in
//! RFC 3339 with nanoseconds and a zone; no `digest` on empty files and
//! `chunkDigest` only on files of two or more chunks. [`ContainersToc::to_estargz`]
//! maps it onto [`Toc`] so that one reader serves both.
//!
//! Two digests name a TOC: the TOC digest (sha256 of the JSON, the stargz
//! `toc.digest` annotation) and the manifest checksum (sha256 of the
//! compressed frame, the containers `manifest-checksum` annotation). Both
//! are computed here, whatever the dialect (spec §8 #3).

use super::footer::{FooterVersion, ZstdFooter};
use super::frame::{skippable_len, FrameDecoder};
use super::{Dialect, Limits, ZstdError, SKIPPABLE_HEADER};
use crate::digest::Digest;
use crate::toc::{write_go_string, EntryType, Toc, TocEntry};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Go's zero `time.Time`, which containers/storage ≤ v1.54 writes for
/// unset access and change times.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A metadata frame (TOC or tar-split) as the footer or an annotation locates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataFrame {
    /// `TOC` or `tar-split`, for messages.
    pub what: &'static str,
    /// Offset of the zstd frame's magic; its skippable header is 8 bytes before.
    pub offset: u64,
    /// Compressed length (the skippable header's length field).
    pub compressed: u64,
    /// Decompressed length.
    pub uncompressed: u64,
}

impl MetadataFrame {
    /// The TOC frame the footer names.
    pub fn toc(footer: &ZstdFooter) -> MetadataFrame {
        MetadataFrame {
            what: "TOC",
            offset: footer.manifest_offset,
            compressed: footer.toc_compressed,
            uncompressed: footer.toc_uncompressed,
        }
    }

    /// The blob range to fetch: skippable header and frame.
    pub fn range(&self) -> (u64, u64) {
        (
            self.offset.saturating_sub(SKIPPABLE_HEADER),
            self.compressed.saturating_add(SKIPPABLE_HEADER),
        )
    }

    /// Checks both declared lengths against their caps: call before fetching.
    pub fn check_limits(
        &self,
        max_compressed: u64,
        max_uncompressed: u64,
    ) -> Result<(), ZstdError> {
        let toc = self.what == "TOC";
        for (value, limit, what) in [
            (
                self.compressed,
                max_compressed,
                if toc {
                    "compressed TOC size"
                } else {
                    "compressed tar-split size"
                },
            ),
            (
                self.uncompressed,
                max_uncompressed,
                if toc {
                    "TOC JSON size"
                } else {
                    "tar-split size"
                },
            ),
        ] {
            if value > limit {
                return Err(ZstdError::Limit { what, value, limit });
            }
        }
        Ok(())
    }

    /// The tar-split frame of a 64-byte footer, or of a `tarsplit-position`
    /// annotation.
    pub fn tar_split(location: &super::footer::TarSplitLocation) -> MetadataFrame {
        MetadataFrame {
            what: "tar-split",
            offset: location.offset,
            compressed: location.compressed,
            uncompressed: location.uncompressed,
        }
    }

    /// Decodes `bytes`, the range of [`MetadataFrame::range`]: the skippable
    /// header must be `50 2a 4d 18` and the compressed length, the frame must
    /// be one frame decoding to exactly the uncompressed length (spec §7.4
    /// rules 2–3). Returns the decoded bytes and the manifest checksum, the
    /// sha256 of the compressed frame.
    ///
    /// The caller has checked the caps ([`MetadataFrame::check_limits`]):
    /// the uncompressed length is allocated.
    pub fn decode(
        &self,
        bytes: &[u8],
        decoder: &mut FrameDecoder,
    ) -> Result<(Vec<u8>, Digest), ZstdError> {
        let frame = self.frame_of(bytes)?;
        let data = decoder
            .decode_exact(frame, self.uncompressed)
            .map_err(|reason| ZstdError::Frame {
                what: self.what,
                offset: self.offset,
                reason,
            })?;
        Ok((data, Digest::of(frame)))
    }

    /// The zstd frame in `bytes`, the range of [`MetadataFrame::range`],
    /// once the skippable header around it is checked (magic and length).
    pub fn frame_of<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], ZstdError> {
        let (start, len) = self.range();
        let skippable_err = |reason: String| ZstdError::Skippable {
            what: self.what,
            offset: start,
            reason,
        };
        if bytes.len() as u64 != len {
            return Err(skippable_err(format!(
                "{} bytes given for a {len}-byte skippable frame",
                bytes.len()
            )));
        }
        if bytes[..4] != super::SKIPPABLE_MAGIC {
            return Err(skippable_err(format!(
                "magic {:02x?} is not 50 2a 4d 18",
                &bytes[..4]
            )));
        }
        match skippable_len(bytes) {
            Some(l) if l == self.compressed => {}
            l => {
                return Err(skippable_err(format!(
                    "length field {}, the footer says {}",
                    l.unwrap_or(0),
                    self.compressed
                )))
            }
        }
        Ok(&bytes[SKIPPABLE_HEADER as usize..])
    }
}

/// A decoded TOC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocFrame {
    /// The JSON.
    pub json: Vec<u8>,
    /// sha256 of the JSON: the TOC digest (stargz `toc.digest`).
    pub toc_digest: Digest,
    /// sha256 of the compressed frame: the manifest checksum.
    pub manifest_checksum: Digest,
}

/// Checks the caps, then decodes the TOC frame: `bytes` is the blob range
/// [`MetadataFrame::range`] of [`MetadataFrame::toc`].
pub fn decode_toc_frame(
    footer: &ZstdFooter,
    bytes: &[u8],
    limits: &Limits,
    decoder: &mut FrameDecoder,
) -> Result<TocFrame, ZstdError> {
    let frame = MetadataFrame::toc(footer);
    frame.check_limits(limits.max_toc_compressed, limits.max_toc_json)?;
    let (json, manifest_checksum) = frame.decode(bytes, decoder)?;
    Ok(TocFrame {
        toc_digest: Digest::of(&json),
        json,
        manifest_checksum,
    })
}

/// A TOC of either dialect, mapped onto [`Toc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedToc {
    /// Which dialect wrote it.
    pub dialect: Dialect,
    /// The TOC as the reader uses it.
    pub toc: Toc,
    /// Containers dialect: what [`Toc`] has no field for, by entry.
    pub containers: Option<ContainersExtras>,
}

/// Parses TOC JSON. The dialect is the containers one with a 56- or 64-byte
/// footer, or when the JSON uses a key only that dialect writes; otherwise
/// the stargz one (an empty containers TOC reads the same either way).
pub fn parse_toc(json: &[u8], footer: FooterVersion, offset: u64) -> Result<DecodedToc, ZstdError> {
    let bad = |e: serde_json::Error| ZstdError::Toc {
        offset,
        reason: format!("error decoding TOC JSON: {e}"),
    };
    if footer == FooterVersion::V40 && !mentions_containers_keys(json) {
        let toc: Toc = serde_json::from_slice(json).map_err(bad)?;
        return Ok(DecodedToc {
            dialect: Dialect::Stargz,
            toc,
            containers: None,
        });
    }
    let containers: ContainersToc = serde_json::from_slice(json).map_err(bad)?;
    let (toc, extras) = containers
        .to_estargz()
        .map_err(|reason| ZstdError::Toc { offset, reason })?;
    Ok(DecodedToc {
        dialect: Dialect::Containers,
        toc,
        containers: Some(extras),
    })
}

/// Whether the JSON has a key only the containers dialect writes: every
/// entry of its 40-byte-footer versions carries `accesstime`. A key is a
/// quoted name directly followed by `:`, which a string value, its quotes
/// escaped, cannot contain; so one pass over the bytes tells, without
/// decoding the TOC twice.
fn mentions_containers_keys(json: &[u8]) -> bool {
    (0..json.len())
        .filter(|&i| json[i] == b'"')
        .any(|i| CONTAINERS_KEYS.iter().any(|k| json[i..].starts_with(k)))
}

const CONTAINERS_KEYS: [&[u8]; 5] = [
    b"\"endOffset\":",
    b"\"chunkType\":",
    b"\"accesstime\":",
    b"\"changetime\":",
    b"\"tarSplitDigest\":",
];

/// A reader that passes JSON through and notes whether it holds a key
/// only the containers dialect writes ([`mentions_containers_keys`] over
/// everything read so far): a key split between two reads is found, as
/// the bytes a key could still start in are kept for the next.
pub(crate) struct KeyScan<'a, R> {
    inner: &'a mut R,
    /// The last bytes read, shorter than the longest key.
    tail: Vec<u8>,
    found: bool,
    enabled: bool,
}

impl<'a, R> KeyScan<'a, R> {
    /// Scans what passes through when `enabled`; otherwise only passes it.
    pub(crate) fn new(inner: &'a mut R, enabled: bool) -> Self {
        KeyScan {
            inner,
            tail: Vec::new(),
            found: false,
            enabled,
        }
    }

    /// Whether a containers-only key went by.
    pub(crate) fn found(&self) -> bool {
        self.found
    }

    fn scan(&mut self, data: &[u8]) {
        let keep = CONTAINERS_KEYS.iter().map(|k| k.len()).max().unwrap_or(1) - 1;
        // Keys starting in the tail are whole in it plus data's first bytes.
        let mut edge = std::mem::take(&mut self.tail);
        edge.extend_from_slice(&data[..data.len().min(keep)]);
        self.found = mentions_containers_keys(&edge) || mentions_containers_keys(data);
        self.tail = match data.len() >= keep {
            true => data[data.len() - keep..].to_vec(),
            false => edge[edge.len().saturating_sub(keep)..].to_vec(),
        };
    }
}

impl<R: std::io::Read> std::io::Read for KeyScan<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.enabled && !self.found {
            self.scan(&buf[..n]);
        }
        Ok(n)
    }
}

/// The containers/storage TOC (`minimal.TOC`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainersToc {
    /// Always 1; nobody checks it.
    #[serde(default)]
    pub version: i64,
    /// Entries in blob order (`null` when there are none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub entries: Vec<ContainersEntry>,
    /// sha256 of the compressed tar-split frame (v1.54 on).
    #[serde(default)]
    pub tar_split_digest: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ContainersEntry>, D::Error> {
    Ok(Option::<Vec<ContainersEntry>>::deserialize(d)?.unwrap_or_default())
}

/// One entry (`minimal.FileMetadata`), fields in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainersEntry {
    /// `reg`, `hardlink`, `char`, `block`, `dir`, `fifo`, `symlink`, `chunk`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Raw tar name (not cleaned).
    pub name: String,
    /// Link target.
    #[serde(default)]
    pub link_name: String,
    /// Raw tar mode.
    #[serde(default)]
    pub mode: i64,
    /// File size.
    #[serde(default)]
    pub size: i64,
    /// Owner id.
    #[serde(default)]
    pub uid: i64,
    /// Group id.
    #[serde(default)]
    pub gid: i64,
    /// RFC 3339 with nanoseconds; empty when absent.
    #[serde(default)]
    pub modtime: String,
    /// Access time, same form.
    #[serde(default)]
    pub accesstime: String,
    /// Change time, same form.
    #[serde(default)]
    pub changetime: String,
    /// Device major.
    #[serde(default)]
    pub dev_major: i64,
    /// Device minor.
    #[serde(default)]
    pub dev_minor: i64,
    /// Extended attributes, values base64 as stored.
    #[serde(default)]
    pub xattrs: BTreeMap<String, String>,
    /// sha256 of the whole file; absent for empty files.
    #[serde(default)]
    pub digest: String,
    /// Offset of the frame holding the (first) chunk.
    #[serde(default)]
    pub offset: i64,
    /// `reg`: end of the frame holding the last chunk.
    #[serde(default)]
    pub end_offset: i64,
    /// Chunk length (files of two or more chunks only).
    #[serde(default)]
    pub chunk_size: i64,
    /// Offset of the chunk in its file.
    #[serde(default)]
    pub chunk_offset: i64,
    /// sha256 of the chunk (files of two or more chunks only).
    #[serde(default)]
    pub chunk_digest: String,
    /// `""` for data, `zeros` for a run of zero bytes (still stored in a frame).
    #[serde(default)]
    pub chunk_type: String,
}

/// The kind of a containers chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkType {
    /// Ordinary data.
    #[default]
    Data,
    /// All zero bytes: readers must still check that they are.
    Zeros,
}

/// What a containers TOC says that [`Toc`] has no field for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainersExtras {
    /// Per entry, in TOC order.
    pub entries: Vec<EntryExtra>,
    /// The TOC's `tarSplitDigest`, when present.
    pub tar_split_digest: Option<String>,
}

/// Per-entry fields of a containers TOC beyond [`TocEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryExtra {
    /// `endOffset`: where the frame of the file's last chunk ends.
    pub end_offset: Option<u64>,
    /// `chunkType`.
    pub chunk_type: ChunkType,
    /// `modtime` as stored (the mapped one drops Go's zero time).
    pub modtime: String,
    /// `accesstime` as stored.
    pub accesstime: String,
    /// `changetime` as stored.
    pub changetime: String,
    /// The mapped entry's `digest` was filled in (empty file: sha256 of nothing).
    pub digest_synthesized: bool,
    /// The mapped entry's `chunkDigest` was copied from `digest` (a file of one chunk).
    pub chunk_digest_from_digest: bool,
}

impl ContainersToc {
    /// Maps onto the eStargz model the reader uses.
    ///
    /// * `chunkDigest`, which this dialect writes only on files of two or
    ///   more chunks, is the file's `digest` on a one-chunk file: its one
    ///   chunk is the file (spec §7.4 rule 4, "verify by `digest`").
    /// * An empty regular file gets sha256 of nothing as `digest`, which the
    ///   stargz dialect writes and this one omits.
    /// * Go's zero time as `modtime` means none.
    ///
    /// Everything else keeps its name and value; what has no field in
    /// [`TocEntry`] is returned beside it, entry by entry.
    pub fn to_estargz(&self) -> Result<(Toc, ContainersExtras), String> {
        let mut entries = Vec::with_capacity(self.entries.len());
        let mut extras = Vec::with_capacity(self.entries.len());
        for (i, c) in self.entries.iter().enumerate() {
            let (entry, extra) =
                map_entry(c).map_err(|r| format!("entry {i} ({:?}): {r}", c.name))?;
            entries.push(entry);
            extras.push(extra);
        }
        let toc = Toc {
            version: self.version,
            entries,
        };
        let extras = ContainersExtras {
            entries: extras,
            tar_split_digest: (!self.tar_split_digest.is_empty())
                .then(|| self.tar_split_digest.clone()),
        };
        Ok((toc, extras))
    }

    /// The compact JSON containers/storage writes (jsoniter in standard
    /// library mode: Go's field order, omit rules, sorted maps and HTML
    /// escaping; `"entries":null` when empty).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 200);
        out.extend_from_slice(b"{\"version\":");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.extend_from_slice(b",\"entries\":");
        if self.entries.is_empty() {
            out.extend_from_slice(b"null");
        } else {
            for (i, e) in self.entries.iter().enumerate() {
                out.push(if i == 0 { b'[' } else { b',' });
                e.write_json(&mut out);
            }
            out.push(b']');
        }
        if !self.tar_split_digest.is_empty() {
            out.extend_from_slice(b",\"tarSplitDigest\":");
            write_go_string(&mut out, &self.tar_split_digest);
        }
        out.push(b'}');
        out
    }
}

pub(crate) fn map_entry(c: &ContainersEntry) -> Result<(TocEntry, EntryExtra), String> {
    let e = mapped_entry(c)?;
    let extra = EntryExtra {
        end_offset: u64::try_from(c.end_offset).ok().filter(|&o| o > 0),
        chunk_type: chunk_type_of(c)?,
        modtime: c.modtime.clone(),
        accesstime: c.accesstime.clone(),
        changetime: c.changetime.clone(),
        // The mapping changes these two only when it fills them in.
        digest_synthesized: e.digest != c.digest,
        chunk_digest_from_digest: e.chunk_digest != c.chunk_digest,
    };
    Ok((e, extra))
}

/// [`map_entry`]'s entry alone, for readers that keep nothing else (the
/// index, as the TOC streams).
pub(crate) fn mapped_entry(c: &ContainersEntry) -> Result<TocEntry, String> {
    let kind = EntryType::parse(&c.kind);
    let mut e = TocEntry::new(c.name.clone(), kind.clone());
    e.size = c.size;
    e.link_name.clone_from(&c.link_name);
    e.mode = c.mode;
    e.uid = c.uid;
    e.gid = c.gid;
    if c.modtime != GO_ZERO_TIME {
        e.modtime.clone_from(&c.modtime);
    }
    e.dev_major = c.dev_major;
    e.dev_minor = c.dev_minor;
    for (k, v) in &c.xattrs {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .map_err(|err| format!("xattr {k:?}: bad base64: {err}"))?;
        e.xattrs.insert(k.clone(), bytes);
    }
    e.digest.clone_from(&c.digest);
    e.offset = c.offset;
    e.chunk_offset = c.chunk_offset;
    e.chunk_size = c.chunk_size;
    e.chunk_digest.clone_from(&c.chunk_digest);
    chunk_type_of(c)?;
    if kind == EntryType::Reg {
        if c.size == 0 && e.digest.is_empty() {
            e.digest = Digest::of(b"").to_string();
        }
        if c.size > 0 && c.chunk_size == 0 && e.chunk_digest.is_empty() && !e.digest.is_empty() {
            e.chunk_digest.clone_from(&e.digest);
        }
    }
    Ok(e)
}

fn chunk_type_of(c: &ContainersEntry) -> Result<ChunkType, String> {
    match c.chunk_type.as_str() {
        "" => Ok(ChunkType::Data),
        "zeros" => Ok(ChunkType::Zeros),
        other => Err(format!("unknown chunkType {other:?}")),
    }
}

impl ContainersEntry {
    /// Writes `{...}` with containers/storage's key order and omit rules.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut w = Compact { out, first: true };
        w.string("type", &self.kind, true);
        w.string("name", &self.name, true);
        w.string("linkName", &self.link_name, false);
        w.int("mode", self.mode);
        w.int("size", self.size);
        w.int("uid", self.uid);
        w.int("gid", self.gid);
        w.string("modtime", &self.modtime, false);
        w.string("accesstime", &self.accesstime, false);
        w.string("changetime", &self.changetime, false);
        w.int("devMajor", self.dev_major);
        w.int("devMinor", self.dev_minor);
        if !self.xattrs.is_empty() {
            w.key("xattrs");
            for (i, (k, v)) in self.xattrs.iter().enumerate() {
                w.out.push(if i == 0 { b'{' } else { b',' });
                write_go_string(w.out, k);
                w.out.push(b':');
                write_go_string(w.out, v);
            }
            w.out.push(b'}');
        }
        w.string("digest", &self.digest, false);
        w.int("offset", self.offset);
        w.int("endOffset", self.end_offset);
        w.int("chunkSize", self.chunk_size);
        w.int("chunkOffset", self.chunk_offset);
        w.string("chunkDigest", &self.chunk_digest, false);
        w.string("chunkType", &self.chunk_type, false);
        out.push(b'}');
    }
}

struct Compact<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Compact<'_> {
    fn key(&mut self, key: &str) {
        self.out.push(if self.first { b'{' } else { b',' });
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
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

/// A tar time as Go's `time.Time.MarshalJSON` writes it in UTC
/// (RFC 3339 with nanoseconds, trailing zeros dropped, `Z`): the exact,
/// zone-independent form this project writes (spec §7.2, §8 #12).
///
/// 1577934245 s and 600,000,000 ns give `2020-01-02T03:04:05.6Z`. Go
/// refuses years outside 0–9999, and so does this.
pub fn format_rfc3339_nano(secs: i64, nanos: u32) -> Result<String, String> {
    // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    const RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;
    if !RANGE.contains(&secs) || nanos >= 1_000_000_000 {
        return Err(format!(
            "time {secs}.{nanos:09} s is outside the years 0-9999 a TOC can hold"
        ));
    }
    let mut s = if secs == 0 {
        "1970-01-01T00:00:00Z".to_string()
    } else {
        crate::toc::format_modtime(secs, 0)
    };
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.insert_str(19, &format!(".{}", frac.trim_end_matches('0')));
    }
    Ok(s)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Whether [`KeyScan`] finds a containers key in `json` read `step`
    /// bytes at a time.
    fn scanned(json: &[u8], step: usize) -> bool {
        struct Steps<'a>(&'a [u8], usize);
        impl std::io::Read for Steps<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut steps = Steps(json, step);
        let mut scan = KeyScan::new(&mut steps, true);
        std::io::copy(&mut scan, &mut std::io::sink()).unwrap();
        scan.found()
    }

    #[test]
    fn a_key_scan_finds_a_containers_key_wherever_the_reads_split_it() {
        let stargz = br#"{"version":1,"entries":[{"name":"a","type":"reg","modtime":"x","note":"\"endOffset\": in a value"}]}"#;
        let last =
            br#"{"version":1,"entries":[{"name":"a","type":"reg"}],"tarSplitDigest":"sha256:00"}"#;
        let first = br#"{"entries":[{"accesstime":"x","name":"a"}]}"#;
        for step in [1, 2, 3, 7, 16, 17, 1000] {
            assert!(!scanned(stargz, step), "step {step}");
            assert!(scanned(last, step), "step {step}");
            assert!(scanned(first, step), "step {step}");
        }
        let mut bytes = &first[..];
        let mut off = KeyScan::new(&mut bytes, false);
        std::io::copy(&mut off, &mut std::io::sink()).unwrap();
        assert!(!off.found());
    }

    pub fn small_c64_toc() -> ContainersToc {
        let mut dir = ContainersEntry {
            kind: "dir".into(),
            name: "foo/".into(),
            mode: 493,
            uid: 1000,
            gid: 1000,
            modtime: "2020-01-02T03:04:05Z".into(),
            ..Default::default()
        };
        let mut reg = dir.clone();
        reg.kind = "reg".into();
        reg.name = "foo/bar.txt".into();
        reg.mode = 420;
        reg.size = 13;
        reg.digest =
            "sha256:729f6325279004939aefac7dd2e69bb35659b2d38724cc28fbfe1fb104f51bdf".into();
        reg.offset = 118;
        reg.end_offset = 144;
        dir.xattrs.clear();
        ContainersToc {
            version: 1,
            entries: vec![dir, reg],
            tar_split_digest:
                "sha256:613028f244fbb842d54de7905a39eb9924a5b9acedf49b50686f1ad9ae953343".into(),
        }
    }

    /// §4.4/§4.8: the C64 TOC of small.tar is 435 bytes; its reg entry is the
    /// one the spec prints.
    #[test]
    fn writes_the_containers_toc_like_containers_storage() {
        let toc = small_c64_toc();
        let json = toc.to_json();
        assert_eq!(json.len(), 435);
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.starts_with(
            "{\"version\":1,\"entries\":[{\"type\":\"dir\",\"name\":\"foo/\",\"mode\":493,"
        ));
        assert!(text.contains(
            "{\"type\":\"reg\",\"name\":\"foo/bar.txt\",\"mode\":420,\"size\":13,\"uid\":1000,\
             \"gid\":1000,\"modtime\":\"2020-01-02T03:04:05Z\",\"digest\":\"sha256:729f6325279004939aefac7dd2e69bb35659b2d38724cc28fbfe1fb104f51bdf\",\
             \"offset\":118,\"endOffset\":144}"
        ));
        let back: ContainersToc = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, toc);
        assert_eq!(
            ContainersToc::default().to_json(),
            b"{\"version\":0,\"entries\":null}"
        );
    }

    #[test]
    fn maps_the_containers_toc_onto_the_estargz_one() {
        let mut c = small_c64_toc();
        let mut empty = c.entries[1].clone();
        empty.name = "foo/empty".into();
        (empty.size, empty.digest, empty.offset, empty.end_offset) = (0, String::new(), 0, 0);
        empty.accesstime = GO_ZERO_TIME.into();
        empty.modtime = GO_ZERO_TIME.into();
        c.entries.push(empty);
        let json = c.to_json();
        let d = parse_toc(&json, FooterVersion::V40, 0).unwrap();
        assert_eq!(d.dialect, Dialect::Containers);
        let extras = d.containers.unwrap();
        assert_eq!(
            extras.tar_split_digest.as_deref(),
            Some(c.tar_split_digest.as_str())
        );
        let reg = &d.toc.entries[1];
        assert_eq!(
            (reg.kind.clone(), reg.offset, reg.size),
            (EntryType::Reg, 118, 13)
        );
        assert_eq!(reg.chunk_digest, reg.digest);
        assert!(extras.entries[1].chunk_digest_from_digest);
        assert_eq!(extras.entries[1].end_offset, Some(144));
        let empty = &d.toc.entries[2];
        assert_eq!(empty.digest, Digest::of(b"").to_string());
        assert_eq!(
            (empty.modtime.as_str(), empty.chunk_digest.as_str()),
            ("", "")
        );
        assert!(extras.entries[2].digest_synthesized);
        assert_eq!(extras.entries[2].accesstime, GO_ZERO_TIME);
        // The same keys without any containers-only one read as stargz.
        let plain = br#"{"version":1,"entries":[{"type":"reg","name":"a","size":1,"offset":5}]}"#;
        let d = parse_toc(plain, FooterVersion::V40, 0).unwrap();
        assert_eq!((d.dialect, d.toc.entries.len()), (Dialect::Stargz, 1));
        assert_eq!(
            parse_toc(plain, FooterVersion::V64, 0).unwrap().dialect,
            Dialect::Containers
        );
    }

    #[test]
    fn rejects_bad_toc_json() {
        for bad in [
            &b"{\"version\":1,\"entries\":[]} x"[..],
            b"{\"version\":1,\"entries\":[{\"type\":\"reg\",\"name\":\"a\",\"chunkType\":\"holes\"}]}",
            b"{\"version\":1,\"entries\":[{\"type\":\"reg\",\"name\":\"a\",\"endOffset\":1,\"xattrs\":{\"k\":\"!!\"}}]}",
            b"not json",
        ] {
            assert!(matches!(
                parse_toc(bad, FooterVersion::V40, 7),
                Err(ZstdError::Toc { offset: 7, .. })
            ));
        }
        // Only whitespace may follow the JSON.
        assert!(parse_toc(
            b"{\"version\":1,\"entries\":null}\n\t ",
            FooterVersion::V40,
            0
        )
        .is_ok());
    }

    #[test]
    fn formats_times_like_go() {
        let f = |s, n| format_rfc3339_nano(s, n).unwrap();
        assert_eq!(f(1577934245, 600_000_000), "2020-01-02T03:04:05.6Z");
        assert_eq!(f(1577934246, 250_000_000), "2020-01-02T03:04:06.25Z");
        assert_eq!(f(1577934247, 0), "2020-01-02T03:04:07Z");
        assert_eq!(f(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(f(0, 1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(f(-1, 500_000_000), "1969-12-31T23:59:59.5Z");
        assert_eq!(
            f(253_402_300_799, 999_999_999),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(f(-62_167_219_200, 0), "0000-01-01T00:00:00Z");
        assert!(format_rfc3339_nano(253_402_300_800, 0).is_err());
        assert!(format_rfc3339_nano(i64::MIN, 0).is_err());
        assert!(format_rfc3339_nano(5, 1_000_000_000).is_err());
    }
}
