//! A whole image as one read-only tree: each layer mounted with FUSE on a
//! hidden mount point of its own, and overlayfs over them, so the kernel
//! applies the whiteouts (which [`LayerFs`] presents in overlayfs' form).
//!
//! The order matters both ways: the overlay holds the layer mounts, so it
//! goes last on the way up and first on the way down; and whatever was
//! mounted before a failure is unmounted again.

use crate::fs::LayerFs;
use crate::mount::{mount, Error as MountError, MountOptions, Unmounter};
use estargz_core::ReadAt;
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Why stacking failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// A layer could not be mounted (the layers below it were unmounted).
    #[error("layer {index}: {source}")]
    Layer {
        /// The layer's position, 0 for the base.
        index: usize,
        /// The cause.
        source: MountError,
    },
    /// The hidden mount points could not be made or removed.
    #[error("{}: {source}", .path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The kernel refused the overlay (no overlayfs, or not allowed).
    #[error("cannot mount overlayfs on {}: {source}", .dir.display())]
    Overlay {
        /// The mount point.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A layer's session ended with an error.
    #[error("serving a layer: {0}")]
    Serve(MountError),
}

/// Where the hidden layer mounts go, and how each layer is mounted.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StackOptions {
    /// Options for every layer mount; its `fs_name` gets `:N` appended.
    pub layer: MountOptions,
    /// The directory the private directory of layer mount points is made
    /// in: [`std::env::temp_dir`] when `None`.
    pub work_dir: Option<PathBuf>,
}

/// One layer mounted and served on its own thread.
struct LayerMount {
    unmounter: Unmounter,
    thread: JoinHandle<Result<(), MountError>>,
}

/// Layers being mounted, base first: each [`push`](Self::push) mounts one
/// at once, so a caller can open the next layer only once the previous
/// ones are up, and a failure anywhere (a drop before
/// [`finish`](Self::finish)) unmounts what was mounted.
///
/// ```no_run
/// use estargz_core::{Blob, OpenOptions};
/// use estargz_fuse::{CountedSource, LayerFs, StackBuilder, StackOptions};
/// use std::sync::Arc;
///
/// let mut stack = StackBuilder::new(&StackOptions::default())?;
/// for path in ["base.esgz", "top.esgz"] {
///     let source = CountedSource::new(std::fs::File::open(path)?);
///     let blob = Blob::open(source, &OpenOptions::default())?;
///     stack.push(LayerFs::new(Arc::new(blob)))?;
/// }
/// let stack = stack.finish("/mnt/image".as_ref())?;
/// let stop = stack.unmounter(); // from a signal handler: stop.unmount()
/// stack.run()?; // until stopped
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StackBuilder {
    hidden: PathBuf,
    opts: MountOptions,
    layers: Vec<LayerMount>,
}

impl StackBuilder {
    /// Makes the private directory (mode 0700) the layers are mounted in.
    pub fn new(opts: &StackOptions) -> Result<StackBuilder, StackError> {
        let base = opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        let hidden = private_dir(&base)?;
        Ok(StackBuilder {
            hidden,
            opts: opts.layer.clone(),
            layers: Vec::new(),
        })
    }

