//! The validated index: TOC entries normalised into a file tree (spec §5.3).
//!
//! Names are cleaned, missing parent directories synthesised, duplicates
//! resolved last-wins, hardlinks resolved to their target (cycles are an
//! error), chunk lists attached to their file, and each chunk told where its
//! member run ends, so reads never stray into the TOC or the footer.

use crate::error::{Error, Result};
use crate::name;
use crate::toc::{EntryType, Toc, TocEntry};
use std::collections::{BTreeMap, HashMap};

/// Identifies a node in an [`Index`].
pub type NodeId = usize;

/// Name of the landmark file that ends the prefetch region.
pub const PREFETCH_LANDMARK: &str = ".prefetch.landmark";
/// Name of the landmark file that says there is no prefetch region.
pub const NO_PREFETCH_LANDMARK: &str = ".no.prefetch.landmark";

/// Longest chain of hardlinks to hardlinks that is resolved.
const MAX_HARDLINK_HOPS: usize = 256;

/// Caps on what a TOC may make the index allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexLimits {
    /// Most TOC entries (chunks included).
    pub max_entries: usize,
    /// Longest cleaned name, in bytes.
    pub max_name_len: usize,
    /// Deepest path, in components.
    pub max_depth: usize,
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits {
            max_entries: 10_000_000,
            max_name_len: 64 << 10,
            max_depth: 4096,
        }
    }
}

/// A piece of a regular file's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position of the entry in the TOC.
    pub toc_index: usize,
    /// Blob offset of the gzip member holding the chunk.
    pub offset: u64,
    /// Uncompressed bytes to skip in that member before the chunk.
    pub inner_offset: u64,
    /// Offset of the chunk in its file.
    pub chunk_offset: u64,
    /// Chunk length.
    pub size: u64,
    /// `chunkDigest` as stored (may be empty in legacy blobs).
    pub digest: String,
    /// Where the member run holding this chunk ends (next member start, or
    /// the end of the payload).
    pub next_offset: u64,
}

/// One file-system object.
#[derive(Debug, Clone)]
pub struct Node {
    /// Cleaned path; `""` is the root.
    pub name: String,
    /// Name as stored in the TOC (empty for synthesised directories).
    pub raw_name: String,
    /// Type (hardlinks are resolved: a link's name leads to its target's node).
    pub kind: EntryType,
    /// Size of a regular file.
    pub size: u64,
    /// Raw mode from the TOC.
    pub mode: i64,
    /// Owner id.
    pub uid: i64,
    /// Group id.
    pub gid: i64,
    /// Owner name, inherited per uid as the TOC's de-duplication implies.
    pub user_name: String,
    /// Group name, inherited per gid.
    pub group_name: String,
    /// Modification time, seconds since the epoch; `None` when absent or unparseable.
    pub modtime: Option<i64>,
    /// Nanoseconds past [`modtime`](Self::modtime), where the TOC has them.
    pub modtime_nsec: u32,
    /// Symlink target, verbatim.
    pub link_name: String,
    /// Device major.
    pub dev_major: i64,
    /// Device minor.
    pub dev_minor: i64,
    /// Extended attributes.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Whole-file digest as stored.
    pub digest: String,
    /// Link count: 2 + subdirectories for a directory, 1 + hardlinks otherwise.
    pub num_link: u32,
    /// Data chunks in file order (regular files).
    pub chunks: Vec<Chunk>,
    /// Children by base name (directories).
    pub children: BTreeMap<String, NodeId>,
    /// Position in the TOC; `None` for synthesised directories.
    pub toc_index: Option<usize>,
}

impl Node {
    fn synthesized_dir(name: &str) -> Node {
        Node {
            name: name.to_string(),
            raw_name: String::new(),
            kind: EntryType::Dir,
            size: 0,
            mode: 0o755,
            uid: 0,
            gid: 0,
            user_name: String::new(),
            group_name: String::new(),
            modtime: None,
            modtime_nsec: 0,
            link_name: String::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: BTreeMap::new(),
            digest: String::new(),
            num_link: 1,
            chunks: Vec::new(),
            children: BTreeMap::new(),
            toc_index: None,
        }
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
}

/// The file tree a TOC describes.
#[derive(Debug, Clone)]
pub struct Index {
    nodes: Vec<Node>,
    by_name: HashMap<String, NodeId>,
    /// Hardlink names → the name they resolve to.
    links: BTreeMap<String, String>,
    payload_end: u64,
}

/// `a/b` → `a`; a top-level name → `""`, the root.
pub(super) fn parent_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(p, _)| p)
}

