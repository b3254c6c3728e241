//! Real layers for the comparison: turns images and layer blobs into the
//! plain layer tars `compare.sh` runs.
//!
//! `compare.sh` needs one uncompressed `NAME.tar` per layer, because that is
//! what the reference's `lossless` writer and `pigz` take. Real layers come
//! as images (an OCI layout directory, an OCI archive, Docker ≥ 25
//! `docker save` output) or as loose layer blobs (tar, tar+gzip, tar+zstd,
//! whatever their file names say). An [`Importer`] takes any of these and
//! writes each distinct layer once, decompressed, into a destination
//! directory:
//!
//! - an image's layers become `STEM-K.tar`, K counting its distinct layers
//!   in the order the index and manifests list them (base layer first);
//!   blobs are read through [`Source`], so each one is checked against its
//!   digest; layers that are already eStargz, non-distributable layers and
//!   non-layer blobs (attestations, signatures) are skipped;
//! - a loose blob becomes `STEM.tar`, its format sniffed from its first
//!   bytes, not from its name; with [`Options::link`] a plain tar is
//!   symlinked instead of copied;
//! - a directory that is not an image layout is taken file by file (not
//!   recursively); files there that are neither a layer nor an image are
//!   skipped, where a file named on the command line would be an error.
//!
//! Layers are told apart by diffID (the SHA-256 of the uncompressed tar): a
//! layer met twice, in two images or as a blob and in an image, is written
//! once. Layers smaller than [`Options::min_size`] are skipped, since CPU
//! times of a few clock ticks make meaningless ratios.
//!
//! ```no_run
//! use estargz_benches::import::{Importer, Options};
//! use std::path::Path;
//!
//! let mut importer = Importer::new(Path::new("corpus"), Options { link: true, min_size: 1 << 20 })?;
//! importer.add(Path::new("images/app.oci.tar"))?;   // an OCI archive
//! importer.add(Path::new("layers"))?;               // a directory of blobs
//! for layer in importer.records() {
//!     println!("{} {:?}", layer.source, layer.outcome);
//! }
//! # Ok::<(), String>(())
//! ```

use estargz_core::internals::{Header, BLOCK};
use estargz_core::{Digest, ANNOTATION_TOC_DIGEST};
use estargz_image::driver::MAX_INDEX_DEPTH;
use estargz_image::oci::{
    kind_of, layer_kind, parse_digest, parse_json, ImageIndex, Kind, LayerKind, Manifest,
};
use estargz_image::source::MAX_DOCUMENT_SIZE;
use estargz_image::Source;
use flate2::read::MultiGzDecoder;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Symlink a loose plain-tar layer into the destination instead of
    /// copying it (images' layers and compressed blobs are always written).
    pub link: bool,
    /// Skip layers whose uncompressed tar is smaller than this many bytes.
    pub min_size: u64,
}

/// What became of one layer (or one file that turned out not to be one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Decompressed into `NAME.tar`.
    Written(String),
    /// Symlinked as `NAME.tar` ([`Options::link`]).
    Linked(String),
    /// The same tar as the layer already imported as `NAME.tar`.
    Duplicate(String),
    /// Smaller than [`Options::min_size`].
    TooSmall,
    /// Not imported, and why.
    Skipped(String),
}

/// One line of the import's account.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where the layer came from: a file, or `IMAGE:blobs/sha256/…`.
    pub source: String,
    /// The uncompressed tar's size, when it was read.
    pub size: Option<u64>,
    /// The uncompressed tar's SHA-256, when it was read.
    pub diff_id: Option<Digest>,
    /// What was done with it.
    pub outcome: Outcome,
}

/// Imports images and blobs into one destination directory.
#[derive(Debug)]
pub struct Importer {
    dest: PathBuf,
    options: Options,
    /// diffID → name of the layer imported with it.
    seen: HashMap<Digest, String>,
    /// Names given out in this run.
    names: HashSet<String>,
    records: Vec<Record>,
}

/// A decompressed layer not yet kept.
struct Pending {
    temp: tempfile::NamedTempFile,
    size: u64,
    diff_id: Digest,
}

/// What a file's first bytes say it is.
enum Format {
    Gzip,
    Zstd,
    Tar,
}

