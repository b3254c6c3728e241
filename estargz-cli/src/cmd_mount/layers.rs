//! `estargz mount --layers IMAGE DIR`: the image's manifest resolved, its
//! layers opened one by one and handed to `estargz-fuse`'s stack, which
//! mounts and unmounts them in order.

use super::{
    log_event, log_to_stderr, report, signals, spawn_fetch, spawn_signal_handler, Args, MountCache,
    Served, WhiteoutArg,
};
use crate::input::{open_remote_blob_with, registry_client};
use crate::UsageError;
use anyhow::{bail, Context, Result};
use estargz_core::{Blob, Digest, ReadAt};
use estargz_fuse::{CountedSource, LayerFs, StackBuilder, StackOptions, Whiteouts};
use estargz_image::oci::{self, Descriptor, ImageIndex, Kind, Manifest};
use estargz_image::Source;
use estargz_registry::{Reference, Registry};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Nested indexes followed at most (an index of indexes is rare already).
const MAX_INDEX_DEPTH: usize = 4;

/// Where the image's documents and layers come from.
enum Image {
    Registry {
        reference: Reference,
        registry: Box<Registry>,
    },
    Layout {
        source: Source,
        reference: Option<String>,
    },
}

/// A layer to mount: its descriptor and the TOC digest it must have.
struct Layer {
    desc: Descriptor,
    toc: Digest,
}

pub(super) fn run(args: Args) -> Result<()> {
    if matches!(args.whiteouts, WhiteoutArg::Stored) {
        bail!(UsageError(
            "--layers needs --whiteouts overlay: overlayfs applies them".into()
        ));
    }
    if args.source.toc.external_toc.is_some() {
        bail!(UsageError("--layers takes no --external-toc".into()));
    }
    if !args.dir.is_dir() {
        bail!(UsageError(format!(
            "{} is not a directory",
            args.dir.display()
        )));
    }
    log_to_stderr(args.debug);
    let image = Image::open(&args)?;
    let manifest = image.manifest(args.platform.as_deref())?;
    let layers = lazy_layers(&manifest)?;
    // Caught from here on: a Ctrl-C while layers mount waits for the
    // stack, which then comes down in order.
    let signals = signals()?;
    let cache = MountCache::open(&args)?;
    let mut opts = StackOptions::default();
    opts.layer.allow_other = args.allow_other;
    let mut stack = StackBuilder::new(&opts)?;
    let mut served = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let what = || format!("layer {i} ({})", layer.desc.digest);
        let one = Arc::new(image.open_layer(&args, layer, &cache).with_context(what)?);
        let fs = LayerFs::new(one.blob.clone())
            .whiteouts(Whiteouts::Overlay)
            .on_event(log_event);
        stack.push(fs).with_context(what)?;
        eprintln!("estargz: {} mounted", what());
        served.push(one);
    }
    let stack = stack.finish(&args.dir)?;
    let cancel = Arc::new(AtomicBool::new(false));
    for one in &served {
        spawn_fetch(one, &cancel, !args.no_prefetch, args.background_fetch);
    }
    let unmounter = stack.unmounter();
    let (reported, cached) = (served.clone(), cache.clone());
    spawn_signal_handler(
        signals,
        move || format!("{}; {}", reports(&reported), cached.report()),
        move |detach| match detach {
            true => unmounter.detach(),
            false => unmounter.unmount(),
        },
    );
    let (name, dir) = (&args.source.blob, args.dir.display());
    let n = served.len();
    eprintln!("estargz: {name} ({n} layers) mounted on {dir} (Ctrl-C to unmount)");
    let result = stack.run();
    cancel.store(true, Ordering::Relaxed);
    cache.flush();
    eprintln!(
        "estargz: unmounted {dir}: {}; {}",
        reports(&served),
        cache.report()
    );
    Ok(result?)
}

fn reports(served: &[Arc<Served>]) -> String {
    let each: Vec<String> = served
        .iter()
        .enumerate()
        .map(|(i, s)| format!("layer {i}: {}", report(s)))
        .collect();
    each.join("; ")
}

/// Every layer with the TOC digest it is read by; the first that cannot
/// be read lazily is an error naming it, before anything is mounted.
fn lazy_layers(manifest: &Manifest) -> Result<Vec<Layer>> {
    if manifest.layers.is_empty() {
        bail!("the image has no layers");
    }
    let mut out = Vec::with_capacity(manifest.layers.len());
    for (i, desc) in manifest.layers.iter().enumerate() {
        match oci::lazy_toc_digest(desc) {
            Ok(toc) => out.push(Layer {
                desc: desc.clone(),
                toc,
            }),
            Err(why) => bail!(
                "layer {i} ({}) cannot be mounted lazily: {why}; \
                 convert the image with `estargz convert-image` first",
                desc.digest
            ),
        }
    }
    Ok(out)
}

impl Image {
    fn open(args: &Args) -> Result<Image> {
        let name = &args.source.blob;
        if name.starts_with("docker://") {
            let reference =
                Reference::parse(name).map_err(|e| UsageError(format!("{name}: {e}")))?;
            let registry = Box::new(registry_client(&reference, &args.source.remote)?);
            return Ok(Image::Registry {
                reference,
                registry,
            });
        }
        let Some(rest) = name.strip_prefix("oci:") else {
            let wanted = "--layers takes docker://HOST/REPO[:TAG|@DIGEST] or oci:DIR[:REF]";
            bail!(UsageError(format!("{name}: {wanted}")));
        };
        // `oci:DIR:REF`, unless the whole of it is the directory.
        let (dir, reference) = match rest.rsplit_once(':') {
            Some((dir, r)) if !PathBuf::from(rest).is_dir() => (dir, Some(r.to_string())),
            _ => (rest, None),
        };
        let source = Source::open(dir.as_ref()).with_context(|| format!("opening {name}"))?;
        Ok(Image::Layout { source, reference })
    }

