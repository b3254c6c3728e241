//! `estargz verify`: check a blob's footer, TOC, structure and every byte.

use crate::input::BlobArgs;
use crate::output::print_json;
use crate::UsageError;
use anyhow::Result;
use estargz_core::{verify, Digest, VerifyOptions};
use std::io::Write;

/// Verify a blob: footer, TOC digest, structure, the tar inside, every chunk and file digest.
///
/// Exit code 0 when valid, 1 when any problem is found (each is printed on
/// stderr, or listed in the JSON report), 2 on usage errors.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: BlobArgs,
    /// The TOC digest the blob must have (its layer's
    /// containerd.io/snapshot/stargz/toc.digest annotation; for zstd:chunked,
    /// that or its manifest-checksum annotation).
    #[arg(long, value_name = "DIGEST")]
    toc_digest: Option<String>,
    /// Print one JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing on success: the exit code tells (problems still go to stderr).
    #[arg(short, long, conflicts_with = "json")]
    quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    let expected = match &args.toc_digest {
        Some(d) => Some(d.parse::<Digest>().map_err(|e| UsageError(e.to_string()))?),
        None => None,
    };
    let mut options = VerifyOptions::default();
    options.expected_toc_digest = expected;
    options.open = args.source.toc.open_options()?;
    let source = args.source.source()?;
    let report = verify(&source, &options);
    if args.json {
        // The report's own serialization, with the blob's name and the
        // verdict added; its keys come out sorted, as every JSON output's.
        let mut json = serde_json::to_value(&report)?;
        if let Some(object) = json.as_object_mut() {
            object.insert("blob".into(), serde_json::json!(args.source.blob));
            object.insert("valid".into(), serde_json::json!(report.is_valid()));
        }
        print_json(&json)?;
    } else {
        for p in &report.problems {
            eprintln!("estargz: {}: {p}", args.source.blob);
        }
        if report.is_valid() && !args.quiet {
            let mut out = crate::output::text_stdout();
            // zstd:chunked: frames, and the TOC's second digest.
            let (members, checksum) = match report.manifest_checksum {
                Some(c) => ("frames", format!(", manifest_checksum={c}")),
                None => ("members", String::new()),
            };
            writeln!(
                out,
                "ok {} ({} footer, toc_digest={}{checksum}, {} files, {} chunks, {} {members})",
                args.source.blob,
                report.footer.map(|k| k.to_string()).unwrap_or_default(),
                report.toc_digest.map(|d| d.to_string()).unwrap_or_default(),
                report.files,
                report.chunks,
                report.members
            )?;
        }
    }
    if report.is_valid() {
        Ok(())
    } else {
        Err(crate::Reported(format!(
            "{}: {} problem(s) found",
            args.source.blob,
            report.problems.len()
        ))
        .into())
    }
}
