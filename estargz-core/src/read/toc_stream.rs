//! Opening a blob without its parsed TOC: the JSON streams out of its
//! decompressor through a SHA-256 into serde, and each entry goes to the
//! index builder as soon as it is parsed, then is dropped. Neither the JSON
//! text nor the list of parsed entries is ever held: a TOC of 200,000
//! entries is about 70 MB of JSON and 200 MB parsed, its index about 55 MB.
//!
//! The TOC digest is known only once the last byte is read, so whatever is
//! built before is discarded unless it matches; nothing is returned before
//! the check. Every failure is kept until the stream is read to its end and
//! reported in the order the checks ran when the TOC was parsed whole: the
//! decompressor, the sizes, the digest, the JSON, the mapping of
//! containers entries, the index.

use super::index::IndexBuilder;
use super::IndexLimits;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::toc::TocEntry;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, BufReader, Read};

/// Bytes serde reads at a time: large enough that the reads cost nothing
/// next to the parse, small next to any TOC worth streaming.
const READ_BUFFER: usize = 64 << 10;

/// A decompressed TOC stream, read up to `cap` bytes. Its first failure is
/// kept, so that a broken stream is reported as such rather than as the
/// JSON error it causes.
pub(super) struct Capped<R> {
    inner: R,
    total: u64,
    cap: u64,
    failure: Option<io::Error>,
}

impl<R: Read> Capped<R> {
    pub(super) fn new(inner: R, cap: u64) -> Self {
        Capped {
            inner,
            total: 0,
            cap,
            failure: None,
        }
    }

    /// Bytes read so far.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// Whether the cap was reached (more bytes may follow).
    pub(super) fn at_cap(&self) -> bool {
        self.total >= self.cap
    }

    /// The first failure of the stream, if any.
    pub(super) fn take_failure(&mut self) -> Option<io::Error> {
        self.failure.take()
    }

    pub(super) fn into_inner(self) -> R {
        self.inner
    }

    /// Reads into `buf` until it is full, the stream ends or fails; returns
    /// how many bytes were read.
    pub(super) fn fill(&mut self, buf: &mut [u8]) -> usize {
        let mut got = 0;
        while got < buf.len() {
            match self.read(&mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    }

    /// Reads the rest of the stream (up to the cap), discarding it.
    pub(super) fn drain(&mut self) {
        drain(self);
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failure.is_some() {
            return Err(io::Error::other("the TOC stream failed"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.cap - self.total).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => {
                    self.total += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.failure = Some(e);
                    return Err(io::Error::other("the TOC stream failed"));
                }
            }
        }
    }
}

/// Reads `r` to its end or first failure, discarding the bytes.
fn drain(r: &mut impl Read) {
    let mut scratch = vec![0u8; READ_BUFFER];
    while let Ok(n) = r.read(&mut scratch) {
        if n == 0 {
            break;
        }
    }
}

/// The next `left` bytes of a stream, the JSON, hashed as they are read.
pub(super) struct HashedJson<'a, R> {
    src: &'a mut R,
    left: u64,
    hasher: Sha256,
}

impl<'a, R: Read> HashedJson<'a, R> {
    pub(super) fn new(src: &'a mut R, len: u64) -> Self {
        HashedJson {
            src,
            left: len,
            hasher: Sha256::new(),
        }
    }

    /// Reads the rest of the JSON, then gives its digest and how many of
    /// its bytes the stream did not hold (0 unless it ended early).
    pub(super) fn finish(mut self) -> (Digest, u64) {
        drain(&mut self);
        (Digest::from_hasher(self.hasher), self.left)
    }
}

impl<R: Read> Read for HashedJson<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.src.read(&mut buf[..want])?;
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// What a TOC's top-level object holds besides its entries that the
/// reader keeps (`version` is checked to be an integer, then dropped).
#[derive(Debug, Default)]
pub(crate) struct TocHead {
    /// `tarSplitDigest` (containers dialect only).
    pub tar_split_digest: String,
}

/// Parses the TOC JSON `json`, handing each entry of type `E` to `sink` in
/// order. Each entry is parsed into `slot`, the previous one: its strings
/// are reused, not allocated and freed again for every entry. It reads as `serde_json::from_slice` of [`crate::toc::Toc`] (or,
/// `containers`, of the containers TOC) does, with the same errors: the
/// same keys, unknown ones ignored, duplicates refused, `entries` null or
/// an array, only whitespace after the object.
pub(crate) fn parse_entries<R: Read, E: DeserializeOwned>(
    json: R,
    containers: bool,
    slot: E,
    mut sink: impl FnMut(&E),
) -> serde_json::Result<TocHead> {
    let reader = BufReader::with_capacity(READ_BUFFER, json);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut slot = slot;
    let visitor = TocVisitor {
        sink: &mut sink,
        slot: &mut slot,
        containers,
    };
    let fields: &[&str] = if containers {
        &["version", "entries", "tarSplitDigest"]
    } else {
        &["version", "entries"]
    };
    let name = if containers { "ContainersToc" } else { "Toc" };
    let head = de::Deserializer::deserialize_struct(&mut de, name, fields, visitor)?;
    de.end()?;
    Ok(head)
}

/// The top-level object.
struct TocVisitor<'s, E, F> {
    sink: &'s mut F,
    slot: &'s mut E,
    containers: bool,
}

