//! The FUSE operations, each a few calls into the read API: lookups and
//! attributes from the index, file reads through the blob's chunk cache
//! with every chunk checked against its TOC digest.

use crate::source::{CountedSource, Counters};
use crate::view::{DirEntry, View, Whiteouts, S_IFMT};
use estargz_core::{Blob, NodeId, OwnedFile, ReadAt, Stat};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

/// How long the kernel may keep names and attributes: a layer never
/// changes while it is mounted.
const TTL: Duration = Duration::from_secs(24 * 3600);
/// Block size reported by `stat` and `statfs`.
const BLOCK: u32 = 4096;

/// Something the file system reports rather than prints (a library prints
/// nothing): the caller decides where it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A file read failed and was answered with `EIO`: the source failed,
    /// or a chunk did not decode or did not match its digest.
    ReadFailed {
        /// The file's path in the layer.
        path: String,
        /// File offset of the read.
        offset: u64,
        /// Bytes asked for.
        len: u32,
        /// Why.
        error: estargz_core::Error,
    },
}

type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A read-only FUSE file system serving one layer: implements
/// [`fuser::Filesystem`]; mount it with [`crate::mount`].
///
/// Inode numbers are node ids plus one ([`Stat::ino`]): hardlinks share
/// their target's. Reads decode only the chunks they need, through the
/// blob's cache, each chunk checked against its digest before it is
/// served or cached; a failure is `EIO` for that read alone.
pub struct LayerFs<S> {
    blob: Arc<Blob<CountedSource<S>>>,
    whiteouts: Whiteouts,
    events: EventSink,
    dirs: Mutex<HashMap<u64, Arc<[DirEntry]>>>,
    next_handle: AtomicU64,
    total_bytes: u64,
}

impl<S: ReadAt> LayerFs<S> {
    /// Serves `blob`, whiteouts in overlayfs' form, events dropped.
    pub fn new(blob: Arc<Blob<CountedSource<S>>>) -> LayerFs<S> {
        let total_bytes = blob.index().files().iter().map(|n| n.size()).sum();
        LayerFs {
            blob,
            whiteouts: Whiteouts::default(),
            events: Arc::new(drop),
            dirs: Mutex::default(),
            next_handle: AtomicU64::new(1),
            total_bytes,
        }
    }

    /// Presents whiteouts as `whiteouts` says.
    pub fn whiteouts(mut self, whiteouts: Whiteouts) -> Self {
        self.whiteouts = whiteouts;
        self
    }

    /// Hands every [`Event`] to `sink` (called on the FUSE worker threads).
    pub fn on_event(mut self, sink: impl Fn(Event) + Send + Sync + 'static) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// The blob served.
    pub fn blob(&self) -> &Arc<Blob<CountedSource<S>>> {
        &self.blob
    }

    /// The counters of source and file reads.
    pub fn counters(&self) -> &Arc<Counters> {
        self.blob.source().counters()
    }

    fn view(&self) -> View<'_> {
        View::new(self.blob.index(), self.whiteouts)
    }

    fn attr(&self, id: NodeId) -> Option<FileAttr> {
        self.view().stat(id).map(|s| file_attr(&s))
    }

    /// Up to `len` bytes of the regular file `id` from `offset`.
    fn read_file(&self, id: NodeId, offset: u64, len: u32) -> Result<Vec<u8>, Errno> {
        let file = OwnedFile::open(self.blob.clone(), id).map_err(|_| Errno::EINVAL)?;
        let want = file.size().saturating_sub(offset).min(u64::from(len));
        let mut buf = vec![0u8; want as usize];
        match file.read_at(offset, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                self.counters().file_read(Some(n));
                Ok(buf)
            }
            Err(error) => {
                self.counters().file_read(None);
                (self.events)(Event::ReadFailed {
                    path: self.blob.index().node(id).name().to_string(),
                    offset,
                    len,
                    error,
                });
                Err(Errno::EIO)
            }
        }
    }

    /// The listing of directory `id`: `.`, `..`, then its entries.
    fn listing(&self, id: NodeId) -> Arc<[DirEntry]> {
        let view = self.view();
        let dot = |name: &str, id: NodeId| DirEntry {
            name: name.to_string(),
            id,
            type_bits: 0o040000,
        };
        let mut all = vec![dot(".", id), dot("..", view.parent(id))];
        all.extend(view.entries(id));
        all.into()
    }
}

/// The node id of inode `ino`.
fn node_id(ino: INodeNo) -> Option<NodeId> {
    ino.0.checked_sub(1).and_then(|id| usize::try_from(id).ok())
}

/// An xattr reply: the size asked about, the bytes, or `ERANGE` when the
/// caller's buffer is too small.
fn reply_xattr(reply: ReplyXattr, size: u32, data: &[u8]) {
    match u32::try_from(data.len()) {
        Ok(len) if size == 0 => reply.size(len),
        Ok(len) if len <= size => reply.data(data),
        _ => reply.error(Errno::ERANGE),
    }
}

