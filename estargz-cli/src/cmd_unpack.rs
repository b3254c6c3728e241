//! `estargz unpack`: back to the tar stream, or into a directory.

use crate::input::{open_watched_blob_source, RemoteArgs};
use crate::output::{binary_stdout, print_json, AtomicFile, ON_SIGNAL};
use crate::UsageError;
use anyhow::{Context, Result};
use estargz_core::{unpack_tar, unpack_to_dir_with_progress, UnpackOptions, UnpackProgress};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How far `unpack -C` got; static so the signal handler can read it.
static PROGRESS: UnpackProgress = UnpackProgress::new();
/// The blob and the directory of the `unpack -C` under way.
static UNPACKING: OnceLock<(String, PathBuf)> = OnceLock::new();

/// Unpack a blob: to its tar stream (-o; for a lossless blob, the original tar
/// byte for byte) or into a directory (-C), never writing outside it.
#[derive(clap::Args)]
pub struct Args {
    /// The blob: a file, or an http:// or https:// URL read with range requests.
    blob: String,
    /// Write the tar stream to this file, or `-` for stdout (a symbolic link's target is
    /// replaced, a device, FIFO or /dev/stdout written in place).
    #[arg(short, long, value_name = "OUT.tar", conflicts_with = "directory")]
    output: Option<String>,
    /// Unpack into this directory (created if missing).
    #[arg(short = 'C', long, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Restore extended attributes (-C).
    #[arg(long)]
    xattrs: bool,
    /// Set owners from the archive (-C; the default when running as root).
    #[arg(long, overrides_with = "no_same_owner")]
    same_owner: bool,
    /// Do not set owners from the archive (-C).
    #[arg(long)]
    no_same_owner: bool,
    /// Apply OCI whiteouts (.wh.NAME removes NAME) instead of creating .wh.* files (-C).
    #[arg(long)]
    apply_whiteouts: bool,
    /// Skip, with a warning, entries that would leave the directory instead of stopping at the first (-C).
    #[arg(long)]
    skip_unsafe: bool,
    /// Print one JSON object on stdout: entries and bytes written, warnings (-C, or -o FILE).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn run(args: Args) -> Result<()> {
    // The destination first: a bad one fails before the blob is read.
    let mut target = match args.output.as_deref() {
        Some(out) if out != "-" && args.directory.is_none() => {
            Some(AtomicFile::create(std::path::Path::new(out))?)
        }
        _ => None,
    };
    let (file, watch) = open_watched_blob_source(&args.blob, &args.remote)?;
    // A blob rewritten while it is unpacked gives a well-formed mix of old
    // and new bytes: an error, checked before a tar output is committed.
    let unchanged = || watch.as_ref().map_or(Ok(()), |w| w.check_unchanged());
    let context = || format!("unpacking {}", args.blob);
    let report = match (&args.output, &args.directory) {
        (Some(out), None) if out == "-" => {
            if args.json {
                return Err(UsageError(
                    "--json prints on stdout, so the tar cannot go there too; use -o FILE".into(),
                )
                .into());
            }
            let bytes = unpack_tar(&file, binary_stdout()?).with_context(context)?;
            unchanged()?;
            serde_json::json!({ "blob": args.blob, "output": "-", "bytes": bytes })
        }
        (Some(out), None) => {
            let mut target = target.take().expect("created above for -o FILE");
            let bytes = unpack_tar(&file, target.writer()).with_context(context)?;
            unchanged()?;
            target.commit()?;
            serde_json::json!({ "blob": args.blob, "output": out, "bytes": bytes })
        }
        (None, Some(dir)) => {
            let mut opts = {
                let mut o = UnpackOptions::default();
                o.xattrs = args.xattrs;
                o.apply_whiteouts = args.apply_whiteouts;
                o.skip_unsafe = args.skip_unsafe;
                o
            };
            if args.same_owner {
                opts.same_owner = true;
            }
            if args.no_same_owner {
                opts.same_owner = false;
            }
            let _ = UNPACKING.set((args.blob.clone(), dir.clone()));
            let _ = ON_SIGNAL.set(|| {
                if let Some((blob, dir)) = UNPACKING.get() {
                    eprintln!("estargz: interrupted: {}", stopped(blob, dir));
                }
            });
            let report = unpack_to_dir_with_progress(&file, dir, &opts, &PROGRESS)
                .with_context(|| stopped(&args.blob, dir))?;
            unchanged()?;
            for w in &report.warnings {
                eprintln!("estargz: warning: {w}");
            }
            serde_json::json!({
                "blob": args.blob,
                "directory": dir.display().to_string(),
                "entries": report.entries,
                "bytes": report.bytes,
                "warnings": report.warnings,
            })
        }
        _ => return Err(UsageError("give exactly one of -o OUT.tar and -C DIR".into()).into()),
    };
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}

/// What an `unpack -C` that stopped leaves: the entries it wrote stay, and
/// the file it was writing may be cut short.
fn stopped(blob: &str, dir: &Path) -> String {
    let (entries, partial) = (PROGRESS.entries(), PROGRESS.partial());
    if entries == 0 && partial.is_none() {
        return format!("unpacking {blob} into {}", dir.display());
    }
    let mut text = format!(
        "unpacking {blob} into {} stopped after {entries} {}",
        dir.display(),
        if entries == 1 { "entry" } else { "entries" }
    );
    if let Some(p) = partial {
        text.push_str(&format!("; {} may be incomplete", dir.join(p).display()));
    }
    text.push_str(&format!("; {} holds a partial tree", dir.display()));
    text
}
