//! Writing an image: blobs into an OCI layout directory, or held for an
//! upload ([`LayoutWriter::held`]); a layout directory into a
//! deterministic archive tar.

use crate::driver::BlobCheck;
use crate::error::{io_err, Result};
use crate::held::{HeldBlob, MemoryPool};
use crate::source::{blob_path, Source};
use estargz_core::Digest;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where a converted image goes: an OCI layout directory being filled,
/// or, for a registry, memory and a spool ([`LayoutWriter::held`]).
#[derive(Debug)]
pub struct LayoutWriter {
    kind: OutKind,
    temp_counter: AtomicU64,
}

#[derive(Debug)]
enum OutKind {
    Dir(PathBuf),
    Held(Held),
}

/// An image held for an upload: documents in memory, blobs as
/// [`HeldBlob`]s.
#[derive(Debug)]
struct Held {
    pool: Arc<MemoryPool>,
    spool_dir: PathBuf,
    obtainable: Option<BlobCheck>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    blobs: Mutex<HashMap<Digest, Arc<Stored>>>,
}

#[derive(Debug)]
enum Stored {
    Bytes(Vec<u8>),
    Blob(HeldBlob),
}

impl LayoutWriter {
    /// Prepares `root` (which must exist and be empty): `oci-layout` and `blobs/sha256/`.
    pub fn new(root: &Path) -> Result<LayoutWriter> {
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io_err(blobs.display()))?;
        let w = LayoutWriter::existing(root);
        w.write_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(w)
    }

    /// A layout directory written before.
    pub(crate) fn existing(root: &Path) -> LayoutWriter {
        LayoutWriter {
            kind: OutKind::Dir(root.to_path_buf()),
            temp_counter: AtomicU64::new(0),
        }
    }

    /// An image held for an upload ([`push_image`](crate::registry::push_image)):
    /// documents in memory, blobs in memory from `pool`, spooled to
    /// unnamed files in `spool_dir` beyond it. Blobs for which
    /// `obtainable` says `true` (the destination has them, or can mount
    /// them) are not copied from the source at all.
    ///
    /// ```
    /// use estargz_image::{held::MemoryPool, LayoutWriter};
    ///
    /// let out = LayoutWriter::held(MemoryPool::new(64 << 20), &std::env::temp_dir(), None);
    /// let (digest, _) = out.write_blob(b"{}")?;
    /// assert!(out.has_blob(&digest) && out.root().is_none());
    /// # Ok::<(), estargz_image::Error>(())
    /// ```
    pub fn held(
        pool: Arc<MemoryPool>,
        spool_dir: &Path,
        obtainable: Option<BlobCheck>,
    ) -> LayoutWriter {
        LayoutWriter {
            kind: OutKind::Held(Held {
                pool,
                spool_dir: spool_dir.to_path_buf(),
                obtainable,
                files: Mutex::new(HashMap::new()),
                blobs: Mutex::new(HashMap::new()),
            }),
            temp_counter: AtomicU64::new(0),
        }
    }

    /// The directory; `None` for a held image.
    pub fn root(&self) -> Option<&Path> {
        match &self.kind {
            OutKind::Dir(root) => Some(root),
            OutKind::Held(_) => None,
        }
    }

    /// The memory budget of a held image's blobs.
    pub fn memory_pool(&self) -> Option<&Arc<MemoryPool>> {
        match &self.kind {
            OutKind::Dir(_) => None,
            OutKind::Held(h) => Some(&h.pool),
        }
    }

    /// Writes a top-level file such as index.json.
    pub fn write_file(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        match &self.kind {
            OutKind::Dir(root) => {
                let path = root.join(rel);
                fs::write(&path, bytes).map_err(io_err(path.display()))
            }
            OutKind::Held(h) => {
                lock(&h.files).insert(rel.to_string(), bytes.to_vec());
                Ok(())
            }
        }
    }

    /// A top-level file written before, `None` if there is none.
    pub fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match &self.kind {
            OutKind::Dir(root) => {
                let path = root.join(rel);
                match fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(path.display())(e)),
                }
            }
            OutKind::Held(h) => Ok(lock(&h.files).get(rel).cloned()),
        }
    }

    fn blob_file(root: &Path, digest: &Digest) -> PathBuf {
        root.join(blob_path(digest))
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        match &self.kind {
            OutKind::Dir(root) => Self::blob_file(root, digest).is_file(),
            OutKind::Held(h) => lock(&h.blobs).contains_key(digest),
        }
    }

    /// A stored blob and its length, `None` if it is not stored.
    pub fn open_blob(&self, digest: &Digest) -> Result<Option<(StoredReader, u64)>> {
        match &self.kind {
            OutKind::Dir(root) => {
                let path = Self::blob_file(root, digest);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io_err(path.display())(e)),
                };
                let len = file.metadata().map_err(io_err(path.display()))?.len();
                let reader = BufReader::with_capacity(1 << 20, file);
                Ok(Some((StoredReader(ReaderKind::File(reader)), len)))
            }
            OutKind::Held(h) => Ok(lock(&h.blobs)
                .get(digest)
                .map(|s| (StoredReader(ReaderKind::Held(s.clone(), 0)), s.len()))),
        }
    }

    /// A stored blob for random access, `None` if it is not stored.
    pub fn blob_at(&self, digest: &Digest) -> Result<Option<StoredAt>> {
        match &self.kind {
            OutKind::Dir(root) => {
                let path = Self::blob_file(root, digest);
                match File::open(&path) {
                    Ok(f) => Ok(Some(StoredAt(AtKind::File(f)))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(path.display())(e)),
                }
            }
            OutKind::Held(h) => Ok(lock(&h.blobs)
                .get(digest)
                .map(|s| StoredAt(AtKind::Held(s.clone())))),
        }
    }

    /// Stores a document; returns its digest and size.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let digest = Digest::of(bytes);
        match &self.kind {
            OutKind::Dir(root) => {
                let path = Self::blob_file(root, &digest);
                if !path.exists() {
                    fs::write(&path, bytes).map_err(io_err(path.display()))?;
                }
            }
            OutKind::Held(h) => {
                lock(&h.blobs)
                    .entry(digest)
                    .or_insert_with(|| Arc::new(Stored::Bytes(bytes.to_vec())));
            }
        }
        Ok((digest, bytes.len() as u64))
    }

    /// Copies a blob from `source`, verifying it; a blob already stored
    /// is not copied again, nor one a held image can get without it.
    pub fn copy_blob(
        &self,
        source: &Source,
        digest: &Digest,
        size: u64,
        referrer: &str,
    ) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        if let OutKind::Held(h) = &self.kind {
            if h.obtainable
                .as_ref()
                .is_some_and(|c| (c.0)(&digest.to_string()))
            {
                return Ok(());
            }
        }
        let mut reader = source.open_blob(digest, size, referrer)?;
        let mut blob = self.new_blob()?;
        let file_name = reader.file().to_string();
        io::copy(&mut reader, &mut blob).map_err(io_err(&file_name))?;
        reader.finish()?;
        self.store(blob, digest)?;
        Ok(())
    }

    /// A blob to write whose digest is not known yet; [`LayoutWriter::store`]
    /// keeps it, dropping it discards it.
    pub fn new_blob(&self) -> Result<NewBlob> {
        match &self.kind {
            OutKind::Dir(root) => {
                let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
                let path = root.join(format!("blobs/sha256/.partial-{n}"));
                let file = File::create(&path).map_err(io_err(path.display()))?;
                let out = BufWriter::with_capacity(1 << 20, file);
                Ok(NewBlob(NewKind::File { path, out }))
            }
            OutKind::Held(h) => Ok(NewBlob(NewKind::Held(HeldBlob::new(
                h.pool.clone(),
                &h.spool_dir,
            )))),
        }
    }

    /// Keeps a finished blob under its digest; returns the bytes spooled
    /// (of a held one).
    pub fn store(&self, mut blob: NewBlob, digest: &Digest) -> Result<u64> {
        match (std::mem::replace(&mut blob.0, NewKind::Done), &self.kind) {
            (NewKind::File { path, out }, OutKind::Dir(root)) => {
                let stored = out
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all());
                let target = Self::blob_file(root, digest);
                let renamed = stored
                    .map_err(io_err(path.display()))
                    .and_then(|()| fs::rename(&path, &target).map_err(io_err(target.display())));
                if renamed.is_err() {
                    let _ = fs::remove_file(&path);
                }
                renamed.map(|()| 0)
            }
            (NewKind::Held(held), OutKind::Held(h)) => {
                let spooled = held.spooled();
                lock(&h.blobs)
                    .entry(*digest)
                    .or_insert_with(|| Arc::new(Stored::Blob(held)));
                Ok(spooled)
            }
            _ => Ok(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A blob being written ([`LayoutWriter::new_blob`]).
#[derive(Debug)]
pub struct NewBlob(NewKind);

#[derive(Debug)]
enum NewKind {
    File { path: PathBuf, out: BufWriter<File> },
    Held(HeldBlob),
    Done,
}

impl Write for NewBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            NewKind::File { out, .. } => out.write(buf),
            NewKind::Held(h) => h.write(buf),
            NewKind::Done => Err(io::Error::other("blob already stored")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            NewKind::File { out, .. } => out.flush(),
            _ => Ok(()),
        }
    }
}