/// Recognizes gzip, zstd (a frame, or the skippable frame zstd:chunked
/// starts with) and tar (a header block with a valid checksum, or the zero
/// block an empty tar is) from up to one block of a stream's start.
fn sniff(head: &[u8]) -> Option<Format> {
    match head {
        [0x1f, 0x8b, ..] => Some(Format::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Format::Zstd),
        [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50 => Some(Format::Zstd),
        _ => {
            let block: &[u8; BLOCK] = head.try_into().ok()?;
            let header = Header(block);
            (header.is_zero() || header.verify_checksum(true).is_ok()).then_some(Format::Tar)
        }
    }
}

/// Reads up to one block from `r` (fewer only at its end).
fn read_head(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(BLOCK);
    r.by_ref().take(BLOCK as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// The layer tar inside `r`, decompressed, or why it is not one.
fn open_layer<'a>(mut r: Box<dyn Read + 'a>) -> io::Result<Result<Box<dyn Read + 'a>, String>> {
    let head = read_head(&mut r)?;
    let whole: Box<dyn Read + 'a> = Box::new(Cursor::new(head.clone()).chain(r));
    let mut inner: Box<dyn Read + 'a> = match sniff(&head) {
        Some(Format::Tar) => return Ok(Ok(whole)),
        Some(Format::Gzip) => Box::new(MultiGzDecoder::new(whole)),
        Some(Format::Zstd) => Box::new(zstd::stream::read::Decoder::new(whole)?),
        None => return Ok(Err("neither a tar nor a gzip or zstd stream".into())),
    };
    let head = read_head(&mut inner)?;
    if !matches!(sniff(&head), Some(Format::Tar)) {
        return Ok(Err("decompresses to something that is not a tar".into()));
    }
    Ok(Ok(Box::new(Cursor::new(head).chain(inner))))
}

/// A file name made into a layer name: compression and tar suffixes
/// dropped, a digest shortened to 12 hex digits, characters other than
/// letters, digits, `.`, `_` and `-` replaced by `_`.
pub fn stem_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "layer".into());
    let mut stem = name.as_str();
    for suffix in [".gz", ".tgz", ".zst", ".tzst", ".tar", ".oci", ".esgz"] {
        stem = stem.strip_suffix(suffix).unwrap_or(stem);
    }
    let stem = stem.strip_prefix("sha256:").unwrap_or(stem);
    let stem = if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
        &stem[..12]
    } else {
        stem
    };
    let clean: String = stem
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        format!("layer{clean}")
    } else {
        clean
    }
}

/// Hashes what passes through, and counts it.
struct Tee<W> {
    out: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn io_err(file: impl std::fmt::Display) -> impl Fn(io::Error) -> String {
    move |e| format!("{file}: {e}")
}

impl Importer {
    /// An importer writing into `dest`, created if missing. Names already
    /// taken there are never overwritten.
    pub fn new(dest: &Path, options: Options) -> Result<Importer, String> {
        std::fs::create_dir_all(dest).map_err(io_err(dest.display()))?;
        Ok(Importer {
            dest: dest.to_path_buf(),
            options,
            seen: HashMap::new(),
            names: HashSet::new(),
            records: Vec::new(),
        })
    }

    /// Everything imported or passed over so far, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Imports `path`: an image (layout directory or archive), a layer blob,
    /// or a directory of those. An error names the file it is about; layers
    /// imported before it stay imported (each is complete).
    pub fn add(&mut self, path: &Path) -> Result<(), String> {
        self.add_path(path, true)
    }