    /// How many layers are mounted.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether no layer is mounted yet.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Mounts the next layer (above those pushed before) and serves it.
    pub fn push<S: ReadAt + 'static>(&mut self, fs: LayerFs<S>) -> Result<(), StackError> {
        let index = self.layers.len();
        let dir = self.hidden.join(index.to_string());
        std::fs::create_dir(&dir).map_err(|source| StackError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut opts = self.opts.clone();
        opts.fs_name = format!("{}:{index}", opts.fs_name);
        let mut mounted = match mount(fs, &dir, &opts) {
            Ok(m) => m,
            Err(source) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(StackError::Layer { index, source });
            }
        };
        let unmounter = mounted.unmounter();
        let thread = std::thread::spawn(move || mounted.run());
        self.layers.push(LayerMount { unmounter, thread });
        Ok(())
    }

    /// Mounts the read-only overlay of the layers on `dir`, the last
    /// pushed on top. On failure the layers are unmounted.
    pub fn finish(mut self, dir: &Path) -> Result<Stack, StackError> {
        let mut lower: Vec<PathBuf> = (0..self.layers.len())
            .rev()
            .map(|i| self.hidden.join(i.to_string()))
            .collect();
        // Without an upper directory overlayfs wants two lower ones.
        if lower.len() < 2 {
            let empty = self.hidden.join("empty");
            std::fs::create_dir(&empty).map_err(|source| StackError::Dir {
                path: empty.clone(),
                source,
            })?;
            lower.push(empty);
        }
        let overlay_error = |source: io::Error| StackError::Overlay {
            dir: dir.to_path_buf(),
            source,
        };
        let data = overlay_options(&lower).map_err(overlay_error)?;
        let flags = MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID;
        rustix::mount::mount("overlay", dir, "overlay", flags, data.as_c_str())
            .map_err(|e| overlay_error(e.into()))?;
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let layers = std::mem::take(&mut self.layers);
        let hidden = std::mem::take(&mut self.hidden);
        let unmounter = StackUnmounter {
            overlay: dir,
            layers: layers.iter().map(|l| l.unmounter.clone()).collect(),
            overlay_done: Arc::new(Mutex::new(false)),
        };
        watch_overlay(unmounter.clone());
        Ok(Stack {
            unmounter,
            threads: layers.into_iter().map(|l| l.thread).collect(),
            hidden,
        })
    }
}

impl Drop for StackBuilder {
    /// Unmounts the layers mounted so far, top first, and removes their
    /// mount points: a failed build leaves nothing behind.
    fn drop(&mut self) {
        let layers = std::mem::take(&mut self.layers);
        let unmounters: Vec<Unmounter> = layers.iter().map(|l| l.unmounter.clone()).collect();
        let threads = layers.into_iter().map(|l| l.thread).collect();
        unmount_layers(&unmounters);
        let _ = finish_threads(threads, &self.hidden);
    }
}

/// The mounted image: [`run`](Self::run) serves the layers until a
/// [`StackUnmounter`] takes the stack down.
pub struct Stack {
    unmounter: StackUnmounter,
    threads: Vec<JoinHandle<Result<(), MountError>>>,
    hidden: PathBuf,
}

impl Stack {
    /// A handle that unmounts the stack, for another thread.
    pub fn unmounter(&self) -> StackUnmounter {
        self.unmounter.clone()
    }

    /// Waits until every layer is unmounted, then removes the hidden
    /// mount points. A [`StackUnmounter`] ends it, and so does unmounting
    /// the overlay from elsewhere (`umount DIR`): the layers follow.
    pub fn run(mut self) -> Result<(), StackError> {
        let threads = std::mem::take(&mut self.threads);
        finish_threads(threads, &self.hidden)
    }
}

/// Takes a [`Stack`] down: the overlay first, then the layers, top first.
#[derive(Clone)]
pub struct StackUnmounter {
    overlay: PathBuf,
    layers: Vec<Unmounter>,
    overlay_done: Arc<Mutex<bool>>,
}

impl StackUnmounter {
    /// Unmounts the overlay, then the layers. Fails with `EBUSY`, having
    /// unmounted nothing, while a process uses the overlay.
    pub fn unmount(&self) -> io::Result<()> {
        self.unmount_overlay(UnmountFlags::empty())?;
        unmount_layers(&self.layers);
        Ok(())
    }

    /// Detaches the overlay and the layers now, whoever uses them: the
    /// names go at once, and [`Stack::run`] returns once the last user
    /// lets go.
    pub fn detach(&self) -> io::Result<()> {
        self.unmount_overlay(UnmountFlags::DETACH)?;
        for layer in self.layers.iter().rev() {
            let _ = layer.detach();
        }
        Ok(())
    }

