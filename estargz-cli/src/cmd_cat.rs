//! `estargz cat`: one file's bytes, by random access.

use crate::input::BlobArgs;
use anyhow::{Context, Result};
use std::io::Write;

/// Print one regular file of a blob on stdout, decoding only its members and
/// checking each chunk's digest.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: BlobArgs,
    /// Path of the file inside the blob (`./`, `/` prefixes are ignored).
    path: String,
}

pub fn run(args: Args) -> Result<()> {
    let blob = args.source.open()?;
    let reader = blob
        .open_file(&args.path)
        .with_context(|| format!("{}: {}", args.source.blob, args.path))?
        .verifying(true);
    let mut out = crate::output::text_stdout();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < reader.size() {
        let n = reader
            .read_at(at, &mut buf)
            .with_context(|| format!("{}: {}", args.source.blob, args.path))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        at += n as u64;
    }
    out.flush()?;
    Ok(())
}
