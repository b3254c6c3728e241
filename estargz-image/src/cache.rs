//! The conversion cache: what each source layer became under given
//! options, and the converted blob itself, kept on disk under a size cap.
//!
//! An entry is keyed by the source layer's digest and a fingerprint of
//! everything that changes the converted bytes ([`fingerprint`]), the
//! source media type included. It is
//! two files in `DIR/v1/`: `KEY.blob`, the converted blob, and
//! `KEY.json`, its metadata (digest, size, diffID, TOC digest, media type
//! and annotations). Each is written to a temporary file in the same
//! directory and renamed into place, the blob first, so concurrent runs
//! never see a torn file and an entry is complete once its JSON exists.
//! The JSON file's modification time is when the entry was last used;
//! [`Cache::evict`] removes the least recently used entries until the
//! blobs fit the cap. A served blob is hashed as it is copied
//! ([`Cache::copy_blob_to`]): one that no longer matches its digest is
//! removed and reported as [`CacheError::Corrupt`], never served.
//!
//! ```
//! use estargz_core::Converter;
//! use estargz_image::cache::{fingerprint, Cache, CacheEntry};
//! use std::collections::BTreeMap;
//!
//! let dir = tempfile::tempdir()?;
//! let cache = Cache::open(dir.path(), 1 << 30)?;
//! let fp = fingerprint(&Converter::default(), "application/vnd.oci.image.layer.v1.tar", false);
//! let source = format!("sha256:{}", "a".repeat(64));
//! assert!(cache.lookup(&source, &fp)?.is_none());
//!
//! let blob = dir.path().join("converted");
//! std::fs::write(&blob, b"converted bytes")?;
//! let entry = CacheEntry {
//!     source_digest: source.clone(),
//!     fingerprint: fp.clone(),
//!     media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
//!     digest: estargz_core::Digest::of(b"converted bytes").to_string(),
//!     size: 15,
//!     diff_id: format!("sha256:{}", "b".repeat(64)),
//!     toc_digest: format!("sha256:{}", "c".repeat(64)),
//!     uncompressed_size: 1024,
//!     annotations: BTreeMap::new(),
//! };
//! cache.insert(&entry, &blob)?;
//! let hit = cache.lookup(&source, &fp)?.expect("a hit");
//! let copy = dir.path().join("copy");
//! cache.copy_blob_to(&hit, &copy)?;
//! assert_eq!(std::fs::read(&copy)?, b"converted bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use estargz_core::{Converter, Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Default size cap of the cached blobs: 10 GiB.
pub const DEFAULT_CACHE_MAX: u64 = 10 << 30;

/// Bumped whenever the converter's output bytes change for the same
/// options, so that entries made by older versions are not served.
pub const CACHE_FORMAT: u32 = 1;

/// Temporary files older than this are left over by a killed run and
/// removed by [`Cache::evict`]; younger ones may be another run's.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// What can go wrong in the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Reading or writing a file of the cache failed.
    #[error("cache {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A cached blob does not hash to the digest its entry records (or has
    /// another length); the entry was removed.
    #[error("cache {path}: corrupt blob: expected {expected}, content hashes to {actual}")]
    Corrupt {
        /// The blob file.
        path: PathBuf,
        /// The digest recorded.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The fingerprint under which source documents are kept: no layer
/// fingerprint (a hex digest) can equal it.
const DOCUMENT: &str = "source document";

/// The largest source document kept (configs are kilobytes).
const MAX_DOCUMENT: u64 = 1 << 20;

/// What a source layer became: enough to rebuild its manifest entry and
/// config diffID without the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Digest of the source layer.
    pub source_digest: String,
    /// The [`fingerprint`] of the options it was converted with.
    pub fingerprint: String,
    /// Media type of the converted blob.
    pub media_type: String,
    /// Digest of the converted blob.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its diffID.
    pub diff_id: String,
    /// Its TOC digest.
    pub toc_digest: String,
    /// Its decompressed size.
    pub uncompressed_size: u64,
    /// The annotations its descriptor gets.
    pub annotations: BTreeMap<String, String>,
}

/// What [`Cache::evict`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Source digests of the entries removed, least recently used first.
    pub entries: Vec<String>,
    /// Bytes of blobs removed.
    pub bytes: u64,
}

/// A cache directory; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

