//! Mounting a [`LayerFs`]: read-only, `nodev` and `nosuid`, served by a
//! few threads so that one slow read does not hold up lookups.

use crate::fs::LayerFs;
use estargz_core::ReadAt;
use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use rustix::mount::UnmountFlags;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

/// How the layer is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MountOptions {
    /// The source name `mount` and `/proc/mounts` show.
    pub fs_name: String,
    /// Let users other than the one mounting in (an overlay used by
    /// containers of other users needs it).
    pub allow_other: bool,
    /// Threads answering the kernel's requests.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            fs_name: "estargz".to_string(),
            allow_other: false,
            threads: 4,
        }
    }
}

/// Why mounting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel (or `fusermount3`, for a user other than root) refused
    /// the mount.
    #[error("cannot mount on {}: {source}", .dir.display())]
    Mount {
        /// The mount point.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The session ended with an error.
    #[error("serving {}: {source}", .dir.display())]
    Serve {
        /// The mount point.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// A mounted layer, not served yet: [`run`](Self::run) answers requests
/// until it is unmounted.
pub struct Mounted<S: ReadAt + 'static> {
    session: Session<LayerFs<S>>,
    dir: PathBuf,
}

/// Unmounts a [`Mounted`] layer from another thread (a signal handler's).
#[derive(Clone)]
pub struct Unmounter {
    dir: PathBuf,
    /// The session's own unmounter, for the first try: it also keeps the
    /// session from unmounting again when it ends.
    session: Arc<Mutex<Option<SessionUnmounter>>>,
}

impl Unmounter {
    /// Unmounts; [`Mounted::run`] then returns. Fails with `EBUSY` while a
    /// process has a file open or its working directory in the mount.
    pub fn unmount(&self) -> io::Result<()> {
        let first = self
            .session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match first {
            Some(mut session) => session.unmount(),
            None => self.umount(UnmountFlags::empty(), &[]),
        }
    }

    /// Detaches the mount now, whoever uses it: the name is gone at once,
    /// and [`Mounted::run`] returns when the last user lets go.
    pub fn detach(&self) -> io::Result<()> {
        self.umount(UnmountFlags::DETACH, &["-z"])
    }

    /// `umount2(2)` as root; other users need the setuid `fusermount3`.
    fn umount(&self, flags: UnmountFlags, fusermount_flags: &[&str]) -> io::Result<()> {
        match rustix::mount::unmount(&self.dir, flags) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::PERM) => {
                let out = Command::new("fusermount3")
                    .arg("-u")
                    .args(fusermount_flags)
                    .arg("--")
                    .arg(&self.dir)
                    .output()?;
                if out.status.success() {
                    Ok(())
                } else {
                    let why = String::from_utf8_lossy(&out.stderr);
                    Err(io::Error::other(format!("fusermount3 -u: {}", why.trim())))
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Mounts `fs` on `dir`. As root this is a plain `mount(2)`; other users
/// go through `fusermount3` (Debian's `fuse3` package).
pub fn mount<S: ReadAt + 'static>(
    fs: LayerFs<S>,
    dir: &Path,
    opts: &MountOptions,
) -> Result<Mounted<S>, Error> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::DefaultPermissions,
        MountOption::FSName(opts.fs_name.clone()),
        MountOption::Subtype("estargz".to_string()),
    ];
    if opts.allow_other {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(opts.threads.max(1));
    let session = Session::new(fs, dir, &config).map_err(|source| Error::Mount {
        dir: dir.to_path_buf(),
        source,
    })?;
    // Unmounted by path: the one the kernel resolved, whatever the cwd.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    Ok(Mounted { session, dir })
}

impl<S: ReadAt + 'static> Mounted<S> {
    /// A handle that unmounts the layer, for another thread.
    pub fn unmounter(&mut self) -> Unmounter {
        Unmounter {
            dir: self.dir.clone(),
            session: Arc::new(Mutex::new(Some(self.session.unmount_callable()))),
        }
    }

    /// Answers requests until the layer is unmounted (by an
    /// [`Unmounter`], `umount`, or `fusermount3 -u`).
    pub fn run(self) -> Result<(), Error> {
        let dir = self.dir;
        self.session
            .run()
            .map_err(|source| Error::Serve { dir, source })
    }
}
