//! `convert --prioritized-files` and `--no-prefetch-landmark`: the tar is
//! reordered (spec §4.6) before the ordinary conversion, so the blob is no
//! longer lossless; this module says so on stderr and in the JSON report.

use anyhow::{Context, Result};
use estargz_core::prioritize::{
    parse_list, reorder, spool, tar_file, Landmark, PrioritizeOptions, ReorderReport, Reordered,
};
use estargz_core::{Blob, Error, NamePolicy, OpenOptions};
use serde::Serialize;
use std::fs::File;
use std::path::Path;

/// What the command line asked for.
pub struct Request {
    /// `None`: `--no-prefetch-landmark`.
    list: Option<Vec<String>>,
    allow_missing: bool,
}

impl Request {
    /// The request, if any flag asks for one; the list file is read now so
    /// a missing one fails before any output is created.
    pub fn from_flags(
        prioritized_files: Option<&Path>,
        allow_missing: bool,
        no_prefetch_landmark: bool,
    ) -> Result<Option<Request>> {
        let list = match prioritized_files {
            Some(path) => {
                let text = std::fs::read(path).with_context(|| {
                    format!("cannot read the prioritized-files list {}", path.display())
                })?;
                let text = String::from_utf8(text).map_err(|_| {
                    anyhow::anyhow!(
                        "prioritized-files list {} is not UTF-8 text",
                        path.display()
                    )
                })?;
                Some(parse_list(&text).with_context(|| format!("reading {}", path.display()))?)
            }
            None if no_prefetch_landmark => None,
            None => return Ok(None),
        };
        Ok(Some(Request {
            list,
            allow_missing,
        }))
    }

    /// Reorders the input (a path or `-`): a plain tar file is read in
    /// place, anything else is first decompressed into a temporary file.
    pub fn reorder(&self, input: &str, names: NamePolicy, quiet: bool) -> Result<Reordered<File>> {
        let shown = if input == "-" { "stdin" } else { input };
        let tar = if input == "-" {
            spool(std::io::stdin().lock())
        } else {
            let file = File::open(input).with_context(|| format!("cannot open {input}"))?;
            let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
            if regular {
                tar_file(file)
            } else {
                spool(file)
            }
        }
        .with_context(|| format!("reading {shown}"))?;
        let options = {
            let mut o = PrioritizeOptions::default();
            o.allow_missing = self.allow_missing;
            o.names = names;
            o
        };
        let reordered = reorder(tar, self.list.as_deref(), &options).map_err(|e| {
            let e = match e {
                Error::PrioritizedNotFound { .. } => {
                    anyhow::anyhow!("{e} (--allow-missing skips them)")
                }
                e => anyhow::Error::new(e),
            };
            e.context(format!("reordering {shown} for prefetching"))
        })?;
        if !quiet {
            eprintln!(
                "estargz: note: the tar is reordered for prefetching, so the blob is not \
                 lossless: unpacking it gives the reordered tar, not the input"
            );
        }
        for warning in &reordered.report().warnings {
            eprintln!("estargz: warning: {warning}");
        }
        Ok(reordered)
    }

    /// Number of paths in the list (`None` without a list).
    pub fn listed(&self) -> Option<usize> {
        self.list.as_ref().map(Vec::len)
    }
}

/// The `prefetch` object of the JSON report.
#[derive(Serialize)]
struct PrefetchJson<'a> {
    landmark: &'static str,
    /// Paths in the list (null without one).
    listed: Option<usize>,
    found: &'a [String],
    missing: &'a [String],
    prefetch_entries: usize,
    /// Where the prefetch range ends in the blob (null when not known).
    prefetch_end: Option<u64>,
    entries: usize,
    dropped_landmarks: usize,
    dropped_duplicates: usize,
}

/// Marks a convert JSON report as not lossless and adds what was moved and,
/// when the blob went to `output`, where its prefetch range ends.
pub fn add_to_json(
    json: &mut serde_json::Value,
    request: &Request,
    report: &ReorderReport,
    output: Option<&Path>,
    open: &OpenOptions,
) -> Result<()> {
    // Read back from the TOC rather than predicted: it is what a snapshotter will use.
    let prefetch_end = output
        .and_then(|path| File::open(path).ok())
        .and_then(|file| Blob::open(file, open).ok())
        .and_then(|blob| blob.index().prefetch_end());
    let prefetch = serde_json::to_value(PrefetchJson {
        landmark: report.landmark.name(),
        listed: request.listed(),
        found: &report.found,
        missing: &report.missing,
        prefetch_entries: report.prefetch_entries,
        prefetch_end,
        entries: report.entries,
        dropped_landmarks: report.dropped_landmarks,
        dropped_duplicates: report.dropped_duplicates,
    })?;
    let Some(object) = json.as_object_mut() else {
        return Ok(());
    };
    object.insert("lossless".into(), false.into());
    if let Some(serde_json::Value::Array(warnings)) = object.get_mut("warnings") {
        warnings.extend(report.warnings.iter().map(|w| w.as_str().into()));
    }
    object.insert("prefetch".into(), prefetch);
    Ok(())
}

/// The summary line after the conversion's own.
pub fn summary(request: &Request, report: &ReorderReport) {
    let found = match request.listed() {
        Some(listed) => format!("{} of {listed} listed paths found", report.found.len()),
        None => "no list".to_string(),
    };
    match report.landmark {
        Landmark::Prefetch => eprintln!(
            "  prefetch           {} entries before {} ({found}, {} missing)",
            report.prefetch_entries,
            report.landmark.name(),
            report.missing.len()
        ),
        Landmark::NoPrefetch => eprintln!(
            "  prefetch           none: {} first ({found})",
            report.landmark.name()
        ),
    }
}