fn invalid(index: usize, e: &TocEntry, reason: impl Into<String>) -> Error {
    Error::InvalidEntry {
        index,
        entry: e.name.clone(),
        reason: reason.into(),
    }
}

fn non_negative(index: usize, e: &TocEntry, field: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| invalid(index, e, format!("{field} {v} is negative")))
}

/// The cleaned name of entry `index`, within the limits.
fn checked_name(index: usize, e: &TocEntry, limits: &IndexLimits) -> Result<String> {
    let clean = name::clean(&e.name);
    if clean.len() > limits.max_name_len {
        let reason = format!("name longer than {} bytes", limits.max_name_len);
        return Err(invalid(index, e, reason));
    }
    if clean.split('/').count() > limits.max_depth {
        let reason = format!("path deeper than {} components", limits.max_depth);
        return Err(invalid(index, e, reason));
    }
    Ok(clean)
}

/// A TOC entry, its position in the TOC, and its sizes and offsets
/// checked not negative.
struct Checked<'a> {
    index: usize,
    entry: &'a TocEntry,
    size: u64,
    offset: u64,
    inner_offset: u64,
    chunk_offset: u64,
}

impl<'a> Checked<'a> {
    fn new(index: usize, e: &'a TocEntry) -> Result<Checked<'a>> {
        let checked = Checked {
            index,
            entry: e,
            size: non_negative(index, e, "size", e.size)?,
            offset: non_negative(index, e, "offset", e.offset)?,
            inner_offset: non_negative(index, e, "innerOffset", e.inner_offset)?,
            chunk_offset: non_negative(index, e, "chunkOffset", e.chunk_offset)?,
        };
        non_negative(index, e, "chunkSize", e.chunk_size)?; // read by chunk_len
        Ok(checked)
    }

    /// The entry's data as `size` bytes at `chunk_offset` in its file.
    fn chunk(&self, chunk_offset: u64, size: u64, next_offset: u64) -> Chunk {
        Chunk {
            toc_index: self.index,
            offset: self.offset,
            inner_offset: self.inner_offset,
            chunk_offset,
            size,
            digest: self.entry.chunk_digest.clone(),
            next_offset,
        }
    }
}

/// A hardlink, resolved once every name is known: its TOC index, its name
/// and its target's, both cleaned.
struct PendingLink {
    index: usize,
    link: String,
    target: String,
}

/// The owner names given so far, by id (see [`inherit`]).
#[derive(Default)]
struct OwnerNames {
    users: HashMap<i64, String>,
    groups: HashMap<i64, String>,
}

impl Index {
    /// Builds the index of `toc` for a blob whose payload ends at `payload_end`.
    pub fn build(toc: &Toc, payload_end: u64, limits: &IndexLimits) -> Result<Index> {
        if toc.entries.len() > limits.max_entries {
            return Err(Error::LimitExceeded {
                what: "TOC entry count",
                value: toc.entries.len() as u64,
                limit: limits.max_entries as u64,
            });
        }
        let mut idx = Index::with_root(toc.entries.len(), payload_end);
        let hardlinks = idx.add_entries(toc, limits)?;
        idx.attach_to_parents()?;
        idx.link_hardlinks(toc, hardlinks)?;
        idx.fill_next_offsets(toc);
        Ok(idx)
    }

    /// An index holding only the synthesised root, with room for `entries` more nodes.
    fn with_root(entries: usize, payload_end: u64) -> Index {
        // Sized up front (the count is capped): each growth of the node
        // vector would move every node built so far.
        let mut nodes = Vec::with_capacity(entries + 1);
        nodes.push(Node::synthesized_dir(""));
        let mut by_name = HashMap::with_capacity(entries + 1);
        by_name.insert(String::new(), 0);
        Index {
            nodes,
            by_name,
            links: BTreeMap::new(),
            payload_end,
        }
    }

