//! `estargz convert-image`: every layer of an OCI image to eStargz.

use crate::cmd_convert::{parse_compression, parse_size, EncodingArgs};
use crate::output::{
    forget_in_progress, partial_dir_in, print_json, without_interruption, AtomicFile,
};
use crate::place::place;
use crate::progress::Lines;
use crate::UsageError;
use anyhow::{Context, Result};
use estargz_core::Compression;
use estargz_image::cache::{default_dir, Cache};
use estargz_image::held::MemoryPool;
use estargz_image::registry::{open_image, push_image, PullReport, PushOptions, PushReport};
use estargz_image::{
    convert_image, write_archive, BlobCheck, ImageOptions, ImageReport, LayerReport, LayoutWriter,
    Progress, Source,
};
use estargz_registry::{
    credentials_from_auth_files, Credentials, Reference, Registry, RegistryOptions,
};
use std::ffi::{OsStr, OsString};
use std::io::BufWriter;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Convert every layer of an OCI image (layout directory, archive tar, or registry image) to eStargz.
///
/// SRC and DST are each an OCI image layout directory, an OCI archive tar
/// (Docker ≥ 25 `docker save` output included), or an image in a registry,
/// spelled as skopeo spells them: `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`,
/// `oci:DIR`, `oci-archive:FILE`, or a bare path. A bare DST is written as
/// an archive if its name ends in `.tar`, as a layout directory otherwise;
/// it is built next to its final place and renamed there only on success.
/// A registry SRC's layers stream from the registry into the converter,
/// checked against their digests as they arrive; for a registry DST the
/// converted blobs are held in memory within --memory (beyond it, in
/// unnamed spool files in $TMPDIR) until every layer is converted, then
/// uploaded, then the manifests by digest, then its tag, so a failure
/// never leaves the tag naming missing content.
#[derive(clap::Args)]
pub struct Args {
    /// The source image: `docker://HOST/REPO:TAG`, `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` (REF picks the image of that name), or a path.
    src: OsString,
    /// The destination: `docker://HOST/REPO:TAG`, `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` (REF names the image), `NAME.tar` for an OCI archive, anything else for a layout directory.
    dst: OsString,
    #[command(flatten)]
    encoding: EncodingArgs,
    /// gzip (eStargz) or zstd:chunked (stargz dialect, lossless: a converted plain or gzip
    /// layer keeps its diffID; media type tar+zstd). zstd:chunked converts gzip eStargz layers too (without
    /// their TOC and landmark entries); layers already in the target format, and zstd:chunked
    /// layers when converting to gzip, are passed through unless --reconvert. --level is then
    /// zstd's, 1 to 22.
    #[arg(long, value_name = "FORMAT", default_value = "gzip", value_parser = parse_compression)]
    compression: Compression,
    /// Compression threads in all, shared by the layers converted at once (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Layers converted at once (default: as many as --memory allows, at most --threads).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Memory budget for the layers converted at once (estimated as threads × chunk size × 4 + 40 MiB each)
    /// and, for a registry DST, the converted blobs held for the upload (spooled to $TMPDIR beyond it).
    #[arg(long, value_name = "BYTES", default_value = "1GiB", value_parser = parse_size)]
    memory: u64,
    /// Replace DST if it exists (it is replaced only once the new image is complete).
    #[arg(long)]
    force: bool,
    /// Convert layers that are already eStargz or zstd:chunked too, instead of passing them
    /// through: their TOC and landmark entries are dropped, the rest converted as any layer.
    #[arg(long)]
    reconvert: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// Print one JSON object describing every layer and manifest on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr but errors and warnings.
    #[arg(short, long)]
    quiet: bool,
}

/// How to reach the registries of a `docker://` SRC or DST.
#[derive(clap::Args)]
struct RegistryArgs {
    /// `USER[:PASS]` for a registry SRC (default: the auth files, else anonymous).
    #[arg(long, value_name = "USER[:PASS]")]
    src_creds: Option<String>,
    /// `USER[:PASS]` for a registry DST (default: the auth files, else anonymous).
    #[arg(long, value_name = "USER[:PASS]")]
    dest_creds: Option<String>,
    /// Verify the SRC registry's TLS certificate; `false` also allows plain HTTP.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    src_tls_verify: bool,
    /// Verify the DST registry's TLS certificate; `false` also allows plain HTTP.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dest_tls_verify: bool,
    /// A directory of PEM CA certificates (`*.crt`, `*.pem`) trusted for the SRC registry.
    #[arg(long, value_name = "DIR")]
    src_cert_dir: Option<PathBuf>,
    /// A directory of PEM CA certificates (`*.crt`, `*.pem`) trusted for the DST registry.
    #[arg(long, value_name = "DIR")]
    dest_cert_dir: Option<PathBuf>,
}

