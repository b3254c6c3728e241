//! `estargz digest`: blob digest, size, diffID and uncompressed size of any gzip layer.

use crate::input::open_input;
use crate::output::print_json;
use anyhow::{Context, Result};
use estargz_core::blob_info_of;
use std::io::Write;

/// Compute a gzip layer's digest, size, diffID and uncompressed size in one pass.
#[derive(clap::Args)]
pub struct Args {
    /// The layer (`.tar.gz`, eStargz or not), or `-` for stdin.
    layer: String,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (input, watch) = open_input(&args.layer)?;
    let info = blob_info_of(input).with_context(|| format!("reading layer {}", args.layer))?;
    if let Some(watch) = watch {
        watch.check_unchanged()?;
    }
    if args.json {
        print_json(&serde_json::json!({
            "digest": info.digest.to_string(),
            "size": info.size,
            "diff_id": info.diff_id.to_string(),
            "uncompressed_size": info.uncompressed_size,
        }))
    } else {
        let mut out = crate::output::text_stdout();
        writeln!(out, "digest             {}", info.digest)?;
        writeln!(out, "size               {}", info.size)?;
        writeln!(out, "diff_id            {}", info.diff_id)?;
        writeln!(out, "uncompressed_size  {}", info.uncompressed_size)?;
        Ok(())
    }
}
