//! Unpacking: back to the tar stream, or into a directory without escaping it.
//!
//! [`unpack_tar`] writes the decompressed payload: for a lossless blob, the
//! original tar byte for byte (what the reference's `Unpack` returns). It
//! needs only the footer, so it also recovers blobs whose TOC is damaged.
//!
//! [`unpack_to_dir`] creates the entries under a directory. Every name is
//! cleaned (`..` and leading `/` cannot climb out), every parent component
//! is created or checked without following symlinks (a symlink in the way
//! is an error, so `link -> /` then `link/etc/x` writes nothing outside),
//! hardlink targets must be regular files or symlinks inside the directory,
//! and existing files are replaced, never written through. Symlink targets
//! are stored verbatim and never followed. Landmark files at the root
//! (`.prefetch.landmark`, `.no.prefetch.landmark`) are format artifacts and
//! are skipped. OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) are kept as
//! ordinary files unless [`UnpackOptions::apply_whiteouts`] is set.

use crate::error::{Error, Result};
use crate::name;
use crate::read::{
    decompressed_payload, read_footer, ReadAt, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK,
};
use crate::tar::{Entry, EntryKind, Item, NamePolicy, ScanLimits, Scanner};
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Writes the blob's decompressed payload (its tar stream) to `out`;
/// returns the number of bytes written. Only the footer is interpreted.
pub fn unpack_tar<S: ReadAt, W: Write>(source: S, mut out: W) -> Result<u64> {
    let (footer, size) = read_footer(&source)?;
    let mut decoder = decompressed_payload(&source, footer.payload_end(size));
    copy_counting(&mut decoder, &mut out)
}

fn copy_counting(r: &mut impl Read, w: &mut impl Write) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Gzip {
                    offset: total,
                    message: format!("payload: {e}"),
                })
            }
        };
        w.write_all(&buf[..n]).map_err(Error::Write)?;
        total += n as u64;
    }
    w.flush().map_err(Error::Write)?;
    Ok(total)
}

/// How to unpack into a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Set owners from the archive (default: when running as root).
    pub same_owner: bool,
    /// Restore extended attributes.
    pub xattrs: bool,
    /// Apply OCI whiteouts instead of creating `.wh.*` files.
    pub apply_whiteouts: bool,
    /// Skip entries that would leave the directory (with a warning each)
    /// instead of stopping at the first.
    pub skip_unsafe: bool,
    /// Most bytes of file data to write in all.
    pub max_total_bytes: u64,
}

/// Default for [`UnpackOptions::max_total_bytes`]: 1 TiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 1 << 40;

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            same_owner: running_as_root(),
            xattrs: false,
            apply_whiteouts: false,
            skip_unsafe: false,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Entries created.
    pub entries: usize,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Things skipped or not restored (devices without permission, …).
    pub warnings: Vec<String>,
}

fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        rustix::process::geteuid().is_root()
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn fs_err(path: &Path, source: io::Error) -> Error {
    Error::Fs {
        path: path.display().to_string(),
        source,
    }
}

/// Unpacks the blob's tar stream under `dir` (created if missing).
pub fn unpack_to_dir<S: ReadAt>(
    source: S,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    fs::create_dir_all(dir).map_err(|e| fs_err(dir, e))?;
    let root = dir.canonicalize().map_err(|e| fs_err(dir, e))?;
    let (footer, size) = read_footer(&source)?;
    let tar = BufReader::with_capacity(
        1 << 20,
        decompressed_payload(&source, footer.payload_end(size)),
    );
    let mut scanner = Scanner::new(tar, NamePolicy::Replace, ScanLimits::default());
    let mut report = UnpackReport::default();
    let mut dirs: Vec<(PathBuf, u32, Option<i64>)> = Vec::new();
    let mut unpacker = DirUnpacker {
        root,
        opts,
        report: &mut report,
        dirs: &mut dirs,
    };
    while let Some(item) = scanner.next_item()? {
        match item {
            Item::End { .. } => break,
            Item::Entry(entry) => match unpacker.entry(&entry, &mut scanner) {
                Err(Error::Unsafe { entry, reason }) if opts.skip_unsafe => {
                    unpacker
                        .report
                        .warnings
                        .push(format!("skipped {entry:?}: {reason}"));
                }
                other => other?,
            },
        }
    }
    // Directory modes and times last: creating children changes them.
    for (path, mode, mtime) in dirs.iter().rev() {
        if let Some(t) = mtime {
            let dir = fs::File::open(path).map_err(|e| fs_err(path, e))?;
            set_mtime(&dir, *t).map_err(|e| fs_err(path, e))?;
        }
        set_mode(path, *mode).map_err(|e| fs_err(path, e))?;
    }
    Ok(report)
}

