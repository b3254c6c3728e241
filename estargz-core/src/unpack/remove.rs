//! Removing what is in the way, relative to a directory handle.
//!
//! `std::fs::remove_dir_all` recurses and keeps a descriptor open per level,
//! so a tree as deep as an archive can make would overflow the stack or run
//! out of descriptors. [`remove_tree`] goes down and back up with two
//! handles at a time, and on the way up checks that `..` is the directory
//! it came from, so a directory moved meanwhile stops it instead of sending
//! it elsewhere.

use rustix::fs::{fstat, openat, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

const READ_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Removes whatever is at `name` in `parent` without following symlinks;
/// nothing there is fine.
pub(super) fn remove_existing(parent: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            remove_tree(parent, &cstring(name.as_bytes())?)
        }
        Ok(_) => ignore_missing(unlinkat(parent, name, AtFlags::empty())),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes everything inside the directory `dir` (an opaque whiteout).
pub(super) fn clear_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    let fd = openat(dir, c".", READ_DIR, Mode::empty())?;
    let mut cookie = 0;
    // A subdirectory is removed before reading on: the stream is reopened
    // after each, from where it stopped.
    while let Some((name, next)) = remove_files(&fd, cookie)? {
        remove_tree(dir, &name)?;
        cookie = next;
    }
    if cookie != 0 {
        // Entries a file system's cookies skipped: one more pass from the start.
        while let Some((name, _)) = remove_files(&fd, 0)? {
            remove_tree(dir, &name)?;
        }
    }
    Ok(())
}

/// One level of [`remove_tree`]'s way down.
struct Level {
    name: CString,
    dev: u64,
    ino: u64,
    /// Where to read on in this directory when coming back up.
    cookie: i64,
}

/// Removes directory `name` in `parent` and everything under it.
fn remove_tree(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let mut cur = openat(parent, name, READ_DIR, Mode::empty())?;
    let mut levels = vec![level(&cur, name.to_owned())?];
    loop {
        let last = levels.len() - 1;
        match remove_files(&cur, levels[last].cookie)? {
            Some((child, next)) => {
                levels[last].cookie = next;
                let fd = openat(&cur, &*child, READ_DIR, Mode::empty())?;
                levels.push(level(&fd, child)?);
                cur = fd;
            }
            None if levels[last].cookie != 0 => levels[last].cookie = 0,
            None => {
                let done = levels.pop().map(|l| l.name).unwrap_or_default();
                let Some(up) = levels.last() else {
                    drop(cur);
                    return ignore_missing(unlinkat(parent, &*done, AtFlags::REMOVEDIR));
                };
                let fd = openat(&cur, c"..", READ_DIR, Mode::empty())?;
                let st = fstat(&fd)?;
                if (st.st_dev as u64, st.st_ino as u64) != (up.dev, up.ino) {
                    return Err(io::Error::other(
                        "a directory being removed was moved meanwhile",
                    ));
                }
                cur = fd;
                ignore_missing(unlinkat(&cur, &*done, AtFlags::REMOVEDIR))?;
            }
        }
    }
}

fn level(fd: &OwnedFd, name: CString) -> io::Result<Level> {
    let st = fstat(fd)?;
    Ok(Level {
        name,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        cookie: 0,
    })
}

/// Reads `dir` from `cookie` on, unlinking every non-directory, up to the
/// first subdirectory: its name and the cookie after it, or `None` at the end.
fn remove_files(dir: &OwnedFd, cookie: i64) -> io::Result<Option<(CString, i64)>> {
    let mut stream = Dir::read_from(dir)?;
    if cookie != 0 {
        stream.seek(cookie)?;
    }
    while let Some(entry) = stream.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => {
                let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
            }
            _ => false,
        };
        if is_dir {
            return Ok(Some((name.to_owned(), entry.offset())));
        }
        ignore_missing(unlinkat(dir.as_fd(), name, AtFlags::empty()))?;
    }
    Ok(None)
}

fn ignore_missing(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Err(Errno::NOENT) => Ok(()),
        r => r.map_err(io::Error::from),
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}