/// The kernel's 32-bit device number (`new_encode_dev`) of glibc's
/// 64-bit `makedev` encoding.
fn kernel_rdev(rdev: u64) -> u32 {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u32
}

fn file_type(mode: u32) -> FileType {
    match mode & S_IFMT {
        0o040000 => FileType::Directory,
        0o120000 => FileType::Symlink,
        0o020000 => FileType::CharDevice,
        0o060000 => FileType::BlockDevice,
        0o010000 => FileType::NamedPipe,
        0o140000 => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// `stat` in FUSE's terms; the TOC has one time, used for all three.
fn file_attr(s: &Stat) -> FileAttr {
    let nanos = Duration::from_nanos(u64::from(s.mtime_nsec));
    let secs = Duration::from_secs(s.mtime.unsigned_abs());
    let time = if s.mtime >= 0 {
        UNIX_EPOCH.checked_add(secs + nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(secs)
            .and_then(|t| t.checked_add(nanos))
    }
    .unwrap_or(UNIX_EPOCH);
    FileAttr {
        ino: INodeNo(s.ino),
        size: s.size,
        blocks: s.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: file_type(s.mode),
        perm: (s.mode & 0o7777) as u16,
        nlink: s.nlink,
        uid: s.uid,
        gid: s.gid,
        rdev: kernel_rdev(s.rdev),
        blksize: BLOCK,
        flags: 0,
    }
}

impl<S: ReadAt + 'static> Filesystem for LayerFs<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Symlink targets never change: the kernel may cache them too.
        let _ = config.add_capabilities(InitFlags::FUSE_CACHE_SYMLINKS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = node_id(parent)
            .zip(name.to_str())
            .and_then(|(dir, name)| self.view().lookup(dir, name))
            .and_then(|id| self.attr(id));
        match found {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match node_id(ino).and_then(|id| self.attr(id)) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match node_id(ino).and_then(|id| self.view().link_target(id)) {
            Some(target) => reply.data(target.as_bytes()),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(attr) = node_id(ino).and_then(|id| self.attr(id)) else {
            return reply.error(Errno::ENOENT);
        };
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match attr.kind {
            FileType::Directory => reply.error(Errno::EISDIR),
            // The bytes never change: pages read stay valid across opens.
            _ => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(id) = node_id(ino).filter(|&id| self.blob.index().get(id).is_some()) else {
            return reply.error(Errno::ENOENT);
        };
        match self.read_file(id, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    // Nothing is ever written: there is nothing to flush or sync.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let Some(attr) = node_id(ino).and_then(|id| self.attr(id)) else {
            return reply.error(Errno::ENOENT);
        };
        let Some(id) = node_id(ino).filter(|_| attr.kind == FileType::Directory) else {
            return reply.error(Errno::ENOTDIR);
        };
        // Listed once per open, so offsets stay valid and a large
        // directory is not listed again for each batch.
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(handle, self.listing(id));
        reply.opened(FileHandle(handle), FopenFlags::FOPEN_CACHE_DIR);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let held = self
            .dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&fh.0)
            .cloned();
        let Some(entries) = held.or_else(|| node_id(ino).map(|id| self.listing(id))) else {
            return reply.error(Errno::ENOENT);
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(skip) {
            let ino = INodeNo(e.id as u64 + 1);
            if reply.add(ino, i as u64 + 1, file_type(e.type_bits), &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.total_bytes.div_ceil(u64::from(BLOCK));
        let files = self.blob.index().len() as u64;
        reply.statfs(blocks, 0, 0, files, 0, BLOCK, 255, BLOCK);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let xattrs = node_id(ino).map(|id| self.view().xattrs(id));
        match xattrs
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| OsStr::new(k) == name)
        {
            Some((_, value)) => reply_xattr(reply, size, &value),
            None => reply.error(Errno::NO_XATTR),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        for (k, _) in node_id(ino)
            .map(|id| self.view().xattrs(id))
            .unwrap_or_default()
        {
            names.extend_from_slice(k.as_bytes());
            names.push(0);
        }
        reply_xattr(reply, size, &names);
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_rdev;

    #[test]
    fn device_numbers_reach_the_kernel_in_its_encoding() {
        let glibc = |major: u64, minor: u64| {
            ((major & 0xffff_f000) << 32)
                | ((major & 0xfff) << 8)
                | ((minor & 0xffff_ff00) << 12)
                | (minor & 0xff)
        };
        // new_encode_dev: minor's low byte, major, then minor's high bits.
        assert_eq!(kernel_rdev(glibc(8, 1)), 0x801);
        assert_eq!(
            kernel_rdev(glibc(300, 70000)),
            (70000 & 0xff) | (300 << 8) | ((70000 & !0xff) << 12)
        );
        assert_eq!(kernel_rdev(0), 0);
    }
}
