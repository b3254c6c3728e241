//! Where results go: atomic files and stdout.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// A file written next to its final name and renamed into place only on
/// success, so a failed or interrupted run leaves no partial output.
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file in `target`'s directory.
    pub fn create(target: &Path) -> Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".estargz-")
            .suffix(".partial")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        Ok(AtomicFile {
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The writer to fill.
    pub fn writer(&mut self) -> BufWriter<&mut File> {
        BufWriter::with_capacity(1 << 20, self.temp.as_file_mut())
    }

    /// Syncs and renames the file into place.
    pub fn commit(self) -> Result<()> {
        let file = self.temp.as_file();
        file.sync_all().context("cannot sync the output")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Temporary files are private; the result is an ordinary file.
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        self.temp.persist(&self.target).with_context(|| {
            format!(
                "cannot rename the output into place at {}",
                self.target.display()
            )
        })?;
        Ok(())
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
