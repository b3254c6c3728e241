//! The validated index: TOC entries normalised into a file tree (spec §5.3).
//!
//! Names are cleaned, missing parent directories synthesised, duplicates
//! resolved last-wins, hardlinks resolved to their target (cycles are an
//! error), chunk lists attached to their file, and each chunk told where its
//! member run ends, so reads never stray into the TOC or the footer.
//!
//! Each path is stored once, in its node: the path → node table holds node
//! ids and compares against the nodes' names, and directories list their
//! children as ids in one array for the whole index.

use super::node::{Chunk, Extra, Node, NodeFields, NodeId, Owners, StoredDigest};
use crate::error::{Error, Result};
use crate::name;
use crate::toc::{EntryType, Toc, TocEntry};
use hashbrown::HashTable;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// Name of the landmark file that ends the prefetch region.
pub const PREFETCH_LANDMARK: &str = ".prefetch.landmark";
/// Name of the landmark file that says there is no prefetch region.
pub const NO_PREFETCH_LANDMARK: &str = ".no.prefetch.landmark";

/// Longest chain of hardlinks to hardlinks that is resolved.
const MAX_HARDLINK_HOPS: usize = 256;

/// Most nodes: ids are stored as `u32`, the top bit marking a hardlink
/// name in the path table.
const MAX_NODES: usize = (1 << 31) - 1;
const ALIAS: u32 = 1 << 31;

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

/// A directory entry: the node it leads to, and the node whose name it
/// bears (the same one, but for a hardlink's name).
#[derive(Debug, Clone, Copy)]
struct Child {
    id: u32,
    named_by: u32,
}

/// What the path table's values stand for.
#[derive(Clone, Copy)]
struct Keys<'a> {
    nodes: &'a [Node],
    aliases: &'a [(u32, u32)],
}

impl<'a> Keys<'a> {
    /// The name a value stands for.
    fn name(self, value: u32) -> &'a str {
        let named_by = match value & ALIAS {
            0 => value,
            _ => self.aliases[(value & !ALIAS) as usize].0,
        };
        self.nodes[named_by as usize].name()
    }

    /// The node a value leads to.
    fn target(self, value: u32) -> NodeId {
        match value & ALIAS {
            0 => value as usize,
            _ => self.aliases[(value & !ALIAS) as usize].1 as usize,
        }
    }
}

/// Makes `path` lead to `value` in `paths`, replacing what it led to.
fn set_path(paths: &mut HashTable<u32>, hasher: &RandomState, keys: Keys, path: &str, value: u32) {
    let hash = hasher.hash_one(path);
    match paths.find_mut(hash, |&v| keys.name(v) == path) {
        Some(slot) => *slot = value,
        None => {
            paths.insert_unique(hash, value, |&v| hasher.hash_one(keys.name(v)));
        }
    }
}

/// The file tree a TOC describes.
#[derive(Debug, Clone)]
pub struct Index {
    nodes: Vec<Node>,
    /// Every reachable name → its node: a node id (the node's own name),
    /// or `ALIAS | i` for hardlink name `aliases[i]`.
    paths: HashTable<u32>,
    hasher: RandomState,
    /// Hardlink names: (the hardlink entry's node, which holds the name;
    /// the node the name resolves to).
    aliases: Vec<(u32, u32)>,
    /// Directory `d`'s entries are `children[child_start[d]..child_start[d + 1]]`,
    /// by name.
    child_start: Box<[u32]>,
    children: Box<[Child]>,
    /// Hardlink names → the name they resolve to.
    links: BTreeMap<String, String>,
    payload_end: u64,
}

/// `a/b` → `a`; a top-level name → `""`, the root.
pub(super) fn parent_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(p, _)| p)
}

fn invalid(index: usize, name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidEntry {
        index,
        entry: name.to_string(),
        reason: reason.into(),
    }
}

fn non_negative(index: usize, e: &TocEntry, field: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| invalid(index, &e.name, format!("{field} {v} is negative")))
}

