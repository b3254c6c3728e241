//! Images in a registry: [`open_image`] reads one where it is, as a
//! [`Source`] whose blobs stream from the registry when the conversion
//! reads them; [`push_image`] uploads a converted image (held in memory or
//! written to a layout), [`push_layout`] a layout's image.
//!
//! Every blob pulled is checked against its digest and size while it
//! streams. A push sends every blob first, then the manifests (children
//! before the indexes naming them) by digest, and the tag last, so a failed
//! push never leaves the tag naming content that is not there.

use crate::error::{invalid, io_err, Error, Result};
use crate::oci::{self, kind_of, parse_digest, parse_json, Descriptor, ImageIndex, Kind, Manifest};
use crate::sink::LayoutWriter;
use crate::source::{blob_path, Source, MAX_DOCUMENT_SIZE};
use estargz_registry::{PulledManifest, Reference, Registry};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// At most this many manifests and indexes in one image: a bound on the
/// work a hostile registry (or layout) can ask for.
pub const MAX_MANIFESTS: usize = 10_000;

/// What [`open_image`] fetched, and then what the conversion streamed.
#[derive(Debug, Clone, Default)]
pub struct PullReport {
    /// The digest of the manifest or index the reference names.
    pub digest: String,
    /// Every manifest and index fetched, the root included.
    pub manifests: usize,
    /// Every other blob fetched (configs, layers), by digest.
    pub blobs: Vec<String>,
    /// Bytes of blobs fetched.
    pub bytes: u64,
    /// Every blob the image names but its manifests and indexes, by
    /// digest ([`open_image`], which fetches none of them itself).
    pub named: Vec<String>,
}

/// The image `image` names, read where it is: its manifests and indexes
/// are fetched now (at most [`MAX_MANIFESTS`], each checked against its digest), every
/// other blob (configs, layers) is streamed from the registry when the
/// conversion reads it, checked against its digest and size as it
/// streams. The report lists the blobs the image names in `named`
/// (none is fetched yet: `bytes` counts the documents;
/// [`Source::fetched`] tells later what was).
///
/// ```no_run
/// use estargz_image::registry::open_image;
/// use estargz_registry::{Reference, Registry, RegistryOptions};
/// use std::sync::Arc;
///
/// let image = Reference::parse("docker://registry.example/team/app:v1")?;
/// let registry = Arc::new(Registry::new(image.api_host(), RegistryOptions::default())?);
/// let (source, report) = open_image(registry, &image)?;
/// println!("{} manifests, {} blobs, remote: {}", report.manifests, report.named.len(), source.is_remote());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_image(registry: Arc<Registry>, image: &Reference) -> Result<(Source, PullReport)> {
    let repo = image.repository();
    let root = registry
        .pull_manifest(repo, image.reference())
        .map_err(registry_err(image.to_string()))?;
    let mut report = PullReport {
        digest: root.digest.clone(),
        ..PullReport::default()
    };
    let mut files = HashMap::new();
    let index = index_of(image, &root);
    let mut pending = vec![root];
    let mut seen = HashSet::new();
    let mut blobs_seen = HashSet::new();
    while let Some(doc) = pending.pop() {
        if !seen.insert(doc.digest.clone()) {
            continue;
        }
        if seen.len() > MAX_MANIFESTS {
            return Err(invalid(
                image,
                format!("more than {MAX_MANIFESTS} manifests"),
            ));
        }
        report.manifests += 1;
        report.bytes += doc.bytes.len() as u64;
        let name = format!("{image}@{}", doc.digest);
        match kind_of(&doc.media_type) {
            Kind::Index => {
                let index: ImageIndex = parse_json(&doc.bytes, &name)?;
                for child in index.manifests {
                    if seen.contains(&child.digest) {
                        continue;
                    }
                    let pulled = registry
                        .pull_manifest(repo, &child.digest)
                        .map_err(registry_err(&name))?;
                    pending.push(with_media_type(pulled, &child));
                }
            }
            Kind::Manifest => {
                let manifest: Manifest = parse_json(&doc.bytes, &name)?;
                for desc in std::iter::once(&manifest.config).chain(&manifest.layers) {
                    if blobs_seen.insert(desc.digest.clone()) {
                        report.named.push(desc.digest.clone());
                    }
                }
            }
            Kind::Other => {}
        }
        files.insert(blob_rel(&doc.digest)?, doc.bytes);
    }
    files.insert("index.json".to_string(), oci::to_json(&index));
    files.insert(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    Ok((Source::remote(registry, repo, files), report))
}

