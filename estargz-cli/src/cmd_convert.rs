//! `estargz convert`: lossless tar → eStargz or zstd:chunked.

use crate::input::{open_input, TocArgs, Watch};
use crate::mapped::MappedTar;
use crate::output::{binary_stdout, print_json, AtomicFile};
use crate::prefetch;
use crate::progress::Progress;
use crate::UsageError;
use anyhow::{Context, Result};
use estargz_core::prioritize::ReorderReport;
use estargz_core::{
    Compression, ConvertReport, Converter, Input, NamePolicy, ScanLimits, SharedInput, TocFormat,
};
use std::io::{BufWriter, StdoutLock, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Convert a tar (plain or gzip) into a lossless eStargz blob (or, with
/// --compression zstd:chunked, a zstd:chunked one).
///
/// With --prioritized-files or --no-prefetch-landmark the tar is reordered
/// first, so the blob is not lossless.
///
/// Without -o, `DIR/NAME.tar` (or `.tar.gz`, `.tgz`) is written to
/// `DIR/NAME.esgz.tar.gz`; input `-` (stdin) is written to stdout.
#[derive(clap::Args)]
pub struct Args {
    /// The input tar or tar.gz, or `-` for stdin.
    input: String,
    /// Output file, or `-` for stdout. Through a symbolic link, the file it leads to is
    /// replaced (the link stays); a device, FIFO or /dev/stdout is written in place.
    #[arg(short, long, value_name = "OUTPUT")]
    output: Option<String>,
    #[command(flatten)]
    encoding: EncodingArgs,
    /// gzip (eStargz) or zstd:chunked (stargz dialect: zstd frames, the TOC in a skippable
    /// frame, 40-byte footer; the whole blob decompresses to the input tar, so the diffID is
    /// the input's). --level is then zstd's, 1 to 22.
    #[arg(long, value_name = "FORMAT", default_value = "gzip", value_parser = parse_compression)]
    compression: Compression,
    /// Write the TOC to FILE instead of into the blob, which then ends with the external-TOC
    /// footer and decompresses to exactly the input tar (its diffID is the input's).
    #[arg(long, value_name = "FILE")]
    external_toc: Option<PathBuf>,
    /// Compression threads (default: all cores). The output is the same for any count.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print one JSON object describing the result on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing on stderr but errors and warnings.
    #[arg(short, long)]
    quiet: bool,
    /// Read a file input as a stream instead of memory-mapping it (mapping saves
    /// copying every byte; the output is the same).
    #[arg(long)]
    no_mmap: bool,
    /// Move the paths listed in FILE (one per line, or ctr-remote's NDJSON records
    /// {"path": ...}), their parent directories and hard-link targets to the front,
    /// followed by .prefetch.landmark. Reorders the tar: the blob is NOT lossless.
    #[arg(long, value_name = "FILE", conflicts_with = "no_prefetch_landmark")]
    prioritized_files: Option<PathBuf>,
    /// With --prioritized-files: skip (and report) listed paths that are not in the
    /// tar instead of failing.
    #[arg(long, requires = "prioritized_files")]
    allow_missing: bool,
    /// Put .no.prefetch.landmark first: the image has nothing to prefetch. Rewrites
    /// the tar (landmarks and earlier duplicates dropped): the blob is NOT lossless.
    #[arg(long)]
    no_prefetch_landmark: bool,
}

/// How each layer is encoded: the options `convert` and `convert-image` share.
#[derive(clap::Args)]
pub struct EncodingArgs {
    /// Compression level. gzip: 0 (stored) to 9 as in gzip, 10 to 12 libdeflate's slower,
    /// smaller levels (default 7). zstd:chunked: 1 to 22 (default 3).
    #[arg(long)]
    level: Option<u32>,
    /// zstd:chunked dialect: stargz (the stargz package's: 40-byte footer, for
    /// stargz-snapshotter and podman up to 4.3) or containers (containers/storage's current
    /// layout: 64-byte footer, tar-split, nanosecond times, for podman 5; refuses PAX global
    /// headers, non-UTF-8 names and duplicate names). Only with --compression zstd:chunked.
    #[arg(long, value_name = "FORMAT", default_value = "stargz", value_parser = parse_toc_format)]
    toc_format: TocFormat,
    /// Largest chunk of a file per gzip member or zstd frame, in bytes (suffixes K, M, G, KiB,
    /// MiB, GiB accepted). The containers dialect cuts files where containers/storage does
    /// (zero runs, a rolling sum) and uses this only as an upper bound on a chunk.
    #[arg(long, value_name = "BYTES", default_value = "4MiB", value_parser = parse_size)]
    chunk_size: u64,
    /// Let small files share a gzip member until it holds this many uncompressed bytes
    /// (0: every chunk starts a member). Readers older than estargz v0.13.0 cannot read such blobs.
    #[arg(long, value_name = "BYTES", default_value = "0", value_parser = parse_size)]
    min_chunk_size: u64,
    /// Fail on names that are not UTF-8 instead of replacing invalid bytes with U+FFFD in the TOC.
    #[arg(long)]
    strict_names: bool,
    /// Convert even a layer whose TOC eStargz readers would refuse (a hard link to a file
    /// not in the layer, to a directory or in a cycle; children under a non-directory).
    /// Such a blob cannot be mounted lazily; convert-image otherwise keeps such a layer as it was.
    #[arg(long)]
    no_open_check: bool,
    /// Most bytes accepted after a layer's end-of-archive block (suffixes as for --chunk-size).
    /// Tars carry at most a little record padding there (10 KiB with tar's defaults); those
    /// bytes are kept in the blob, streamed in members of at most --chunk-size or 1 MiB of them
    /// (whichever is larger).
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_size)]
    max_trailing: u64,
}