impl Drop for NewBlob {
    fn drop(&mut self) {
        if let NewKind::File { path, .. } = &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// A stored blob for random access ([`LayoutWriter::blob_at`]).
#[derive(Debug)]
pub struct StoredAt(AtKind);

#[derive(Debug)]
enum AtKind {
    File(File),
    Held(Arc<Stored>),
}

impl estargz_core::ReadAt for StoredAt {
    fn size(&self) -> io::Result<u64> {
        match &self.0 {
            AtKind::File(f) => Ok(f.metadata()?.len()),
            AtKind::Held(s) => Ok(s.len()),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match &self.0 {
            AtKind::File(f) => estargz_core::ReadAt::read_at(f, offset, buf),
            AtKind::Held(s) => s.read_at(offset, buf),
        }
    }
}

impl Stored {
    fn len(&self) -> u64 {
        match self {
            Stored::Bytes(b) => b.len() as u64,
            Stored::Blob(b) => b.len(),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stored::Bytes(b) => {
                let from = usize::try_from(offset)
                    .ok()
                    .and_then(|o| b.get(o..))
                    .unwrap_or_default();
                let n = from.len().min(buf.len());
                buf[..n].copy_from_slice(&from[..n]);
                Ok(n)
            }
            Stored::Blob(b) => estargz_core::ReadAt::read_at(b, offset, buf),
        }
    }
}

/// A stored blob read front to back ([`LayoutWriter::open_blob`]).
#[derive(Debug)]
pub struct StoredReader(ReaderKind);

#[derive(Debug)]
enum ReaderKind {
    File(BufReader<File>),
    /// Held, read from this offset.
    Held(Arc<Stored>, u64),
}

impl Read for StoredReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            ReaderKind::File(f) => f.read(buf),
            ReaderKind::Held(stored, offset) => {
                let n = stored.read_at(*offset, buf)?;
                *offset += n as u64;
                Ok(n)
            }
        }
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

    fn read_all(out: &LayoutWriter, digest: &Digest) -> Vec<u8> {
        let (mut r, len) = out.open_blob(digest).unwrap().expect("stored");
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, len);
        bytes
    }