/// The conversion cache (docs/cache.md).
#[derive(clap::Args)]
struct CacheArgs {
    /// Conversion cache directory: layers converted before with the same options are taken
    /// from it (default: $XDG_CACHE_HOME/estargz, else ~/.cache/estargz).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Use no conversion cache: read nothing from it, write nothing to it.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Size cap of the cached blobs; least recently used entries are removed beyond it
    /// (suffixes K, M, G, KiB, MiB, GiB accepted).
    #[arg(long, value_name = "BYTES", default_value = "10GiB", value_parser = parse_size)]
    cache_max: u64,
}

/// The cache to use: `--cache DIR`, else the default directory (a
/// warning, and no cache, when that cannot be made), none with --no-cache.
fn open_cache(args: &CacheArgs) -> Result<Option<Arc<Cache>>> {
    if args.no_cache {
        return Ok(None);
    }
    if let Some(dir) = &args.cache {
        return Ok(Some(Arc::new(Cache::open(dir, args.cache_max)?)));
    }
    let Some(dir) = default_dir() else {
        eprintln!("estargz: warning: neither XDG_CACHE_HOME nor HOME is set: no conversion cache");
        return Ok(None);
    };
    match Cache::open(&dir, args.cache_max) {
        Ok(cache) => Ok(Some(Arc::new(cache))),
        Err(e) => {
            eprintln!("estargz: warning: {e}: no conversion cache (use --cache DIR or --no-cache)");
            Ok(None)
        }
    }
}

/// SRC or DST as given.
enum Endpoint {
    /// A layout directory or archive; `archive` is `None` for a bare path.
    Path {
        path: PathBuf,
        archive: Option<bool>,
        /// `REF` of `oci:DIR:REF`: the image's name in the layout.
        reference: Option<String>,
    },
    Registry(Reference),
}

/// `docker://…`, `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` or a path. A
/// SRC's REF picks the image of that name; a DST's names the result.
fn parse_endpoint(text: &OsStr, role: &str) -> Result<Endpoint> {
    let bytes = text.as_bytes();
    if let Some(s) = text.to_str().filter(|s| s.starts_with("docker://")) {
        let reference = Reference::parse(s).map_err(|e| UsageError(format!("{role}: {e}")))?;
        return Ok(Endpoint::Registry(reference));
    }
    for (prefix, archive) in [(&b"oci:"[..], false), (&b"oci-archive:"[..], true)] {
        let Some(rest) = bytes.strip_prefix(prefix) else {
            continue;
        };
        let (path, reference) = match rest.iter().position(|&b| b == b':') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(UsageError(format!(
                "{role}: no path after {}",
                String::from_utf8_lossy(prefix)
            ))
            .into());
        }
        let reference = reference
            .filter(|r| !r.is_empty())
            .map(|r| {
                std::str::from_utf8(r)
                    .map(str::to_string)
                    .map_err(|_| UsageError(format!("{role}: the reference is not UTF-8")))
            })
            .transpose()?;
        let path = PathBuf::from(OsStr::from_bytes(path));
        return Ok(Endpoint::Path {
            path,
            archive: Some(archive),
            reference,
        });
    }
    Ok(Endpoint::Path {
        path: PathBuf::from(text),
        archive: None,
        reference: None,
    })
}

impl Endpoint {
    /// The `REF` of `oci:DIR:REF` or `oci-archive:FILE:REF`.
    fn reference(&self) -> Option<String> {
        match self {
            Endpoint::Path { reference, .. } => reference.clone(),
            Endpoint::Registry(_) => None,
        }
    }
}

/// A client for `reference`'s registry: `creds`, else the auth files.
fn registry_for(
    reference: &Reference,
    creds: Option<&str>,
    tls_verify: bool,
    cert_dir: Option<&Path>,
) -> Result<Registry> {
    let mut opts = RegistryOptions::default();
    opts.credentials = match creds {
        Some(c) => Credentials::from_user_pass(c),
        None => credentials_from_auth_files(reference.registry())?,
    };
    opts.tls_verify = tls_verify;
    if let Some(dir) = cert_dir {
        opts.ca_certs = Some(read_cert_dir(dir)?);
    }
    Ok(Registry::new(reference.api_host(), opts)?)
}