/// The fingerprint of converting a layer of `source_media_type` (which
/// says how it is decoded) with `converter`: everything that changes the
/// bytes written (compression, level, chunk sizes, name policy, limits,
/// external TOC), this crate's version and [`CACHE_FORMAT`], and whether
/// layers already eStargz or zstd:chunked are converted too
/// ([`ImageOptions::reconvert`](crate::ImageOptions::reconvert)). The
/// thread count is left out: it never changes the output.
pub fn fingerprint(converter: &Converter, source_media_type: &str, reconvert: bool) -> String {
    let options = format!("{:?}", converter.clone().with_threads(None));
    // Which layers are converted at all (`ImageOptions::reconvert`): a
    // layer passed through under one policy must not be served converted
    // from an entry another policy stored.
    let lazy = if reconvert {
        "lazy layers: converted"
    } else {
        "lazy layers: passed through"
    };
    let text = format!(
        "estargz-image {} cache format {CACHE_FORMAT}\n{source_media_type}\n{options}\n{lazy}",
        env!("CARGO_PKG_VERSION")
    );
    Digest::of(text.as_bytes()).hex().to_string()
}

/// `$XDG_CACHE_HOME/estargz`, else `$HOME/.cache/estargz` (the XDG base
/// directory default); `None` without either.
pub fn default_dir() -> Option<PathBuf> {
    let nonempty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = nonempty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("estargz"));
    }
    nonempty("HOME").map(|home| PathBuf::from(home).join(".cache/estargz"))
}