/// The `index.json` naming `root`, with the reference's tag as its name.
fn index_of(image: &Reference, root: &PulledManifest) -> serde_json::Value {
    let mut annotations = BTreeMap::new();
    if let Some(tag) = image.tag() {
        annotations.insert(oci::ANNOTATION_REF_NAME.to_string(), tag.to_string());
    }
    let root_desc = Descriptor {
        media_type: root.media_type.clone(),
        digest: root.digest.clone(),
        size: root.bytes.len() as u64,
        annotations: (!annotations.is_empty()).then_some(annotations),
        extra: Default::default(),
    };
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_TYPE_INDEX,
        "manifests": [root_desc],
    })
}

/// The media type the parent's descriptor states wins over what the
/// registry's `Content-Type` said, as the parent is what gets pushed again.
fn with_media_type(mut pulled: PulledManifest, desc: &Descriptor) -> PulledManifest {
    if !desc.media_type.is_empty() {
        pulled.media_type = desc.media_type.clone();
    }
    pulled
}

fn registry_err(what: impl std::fmt::Display) -> impl FnOnce(estargz_registry::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Registry {
        what,
        source: Box::new(source),
    }
}

/// `blobs/sha256/HEX` of a digest, which must be sha256.
fn blob_rel(digest: &str) -> Result<String> {
    let d = parse_digest(digest, "a registry's manifest")?;
    Ok(blob_path(&d))
}

/// How [`push_layout`] may save uploads.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// A repository of the same registry holding some of the blobs (the
    /// image's source) and the digests it holds: those blobs are mounted
    /// from it rather than uploaded.
    pub mount_from: Option<(String, HashSet<String>)>,
    /// Files holding blobs the layout lacks, by digest: the conversion
    /// cache's blobs of layers the destination had when they were
    /// converted, uploaded from there should it lack them by now. The
    /// registry checks each upload against its digest.
    pub blob_files: HashMap<String, PathBuf>,
    /// Blobs uploaded at once (0 or 1: one after the other).
    pub jobs: usize,
}

/// What [`push_layout`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PushReport {
    /// The digest of the manifest or index the tag now names.
    pub digest: String,
    /// Blobs uploaded.
    pub blobs_pushed: usize,
    /// Bytes of blobs uploaded.
    pub bytes_pushed: u64,
    /// Blobs the repository already had (not sent again).
    pub blobs_existing: usize,
    /// Blobs mounted from [`PushOptions::mount_from`].
    pub blobs_mounted: usize,
    /// Manifests and indexes stored, the root included.
    pub manifests: usize,
    /// What became of each blob, by digest: `pushed` (with the bytes
    /// uploaded), `exists` or `mounted`.
    #[serde(skip)]
    pub outcomes: BTreeMap<String, (&'static str, u64)>,
}

/// Pushes the one image of the OCI layout `dir` (its index.json must list
/// exactly one manifest or index) to `image`, which must name a tag: every
/// blob, then every manifest by digest, children first, then the tag.
pub fn push_layout(
    registry: &Registry,
    dir: &Path,
    image: &Reference,
    opts: &PushOptions,
) -> Result<PushReport> {
    push_image(registry, &LayoutWriter::existing(dir), image, opts, None)
}