/// Every `*.crt` and `*.pem` of `dir`, concatenated.
fn read_cert_dir(dir: &Path) -> Result<Vec<u8>> {
    let mut pem = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.extension().is_some_and(|e| e == "crt" || e == "pem") {
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            pem.extend_from_slice(&bytes);
            pem.push(b'\n');
        }
    }
    if pem.is_empty() {
        return Err(UsageError(format!("{}: no *.crt or *.pem certificate", dir.display())).into());
    }
    Ok(pem)
}

/// What happened beyond the conversion, for the summary and --json.
#[derive(Default)]
struct Transfers {
    pulled: Option<PullReport>,
    pushed: Option<PushReport>,
}

pub fn run(args: Args) -> Result<()> {
    let src = parse_endpoint(&args.src, "SRC")?;
    let dst = parse_endpoint(&args.dst, "DST")?;
    let options = ImageOptions {
        converter: args
            .encoding
            .converter(args.threads, false, args.compression)?,
        jobs: args.jobs.map(|j| j as usize),
        memory_budget: args.memory,
        cache: open_cache(&args.cache)?,
        destination_has: None,
        source_ref: src.reference(),
        dest_ref: dst.reference(),
        reconvert: args.reconvert,
    };
    let lines = Lines::new(args.quiet || args.json);
    let start = Instant::now();
    let mut transfers = Transfers::default();
    let source_fetched;
    let report = match (&src, &dst) {
        (_, Endpoint::Path { path, archive, .. }) => {
            let to_archive =
                archive.unwrap_or_else(|| path.extension().is_some_and(|e| e == "tar"));
            // A registry SRC cannot be DST: no path to compare.
            let src_path = match &src {
                Endpoint::Path { path, .. } => path.as_path(),
                Endpoint::Registry(_) => Path::new(""),
            };
            check_destination(src_path, path, to_archive, args.force)?;
            let source = open_source(&args, &src, &mut transfers)?;
            let report = to_path(&args, &source, &options, path, to_archive, &lines)?;
            source_fetched = source.fetched();
            report
        }
        (_, Endpoint::Registry(target)) => {
            let source = open_source(&args, &src, &mut transfers)?;
            let report = to_registry(
                &args,
                &source,
                &options,
                (&src, target),
                &mut transfers,
                &lines,
            )?;
            source_fetched = source.fetched();
            report
        }
    };
    if let Some(pulled) = &mut transfers.pulled {
        for (digest, bytes) in source_fetched {
            pulled.blobs.push(digest);
            pulled.bytes += bytes;
        }
    }
    lines.finish();
    summarize(&args, &report, &transfers, start.elapsed().as_secs_f64())
}

/// The source: a layout or archive, or a registry's image whose blobs
/// stream from the registry as the conversion reads them (layers the
/// cache holds are not read at all).
fn open_source(args: &Args, src: &Endpoint, transfers: &mut Transfers) -> Result<Source> {
    match src {
        Endpoint::Path { path, .. } => Ok(Source::open(path)?),
        Endpoint::Registry(image) => {
            let r = &args.registry;
            let registry = registry_for(
                image,
                r.src_creds.as_deref(),
                r.src_tls_verify,
                r.src_cert_dir.as_deref(),
            )?;
            let (source, pulled) = open_image(Arc::new(registry), image)?;
            if !args.quiet {
                eprintln!(
                    "reading {image} ({}): {} manifests, {} blobs streamed as they are needed",
                    short(&pulled.digest),
                    pulled.manifests,
                    pulled.named.len(),
                );
            }
            transfers.pulled = Some(pulled);
            Ok(source)
        }
    }
}

fn convert_into(
    args: &Args,
    source: &Source,
    options: &ImageOptions,
    dir: &Path,
    lines: &Lines,
) -> Result<ImageReport> {
    std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = LayoutWriter::new(dir)?;
    convert_to(args, source, options, &out, lines)
}

fn convert_to(
    args: &Args,
    source: &Source,
    options: &ImageOptions,
    out: &LayoutWriter,
    lines: &Lines,
) -> Result<ImageReport> {
    let quiet = args.quiet;
    Ok(convert_image(source, out, options, &|p| {
        let layer = match &p {
            Progress::Converted { layer, .. } | Progress::PassedThrough(layer) => layer,
        };
        if lines.shown() {
            lines.set(&layer.source_digest, layer_line(layer));
        } else if !quiet {
            progress_line(&p);
        }
    })?)
}