impl Cache {
    /// Opens (creating it, mode 0700, if needed) the cache at `dir`, whose
    /// blobs [`Cache::evict`] keeps under `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Cache, CacheError> {
        let root = dir.join(format!("v{CACHE_FORMAT}"));
        create_private_dir(dir)?;
        create_private_dir(&root)?;
        Ok(Cache {
            dir: root,
            max_bytes,
        })
    }

    /// The directory holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size cap.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn key(source_digest: &str, fingerprint: &str) -> String {
        Digest::of(format!("{source_digest}\n{fingerprint}").as_bytes())
            .hex()
            .to_string()
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.json")),
            self.dir.join(format!("{key}.blob")),
        )
    }

    /// The entry for `source_digest` converted with `fingerprint`, marked
    /// as just used; `None` when there is none, or its blob is gone or has
    /// the wrong length (that entry is then removed). Its blob is checked
    /// against the digest only when served.
    pub fn lookup(
        &self,
        source_digest: &str,
        fingerprint: &str,
    ) -> Result<Option<CacheEntry>, CacheError> {
        let (json, blob) = self.paths(&Cache::key(source_digest, fingerprint));
        let bytes = match fs::read(&json) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&json)(e)),
        };
        let entry: Option<CacheEntry> = serde_json::from_slice(&bytes).ok();
        let entry = entry.filter(|e| {
            e.source_digest == source_digest
                && e.fingerprint == fingerprint
                && fs::metadata(&blob).is_ok_and(|m| m.len() == e.size)
        });
        let Some(entry) = entry else {
            remove_quietly(&json);
            remove_quietly(&blob);
            return Ok(None);
        };
        // The last use is the JSON file's modification time; an entry
        // evicted meanwhile is simply not touched.
        if let Ok(f) = File::options().write(true).open(&json) {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(Some(entry))
    }

    /// Stores `entry` with its blob copied from `blob`, then evicts what
    /// exceeds the cap. A blob larger than the cap is not stored (what
    /// exceeds the cap is still evicted).
    pub fn insert(&self, entry: &CacheEntry, blob: &Path) -> Result<Evicted, CacheError> {
        let mut from = File::open(blob).map_err(io_err(blob))?;
        self.insert_from(entry, &mut from)
    }

    /// [`Cache::insert`] with the blob read from `blob` (one held in
    /// memory, say).
    pub fn insert_from(
        &self,
        entry: &CacheEntry,
        blob: &mut dyn Read,
    ) -> Result<Evicted, CacheError> {
        if entry.size > self.max_bytes {
            return self.evict();
        }
        let key = Cache::key(&entry.source_digest, &entry.fingerprint);
        let (json_path, blob_path) = self.paths(&key);
        let mut temp = self.temp_file()?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, temp.as_file_mut());
            io::copy(blob, &mut w).map_err(io_err(&blob_path))?;
            w.flush().map_err(io_err(&blob_path))?;
        }
        temp.as_file().sync_all().map_err(io_err(&blob_path))?;
        temp.persist(&blob_path)
            .map_err(|e| io_err(&blob_path)(e.error))?;
        let mut temp = self.temp_file()?;
        let json = serde_json::to_vec_pretty(entry).map_err(|e| io_err(&json_path)(e.into()))?;
        temp.write_all(&json).map_err(io_err(&json_path))?;
        temp.as_file().sync_all().map_err(io_err(&json_path))?;
        temp.persist(&json_path)
            .map_err(|e| io_err(&json_path)(e.error))?;
        self.evict()
    }

    /// A temporary file in the cache directory, removed unless persisted.
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, CacheError> {
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(io_err(&self.dir))
    }

    /// Copies `entry`'s blob to `dest` (created or truncated), hashing it
    /// as it goes; returns the bytes copied. On a digest or length
    /// mismatch the entry is removed, `dest` too, and
    /// [`CacheError::Corrupt`] returned.
    pub fn copy_blob_to(&self, entry: &CacheEntry, dest: &Path) -> Result<u64, CacheError> {
        let copied = File::create(dest).map_err(io_err(dest)).and_then(|f| {
            let mut out = BufWriter::with_capacity(1 << 20, f);
            let n = self.copy_blob_into(entry, &mut out)?;
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .map_err(io_err(dest))?;
            Ok(n)
        });
        if copied.is_err() {
            remove_quietly(dest);
        }
        copied
    }

    /// Writes `entry`'s blob to `out`, hashing it as it goes; returns the
    /// bytes written. On a digest or length mismatch the entry is
    /// removed and [`CacheError::Corrupt`] returned: what `out` got must
    /// then be thrown away.
    pub fn copy_blob_into(
        &self,
        entry: &CacheEntry,
        out: &mut dyn Write,
    ) -> Result<u64, CacheError> {
        let (json, blob) = self.paths(&Cache::key(&entry.source_digest, &entry.fingerprint));
        let (n, actual) = copy_hashed(&blob, out)?;
        if n == entry.size && actual == entry.digest {
            return Ok(n);
        }
        remove_quietly(&json);
        remove_quietly(&blob);
        Err(CacheError::Corrupt {
            path: blob,
            expected: entry.digest.clone(),
            actual,
        })
    }

    /// Where `entry`'s blob is stored (unchecked: [`Cache::copy_blob_to`]
    /// checks what it copies).
    pub fn blob_path(&self, entry: &CacheEntry) -> PathBuf {
        self.paths(&Cache::key(&entry.source_digest, &entry.fingerprint))
            .1
    }

    /// A source document (an image config) an earlier run kept with
    /// [`Cache::keep_document`], checked against `digest` and `size`;
    /// `None` when there is none or it is unsound (it is then removed).
    /// A warm rerun from a registry reads configs from here, so that it
    /// transfers only manifests.
    ///
    /// ```
    /// use estargz_image::cache::Cache;
    /// let dir = tempfile::tempdir().unwrap();
    /// let cache = Cache::open(dir.path(), 1 << 30).unwrap();
    /// let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
    /// let digest = estargz_core::Digest::of(config).to_string();
    /// assert_eq!(cache.document(&digest, config.len() as u64), None);
    /// cache.keep_document(&digest, "application/vnd.oci.image.config.v1+json", config).unwrap();
    /// assert_eq!(cache.document(&digest, config.len() as u64).as_deref(), Some(&config[..]));
    /// ```
    pub fn document(&self, digest: &str, size: u64) -> Option<Vec<u8>> {
        if size > MAX_DOCUMENT {
            return None;
        }
        let entry = self.lookup(digest, DOCUMENT).ok().flatten()?;
        if entry.digest != digest || entry.size != size {
            return None;
        }
        let mut bytes = Vec::with_capacity(size as usize);
        self.copy_blob_into(&entry, &mut bytes).ok()?;
        Some(bytes)
    }

    /// Keeps `bytes`, a source document whose digest is `digest`, for
    /// [`Cache::document`] (one larger than 1 MiB is not kept). It counts
    /// against the cap like a converted blob.
    pub fn keep_document(
        &self,
        digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Evicted, CacheError> {
        if bytes.len() as u64 > MAX_DOCUMENT {
            return Ok(Evicted::default());
        }
        let entry = CacheEntry {
            source_digest: digest.to_string(),
            fingerprint: DOCUMENT.to_string(),
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size: bytes.len() as u64,
            diff_id: String::new(),
            toc_digest: String::new(),
            uncompressed_size: 0,
            annotations: BTreeMap::new(),
        };
        self.insert_from(&entry, &mut &bytes[..])
    }

    /// Removes `entry` (a no-op if it is gone already).
    pub fn remove(&self, entry: &CacheEntry) {
        let (json, blob) = self.paths(&Cache::key(&entry.source_digest, &entry.fingerprint));
        remove_quietly(&json);
        remove_quietly(&blob);
    }

    /// Every complete entry with its last use, least recently used first.
    pub fn entries(&self) -> Result<Vec<(CacheEntry, SystemTime)>, CacheError> {
        let mut entries = Vec::new();
        for item in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let Ok(item) = item else { continue };
            let path = item.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // Another run may evict it between listing and reading.
            let (Ok(bytes), Ok(meta)) = (fs::read(&path), fs::metadata(&path)) else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<CacheEntry>(&bytes) else {
                continue;
            };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            entries.push((entry, used, path));
        }
        entries.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.2.cmp(&b.2)));
        Ok(entries.into_iter().map(|(e, t, _)| (e, t)).collect())
    }

    /// Removes least recently used entries until the blobs total at most
    /// the cap, and temporary files a killed run left. Entries another run
    /// removes meanwhile are skipped.
    pub fn evict(&self) -> Result<Evicted, CacheError> {
        self.remove_stale_temps();
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|(e, _)| e.size).sum();
        let mut evicted = Evicted::default();
        for (entry, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            self.remove(&entry);
            total = total.saturating_sub(entry.size);
            evicted.bytes += entry.size;
            evicted.entries.push(entry.source_digest);
        }
        Ok(evicted)
    }

    fn remove_stale_temps(&self) {
        let Ok(items) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for item in items.flatten() {
            let name = item.file_name();
            let stale = item
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > STALE_TEMP));
            let orphan_blob = name.to_string_lossy().ends_with(".blob")
                && !item.path().with_extension("json").exists();
            if (name.to_string_lossy().starts_with(".tmp-") || orphan_blob) && stale {
                remove_quietly(&item.path());
            }
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), CacheError> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

