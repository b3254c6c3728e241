//! Writing an image: blobs into an OCI layout directory, and that directory
//! into a deterministic archive tar.

use crate::error::{io_err, Result};
use crate::source::{blob_path, Source};
use estargz_core::Digest;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An OCI layout directory being filled.
#[derive(Debug)]
pub struct LayoutWriter {
    root: PathBuf,
    temp_counter: AtomicU64,
}

impl LayoutWriter {
    /// Prepares `root` (which must exist and be empty): `oci-layout` and `blobs/sha256/`.
    pub fn new(root: &Path) -> Result<LayoutWriter> {
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io_err(blobs.display()))?;
        let w = LayoutWriter {
            root: root.to_path_buf(),
            temp_counter: AtomicU64::new(0),
        };
        w.write_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(w)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a top-level file such as index.json.
    pub fn write_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.root.join(rel);
        fs::write(&path, bytes).map_err(io_err(path.display()))
    }

    /// Where a blob is stored.
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.root.join(blob_path(digest))
    }

    /// Stores a document; returns its digest and size.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let digest = Digest::of(bytes);
        let path = self.blob_file(&digest);
        if !path.exists() {
            fs::write(&path, bytes).map_err(io_err(path.display()))?;
        }
        Ok((digest, bytes.len() as u64))
    }

    /// Copies a blob from `source`, verifying it; a blob already stored is not copied again.
    pub fn copy_blob(
        &self,
        source: &Source,
        digest: &Digest,
        size: u64,
        referrer: &str,
    ) -> Result<()> {
        let path = self.blob_file(digest);
        if path.exists() {
            return Ok(());
        }
        let mut reader = source.open_blob(digest, size, referrer)?;
        let (temp, file) = self.temp_blob()?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let file_name = reader.file().to_string();
        io::copy(&mut reader, &mut out).map_err(io_err(&file_name))?;
        out.flush().map_err(io_err(temp.display()))?;
        drop(out);
        if let Err(e) = reader.finish() {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        self.store_temp(&temp, digest)
    }

    /// A new temporary file inside the layout, for a blob whose digest is not known yet.
    pub fn temp_blob(&self) -> Result<(PathBuf, File)> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join(format!("blobs/sha256/.partial-{n}"));
        let file = File::create(&path).map_err(io_err(path.display()))?;
        Ok((path, file))
    }

    /// Renames a finished temporary blob to its digest.
    pub fn store_temp(&self, temp: &Path, digest: &Digest) -> Result<()> {
        let path = self.blob_file(digest);
        fs::rename(temp, &path).map_err(io_err(path.display()))
    }
}

/// Writes the layout directory `dir` as an OCI archive tar: the two
/// directories, `oci-layout`, `index.json`, `manifest.json` if there is
/// one, then the blobs sorted by name, with fixed
/// owner, mode and time, so the same layout always gives the same bytes.
/// `out_name` names `out` in errors (its path, say).
pub fn write_archive(dir: &Path, out: impl Write, out_name: &str) -> Result<()> {
    let mut files = Vec::new();
    for name in ["oci-layout", "index.json", "manifest.json"] {
        if dir.join(name).is_file() {
            files.push(name.to_string());
        }
    }
    let blob_dir = dir.join("blobs/sha256");
    let mut blobs = Vec::new();
    for entry in fs::read_dir(&blob_dir).map_err(io_err(blob_dir.display()))? {
        let entry = entry.map_err(io_err(blob_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            blobs.push(format!("blobs/sha256/{name}"));
        }
    }
    blobs.sort();

    let mut tar = tar::Builder::new(WriteFailures {
        inner: out,
        failed: false,
    });
    let archive_err = io_err(out_name);
    for d in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, d, io::empty())
            .map_err(io_err(out_name))?;
    }
    for rel in files.iter().chain(&blobs) {
        let path = dir.join(rel);
        let f = File::open(&path).map_err(io_err(path.display()))?;
        let len = f.metadata().map_err(io_err(path.display()))?.len();
        let mut h = header(tar::EntryType::Regular, 0o644, len);
        let appended = tar.append_data(&mut h, rel, io::BufReader::with_capacity(1 << 20, f));
        // The copy reads the blob and writes the archive: blame the side that failed.
        if let Err(e) = appended {
            return Err(if tar.get_ref().failed {
                io_err(out_name)(e)
            } else {
                io_err(path.display())(e)
            });
        }
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(archive_err)
}

/// A writer that remembers whether a write failed, to tell an error
/// writing the archive from one reading a blob into it.
struct WriteFailures<W> {
    inner: W,
    failed: bool,
}

impl<W: Write> Write for WriteFailures<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf);
        self.note(&written);
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = self.inner.flush();
        self.note(&flushed);
        flushed
    }
}

impl<W> WriteFailures<W> {
    fn note<T>(&mut self, result: &io::Result<T>) {
        // `write_all` retries an interrupted write: that one did not fail.
        self.failed |= result
            .as_ref()
            .is_err_and(|e| e.kind() != io::ErrorKind::Interrupted);
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails as a full disk does.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("No space left on device"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_names_the_archive_not_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let layout = LayoutWriter::new(dir.path()).unwrap();
        let (digest, _) = layout.write_blob(&vec![7u8; 100_000]).unwrap();
        let blob = layout.blob_file(&digest);
        // Past the headers before the blob's data: the failure is inside its copy.
        for room in [4096, 3 * 512] {
            let err = write_archive(dir.path(), Full { room }, "out.tar").unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("out.tar: "), "{text}");
            assert!(!text.contains(&*blob.to_string_lossy()), "{text}");
        }
        // A blob that cannot be read is still the blob's fault.
        std::fs::remove_file(&blob).unwrap();
        std::fs::create_dir(&blob).unwrap();
        let err = write_archive(dir.path(), io::sink(), "out.tar").unwrap_err();
        assert!(err.to_string().contains(&*blob.to_string_lossy()), "{err}");
    }
}
