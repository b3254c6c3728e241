//! `estargz convert-image`: every layer of an OCI image to eStargz.

use crate::cmd_convert::{parse_size, EncodingArgs};
use crate::output::{forget_in_progress, partial_dir_in, print_json, AtomicFile};
use crate::UsageError;
use anyhow::{Context, Result};
use estargz_image::{
    convert_image, write_archive, ImageOptions, LayerReport, LayoutWriter, Progress, Source,
};
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
        convert: args.encoding.convert_options(args.threads)?,
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
    let result = result.and_then(|report| {
        if !to_archive {
            move_into_place(temp.path(), &args.dst)?;
        }
        Ok(report)
    });
    forget_in_progress(temp.path());
    // Dropping `temp` removes whatever is left (all of it on failure).
    drop(temp);
    let report = result?;

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

fn build(
    args: &Args,
    source: &Source,
    options: &ImageOptions,
    temp: &Path,
    to_archive: bool,
) -> Result<estargz_image::ImageReport> {
    let layout_dir = if to_archive {
        temp.join("layout")
    } else {
        temp.to_path_buf()
    };
    std::fs::create_dir_all(&layout_dir)
        .with_context(|| format!("cannot create {}", layout_dir.display()))?;
    let out = LayoutWriter::new(&layout_dir)?;
    let quiet = args.quiet;
    let report = convert_image(source, &out, options, &|p| {
        if !quiet {
            progress_line(&p);
        }
    })?;
    if to_archive {
        let mut file = AtomicFile::create(&args.dst)?;
        write_archive(&layout_dir, file.writer(), &args.dst.display().to_string())?;
        file.commit()?;
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

/// Renames the finished layout to `dst`; an existing `dst` (allowed by
/// --force or empty) is moved aside first and removed only afterwards.
fn move_into_place(temp: &Path, dst: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Temporary directories are private; the result is an ordinary one.
        std::fs::set_permissions(temp, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot set permissions of {}", temp.display()))?;
    }
    let aside = if std::fs::symlink_metadata(dst).is_ok() {
        let aside = temp.with_extension("old");
        std::fs::rename(dst, &aside)
            .with_context(|| format!("cannot move the existing {} aside", dst.display()))?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(temp, dst) {
        if let Some(aside) = &aside {
            let _ = std::fs::rename(aside, dst);
        }
        return Err(e)
            .with_context(|| format!("cannot rename the output into place at {}", dst.display()));
    }
    if let Some(aside) = aside {
        let removed = if aside.is_dir() {
            std::fs::remove_dir_all(&aside)
        } else {
            std::fs::remove_file(&aside)
        };
        removed.with_context(|| format!("cannot remove the replaced {}", aside.display()))?;
    }
    Ok(())
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