/// The cleaned name of entry `index`, within the limits.
fn checked_name(index: usize, e: &TocEntry, limits: &IndexLimits) -> Result<String> {
    let clean = name::clean(&e.name);
    if clean.len() > limits.max_name_len {
        let reason = format!("name longer than {} bytes", limits.max_name_len);
        return Err(invalid(index, &e.name, reason));
    }
    if clean.split('/').count() > limits.max_depth {
        let reason = format!("path deeper than {} components", limits.max_depth);
        return Err(invalid(index, &e.name, reason));
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
            digest: StoredDigest::parse(&self.entry.chunk_digest),
            ..self.chunk_without_digest(chunk_offset, size, next_offset)
        }
    }

    /// [`chunk`](Self::chunk), its digest left absent.
    fn chunk_without_digest(&self, chunk_offset: u64, size: u64, next_offset: u64) -> Chunk {
        Chunk {
            // Below u32::MAX: Index::build caps the entry count.
            toc_index: self.index as u32,
            offset: self.offset,
            inner_offset: self.inner_offset,
            chunk_offset,
            size,
            digest: StoredDigest::Absent,
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

/// The owner names given so far, by id (see [`inherit`]), and each
/// distinct pair once, shared by the nodes that carry it.
#[derive(Default)]
struct OwnerNames {
    users: HashMap<i64, String>,
    groups: HashMap<i64, String>,
    pairs: HashMap<(String, String), Arc<Owners>>,
    last: Option<Arc<Owners>>,
}

impl OwnerNames {
    fn of(&mut self, e: &TocEntry) -> Option<Arc<Owners>> {
        let user = resolve(&mut self.users, e.uid, &e.user_name);
        let group = resolve(&mut self.groups, e.gid, &e.group_name);
        if user.is_empty() && group.is_empty() {
            return None;
        }
        // Consecutive entries mostly share owners: no allocation for them.
        if let Some(last) = self
            .last
            .as_ref()
            .filter(|o| *o.user == *user && *o.group == *group)
        {
            return Some(last.clone());
        }
        let shared = self
            .pairs
            .entry((user.to_string(), group.to_string()))
            .or_insert_with_key(|(u, g)| {
                Arc::new(Owners {
                    user: u.as_str().into(),
                    group: g.as_str().into(),
                })
            })
            .clone();
        self.last = Some(shared.clone());
        Some(shared)
    }
}

/// [`inherit`] without the copy: the name an entry of id `id` bears.
fn resolve<'a>(seen: &'a mut HashMap<i64, String>, id: i64, name: &'a str) -> &'a str {
    if name.is_empty() {
        return seen.get(&id).map_or("", String::as_str);
    }
    if seen.get(&id).is_none_or(|s| s != name) {
        seen.insert(id, name.to_string());
    }
    name
}

/// The chunks of the regular file being read, until the next file.
#[derive(Default)]
struct OpenFile {
    id: Option<NodeId>,
    chunks: Vec<Chunk>,
}

impl OpenFile {
    /// Hands the chunks gathered to their node, in a box of their size.
    fn close(&mut self, nodes: &mut [Node]) {
        if let Some(node) = self.id.take().and_then(|id| nodes.get_mut(id)) {
            node.chunks = self.chunks.as_slice().into();
        }
        self.chunks.clear();
    }
}

/// Grows `v` by an eighth when full, not by doubling: the node vector of a
/// streamed TOC, whose entry count is not known in advance, would
/// otherwise hold up to twice the room it needs at the peak of `open`.
fn reserve_gently<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(1024));
    }
}

/// Most TOC entries an index takes: its cap, below `u32::MAX` (chunks
/// store their entry's index as a `u32`).
fn entry_cap(limits: &IndexLimits) -> usize {
    limits.max_entries.min(u32::MAX as usize - 1)
}

/// Builds an [`Index`] one TOC entry at a time, in TOC order: what lets
/// `Blob::open` build it while the TOC streams, never holding a parsed TOC.
pub(crate) struct IndexBuilder {
    idx: Index,
    limits: IndexLimits,
    cap: usize,
    owners: OwnerNames,
    /// The regular file whose chunks any chunk entries now are.
    open: OpenFile,
    hardlinks: Vec<PendingLink>,
    /// Per entry, the blob offset of the member its data starts (0: none),
    /// for pass 3; the entry count is its length.
    starts: Vec<u64>,
}