    /// Pass 1, TOC order: a node per entry, owner names inherited, chunks
    /// attached to their file. Returns the hardlinks, to resolve once every
    /// name is known.
    fn add_entries(&mut self, toc: &Toc, limits: &IndexLimits) -> Result<Vec<PendingLink>> {
        let mut owners = OwnerNames::default();
        // The regular file whose chunks any chunk entries now are.
        let mut open_file: Option<NodeId> = None;
        let mut hardlinks = Vec::new();
        for (i, e) in toc.entries.iter().enumerate() {
            let entry = Checked::new(i, e)?;
            if e.kind == EntryType::Chunk {
                let file = open_file
                    .ok_or_else(|| invalid(i, e, "chunk entry does not follow a regular file"))?;
                self.add_chunk(file, &entry);
                continue;
            }
            let name = checked_name(i, e, limits)?;
            if e.kind == EntryType::Hardlink {
                hardlinks.push(PendingLink {
                    index: i,
                    link: name.clone(),
                    target: name::clean(&e.link_name),
                });
            }
            let node = self.node_of(&entry, name.clone(), &mut owners);
            let id = self.insert(name, node);
            open_file = (e.kind == EntryType::Reg).then_some(id);
        }
        Ok(hardlinks)
    }

    /// A chunk entry's data, after the chunks of its file so far.
    fn add_chunk(&mut self, file: NodeId, entry: &Checked) {
        let node = &mut self.nodes[file];
        // A last chunk starting past its file's end covers nothing.
        let size = entry.entry.chunk_len(node.size).unwrap_or(0);
        let chunk = entry.chunk(entry.chunk_offset, size, self.payload_end);
        node.chunks.push(chunk);
    }

    /// The node of a non-chunk entry, named `name` (cleaned); a regular
    /// file's entry holds its first chunk.
    fn node_of(&self, entry: &Checked, name: String, owners: &mut OwnerNames) -> Node {
        let e = entry.entry;
        let size = if e.kind == EntryType::Reg {
            entry.size
        } else {
            0
        };
        let mtime = parse_rfc3339_nanos(&e.modtime);
        let mut node = Node {
            name,
            raw_name: e.name.clone(),
            kind: e.kind.clone(),
            size,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            user_name: inherit(&mut owners.users, e.uid, &e.user_name),
            group_name: inherit(&mut owners.groups, e.gid, &e.group_name),
            modtime: mtime.map(|(secs, _)| secs),
            modtime_nsec: mtime.map_or(0, |(_, nanos)| nanos),
            link_name: e.link_name.clone(),
            dev_major: e.dev_major,
            dev_minor: e.dev_minor,
            xattrs: e.xattrs.clone(),
            digest: e.digest.clone(),
            num_link: if e.kind == EntryType::Dir { 1 } else { 0 },
            chunks: Vec::new(),
            children: BTreeMap::new(),
            toc_index: Some(entry.index),
        };
        if size > 0 {
            let first = e.chunk_len(size).unwrap_or(size);
            node.chunks.push(entry.chunk(0, first, self.payload_end));
        }
        node
    }

    /// Gives `name` to `node`: a later entry of a name replaces an earlier
    /// one, the root entry the synthesised root.
    fn insert(&mut self, name: String, mut node: Node) -> NodeId {
        let id = if name.is_empty() {
            node.children = std::mem::take(&mut self.nodes[0].children);
            self.nodes[0] = node;
            0
        } else {
            self.nodes.push(node);
            self.nodes.len() - 1
        };
        self.by_name.insert(name, id);
        id
    }

    /// Pass 2: each named node but the hardlinks under its parent, missing
    /// ancestors synthesised, link counts.
    fn attach_to_parents(&mut self) -> Result<()> {
        // In TOC order, not the hash map's: which error is reported, and
        // the ids of synthesised directories, must not vary between runs.
        let mut live: Vec<NodeId> = self
            .by_name
            .values()
            .copied()
            .filter(|&id| id != 0)
            .collect();
        live.sort_unstable();
        for id in live {
            if self.nodes[id].kind == EntryType::Hardlink {
                continue; // placed once resolved
            }
            let name = self.nodes[id].name.clone();
            let parent = self.ensure_parent(&name)?;
            self.attach(parent, &name, id);
        }
        Ok(())
    }