struct DirUnpacker<'a> {
    root: PathBuf,
    opts: &'a UnpackOptions,
    report: &'a mut UnpackReport,
    dirs: &'a mut Vec<(PathBuf, u32, Option<i64>)>,
}

impl DirUnpacker<'_> {
    fn unsafe_entry(entry: &Entry, reason: impl Into<String>) -> Error {
        Error::Unsafe {
            entry: entry.name.clone(),
            reason: reason.into(),
        }
    }

    /// Creates (or checks) every directory between the root and `rel`'s
    /// parent, refusing to pass through anything but real directories.
    fn parent_dir(&mut self, entry: &Entry, rel: &str) -> Result<PathBuf> {
        walk_parents(&self.root, rel, true).map_err(|e| match e {
            ParentError::Fs(path, e) => fs_err(&path, e),
            ParentError::Symlink(path) => Self::unsafe_entry(
                entry,
                format!(
                    "its parent {} is a symlink; refusing to follow it",
                    path.display()
                ),
            ),
            ParentError::NotDir(path) | ParentError::Missing(path) => Self::unsafe_entry(
                entry,
                format!("its parent {} is not a directory", path.display()),
            ),
        })
    }

    fn entry<R: Read>(&mut self, entry: &Entry, scanner: &mut Scanner<R>) -> Result<()> {
        let rel = name::clean(&entry.name);
        if rel.is_empty() {
            return Ok(()); // the root itself
        }
        if rel == PREFETCH_LANDMARK || rel == NO_PREFETCH_LANDMARK {
            return Ok(());
        }
        let parent = self.parent_dir(entry, &rel)?;
        let base = rel.rsplit('/').next().unwrap_or(&rel);
        if self.opts.apply_whiteouts {
            if base == ".wh..wh..opq" {
                for child in fs::read_dir(&parent).map_err(|e| fs_err(&parent, e))? {
                    let child = child.map_err(|e| fs_err(&parent, e))?.path();
                    remove_existing(&child)?;
                }
                return Ok(());
            }
            if let Some(hidden) = base.strip_prefix(".wh.") {
                // `.wh..` and `.wh...` would name the directory itself or its
                // parent: a whiteout hides one sibling, nothing else.
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(Self::unsafe_entry(
                        entry,
                        "whiteout of the directory itself or its parent",
                    ));
                }
                remove_existing(&parent.join(hidden))?;
                return Ok(());
            }
        }
        let path = self.root.join(&rel);
        let existing = fs::symlink_metadata(&path).ok();
        match (&existing, entry.kind) {
            (Some(m), EntryKind::Directory) if m.file_type().is_dir() => {}
            (Some(_), _) => remove_existing(&path)?,
            (None, _) => {}
        }
        let mode = (entry.mode & 0o7777) as u32;
        let mode = if self.opts.same_owner {
            mode
        } else {
            mode & 0o1777
        };
        let mtime = (entry.mtime.0 != 0).then_some(entry.mtime.0);
        match entry.kind {
            EntryKind::Directory => {
                if existing.as_ref().is_none_or(|m| !m.file_type().is_dir()) {
                    fs::create_dir(&path).map_err(|e| fs_err(&path, e))?;
                }
                self.dirs.push((path.clone(), mode, mtime));
            }
            EntryKind::Regular => {
                if self.report.bytes.saturating_add(entry.size) > self.opts.max_total_bytes {
                    return Err(Error::LimitExceeded {
                        what: "total unpacked bytes",
                        value: self.report.bytes.saturating_add(entry.size),
                        limit: self.opts.max_total_bytes,
                    });
                }
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| fs_err(&path, e))?;
                let mut left = entry.size;
                let mut buf = Vec::with_capacity(1 << 20);
                while left > 0 {
                    buf.clear();
                    let n = left.min(1 << 20);
                    scanner.read_data(&mut buf, n)?;
                    file.write_all(&buf).map_err(|e| fs_err(&path, e))?;
                    left -= n;
                }
                self.report.bytes += entry.size;
                if let Some(t) = mtime {
                    set_mtime(&file, t).map_err(|e| fs_err(&path, e))?;
                }
                drop(file);
            }
            EntryKind::Symlink => {
                make_symlink(&entry.link_name, &path).map_err(|e| fs_err(&path, e))?
            }
            EntryKind::Hardlink => {
                let target_rel = name::clean(&entry.link_name);
                if target_rel.is_empty() {
                    return Err(Self::unsafe_entry(entry, "hardlink to the root"));
                }
                let target_parent = self.existing_parent(entry, &target_rel)?;
                let target =
                    target_parent.join(target_rel.rsplit('/').next().unwrap_or(&target_rel));
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.file_type().is_dir() => {
                        return Err(Self::unsafe_entry(
                            entry,
                            format!("hardlink to directory {target_rel:?}"),
                        ))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(Self::unsafe_entry(
                            entry,
                            format!(
                                "hardlink target {target_rel:?} does not exist in the directory"
                            ),
                        ))
                    }
                }
                fs::hard_link(&target, &path).map_err(|e| fs_err(&path, e))?;
            }
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                if let Err(e) = make_special(entry, &path, mode) {
                    self.report
                        .warnings
                        .push(format!("{}: not created: {e}", entry.name));
                    return Ok(());
                }
            }
        }
        if self.opts.same_owner {
            chown(&path, entry.uid, entry.gid).map_err(|e| fs_err(&path, e))?;
        }
        // After chown, which clears setuid and setgid; directories get theirs at the end.
        if matches!(
            entry.kind,
            EntryKind::Regular | EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo
        ) {
            set_mode(&path, mode).map_err(|e| fs_err(&path, e))?;
        }
        if self.opts.xattrs {
            for (k, v) in &entry.xattrs {
                if let Err(e) = set_xattr(&path, k, v) {
                    self.report
                        .warnings
                        .push(format!("{}: xattr {k}: {e}", entry.name));
                }
            }
        }
        self.report.entries += 1;
        Ok(())
    }

    /// The parent directory of an existing path inside the root, checked
    /// component by component without following symlinks.
    fn existing_parent(&self, entry: &Entry, rel: &str) -> Result<PathBuf> {
        walk_parents(&self.root, rel, false).map_err(|_| {
            Self::unsafe_entry(
                entry,
                format!("hardlink target {rel:?} is not inside the directory"),
            )
        })
    }
}

