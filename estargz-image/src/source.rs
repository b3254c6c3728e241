//! Reading an image: an OCI layout directory, or an OCI archive (a tar of
//! one, which is also what Docker ≥ 25 `docker save` writes). Every blob is
//! read through [`VerifiedReader`], so nothing is used whose content does
//! not match its digest and size.

use crate::error::{invalid, io_err, Error, Result};
use estargz_core::{Digest, ReadAt};
use estargz_registry::Registry;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest JSON document (index, manifest, config) read into memory; real
/// ones are kilobytes, and a hostile descriptor must not make us allocate
/// whatever size it claims.
pub const MAX_DOCUMENT_SIZE: u64 = 64 << 20;

/// Where an image is read from.
#[derive(Debug)]
pub struct Source {
    kind: SourceKind,
}

#[derive(Debug)]
enum SourceKind {
    Dir(PathBuf),
    /// An image in a registry: its manifests and indexes (and a made-up
    /// `index.json`) in memory, other blobs streamed when read.
    Registry(RemoteImage),
    /// Regular files of the archive: path → (data offset, length).
    Archive {
        path: PathBuf,
        entries: HashMap<String, (u64, u64)>,
    },
}

#[derive(Debug)]
struct RemoteImage {
    registry: Arc<Registry>,
    repo: String,
    files: HashMap<String, Vec<u8>>,
    /// Blobs streamed so far and their sizes, for the report.
    fetched: Mutex<BTreeMap<String, u64>>,
}

