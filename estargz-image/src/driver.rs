//! The conversion driver: walk the image from index.json down, convert each
//! distinct layer once (several at a time, within a memory budget), then
//! rewrite configs, manifests and indexes bottom-up with the new digests.

use crate::cache::{fingerprint, Cache, CacheEntry};
use crate::error::{invalid, io_err, Error, Result};
use crate::oci::{
    kind_of, layer_kind, oci_media_type, parse_digest, parse_json, to_json, Descriptor, ImageIndex,
    Kind, LayerKind, Manifest, ANNOTATION_ZSTD_MANIFEST_CHECKSUM,
    ANNOTATION_ZSTD_MANIFEST_CHECKSUM_LEGACY, DOCKER_CONFIG, DOCKER_MANIFEST, MEDIA_TYPE_CONFIG,
};
use crate::refs;
use crate::sink::LayoutWriter;
use crate::source::{blob_path, Source, VerifiedReader, MAX_DOCUMENT_SIZE};
use estargz_core::{
    blob_info_of, layer_annotations, Compression, Converter, Digest, Input, OpenOptions, TocInfo,
    WithoutEstargzEntries, ANNOTATION_TOC_DIGEST, MEDIA_TYPE_LAYER_GZIP,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Default memory budget for layers converted at once: 1 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;
/// Indexes nested deeper than this are refused (real images nest one or two).
pub const MAX_INDEX_DEPTH: usize = 16;
/// Buildx marks attestation manifests with this descriptor annotation.
const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// How an image is converted.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// How each layer is converted. Its thread count is the total for the
    /// whole image (`None`: every core), shared among the layers converted
    /// at once.
    pub converter: Converter,
    /// Layers converted at once; `None` picks as many as `memory_budget` allows.
    pub jobs: Option<usize>,
    /// Bytes the layers converted at once may use, by [`estimated_memory`];
    /// when the output holds blobs for an upload ([`LayoutWriter::held`]),
    /// its memory pool gets what the conversions leave of it.
    pub memory_budget: u64,
    /// The conversion cache: layers converted before (same source digest,
    /// same converter options) are taken from it, and new conversions stored.
    pub cache: Option<Arc<Cache>>,
    /// Whether the destination already has a blob (a registry answering
    /// HEAD): a cached layer it has is not even copied into the output
    /// layout, which then lacks that blob.
    pub destination_has: Option<BlobCheck>,
    /// Convert only the image of the source's `index.json` with this
    /// reference name (`oci:DIR:REF`); `None`: every image.
    pub source_ref: Option<String>,
    /// The reference name the converted image gets in the output's
    /// `index.json`; the source must then hold one image (or `source_ref`
    /// pick one).
    pub dest_ref: Option<String>,
    /// Convert layers already in a lazy-pull format too: gzip eStargz
    /// layers when converting to gzip, zstd:chunked ones always. Without
    /// it they are passed through (a gzip eStargz layer is still converted
    /// to zstd:chunked when that is the target). Either way a converted
    /// lazy layer loses its TOC and landmark entries first
    /// ([`WithoutEstargzEntries`]).
    pub reconvert: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            converter: Converter::default(),
            jobs: None,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            cache: None,
            destination_has: None,
            source_ref: None,
            dest_ref: None,
            reconvert: false,
        }
    }
}

impl ImageOptions {
    /// The conversion cache's fingerprint of these options for a source
    /// layer of `media_type` ([`fingerprint`]).
    ///
    /// ```
    /// use estargz_image::ImageOptions;
    ///
    /// let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// let reconvert = ImageOptions { reconvert: true, ..ImageOptions::default() };
    /// // Whether lazy layers are converted decides what a layer becomes: not the same entry.
    /// assert_ne!(ImageOptions::default().fingerprint(gzip), reconvert.fingerprint(gzip));
    /// ```
    pub fn fingerprint(&self, media_type: &str) -> String {
        fingerprint(&self.converter, media_type, self.reconvert)
    }

    fn converts(&self, format: LazyFormat) -> bool {
        match format {
            LazyFormat::Estargz => {
                self.reconvert || self.converter.compression() == Compression::ZstdChunked
            }
            LazyFormat::ZstdChunked => self.reconvert,
        }
    }
}

/// A layer format that container runtimes can pull lazily.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LazyFormat {
    /// gzip eStargz.
    Estargz,
    /// zstd:chunked, either dialect.
    ZstdChunked,
}

/// Tells whether the destination has the blob of the digest given.
#[derive(Clone)]
pub struct BlobCheck(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for BlobCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobCheck")
    }
}

/// Rough peak memory of one conversion: each compression thread holds a
/// chunk, its compressed copy and a queued one, plus fixed buffers (1 MiB
/// readers and writers, the digest tee's queue). Measured: 72 MB peak for
/// 2 threads and 4 MiB chunks.
pub fn estimated_memory(threads: usize, chunk_size: u64) -> u64 {
    (threads as u64)
        .saturating_mul(chunk_size)
        .saturating_mul(4)
        + (40 << 20)
}

