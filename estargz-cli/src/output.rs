//! Where results go: atomic files and stdout.

use anyhow::{Context, Result};
use std::ffi::{c_char, CString};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Mutex;

/// Temporary files in progress, removed if the process is interrupted.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The same paths as C strings, for a signal handler that can neither lock
/// nor allocate (SIGBUS from a mapped input, see `mapped`). The strings are
/// leaked on purpose: a handler may read a slot at any moment, so what a
/// slot pointed to must stay valid. A few dozen bytes per output. An
/// unnamed (`O_TMPFILE`) output has no path until it is linked for its
/// rename, so it is not here: exiting frees it.
pub static IN_PROGRESS_RAW: [AtomicPtr<c_char>; 8] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; 8];
/// Which slot of [`IN_PROGRESS_RAW`] holds which path.
static RAW_SLOTS: Mutex<Vec<(PathBuf, usize)>> = Mutex::new(Vec::new());

/// Run by the signal handler before it exits: what a command that writes in
/// place (`unpack -C`) has to say about what it leaves.
pub static ON_SIGNAL: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Set by the signal handler before it removes anything (see
/// [`interrupted`]).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether a signal is ending the process. An error the main thread meets
/// then is most likely the handler's doing (it removed the output being
/// written or renamed), not the input's: the main thread leaves the exit,
/// and its code 130, to the handler.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// On SIGINT, SIGTERM or SIGHUP: remove every temporary output, then exit
/// with 130 (the shell's code for an interrupted command).
pub fn remove_partial_outputs_on_signal() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        if let Some(say) = ON_SIGNAL.get() {
            say();
        }
        // Held until the process ends: no rename into place starts (see
        // `without_interruption`) once the outputs are gone.
        let held = IN_PROGRESS.lock();
        if let Ok(paths) = &held {
            paths.iter().for_each(|p| remove_output(p));
        }
        std::process::exit(130);
    });
}

/// Removes a temporary output, a file or a directory (convert-image builds
/// its output in one). Worker threads may still be writing into that
/// directory: `remove_dir_all` then fails on a file made after it listed
/// its parent. Once the directory itself is gone nothing more can be made
/// in it, so a few more passes finish the job.
fn remove_output(p: &Path) {
    for _ in 0..100 {
        match std::fs::symlink_metadata(p) {
            Err(_) => return,
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Runs `f` with the signal handler held off: a signal arriving meanwhile
/// removes the temporary outputs and ends the process only once `f` has
/// returned, so that a step of several renames is never cut in the middle.
/// `f` must not track or forget outputs (the handler's list is held).
pub fn without_interruption<T>(f: impl FnOnce() -> T) -> T {
    let _held = IN_PROGRESS.lock();
    f()
}

/// An output file that appears whole or not at all.
///
/// What `-o PATH` does depends on what PATH is (symbolic links followed
/// one by one):
/// - a new name or a regular file: the output is written to a temporary
///   file in the same directory and renamed over it only on success, so a
///   failed or interrupted run leaves no partial output and no lost
///   destination. Through a symbolic link, the file the link leads to is
///   replaced, in its own directory; the link stays;
/// - a device, FIFO or socket, or anything reached through a link in
///   /proc (`/dev/stdout`, `/dev/fd/N`): written in place, as `-o -` is.
///   Renaming over it would replace the node or the link with a file;
/// - a directory: an error, before any work.
///
/// The temporary file is an unnamed `O_TMPFILE` where the filesystem has
/// them, so a run killed by SIGKILL leaves nothing; it is linked under a
/// temporary name just before the rename (linkat cannot replace). Elsewhere
/// it is a named partial (`partial`), which the next run removes if its
/// owner died.
pub struct AtomicFile {
    /// `None` once committed.
    state: Option<State>,
    /// Where the file is renamed to (symbolic links resolved).
    target: PathBuf,
}

enum State {
    /// An `O_TMPFILE` in `dir`, not yet linked anywhere.
    Unnamed { file: File, dir: PathBuf },
    /// A named temporary file next to the target.
    Named(tempfile::NamedTempFile),
    /// The target itself.
    InPlace(File),
}

/// What an output path leads to.
enum Resolved {
    /// A name to rename a finished file to.
    Replace(PathBuf),
    /// An existing object to write through.
    InPlace,
}

/// Links followed before giving up, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// Follows `path`'s symbolic links one by one, to tell what it leads to.
fn resolve(path: &Path) -> Result<Resolved> {
    if path.as_os_str().is_empty() {
        return Err(crate::UsageError("the output path is empty".into()).into());
    }
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&current) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Resolved::Replace(current)),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot inspect {}", current.display()))
            }
            Ok(meta) => meta,
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            return Err(crate::UsageError(format!(
                "output {} is a directory; name a file",
                path.display()
            ))
            .into());
        }
        if kind.is_file() {
            return Ok(Resolved::Replace(current));
        }
        if !kind.is_symlink() || on_procfs(&current) {
            // A device, FIFO, socket, or a /proc link to an open file
            // (whose path may be stale, deleted or in another namespace).
            return Ok(Resolved::InPlace);
        }
        let link = std::fs::read_link(&current)
            .with_context(|| format!("cannot read the link {}", current.display()))?;
        current = parent_of(&current).join(link);
    }
    Err(anyhow::anyhow!(
        "output {}: too many levels of symbolic links",
        path.display()
    ))
}

