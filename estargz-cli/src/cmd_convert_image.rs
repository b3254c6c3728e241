//! `estargz convert-image`: every layer of an OCI image to eStargz.

use crate::cmd_convert::{parse_compression, parse_size, EncodingArgs};
use crate::output::{
    forget_in_progress, partial_dir_in, print_json, without_interruption, AtomicFile,
};
use crate::place::place;
use crate::UsageError;
use anyhow::{Context, Result};
use estargz_core::Compression;
use estargz_image::{
    convert_image, write_archive, ImageOptions, LayerReport, LayoutWriter, Progress, Source,
};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Convert every layer of an OCI image (layout directory or archive tar) to eStargz.
///
/// SRC is an OCI image layout directory or an OCI archive tar (Docker ≥ 25
/// `docker save` output included). DST is written as an archive if its name
/// ends in `.tar`, as a layout directory otherwise; it is built next to its
/// final place and renamed there only on success.
#[derive(clap::Args)]
pub struct Args {
    /// The source image: OCI layout directory or OCI archive tar.
    src: PathBuf,
    /// The destination: `NAME.tar` for an OCI archive, anything else for a layout directory.
    dst: PathBuf,
    #[command(flatten)]
    encoding: EncodingArgs,
    /// gzip (eStargz) or zstd:chunked (stargz dialect, lossless: converted layers keep their
    /// diffIDs; media type tar+zstd). Layers already eStargz are passed through as they are.
    /// --level is then zstd's, 1 to 22.
    #[arg(long, value_name = "FORMAT", default_value = "gzip", value_parser = parse_compression)]
    compression: Compression,
    /// Compression threads in all, shared by the layers converted at once (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Layers converted at once (default: as many as --memory allows, at most --threads).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Memory budget for the layers converted at once (estimated as threads × chunk size × 4 + 40 MiB each).
    #[arg(long, value_name = "BYTES", default_value = "1GiB", value_parser = parse_size)]
    memory: u64,
    /// Replace DST if it exists (it is replaced only once the new image is complete).
    #[arg(long)]
    force: bool,
    /// Print one JSON object describing every layer and manifest on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr but errors and warnings.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    let options = ImageOptions {
        converter: args
            .encoding
            .converter(args.threads, false, args.compression)?,
        jobs: args.jobs.map(|j| j as usize),
        memory_budget: args.memory,
    };
    let to_archive = args.dst.extension().is_some_and(|e| e == "tar");
    check_destination(&args.src, &args.dst, to_archive, args.force)?;
    let start = Instant::now();
    let source = Source::open(&args.src)?;

    let parent = match args.dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = partial_dir_in(&parent)?;
    let result = build(&args, &source, &options, temp.path(), to_archive);
    let temp_path = temp.path().to_path_buf();
    // What is left in the temporary directory is the partial output on
    // failure, the replaced DST on success. It is removed with the signal
    // handler held off (which would remove it too, racing this), and only
    // then forgotten: a signal meanwhile still finds it tracked.
    let closed = without_interruption(|| temp.close());
    forget_in_progress(&temp_path);
    let report = result?;
    closed.with_context(|| format!("cannot remove {}", temp_path.display()))?;

    for warning in &report.warnings {
        eprintln!("estargz: warning: {warning}");
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        print_json(&serde_json::json!({
            "source": args.src.display().to_string(),
            "destination": args.dst.display().to_string(),
            "layers": report.layers,
            "manifests": report.manifests,
            "jobs": report.jobs,
            "threads_per_job": report.threads_per_job,
            "warnings": report.warnings,
            "seconds": seconds,
        }))?;
    }
    if !args.quiet {
        let converted = report
            .layers
            .iter()
            .filter(|l| l.action == "converted")
            .count();
        eprintln!(
            "converted {} -> {}: {converted} layers converted, {} passed through, {} manifests and indexes, {seconds:.2}s",
            args.src.display(),
            args.dst.display(),
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
    temp: &Path,
    to_archive: bool,
) -> Result<estargz_image::ImageReport> {
    let image = temp.join("image");
    let layout_dir = if to_archive {
        temp.join("layout")
    } else {
        image.clone()
    };
    std::fs::create_dir(&layout_dir)
        .with_context(|| format!("cannot create {}", layout_dir.display()))?;
    let out = LayoutWriter::new(&layout_dir)?;
    let quiet = args.quiet;
    let report = convert_image(source, &out, options, &|p| {
        if !quiet {
            progress_line(&p);
        }
    })?;
    if !to_archive {
        place(&image, &args.dst, &temp.join("old"), args.force)?;
    } else if std::fs::metadata(&args.dst).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        // A FIFO or device (allowed by --force) is written in place.
        let mut file = AtomicFile::create(&args.dst)?;
        write_archive(&layout_dir, file.writer(), &args.dst.display().to_string())?;
        file.commit()?;
    } else {
        let mut file = std::fs::File::create(&image)
            .with_context(|| format!("cannot create {}", image.display()))?;
        let mut writer = BufWriter::with_capacity(1 << 20, &mut file);
        write_archive(&layout_dir, &mut writer, &args.dst.display().to_string())?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", image.display()))?;
        place(&image, &args.dst, &temp.join("old"), args.force)?;
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
            layer.reason.map(|r| format!(": {r}")).unwrap_or_default()
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