/// A layer's terminal line: digest, bytes in and out, state.
fn layer_line(layer: &LayerReport) -> String {
    format!(
        "{} in {} out {} {} (cache {})",
        short(&layer.source_digest),
        mb(layer.bytes_in),
        mb(layer.bytes_out),
        layer.state,
        layer.cache
    )
}

/// Converts into memory (spooled to $TMPDIR beyond the memory budget)
/// and pushes that to `target`. Blobs the destination has, or can mount
/// from the source's repository, are not held: the push finds them there.
fn to_registry(
    args: &Args,
    source: &Source,
    options: &ImageOptions,
    (src, target): (&Endpoint, &Reference),
    transfers: &mut Transfers,
    lines: &Lines,
) -> Result<ImageReport> {
    let r = &args.registry;
    let registry = Arc::new(registry_for(
        target,
        r.dest_creds.as_deref(),
        r.dest_tls_verify,
        r.dest_cert_dir.as_deref(),
    )?);
    let mut push = PushOptions::default();
    if let (Endpoint::Registry(from), Some(pulled)) = (src, &transfers.pulled) {
        if from.registry() == target.registry() && from.repository() != target.repository() {
            push.mount_from = Some((
                from.repository().to_string(),
                pulled.named.iter().cloned().collect(),
            ));
        }
    }
    let mut options = options.clone();
    let (check, repo) = (registry.clone(), target.repository().to_string());
    let mountable = push.mount_from.as_ref().map(|(_, d)| d.clone());
    let obtainable = BlobCheck(Arc::new(move |digest| {
        mountable.as_ref().is_some_and(|m| m.contains(digest))
            || check.blob_exists(&repo, digest).unwrap_or(false)
    }));
    options.destination_has = Some(obtainable.clone());
    let pool = MemoryPool::new(options.memory_budget);
    let out = LayoutWriter::held(pool, &std::env::temp_dir(), Some(obtainable));
    let mut report = convert_to(args, source, &options, &out, lines)?;
    if let Some(cache) = &options.cache {
        // Not held because the destination had them: should it have
        // lost them since, they are uploaded from the cache.
        for layer in report.layers.iter().filter(|l| l.cache == "hit") {
            let fp = options.fingerprint(&layer.source_media_type);
            if let Ok(Some(entry)) = cache.lookup(&layer.source_digest, &fp) {
                push.blob_files
                    .insert(layer.digest.clone(), cache.blob_path(&entry));
            }
        }
    }
    push.jobs = report.jobs;
    let pushed = push_image(&registry, &out, target, &push, Some(source))?;
    drop(out);
    for layer in &mut report.layers {
        if let Some(&(state, bytes)) = pushed.outcomes.get(&layer.digest) {
            layer.state = state;
            layer.bytes_out = bytes;
        }
        lines.set(&layer.source_digest, layer_line(layer));
    }
    if !args.quiet {
        eprintln!(
            "pushed {target} ({}): {} blobs uploaded ({}), {} already there, {} mounted, {} manifests",
            short(&pushed.digest),
            pushed.blobs_pushed,
            mb(pushed.bytes_pushed),
            pushed.blobs_existing,
            pushed.blobs_mounted,
            pushed.manifests
        );
    }
    transfers.pushed = Some(pushed);
    Ok(report)
}

/// Converts to the layout directory or archive at `dst`, built in a
/// temporary directory next to it.
fn to_path(
    args: &Args,
    source: &Source,
    options: &ImageOptions,
    dst: &Path,
    to_archive: bool,
    lines: &Lines,
) -> Result<ImageReport> {
    let parent = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = partial_dir_in(&parent)?;
    let result = build(args, source, options, (temp.path(), dst), to_archive, lines);
    let temp_path = temp.path().to_path_buf();
    // What is left in the temporary directory is the partial output on
    // failure, the replaced DST on success. It is removed with the signal
    // handler held off (which would remove it too, racing this), and only
    // then forgotten: a signal meanwhile still finds it tracked.
    let closed = without_interruption(|| temp.close());
    forget_in_progress(&temp_path);
    let report = result?;
    closed.with_context(|| format!("cannot remove {}", temp_path.display()))?;
    Ok(report)
}