impl IndexBuilder {
    /// A builder for a blob whose payload ends at `payload_end`, with room
    /// for `expected` entries (a hint; 0 when unknown).
    pub(crate) fn new(payload_end: u64, limits: &IndexLimits, expected: usize) -> IndexBuilder {
        let cap = entry_cap(limits);
        let expected = expected.min(cap);
        IndexBuilder {
            idx: Index::with_root(expected, payload_end),
            limits: *limits,
            cap,
            owners: OwnerNames::default(),
            open: OpenFile::default(),
            hardlinks: Vec::new(),
            starts: Vec::with_capacity(expected),
        }
    }

    /// Most entries accepted.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Pass 1, one entry: a node for it, owner names inherited, chunks
    /// attached to their file; hardlinks wait for every name to be known.
    pub(crate) fn add(&mut self, e: &TocEntry) -> Result<()> {
        let i = self.starts.len();
        if i >= self.cap {
            return Err(Error::LimitExceeded {
                what: "TOC entry count",
                value: i as u64 + 1,
                limit: self.cap as u64,
            });
        }
        let data = matches!(e.kind, EntryType::Reg | EntryType::Chunk);
        let start = match e.offset_u64() {
            Some(offset) if data && e.inner_offset == 0 => offset,
            _ => 0,
        };
        reserve_gently(&mut self.starts);
        self.starts.push(start);
        let entry = Checked::new(i, e)?;
        if e.kind == EntryType::Chunk {
            let file = self
                .open
                .id
                .ok_or_else(|| invalid(i, &e.name, "chunk entry does not follow a regular file"))?;
            // A last chunk starting past its file's end covers nothing.
            let size = e.chunk_len(self.idx.nodes[file].size).unwrap_or(0);
            let chunk = entry.chunk(entry.chunk_offset, size, self.idx.payload_end);
            self.open.chunks.push(chunk);
            return Ok(());
        }
        self.open.close(&mut self.idx.nodes);
        let name = checked_name(i, e, &self.limits)?;
        if e.kind == EntryType::Hardlink {
            self.hardlinks.push(PendingLink {
                index: i,
                link: name.clone(),
                target: name::clean(&e.link_name),
            });
        }
        let (node, first) = self.idx.node_of(&entry, name, &mut self.owners);
        let id = self.idx.insert(node)?;
        if e.kind == EntryType::Reg {
            self.open.id = Some(id);
            self.open.chunks.extend(first);
        }
        Ok(())
    }

    /// Passes 2 and 3 once every entry is in: the tree, hardlinks, where
    /// each chunk's member run ends.
    pub(crate) fn finish(mut self) -> Result<Index> {
        self.open.close(&mut self.idx.nodes);
        let mut idx = self.idx;
        let mut edges = Vec::with_capacity(idx.nodes.len());
        idx.attach_to_parents(&mut edges)?;
        idx.link_hardlinks(self.hardlinks, &mut edges)?;
        idx.fill_next_offsets(self.starts);
        idx.nodes.shrink_to_fit();
        idx.set_children(edges);
        Ok(idx)
    }
}

impl Index {
    /// Builds the index of `toc` for a blob whose payload ends at `payload_end`.
    pub fn build(toc: &Toc, payload_end: u64, limits: &IndexLimits) -> Result<Index> {
        let cap = entry_cap(limits);
        if toc.entries.len() > cap {
            return Err(Error::LimitExceeded {
                what: "TOC entry count",
                value: toc.entries.len() as u64,
                limit: cap as u64,
            });
        }
        let mut builder = IndexBuilder::new(payload_end, limits, toc.entries.len());
        for e in &toc.entries {
            builder.add(e)?;
        }
        builder.finish()
    }