    /// A manifest or index document: its media type and bytes.
    fn document(&self, desc: Option<&Descriptor>) -> Result<(String, Vec<u8>)> {
        match (self, desc) {
            (
                Image::Registry {
                    reference,
                    registry,
                },
                _,
            ) => {
                let wanted = desc.map_or(reference.reference(), |d| d.digest.as_str());
                let pulled = registry
                    .pull_manifest(reference.repository(), wanted)
                    .with_context(|| format!("cannot pull the manifest {wanted}"))?;
                Ok((pulled.media_type, pulled.bytes))
            }
            (Image::Layout { source, .. }, None) => {
                let bytes = source
                    .read_file("index.json", estargz_image::source::MAX_DOCUMENT_SIZE)?
                    .context("the layout has no index.json")?;
                Ok((oci::MEDIA_TYPE_INDEX.to_string(), bytes))
            }
            (Image::Layout { source, .. }, Some(d)) => {
                let digest = oci::parse_digest(&d.digest, "index.json")?;
                let bytes = source.read_blob(&digest, d.size, "index.json")?;
                Ok((d.media_type.clone(), bytes))
            }
        }
    }

    /// The image manifest, through indexes by platform (or, at the top of
    /// a layout, by `:REF`).
    fn manifest(&self, platform: Option<&str>) -> Result<Manifest> {
        let (os, arch) = match platform {
            Some(p) => p
                .split_once('/')
                .map(|(o, a)| (o.to_string(), a.to_string()))
                .ok_or_else(|| UsageError(format!("--platform {p}: OS/ARCH expected")))?,
            None => ("linux".to_string(), host_arch().to_string()),
        };
        let mut desc: Option<Descriptor> = None;
        for depth in 0..=MAX_INDEX_DEPTH {
            let (media_type, bytes) = self.document(desc.as_ref())?;
            match oci::kind_of(&media_type) {
                Kind::Manifest => return Ok(oci::parse_json(&bytes, "manifest")?),
                Kind::Index => {
                    let index: ImageIndex = oci::parse_json(&bytes, "index")?;
                    desc = Some(self.pick(&index, depth, &os, &arch, platform.is_some())?);
                }
                Kind::Other => bail!("{media_type} is neither an image manifest nor an index"),
            }
        }
        bail!("indexes nested deeper than {MAX_INDEX_DEPTH}")
    }

    fn pick(
        &self,
        index: &ImageIndex,
        depth: usize,
        os: &str,
        arch: &str,
        asked: bool,
    ) -> Result<Descriptor> {
        if let (Image::Layout { reference, .. }, 0) = (self, depth) {
            let named = index.manifests.iter().filter(|m| {
                let name = m
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(oci::ANNOTATION_REF_NAME));
                reference.is_none() || name == reference.as_ref()
            });
            let named: Vec<&Descriptor> = named.collect();
            match (&named[..], reference) {
                ([one], _) => return Ok((*one).clone()),
                ([], Some(r)) => bail!("the layout names no image {r:?}"),
                ([], None) => bail!("the layout's index.json lists no image"),
                _ => bail!(
                    "the layout holds {} images: pick one with oci:DIR:REF",
                    named.len()
                ),
            }
        }
        let found = oci::pick_platform(index, os, arch).or_else(|| {
            (!asked)
                .then(|| oci::pick_platform(index, "linux", "amd64"))
                .flatten()
        });
        match found {
            Some(d) => Ok(d.clone()),
            None if index.manifests.len() == 1 && !asked => Ok(index.manifests[0].clone()),
            None => bail!("the index has no image for {os}/{arch} (pick one with --platform)"),
        }
    }

    /// The layer's blob opened through its TOC, which must have the
    /// digest the manifest gives.
    fn open_layer(&self, args: &Args, layer: &Layer, cache: &MountCache) -> Result<Served> {
        let mut opts = estargz_core::OpenOptions::default();
        opts.expected_toc_digest = Some(layer.toc);
        let (source, http): (Box<dyn ReadAt>, _) = match self {
            Image::Registry { reference, .. } => {
                let name = format!(
                    "docker://{}/{}@{}",
                    reference.registry(),
                    reference.repository(),
                    layer.desc.digest
                );
                let remote = &args.source.remote;
                let http = open_remote_blob_with(&name, remote, super::mount_http(remote)?)?
                    .map(Arc::new)
                    .context("not a registry blob")?;
                (Box::new(http.clone()), Some(http))
            }
            Image::Layout { source, .. } => {
                let digest = oci::parse_digest(&layer.desc.digest, "manifest")?;
                (
                    Box::new(source.blob_at(&digest, layer.desc.size, "manifest")?),
                    None,
                )
            }
        };
        let blob = Blob::open(CountedSource::new(source), &opts)?.with_cache(cache.shared());
        Ok(Served {
            blob: Arc::new(blob),
            http,
        })
    }
}

/// The host's architecture as OCI platforms name it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}
