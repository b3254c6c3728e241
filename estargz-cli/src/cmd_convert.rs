//! `estargz convert`: lossless tar → eStargz.

use crate::input::open_input;
use crate::output::{binary_stdout, print_json, AtomicFile};
use crate::UsageError;
use anyhow::{Context, Result};
use estargz_core::blob_info::MEDIA_TYPE_LAYER_GZIP;
use estargz_core::tar::NamePolicy;
use estargz_core::{convert, ConvertOptions, ConvertReport};
use std::path::{Path, PathBuf};

/// Convert a tar (plain or gzip) into a lossless eStargz blob.
///
/// Without -o, `DIR/NAME.tar` (or `.tar.gz`, `.tgz`) is written to
/// `DIR/NAME.esgz.tar.gz`; input `-` (stdin) is written to stdout.
#[derive(clap::Args)]
pub struct Args {
    /// The input tar or tar.gz, or `-` for stdin.
    input: String,
    /// Output file, or `-` for stdout.
    #[arg(short, long, value_name = "OUTPUT")]
    output: Option<String>,
    /// Compression level: 0 (stored) to 9 as in gzip; 10 to 12 are libdeflate's slower, smaller levels.
    #[arg(long, default_value_t = estargz_core::convert::DEFAULT_LEVEL,
          value_parser = clap::value_parser!(u32).range(0..=12))]
    level: u32,
    /// Largest chunk of a file per gzip member, in bytes (suffixes K, M, G, KiB, MiB, GiB accepted).
    #[arg(long, value_name = "BYTES", default_value = "4MiB", value_parser = parse_size)]
    chunk_size: u64,
    /// Compression threads (default: all cores). The output is the same for any count.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Fail on names that are not UTF-8 instead of replacing invalid bytes with U+FFFD in the TOC.
    #[arg(long)]
    strict_names: bool,
    /// Print one JSON object describing the result on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr but errors and warnings.
    #[arg(short, long)]
    quiet: bool,
}

/// Parses `4194304`, `4M`, `4MiB`, `512K`, … (K/M/G are binary multiples).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size in bytes"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("unknown size unit {unit:?} (use K, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `DIR/NAME.tar` → `DIR/NAME.esgz.tar.gz`.
fn derived_output(input: &str) -> PathBuf {
    let path = Path::new(input);
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = [".tar.gz", ".tgz", ".tar"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext).filter(|s| !s.is_empty()))
        .unwrap_or(&file);
    path.with_file_name(format!("{stem}.esgz.tar.gz"))
}

pub fn run(args: Args) -> Result<()> {
    let options = ConvertOptions {
        level: args.level,
        chunk_size: args.chunk_size,
        threads: args.threads,
        names: if args.strict_names {
            NamePolicy::Strict
        } else {
            NamePolicy::Replace
        },
        ..ConvertOptions::default()
    };
    if args.chunk_size == 0 {
        return Err(UsageError("--chunk-size must be at least 1 byte".into()).into());
    }
    let target = match (&args.output, args.input.as_str()) {
        (Some(o), _) if o == "-" => None,
        (Some(o), _) => Some(PathBuf::from(o)),
        (None, "-") => None,
        (None, input) => Some(derived_output(input)),
    };
    if target.is_none() && args.json {
        return Err(UsageError(
            "--json prints on stdout, so the blob cannot go there too; use -o FILE".into(),
        )
        .into());
    }
    if let Some(t) = &target {
        if args.input != "-" && same_file(Path::new(&args.input), t) {
            return Err(
                UsageError(format!("output {} would overwrite the input", t.display())).into(),
            );
        }
    }
    let input = open_input(&args.input)?;
    let context = || {
        format!(
            "converting {}",
            if args.input == "-" {
                "stdin"
            } else {
                &args.input
            }
        )
    };
    let report = match &target {
        Some(path) => {
            let mut file = AtomicFile::create(path)?;
            let report = convert(input, file.writer(), &options).with_context(context)?;
            file.commit()?;
            report
        }
        None => convert(input, binary_stdout()?, &options).with_context(context)?,
    };
    for warning in &report.warnings {
        eprintln!("estargz: warning: {warning}");
    }
    let output_name = target
        .as_ref()
        .map_or("-".to_string(), |p| p.display().to_string());
    if args.json {
        print_json(&report_json(&args.input, &output_name, &options, &report))?;
    }
    if !args.quiet {
        summary(&args.input, &output_name, &report);
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn report_json(
    input: &str,
    output: &str,
    options: &ConvertOptions,
    r: &ConvertReport,
) -> serde_json::Value {
    serde_json::json!({
        "input": input,
        "output": output,
        "media_type": MEDIA_TYPE_LAYER_GZIP,
        "digest": r.blob.digest.to_string(),
        "size": r.blob.size,
        "diff_id": r.blob.diff_id.to_string(),
        "uncompressed_size": r.blob.uncompressed_size,
        "toc_digest": r.toc_digest.to_string(),
        "toc_offset": r.toc_offset,
        "annotations": r.annotations(),
        "lossless": true,
        "tar_size": r.tar_size,
        "entries": r.toc_entries,
        "files": r.files,
        "chunks": r.chunks,
        "level": options.level,
        "chunk_size": options.chunk_size,
        "warnings": r.warnings,
    })
}

fn summary(input: &str, output: &str, r: &ConvertReport) {
    let ratio = if r.tar_size > 0 {
        r.blob.size as f64 / r.tar_size as f64
    } else {
        0.0
    };
    eprintln!(
        "converted {input} -> {output} (lossless eStargz, {:.1}% of the tar)",
        ratio * 100.0
    );
    eprintln!("  digest             {}", r.blob.digest);
    eprintln!("  size               {}", r.blob.size);
    eprintln!("  diff_id            {}", r.blob.diff_id);
    eprintln!("  uncompressed_size  {}", r.blob.uncompressed_size);
    eprintln!(
        "  toc_digest         {} (offset {})",
        r.toc_digest, r.toc_offset
    );
    eprintln!(
        "  entries            {} TOC entries, {} files, {} chunks",
        r.toc_entries, r.files, r.chunks
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_output_names() {
        assert_eq!(
            derived_output("layer.tar"),
            PathBuf::from("layer.esgz.tar.gz")
        );
        assert_eq!(
            derived_output("d/x.tar.gz"),
            PathBuf::from("d/x.esgz.tar.gz")
        );
        assert_eq!(derived_output("x.tgz"), PathBuf::from("x.esgz.tar.gz"));
        assert_eq!(derived_output("blob"), PathBuf::from("blob.esgz.tar.gz"));
        assert_eq!(derived_output(".tar"), PathBuf::from(".tar.esgz.tar.gz"));
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("4194304"), Ok(4 << 20));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