/// Why a path's parents could not be walked.
enum ParentError {
    Symlink(PathBuf),
    NotDir(PathBuf),
    Missing(PathBuf),
    Fs(PathBuf, io::Error),
}

/// Walks from `root` to the parent of `rel` one component at a time, never
/// following a symlink; creates missing directories when `create` is set.
fn walk_parents(root: &Path, rel: &str, create: bool) -> std::result::Result<PathBuf, ParentError> {
    let mut path = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for comp in &parts[..parts.len() - 1] {
        path.push(comp);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => return Err(ParentError::Symlink(path)),
            Ok(_) => return Err(ParentError::NotDir(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&path).map_err(|e| ParentError::Fs(path.clone(), e))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ParentError::Missing(path))
            }
            Err(e) => return Err(ParentError::Fs(path, e)),
        }
    }
    Ok(path)
}

/// Removes whatever is at `path` without following symlinks.
fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => fs::remove_dir_all(path).map_err(|e| fs_err(path, e)),
        Ok(_) => fs::remove_file(path).map_err(|e| fs_err(path, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fs_err(path, e)),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> io::Result<()> {
    Ok(())
}

fn set_mtime(file: &fs::File, secs: i64) -> io::Result<()> {
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    };
    file.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn make_symlink(_: &str, _: &Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "symlinks"))
}

#[cfg(unix)]
fn make_special(entry: &Entry, path: &Path, mode: u32) -> io::Result<()> {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    let kind = match entry.kind {
        EntryKind::CharDevice => FileType::CharacterDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        _ => FileType::Fifo,
    };
    let dev = rustix::fs::makedev(entry.dev_major as u32, entry.dev_minor as u32);
    mknodat(CWD, path, kind, Mode::from_raw_mode(mode), dev).map_err(io::Error::from)
}

#[cfg(not(unix))]
fn make_special(_: &Entry, _: &Path, _: u32) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "device nodes"))
}

#[cfg(unix)]
fn chown(path: &Path, uid: i64, gid: i64) -> io::Result<()> {
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return Ok(());
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

#[cfg(not(unix))]
fn chown(_: &Path, _: i64, _: i64) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn set_xattr(path: &Path, key: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, key, value, rustix::fs::XattrFlags::empty())
        .map_err(io::Error::from)
}

#[cfg(not(unix))]
fn set_xattr(_: &Path, _: &str, _: &[u8]) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "xattrs"))
}