impl Source {
    /// An image of `repo` in `registry` whose documents (`index.json`,
    /// and manifests and indexes under `blobs/sha256/`) are `files`.
    pub(crate) fn remote(
        registry: Arc<Registry>,
        repo: &str,
        files: HashMap<String, Vec<u8>>,
    ) -> Source {
        Source {
            kind: SourceKind::Registry(RemoteImage {
                registry,
                repo: repo.to_string(),
                files,
                fetched: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The blobs a registry source streamed so far (each once, however
    /// often it was read), with their sizes; empty for other sources.
    pub fn fetched(&self) -> Vec<(String, u64)> {
        match &self.kind {
            SourceKind::Registry(r) => r
                .fetched
                .lock()
                .map(|f| f.iter().map(|(d, n)| (d.clone(), *n)).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Whether blobs come from a registry, as they are read.
    pub fn is_remote(&self) -> bool {
        matches!(self.kind, SourceKind::Registry(_))
    }

    /// Opens a layout directory or an archive tar, whichever `path` is.
    /// An archive is indexed once (headers only); blobs are read in place.
    pub fn open(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(io_err(path.display()))?;
        let source = if meta.is_dir() {
            Source {
                kind: SourceKind::Dir(path.to_path_buf()),
            }
        } else {
            Source {
                kind: SourceKind::Archive {
                    path: path.to_path_buf(),
                    entries: index_archive(path)?,
                },
            }
        };
        let layout = source
            .read_file("oci-layout", MAX_DOCUMENT_SIZE)?
            .ok_or_else(|| {
                invalid(
                    source.name("oci-layout"),
                    "missing: not an OCI image layout (docker save before Docker 25 writes none)",
                )
            })?;
        let layout: serde_json::Value =
            crate::oci::parse_json(&layout, &source.name("oci-layout"))?;
        if layout["imageLayoutVersion"].as_str().is_none() {
            return Err(invalid(
                source.name("oci-layout"),
                "no imageLayoutVersion string",
            ));
        }
        Ok(source)
    }

    /// How a file of the image is named in messages.
    pub fn name(&self, rel: &str) -> String {
        match &self.kind {
            SourceKind::Dir(root) => root.join(rel).display().to_string(),
            SourceKind::Archive { path, .. } => format!("{}:{rel}", path.display()),
            SourceKind::Registry(r) => match rel.strip_prefix("blobs/sha256/") {
                Some(hex) => format!("{}/{}@sha256:{hex}", r.registry.host(), r.repo),
                None => format!("{}/{} ({rel})", r.registry.host(), r.repo),
            },
        }
    }

    /// A file of the image, `None` if it does not exist, with its length.
    fn open_file(&self, rel: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match &self.kind {
            SourceKind::Dir(root) => {
                let path = root.join(rel);
                match File::open(&path) {
                    Ok(f) => {
                        let len = f.metadata().map_err(io_err(path.display()))?.len();
                        Ok(Some((Box::new(BufReader::with_capacity(1 << 20, f)), len)))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err(path.display())(e)),
                }
            }
            SourceKind::Archive { path, entries } => {
                let Some(&(offset, len)) = entries.get(rel) else {
                    return Ok(None);
                };
                let mut f = File::open(path).map_err(io_err(path.display()))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(io_err(self.name(rel)))?;
                let r = BufReader::with_capacity(1 << 20, f).take(len);
                Ok(Some((Box::new(r), len)))
            }
            SourceKind::Registry(r) => Ok(r.files.get(rel).map(|b| {
                let len = b.len() as u64;
                (
                    Box::new(io::Cursor::new(b.clone())) as Box<dyn Read + Send>,
                    len,
                )
            })),
        }
    }

    /// A whole file of the image (such as index.json), at most `max` bytes.
    pub fn read_file(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some((r, len)) = self.open_file(rel)? else {
            return Ok(None);
        };
        if len > max {
            return Err(invalid(
                self.name(rel),
                format!("{len} bytes, more than the {max} accepted for a JSON document"),
            ));
        }
        let mut buf = Vec::with_capacity(len as usize);
        r.take(max)
            .read_to_end(&mut buf)
            .map_err(io_err(self.name(rel)))?;
        Ok(Some(buf))
    }

    /// Whether the blob exists (for non-distributable layers, which may be absent).
    /// A registry is asked (`HEAD`) for blobs other than documents.
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        if let SourceKind::Registry(r) = &self.kind {
            let rel = blob_path(digest);
            if r.files.contains_key(&rel) {
                return Ok(true);
            }
            return r
                .registry
                .blob_exists(&r.repo, &digest.to_string())
                .map_err(|e| registry_error(self.name(&rel), e));
        }
        Ok(self.open_file(&blob_path(digest))?.is_some())
    }

    /// Opens a blob for reading; its digest and size are checked as it is read.
    /// `referrer` names the document whose descriptor points at it.
    pub fn open_blob(&self, digest: &Digest, size: u64, referrer: &str) -> Result<VerifiedReader> {
        let rel = blob_path(digest);
        let file = self.name(&rel);
        let opened = match &self.kind {
            SourceKind::Registry(r) if !r.files.contains_key(&rel) => {
                Some(self.stream_blob(r, digest, size, &file)?)
            }
            _ => self.open_file(&rel)?,
        };
        let (inner, len) = opened.ok_or_else(|| Error::MissingBlob {
            file: file.clone(),
            referrer: referrer.to_string(),
        })?;
        if len != size {
            return Err(Error::SizeMismatch {
                file,
                expected: size,
                actual: len,
            });
        }
        Ok(VerifiedReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
            expected: *digest,
            size,
            file,
        })
    }

    /// A registry's blob, streamed and checked by the registry client
    /// too; its length is what the registry announced, else `size`.
    fn stream_blob(
        &self,
        r: &RemoteImage,
        digest: &Digest,
        size: u64,
        file: &str,
    ) -> Result<(Box<dyn Read + Send>, u64)> {
        let reader = r
            .registry
            .blob_reader(&r.repo, &digest.to_string())
            .map_err(|e| registry_error(file, e))?;
        let len = reader.size().unwrap_or(size);
        if let Ok(mut f) = r.fetched.lock() {
            f.insert(digest.to_string(), len);
        }
        Ok((Box::new(reader), len))
    }

    /// A blob for random access (an eStargz footer and TOC), unverified:
    /// only used on blobs already read through a [`VerifiedReader`], or
    /// to decide how to read one (a registry's blob is read with range
    /// requests; `size` is its descriptor's).
    pub fn blob_at(&self, digest: &Digest, size: u64, referrer: &str) -> Result<BlobAt> {
        let rel = blob_path(digest);
        if let SourceKind::Registry(r) = &self.kind {
            return Ok(BlobAt(AtKind::Remote {
                registry: r.registry.clone(),
                repo: r.repo.clone(),
                digest: digest.to_string(),
                len: size,
            }));
        }
        let missing = || Error::MissingBlob {
            file: self.name(&rel),
            referrer: referrer.to_string(),
        };
        let (path, offset, len) = match &self.kind {
            SourceKind::Dir(root) => {
                let path = root.join(&rel);
                let len = std::fs::metadata(&path).map_err(|_| missing())?.len();
                (path, 0, len)
            }
            SourceKind::Archive { path, entries } => {
                let &(offset, len) = entries.get(&rel).ok_or_else(missing)?;
                (path.clone(), offset, len)
            }
            SourceKind::Registry(_) => return Err(missing()),
        };
        let file = File::open(&path).map_err(io_err(path.display()))?;
        Ok(BlobAt(AtKind::File { file, offset, len }))
    }

    /// A whole (small) blob, verified.
    pub fn read_blob(&self, digest: &Digest, size: u64, referrer: &str) -> Result<Vec<u8>> {
        let file = self.name(&blob_path(digest));
        if size > MAX_DOCUMENT_SIZE {
            return Err(invalid(
                referrer,
                format!("descriptor of {file} claims {size} bytes, more than the {MAX_DOCUMENT_SIZE} accepted for a JSON document"),
            ));
        }
        let mut r = self.open_blob(digest, size, referrer)?;
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf).map_err(io_err(&file))?;
        r.finish()?;
        Ok(buf)
    }
}

/// A blob as a [`ReadAt`] source: a file, a range of the archive, or a
/// registry's blob read with range requests.
#[derive(Debug)]
pub struct BlobAt(AtKind);

#[derive(Debug)]
enum AtKind {
    File {
        file: File,
        offset: u64,
        len: u64,
    },
    Remote {
        registry: Arc<Registry>,
        repo: String,
        digest: String,
        len: u64,
    },
}

impl ReadAt for BlobAt {
    fn size(&self) -> io::Result<u64> {
        match &self.0 {
            AtKind::File { len, .. } | AtKind::Remote { len, .. } => Ok(*len),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.size()?.checked_sub(offset).filter(|&l| l > 0) else {
            return Ok(0);
        };
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match &self.0 {
            AtKind::File {
                file, offset: at, ..
            } => ReadAt::read_at(file, at + offset, &mut buf[..n]),
            AtKind::Remote {
                registry,
                repo,
                digest,
                ..
            } => {
                let bytes = registry
                    .blob_range(repo, digest, offset, n as u64)
                    .map_err(io::Error::other)?;
                let k = bytes.len().min(n);
                buf[..k].copy_from_slice(&bytes[..k]);
                Ok(k)
            }
        }
    }
}

fn registry_error(what: impl std::fmt::Display, source: estargz_registry::Error) -> Error {
    Error::Registry {
        what: what.to_string(),
        source: Box::new(source),
    }
}

/// `blobs/sha256/<hex>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Reads a blob while hashing it; [`VerifiedReader::finish`] reads what is
/// left and fails unless length and digest match the descriptor.
pub struct VerifiedReader {
    inner: Box<dyn Read + Send>,
    hasher: Sha256,
    read: u64,
    expected: Digest,
    size: u64,
    file: String,
}

impl VerifiedReader {
    /// The blob's name, for messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Drains the rest and checks size and digest.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).map_err(io_err(&self.file))?;
        if self.read != self.size {
            return Err(Error::SizeMismatch {
                file: self.file,
                expected: self.size,
                actual: self.read,
            });
        }
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if actual != self.expected {
            return Err(Error::DigestMismatch {
                file: self.file,
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Paths of an archive's regular files and where their data lies. Names are
/// normalized (`./` dropped); only `oci-layout`, `index.json`,
/// `manifest.json` and `blobs/…` are ever looked up, and only by exact
/// name, so a hostile name cannot make us read anything else.
fn index_archive(path: &Path) -> Result<HashMap<String, (u64, u64)>> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut entries = HashMap::new();
    let malformed = |e: io::Error| invalid(&name, format!("not a readable tar archive: {e}"));
    for entry in archive.entries_with_seek().map_err(malformed)? {
        let entry = entry.map_err(malformed)?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let raw = entry.path_bytes();
        let Ok(p) = std::str::from_utf8(&raw) else {
            continue;
        };
        let p = p.trim_start_matches("./").to_string();
        let len = entry.header().entry_size().map_err(malformed)?;
        entries.insert(p, (entry.raw_file_position(), len));
    }
    if entries.is_empty() {
        return Err(invalid(&name, "not a tar archive, or one with no files"));
    }
    Ok(entries)
}
