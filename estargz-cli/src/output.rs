//! Where results go: atomic files and stdout.

use anyhow::{Context, Result};
use std::ffi::{c_char, CString};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

/// Temporary files in progress, removed if the process is interrupted.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The same paths as C strings, for a signal handler that can neither lock
/// nor allocate (SIGBUS from a mapped input, see `mapped`). The strings are
/// leaked on purpose: a handler may read a slot at any moment, so what a
/// slot pointed to must stay valid. A few dozen bytes per output.
pub static IN_PROGRESS_RAW: [AtomicPtr<c_char>; 8] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; 8];
/// Which slot of [`IN_PROGRESS_RAW`] holds which path.
static RAW_SLOTS: Mutex<Vec<(PathBuf, usize)>> = Mutex::new(Vec::new());

/// Run by the signal handler before it exits: what a command that writes in
/// place (`unpack -C`) has to say about what it leaves.
pub static ON_SIGNAL: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// On SIGINT, SIGTERM or SIGHUP: remove every temporary output, then exit
/// with 130 (the shell's code for an interrupted command).
pub fn remove_partial_outputs_on_signal() {
    let _ = ctrlc::set_handler(|| {
        if let Some(say) = ON_SIGNAL.get() {
            say();
        }
        if let Ok(paths) = IN_PROGRESS.lock() {
            for p in paths.iter() {
                // Directories too: convert-image builds its output in one.
                if std::fs::remove_file(p).is_err() {
                    let _ = std::fs::remove_dir_all(p);
                }
            }
        }
        std::process::exit(130);
    });
}

/// A file written next to its final name and renamed into place only on
/// success, so a failed or interrupted run leaves no partial output.
///
/// A target that exists and is not a regular file (`/dev/null`, a FIFO, a
/// terminal) is written in place instead: renaming over it would replace
/// the device node with an ordinary file.
pub struct AtomicFile {
    /// `None` once committed.
    temp: Option<tempfile::NamedTempFile>,
    /// The opened target when it is not a regular file.
    direct: Option<File>,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file in `target`'s directory.
    pub fn create(target: &Path) -> Result<Self> {
        if std::fs::metadata(target).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .with_context(|| format!("cannot open {} for writing", target.display()))?;
            return Ok(AtomicFile {
                temp: None,
                direct: Some(file),
                target: target.to_path_buf(),
            });
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".estargz-")
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        track_in_progress(temp.path());
        Ok(AtomicFile {
            temp: Some(temp),
            direct: None,
            target: target.to_path_buf(),
        })
    }

    /// The writer to fill.
    pub fn writer(&mut self) -> BufWriter<&mut File> {
        let file = match (&mut self.temp, &mut self.direct) {
            (Some(temp), _) => temp.as_file_mut(),
            (None, Some(direct)) => direct,
            (None, None) => unreachable!("writer() after commit()"),
        };
        BufWriter::with_capacity(1 << 20, file)
    }

    /// Syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let Some(temp) = self.temp.take() else {
            // Written in place: nothing to rename.
            return Ok(());
        };
        let temp_path = temp.path().to_path_buf();
        let file = temp.as_file();
        file.sync_all().context("cannot sync the output")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Temporary files are private; the result is an ordinary file.
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        let persisted = temp.persist(&self.target);
        // Only now: a signal before the rename must still remove the file.
        forget_in_progress(&temp_path);
        persisted.with_context(|| {
            format!(
                "cannot rename the output into place at {}",
                self.target.display()
            )
        })?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // NamedTempFile removes the file itself; only the bookkeeping is ours.
        if let Some(temp) = &self.temp {
            forget_in_progress(temp.path());
        }
    }
}

/// Registers a temporary output (file or directory) for removal on a signal.
pub fn track_in_progress(path: &Path) {
    if let Ok(mut paths) = IN_PROGRESS.lock() {
        paths.push(path.to_path_buf());
    }
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

/// Refuses to write binary data to a terminal.
pub fn binary_stdout() -> Result<BufWriter<io::StdoutLock<'static>>> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return Err(crate::UsageError(
            "refusing to write a binary blob to a terminal; use -o FILE".into(),
        )
        .into());
    }
    Ok(BufWriter::with_capacity(1 << 20, stdout.lock()))
}

/// Prints one JSON value on stdout.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