/// [`push_layout`] of an image written to `out`, a layout directory or
/// one held in memory ([`LayoutWriter::held`]). A blob `out` lacks
/// (the destination had it, or could mount it, when the image was
/// written) and the destination turns out not to have is uploaded from
/// [`PushOptions::blob_files`], else streamed from `source`.
///
/// ```no_run
/// use estargz_image::{convert_image, held::MemoryPool, registry, ImageOptions, LayoutWriter, Source};
/// use estargz_registry::{Reference, Registry, RegistryOptions};
/// use std::path::Path;
///
/// let source = Source::open(Path::new("image.tar"))?;
/// let target = Reference::parse("docker://registry.example/team/app:v1-estargz")?;
/// let out = LayoutWriter::held(MemoryPool::new(512 << 20), &std::env::temp_dir(), None);
/// convert_image(&source, &out, &ImageOptions::default(), &|_| {})?;
/// let dest = Registry::new(target.api_host(), RegistryOptions::default())?;
/// let pushed = registry::push_image(&dest, &out, &target, &Default::default(), Some(&source))?;
/// println!("{}", pushed.digest);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn push_image(
    registry: &Registry,
    out: &LayoutWriter,
    image: &Reference,
    opts: &PushOptions,
    source: Option<&Source>,
) -> Result<PushReport> {
    let Some(tag) = image.tag() else {
        return Err(invalid(
            image,
            "the destination must name a tag: the converted image has a new digest",
        ));
    };
    let index_name = out.root().map_or_else(
        || "the converted image's index.json".to_string(),
        |r| r.join("index.json").display().to_string(),
    );
    let bytes = out
        .read_file("index.json")?
        .ok_or_else(|| invalid(&index_name, "missing"))?;
    let index: ImageIndex = parse_json(&bytes, &index_name)?;
    let [root] = &index.manifests[..] else {
        return Err(invalid(
            &index_name,
            format!(
                "{} images; a registry destination takes one",
                index.manifests.len()
            ),
        ));
    };
    let (manifests, blobs) = walk_layout(out, root)?;
    let repo = image.repository();
    let mut report = PushReport {
        digest: root.digest.clone(),
        manifests: manifests.len(),
        ..PushReport::default()
    };
    let to = Destination { registry, repo };
    push_blobs(&to, out, source, &blobs, opts, &mut report)?;
    let target = image.to_string();
    for (desc, bytes) in &manifests {
        registry
            .push_manifest(repo, &desc.digest, &desc.media_type, bytes)
            .map_err(registry_err(format!("{target} ({})", desc.digest)))?;
    }
    let (desc, bytes) = manifests
        .last()
        .ok_or_else(|| invalid(&index_name, "empty"))?;
    registry
        .push_manifest(repo, tag, &desc.media_type, bytes)
        .map_err(registry_err(&target))?;
    Ok(report)
}