    /// Hardlinks: the link's name leads to the target's node.
    fn link_hardlinks(&mut self, toc: &Toc, hardlinks: Vec<PendingLink>) -> Result<()> {
        for PendingLink {
            index,
            link,
            target,
        } in hardlinks
        {
            if self
                .by_name
                .get(&link)
                .is_none_or(|&id| self.nodes[id].toc_index != Some(index))
            {
                continue; // replaced by a later duplicate
            }
            let resolved = self.resolve_hardlink(&link, &target, &toc.entries[index], index)?;
            let parent = self.ensure_parent(&link)?;
            self.nodes[resolved].num_link += 1;
            self.by_name.insert(link.clone(), resolved);
            self.links
                .insert(link.clone(), self.nodes[resolved].name.clone());
            self.attach_child(parent, &link, resolved);
        }
        Ok(())
    }

    fn resolve_hardlink(&self, link: &str, target: &str, e: &TocEntry, i: usize) -> Result<NodeId> {
        let mut seen = vec![link.to_string()];
        let mut current = target.to_string();
        loop {
            if seen.contains(&current) {
                return Err(invalid(
                    i,
                    e,
                    format!("hardlink cycle: {} -> {current}", seen.join(" -> ")),
                ));
            }
            let id = *self.by_name.get(&current).ok_or_else(|| {
                invalid(
                    i,
                    e,
                    format!(
                        "is a hardlink but the linkname {:?} isn't found",
                        e.link_name
                    ),
                )
            })?;
            let node = &self.nodes[id];
            match node.kind {
                // Tar writers link to the file itself; long chains only come from
                // hostile TOCs, and would make resolution quadratic.
                EntryType::Hardlink if seen.len() >= MAX_HARDLINK_HOPS => {
                    return Err(invalid(
                        i,
                        e,
                        format!("hardlink chain longer than {MAX_HARDLINK_HOPS} links"),
                    ))
                }
                EntryType::Hardlink => {
                    seen.push(current);
                    current = name::clean(&node.link_name);
                }
                EntryType::Dir => {
                    return Err(invalid(i, e, format!("hardlink to directory {current:?}")))
                }
                _ => return Ok(id),
            }
        }
    }

    /// The parent of `name`, synthesising missing ancestors as directories.
    ///
    /// Iterative: a name may have thousands of components, and a recursion
    /// per component overflowed the stack of a converter thread.
    fn ensure_parent(&mut self, name: &str) -> Result<NodeId> {
        // Up to the nearest ancestor that exists (the root always does)...
        let mut missing = Vec::new();
        let mut child = name;
        let mut parent = parent_of(name);
        let mut id = loop {
            if let Some(&id) = self.by_name.get(parent) {
                let node = &self.nodes[id];
                if node.kind != EntryType::Dir {
                    return Err(Error::InvalidEntry {
                        index: node.toc_index.unwrap_or(0),
                        entry: node.raw_name.clone(),
                        reason: format!("has children (such as {child:?}) but is not a directory"),
                    });
                }
                break id;
            }
            missing.push(parent);
            child = parent;
            parent = parent_of(parent);
        };
        // ...then the missing ones, top down.
        for dir in missing.into_iter().rev() {
            let new = self.nodes.len();
            self.nodes.push(Node::synthesized_dir(dir));
            self.by_name.insert(dir.to_string(), new);
            self.attach(id, dir, new);
            id = new;
        }
        Ok(id)
    }

    fn attach(&mut self, parent: NodeId, name: &str, id: NodeId) {
        self.nodes[id].num_link += 1;
        if self.nodes[id].kind == EntryType::Dir {
            self.nodes[parent].num_link += 1;
        }
        self.attach_child(parent, name, id);
    }

    fn attach_child(&mut self, parent: NodeId, name: &str, id: NodeId) {
        let base = name.rsplit_once('/').map_or(name, |(_, b)| b);
        self.nodes[parent].children.insert(base.to_string(), id);
    }