/// What happened to one distinct layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Digest of the source blob.
    pub source_digest: String,
    /// Its media type.
    pub source_media_type: String,
    /// Its size.
    pub source_size: u64,
    /// `converted` or `passed-through`.
    pub action: &'static str,
    /// Why a layer was passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Media type in the output.
    pub media_type: String,
    /// Digest in the output.
    pub digest: String,
    /// Size in the output.
    pub size: u64,
    /// New diffID (converted layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// TOC digest (converted layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toc_digest: Option<String>,
    /// Decompressed size (converted layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncompressed_size: Option<u64>,
    /// Wall-clock seconds spent converting it.
    pub seconds: f64,
    /// The converter's warnings (non-UTF-8 names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `hit` (taken from the conversion cache), `miss` (converted, then
    /// stored in it) or `off` (no cache, or a layer kept as it was).
    pub cache: &'static str,
    /// Source bytes read (a layer the cache holds is not read from a
    /// registry; a local one is still checked against its digest).
    pub bytes_in: u64,
    /// Bytes written to the output (for a registry destination: uploaded).
    pub bytes_out: u64,
    /// `converted`, `cached` (taken from the cache), `copied` (kept as it
    /// was); after a push `pushed`, `exists` or `mounted`.
    pub state: &'static str,
    /// Bytes of the converted blob written to a spool file in $TMPDIR
    /// while it waited for its upload, the memory budget being spent
    /// (a registry destination; 0 otherwise).
    pub bytes_spooled: u64,
}

/// A manifest or index of the source and what it became.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentReport {
    /// Digest in the source.
    pub source_digest: String,
    /// Digest in the output (the same when nothing in it changed).
    pub digest: String,
    /// Media type in the output.
    pub media_type: String,
}

/// The result of [`convert_image`].
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// Every distinct layer, converted ones first in the order met.
    pub layers: Vec<LayerReport>,
    /// Every manifest and nested index, in the order met.
    pub manifests: Vec<DocumentReport>,
    /// Layers converted at once.
    pub jobs: usize,
    /// Compression threads per conversion.
    pub threads_per_job: usize,
    /// Things the user should know (a legacy manifest.json dropped, absent foreign layers).
    pub warnings: Vec<String>,
}

/// Progress, reported as it happens.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A layer finished converting; `done` of `total` conversions are finished.
    Converted {
        /// Finished so far, this one included.
        done: usize,
        /// Conversions in all.
        total: usize,
        /// The layer.
        layer: &'a LayerReport,
    },
    /// A layer was copied unchanged.
    PassedThrough(&'a LayerReport),
}

struct LayerJob {
    digest: Digest,
    descriptor: Descriptor,
    referrer: String,
}

struct ImageDoc {
    raw: Vec<u8>,
    manifest: Manifest,
    /// Image config (raw and parsed); `None` for artifacts, passed through.
    config: Option<(Vec<u8>, Value)>,
}

struct Driver<'a> {
    source: &'a Source,
    options: &'a ImageOptions,
    out: &'a LayoutWriter,
    indexes: HashMap<Digest, (Vec<u8>, ImageIndex)>,
    manifests: HashMap<Digest, ImageDoc>,
    jobs: Vec<LayerJob>,
    job_of: HashMap<Digest, usize>,
    converted: HashMap<Digest, (LayerReport, std::collections::BTreeMap<String, String>)>,
    /// Keyed by kind too: the same bytes listed as a manifest and as an
    /// opaque blob are handled once each, so neither loses its children.
    rewritten: HashMap<(Digest, Kind), (String, Digest, u64)>,
    configs: HashMap<Digest, Digest>,
    passed: HashMap<Digest, ()>,
    report: ImageReport,
}