impl EncodingArgs {
    /// The converter, with `threads` compression threads, the TOC kept
    /// apart or not, compressed as `compression` says; options it refuses
    /// are usage errors.
    pub fn converter(
        &self,
        threads: Option<usize>,
        external_toc: bool,
        compression: Compression,
    ) -> Result<Converter> {
        let mut limits = ScanLimits::default();
        limits.max_trailing = self.max_trailing;
        let mut builder = Converter::builder();
        if let Some(level) = self.level {
            builder = builder.level(level);
        }
        builder
            .compression(compression)
            .toc_format(self.toc_format)
            .chunk_size(self.chunk_size)
            .min_chunk_size(self.min_chunk_size)
            .threads(threads)
            .names(self.names())
            .skip_open_check(self.no_open_check)
            .scan_limits(limits)
            .external_toc(external_toc)
            .build()
            .map_err(|e| UsageError(e.to_string()).into())
    }

    /// What to do with names that are not UTF-8.
    pub fn names(&self) -> NamePolicy {
        if self.strict_names {
            NamePolicy::Strict
        } else {
            NamePolicy::Replace
        }
    }
}

fn parse_toc_format(s: &str) -> Result<TocFormat, String> {
    s.parse().map_err(|e: estargz_core::Error| e.to_string())
}

pub(crate) fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse().map_err(|e: estargz_core::Error| e.to_string())
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
    let converter =
        args.encoding
            .converter(args.threads, args.external_toc.is_some(), args.compression)?;
    let target = destination(&args)?;
    // Destinations first: a bad one fails before the input is read.
    let mut outputs = Outputs::create(target.as_deref(), args.external_toc.as_deref())?;
    let prefetch = prefetch::Request::from_flags(
        args.prioritized_files.as_deref(),
        args.allow_missing,
        args.no_prefetch_landmark,
    )?;
    let (input, progress) = TarInput::open(&args, prefetch.as_ref())?;
    let reordered = input.reordered.clone();
    let report = convert_into(&args, &converter, input, &mut outputs)?;
    progress.finish();
    for warning in &report.warnings {
        eprintln!("estargz: warning: {warning}");
    }
    let output_name = target
        .as_ref()
        .map_or("-".to_string(), |p| p.display().to_string());
    if args.json {
        let mut json = report_json(
            &args,
            &converter,
            &output_name,
            &report,
            reordered.is_none(),
        )?;
        if let (Some(request), Some(reordered)) = (&prefetch, &reordered) {
            let toc = TocArgs {
                external_toc: args.external_toc.clone(),
            };
            let open = toc.open_options()?;
            prefetch::add_to_json(&mut json, request, reordered, target.as_deref(), &open)?;
        }
        print_json(&json)?;
    }
    if !args.quiet {
        summary(&args.input, &output_name, &report, reordered.is_none());
        if let (Some(request), Some(reordered)) = (&prefetch, &reordered) {
            prefetch::summary(request, reordered);
        }
    }
    Ok(())
}