    fn add_path(&mut self, path: &Path, named: bool) -> Result<(), String> {
        let meta = std::fs::metadata(path).map_err(io_err(path.display()))?;
        if meta.is_dir() {
            if path.join("oci-layout").exists() {
                let source = Source::open(path).map_err(|e| e.to_string())?;
                return self.add_image(&source, &stem_of(path));
            }
            if !named {
                return self.skip(
                    path.display().to_string(),
                    "a directory inside a directory (not searched)",
                );
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io_err(path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<io::Result<_>>()
                .map_err(io_err(path.display()))?;
            entries.sort();
            for entry in entries {
                if !entry
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    self.add_path(&entry, false)?;
                }
            }
            return Ok(());
        }
        if !meta.is_file() {
            return self.refuse(path, named, "not a regular file");
        }
        let mut file = File::open(path).map_err(io_err(path.display()))?;
        let head = read_head(&mut file).map_err(io_err(path.display()))?;
        if matches!(sniff(&head), Some(Format::Tar)) {
            match archive_kind(path) {
                ArchiveKind::Oci => {
                    let source = Source::open(path).map_err(|e| e.to_string())?;
                    return self.add_image(&source, &stem_of(path));
                }
                ArchiveKind::OldDocker => {
                    let why = "a `docker save` archive from before Docker 25, which is not an OCI \
                               archive: make it one with `skopeo copy docker-archive:FILE oci-archive:NEW.tar`";
                    return self.refuse(path, named, why);
                }
                ArchiveKind::Layer if self.options.link => return self.link(path, meta.len()),
                ArchiveKind::Layer => {}
            }
        }
        file.rewind().map_err(io_err(path.display()))?;
        let reader = Box::new(BufReader::with_capacity(1 << 20, file));
        match open_layer(reader).map_err(io_err(path.display()))? {
            Ok(tar) => {
                let source = path.display().to_string();
                let pending = self.decompress(tar, &source)?;
                self.keep(pending, &stem_of(path), source)
            }
            Err(why) => self.refuse(path, named, &why),
        }
    }

    /// A file that is not a layer: an error when it was named, else skipped.
    fn refuse(&mut self, path: &Path, named: bool, why: &str) -> Result<(), String> {
        if named {
            Err(format!("{}: {why}", path.display()))
        } else {
            self.skip(path.display().to_string(), why)
        }
    }

    fn skip(&mut self, source: String, why: &str) -> Result<(), String> {
        self.records.push(Record {
            source,
            size: None,
            diff_id: None,
            outcome: Outcome::Skipped(why.to_string()),
        });
        Ok(())
    }

    /// Every distinct layer of the image, in index and manifest order.
    fn add_image(&mut self, source: &Source, stem: &str) -> Result<(), String> {
        let index_name = source.name("index.json");
        let raw = source
            .read_file("index.json", MAX_DOCUMENT_SIZE)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{index_name}: missing"))?;
        let index: ImageIndex = parse_json(&raw, &index_name).map_err(|e| e.to_string())?;
        let mut layers = Vec::new();
        let mut visited = HashSet::new();
        for m in &index.manifests {
            collect_layers(source, m, &index_name, 0, &mut visited, &mut layers)?;
        }
        for (k, (layer, referrer)) in layers.iter().enumerate() {
            let digest = parse_digest(&layer.digest, referrer).map_err(|e| e.to_string())?;
            let file = source.name(&estargz_image::source::blob_path(&digest));
            let why = match layer_kind(&layer.media_type) {
                _ if layer
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(ANNOTATION_TOC_DIGEST)) =>
                {
                    Some("already eStargz".to_string())
                }
                LayerKind::Convertible | LayerKind::Zstd => None,
                LayerKind::NonDistributable => Some("non-distributable layer".to_string()),
                LayerKind::Other => Some(format!("not a layer: {}", layer.media_type)),
            };
            if let Some(why) = why {
                self.skip(file, &why)?;
                continue;
            }
            let mut blob = source
                .open_blob(&digest, layer.size, referrer)
                .map_err(|e| e.to_string())?;
            let tar = match open_layer(Box::new(&mut blob)).map_err(io_err(&file))? {
                Ok(tar) => tar,
                Err(why) => return Err(format!("{file}: {why}")),
            };
            let pending = self.decompress(tar, &file)?;
            // Nothing is kept from a blob that does not match its digest.
            blob.finish().map_err(|e| e.to_string())?;
            self.keep(pending, &format!("{stem}-{}", k + 1), file)?;
        }
        Ok(())
    }

    /// Decompresses `tar` into a temporary file in the destination,
    /// hashing it on the way.
    fn decompress(&self, mut tar: Box<dyn Read + '_>, source: &str) -> Result<Pending, String> {
        let temp = tempfile::Builder::new()
            .prefix(".import-")
            .suffix(".tmp")
            .tempfile_in(&self.dest)
            .map_err(io_err(self.dest.display()))?;
        let (size, diff_id) = {
            let mut tee = Tee {
                out: io::BufWriter::with_capacity(1 << 20, temp.as_file()),
                hasher: Sha256::new(),
                len: 0,
            };
            io::copy(&mut tar, &mut tee).map_err(io_err(source))?;
            tee.flush().map_err(io_err(temp.path().display()))?;
            (tee.len, Digest::from_hasher(tee.hasher))
        };
        Ok(Pending {
            temp,
            size,
            diff_id,
        })
    }

    /// Keeps a decompressed layer under a new name, unless it is a
    /// duplicate or too small (the temporary file then goes).
    fn keep(&mut self, pending: Pending, stem: &str, source: String) -> Result<(), String> {
        let Pending {
            temp,
            size,
            diff_id,
        } = pending;
        self.admit(source, size, diff_id, stem, Outcome::Written, |target| {
            temp.persist_noclobber(target)
                .map(drop)
                .map_err(|e| format!("{}: {}", target.display(), e.error))
        })
    }

    /// A plain tar, symlinked after hashing it.
    fn link(&mut self, path: &Path, size: u64) -> Result<(), String> {
        let source = path.display().to_string();
        let mut hasher = Sha256::new();
        let file = File::open(path).map_err(io_err(&source))?;
        io::copy(&mut BufReader::with_capacity(1 << 20, file), &mut hasher)
            .map_err(io_err(&source))?;
        let diff_id = Digest::from_hasher(hasher);
        let absolute = std::fs::canonicalize(path).map_err(io_err(&source))?;
        self.admit(
            source,
            size,
            diff_id,
            &stem_of(path),
            Outcome::Linked,
            |target| {
                std::os::unix::fs::symlink(&absolute, target).map_err(io_err(target.display()))
            },
        )
    }