/// Converts every layer of the image in `source` and writes the result as
/// an OCI layout into `out`, an existing empty directory.
///
/// Indexes (nested too) and manifests are walked from `index.json`. Each
/// distinct tar, tar+gzip or tar+zstd layer is converted once to eStargz, with the OCI
/// gzip media type and the TOC-digest and uncompressed-size annotations;
/// configs get the new diffIDs, manifests and indexes the new digests.
/// What does not change is copied byte for byte: layers already in a
/// lazy-pull format that [`ImageOptions::reconvert`] and the target leave
/// alone (gzip eStargz when writing gzip, zstd:chunked), non-distributable
/// layers, blobs of unknown media types, and manifests that are not images (attestations, signatures, artifacts), which
/// describe the source image and would be forged if rewritten. Docker
/// manifests and lists whose layers change become OCI ones, since only OCI
/// descriptors carry annotations. A Docker ≥ 25 `manifest.json` is
/// rewritten to the new blobs. Every blob read is checked against its digest.
pub fn convert_image(
    source: &Source,
    out: &LayoutWriter,
    options: &ImageOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<ImageReport> {
    let mut driver = Driver {
        source,
        options,
        out,
        indexes: HashMap::new(),
        manifests: HashMap::new(),
        jobs: Vec::new(),
        job_of: HashMap::new(),
        converted: HashMap::new(),
        rewritten: HashMap::new(),
        configs: HashMap::new(),
        passed: HashMap::new(),
        report: ImageReport {
            layers: Vec::new(),
            manifests: Vec::new(),
            jobs: 0,
            threads_per_job: 0,
            warnings: Vec::new(),
        },
    };
    let index_name = source.name("index.json");
    let index_raw = source
        .read_file("index.json", MAX_DOCUMENT_SIZE)?
        .ok_or_else(|| invalid(&index_name, "missing: not an OCI image layout"))?;
    let mut index: ImageIndex = parse_json(&index_raw, &index_name)?;
    if let Some(name) = &options.source_ref {
        index = refs::select(&index, name, &index_name)?;
    }
    for m in &index.manifests {
        driver.visit(m, &index_name, 0)?;
    }
    driver.convert_layers(options, progress)?;
    let mut new_index = index.clone();
    new_index.manifests = index
        .manifests
        .iter()
        .map(|m| driver.rewrite(m, &index_name, progress))
        .collect::<Result<_>>()?;
    if let Some(name) = &options.dest_ref {
        refs::name_as(&mut new_index, name, &index_name)?;
    }
    let renamed = options.source_ref.is_some() || options.dest_ref.is_some();
    if new_index.manifests == index.manifests && !renamed {
        out.write_file("index.json", &index_raw)?;
    } else {
        out.write_file("index.json", &to_json(&new_index))?;
    }
    driver.rewrite_legacy_manifest()?;
    Ok(driver.report)
}

impl Driver<'_> {
    /// First pass: read and check every document, collect the layers to convert.
    /// An image config: a registry source's from the conversion cache
    /// when an earlier run kept it there (a warm rerun then transfers only
    /// manifests), else read, and kept for the next run.
    fn read_config(
        &mut self,
        digest: &Digest,
        (media_type, size): (&str, u64),
        referrer: &str,
    ) -> Result<Vec<u8>> {
        let cache = (self.options.cache.as_deref()).filter(|_| self.source.is_remote());
        let key = digest.to_string();
        if let Some(kept) = cache.and_then(|c| c.document(&key, size)) {
            return Ok(kept);
        }
        let raw = self.source.read_blob(digest, size, referrer)?;
        if let Some(Err(e)) = cache.map(|c| c.keep_document(&key, media_type, &raw)) {
            (self.report.warnings).push(format!("{e}; config {key} is not cached"));
        }
        Ok(raw)
    }

    fn visit(&mut self, desc: &Descriptor, referrer: &str, depth: usize) -> Result<()> {
        let digest = parse_digest(&desc.digest, referrer)?;
        let file = self.source.name(&blob_path(&digest));
        match kind_of(&desc.media_type) {
            Kind::Index => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(invalid(
                        referrer,
                        format!("indexes nested more than {MAX_INDEX_DEPTH} deep"),
                    ));
                }
                if self.indexes.contains_key(&digest) {
                    return Ok(());
                }
                let raw = self.source.read_blob(&digest, desc.size, referrer)?;
                let index: ImageIndex = parse_json(&raw, &file)?;
                for m in &index.manifests {
                    self.visit(m, &file, depth + 1)?;
                }
                self.indexes.insert(digest, (raw, index));
            }
            Kind::Manifest => {
                if self.manifests.contains_key(&digest) {
                    return Ok(());
                }
                let raw = self.source.read_blob(&digest, desc.size, referrer)?;
                let manifest: Manifest = parse_json(&raw, &file)?;
                let config_digest = parse_digest(&manifest.config.digest, &file)?;
                let attestation = desc
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REFERENCE_TYPE))
                    .is_some();
                let is_image = !attestation
                    && matches!(
                        manifest.config.media_type.as_str(),
                        MEDIA_TYPE_CONFIG | DOCKER_CONFIG
                    );
                let mut config = None;
                if is_image {
                    let config_file = self.source.name(&blob_path(&config_digest));
                    let config_raw = self.read_config(
                        &config_digest,
                        (&manifest.config.media_type, manifest.config.size),
                        &file,
                    )?;
                    let value: Value = parse_json(&config_raw, &config_file)?;
                    let diff_ids = value
                        .get("rootfs")
                        .and_then(|r| r.get("diff_ids"))
                        .and_then(Value::as_array)
                        .ok_or_else(|| invalid(&config_file, "no rootfs.diff_ids array"))?;
                    if diff_ids.len() != manifest.layers.len() {
                        return Err(invalid(
                            &config_file,
                            format!(
                                "rootfs.diff_ids has {} entries but manifest {file} has {} layers",
                                diff_ids.len(),
                                manifest.layers.len()
                            ),
                        ));
                    }
                    config = Some((config_raw, value));
                }
                for layer in &manifest.layers {
                    let layer_digest = parse_digest(&layer.digest, &file)?;
                    if !is_image {
                        continue;
                    }
                    let wanted = lazy_format(layer).is_none_or(|f| self.options.converts(f));
                    match layer_kind(&layer.media_type) {
                        LayerKind::Convertible | LayerKind::Zstd
                            if wanted && !self.job_of.contains_key(&layer_digest) =>
                        {
                            self.job_of.insert(layer_digest, self.jobs.len());
                            self.jobs.push(LayerJob {
                                digest: layer_digest,
                                descriptor: layer.clone(),
                                referrer: file.clone(),
                            });
                        }
                        _ => {}
                    }
                }
                self.manifests.insert(
                    digest,
                    ImageDoc {
                        raw,
                        manifest,
                        config,
                    },
                );
            }
            Kind::Other => {}
        }
        Ok(())
    }

    /// Second pass: the conversions, `jobs` at a time.
    fn convert_layers(
        &mut self,
        options: &ImageOptions,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<()> {
        let total = self.jobs.len();
        let threads = options
            .converter
            .threads()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let chunk = options.converter.chunk_size();
        let pool = self.out.memory_pool();
        let (jobs, per_job) = plan_jobs(threads, total, chunk, options, pool.is_some());
        if let Some(pool) = pool {
            // The blobs held for the upload get what the conversions leave.
            let converting = (jobs as u64).saturating_mul(estimated_memory(per_job, chunk));
            pool.set_limit(options.memory_budget.saturating_sub(converting));
        }
        self.report.jobs = jobs;
        self.report.threads_per_job = per_job;
        let converter = options.converter.clone().with_threads(Some(per_job));

        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Mutex<Vec<Option<Result<(LayerReport, _)>>>> =
            Mutex::new((0..total).map(|_| None).collect());
        let (source, out, job_list) = (self.source, self.out, &self.jobs);
        let cache = options.cache.as_deref().map(|cache| LayerCache {
            cache,
            options,
            destination_has: options.destination_has.as_ref(),
            notes: Mutex::new(Vec::new()),
        });
        std::thread::scope(|s| {
            for _ in 0..jobs.min(total) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total || failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let result = convert_layer(
                        (source, out),
                        &job_list[i],
                        (&converter, options),
                        cache.as_ref(),
                    );
                    match &result {
                        Ok((layer, _)) => {
                            let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                            progress(Progress::Converted {
                                done: d,
                                total,
                                layer,
                            });
                        }
                        Err(_) => failed.store(true, Ordering::SeqCst),
                    }
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(result);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_default();
        if let Some(c) = cache {
            self.report
                .warnings
                .extend(c.notes.into_inner().unwrap_or_default());
        }
        // Jobs start in order, so every job before a failed one finished:
        // the first error in job order is the same whatever the timing.
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Some(Ok((layer, Some(annotations)))) => {
                    self.report.layers.push(layer.clone());
                    self.converted
                        .insert(self.jobs[i].digest, (layer, annotations));
                }
                Some(Ok((layer, None))) => {
                    // Copied by the third pass like any layer not converted, reported here.
                    for w in &layer.warnings {
                        self.report.warnings.push(format!(
                            "layer {} is kept as it was (not eStargz): {w}",
                            layer.source_digest
                        ));
                    }
                    self.passed.insert(self.jobs[i].digest, ());
                    self.report.layers.push(layer);
                }
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(())
    }

    /// Third pass: documents rewritten bottom-up; returns the descriptor
    /// that replaces `desc`.
    fn rewrite(
        &mut self,
        desc: &Descriptor,
        referrer: &str,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<Descriptor> {
        let digest = parse_digest(&desc.digest, referrer)?;
        let kind = kind_of(&desc.media_type);
        if let Some((media_type, new, size)) = self.rewritten.get(&(digest, kind)) {
            return Ok(replace(desc, media_type, new, *size));
        }
        let file = self.source.name(&blob_path(&digest));
        let (media_type, new_digest, size) = match kind {
            Kind::Index => {
                let (raw, index) = self.indexes[&digest].clone();
                let children = index
                    .manifests
                    .iter()
                    .map(|m| self.rewrite(m, &file, progress))
                    .collect::<Result<Vec<_>>>()?;
                if children == index.manifests {
                    self.out.write_blob(&raw)?;
                    (desc.media_type.clone(), digest, desc.size)
                } else {
                    let mut new = index;
                    new.manifests = children;
                    new.media_type = new.media_type.map(|t| oci_media_type(&t).to_string());
                    let (d, size) = self.out.write_blob(&to_json(&new))?;
                    (oci_media_type(&desc.media_type).to_string(), d, size)
                }
            }
            Kind::Manifest => self.rewrite_manifest(desc, digest, &file, progress)?,
            Kind::Other => {
                self.out
                    .copy_blob(self.source, &digest, desc.size, referrer)?;
                (desc.media_type.clone(), digest, desc.size)
            }
        };
        if matches!(kind, Kind::Index | Kind::Manifest) {
            self.report.manifests.push(DocumentReport {
                source_digest: digest.to_string(),
                digest: new_digest.to_string(),
                media_type: media_type.clone(),
            });
        }
        self.rewritten
            .insert((digest, kind), (media_type.clone(), new_digest, size));
        Ok(replace(desc, &media_type, &new_digest, size))
    }

    fn rewrite_manifest(
        &mut self,
        desc: &Descriptor,
        digest: Digest,
        file: &str,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(String, Digest, u64)> {
        let doc = &self.manifests[&digest];
        let (raw, manifest, config) = (doc.raw.clone(), doc.manifest.clone(), doc.config.clone());
        let mut layers = Vec::with_capacity(manifest.layers.len());
        let mut diff_ids = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let d = parse_digest(&layer.digest, file)?;
            let converted = self.converted.get(&d).filter(|_| config.is_some());
            if let Some((report, annotations)) = converted {
                let mut new = layer.clone();
                new.media_type.clone_from(&report.media_type);
                new.digest = report.digest.clone();
                new.size = report.size;
                let mut all = layer.annotations.clone().unwrap_or_default();
                all.extend(annotations.clone());
                new.annotations = Some(all);
                // The source blob's mirrors do not serve the new blob.
                new.extra.remove("urls");
                diff_ids.push(report.diff_id.clone());
                layers.push(new);
            } else {
                self.pass_layer(layer, d, file, config.is_some(), progress)?;
                diff_ids.push(None);
                layers.push(layer.clone());
            }
        }
        let Some((_, mut config_value)) = config.filter(|_| layers != manifest.layers) else {
            // Nothing changed (or not an image): the documents stay byte for byte.
            if let Some((config_raw, _)) = &self.manifests[&digest].config {
                self.out.write_blob(config_raw)?;
            } else {
                let c = &manifest.config;
                let cd = parse_digest(&c.digest, file)?;
                self.out.copy_blob(self.source, &cd, c.size, file)?;
            }
            self.out.write_blob(&raw)?;
            return Ok((desc.media_type.clone(), digest, desc.size));
        };
        if let Some(ids) = config_value
            .get_mut("rootfs")
            .and_then(|r| r.get_mut("diff_ids"))
            .and_then(Value::as_array_mut)
        {
            for (slot, new) in ids.iter_mut().zip(&diff_ids) {
                if let Some(new) = new {
                    *slot = Value::String(new.clone());
                }
            }
        }
        let (config_digest, config_size) = self.out.write_blob(&to_json(&config_value))?;
        let old_config = parse_digest(&manifest.config.digest, file)?;
        self.configs.insert(old_config, config_digest);

        let mut new = manifest;
        let docker = new.media_type.as_deref() == Some(DOCKER_MANIFEST)
            || desc.media_type == DOCKER_MANIFEST;
        if docker {
            for layer in &mut layers {
                layer.media_type = oci_media_type(&layer.media_type).to_string();
            }
        }
        new.layers = layers;
        new.config.digest = config_digest.to_string();
        new.config.size = config_size;
        new.config.media_type = oci_media_type(&new.config.media_type).to_string();
        new.media_type = new.media_type.map(|t| oci_media_type(&t).to_string());
        let (d, size) = self.out.write_blob(&to_json(&new))?;
        Ok((oci_media_type(&desc.media_type).to_string(), d, size))
    }

    /// Copies a layer that is not converted, reporting it once.
    fn pass_layer(
        &mut self,
        layer: &Descriptor,
        digest: Digest,
        file: &str,
        in_image: bool,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<()> {
        let kind = layer_kind(&layer.media_type);
        if kind == LayerKind::NonDistributable && !self.source.has_blob(&digest)? {
            if self.passed.insert(digest, ()).is_none() {
                self.report.warnings.push(format!(
                    "non-distributable layer {} is not in the source; its descriptor is kept without a blob",
                    layer.digest
                ));
            }
            return Ok(());
        }
        self.out.copy_blob(self.source, &digest, layer.size, file)?;
        if !in_image || self.passed.insert(digest, ()).is_some() {
            return Ok(());
        }
        let reason = match (kind, lazy_format(layer)) {
            (LayerKind::NonDistributable, _) => "non-distributable layer",
            (_, Some(LazyFormat::Estargz)) => "already eStargz (has the TOC digest annotation)",
            (_, Some(LazyFormat::ZstdChunked)) => {
                "already zstd:chunked (has its TOC annotations; --reconvert converts it)"
            }
            _ => "not a filesystem layer media type",
        };
        let report = LayerReport {
            source_digest: layer.digest.clone(),
            source_media_type: layer.media_type.clone(),
            source_size: layer.size,
            action: "passed-through",
            reason: Some(reason),
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            diff_id: None,
            toc_digest: None,
            uncompressed_size: None,
            seconds: 0.0,
            warnings: Vec::new(),
            cache: "off",
            bytes_in: layer.size,
            bytes_out: layer.size,
            state: "copied",
            bytes_spooled: 0,
        };
        progress(Progress::PassedThrough(&report));
        self.report.layers.push(report);
        Ok(())
    }

    /// Docker ≥ 25 `docker save` adds the legacy `manifest.json` (paths of
    /// configs and layers) that `docker load` prefers; it is rewritten to
    /// the new blobs, or dropped with a warning if it names anything else.
    fn rewrite_legacy_manifest(&mut self) -> Result<()> {
        let name = self.source.name("manifest.json");
        let Some(raw) = self.source.read_file("manifest.json", MAX_DOCUMENT_SIZE)? else {
            return Ok(());
        };
        let mut doc: Value = parse_json(&raw, &name)?;
        let mut ok = true;
        if let Some(entries) = doc.as_array_mut() {
            for entry in entries {
                if let Some(c) = entry.get_mut("Config") {
                    ok &= self.map_legacy_path(c, true);
                }
                if let Some(Value::Array(layers)) = entry.get_mut("Layers") {
                    for l in layers {
                        ok &= self.map_legacy_path(l, false);
                    }
                }
            }
        } else {
            ok = false;
        }
        if ok {
            self.out.write_file("manifest.json", &to_json(&doc))?;
        } else {
            self.report.warnings.push(format!(
                "{name} names files that are not blobs of the converted image; it was dropped (the OCI index.json is complete)"
            ));
        }
        Ok(())
    }

    fn map_legacy_path(&self, path: &mut Value, config: bool) -> bool {
        let Some(hex) = path.as_str().and_then(|p| p.strip_prefix("blobs/sha256/")) else {
            return false;
        };
        let Ok(old) = format!("sha256:{hex}").parse::<Digest>() else {
            return false;
        };
        let new = if config {
            self.configs.get(&old).copied()
        } else {
            self.converted
                .get(&old)
                .and_then(|(r, _)| r.digest.parse().ok())
        }
        .unwrap_or(old);
        *path = Value::String(blob_path(&new));
        self.out.has_blob(&new)
    }
}

/// Layers converted at once and threads for each: as many layers as the
/// memory budget allows (never more than threads or layers), the threads
/// shared among them. When converted blobs are `held` for an upload, the
/// conversions get at most half the budget, the held blobs the rest.
fn plan_jobs(
    threads: usize,
    layers: usize,
    chunk: u64,
    options: &ImageOptions,
    held: bool,
) -> (usize, usize) {
    let budget = if held {
        options.memory_budget / 2
    } else {
        options.memory_budget
    };
    let jobs = match options.jobs {
        Some(j) => j.max(1),
        None => {
            let mut j = threads.min(layers).max(1);
            while j > 1
                && (j as u64).saturating_mul(estimated_memory((threads / j).max(1), chunk)) > budget
            {
                j -= 1;
            }
            j
        }
    };
    (jobs, (threads / jobs).max(1))
}

/// The lazy-pull format a layer is in, by its footer and TOC (its
/// annotations may have been lost: Docker media types cannot carry them),
/// with that TOC; `None` for any other layer.
fn sniff_lazy(source: &Source, job: &LayerJob) -> Result<Option<(LazyFormat, TocInfo)>> {
    let desc = &job.descriptor;
    // A registry's blob is probed with range requests; a plain tar cannot
    // be in a lazy-pull format, so it is not even probed there.
    let compressed =
        desc.media_type.contains("gzip") || layer_kind(&desc.media_type) == LayerKind::Zstd;
    if source.is_remote() && !compressed {
        return Ok(None);
    }
    let at = source.blob_at(&job.digest, desc.size, &job.referrer)?;
    let Ok((toc, _)) = TocInfo::read(at, &OpenOptions::default()) else {
        return Ok(None);
    };
    let format = match toc.zstd_chunked {
        Some(_) => LazyFormat::ZstdChunked,
        None => LazyFormat::Estargz,
    };
    Ok(Some((format, toc)))
}

/// A layer already in a lazy-pull format, passed through: an eStargz one
/// is copied and annotated; a zstd:chunked one is left to the third pass,
/// which copies it as it is.
fn keep_lazy(
    source: &Source,
    out: &LayoutWriter,
    job: &LayerJob,
    (format, probed): (LazyFormat, &TocInfo),
    start: Instant,
) -> Result<Converted> {
    let desc = &job.descriptor;
    let mut layer = LayerReport {
        source_digest: desc.digest.clone(),
        source_media_type: desc.media_type.clone(),
        source_size: desc.size,
        action: "passed-through",
        reason: Some(
            "already zstd:chunked (footer and TOC found); kept as it is (--reconvert converts it)",
        ),
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        size: desc.size,
        diff_id: None,
        toc_digest: Some(probed.digest.to_string()),
        uncompressed_size: None,
        seconds: start.elapsed().as_secs_f64(),
        warnings: Vec::new(),
        cache: "off",
        bytes_in: desc.size,
        bytes_out: desc.size,
        state: "copied",
        bytes_spooled: 0,
    };
    if format == LazyFormat::ZstdChunked {
        return Ok((layer, None));
    }
    out.copy_blob(source, &job.digest, desc.size, &job.referrer)?;
    let file = source.name(&blob_path(&job.digest));
    let convert_err = |source| Error::Convert {
        file: file.clone(),
        source,
    };
    let (blob, toc) = match (out.open_blob(&job.digest)?, out.blob_at(&job.digest)?) {
        (Some((reader, _)), Some(at)) => {
            // The ranges a registry answered were not verified; the
            // stored copy is: its TOC is the one annotated.
            let blob = blob_info_of(BufReader::new(reader)).map_err(convert_err)?;
            let (toc, _) = TocInfo::read(at, &OpenOptions::default()).map_err(convert_err)?;
            (blob, toc)
        }
        _ => {
            // The destination has it already: read it once, verified.
            let mut reader = source.open_blob(&job.digest, desc.size, &job.referrer)?;
            let blob = blob_info_of(BufReader::new(&mut reader)).map_err(convert_err);
            reader.finish()?;
            (blob?, probed.clone())
        }
    };
    layer.reason = Some("already eStargz (footer and TOC found); annotations added");
    layer.media_type = MEDIA_TYPE_LAYER_GZIP.to_string();
    layer.diff_id = Some(blob.diff_id.to_string());
    layer.toc_digest = Some(toc.digest.to_string());
    layer.uncompressed_size = Some(blob.uncompressed_size);
    layer.seconds = start.elapsed().as_secs_f64();
    Ok((
        layer,
        Some(layer_annotations(&toc.digest, blob.uncompressed_size)),
    ))
}

/// The lazy-pull format a layer's descriptor says it is in: gzip with the
/// eStargz TOC digest, or zstd with a TOC annotation of either dialect.
fn lazy_format(layer: &Descriptor) -> Option<LazyFormat> {
    let annotations = layer.annotations.as_ref()?;
    let has = |key| annotations.contains_key(key);
    match layer_kind(&layer.media_type) {
        LayerKind::Zstd
            if has(ANNOTATION_TOC_DIGEST)
                || has(ANNOTATION_ZSTD_MANIFEST_CHECKSUM)
                || has(ANNOTATION_ZSTD_MANIFEST_CHECKSUM_LEGACY) =>
        {
            Some(LazyFormat::ZstdChunked)
        }
        LayerKind::Zstd => None,
        _ => has(ANNOTATION_TOC_DIGEST).then_some(LazyFormat::Estargz),
    }
}

/// Converts the blob read from `reader`: the tar inside a lazy layer
/// without its TOC and landmarks (for eStargz, the gzip members before the
/// TOC member), else the whole layer decompressed.
fn convert_stream(
    reader: &mut VerifiedReader,
    lazy: Option<(LazyFormat, &TocInfo)>,
    media_type: &str,
    converter: &Converter,
    writer: &mut impl std::io::Write,
) -> estargz_core::Result<estargz_core::ConvertReport> {
    let zstd_error = |source| estargz_core::Error::Read { offset: 0, source };
    match lazy {
        Some((LazyFormat::Estargz, toc)) => {
            let end = match toc.toc_offset {
                0 => toc.payload_end,
                at => at,
            };
            let payload = flate2::read::MultiGzDecoder::new(reader.take(end));
            converter.convert(Input::stream(WithoutEstargzEntries::new(payload)), writer)
        }
        Some((LazyFormat::ZstdChunked, _)) => {
            // Its TOC (and tar-split) frames are skippable: the decoder passes over them.
            let tar = zstd::stream::read::Decoder::new(reader).map_err(zstd_error)?;
            converter.convert(Input::stream(WithoutEstargzEntries::new(tar)), writer)
        }
        // The converter sniffs gzip only; zstd (zstd:chunked's skippable
        // frames included) is decoded here, frame after frame.
        None if layer_kind(media_type) == LayerKind::Zstd => {
            let tar = zstd::stream::read::Decoder::new(reader).map_err(zstd_error)?;
            converter.convert(Input::stream(tar), writer)
        }
        None => converter.convert(Input::stream(reader), writer),
    }
}

fn replace(desc: &Descriptor, media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    let mut d = desc.clone();
    d.media_type = media_type.to_string();
    d.digest = digest.to_string();
    d.size = size;
    d
}

/// A layer's report and the annotations its new descriptor gets; `None`
/// when the layer is kept as it was.
type Converted = (
    LayerReport,
    Option<std::collections::BTreeMap<String, String>>,
);

/// The cache as the conversions of one image use it.
struct LayerCache<'a> {
    cache: &'a Cache,
    options: &'a ImageOptions,
    destination_has: Option<&'a BlobCheck>,
    /// Warnings for the report (a corrupt entry, a failed store).
    notes: Mutex<Vec<String>>,
}

impl LayerCache<'_> {
    fn note(&self, note: String) {
        if let Ok(mut n) = self.notes.lock() {
            n.push(note);
        }
    }
}

/// A layer from the cache when it holds it (and the blob is sound),
/// else converted and stored in the cache.
fn convert_layer(
    (source, out): (&Source, &LayoutWriter),
    job: &LayerJob,
    (converter, options): (&Converter, &ImageOptions),
    cache: Option<&LayerCache<'_>>,
) -> Result<Converted> {
    let start = Instant::now();
    let Some(c) = cache else {
        return convert_fresh((source, out), job, (converter, options), false, start);
    };
    let fp = c.options.fingerprint(&job.descriptor.media_type);
    match c.cache.lookup(&job.descriptor.digest, &fp) {
        Ok(Some(entry)) => {
            if let Some(done) = serve_cached(source, out, job, c, &entry, start)? {
                return Ok(done);
            }
        }
        Ok(None) => {}
        Err(e) => c.note(format!("{e}; the layer is converted")),
    }
    let (layer, annotations) =
        convert_fresh((source, out), job, (converter, options), true, start)?;
    if let (Some(annotations), "converted") = (&annotations, layer.action) {
        let entry = CacheEntry {
            source_digest: layer.source_digest.clone(),
            fingerprint: fp,
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            diff_id: layer.diff_id.clone().unwrap_or_default(),
            toc_digest: layer.toc_digest.clone().unwrap_or_default(),
            uncompressed_size: layer.uncompressed_size.unwrap_or_default(),
            annotations: annotations.clone(),
        };
        let stored = match layer.digest.parse::<Digest>() {
            Ok(d) => out.open_blob(&d)?,
            Err(_) => None,
        };
        if let Some((mut blob, _)) = stored {
            if let Err(e) = c.cache.insert_from(&entry, &mut blob) {
                c.note(format!("{e}; layer {} is not cached", layer.source_digest));
            }
        }
    }
    Ok((layer, annotations))
}

/// The cached conversion of `job`: its blob copied into `out` (hashed as
/// it is, unless the destination has it already); `None` when the cached
/// blob is unsound, which is then removed from the cache.
fn serve_cached(
    source: &Source,
    out: &LayoutWriter,
    job: &LayerJob,
    c: &LayerCache<'_>,
    entry: &CacheEntry,
    start: Instant,
) -> Result<Option<Converted>> {
    let desc = &job.descriptor;
    let Ok(digest) = entry.digest.parse::<Digest>() else {
        c.cache.remove(entry);
        return Ok(None);
    };
    let mut bytes_in = 0;
    // A registry's layer is not downloaded just to be checked: the point
    // of the cache there is not to fetch it.
    if !source.is_remote() && source.has_blob(&job.digest)? {
        // A source at hand is still checked, as every blob read is: a
        // corrupt one is an error with or without a cache.
        source
            .open_blob(&job.digest, desc.size, &job.referrer)?
            .finish()?;
        bytes_in = desc.size;
    }
    let skip = c.destination_has.is_some_and(|has| (has.0)(&entry.digest));
    let (mut bytes_out, mut bytes_spooled) = (0, 0);
    if !skip && !out.has_blob(&digest) {
        let mut blob = out.new_blob()?;
        match c.cache.copy_blob_into(entry, &mut blob) {
            Ok(n) => bytes_out = n,
            Err(e) => {
                c.note(format!("{e}; the layer was converted again"));
                return Ok(None);
            }
        }
        bytes_spooled = out.store(blob, &digest)?;
    }
    let layer = LayerReport {
        source_digest: desc.digest.clone(),
        source_media_type: desc.media_type.clone(),
        source_size: desc.size,
        action: "converted",
        reason: None,
        media_type: entry.media_type.clone(),
        digest: entry.digest.clone(),
        size: entry.size,
        diff_id: Some(entry.diff_id.clone()),
        toc_digest: Some(entry.toc_digest.clone()),
        uncompressed_size: Some(entry.uncompressed_size),
        seconds: start.elapsed().as_secs_f64(),
        warnings: Vec::new(),
        cache: "hit",
        bytes_in,
        bytes_out,
        state: "cached",
        bytes_spooled,
    };
    Ok(Some((layer, Some(entry.annotations.clone()))))
}

fn convert_fresh(
    (source, out): (&Source, &LayoutWriter),
    job: &LayerJob,
    (converter, options): (&Converter, &ImageOptions),
    cached: bool,
    start: Instant,
) -> Result<Converted> {
    let desc = &job.descriptor;
    let lazy = sniff_lazy(source, job)?;
    if let Some((format, toc)) = &lazy {
        if !options.converts(*format) {
            return keep_lazy(source, out, job, (*format, toc), start);
        }
    }
    let lazy = lazy.as_ref().map(|(format, toc)| (*format, toc));
    let mut reader = source.open_blob(&job.digest, desc.size, &job.referrer)?;
    let file = reader.file().to_string();
    let mut writer = BufWriter::with_capacity(1 << 20, out.new_blob()?);
    let result = convert_stream(&mut reader, lazy, &desc.media_type, converter, &mut writer);
    let written = writer.into_inner().map_err(|e| e.into_error());
    // A blob that does not match its digest is reported as that, even when
    // the converter also choked on it.
    let verified = reader.finish();
    let report = match (result, verified, written) {
        (_, Err(e), _) => Err(e),
        (Err(refused @ estargz_core::Error::UnreadableEntry { .. }), Ok(()), _) => {
            // Readers would refuse the blob; the layer as it is still works, pulled whole.
            let layer = LayerReport {
                source_digest: desc.digest.clone(),
                source_media_type: desc.media_type.clone(),
                source_size: desc.size,
                action: "passed-through",
                reason: Some("eStargz readers would refuse its TOC; kept as it was"),
                media_type: desc.media_type.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                diff_id: None,
                toc_digest: None,
                uncompressed_size: None,
                seconds: start.elapsed().as_secs_f64(),
                warnings: vec![refused.to_string()],
                cache: "off",
                bytes_in: desc.size,
                bytes_out: 0,
                state: "copied",
                bytes_spooled: 0,
            };
            return Ok((layer, None));
        }
        (Err(source), Ok(()), _) => Err(Error::Convert { file, source }),
        (Ok(_), Ok(()), Err(e)) => Err(io_err(format!("the converted {file}"))(e)),
        (Ok(r), Ok(()), Ok(blob)) => Ok((r, blob)),
    };
    let (report, blob) = report?;
    let bytes_spooled = out.store(blob, &report.blob.digest)?;
    let layer = LayerReport {
        source_digest: desc.digest.clone(),
        source_media_type: desc.media_type.clone(),
        source_size: desc.size,
        action: "converted",
        reason: lazy.map(|(format, _)| match format {
            LazyFormat::Estargz => "was eStargz: converted without its TOC and landmark entries",
            LazyFormat::ZstdChunked => "was zstd:chunked: converted without its landmark entries",
        }),
        media_type: report.compression.media_type().to_string(),
        digest: report.blob.digest.to_string(),
        size: report.blob.size,
        diff_id: Some(report.blob.diff_id.to_string()),
        toc_digest: Some(report.toc_digest.to_string()),
        uncompressed_size: Some(report.blob.uncompressed_size),
        seconds: start.elapsed().as_secs_f64(),
        warnings: report.warnings.clone(),
        cache: if cached { "miss" } else { "off" },
        bytes_in: desc.size,
        bytes_out: report.blob.size,
        state: "converted",
        bytes_spooled,
    };

    Ok((layer, Some(report.annotations())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_fit_the_memory_budget() {
        let mib = 1 << 20;
        let opts = |jobs, budget| ImageOptions {
            jobs,
            memory_budget: budget,
            ..ImageOptions::default()
        };
        // 8 threads, 10 layers, 4 MiB chunks: 8 jobs of one thread need 8 × 56 MiB,
        // 3 jobs of two 3 × 72 MiB, 2 jobs of four 2 × 104 MiB.
        assert_eq!(
            plan_jobs(8, 10, 4 * mib, &opts(None, 1 << 30), false),
            (8, 1)
        );
        assert_eq!(
            plan_jobs(8, 10, 4 * mib, &opts(None, 220 * mib), false),
            (3, 2)
        );
        assert_eq!(
            plan_jobs(8, 10, 4 * mib, &opts(None, 200 * mib), false),
            (1, 8)
        );
        assert_eq!(plan_jobs(8, 10, 4 * mib, &opts(None, 0), false), (1, 8));
        assert_eq!(
            plan_jobs(8, 2, 4 * mib, &opts(None, 1 << 30), false),
            (2, 4)
        );
        assert_eq!(plan_jobs(2, 10, 4 * mib, &opts(Some(5), 0), false), (5, 1));
        assert_eq!(
            plan_jobs(4, 0, 4 * mib, &opts(None, 1 << 30), false),
            (1, 4)
        );
        // Blobs held for an upload: the conversions get half the budget.
        assert_eq!(
            plan_jobs(8, 10, 4 * mib, &opts(None, 440 * mib), true),
            (3, 2)
        );
        assert_eq!(
            plan_jobs(8, 10, 4 * mib, &opts(None, 1 << 30), true),
            (8, 1)
        );
    }
}