/// Where the blob goes (`None`: stdout), after the checks on the command
/// line that need no file opened.
fn destination(args: &Args) -> Result<Option<PathBuf>> {
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
    if let Some(toc) = &args.external_toc {
        let clashes = [Some(Path::new(&args.input)), target.as_deref()];
        if clashes.into_iter().flatten().any(|p| same_path(p, toc)) {
            return Err(UsageError(format!(
                "--external-toc {} names the input or the output",
                toc.display()
            ))
            .into());
        }
    }
    Ok(target)
}

/// The files `convert` writes, created before anything is read.
struct Outputs {
    /// The blob file; `None` when the blob goes to stdout.
    file: Option<AtomicFile>,
    stdout: Option<BufWriter<StdoutLock<'static>>>,
    /// `--external-toc`'s file.
    toc: Option<AtomicFile>,
}

impl Outputs {
    fn create(target: Option<&Path>, external_toc: Option<&Path>) -> Result<Outputs> {
        let file = target.map(AtomicFile::create).transpose()?;
        let stdout = match target {
            Some(_) => None,
            None => Some(binary_stdout()?),
        };
        let toc = external_toc.map(AtomicFile::create).transpose()?;
        Ok(Outputs { file, stdout, toc })
    }
}

/// The input, opened for the conversion.
struct TarInput {
    input: Input<'static>,
    /// The map behind an in-memory input, to check it after the conversion.
    mapped: Option<Arc<MappedTar>>,
    /// A regular file read as a stream, to check the same way.
    watch: Option<Watch>,
    /// What the reorder did, when the tar was reordered first.
    reordered: Option<ReorderReport>,
}

impl TarInput {
    fn open(args: &Args, prefetch: Option<&prefetch::Request>) -> Result<(TarInput, Progress)> {
        // A regular-file input read as a stream (reordered, or --no-mmap) is
        // checked for changes like a mapped one; the reorder opens it itself,
        // so it is watched from before that.
        let mut watch = match prefetch {
            Some(_) => Watch::open(&args.input)?,
            None => None,
        };
        let (reordered_tar, reordered, input_size) = match prefetch {
            Some(request) => {
                let tar = request.reorder(&args.input, args.encoding.names(), args.quiet)?;
                let report = tar.report().clone();
                let size = report.tar_size;
                (Some(tar), Some(report), Some(size))
            }
            None => {
                let size = std::fs::metadata(&args.input)
                    .ok()
                    .filter(|m| m.is_file() && args.input != "-")
                    .map(|m| m.len());
                (None, None, size)
            }
        };
        let progress = Progress::bytes("converting", input_size, args.quiet);
        // A reordered tar is a stream over a spooled or reordered copy; the
        // input itself is mapped unless --no-mmap or it is not a regular file.
        let mapped = match (&reordered_tar, args.no_mmap) {
            (None, false) => MappedTar::open(&args.input, progress.bar())?.map(Arc::new),
            _ => None,
        };
        let input = match (reordered_tar, &mapped) {
            (Some(tar), _) => Input::stream(progress.reader(tar)),
            (None, Some(map)) => Input::from(map.clone() as SharedInput),
            (None, None) => {
                let (input, input_watch) = open_input(&args.input)?;
                watch = input_watch;
                Input::stream(progress.reader(input))
            }
        };
        let input = TarInput {
            input,
            mapped,
            watch,
            reordered,
        };
        Ok((input, progress))
    }

    /// Converts into `out`, then checks the input file did not change
    /// meanwhile.
    fn convert(
        self,
        converter: &Converter,
        out: &mut dyn Write,
        context: impl Fn() -> String,
    ) -> Result<ConvertReport> {
        let report = converter
            .convert(self.input, out)
            .map_err(|e| match e {
                estargz_core::Error::UnreadableEntry { .. } => {
                    anyhow::anyhow!("{e} (--no-open-check converts it anyway)")
                }
                e => e.into(),
            })
            .with_context(context)?;
        if let Some(map) = &self.mapped {
            map.check_unchanged()?;
        }
        if let Some(watch) = &self.watch {
            watch.check_unchanged()?;
        }
        Ok(report)
    }
}