    /// Records a layer: `put` places it at `DEST/NAME.tar` under a fresh
    /// name (`kept` says how), unless it is a duplicate or too small.
    fn admit(
        &mut self,
        source: String,
        size: u64,
        diff_id: Digest,
        stem: &str,
        kept: fn(String) -> Outcome,
        put: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<(), String> {
        let outcome = match self.outcome_for(size, diff_id, stem) {
            Ok(name) => {
                put(&self.dest.join(format!("{name}.tar")))?;
                kept(name)
            }
            Err(outcome) => outcome,
        };
        self.records.push(Record {
            source,
            size: Some(size),
            diff_id: Some(diff_id),
            outcome,
        });
        Ok(())
    }

    /// A fresh name for a new layer (and it is remembered as seen), or why
    /// the layer is not imported.
    fn outcome_for(&mut self, size: u64, diff_id: Digest, stem: &str) -> Result<String, Outcome> {
        if size < self.options.min_size {
            return Err(Outcome::TooSmall);
        }
        if let Some(name) = self.seen.get(&diff_id) {
            return Err(Outcome::Duplicate(name.clone()));
        }
        let mut name = stem.to_string();
        let mut n = 1;
        while self.names.contains(&name)
            || self
                .dest
                .join(format!("{name}.tar"))
                .symlink_metadata()
                .is_ok()
        {
            n += 1;
            name = format!("{stem}_{n}");
        }
        self.names.insert(name.clone());
        self.seen.insert(diff_id, name.clone());
        Ok(name)
    }
}

/// Walks an index or manifest descriptor, appending each layer descriptor
/// not met before with the manifest that lists it.
fn collect_layers(
    source: &Source,
    desc: &estargz_image::oci::Descriptor,
    referrer: &str,
    depth: usize,
    visited: &mut HashSet<String>,
    layers: &mut Vec<(estargz_image::oci::Descriptor, String)>,
) -> Result<(), String> {
    let kind = kind_of(&desc.media_type);
    if kind == Kind::Other || !visited.insert(desc.digest.clone()) {
        return Ok(());
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(format!(
            "{referrer}: indexes nested more than {MAX_INDEX_DEPTH} deep"
        ));
    }
    let digest = parse_digest(&desc.digest, referrer).map_err(|e| e.to_string())?;
    let file = source.name(&estargz_image::source::blob_path(&digest));
    let raw = source
        .read_blob(&digest, desc.size, referrer)
        .map_err(|e| e.to_string())?;
    if kind == Kind::Index {
        let index: ImageIndex = parse_json(&raw, &file).map_err(|e| e.to_string())?;
        for m in &index.manifests {
            collect_layers(source, m, &file, depth + 1, visited, layers)?;
        }
    } else {
        let manifest: Manifest = parse_json(&raw, &file).map_err(|e| e.to_string())?;
        for layer in manifest.layers {
            if visited.insert(layer.digest.clone()) {
                layers.push((layer, file.clone()));
            }
        }
    }
    Ok(())
}

/// What a tar file holds, by its top-level names.
enum ArchiveKind {
    /// An OCI archive: it has `oci-layout`.
    Oci,
    /// A `docker save` archive from before Docker 25: `manifest.json` next
    /// to `*/layer.tar` files, and no `oci-layout`.
    OldDocker,
    /// Anything else: a layer.
    Layer,
}

/// Reads the tar's headers (seeking over the data) to tell an image
/// archive from a layer. A tar the `tar` crate cannot walk is taken for a
/// layer: the converter has the last word on it.
fn archive_kind(path: &Path) -> ArchiveKind {
    let Ok(file) = File::open(path) else {
        return ArchiveKind::Layer;
    };
    let mut archive = tar::Archive::new(BufReader::new(file));
    let Ok(entries) = archive.entries_with_seek() else {
        return ArchiveKind::Layer;
    };
    let (mut manifest, mut layer) = (false, false);
    for entry in entries {
        let Ok(entry) = entry else {
            return ArchiveKind::Layer;
        };
        let Ok(name) = entry.path() else {
            continue;
        };
        let name = name.to_string_lossy();
        let name = name.trim_start_matches("./");
        if name == "oci-layout" {
            return ArchiveKind::Oci;
        }
        manifest |= name == "manifest.json";
        layer |= name.ends_with("/layer.tar") && name.matches('/').count() == 1;
    }
    if manifest && layer {
        ArchiveKind::OldDocker
    } else {
        ArchiveKind::Layer
    }
}
