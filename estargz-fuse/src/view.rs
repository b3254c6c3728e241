//! The index as the mount shows it: which name leads to which node, what a
//! directory lists, and each node's `stat` and xattrs, with whiteouts
//! presented as overlayfs expects them (or as stored).

use estargz_core::{
    EntryType, Index, NodeId, Stat, Whiteout, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK,
};

/// `st_mode` type bits.
pub(crate) const S_IFMT: u32 = 0o170000;
const S_IFCHR: u32 = 0o020000;

/// The name a whiteout file carries: `.wh.NAME` removes `NAME`.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The marker that makes its directory opaque.
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to know a directory is opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Whether `name` in `dir` is a prefetch landmark: a file the converter
/// adds to the root to mark the prefetch region, not part of the layer
/// (hidden, as the stargz snapshotter hides it).
fn is_landmark(dir: NodeId, name: &str) -> bool {
    dir == 0 && (name == PREFETCH_LANDMARK || name == NO_PREFETCH_LANDMARK)
}

/// How OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) appear in the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Whiteouts {
    /// overlayfs' own form, as the stargz snapshotter presents them, so
    /// the mount can be a lower layer of an overlay: `.wh.NAME` appears as
    /// a character device 0:0 named `NAME`, and a directory holding
    /// `.wh..wh..opq` carries the xattr `trusted.overlay.opaque=y` while
    /// the marker itself is hidden. Where a layer holds both `NAME` and
    /// `.wh.NAME`, `NAME` is shown.
    #[default]
    Overlay,
    /// The files as the tar holds them.
    AsStored,
}

/// One directory entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name shown.
    pub name: String,
    /// The node it leads to.
    pub id: NodeId,
    /// Its `st_mode` type bits (`S_IFREG`, `S_IFDIR`, ...).
    pub type_bits: u32,
}

/// The index as presented under a [`Whiteouts`] mode.
///
/// ```
/// use estargz_core::{Blob, Converter, OpenOptions};
/// use estargz_fuse::{View, Whiteouts};
/// # let tar = {
/// # let mut b = tar::Builder::new(Vec::new());
/// # for name in ["etc/.wh.shadow", "etc/passwd"] {
/// #     let mut h = tar::Header::new_ustar();
/// #     h.set_size(0);
/// #     h.set_mode(0o644);
/// #     h.set_cksum();
/// #     b.append_data(&mut h, name, &b""[..]).unwrap();
/// # }
/// # b.into_inner().unwrap()
/// # };
/// let mut bytes = Vec::new();
/// Converter::new().convert(&tar, &mut bytes)?;
/// let blob = Blob::open(bytes, &OpenOptions::default())?;
/// let view = View::new(blob.index(), Whiteouts::Overlay);
/// let etc = view.lookup(0, "etc").unwrap();
/// let names: Vec<String> = view.entries(etc).into_iter().map(|e| e.name).collect();
/// assert_eq!(names, ["passwd", "shadow"]); // `shadow`: a 0:0 character device
/// let shadow = view.lookup(etc, "shadow").unwrap();
/// assert_eq!(view.stat(shadow).unwrap().mode, 0o020000);
/// # Ok::<(), estargz_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    index: &'a Index,
    whiteouts: Whiteouts,
}

impl<'a> View<'a> {
    /// `index` presented with `whiteouts`.
    pub fn new(index: &'a Index, whiteouts: Whiteouts) -> View<'a> {
        View { index, whiteouts }
    }

    fn overlay(&self) -> bool {
        self.whiteouts == Whiteouts::Overlay
    }

    /// Whether node `id` is shown as an overlay whiteout device.
    fn is_whiteout_device(&self, id: NodeId) -> bool {
        self.overlay()
            && self
                .index
                .get(id)
                .is_some_and(|n| matches!(n.whiteout(), Some(Whiteout::Remove(_))))
    }

    /// The child `name` of `dir`, by the index's path map (a directory may
    /// hold many entries: no scan). Names that path cleaning would change
    /// are not names of children.
    fn child(&self, dir: NodeId, name: &str) -> Option<NodeId> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return None;
        }
        let parent = self.index.get(dir)?.name();
        match parent {
            "" => self.index.lookup_id(name),
            p => self.index.lookup_id(&format!("{p}/{name}")),
        }
    }

    /// The node `name` in directory `dir` leads to.
    pub fn lookup(&self, dir: NodeId, name: &str) -> Option<NodeId> {
        self.index
            .get(dir)
            .filter(|n| *n.kind() == EntryType::Dir)?;
        if is_landmark(dir, name) {
            return None;
        }
        if !self.overlay() {
            return self.child(dir, name);
        }
        if name.starts_with(WHITEOUT_PREFIX) {
            return None;
        }
        self.child(dir, name)
            .or_else(|| self.child(dir, &format!("{WHITEOUT_PREFIX}{name}")))
    }

    /// What directory `dir` lists, `.` and `..` left out, in a stable order.
    pub fn entries(&self, dir: NodeId) -> Vec<DirEntry> {
        let mut out = Vec::new();
        if self.index.get(dir).is_none() {
            return out;
        }
        for (name, id, _) in self.index.readdir(dir) {
            if is_landmark(dir, name) {
                continue;
            }
            let shown = match (self.overlay(), name.strip_prefix(WHITEOUT_PREFIX)) {
                (true, Some(_)) if name == OPAQUE_MARKER => continue,
                (true, Some(hidden)) if !hidden.is_empty() => {
                    if self.child(dir, hidden).is_some() {
                        continue;
                    }
                    hidden
                }
                _ => name,
            };
            out.push(DirEntry {
                name: shown.to_string(),
                id,
                type_bits: self.stat(id).map_or(0, |s| s.mode & S_IFMT),
            });
        }
        // Whiteouts shown under their target's name sort among the others.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Node `id`'s `stat`; a whiteout shown as a device is `S_IFCHR` with
    /// no permission bits, owned by root, rdev 0 and size 0, as overlayfs
    /// writes them (and the stargz snapshotter shows them).
    pub fn stat(&self, id: NodeId) -> Option<Stat> {
        let node = self.index.get(id)?;
        let mut stat = node.stat(id);
        if self.is_whiteout_device(id) {
            stat.mode = S_IFCHR;
            (stat.uid, stat.gid) = (0, 0);
            stat.rdev = 0;
            stat.size = 0;
            stat.nlink = 1;
        }
        Some(stat)
    }

    /// Node `id`'s extended attributes, by name.
    pub fn xattrs(&self, id: NodeId) -> Vec<(String, Vec<u8>)> {
        let Some(node) = self.index.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<u8>)> = node
            .xattrs()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let opaque = self.overlay()
            && *node.kind() == EntryType::Dir
            && self.child(id, OPAQUE_MARKER).is_some();
        if opaque && !out.iter().any(|(k, _)| k == OPAQUE_XATTR) {
            out.push((OPAQUE_XATTR.to_string(), b"y".to_vec()));
        }
        out
    }

    /// The target of symlink `id`.
    pub fn link_target(&self, id: NodeId) -> Option<&'a str> {
        let node = self.index.get(id)?;
        (*node.kind() == EntryType::Symlink).then_some(node.link_name())
    }

    /// The directory holding `dir`; the root is its own parent.
    pub fn parent(&self, dir: NodeId) -> NodeId {
        self.index.parent(dir).unwrap_or(dir)
    }
}