/// Whether `link` lives in /proc, where links are the kernel's handles on
/// open files rather than paths.
fn on_procfs(link: &Path) -> bool {
    rustix::fs::statfs(parent_of(link)).is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Opens an existing non-regular target, or a regular file reached through
/// /proc, for writing in place. Our own stdout is written through its
/// descriptor, sharing its offset and append mode as `-o -` does; another
/// regular file is truncated first, as `cp` does.
fn open_in_place(target: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .with_context(|| format!("cannot open {} for writing", target.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot stat {}", target.display()))?;
    if !meta.is_file() {
        return Ok(file);
    }
    let stdout = io::stdout();
    if let Ok(out) = rustix::fs::fstat(stdout.as_fd()) {
        if out.st_dev == meta.dev() && out.st_ino == meta.ino() {
            let dup = stdout
                .as_fd()
                .try_clone_to_owned()
                .context("cannot duplicate stdout")?;
            return Ok(File::from(dup));
        }
    }
    file.set_len(0)
        .with_context(|| format!("cannot truncate {}", target.display()))?;
    Ok(file)
}

/// An unnamed file in `dir`, mode 0644 less the umask; `None` where the
/// filesystem or kernel has no `O_TMPFILE`, or no /proc to link it through.
fn unnamed_in(dir: &Path) -> Option<File> {
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let flags =
        rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC;
    rustix::fs::open(dir, flags, rustix::fs::Mode::from_raw_mode(0o644))
        .ok()
        .map(File::from)
}

/// A builder for temporary names starting with `prefix` (see `partial`).
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(crate::partial::suffix());
    builder
}

impl AtomicFile {
    /// Checks `target` and prepares the temporary file; call it before
    /// reading any input, so a bad destination fails at once.
    pub fn create(target: &Path) -> Result<Self> {
        Self::create_in(target, true)
    }

    /// [`AtomicFile::create`]; `unnamed: false` takes the path of
    /// filesystems without `O_TMPFILE`.
    fn create_in(target: &Path, unnamed: bool) -> Result<Self> {
        let target = match resolve(target)? {
            Resolved::Replace(path) => path,
            Resolved::InPlace => {
                return Ok(AtomicFile {
                    state: Some(State::InPlace(open_in_place(target)?)),
                    target: target.to_path_buf(),
                })
            }
        };
        let dir = parent_of(&target).to_path_buf();
        crate::partial::remove_stale(&dir);
        let state = match unnamed.then(|| unnamed_in(&dir)).flatten() {
            Some(file) => State::Unnamed { file, dir },
            None => {
                let temp = create_tracked(
                    || {
                        temp_builder(&crate::partial::prefix(""))
                            .permissions(std::fs::Permissions::from_mode(0o644))
                            .tempfile_in(&dir)
                            .with_context(|| {
                                format!("cannot create a temporary file in {}", dir.display())
                            })
                    },
                    |t| t.path(),
                )?;
                State::Named(temp)
            }
        };
        Ok(AtomicFile {
            state: Some(state),
            target,
        })
    }

    /// The writer to fill.
    pub fn writer(&mut self) -> BufWriter<&mut File> {
        let file = match &mut self.state {
            Some(State::Unnamed { file, .. }) | Some(State::InPlace(file)) => file,
            Some(State::Named(temp)) => temp.as_file_mut(),
            None => unreachable!("writer() after commit()"),
        };
        BufWriter::with_capacity(1 << 20, file)
    }

    /// Syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let temp = match self.state.take() {
            // Written in place: nothing to rename.
            Some(State::InPlace(_)) | None => return Ok(()),
            Some(State::Named(temp)) => {
                temp.as_file()
                    .sync_all()
                    .context("cannot sync the output")?;
                temp.into_temp_path()
            }
            Some(State::Unnamed { file, dir }) => {
                file.sync_all().context("cannot sync the output")?;
                let from = format!("/proc/self/fd/{}", file.as_raw_fd());
                // Until the rename, a signal removes it; a SIGKILL leaves
                // it to the next run (see `partial`).
                let linked = create_tracked(
                    || {
                        temp_builder(&crate::partial::prefix(""))
                            .make_in(&dir, |path| {
                                rustix::fs::linkat(
                                    rustix::fs::CWD,
                                    from.as_str(),
                                    rustix::fs::CWD,
                                    path,
                                    rustix::fs::AtFlags::SYMLINK_FOLLOW,
                                )
                                .map_err(io::Error::from)
                            })
                            .with_context(|| {
                                format!("cannot link the output into {}", dir.display())
                            })
                    },
                    |t| t.path(),
                )?;
                linked.into_temp_path()
            }
        };
        let temp_path = temp.to_path_buf();
        let persisted = temp.persist(&self.target);
        // Only now: a signal before the rename must still remove the file.
        forget_in_progress(&temp_path);
        persisted.map_err(|e| e.error).with_context(|| {
            format!(
                "cannot rename the output into place at {}",
                self.target.display()
            )
        })
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // NamedTempFile removes the file itself; only the bookkeeping is ours.
        if let Some(State::Named(temp)) = &self.state {
            forget_in_progress(temp.path());
        }
    }
}