    /// An index holding only the synthesised root, with room for `entries` more nodes.
    fn with_root(entries: usize, payload_end: u64) -> Index {
        // Sized up front when the count is known (it is capped): each
        // growth of the node vector would move every node built so far.
        let mut nodes = Vec::with_capacity(entries + 1);
        nodes.push(Node::synthesized_dir(""));
        let mut idx = Index {
            nodes,
            paths: HashTable::with_capacity(entries + 1),
            hasher: RandomState::new(),
            aliases: Vec::new(),
            child_start: Box::default(),
            children: Box::default(),
            links: BTreeMap::new(),
            payload_end,
        };
        idx.set_path("", 0);
        idx
    }

    fn keys(&self) -> Keys<'_> {
        Keys {
            nodes: &self.nodes,
            aliases: &self.aliases,
        }
    }

    /// Makes `path` (held elsewhere than in the nodes) lead to `value`.
    fn set_path(&mut self, path: &str, value: u32) {
        let keys = Keys {
            nodes: &self.nodes,
            aliases: &self.aliases,
        };
        set_path(&mut self.paths, &self.hasher, keys, path, value);
    }

    /// The node named `path` (cleaned), hardlinks resolved.
    fn find(&self, path: &str) -> Option<NodeId> {
        let keys = self.keys();
        let value = self
            .paths
            .find(self.hasher.hash_one(path), |&v| keys.name(v) == path)?;
        Some(keys.target(*value))
    }

    /// Adds `node`, failing past [`MAX_NODES`].
    fn push(&mut self, node: Node) -> Result<NodeId> {
        if self.nodes.len() >= MAX_NODES {
            return Err(Error::LimitExceeded {
                what: "index node count",
                value: self.nodes.len() as u64 + 1,
                limit: MAX_NODES as u64,
            });
        }
        reserve_gently(&mut self.nodes);
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// The node of a non-chunk entry, named `name` (cleaned), and a
    /// regular file's first chunk, which its entry holds.
    fn node_of(
        &self,
        entry: &Checked,
        name: String,
        owners: &mut OwnerNames,
    ) -> (Node, Option<Chunk>) {
        let e = entry.entry;
        let size = if e.kind == EntryType::Reg {
            entry.size
        } else {
            0
        };
        let node = Node::from_fields(NodeFields {
            raw_name: e.name.clone(),
            clean_name: name,
            kind: e.kind.clone(),
            size,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            owners: owners.of(e),
            modtime: parse_rfc3339_nanos(&e.modtime),
            extra: Extra {
                link_name: e.link_name.as_str().into(),
                dev_major: e.dev_major,
                dev_minor: e.dev_minor,
                xattrs: e.xattrs.clone(),
                ..Extra::default()
            },
            digest: StoredDigest::parse(&e.digest),
            toc_index: entry.index as u32,
        });
        let first = (size > 0).then(|| {
            let len = e.chunk_len(size).unwrap_or(size);
            let mut chunk = entry.chunk_without_digest(0, len, self.payload_end);
            // A file of one chunk: both digests are the same string.
            chunk.digest = if e.chunk_digest == e.digest {
                node.digest()
            } else {
                StoredDigest::parse(&e.chunk_digest)
            };
            chunk
        });
        (node, first)
    }

    /// Gives `node` its name: a later entry of a name replaces an earlier
    /// one, the root entry the synthesised root.
    fn insert(&mut self, node: Node) -> Result<NodeId> {
        if node.name().is_empty() {
            self.nodes[0] = node;
            return Ok(0);
        }
        let id = self.push(node)?;
        let keys = Keys {
            nodes: &self.nodes,
            aliases: &self.aliases,
        };
        set_path(
            &mut self.paths,
            &self.hasher,
            keys,
            keys.name(id as u32),
            id as u32,
        );
        Ok(id)
    }

    /// Pass 2: each named node but the hardlinks under its parent, missing
    /// ancestors synthesised, link counts.
    fn attach_to_parents(&mut self, edges: &mut Vec<(u32, Child)>) -> Result<()> {
        // In TOC order, not the table's: which error is reported, and the
        // ids of synthesised directories, must not vary between runs.
        let mut live: Vec<u32> = self.paths.iter().copied().filter(|&id| id != 0).collect();
        live.sort_unstable();
        for id in live {
            let id = id as usize;
            if self.nodes[id].is_hardlink() {
                continue; // placed once resolved
            }
            let name = self.nodes[id].name().to_string();
            let parent = self.ensure_parent(&name, edges)?;
            self.attach(parent, id, id, edges);
        }
        Ok(())
    }

    /// Hardlinks: the link's name leads to the target's node.
    fn link_hardlinks(
        &mut self,
        hardlinks: Vec<PendingLink>,
        edges: &mut Vec<(u32, Child)>,
    ) -> Result<()> {
        for PendingLink {
            index,
            link,
            target,
        } in hardlinks
        {
            // The node holding the name, unless a later duplicate replaced it.
            let Some(own) = self
                .find(&link)
                .filter(|&id| self.nodes[id].toc_index() == Some(index))
            else {
                continue;
            };
            let resolved = self.resolve_hardlink(&link, &target, own, index)?;
            let parent = self.ensure_parent(&link, edges)?;
            self.nodes[resolved].num_link += 1;
            let alias = ALIAS | self.aliases.len() as u32;
            self.aliases.push((own as u32, resolved as u32));
            self.set_path(&link, alias);
            self.links
                .insert(link, self.nodes[resolved].name().to_string());
            edges.push((
                parent as u32,
                Child {
                    id: resolved as u32,
                    named_by: own as u32,
                },
            ));
        }
        Ok(())
    }

    /// The node hardlink `link` (node `own`, entry `i`) leads to.
    fn resolve_hardlink(&self, link: &str, target: &str, own: NodeId, i: usize) -> Result<NodeId> {
        // The hardlink's own node holds its entry's raw name and link name.
        let e = &self.nodes[own];
        let mut seen = vec![link.to_string()];
        let mut current = target.to_string();
        loop {
            if seen.contains(&current) {
                return Err(invalid(
                    i,
                    e.raw_name(),
                    format!("hardlink cycle: {} -> {current}", seen.join(" -> ")),
                ));
            }
            let id = self.find(&current).ok_or_else(|| {
                invalid(
                    i,
                    e.raw_name(),
                    format!(
                        "is a hardlink but the linkname {:?} isn't found",
                        e.link_name()
                    ),
                )
            })?;
            let node = &self.nodes[id];
            match node.kind() {
                // Tar writers link to the file itself; long chains only come from
                // hostile TOCs, and would make resolution quadratic.
                EntryType::Hardlink if seen.len() >= MAX_HARDLINK_HOPS => {
                    return Err(invalid(
                        i,
                        e.raw_name(),
                        format!("hardlink chain longer than {MAX_HARDLINK_HOPS} links"),
                    ))
                }
                EntryType::Hardlink => {
                    seen.push(current);
                    current = node.link_target();
                }
                EntryType::Dir => {
                    return Err(invalid(
                        i,
                        e.raw_name(),
                        format!("hardlink to directory {current:?}"),
                    ))
                }
                _ => return Ok(id),
            }
        }
    }

    /// The parent of `name`, synthesising missing ancestors as directories.
    ///
    /// Iterative: a name may have thousands of components, and a recursion
    /// per component overflowed the stack of a converter thread.
    fn ensure_parent(&mut self, name: &str, edges: &mut Vec<(u32, Child)>) -> Result<NodeId> {
        // Up to the nearest ancestor that exists (the root always does)...
        let mut missing = Vec::new();
        let mut child = name;
        let mut parent = parent_of(name);
        let mut id = loop {
            if let Some(id) = self.find(parent) {
                let node = &self.nodes[id];
                if !node.is_dir() {
                    return Err(Error::InvalidEntry {
                        index: node.toc_index().unwrap_or(0),
                        entry: node.raw_name().to_string(),
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
            let new = self.push(Node::synthesized_dir(dir))?;
            self.set_path(dir, new as u32);
            self.attach(id, new, new, edges);
            id = new;
        }
        Ok(id)
    }

    /// Lists node `id` in directory `parent`, under `named_by`'s base name.
    fn attach(
        &mut self,
        parent: NodeId,
        id: NodeId,
        named_by: NodeId,
        edges: &mut Vec<(u32, Child)>,
    ) {
        self.nodes[id].num_link += 1;
        if self.nodes[id].is_dir() {
            self.nodes[parent].num_link += 1;
        }
        let child = Child {
            id: id as u32,
            named_by: named_by as u32,
        };
        edges.push((parent as u32, child));
    }

    /// Each directory's entries, grouped by directory (counting sort) and
    /// sorted by name; of two entries of one name, the later one stays.
    fn set_children(&mut self, edges: Vec<(u32, Child)>) {
        let mut start = vec![0u32; self.nodes.len() + 1];
        for &(parent, _) in &edges {
            start[parent as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut next = start.clone();
        let mut children = vec![Child { id: 0, named_by: 0 }; edges.len()];
        for (parent, child) in edges {
            let slot = &mut next[parent as usize];
            children[*slot as usize] = child;
            *slot += 1;
        }
        let mut kept = Vec::with_capacity(children.len());
        let mut kept_start = Vec::with_capacity(start.len());
        kept_start.push(0u32);
        // Base names found once per entry, not once per comparison.
        let mut named: Vec<(&str, Child)> = Vec::new();
        for dir in start.windows(2) {
            let list = &children[dir[0] as usize..dir[1] as usize];
            named.clear();
            named.extend(
                list.iter()
                    .map(|c| (self.nodes[c.named_by as usize].base_name(), *c)),
            );
            named.sort_by(|a, b| a.0.cmp(b.0));
            for (i, (name, c)) in named.iter().enumerate() {
                if named.get(i + 1).is_none_or(|n| n.0 != *name) {
                    kept.push(*c);
                }
            }
            kept_start.push(kept.len() as u32);
        }
        self.child_start = kept_start.into_boxed_slice();
        self.children = kept.into_boxed_slice();
    }

    /// Pass 3 (spec §5.3): each data entry's member run ends at the nearest
    /// later member start, or at the end of the payload. `starts` holds,
    /// per entry, the member its data starts (0: none).
    fn fill_next_offsets(&mut self, mut starts: Vec<u64>) {
        let mut next = self.payload_end;
        // In place: each entry's start becomes the next start after it.
        for slot in starts.iter_mut().rev() {
            let start = *slot;
            *slot = next;
            if start > 0 && start < next {
                next = start;
            }
        }
        for node in &mut self.nodes {
            for c in node.chunks.iter_mut() {
                let next = starts.get(c.toc_index()).copied();
                c.next_offset = next.unwrap_or(self.payload_end).max(c.offset);
            }
        }
    }

    /// Directory `dir`'s entries, by name.
    fn entries_of(&self, dir: NodeId) -> &[Child] {
        let range = self.child_start.get(dir).zip(self.child_start.get(dir + 1));
        range.map_or(&[], |(&a, &b)| &self.children[a as usize..b as usize])
    }

    /// A directory entry's name and node.
    fn entry(&self, c: &Child) -> (&str, NodeId) {
        (self.nodes[c.named_by as usize].base_name(), c.id as usize)
    }

    /// The node at `path` (cleaned first; `""` is the root). Hardlinks lead
    /// to their target.
    pub fn lookup(&self, path: &str) -> Option<&Node> {
        self.lookup_id(path).map(|id| &self.nodes[id])
    }

    /// Like [`Index::lookup`], returning the id.
    pub fn lookup_id(&self, path: &str) -> Option<NodeId> {
        self.find(&name::clean(path))
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
        // A node of another index (a clone's) is found by its name.
        let id = self.id_of(node).or_else(|| self.find(node.name()));
        let list = id.map_or(&[][..], |id| self.entries_of(id));
        list.iter().map(|c| {
            let (name, id) = self.entry(c);
            (name, &self.nodes[id])
        })
    }

    /// The id of `node`, if it is one of this index's nodes: its place in
    /// the node array.
    fn id_of(&self, node: &Node) -> Option<NodeId> {
        let size = std::mem::size_of::<Node>();
        let from_start = (node as *const Node as usize).checked_sub(self.nodes.as_ptr() as usize)?;
        let id = from_start / size;
        (from_start % size == 0 && id < self.nodes.len()).then_some(id)
    }

    /// A directory's entries with their ids, by name.
    pub(super) fn child_entries(&self, dir: NodeId) -> impl Iterator<Item = (&str, NodeId)> {
        self.entries_of(dir).iter().map(|c| self.entry(c))
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
            if self.nodes[id].is_dir() && depth <= 4096 {
                for c in self.entries_of(id).iter().rev() {
                    let (base, child) = self.entry(c);
                    let p = if path.is_empty() {
                        base.to_string()
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
            .paths
            .iter()
            .filter(|&&v| v & ALIAS == 0 && self.nodes[v as usize].is_reg())
            .map(|&v| &self.nodes[v as usize])
            .collect();
        files.sort_by_key(|n| n.toc_index());
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
        landmark.chunks().first().map(|c| c.offset())
    }

    /// Whether the blob says it has nothing to prefetch.
    pub fn has_no_prefetch_landmark(&self) -> bool {
        self.lookup(NO_PREFETCH_LANDMARK).is_some()
    }

    /// Number of nodes reachable by name (root included).
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when only the root exists.
    pub fn is_empty(&self) -> bool {
        self.paths.len() <= 1
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
            four.chunk_for_offset(0)
                .map(|c| (c.chunk_offset(), c.size())),
            Some((0, 4))
        );
        assert!(four.chunk_for_offset(4).is_none());
        let eight = idx.lookup("./eight").unwrap();
        assert_eq!(
            eight
                .chunk_for_offset(0)
                .map(|c| (c.chunk_offset(), c.size())),
            Some((0, 4))
        );
        assert_eq!(
            eight
                .chunk_for_offset(4)
                .map(|c| (c.chunk_offset(), c.size())),
            Some((4, 4))
        );
        assert_eq!(eight.chunk_for_offset(7).map(|c| c.chunk_offset()), Some(4));
        assert!(eight.chunk_for_offset(8).is_none());
        // Next offsets: four's member ends where eight's begins; the last ends at the payload end.
        assert_eq!(four.chunks()[0].next_offset(), 20);
        assert_eq!(eight.chunks()[0].next_offset(), 30);
        assert_eq!(eight.chunks()[1].next_offset(), 1000);
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
        assert_eq!(idx.lookup("bar").unwrap().num_link(), 2);
        assert_eq!(idx.lookup("foo").unwrap().num_link(), 3);
        assert_eq!(idx.lookup("foo/bar").unwrap().num_link(), 2);
        let x = idx.lookup("x").unwrap();
        assert_eq!(
            (x.kind().clone(), x.mode(), x.toc_index()),
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
        assert_eq!(t.num_link(), 3);
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
    fn hardlink_names_are_listed_but_stored_once() {
        let idx = build(vec![
            entry("d/", EntryType::Dir),
            reg("d/t", 3, 10, 0),
            link("./d/l", EntryType::Hardlink, "d/t"),
        ])
        .unwrap();
        let d = idx.lookup("d").unwrap();
        let listed: Vec<_> = idx.children(d).map(|(n, c)| (n, c.name())).collect();
        assert_eq!(listed, vec![("l", "d/t"), ("t", "d/t")]);
        // Root, d, d/t and the link's name; the link's node holds its name.
        assert_eq!(idx.len(), 4);
        assert_eq!(idx.files().len(), 1);
        assert_eq!(idx.lookup("d/l").unwrap().raw_name(), "d/t");
        assert_eq!(idx.hardlinks().get("d/l").map(String::as_str), Some("d/t"));
        let copy = idx.clone();
        assert_eq!(copy.children(d).count(), 2, "a node of the original");
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
        assert_eq!(
            (f.size(), f.chunks().len(), f.chunks()[0].offset()),
            (3, 1, 30)
        );
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
        assert_eq!((b.user_name(), b.group_name()), ("u", "g"));
        let c = idx.lookup("c").unwrap();
        assert_eq!((c.user_name(), c.group_name()), ("", "g"));
    }

    #[test]
    fn empty_toc_has_a_root() {
        let idx = build(vec![]).unwrap();
        assert_eq!(*idx.root().kind(), EntryType::Dir);
        assert!(idx.is_empty());
    }
}
