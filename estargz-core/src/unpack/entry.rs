//! Creating one entry inside the directory, relative to its parent's handle.

use super::attrs::{
    chmod_fd, chmod_special, chown_at, chown_fd, set_mtime, set_mtime_at, xattr_at, xattr_fd,
};
use super::remove::{clear_dir, remove_existing};
use super::walk::{DirWalker, WalkError, WalkFailure};
use super::{fs_err, UnpackOptions, UnpackProgress, UnpackReport};
use crate::error::{Error, Result};
use crate::name;
use crate::read::{NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK};
use crate::tar::{Entry, EntryKind, Scanner};
use rustix::fs::{
    fstat, linkat, mknodat, openat, statat, symlinkat, AtFlags, FileType, Mode, OFlags,
};
use rustix::io::Errno;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A directory whose mode and times are set at the end, once its children
/// stop changing them; `dev`/`ino` tell whether a later entry replaced it.
pub(super) struct PendingDir {
    pub rel: String,
    pub mode: u32,
    pub mtime: Option<(i64, u32)>,
    pub dev: u64,
    pub ino: u64,
}

pub(super) struct DirUnpacker<'a> {
    pub walker: DirWalker,
    pub out: Writer<'a>,
}

/// Everything but the walker, so a handle borrowed from the walker can be
/// used while the rest changes.
pub(super) struct Writer<'a> {
    pub root: PathBuf,
    pub opts: &'a UnpackOptions,
    pub report: UnpackReport,
    pub progress: &'a UnpackProgress,
    pub dirs: Vec<PendingDir>,
}

/// Where an entry goes: its parent's handle and its name there, and the
/// path for messages.
struct Place<'a> {
    rel: &'a str,
    path: PathBuf,
    parent: BorrowedFd<'a>,
    base: &'a str,
}

fn unsafe_entry(entry: &Entry, reason: impl Into<String>) -> Error {
    Error::Unsafe {
        entry: entry.name.clone(),
        reason: reason.into(),
    }
}

/// `rel` split into its parent directory (`""` for the root) and last name.
fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

fn parent_error(root: &Path, entry: &Entry, e: WalkError) -> Error {
    let path = root.join(&e.path);
    match e.failure {
        WalkFailure::Fs(source) => fs_err(&path, source),
        WalkFailure::Symlink => unsafe_entry(
            entry,
            format!(
                "its parent {} is a symlink; refusing to follow it",
                path.display()
            ),
        ),
        WalkFailure::NotDir | WalkFailure::Missing => unsafe_entry(
            entry,
            format!("its parent {} is not a directory", path.display()),
        ),
    }
}

impl DirUnpacker<'_> {
    pub fn entry<R: Read>(&mut self, entry: &Entry, scanner: &mut Scanner<R>) -> Result<()> {
        let rel = name::clean(&entry.name);
        if rel.is_empty() || rel == PREFETCH_LANDMARK || rel == NO_PREFETCH_LANDMARK {
            return Ok(()); // the root itself, or a format artifact
        }
        let (parent_rel, base) = split(&rel);
        if self.out.opts.apply_whiteouts && base.starts_with(".wh.") {
            return self.whiteout(entry, parent_rel, base);
        }
        // Resolved before walking to the entry's own parent: the walker
        // holds one path at a time.
        let link_target = match entry.kind {
            EntryKind::Hardlink => Some(self.hardlink_target(entry)?),
            _ => None,
        };
        let parent = self
            .walker
            .dir(parent_rel, true)
            .map_err(|e| parent_error(&self.out.root, entry, e))?;
        let place = Place {
            rel: &rel,
            path: self.out.root.join(&rel),
            parent,
            base,
        };
        self.out.write(entry, &place, link_target, scanner)
    }

    fn whiteout(&mut self, entry: &Entry, parent_rel: &str, base: &str) -> Result<()> {
        let parent = self
            .walker
            .dir(parent_rel, true)
            .map_err(|e| parent_error(&self.out.root, entry, e))?;
        let parent_path = self.out.root.join(parent_rel);
        if base == ".wh..wh..opq" {
            return clear_dir(parent).map_err(|e| fs_err(&parent_path, e));
        }
        let hidden = &base[".wh.".len()..];
        // `.wh..` and `.wh...` would name the directory itself or its
        // parent: a whiteout hides one sibling, nothing else.
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(unsafe_entry(
                entry,
                "whiteout of the directory itself or its parent",
            ));
        }
        remove_existing(parent, hidden).map_err(|e| fs_err(&parent_path.join(hidden), e))
    }

    /// The directory holding a hardlink's target, and the target's name:
    /// inside the root, reached without following symlinks, not a directory.
    fn hardlink_target(&mut self, entry: &Entry) -> Result<(OwnedFd, String)> {
        let target_rel = name::clean(&entry.link_name);
        if target_rel.is_empty() {
            return Err(unsafe_entry(entry, "hardlink to the root"));
        }
        let (dir, base) = split(&target_rel);
        let fd = self.walker.dir(dir, false).map_err(|_| {
            unsafe_entry(
                entry,
                format!("hardlink target {target_rel:?} is not inside the directory"),
            )
        })?;
        match statat(fd, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Err(
                unsafe_entry(entry, format!("hardlink to directory {target_rel:?}")),
            ),
            Ok(_) => {
                let fd = fd
                    .try_clone_to_owned()
                    .map_err(|e| fs_err(&self.out.root.join(dir), e))?;
                Ok((fd, base.to_owned()))
            }
            Err(_) => Err(unsafe_entry(
                entry,
                format!("hardlink target {target_rel:?} does not exist in the directory"),
            )),
        }
    }
}

