//! The index's nodes and chunks, laid out to be small: an opened blob keeps
//! one per TOC entry, so every byte here is multiplied by the entry count
//! (issue #20 asks for at most 400 bytes an entry, everything included).
//!
//! Each node stores its TOC name once (the cleaned path is a slice of it
//! in all but odd cases), digests as 32 bytes, owner names shared between
//! nodes, and the fields most entries leave empty (link target, device
//! numbers, xattrs) behind one optional box.

use crate::digest::Digest;
use crate::name;
use crate::toc::EntryType;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Identifies a node in an [`Index`](super::Index).
pub type NodeId = usize;

/// A digest as the TOC stores it (`digest`, `chunkDigest`), kept as its
/// 32 bytes rather than its 71 characters.
///
/// ```
/// use estargz_core::{Digest, StoredDigest};
/// let d = Digest::of(b"x");
/// assert_eq!(StoredDigest::parse(&d.to_string()), StoredDigest::Sha256(d));
/// assert_eq!(StoredDigest::parse(""), StoredDigest::Absent);
/// assert!(!StoredDigest::parse("sha256:nothex").matches(&d));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StoredDigest {
    /// The TOC gives none (legacy blobs, empty files).
    #[default]
    Absent,
    /// `sha256:<64 lower-case hex>`.
    Sha256(Digest),
    /// Something else: no data matches it.
    Invalid,
}

impl StoredDigest {
    /// The TOC's spelling, classified.
    pub fn parse(s: &str) -> StoredDigest {
        match s {
            "" => StoredDigest::Absent,
            _ => s
                .parse()
                .map_or(StoredDigest::Invalid, StoredDigest::Sha256),
        }
    }

    /// The SHA-256, when the TOC gives a valid one.
    pub fn sha256(self) -> Option<Digest> {
        match self {
            StoredDigest::Sha256(d) => Some(d),
            _ => None,
        }
    }

    /// True when the TOC gives no digest.
    pub fn is_absent(self) -> bool {
        self == StoredDigest::Absent
    }

    /// Whether data whose SHA-256 is `actual` is what the TOC names.
    pub fn matches(self, actual: &Digest) -> bool {
        self == StoredDigest::Sha256(*actual)
    }
}

/// A piece of a regular file's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub(super) offset: u64,
    pub(super) inner_offset: u64,
    pub(super) chunk_offset: u64,
    pub(super) size: u64,
    pub(super) next_offset: u64,
    pub(super) toc_index: u32,
    pub(super) digest: StoredDigest,
}

impl Chunk {
    /// Position of the entry in the TOC.
    pub fn toc_index(&self) -> usize {
        self.toc_index as usize
    }

    /// Blob offset of the gzip member (or zstd frame) holding the chunk.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Uncompressed bytes to skip in that member before the chunk.
    pub fn inner_offset(&self) -> u64 {
        self.inner_offset
    }

    /// Offset of the chunk in its file.
    pub fn chunk_offset(&self) -> u64 {
        self.chunk_offset
    }

    /// Chunk length.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `chunkDigest` (absent in legacy blobs).
    pub fn digest(&self) -> StoredDigest {
        self.digest
    }

    /// Where the member run holding this chunk ends (next member start, or
    /// the end of the payload).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }
}

/// Entry types, one byte; [`EntryType::Other`] lives in [`Extra`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Reg,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    Chunk,
    Other,
}

static DIR: EntryType = EntryType::Dir;
static REG: EntryType = EntryType::Reg;
static SYMLINK: EntryType = EntryType::Symlink;
static HARDLINK: EntryType = EntryType::Hardlink;
static CHAR: EntryType = EntryType::Char;
static BLOCK: EntryType = EntryType::Block;
static FIFO: EntryType = EntryType::Fifo;
static CHUNK: EntryType = EntryType::Chunk;
static NO_XATTRS: BTreeMap<String, Vec<u8>> = BTreeMap::new();

impl Kind {
    fn of(kind: &EntryType) -> Kind {
        match kind {
            EntryType::Dir => Kind::Dir,
            EntryType::Reg => Kind::Reg,
            EntryType::Symlink => Kind::Symlink,
            EntryType::Hardlink => Kind::Hardlink,
            EntryType::Char => Kind::Char,
            EntryType::Block => Kind::Block,
            EntryType::Fifo => Kind::Fifo,
            EntryType::Chunk => Kind::Chunk,
            EntryType::Other(_) => Kind::Other,
        }
    }
}

/// Owner and group names: few distinct pairs in a layer, shared by the
/// nodes that carry them.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Owners {
    pub(super) user: Box<str>,
    pub(super) group: Box<str>,
}

