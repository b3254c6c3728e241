//! Unpacking: back to the tar stream, or into a directory without escaping it.
//!
//! [`unpack_tar`] writes the decompressed payload: for a lossless blob, the
//! original tar byte for byte (what the reference's `Unpack` returns). It
//! needs only the footer, so it also recovers blobs whose TOC is damaged.
//!
//! [`unpack_to_dir`] creates the entries under a directory. Every name is
//! cleaned (`..` and leading `/` cannot climb out), every parent component
//! is opened or created relative to its parent's handle without following
//! symlinks (a symlink in the way is an error, so `link -> /` then
//! `link/etc/x` writes nothing outside, even if the link appears while the
//! unpack runs), hardlink targets must be regular files or symlinks inside
//! the directory, and existing files are replaced, never written through. Symlink targets
//! are stored verbatim and never followed. Landmark files at the root
//! (`.prefetch.landmark`, `.no.prefetch.landmark`) are format artifacts and
//! are skipped. OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) are kept as
//! ordinary files unless [`UnpackOptions::apply_whiteouts`] is set.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod attrs;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod entry;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod remove;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod walk;

use crate::error::{Error, Result};
use crate::read::{decompressed_payload, read_footer, FrameError, ReadAt};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Writes the blob's decompressed payload (its tar stream) to `out`;
/// returns the number of bytes written. Only the footer is interpreted.
pub fn unpack_tar<S: ReadAt, W: Write>(source: S, mut out: W) -> Result<u64> {
    let (footer, size) = read_footer(&source)?;
    let mut decoder = decompressed_payload(&source, &footer, size);
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
                if crate::read::is_source_error(&e) {
                    return Err(Error::Read {
                        offset: total,
                        source: e,
                    });
                }
                return Err(match FrameError::of(&e) {
                    Some(f) => Error::ZstdChunked {
                        offset: f.offset,
                        reason: format!("payload: {}", f.message),
                    },
                    None => Error::Gzip {
                        offset: total,
                        message: format!("payload: {e}"),
                    },
                });
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
#[non_exhaustive]
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
#[non_exhaustive]
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

/// How far an unpack into a directory got, readable while it runs (from a
/// signal handler's thread, say) and after it failed: an unpack that stops
/// leaves what it wrote in place.
#[derive(Debug, Default)]
pub struct UnpackProgress {
    entries: AtomicUsize,
    partial: Mutex<Option<String>>,
}

impl UnpackProgress {
    /// Nothing written yet.
    pub const fn new() -> Self {
        UnpackProgress {
            entries: AtomicUsize::new(0),
            partial: Mutex::new(None),
        }
    }

    /// Entries written completely so far.
    pub fn entries(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// The regular file being written (its name under the directory), if
    /// the unpack stopped or is now inside one: it may be incomplete.
    pub fn partial(&self) -> Option<String> {
        // `try_lock`: a reader on a signal must not wait on the writer.
        self.partial.try_lock().ok().and_then(|p| p.clone())
    }

    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    fn set_entries(&self, n: usize) {
        self.entries.store(n, Ordering::Relaxed);
    }

    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    fn set_partial(&self, rel: Option<&str>) {
        if let Ok(mut p) = self.partial.lock() {
            *p = rel.map(str::to_owned);
        }
    }
}

/// Unpacks the blob's tar stream under `dir` (created if missing).
///
/// On an error, what was written so far stays: see
/// [`unpack_to_dir_with_progress`] to learn how much.
pub fn unpack_to_dir<S: ReadAt>(
    source: S,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    unpack_to_dir_with_progress(source, dir, opts, &UnpackProgress::new())
}

/// [`unpack_to_dir`], keeping `progress` up to date as entries are written.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn unpack_to_dir_with_progress<S: ReadAt>(
    source: S,
    dir: &Path,
    opts: &UnpackOptions,
    progress: &UnpackProgress,
) -> Result<UnpackReport> {
    use crate::tar::{Item, NamePolicy, ScanLimits, Scanner};
    use rustix::fs::{openat, Mode, OFlags, CWD};

    std::fs::create_dir_all(dir).map_err(|e| fs_err(dir, e))?;
    let root = dir.canonicalize().map_err(|e| fs_err(dir, e))?;
    let root_fd = openat(
        CWD,
        &root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_err(&root, e.into()))?;
    let (footer, size) = read_footer(&source)?;
    let tar = io::BufReader::with_capacity(1 << 20, decompressed_payload(&source, &footer, size));
    let mut scanner = Scanner::new(tar, NamePolicy::Replace, ScanLimits::default());
    let mut unpacker = entry::DirUnpacker {
        walker: walk::DirWalker::new(root_fd),
        out: entry::Writer {
            root,
            opts,
            report: UnpackReport::default(),
            progress,
            dirs: Vec::new(),
        },
    };
    while let Some(item) = scanner.next_item()? {
        match item {
            Item::End { .. } => break,
            Item::Entry(entry) => match unpacker.entry(&entry, &mut scanner) {
                Err(Error::Unsafe { entry, reason }) if opts.skip_unsafe => {
                    unpacker
                        .out
                        .report
                        .warnings
                        .push(format!("skipped {entry:?}: {reason}"));
                }
                other => other?,
            },
        }
    }
    finish_dirs(&mut unpacker)?;
    Ok(unpacker.out.report)
}

/// Directory modes and times last: creating children changes them. In
/// reverse, so a directory's own entry comes after its children's. One
/// replaced or removed by a later entry is left alone.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn finish_dirs(unpacker: &mut entry::DirUnpacker<'_>) -> Result<()> {
    use rustix::fs::{fstat, openat, Mode, OFlags};
    use std::os::fd::AsFd;
    let out = &mut unpacker.out;
    for d in out.dirs.iter().rev() {
        let path = out.root.join(&d.rel);
        let fd = match unpacker.walker.dir(&d.rel, false) {
            Ok(fd) => fd,
            Err(walk::WalkError {
                failure: walk::WalkFailure::Fs(e),
                path: at,
            }) => return Err(fs_err(&out.root.join(at), e)),
            Err(_) => continue,
        };
        // The walk's handle may allow no changes (`O_PATH`): a real one.
        let dir = openat(
            fd,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fs_err(&path, e.into()))?;
        let st = fstat(&dir).map_err(|e| fs_err(&path, e.into()))?;
        if (st.st_dev, st.st_ino) != (d.dev, d.ino) {
            continue;
        }
        if let Some(t) = d.mtime {
            attrs::set_mtime(dir.as_fd(), t).map_err(|e| fs_err(&path, e))?;
        }
        attrs::chmod_fd(dir.as_fd(), d.mode).map_err(|e| fs_err(&path, e))?;
    }
    Ok(())
}

/// Unpacking into a directory relies on `openat` and `O_PATH`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn unpack_to_dir_with_progress<S: ReadAt>(
    _: S,
    dir: &Path,
    _: &UnpackOptions,
    _: &UnpackProgress,
) -> Result<UnpackReport> {
    Err(fs_err(
        dir,
        io::Error::new(io::ErrorKind::Unsupported, "unpacking into a directory"),
    ))
}
