//! Reaching an entry's directory through open directory handles.
//!
//! Each step is an `openat` relative to the parent's handle with
//! `O_NOFOLLOW | O_DIRECTORY`: no full path is ever resolved, so a step costs
//! the same at any depth (paths longer than `PATH_MAX` work), and a symlink
//! put in place of a directory, even while the unpack runs, is refused
//! instead of followed.
//!
//! The handles along the last directory's path are kept, so an entry costs
//! only the components that differ from the previous one (tars list a
//! directory's contents together). However deep the path, at most
//! [`MAX_OPEN`] handles stay open: the deepest [`WINDOW`] levels, and evenly
//! spaced levels above them from which a dropped level is reopened. Walking
//! back up a deep chain (the directory times, set last, come in reverse)
//! then reopens at most one stride per [`WINDOW`] levels.

use rustix::fs::{mkdirat, openat, statat, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The deepest levels kept open.
const WINDOW: usize = 32;
/// Most levels above the window kept open.
const CHECKPOINTS: usize = 32;
/// Most handles open at once (the root's aside).
const MAX_OPEN: usize = WINDOW + CHECKPOINTS;

/// How directories are opened for walking: `O_PATH` where there is one, as
/// a walk needs no read permission and opens nothing but a handle.
#[cfg(any(target_os = "linux", target_os = "android"))]
const WALK_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const WALK_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What stopped a walk.
#[derive(Debug)]
pub(super) enum WalkFailure {
    /// A symlink where a directory was needed.
    Symlink,
    /// Something else that is not a directory.
    NotDir,
    /// Nothing there, and not asked to create it.
    Missing,
    /// The file system refused.
    Fs(io::Error),
}

/// A failed walk: what, and at which path under the root.
#[derive(Debug)]
pub(super) struct WalkError {
    /// Relative path of the component that failed.
    pub path: String,
    pub failure: WalkFailure,
}

/// Open handles for the path of the last directory reached.
pub(super) struct DirWalker {
    root: OwnedFd,
    /// The current directory relative to the root, `""` for the root.
    path: String,
    /// End of each component in `path`: the directory at depth `d` (1-based)
    /// is `path[..ends[d - 1]]`.
    ends: Vec<usize>,
    /// Open handles by depth, ascending; the deepest is always present.
    open: Vec<(usize, OwnedFd)>,
}

impl DirWalker {
    pub fn new(root: OwnedFd) -> Self {
        DirWalker {
            root,
            path: String::new(),
            ends: Vec::new(),
            open: Vec::new(),
        }
    }

    /// The handle of directory `rel` (clean, relative to the root, `""` for
    /// the root), creating missing directories when `create` is set.
    pub fn dir(&mut self, rel: &str, create: bool) -> Result<BorrowedFd<'_>, WalkError> {
        let common = self.common_depth(rel);
        self.truncate(common);
        self.reopen(create)?;
        let mut end = self.path.len();
        if end < rel.len() {
            for comp in rel[if end == 0 { 0 } else { end + 1 }..].split('/') {
                end = if end == 0 { 0 } else { end + 1 } + comp.len();
                let fd = step(self.handle(self.ends.len()), comp, create).map_err(|failure| {
                    WalkError {
                        path: rel[..end].to_owned(),
                        failure,
                    }
                })?;
                self.push(comp, fd);
            }
        }
        Ok(self.handle(self.ends.len()))
    }

    /// How many leading components `rel` shares with the current path.
    fn common_depth(&self, rel: &str) -> usize {
        let (a, b) = (self.path.as_bytes(), rel.as_bytes());
        let mut n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let boundary = |s: &[u8], i: usize| i == s.len() || s[i] == b'/';
        if !(boundary(a, n) && boundary(b, n)) {
            // Back to the last separator, where both still agree.
            n = a[..n].iter().rposition(|&c| c == b'/').unwrap_or(0);
        }
        self.ends.partition_point(|&e| e <= n)
    }

    /// Forgets everything below depth `depth`.
    fn truncate(&mut self, depth: usize) {
        self.ends.truncate(depth);
        self.path.truncate(self.ends.last().copied().unwrap_or(0));
        while self.open.last().is_some_and(|(d, _)| *d > depth) {
            self.open.pop();
        }
    }

    /// Reopens the current path's levels below its deepest open handle.
    fn reopen(&mut self, create: bool) -> Result<(), WalkError> {
        let target = self.ends.len();
        let mut depth = self.open.last().map_or(0, |(d, _)| *d);
        while depth < target {
            let start = if depth == 0 {
                0
            } else {
                self.ends[depth - 1] + 1
            };
            let end = self.ends[depth];
            let fd =
                step(self.handle(depth), &self.path[start..end], create).map_err(|failure| {
                    WalkError {
                        path: self.path[..end].to_owned(),
                        failure,
                    }
                })?;
            depth += 1;
            self.open.push((depth, fd));
            self.trim();
        }
        Ok(())
    }

    fn push(&mut self, comp: &str, fd: OwnedFd) {
        if !self.path.is_empty() {
            self.path.push('/');
        }
        self.path.push_str(comp);
        self.ends.push(self.path.len());
        self.open.push((self.ends.len(), fd));
        self.trim();
    }

    /// The handle at `depth`, which must be open (0 is the root).
    fn handle(&self, depth: usize) -> BorrowedFd<'_> {
        if depth == 0 {
            return self.root.as_fd();
        }
        match self.open.last() {
            Some((d, fd)) if *d == depth => fd.as_fd(),
            _ => unreachable!("walk: depth {depth} is not the deepest open handle"),
        }
    }

    /// Keeps the deepest [`WINDOW`] levels and every `stride`-th above,
    /// with the stride wide enough that at most [`CHECKPOINTS`] remain.
    fn trim(&mut self) {
        if self.open.len() <= MAX_OPEN {
            return;
        }
        let depth = self.ends.len();
        let stride = (depth / CHECKPOINTS + 1).next_power_of_two();
        self.open
            .retain(|(d, _)| d + WINDOW > depth || d % stride == 0);
    }
}

/// Opens directory `name` in `parent` without following a symlink,
/// creating it first when missing and `create` is set.
fn step(parent: BorrowedFd<'_>, name: &str, create: bool) -> Result<OwnedFd, WalkFailure> {
    match openat(parent, name, WALK_FLAGS, Mode::empty()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) if create => {}
        Err(e) => return Err(classify(parent, name, e)),
    }
    match mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
        // Made by someone else meanwhile: opening it checks what it is.
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(WalkFailure::Fs(e.into())),
    }
    openat(parent, name, WALK_FLAGS, Mode::empty()).map_err(|e| classify(parent, name, e))
}

fn classify(parent: BorrowedFd<'_>, name: &str, e: Errno) -> WalkFailure {
    match e {
        Errno::NOENT => WalkFailure::Missing,
        Errno::LOOP | Errno::NOTDIR => match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                WalkFailure::Symlink
            }
            Ok(_) => WalkFailure::NotDir,
            Err(e) => WalkFailure::Fs(e.into()),
        },
        e => WalkFailure::Fs(e.into()),
    }
}