impl<'de, E: DeserializeOwned, F: FnMut(&E)> Visitor<'de> for TocVisitor<'_, E, F> {
    type Value = TocHead;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(if self.containers {
            "struct ContainersToc"
        } else {
            "struct Toc"
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TocHead, A::Error> {
        let mut head = TocHead::default();
        let (mut version, mut entries, mut tar_split) = (false, false, false);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Version if version => return Err(de::Error::duplicate_field("version")),
                Key::Version => {
                    version = true;
                    map.next_value::<i64>()?;
                }
                Key::Entries if entries => return Err(de::Error::duplicate_field("entries")),
                Key::Entries => {
                    entries = true;
                    map.next_value_seed(Entries {
                        sink: &mut *self.sink,
                        slot: &mut *self.slot,
                    })?;
                }
                Key::TarSplitDigest if self.containers => {
                    if tar_split {
                        return Err(de::Error::duplicate_field("tarSplitDigest"));
                    }
                    tar_split = true;
                    head.tar_split_digest = map.next_value()?;
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }

    /// The form serde's derive accepts too: the fields in order, in an array.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TocHead, A::Error> {
        let mut head = TocHead::default();
        if seq.next_element::<i64>()?.is_none() {
            return Ok(head);
        }
        let entries = Entries {
            sink: &mut *self.sink,
            slot: &mut *self.slot,
        };
        if seq.next_element_seed(entries)?.is_none() || !self.containers {
            return Ok(head);
        }
        head.tar_split_digest = seq.next_element()?.unwrap_or_default();
        Ok(head)
    }
}

/// A key of the top-level object.
enum Key {
    Version,
    Entries,
    TarSplitDigest,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_str<Er: de::Error>(self, v: &str) -> Result<Key, Er> {
                Ok(match v {
                    "version" => Key::Version,
                    "entries" => Key::Entries,
                    "tarSplitDigest" => Key::TarSplitDigest,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// `entries`: `null`, or an array whose elements go to the sink.
struct Entries<'s, E, F> {
    sink: &'s mut F,
    slot: &'s mut E,
}

impl<'de, E: DeserializeOwned, F: FnMut(&E)> DeserializeSeed<'de> for Entries<'_, E, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, E: DeserializeOwned, F: FnMut(&E)> Visitor<'de> for Entries<'_, E, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("option")
    }

    fn visit_none<Er: de::Error>(self) -> Result<(), Er> {
        Ok(())
    }

    fn visit_unit<Er: de::Error>(self) -> Result<(), Er> {
        Ok(())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(EntryList(self))
    }
}

/// The array of `entries`.
struct EntryList<'s, E, F>(Entries<'s, E, F>);

impl<'de, E: DeserializeOwned, F: FnMut(&E)> Visitor<'de> for EntryList<'_, E, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Entries { sink, slot } = self.0;
        while seq.next_element_seed(InPlace(&mut *slot))?.is_some() {
            sink(slot);
        }
        Ok(())
    }
}

/// Deserializes into an existing value. Fields an entry lacks are reset to
/// their defaults (serde's derive does so), so nothing of the previous
/// entry remains but the room its strings had.
struct InPlace<'a, E>(&'a mut E);

impl<'de, E: de::Deserialize<'de>> DeserializeSeed<'de> for InPlace<'_, E> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        E::deserialize_in_place(d, self.0)
    }
}

/// Entries as they stream in, built into the index. A failure stops the
/// building (its memory is freed) but not the counting: a TOC over the
/// entry cap is reported as that, with its count, as when it was parsed
/// whole.
pub(crate) struct IndexSink {
    state: Result<IndexBuilder>,
    cap: usize,
    seen: u64,
}

impl IndexSink {
    pub(crate) fn new(payload_end: u64, limits: &IndexLimits, expected: usize) -> IndexSink {
        let builder = IndexBuilder::new(payload_end, limits, expected);
        IndexSink {
            cap: builder.cap(),
            state: Ok(builder),
            seen: 0,
        }
    }

    pub(crate) fn add(&mut self, e: &TocEntry) {
        self.seen += 1;
        if let Ok(builder) = &mut self.state {
            if let Err(err) = builder.add(e) {
                self.state = Err(err);
            }
        }
    }

    pub(crate) fn finish(self) -> Result<super::Index> {
        if self.seen > self.cap as u64 {
            return Err(Error::LimitExceeded {
                what: "TOC entry count",
                value: self.seen,
                limit: self.cap as u64,
            });
        }
        self.state?.finish()
    }
}

/// A first guess at a TOC's entry count from its JSON length, for the
/// builder's first allocations: below any real TOC's (the JSON of an entry
/// is rarely under 150 bytes), so that the guess never costs more memory
/// than it saves.
pub(crate) fn expected_entries(json_len: u64) -> usize {
    usize::try_from(json_len / 400).unwrap_or(usize::MAX)
}
