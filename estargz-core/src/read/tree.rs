//! The index as a file system sees it: nodes by id, parents, directory
//! entries in a stable order, `stat`, and OCI whiteouts.

use super::index::{parent_of, Index};
use super::node::{Node, NodeId};
use crate::toc::EntryType;

/// What `stat(2)` reports of a node, as a FUSE layer hands it to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stat {
    /// Inode number: the node id plus one (the root is 1, as FUSE expects).
    pub ino: u64,
    /// `st_mode`: the file-type bits (`S_IFREG`, `S_IFDIR`, ...) and the
    /// permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Link count.
    pub nlink: u32,
    /// Owner id (ids outside `u32` read as 0).
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Size in bytes: a regular file's length, a symlink's target length.
    pub size: u64,
    /// Device number of a character or block device, as `makedev` builds
    /// it; 0 for anything else.
    pub rdev: u64,
    /// Modification time, seconds since the epoch (0 when the TOC has none).
    pub mtime: i64,
    /// Nanoseconds past `mtime`.
    pub mtime_nsec: u32,
}

/// An OCI whiteout (image-spec `layer.md`): a file that stands for the
/// removal of a name from the layers below, rather than for itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whiteout {
    /// `DIR/.wh.NAME`: `DIR/NAME` is removed.
    Remove(String),
    /// `DIR/.wh..wh..opq`: `DIR` hides what the layers below hold in it.
    Opaque(String),
}

/// `st_mode` file-type bits of each type (`<sys/stat.h>`).
fn type_bits(kind: &EntryType) -> u32 {
    match kind {
        EntryType::Dir => 0o040000,
        EntryType::Symlink => 0o120000,
        EntryType::Char => 0o020000,
        EntryType::Block => 0o060000,
        EntryType::Fifo => 0o010000,
        _ => 0o100000,
    }
}

/// glibc's `makedev`: the major and minor numbers, each split in two.
fn makedev(major: i64, minor: i64) -> u64 {
    let (major, minor) = (major as u64 & 0xffff_ffff, minor as u64 & 0xffff_ffff);
    ((major & 0xffff_f000) << 32)
        | ((major & 0x0000_0fff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0x0000_00ff)
}

impl Node {
    /// The node's `stat`, numbered as node `id`.
    pub fn stat(&self, id: NodeId) -> Stat {
        let id_or_zero = |n: i64| u32::try_from(n).unwrap_or(0);
        let kind = self.kind();
        let device = matches!(kind, EntryType::Char | EntryType::Block);
        Stat {
            ino: id as u64 + 1,
            mode: type_bits(kind) | self.permissions(),
            nlink: self.num_link().max(1),
            uid: id_or_zero(self.uid()),
            gid: id_or_zero(self.gid()),
            size: match kind {
                EntryType::Symlink => self.link_name().len() as u64,
                _ => self.size(),
            },
            rdev: if device {
                makedev(self.dev_major(), self.dev_minor())
            } else {
                0
            },
            mtime: self.modtime().unwrap_or(0),
            mtime_nsec: self.modtime_nsec(),
        }
    }

    /// The whiteout this node is, if its base name says so.
    pub fn whiteout(&self) -> Option<Whiteout> {
        let name = self.name();
        let (dir, base) = match name.rsplit_once('/') {
            Some((dir, base)) => (dir, base),
            None => ("", name),
        };
        let join = |name: &str| match dir {
            "" => name.to_string(),
            _ => format!("{dir}/{name}"),
        };
        match base.strip_prefix(".wh.")? {
            ".wh..opq" => Some(Whiteout::Opaque(dir.to_string())),
            "" => None,
            hidden => Some(Whiteout::Remove(join(hidden))),
        }
    }
}

impl Index {
    /// The directory holding node `id`; `None` for the root.
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        let name = self.node(id).name();
        if name.is_empty() {
            return None;
        }
        self.lookup_id(parent_of(name))
    }

    /// A directory's entries, by name in byte order (the same order on
    /// every call, so a `readdir` offset stays valid), with their ids and
    /// types; hardlinks appear as their target's node. Empty for anything
    /// but a directory.
    pub fn readdir(&self, dir: NodeId) -> impl Iterator<Item = (&str, NodeId, &EntryType)> {
        self.child_entries(dir)
            .map(|(name, id)| (name, id, self.node(id).kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makedev_matches_glibc() {
        // makedev(8, 1) is /dev/sda1's 0x801; larger numbers split in two.
        assert_eq!(makedev(8, 1), 0x801);
        assert_eq!(makedev(259, 65536), 0x1001_0300);
        assert_eq!(makedev(0x1000, 0), 0x1000_0000_0000);
    }
}