/// A temporary directory in `parent` named for this process (see
/// `partial`), after removing those of dead runs; tracked for removal on
/// a signal. The caller forgets it once done.
pub fn partial_dir_in(parent: &Path) -> Result<tempfile::TempDir> {
    crate::partial::remove_stale(parent);
    create_tracked(
        || {
            temp_builder(&crate::partial::prefix("image-"))
                .tempdir_in(parent)
                .with_context(|| {
                    format!(
                        "cannot create a temporary directory in {}",
                        parent.display()
                    )
                })
        },
        |t| t.path(),
    )
}

/// Creates a temporary output and tracks it in one step: the handler's list
/// is held meanwhile, so a signal cannot fall between the two and leave the
/// output behind untracked.
fn create_tracked<T>(create: impl FnOnce() -> Result<T>, path: impl Fn(&T) -> &Path) -> Result<T> {
    let made = {
        let mut paths = IN_PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
        let made = create()?;
        paths.push(path(&made).to_path_buf());
        made
    };
    track_raw(path(&made));
    Ok(made)
}

/// Puts `path` in a free slot of [`IN_PROGRESS_RAW`] for the SIGBUS handler.
fn track_raw(path: &Path) {
    if let Ok(raw) = CString::new(path.as_os_str().as_bytes()) {
        let raw = raw.into_raw();
        // All slots taken (convert-image's many layers): that output just
        // is not removed on SIGBUS, which only `convert`'s mapping raises.
        for (i, slot) in IN_PROGRESS_RAW.iter().enumerate() {
            if slot
                .compare_exchange(
                    std::ptr::null_mut(),
                    raw,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                if let Ok(mut slots) = RAW_SLOTS.lock() {
                    slots.push((path.to_path_buf(), i));
                }
                break;
            }
        }
    }
}