    /// Pass 3 (spec §5.3): each data entry's member run ends at the nearest
    /// later member start, or at the end of the payload.
    fn fill_next_offsets(&mut self, toc: &Toc) {
        let mut next = self.payload_end;
        let mut next_by_toc = vec![self.payload_end; toc.entries.len()];
        for (i, e) in toc.entries.iter().enumerate().rev() {
            next_by_toc[i] = next;
            let data = matches!(e.kind, EntryType::Reg | EntryType::Chunk);
            // Not negative: pass 1 checked every entry.
            let offset = e.offset_u64().unwrap_or(0);
            if data && offset > 0 && e.inner_offset == 0 && offset < next {
                next = offset;
            }
        }
        for node in &mut self.nodes {
            for c in &mut node.chunks {
                c.next_offset = next_by_toc[c.toc_index].max(c.offset);
            }
        }
    }

    /// The node at `path` (cleaned first; `""` is the root). Hardlinks lead
    /// to their target.
    pub fn lookup(&self, path: &str) -> Option<&Node> {
        self.lookup_id(path).map(|id| &self.nodes[id])
    }

    /// Like [`Index::lookup`], returning the id.
    pub fn lookup_id(&self, path: &str) -> Option<NodeId> {
        self.by_name.get(&name::clean(path)).copied()
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Node `id`, or `None` when there is no such node.
    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// The root directory.
    pub fn root(&self) -> &Node {
        &self.nodes[0]
    }

    /// Children of a directory, by base name.
    pub fn children<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = (&'a str, &'a Node)> {
        node.children
            .iter()
            .map(|(k, &id)| (k.as_str(), &self.nodes[id]))
    }

    /// Every path and its node, depth first in name order (hardlinks appear
    /// under each of their names).
    pub fn walk(&self) -> Vec<(String, &Node)> {
        let mut out = Vec::new();
        let mut stack: Vec<(String, NodeId, usize)> = vec![(String::new(), 0, 0)];
        while let Some((path, id, depth)) = stack.pop() {
            if depth > 0 {
                out.push((path.clone(), &self.nodes[id]));
            }
            if self.nodes[id].kind == EntryType::Dir && depth <= 4096 {
                for (base, &child) in self.nodes[id].children.iter().rev() {
                    let p = if path.is_empty() {
                        base.clone()
                    } else {
                        format!("{path}/{base}")
                    };
                    stack.push((p, child, depth + 1));
                }
            }
        }
        out
    }

    /// Regular files with data, each once (hardlink names not repeated), in TOC order.
    pub fn files(&self) -> Vec<&Node> {
        let mut files: Vec<&Node> = self
            .by_name
            .iter()
            .filter(|(name, &id)| {
                self.nodes[id].name == **name && self.nodes[id].kind == EntryType::Reg
            })
            .map(|(_, &id)| &self.nodes[id])
            .collect();
        files.sort_by_key(|n| n.toc_index);
        files
    }

    /// Hardlink names and the names they resolve to.
    pub fn hardlinks(&self) -> &BTreeMap<String, String> {
        &self.links
    }

    /// Where the payload ends (the TOC offset for an embedded TOC).
    pub fn payload_end(&self) -> u64 {
        self.payload_end
    }

    /// End of the prefetch region: the offset of `.prefetch.landmark`'s data,
    /// if the blob has one.
    pub fn prefetch_end(&self) -> Option<u64> {
        let landmark = self.lookup(PREFETCH_LANDMARK)?;
        landmark.chunks.first().map(|c| c.offset)
    }

    /// Whether the blob says it has nothing to prefetch.
    pub fn has_no_prefetch_landmark(&self) -> bool {
        self.lookup(NO_PREFETCH_LANDMARK).is_some()
    }

    /// Number of nodes reachable by name (root included).
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when only the root exists.
    pub fn is_empty(&self) -> bool {
        self.by_name.len() <= 1
    }
}

/// Owner and group names of every TOC entry, with the writer's
/// de-duplication undone (spec §3.7): what `ls -l` shows.
pub fn owner_names(toc: &Toc) -> Vec<(String, String)> {
    let mut users = HashMap::new();
    let mut groups = HashMap::new();
    toc.entries
        .iter()
        .map(|e| {
            if e.kind == EntryType::Chunk {
                return (String::new(), String::new());
            }
            (
                inherit(&mut users, e.uid, &e.user_name),
                inherit(&mut groups, e.gid, &e.group_name),
            )
        })
        .collect()
}

/// Name de-duplication undone: a present name sets the id's name, an absent one inherits it.
fn inherit(seen: &mut HashMap<i64, String>, id: i64, name: &str) -> String {
    if name.is_empty() {
        seen.get(&id).cloned().unwrap_or_default()
    } else {
        seen.insert(id, name.to_string());
        name.to_string()
    }
}

/// Parses RFC 3339 (`2020-01-02T03:04:06Z`, fractions and offsets allowed)
/// into seconds since the epoch; anything else is `None`, as in the reference.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    parse_rfc3339_nanos(s).map(|(secs, _)| secs)
}

/// [`parse_rfc3339`], with the fraction of the second as nanoseconds
/// (digits past the ninth dropped).
pub fn parse_rfc3339_nanos(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let kept = &frac[..digits.min(9)];
        nanos = kept.parse::<u32>().ok()? * 10u32.pow(9 - kept.len() as u32);
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[0..1], "+" | "-") && &rest[3..4] == ":" => {
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some((secs, nanos))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toc::format_modtime;

    fn entry(name: &str, kind: EntryType) -> TocEntry {
        TocEntry::new(name, kind)
    }

    fn reg(name: &str, size: i64, offset: i64, chunk_size: i64) -> TocEntry {
        let mut e = entry(name, EntryType::Reg);
        e.size = size;
        e.offset = offset;
        e.chunk_size = chunk_size;
        e
    }

    fn chunk(name: &str, offset: i64, chunk_offset: i64, chunk_size: i64) -> TocEntry {
        let mut e = entry(name, EntryType::Chunk);
        e.offset = offset;
        e.chunk_offset = chunk_offset;
        e.chunk_size = chunk_size;
        e
    }

    fn link(name: &str, kind: EntryType, target: &str) -> TocEntry {
        let mut e = entry(name, kind);
        e.link_name = target.into();
        e
    }

    fn build(entries: Vec<TocEntry>) -> Result<Index> {
        Index::build(
            &Toc {
                version: 1,
                entries,
            },
            1000,
            &IndexLimits::default(),
        )
    }

    #[test]
    fn parses_rfc3339_round_trip() {
        for t in [1, 1577934246, 951_782_400, -86_400, 8_589_934_591] {
            assert_eq!(parse_rfc3339(&format_modtime(t, 0)), Some(t), "{t}");
        }
        assert_eq!(
            parse_rfc3339("2020-01-02T03:04:06.5+01:00"),
            Some(1577934246 - 3600)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("2020-13-02T03:04:06Z"), None);
    }

    /// F1: chunk lookup.
    #[test]
    fn finds_chunks_by_offset() {
        let idx = build(vec![
            reg("four", 4, 10, 0),
            reg("eight", 8, 20, 4),
            chunk("eight", 30, 4, 0),
        ])
        .unwrap();
        let four = idx.lookup("four").unwrap();
        assert_eq!(
            four.chunk_for_offset(0).map(|c| (c.chunk_offset, c.size)),
            Some((0, 4))
        );
        assert!(four.chunk_for_offset(4).is_none());
        let eight = idx.lookup("./eight").unwrap();
        assert_eq!(
            eight.chunk_for_offset(0).map(|c| (c.chunk_offset, c.size)),
            Some((0, 4))
        );
        assert_eq!(
            eight.chunk_for_offset(4).map(|c| (c.chunk_offset, c.size)),
            Some((4, 4))
        );
        assert_eq!(eight.chunk_for_offset(7).map(|c| c.chunk_offset), Some(4));
        assert!(eight.chunk_for_offset(8).is_none());
        // Next offsets: four's member ends where eight's begins; the last ends at the payload end.
        assert_eq!(four.chunks[0].next_offset, 20);
        assert_eq!(eight.chunks[0].next_offset, 30);
        assert_eq!(eight.chunks[1].next_offset, 1000);
    }

    #[test]
    fn synthesises_parents_and_counts_links() {
        let idx = build(vec![
            entry("bar/", EntryType::Dir),
            entry("foo/", EntryType::Dir),
            entry("foo/bar/", EntryType::Dir),
            reg("x/y/z", 0, 0, 0),
        ])
        .unwrap();
        assert_eq!(idx.lookup("bar").unwrap().num_link, 2);
        assert_eq!(idx.lookup("foo").unwrap().num_link, 3);
        assert_eq!(idx.lookup("foo/bar").unwrap().num_link, 2);
        let x = idx.lookup("x").unwrap();
        assert_eq!(
            (x.kind.clone(), x.mode, x.toc_index),
            (EntryType::Dir, 0o755, None)
        );
        assert_eq!(
            idx.children(idx.root()).map(|(n, _)| n).collect::<Vec<_>>(),
            vec!["bar", "foo", "x"]
        );
    }

    #[test]
    fn resolves_hardlinks_and_rejects_bad_ones() {
        let idx = build(vec![
            link("fwd", EntryType::Hardlink, "t"),
            reg("t", 3, 10, 0),
            link("l2", EntryType::Hardlink, "./fwd"),
        ])
        .unwrap();
        let t = idx.lookup("t").unwrap();
        assert_eq!(t.num_link, 3);
        assert_eq!(idx.lookup_id("fwd"), idx.lookup_id("t"));
        assert_eq!(idx.lookup_id("l2"), idx.lookup_id("t"));
        for (entries, want) in [
            (vec![link("a", EntryType::Hardlink, "a")], "cycle"),
            (
                vec![
                    link("a", EntryType::Hardlink, "b"),
                    link("b", EntryType::Hardlink, "a"),
                ],
                "cycle",
            ),
            (vec![link("a", EntryType::Hardlink, "nope")], "isn't found"),
            (
                (0..300)
                    .map(|k| {
                        link(
                            &format!("l{k}"),
                            EntryType::Hardlink,
                            &format!("l{}", k + 1),
                        )
                    })
                    .collect(),
                "longer than 256",
            ),
            (
                vec![
                    entry("d/", EntryType::Dir),
                    link("a", EntryType::Hardlink, "d"),
                ],
                "directory",
            ),
        ] {
            let err = build(entries).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn duplicates_last_wins_and_reset_chunks() {
        let idx = build(vec![
            reg("f", 8, 10, 4),
            chunk("f", 20, 4, 0),
            reg("f", 3, 30, 0),
        ])
        .unwrap();
        let f = idx.lookup("f").unwrap();
        assert_eq!((f.size, f.chunks.len(), f.chunks[0].offset), (3, 1, 30));
    }

    #[test]
    fn rejects_inconsistent_entries() {
        for (entries, want) in [
            (vec![chunk("x", 10, 0, 0)], "does not follow"),
            (vec![reg("f", -1, 0, 0)], "negative"),
            (
                vec![reg("f", 1, 5, 0), reg("f/x", 0, 0, 0)],
                "not a directory",
            ),
        ] {
            let err = build(entries).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let limits = IndexLimits {
            max_entries: 1,
            ..IndexLimits::default()
        };
        let toc = Toc {
            version: 1,
            entries: vec![entry("a", EntryType::Dir), entry("b", EntryType::Dir)],
        };
        assert!(matches!(
            Index::build(&toc, 10, &limits),
            Err(Error::LimitExceeded { .. })
        ));
    }

    #[test]
    fn inherits_names_per_id() {
        let mut a = reg("a", 0, 0, 0);
        a.uid = 5;
        a.user_name = "u".into();
        a.gid = 5;
        a.group_name = "g".into();
        let mut b = reg("b", 0, 0, 0);
        b.uid = 5;
        b.gid = 5;
        let mut c = reg("c", 0, 0, 0);
        c.uid = 6;
        c.gid = 5;
        let idx = build(vec![a, b, c]).unwrap();
        let b = idx.lookup("b").unwrap();
        assert_eq!((b.user_name.as_str(), b.group_name.as_str()), ("u", "g"));
        let c = idx.lookup("c").unwrap();
        assert_eq!((c.user_name.as_str(), c.group_name.as_str()), ("", "g"));
    }

    #[test]
    fn empty_toc_has_a_root() {
        let idx = build(vec![]).unwrap();
        assert_eq!(idx.root().kind, EntryType::Dir);
        assert!(idx.is_empty());
    }
}
