//! Owners, modes, times and xattrs, set through handles.
//!
//! Regular files and directories are changed through their own open handle.
//! Symlinks, hardlinks and device nodes have none that allows it, so they are
//! reached as `/proc/self/fd/PARENT/NAME`: the parent is the handle the walk
//! checked, and the last component is not followed by the `l*` calls.

use rustix::fs::{
    chmodat, chownat, fchmod, fchown, fsetxattr, fstat, futimens, lsetxattr, openat, utimensat,
    AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags, CWD,
};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Owner and group as the `*chown` calls take them; ids that do not fit,
/// or are -1, are left unchanged.
fn ids(uid: i64, gid: i64) -> (Option<Uid>, Option<Gid>) {
    let id = |v: i64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
    (id(uid).map(Uid::from_raw), id(gid).map(Gid::from_raw))
}

/// Sets the owner of an open file or directory.
pub(super) fn chown_fd(fd: BorrowedFd<'_>, uid: i64, gid: i64) -> io::Result<()> {
    let (u, g) = ids(uid, gid);
    Ok(fchown(fd, u, g)?)
}

/// Sets the owner of `name` in `parent`, never following a symlink.
pub(super) fn chown_at(parent: BorrowedFd<'_>, name: &str, uid: i64, gid: i64) -> io::Result<()> {
    let (u, g) = ids(uid, gid);
    Ok(chownat(parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?)
}

pub(super) fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// Sets the mode of the device node or FIFO `name` in `parent`. `fchmodat`
/// would follow a symlink put there meanwhile, and opening a device can
/// have effects, so the node is held by an `O_PATH` handle, checked, and
/// changed through its `/proc` link, which names that very inode.
pub(super) fn chmod_special(parent: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<()> {
    let fd = openat(
        parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let kind = FileType::from_raw_mode(fstat(&fd)?.st_mode);
    if !matches!(
        kind,
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo
    ) {
        return Err(io::Error::other("replaced while being created"));
    }
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(chmodat(
        CWD,
        link.as_str(),
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )?)
}

/// Access and modification both at `(seconds, nanoseconds)`.
fn timestamps((secs, nsec): (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nsec.min(999_999_999).into(),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Sets access and modification times of an open file or directory.
pub(super) fn set_mtime(fd: BorrowedFd<'_>, mtime: (i64, u32)) -> io::Result<()> {
    Ok(futimens(fd, &timestamps(mtime))?)
}

/// Sets the times of `name` in `parent` itself (a symlink, device node or
/// FIFO): `AT_SYMLINK_NOFOLLOW` never reaches through a symlink, and no
/// device is opened.
pub(super) fn set_mtime_at(
    parent: BorrowedFd<'_>,
    name: &str,
    mtime: (i64, u32),
) -> io::Result<()> {
    Ok(utimensat(
        parent,
        name,
        &timestamps(mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets an xattr on an open file or directory.
pub(super) fn xattr_fd(fd: impl AsFd, key: &str, value: &[u8]) -> io::Result<()> {
    Ok(fsetxattr(fd, key, value, XattrFlags::empty())?)
}

/// Sets an xattr on `name` in `parent` itself, not on what it points to.
pub(super) fn xattr_at(
    parent: BorrowedFd<'_>,
    name: &str,
    key: &str,
    value: &[u8],
) -> io::Result<()> {
    let path = format!("/proc/self/fd/{}/{name}", parent.as_raw_fd());
    Ok(lsetxattr(path.as_str(), key, value, XattrFlags::empty())?)
}