fn summarize(args: &Args, report: &ImageReport, transfers: &Transfers, seconds: f64) -> Result<()> {
    for warning in &report.warnings {
        eprintln!("estargz: warning: {warning}");
    }
    let (src, dst) = (args.src.to_string_lossy(), args.dst.to_string_lossy());
    if args.json {
        let mut doc = serde_json::json!({
            "source": src,
            "destination": dst,
            "layers": report.layers,
            "manifests": report.manifests,
            "jobs": report.jobs,
            "threads_per_job": report.threads_per_job,
            "warnings": report.warnings,
            "seconds": seconds,
        });
        if let Some(p) = &transfers.pulled {
            doc["pulled"] = serde_json::json!({
                "digest": p.digest, "manifests": p.manifests, "blobs": p.blobs.len(), "bytes": p.bytes,
            });
        }
        if let Some(p) = &transfers.pushed {
            doc["pushed"] = serde_json::to_value(p)?;
        }
        print_json(&doc)?;
    }
    if !args.quiet {
        let converted = report
            .layers
            .iter()
            .filter(|l| l.action == "converted")
            .count();
        eprintln!(
            "converted {src} -> {dst}: {converted} layers converted, {} passed through, {} manifests and indexes, {seconds:.2}s",
            report.layers.len() - converted,
            report.manifests.len(),
        );
    }
    Ok(())
}

/// Converts into `temp/image` (a layout directory, or an archive built
/// from `temp/layout`) and puts that at DST.
fn build(
    args: &Args,
    source: &Source,
    options: &ImageOptions,
    (temp, dst): (&Path, &Path),
    to_archive: bool,
    lines: &Lines,
) -> Result<ImageReport> {
    let image = temp.join("image");
    let layout_dir = if to_archive {
        temp.join("layout")
    } else {
        image.clone()
    };
    let report = convert_into(args, source, options, &layout_dir, lines)?;
    if !to_archive {
        place(&image, dst, &temp.join("old"), args.force)?;
    } else if std::fs::metadata(dst).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        // A FIFO or device (allowed by --force) is written in place.
        let mut file = AtomicFile::create(dst)?;
        write_archive(&layout_dir, file.writer(), &dst.display().to_string())?;
        file.commit()?;
    } else {
        let mut file = std::fs::File::create(&image)
            .with_context(|| format!("cannot create {}", image.display()))?;
        let mut writer = BufWriter::with_capacity(1 << 20, &mut file);
        write_archive(&layout_dir, &mut writer, &dst.display().to_string())?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", image.display()))?;
        place(&image, dst, &temp.join("old"), args.force)?;
    }
    Ok(report)
}

/// DST may be absent, an empty directory, or anything with --force.
fn check_destination(src: &Path, dst: &Path, to_archive: bool, force: bool) -> Result<()> {
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize()) {
        if a == b {
            return Err(
                UsageError(format!("{} is both source and destination", dst.display())).into(),
            );
        }
    }
    let Ok(meta) = std::fs::symlink_metadata(dst) else {
        return Ok(());
    };
    let ty = meta.file_type();
    let replaceable = ty.is_dir() || ty.is_file() || ty.is_symlink();
    if !to_archive && !replaceable {
        // A device or FIFO (say /dev/null) would be moved aside and deleted.
        return Err(UsageError(format!(
            "{} is neither a directory nor a file; refusing to replace it",
            dst.display()
        ))
        .into());
    }
    let empty_dir = !to_archive
        && meta.is_dir()
        && std::fs::read_dir(dst).is_ok_and(|mut d| d.next().is_none());
    if empty_dir || force {
        return Ok(());
    }
    Err(UsageError(format!(
        "{} exists; use --force to replace it",
        dst.display()
    ))
    .into())
}

fn progress_line(p: &Progress<'_>) {
    match p {
        Progress::Converted { done, total, layer } => eprintln!(
            "[{done}/{total}] {} ({}, {}) -> {} ({}) in {:.2}s{}",
            short(&layer.source_digest),
            short_type(&layer.source_media_type),
            mb(layer.source_size),
            short(&layer.digest),
            mb(layer.size),
            layer.seconds,
            if layer.cache == "hit" {
                " (from the cache)".to_string()
            } else {
                layer.reason.map(|r| format!(": {r}")).unwrap_or_default()
            }
        ),
        Progress::PassedThrough(layer) => eprintln!(
            "[passed through] {} ({}, {}): {}",
            short(&layer.source_digest),
            short_type(&layer.source_media_type),
            mb(layer.source_size),
            reason(layer)
        ),
    }
}

fn reason(layer: &LayerReport) -> &str {
    layer.reason.unwrap_or("unchanged")
}

/// `sha256:` and the first 12 hex digits, as `docker images` shows them.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn short_type(media_type: &str) -> &str {
    media_type.rsplit('.').next().unwrap_or(media_type)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