/// What most entries leave empty.
#[derive(Debug, Clone, Default)]
pub(super) struct Extra {
    pub(super) link_name: Box<str>,
    pub(super) dev_major: i64,
    pub(super) dev_minor: i64,
    pub(super) xattrs: BTreeMap<String, Vec<u8>>,
    /// The type, when it is none of the known ones.
    pub(super) other_kind: Option<EntryType>,
    /// The cleaned name, when it is not a slice of the TOC's name.
    pub(super) clean_name: Option<Box<str>>,
}

/// How the cleaned name sits in `Node::text`: a synthesised node has no
/// TOC name and `text` is the cleaned one; otherwise `text` is the TOC's
/// name and the cleaned one is it minus `PREFIX_MASK` leading and
/// `SUFFIX` trailing bytes (`./a/` → `a`), or in [`Extra::clean_name`].
const SYNTHESISED: u8 = 0x80;
const CLEAN_IN_EXTRA: u8 = 0x40;
const SUFFIX: u8 = 0x04;
const PREFIX_MASK: u8 = 0x03;

/// `toc_index` and `modtime_nsec` of a node without one.
const NONE: u32 = u32::MAX;

/// One file-system object.
#[derive(Debug, Clone)]
pub struct Node {
    text: Box<str>,
    pub(super) size: u64,
    mode: i64,
    uid: i64,
    gid: i64,
    modtime: i64,
    modtime_nsec: u32,
    pub(super) num_link: u32,
    toc_index: u32,
    kind: Kind,
    name_form: u8,
    digest: StoredDigest,
    owners: Option<Arc<Owners>>,
    extra: Option<Box<Extra>>,
    pub(super) chunks: Box<[Chunk]>,
}

/// The fields of a node that come from its TOC entry.
pub(super) struct NodeFields {
    pub raw_name: String,
    pub clean_name: String,
    pub kind: EntryType,
    pub size: u64,
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
    pub owners: Option<Arc<Owners>>,
    pub modtime: Option<(i64, u32)>,
    pub extra: Extra,
    pub digest: StoredDigest,
    pub toc_index: u32,
}

/// `clean` as a slice of `raw`: the flags saying which, if it is one.
fn name_form(raw: &str, clean: &str) -> Option<u8> {
    for prefix in 0..=2u8 {
        for suffix in [0, SUFFIX] {
            let end = raw.len().checked_sub(usize::from(suffix != 0))?;
            if raw.get(usize::from(prefix)..end) == Some(clean) {
                return Some(prefix | suffix);
            }
        }
    }
    None
}

impl Node {
    pub(super) fn synthesized_dir(name: &str) -> Node {
        Node {
            text: name.into(),
            size: 0,
            mode: 0o755,
            uid: 0,
            gid: 0,
            modtime: 0,
            modtime_nsec: NONE,
            num_link: 1,
            toc_index: NONE,
            kind: Kind::Dir,
            name_form: SYNTHESISED,
            digest: StoredDigest::Absent,
            owners: None,
            extra: None,
            chunks: Box::default(),
        }
    }

    pub(super) fn from_fields(f: NodeFields) -> Node {
        let kind = Kind::of(&f.kind);
        let mut extra = f.extra;
        if kind == Kind::Other {
            extra.other_kind = Some(f.kind);
        }
        let name_form = name_form(&f.raw_name, &f.clean_name).unwrap_or_else(|| {
            extra.clean_name = Some(f.clean_name.into());
            CLEAN_IN_EXTRA
        });
        let empty = extra.link_name.is_empty()
            && extra.dev_major == 0
            && extra.dev_minor == 0
            && extra.xattrs.is_empty()
            && extra.other_kind.is_none()
            && extra.clean_name.is_none();
        let (modtime, modtime_nsec) = f.modtime.unwrap_or((0, NONE));
        Node {
            text: f.raw_name.into(),
            size: f.size,
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
            modtime,
            modtime_nsec,
            num_link: if kind == Kind::Dir { 1 } else { 0 },
            toc_index: f.toc_index,
            kind,
            name_form,
            digest: f.digest,
            owners: f.owners,
            extra: (!empty).then(|| Box::new(extra)),
            chunks: Box::default(),
        }
    }

    /// Cleaned path; `""` is the root.
    pub fn name(&self) -> &str {
        let form = self.name_form;
        if form & SYNTHESISED != 0 {
            return &self.text;
        }
        if form & CLEAN_IN_EXTRA != 0 {
            return self
                .extra
                .as_ref()
                .and_then(|e| e.clean_name.as_deref())
                .unwrap_or("");
        }
        let start = usize::from(form & PREFIX_MASK);
        let end = self.text.len() - usize::from(form & SUFFIX != 0);
        self.text.get(start..end).unwrap_or("")
    }

    /// Name as stored in the TOC (empty for synthesised directories).
    pub fn raw_name(&self) -> &str {
        if self.name_form & SYNTHESISED != 0 {
            ""
        } else {
            &self.text
        }
    }

