//! `estargz verify`: check a blob's footer, TOC, structure and every byte.

use crate::input::BlobArgs;
use crate::output::print_json;
use crate::UsageError;
use anyhow::Result;
use estargz_core::verify::{verify, VerifyOptions};
use estargz_core::Digest;
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
    /// containerd.io/snapshot/stargz/toc.digest annotation).
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
    let open = args.source.toc.open_options()?;
    let source = args.source.source()?;
    let report = verify(
        &source,
        &VerifyOptions {
            expected_toc_digest: expected,
            open,
        },
    );
    if args.json {
        let problems: Vec<serde_json::Value> = report
            .problems
            .iter()
            .map(
                |p| serde_json::json!({"entry": p.entry, "offset": p.offset, "message": p.message}),
            )
            .collect();
        print_json(&serde_json::json!({
            "blob": args.source.blob,
            "valid": report.is_valid(),
            "footer": report.footer.map(|k| k.to_string()),
            "toc_digest": report.toc_digest.map(|d| d.to_string()),
            "toc_offset": report.toc_offset,
            "entries": report.entries,
            "files": report.files,
            "chunks": report.chunks,
            "members": report.members,
            "problems": problems,
        }))?;
    } else {
        for p in &report.problems {
            eprintln!("estargz: {}: {p}", args.source.blob);
        }
        if report.is_valid() && !args.quiet {
            let mut out = crate::output::text_stdout();
            writeln!(
                out,
                "ok {} ({} footer, toc_digest={}, {} files, {} chunks, {} members)",
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