/// Copies `from` to `to`, returning the length and `sha256:` digest.
fn copy_hashed(from: &Path, to: &mut dyn Write) -> Result<(u64, String), CacheError> {
    let f = File::open(from).map_err(io_err(from))?;
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(from)(e)),
        };
        hasher.update(&buf[..k]);
        to.write_all(&buf[..k]).map_err(io_err(from))?;
        n += k as u64;
    }
    Ok((n, Digest::from_hasher(hasher).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, blob: &[u8]) -> CacheEntry {
        CacheEntry {
            source_digest: Digest::of(&[n]).to_string(),
            fingerprint: "fp".into(),
            media_type: "m".into(),
            digest: Digest::of(blob).to_string(),
            size: blob.len() as u64,
            diff_id: String::new(),
            toc_digest: String::new(),
            uncompressed_size: 0,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn a_damaged_document_is_not_served_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        let config = br#"{"rootfs":{"diff_ids":[]}}"#;
        let digest = Digest::of(config).to_string();
        cache.keep_document(&digest, "c", config).unwrap();
        let kept = cache.blob_path(&cache.lookup(&digest, DOCUMENT).unwrap().unwrap());
        let mut damaged = config.to_vec();
        damaged[3] ^= 1;
        fs::write(&kept, &damaged).unwrap();
        assert_eq!(cache.document(&digest, config.len() as u64), None);
        assert!(!kept.exists());
        // The wrong size asked for is not served either.
        cache.keep_document(&digest, "c", config).unwrap();
        assert_eq!(cache.document(&digest, 3), None);
        assert!(cache.document(&digest, config.len() as u64).is_some());
    }

    #[test]
    fn least_recently_used_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 25).unwrap();
        let blob = dir.path().join("b");
        std::fs::write(&blob, [7u8; 10]).unwrap();
        let (a, b, c) = (entry(1, &[7; 10]), entry(2, &[7; 10]), entry(3, &[7; 10]));
        cache.insert(&a, &blob).unwrap();
        cache.insert(&b, &blob).unwrap();
        // a used after b: b is now the least recently used.
        std::thread::sleep(Duration::from_millis(20));
        assert!(cache.lookup(&a.source_digest, "fp").unwrap().is_some());
        let evicted = cache.insert(&c, &blob).unwrap();
        assert_eq!(evicted.entries, vec![b.source_digest.clone()]);
        assert!(cache.lookup(&b.source_digest, "fp").unwrap().is_none());
        assert!(cache.lookup(&a.source_digest, "fp").unwrap().is_some());
    }

    #[test]
    fn a_corrupt_blob_is_removed_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        let blob = dir.path().join("b");
        std::fs::write(&blob, b"0123456789").unwrap();
        let e = entry(1, b"0123456789");
        cache.insert(&e, &blob).unwrap();
        let (_, stored) = cache.paths(&Cache::key(&e.source_digest, "fp"));
        std::fs::write(&stored, b"0123456780").unwrap();
        let hit = cache.lookup(&e.source_digest, "fp").unwrap().unwrap();
        let out = dir.path().join("out");
        let err = cache.copy_blob_to(&hit, &out).unwrap_err();
        assert!(matches!(err, CacheError::Corrupt { .. }), "{err}");
        assert!(!out.exists());
        assert!(cache.lookup(&e.source_digest, "fp").unwrap().is_none());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(cache.dir()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }
}