    #[test]
    fn new_blobs_are_kept_when_stored_and_gone_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = tempfile::tempdir().unwrap();
        let data = vec![5u8; 3 << 20];
        let digest = Digest::of(&data);
        let layout = LayoutWriter::new(dir.path()).unwrap();
        // 1 MiB of memory: the held blob spools the rest.
        let held = LayoutWriter::held(MemoryPool::new(1 << 20), spool.path(), None);
        for (out, spooled) in [(&layout, 0), (&held, 2 << 20)] {
            let mut dropped = out.new_blob().unwrap();
            dropped.write_all(b"half a blob").unwrap();
            drop(dropped);
            let mut blob = out.new_blob().unwrap();
            blob.write_all(&data).unwrap();
            assert!(!out.has_blob(&digest));
            assert_eq!(out.store(blob, &digest).unwrap(), spooled);
            assert!(out.has_blob(&digest));
            assert_eq!(read_all(out, &digest), data);
        }
        let names: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            [digest.hex().to_string().as_str()],
            "no partial file left"
        );
        assert_eq!(fs::read_dir(spool.path()).unwrap().count(), 0);
        assert!(held.root().is_none() && held.memory_pool().is_some());
    }

    #[test]
    fn a_write_error_names_the_archive_not_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let layout = LayoutWriter::new(dir.path()).unwrap();
        let (digest, _) = layout.write_blob(&vec![7u8; 100_000]).unwrap();
        let blob = dir.path().join(blob_path(&digest));
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