/// The temporary output is gone or renamed into place: stop tracking it.
pub fn forget_in_progress(path: &Path) {
    if let Ok(mut paths) = IN_PROGRESS.lock() {
        paths.retain(|p| p != path);
    }
    if let Ok(mut slots) = RAW_SLOTS.lock() {
        slots.retain(|(p, i)| {
            if p == path {
                IN_PROGRESS_RAW[*i].store(std::ptr::null_mut(), Ordering::Release);
            }
            p != path
        });
    }
}

/// stdout for a binary blob. Refuses a terminal, and a stdout that was
/// closed: the Rust runtime puts /dev/null, opened read-write, in place of
/// a closed stdout, and the blob would silently vanish there. A
/// `>/dev/null` the user wrote is opened write-only and accepted.
pub fn binary_stdout() -> Result<BufWriter<io::StdoutLock<'static>>> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return Err(crate::UsageError(
            "refusing to write a binary blob to a terminal; use -o FILE".into(),
        )
        .into());
    }
    if stands_in_for_closed(stdout.as_fd()) {
        anyhow::bail!("stdout is closed: the blob would be lost (use -o /dev/null to discard it)");
    }
    Ok(BufWriter::with_capacity(1 << 20, stdout.lock()))
}

/// Whether `fd` is the /dev/null the runtime opened for a closed descriptor.
fn stands_in_for_closed(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    let (Ok(stat), Ok(flags)) = (rustix::fs::fstat(fd), rustix::fs::fcntl_getfl(fd)) else {
        return true;
    };
    let Ok(null) = std::fs::metadata("/dev/null") else {
        return false;
    };
    let is_null = rustix::fs::FileType::from_raw_mode(stat.st_mode)
        == rustix::fs::FileType::CharacterDevice
        && stat.st_rdev == null.rdev();
    is_null && flags & rustix::fs::OFlags::RWMODE == rustix::fs::OFlags::RDWR
}

/// The cause of a write to stdout failing because its reader went away
/// (`estargz ls … | head`): listing and printing commands then end quietly
/// with success, as `ls | head` does. Binary output does not use it: a blob
/// cut short is a failure.
#[derive(Debug)]
pub struct ReaderGone;

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reader of stdout went away")
    }
}

impl std::error::Error for ReaderGone {}

/// Whether `err` is a write to stdout whose reader went away.
pub fn reader_gone(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(|e| e.get_ref())
            .is_some_and(|inner| inner.is::<ReaderGone>())
    })
}

/// stdout for text (listings, reports, a file printed by `cat`): a broken
/// pipe becomes [`ReaderGone`].
pub struct TextOut(io::StdoutLock<'static>);

/// Locks stdout for text output.
pub fn text_stdout() -> TextOut {
    TextOut(io::stdout().lock())
}

fn mark_reader_gone(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, ReaderGone)
    } else {
        e
    }
}

impl Write for TextOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark_reader_gone)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark_reader_gone)
    }
}

/// Prints one JSON value on stdout.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    // Rendered first: serde_json's error would hide the io error's cause.
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    let mut out = text_stdout();
    out.write_all(&text)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_temporary_commit_whole_and_vanish_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        for unnamed in [true, false] {
            let mut file = AtomicFile::create_in(&target, unnamed).unwrap();
            assert_eq!(matches!(file.state, Some(State::Unnamed { .. })), unnamed);
            let names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            if unnamed {
                assert!(names.is_empty(), "{names:?}");
            } else {
                assert_eq!(names.len(), 1);
                assert!(
                    names[0].starts_with(&crate::partial::prefix("")),
                    "{names:?}"
                );
            }
            file.writer().write_all(b"whole").unwrap();
            file.commit().unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), b"whole");
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            // 0644 less the umask: never more, and always the owner's rw.
            assert_eq!(mode & 0o777 & !0o644, 0, "{mode:o}");
            assert_eq!(mode & 0o600, 0o600, "{mode:o}");

            // Dropped without commit: the target keeps its contents, no temporary stays.
            let mut failed = AtomicFile::create_in(&target, unnamed).unwrap();
            failed.writer().write_all(b"partial").unwrap();
            drop(failed);
            assert_eq!(std::fs::read(&target).unwrap(), b"whole");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
            std::fs::remove_file(&target).unwrap();
        }
    }
}