/// Uploads `blobs`, [`PushOptions::jobs`] at a time; stops at the
/// first failure.
fn push_blobs(
    to: &Destination<'_>,
    out: &LayoutWriter,
    source: Option<&Source>,
    blobs: &[Descriptor],
    opts: &PushOptions,
    report: &mut PushReport,
) -> Result<()> {
    let jobs = opts.jobs.clamp(1, blobs.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let parts: Vec<Result<PushReport>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut part = PushReport::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(desc) = blobs.get(i).filter(|_| !failed.load(Ordering::SeqCst))
                        else {
                            return Ok(part);
                        };
                        if let Err(e) = push_one_blob(to, out, source, desc, opts, &mut part) {
                            failed.store(true, Ordering::SeqCst);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for part in parts {
        let part = part?;
        report.blobs_pushed += part.blobs_pushed;
        report.bytes_pushed += part.bytes_pushed;
        report.blobs_existing += part.blobs_existing;
        report.blobs_mounted += part.blobs_mounted;
        report.outcomes.extend(part.outcomes);
    }
    Ok(())
}

struct Destination<'a> {
    registry: &'a Registry,
    repo: &'a str,
}

fn push_one_blob(
    to: &Destination<'_>,
    out: &LayoutWriter,
    source: Option<&Source>,
    desc: &Descriptor,
    opts: &PushOptions,
    report: &mut PushReport,
) -> Result<()> {
    let (registry, repo) = (to.registry, to.repo);
    let what = format!("{}/{repo}@{}", registry.host(), desc.digest);
    if registry
        .blob_exists(repo, &desc.digest)
        .map_err(registry_err(&what))?
    {
        report.blobs_existing += 1;
        report.outcomes.insert(desc.digest.clone(), ("exists", 0));
        return Ok(());
    }
    if let Some((from, digests)) = &opts.mount_from {
        if from != repo
            && digests.contains(&desc.digest)
            && registry
                .mount_blob(from, repo, &desc.digest)
                .map_err(registry_err(&what))?
        {
            report.blobs_mounted += 1;
            report.outcomes.insert(desc.digest.clone(), ("mounted", 0));
            return Ok(());
        }
    }
    let (reader, len, name) = blob_to_push(out, source, desc, opts)?;
    if len != desc.size {
        return Err(Error::SizeMismatch {
            file: name,
            expected: desc.size,
            actual: len,
        });
    }
    registry
        .push_blob(repo, &desc.digest, desc.size, reader)
        .map_err(registry_err(&what))?;
    report.blobs_pushed += 1;
    report.bytes_pushed += desc.size;
    report
        .outcomes
        .insert(desc.digest.clone(), ("pushed", desc.size));
    Ok(())
}

/// Where a blob to upload is read from: `out`, else a file of
/// [`PushOptions::blob_files`], else `source`; its length and name.
fn blob_to_push(
    out: &LayoutWriter,
    source: Option<&Source>,
    desc: &Descriptor,
    opts: &PushOptions,
) -> Result<(Box<dyn Read>, u64, String)> {
    let digest = parse_digest(&desc.digest, "a converted manifest")?;
    if let Some((reader, len)) = out.open_blob(&digest)? {
        let name = out.root().map_or_else(
            || format!("converted blob {}", desc.digest),
            |r| r.join(blob_path(&digest)).display().to_string(),
        );
        return Ok((Box::new(reader), len, name));
    }
    if let Some(path) = opts.blob_files.get(&desc.digest) {
        let file = fs::File::open(path).map_err(io_err(path.display()))?;
        let len = file.metadata().map_err(io_err(path.display()))?.len();
        let name = path.display().to_string();
        return Ok((Box::new(io::BufReader::new(file)), len, name));
    }
    let Some(source) = source else {
        let name = out.root().map_or_else(
            || format!("converted blob {}", desc.digest),
            |r| r.join(blob_path(&digest)).display().to_string(),
        );
        return Err(Error::MissingBlob {
            file: name,
            referrer: "the converted image".to_string(),
        });
    };
    // Checked by the registry as it arrives: an upload whose bytes do
    // not hash to the digest named is refused.
    let reader = source.open_blob(&digest, desc.size, "the converted image")?;
    let name = reader.file().to_string();
    Ok((Box::new(reader), desc.size, name))
}

/// Every manifest and index under `root` with its bytes, in an order that
/// puts each after everything it names (the root last), and the other
/// blobs (configs, layers), each once.
type Walked = (Vec<(Descriptor, Vec<u8>)>, Vec<Descriptor>);

fn walk_layout(out: &LayoutWriter, root: &Descriptor) -> Result<Walked> {
    // Breadth first, keeping repeats: the last time a document is met
    // comes after the last time each of its parents is, so the reversed
    // order with only the first of repeats puts children first.
    let mut order: Vec<Descriptor> = vec![root.clone()];
    let mut docs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut blobs = Vec::new();
    let mut blobs_seen = HashSet::new();
    let mut next = 0;
    while next < order.len() {
        if order.len() > MAX_MANIFESTS {
            return Err(invalid(
                "the converted image",
                format!("more than {MAX_MANIFESTS} manifests"),
            ));
        }
        let desc = order[next].clone();
        next += 1;
        let digest = parse_digest(&desc.digest, "the converted image")?;
        let file = out.root().map_or_else(
            || format!("converted document {}", desc.digest),
            |r| r.join(blob_path(&digest)).display().to_string(),
        );
        let bytes = match docs.get(&desc.digest) {
            Some(b) => b.clone(),
            None => read_document(out, &digest, &file)?,
        };
        match kind_of(&desc.media_type) {
            Kind::Index => {
                let index: ImageIndex = parse_json(&bytes, &file)?;
                order.extend(index.manifests);
            }
            Kind::Manifest => {
                let manifest: Manifest = parse_json(&bytes, &file)?;
                for d in std::iter::once(manifest.config).chain(manifest.layers) {
                    if blobs_seen.insert(d.digest.clone()) {
                        blobs.push(d);
                    }
                }
            }
            Kind::Other => {}
        }
        docs.insert(desc.digest.clone(), bytes);
    }
    let mut manifests = Vec::new();
    let mut pushed = HashSet::new();
    for desc in order.into_iter().rev() {
        if pushed.insert(desc.digest.clone()) {
            let bytes = docs.remove(&desc.digest).unwrap_or_default();
            manifests.push((desc, bytes));
        }
    }
    Ok((manifests, blobs))
}

/// A manifest or index of `out`, at most [`MAX_DOCUMENT_SIZE`] bytes.
fn read_document(out: &LayoutWriter, digest: &estargz_core::Digest, file: &str) -> Result<Vec<u8>> {
    let (reader, _) = out.open_blob(digest)?.ok_or_else(|| Error::MissingBlob {
        file: file.to_string(),
        referrer: "the converted image".to_string(),
    })?;
    let mut bytes = Vec::new();
    reader
        .take(MAX_DOCUMENT_SIZE)
        .read_to_end(&mut bytes)
        .map_err(io_err(file))?;
    Ok(bytes)
}