    /// The base name: the last component of [`name`](Self::name).
    pub(super) fn base_name(&self) -> &str {
        let name = self.name();
        name.rsplit_once('/').map_or(name, |(_, b)| b)
    }

    /// Type (hardlinks are resolved: a link's name leads to its target's node).
    pub fn kind(&self) -> &EntryType {
        match self.kind {
            Kind::Dir => &DIR,
            Kind::Reg => &REG,
            Kind::Symlink => &SYMLINK,
            Kind::Hardlink => &HARDLINK,
            Kind::Char => &CHAR,
            Kind::Block => &BLOCK,
            Kind::Fifo => &FIFO,
            Kind::Chunk => &CHUNK,
            Kind::Other => self
                .extra
                .as_ref()
                .and_then(|e| e.other_kind.as_ref())
                .unwrap_or(&REG),
        }
    }

    pub(super) fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    pub(super) fn is_hardlink(&self) -> bool {
        self.kind == Kind::Hardlink
    }

    pub(super) fn is_reg(&self) -> bool {
        self.kind == Kind::Reg
    }

    /// Size of a regular file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Raw mode from the TOC.
    pub fn mode(&self) -> i64 {
        self.mode
    }

    /// Owner id.
    pub fn uid(&self) -> i64 {
        self.uid
    }

    /// Group id.
    pub fn gid(&self) -> i64 {
        self.gid
    }

    /// Owner name, inherited per uid as the TOC's de-duplication implies.
    pub fn user_name(&self) -> &str {
        self.owners.as_ref().map_or("", |o| &o.user)
    }

    /// Group name, inherited per gid.
    pub fn group_name(&self) -> &str {
        self.owners.as_ref().map_or("", |o| &o.group)
    }

    /// Modification time, seconds since the epoch; `None` when absent or unparseable.
    pub fn modtime(&self) -> Option<i64> {
        (self.modtime_nsec != NONE).then_some(self.modtime)
    }

    /// Nanoseconds past [`modtime`](Self::modtime), where the TOC has them.
    pub fn modtime_nsec(&self) -> u32 {
        if self.modtime_nsec == NONE {
            0
        } else {
            self.modtime_nsec
        }
    }

    /// Symlink target, verbatim (and a hardlink's, as stored).
    pub fn link_name(&self) -> &str {
        self.extra.as_ref().map_or("", |e| &e.link_name)
    }

    /// Device major.
    pub fn dev_major(&self) -> i64 {
        self.extra.as_ref().map_or(0, |e| e.dev_major)
    }

    /// Device minor.
    pub fn dev_minor(&self) -> i64 {
        self.extra.as_ref().map_or(0, |e| e.dev_minor)
    }

    /// Extended attributes.
    pub fn xattrs(&self) -> &BTreeMap<String, Vec<u8>> {
        self.extra.as_ref().map_or(&NO_XATTRS, |e| &e.xattrs)
    }

    /// Whole-file digest (`reg` entries).
    pub fn digest(&self) -> StoredDigest {
        self.digest
    }

    /// Link count: 2 + subdirectories for a directory, 1 + hardlinks otherwise.
    pub fn num_link(&self) -> u32 {
        self.num_link
    }

    /// Data chunks in file order (regular files).
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Position in the TOC; `None` for synthesised directories.
    pub fn toc_index(&self) -> Option<usize> {
        (self.toc_index != NONE).then_some(self.toc_index as usize)
    }

    /// Permission bits plus setuid, setgid and sticky.
    pub fn permissions(&self) -> u32 {
        (self.mode & 0o7777) as u32
    }

    /// The chunk holding byte `offset` of the file (F1 of the spec's cases).
    pub fn chunk_for_offset(&self, offset: u64) -> Option<&Chunk> {
        if offset >= self.size {
            return None;
        }
        let i = self.chunks.partition_point(|c| c.chunk_offset <= offset);
        let c = self.chunks.get(i.checked_sub(1)?)?;
        (offset < c.chunk_offset + c.size).then_some(c)
    }

    /// The hardlink target's cleaned name.
    pub(super) fn link_target(&self) -> String {
        name::clean(self.link_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_slices_of_the_toc_name_where_they_can_be() {
        for (raw, form) in [
            ("a/b", Some(0)),
            ("./a/b", Some(2)),
            ("/a/b/", Some(1 | SUFFIX)),
            ("./", Some(1 | SUFFIX)),
            ("a//b", None),
            ("../x", None),
        ] {
            assert_eq!(name_form(raw, &name::clean(raw)), form, "{raw}");
        }
    }

    #[test]
    fn nodes_stay_small() {
        // The budget: see the module comment and docs/benchmarks.md.
        assert!(std::mem::size_of::<Node>() <= 136);
        assert!(std::mem::size_of::<Chunk>() <= 80);
    }
}