    fn unmount_overlay(&self, flags: UnmountFlags) -> io::Result<()> {
        let mut done = self
            .overlay_done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !*done {
            match rustix::mount::unmount(&self.overlay, flags) {
                // Already gone (`umount DIR` by hand): the layers are next.
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
            *done = true;
        }
        Ok(())
    }
}

/// `umount DIR` from elsewhere takes the layers down too: the kernel
/// flags `/proc/self/mountinfo` (`POLLPRI`) on every change of the mount
/// table, and once the overlay is no longer listed the layers follow.
fn watch_overlay(unmounter: StackUnmounter) {
    let Ok(mut table) = std::fs::File::open("/proc/self/mountinfo") else {
        return;
    };
    let wanted = mountinfo_escape(&unmounter.overlay);
    std::thread::spawn(move || loop {
        // Reading the whole table from the start is also what re-arms
        // the notification.
        let mut text = String::new();
        let read = io::Seek::rewind(&mut table)
            .and_then(|()| io::Read::read_to_string(&mut table, &mut text));
        if read.is_err() {
            return;
        }
        let listed = text.lines().any(|l| l.split(' ').nth(4) == Some(&*wanted));
        if !listed {
            let mut done = unmounter
                .overlay_done
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !*done {
                *done = true;
                drop(done);
                unmount_layers(&unmounter.layers);
            }
            return;
        }
        let mut fds = [rustix::event::PollFd::new(
            &table,
            rustix::event::PollFlags::PRI,
        )];
        if rustix::event::poll(&mut fds, None).is_err() {
            return;
        }
    });
}

/// A path as `/proc/self/mountinfo` writes it: space, tab, newline and
/// backslash in octal escapes.
fn mountinfo_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Unmounts layers top first; one still busy (held by a detached overlay)
/// is detached, so its session ends when the overlay lets go.
fn unmount_layers(layers: &[Unmounter]) {
    for layer in layers.iter().rev() {
        if layer.unmount().is_err() {
            let _ = layer.detach();
        }
    }
}

/// Joins the layer sessions and removes their mount points; the first
/// error wins.
fn finish_threads(
    threads: Vec<JoinHandle<Result<(), MountError>>>,
    hidden: &Path,
) -> Result<(), StackError> {
    let mut result = Ok(());
    for thread in threads {
        let ended = thread
            .join()
            .unwrap_or_else(|_| Err(panicked_session(hidden)));
        if let (Err(e), Ok(())) = (ended, &result) {
            result = Err(StackError::Serve(e));
        }
    }
    if hidden.as_os_str().is_empty() {
        return result;
    }
    if let Ok(entries) = std::fs::read_dir(hidden) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
    if let Err(source) = std::fs::remove_dir(hidden) {
        if result.is_ok() {
            result = Err(StackError::Dir {
                path: hidden.to_path_buf(),
                source,
            });
        }
    }
    result
}

fn panicked_session(hidden: &Path) -> MountError {
    MountError::Serve {
        dir: hidden.to_path_buf(),
        source: io::Error::other("the session thread panicked"),
    }
}

/// A fresh directory only the caller can enter, named after the process.
fn private_dir(base: &Path) -> Result<PathBuf, StackError> {
    let pid = std::process::id();
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    let mut n = 0u32;
    loop {
        let path = base.join(format!(".estargz-layers-{pid}-{n}"));
        match builder.create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(source) => return Err(StackError::Dir { path, source }),
        }
    }
}

/// `lowerdir=A:B:…`, top first. Overlayfs separates paths with `:` and
/// options with `,`, so paths holding either (or `\`) are refused.
fn overlay_options(lower: &[PathBuf]) -> io::Result<CString> {
    let mut paths = Vec::with_capacity(lower.len());
    for p in lower {
        let s = p.to_str().filter(|s| !s.contains([':', ',', '\\']));
        let s = s.ok_or_else(|| {
            io::Error::other(format!(
                "{}: overlayfs cannot take a path with ':', ',' or '\\' (set TMPDIR)",
                p.display()
            ))
        })?;
        paths.push(s);
    }
    CString::new(format!("lowerdir={}", paths.join(":")))
        .map_err(|_| io::Error::other("a path with a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_are_top_first_and_refuse_separators() {
        let opts = overlay_options(&["/t/1".into(), "/t/0".into()]).unwrap();
        assert_eq!(opts.to_str().unwrap(), "lowerdir=/t/1:/t/0");
        assert!(overlay_options(&["/t:x/0".into()]).is_err());
        assert!(overlay_options(&["/t,x/0".into()]).is_err());
        assert_eq!(mountinfo_escape("/a b\\c".as_ref()), "/a\\040b\\134c");
    }
}
