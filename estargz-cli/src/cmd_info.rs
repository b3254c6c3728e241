//! `estargz info`: what a blob is and the annotations its layer should carry.

use crate::input::BlobArgs;
use crate::output::print_json;
use anyhow::{Context, Result};
use estargz_core::blob_info::{layer_annotations, MEDIA_TYPE_LAYER_GZIP};
use estargz_core::blob_info_of;
use estargz_core::read::RangeReader;
use estargz_core::toc::EntryType;
use std::collections::BTreeMap;
use std::io::{BufReader, Write};

/// Describe a blob: footer, TOC, counts, prefetch landmark, digests and annotations.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: BlobArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let blob = args.source.open()?;
    // Through the blob's own source: a URL blob is read once more, in large
    // sequential requests, and its tail is not fetched again.
    let whole = BufReader::with_capacity(1 << 20, RangeReader::new(blob.source(), 0, blob.size()));
    let info = blob_info_of(whole).with_context(|| format!("reading {}", args.source.blob))?;
    let toc = blob.toc();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &toc.entries {
        *kinds.entry(e.kind.as_str()).or_default() += 1;
    }
    let data_entries = toc
        .entries
        .iter()
        .filter(|e| e.kind == EntryType::Chunk || (e.kind == EntryType::Reg && e.size > 0))
        .count();
    let prefetch = match (
        blob.index().prefetch_end(),
        blob.index().has_no_prefetch_landmark(),
    ) {
        (Some(end), _) => serde_json::json!({"landmark": ".prefetch.landmark", "end": end}),
        (None, true) => serde_json::json!({"landmark": ".no.prefetch.landmark"}),
        (None, false) => serde_json::Value::Null,
    };
    let annotations = layer_annotations(&blob.toc_digest(), info.uncompressed_size);
    let value = serde_json::json!({
        "blob": args.source.blob,
        "footer": blob.kind().to_string(),
        "size": blob.size(),
        "digest": info.digest.to_string(),
        "diff_id": info.diff_id.to_string(),
        "uncompressed_size": info.uncompressed_size,
        "media_type": MEDIA_TYPE_LAYER_GZIP,
        "toc_offset": blob.footer().toc_offset,
        "toc_digest": blob.toc_digest().to_string(),
        "toc_json_size": blob.toc_json_len(),
        "entries": toc.entries.len(),
        "types": kinds,
        "files": kinds.get("reg").copied().unwrap_or(0),
        "chunks": data_entries,
        "prefetch": prefetch,
        "annotations": annotations,
    });
    if args.json {
        return print_json(&value);
    }
    let mut out = crate::output::text_stdout();
    writeln!(out, "blob               {}", args.source.blob)?;
    writeln!(
        out,
        "footer             {} ({} bytes)",
        blob.kind(),
        blob.kind().size()
    )?;
    writeln!(out, "size               {}", blob.size())?;
    writeln!(out, "digest             {}", info.digest)?;
    writeln!(out, "diff_id            {}", info.diff_id)?;
    writeln!(out, "uncompressed_size  {}", info.uncompressed_size)?;
    writeln!(
        out,
        "toc                offset {:?}, {} bytes of JSON, {}",
        blob.footer().toc_offset.unwrap_or(0),
        blob.toc_json_len(),
        blob.toc_digest()
    )?;
    let types: Vec<String> = kinds.iter().map(|(k, v)| format!("{v} {k}")).collect();
    writeln!(
        out,
        "entries            {} ({})",
        toc.entries.len(),
        types.join(", ")
    )?;
    writeln!(out, "data chunks        {data_entries}")?;
    writeln!(
        out,
        "prefetch           {}",
        match (
            blob.index().prefetch_end(),
            blob.index().has_no_prefetch_landmark()
        ) {
            (Some(end), _) => format!("bytes [0, {end}) before .prefetch.landmark"),
            (None, true) => "none (.no.prefetch.landmark)".into(),
            (None, false) => "no landmark".into(),
        }
    )?;
    writeln!(out, "annotations")?;
    for (k, v) in &annotations {
        writeln!(out, "  {k}: {v}")?;
    }
    Ok(())
}