impl Writer<'_> {
    fn write<R: Read>(
        &mut self,
        entry: &Entry,
        place: &Place<'_>,
        link_target: Option<(OwnedFd, String)>,
        scanner: &mut Scanner<R>,
    ) -> Result<()> {
        let (parent, base) = (place.parent, place.base);
        let err = |e: std::io::Error| fs_err(&place.path, e);
        let existing = match statat(parent, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(FileType::from_raw_mode(st.st_mode)),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(err(e.into())),
        };
        let keep_dir = existing == Some(FileType::Directory) && entry.kind == EntryKind::Directory;
        if existing.is_some() && !keep_dir {
            // Removed, never written through: it may be a symlink to anywhere.
            remove_existing(parent, base).map_err(err)?;
        }
        let mode = (entry.mode & 0o7777) as u32;
        let mode = if self.opts.same_owner {
            mode
        } else {
            mode & 0o1777
        };
        let mtime = (entry.mtime != (0, 0)).then_some(entry.mtime);
        match entry.kind {
            EntryKind::Directory => self.directory(entry, place, keep_dir, mode, mtime),
            EntryKind::Regular => self.regular(entry, place, mode, mtime, scanner),
            EntryKind::Symlink | EntryKind::Hardlink => {
                // A hardlink's times are its target's: the same inode.
                let own_times = link_target.is_none();
                match link_target {
                    Some((dir, target)) => {
                        linkat(dir, target.as_str(), parent, base, AtFlags::empty())
                    }
                    None => symlinkat(entry.link_name.as_str(), parent, base),
                }
                .map_err(|e| err(e.into()))?;
                self.metadata_at(entry, place, None, mtime.filter(|_| own_times))
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                let kind = match entry.kind {
                    EntryKind::CharDevice => FileType::CharacterDevice,
                    EntryKind::BlockDevice => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(entry.dev_major as u32, entry.dev_minor as u32);
                if let Err(e) = mknodat(parent, base, kind, Mode::from_raw_mode(mode), dev) {
                    self.report.warnings.push(format!(
                        "{}: not created: {}",
                        entry.name,
                        std::io::Error::from(e)
                    ));
                    return Ok(());
                }
                self.metadata_at(entry, place, Some(mode), mtime)
            }
        }
    }

    /// Owner, mode (device nodes and FIFOs), xattrs and times of something
    /// with no handle of its own; then counts the entry.
    fn metadata_at(
        &mut self,
        entry: &Entry,
        place: &Place<'_>,
        mode: Option<u32>,
        mtime: Option<(i64, u32)>,
    ) -> Result<()> {
        let (parent, base, path) = (place.parent, place.base, &place.path);
        if self.opts.same_owner {
            chown_at(parent, base, entry.uid, entry.gid).map_err(|e| fs_err(path, e))?;
        }
        // After chown, which clears setuid and setgid.
        if let Some(mode) = mode {
            chmod_special(parent, base, mode).map_err(|e| fs_err(path, e))?;
        }
        self.set_xattrs(entry, |k, v| xattr_at(parent, base, k, v));
        if let Some(t) = mtime {
            set_mtime_at(parent, base, t).map_err(|e| fs_err(path, e))?;
        }
        self.count();
        Ok(())
    }

    /// Owner and xattrs through the entry's own handle; then counts it.
    fn metadata_fd(&mut self, entry: &Entry, fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
        if self.opts.same_owner {
            chown_fd(fd, entry.uid, entry.gid).map_err(|e| fs_err(path, e))?;
        }
        self.set_xattrs(entry, |k, v| xattr_fd(fd, k, v));
        self.count();
        Ok(())
    }

    fn count(&mut self) {
        self.report.entries += 1;
        self.progress.set_entries(self.report.entries);
    }

    fn directory(
        &mut self,
        entry: &Entry,
        place: &Place<'_>,
        exists: bool,
        mode: u32,
        mtime: Option<(i64, u32)>,
    ) -> Result<()> {
        let (parent, base, path) = (place.parent, place.base, &place.path);
        if !exists {
            rustix::fs::mkdirat(parent, base, Mode::from_raw_mode(0o777))
                .map_err(|e| fs_err(path, e.into()))?;
        }
        let dir = openat(
            parent,
            base,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fs_err(path, e.into()))?;
        let st = fstat(&dir).map_err(|e| fs_err(path, e.into()))?;
        self.dirs.push(PendingDir {
            rel: place.rel.to_owned(),
            mode,
            mtime,
            dev: st.st_dev,
            ino: st.st_ino,
        });
        self.metadata_fd(entry, dir.as_fd(), path)
    }

    fn regular<R: Read>(
        &mut self,
        entry: &Entry,
        place: &Place<'_>,
        mode: u32,
        mtime: Option<(i64, u32)>,
        scanner: &mut Scanner<R>,
    ) -> Result<()> {
        let (parent, base, path) = (place.parent, place.base, &place.path);
        let total = self.report.bytes.saturating_add(entry.size);
        if total > self.opts.max_total_bytes {
            return Err(Error::LimitExceeded {
                what: "total unpacked bytes",
                value: total,
                limit: self.opts.max_total_bytes,
            });
        }
        let fd = openat(
            parent,
            base,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| fs_err(path, e.into()))?;
        self.progress.set_partial(Some(place.rel));
        let mut file = std::fs::File::from(fd);
        let mut left = entry.size;
        let mut buf = Vec::with_capacity(1 << 20);
        while left > 0 {
            buf.clear();
            let n = left.min(1 << 20);
            scanner.read_data(&mut buf, n)?;
            file.write_all(&buf).map_err(|e| fs_err(path, e))?;
            left -= n;
        }
        self.report.bytes += entry.size;
        if let Some(t) = mtime {
            set_mtime(file.as_fd(), t).map_err(|e| fs_err(path, e))?;
        }
        if self.opts.same_owner {
            chown_fd(file.as_fd(), entry.uid, entry.gid).map_err(|e| fs_err(path, e))?;
        }
        // After chown, which clears setuid and setgid.
        chmod_fd(file.as_fd(), mode).map_err(|e| fs_err(path, e))?;
        self.set_xattrs(entry, |k, v| xattr_fd(file.as_fd(), k, v));
        self.progress.set_partial(None);
        self.count();
        Ok(())
    }

    /// Restores the entry's xattrs when asked; a failure is a warning.
    fn set_xattrs(&mut self, entry: &Entry, set: impl Fn(&str, &[u8]) -> std::io::Result<()>) {
        if !self.opts.xattrs {
            return;
        }
        for (k, v) in &entry.xattrs {
            if let Err(e) = set(k, v) {
                self.report
                    .warnings
                    .push(format!("{}: xattr {k}: {e}", entry.name));
            }
        }
    }
}