/// Converts `input` into `outputs`, commits them and closes stdout.
fn convert_into(
    args: &Args,
    converter: &Converter,
    input: TarInput,
    outputs: &mut Outputs,
) -> Result<ConvertReport> {
    let reordered = input.reordered.is_some();
    let context = || {
        format!(
            "converting {}{}",
            if args.input == "-" {
                "stdin"
            } else {
                &args.input
            },
            if reordered {
                " (reordered: byte offsets are in the reordered tar)"
            } else {
                ""
            }
        )
    };
    let report = match (outputs.file.as_mut(), outputs.stdout.as_mut()) {
        (Some(file), _) => input.convert(converter, &mut file.writer(), context)?,
        (None, Some(stdout)) => input.convert(converter, stdout, context)?,
        (None, None) => unreachable!("an output was opened above"),
    };
    if let Some(mut toc) = outputs.toc.take() {
        let bytes = report.external_toc.as_ref().map_or(&[][..], |t| &t.bytes);
        toc.writer().write_all(bytes)?;
        toc.commit()?;
    }
    if let Some(file) = outputs.file.take() {
        file.commit()?;
    }
    drop(outputs.stdout.take());
    Ok(report)
}

/// `--json`'s object: the converter's report and what the command line adds.
#[derive(serde::Serialize)]
struct ReportJson<'a> {
    input: &'a str,
    output: &'a str,
    media_type: &'static str,
    #[serde(flatten)]
    report: &'a ConvertReport,
    /// False when the tar was reordered first.
    lossless: bool,
    level: u32,
    chunk_size: u64,
    min_chunk_size: u64,
}

fn report_json(
    args: &Args,
    converter: &Converter,
    output: &str,
    report: &ConvertReport,
    lossless: bool,
) -> Result<serde_json::Value> {
    let mut json = serde_json::to_value(ReportJson {
        input: &args.input,
        output,
        media_type: report.compression.media_type(),
        report,
        lossless,
        level: converter.level(),
        chunk_size: args.encoding.chunk_size,
        min_chunk_size: args.encoding.min_chunk_size,
    })?;
    // The TOC file's path is the command line's, not the converter's.
    if let Some(toc) = json
        .get_mut("external_toc")
        .and_then(serde_json::Value::as_object_mut)
    {
        let path = args
            .external_toc
            .as_deref()
            .map(|p| p.display().to_string());
        toc.insert("path".into(), path.into());
    }
    Ok(json)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether two paths name the same file, existing or not yet.
fn same_path(a: &Path, b: &Path) -> bool {
    a == b || same_file(a, b)
}

fn summary(input: &str, output: &str, r: &ConvertReport, lossless: bool) {
    let ratio = if r.tar_size > 0 {
        r.blob.size as f64 / r.tar_size as f64
    } else {
        0.0
    };
    eprintln!(
        "converted {input} -> {output} ({} {}, {:.1}% of the tar)",
        if lossless {
            "lossless"
        } else {
            "reordered, not lossless,"
        },
        match (r.compression, r.toc_format) {
            (Compression::ZstdChunked, TocFormat::Containers) => {
                "zstd:chunked (containers dialect)"
            }
            (Compression::ZstdChunked, _) => "zstd:chunked",
            _ => "eStargz",
        },
        ratio * 100.0
    );
    eprintln!("  digest             {}", r.blob.digest);
    eprintln!("  size               {}", r.blob.size);
    eprintln!("  diff_id            {}", r.blob.diff_id);
    eprintln!("  uncompressed_size  {}", r.blob.uncompressed_size);
    match &r.external_toc {
        Some(t) => eprintln!(
            "  toc_digest         {} (external TOC file: {} bytes, {})",
            r.toc_digest, t.size, t.digest
        ),
        None => eprintln!(
            "  toc_digest         {} (offset {})",
            r.toc_digest, r.toc_offset
        ),
    }
    if let Some(checksum) = &r.manifest_checksum {
        eprintln!("  manifest_checksum  {checksum}");
    }
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
