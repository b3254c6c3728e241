//! `estargz info`: what a blob is and the annotations its layer should carry.

use crate::input::BlobArgs;
use crate::output::print_json;
use anyhow::{Context, Result};
use estargz_core::{
    blob_info_of, layer_annotations, Blob, EntryType, Prefetch, RangeReader, ReadAt,
    ZstdChunkedInfo, MEDIA_TYPE_LAYER_GZIP,
};
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
    let kinds = toc.kind_counts();
    let data_entries = toc.data_entries();
    let prefetch = blob.index().prefetch();
    let prefetch_json = match prefetch {
        Some(p @ Prefetch::Until { end }) => {
            serde_json::json!({"landmark": p.landmark(), "end": end})
        }
        Some(p @ Prefetch::Nothing) => serde_json::json!({"landmark": p.landmark()}),
        None => serde_json::Value::Null,
    };
    let zstd = blob.zstd_chunked();
    let (annotations, media_type, zstd_json) = layer_metadata(&blob, info.uncompressed_size);
    let mut value = serde_json::json!({
        "blob": args.source.blob,
        "footer": blob.kind().to_string(),
        "size": blob.size(),
        "digest": info.digest.to_string(),
        "diff_id": info.diff_id.to_string(),
        "uncompressed_size": info.uncompressed_size,
        "media_type": media_type,
        "toc_offset": blob.footer().toc_offset,
        "toc_digest": blob.toc_digest().to_string(),
        "toc_json_size": blob.toc_json_len(),
        "entries": toc.entries.len(),
        "types": kinds,
        "files": kinds.get(EntryType::Reg.as_str()).copied().unwrap_or(0),
        "chunks": data_entries,
        "prefetch": prefetch_json,
        "annotations": annotations,
    });
    if let (Some(z), Some(object)) = (zstd_json, value.as_object_mut()) {
        object.insert("zstd_chunked".into(), z);
    }
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
    if let Some(z) = zstd {
        writeln!(out, "dialect            {}", z.dialect)?;
        writeln!(out, "manifest_checksum  {}", z.manifest_checksum)?;
    }
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
        match prefetch {
            Some(p @ Prefetch::Until { end }) =>
                format!("bytes [0, {end}) before {}", p.landmark()),
            Some(p @ Prefetch::Nothing) => format!("none ({})", p.landmark()),
            None => "no landmark".into(),
        }
    )?;
    writeln!(out, "annotations")?;
    for (k, v) in &annotations {
        writeln!(out, "  {k}: {v}")?;
    }
    Ok(())
}

/// The annotations and media type the blob's layer should have, and for
/// zstd:chunked, what `info --json` says of it under `zstd_chunked`.
fn layer_metadata<S: ReadAt>(
    blob: &Blob<S>,
    uncompressed_size: u64,
) -> (
    BTreeMap<String, String>,
    &'static str,
    Option<serde_json::Value>,
) {
    let Some(z) = blob.zstd_chunked() else {
        let annotations = layer_annotations(&blob.toc_digest(), uncompressed_size);
        return (annotations, MEDIA_TYPE_LAYER_GZIP, None);
    };
    let json = serde_json::json!({
        "dialect": z.dialect.to_string(),
        "footer_version": blob.kind().size() - 8,
        "toc_digest": blob.toc_digest().to_string(),
        "manifest_checksum": z.manifest_checksum.to_string(),
        "manifest_position": z.manifest_position,
        "tar_split_position": z.tar_split_position,
        "tar_split_digest": z.tar_split_digest,
    });
    let annotations = z.annotations(&blob.toc_digest(), uncompressed_size);
    (annotations, ZstdChunkedInfo::MEDIA_TYPE, Some(json))
}
