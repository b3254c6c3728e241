//! `import-layers [--link] [--min-size BYTES] <DEST> <SOURCE>...`
//!
//! Makes a corpus for `benches/compare.sh` out of real images and layers:
//! every distinct layer of each SOURCE (an OCI layout directory, an OCI
//! archive or Docker ≥ 25 `docker save` tar, a tar, tar+gzip or tar+zstd
//! layer blob, or a directory of those) becomes one uncompressed
//! `DEST/NAME.tar`. See [`estargz_benches::import`] for the naming and
//! what is skipped. `--link` symlinks plain-tar blobs instead of copying
//! them; `--min-size` skips layers smaller than BYTES uncompressed.
//!
//! Prints one JSON object on stdout: `{"dest": ..., "layers": [...]}`, one
//! record per layer or file met, with its `outcome` (`written`, `linked`,
//! `duplicate`, `too-small`, `skipped`) and, when it was read, its
//! uncompressed `size` and `diff_id`.

use estargz_benches::import::{Importer, Options, Outcome};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: import-layers [--link] [--min-size BYTES] <DEST> <SOURCE>...";

struct Args {
    dest: PathBuf,
    sources: Vec<PathBuf>,
    options: Options,
}

fn parse_args() -> Result<Args, String> {
    let mut options = Options::default();
    let mut paths = Vec::new();
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--link") => options.link = true,
            Some("--min-size") => {
                options.min_size = it
                    .next()
                    .and_then(|v| v.to_str().map(str::to_owned))
                    .ok_or("--min-size needs a value")?
                    .parse()
                    .map_err(|e| format!("--min-size: {e}"))?
            }
            Some("-h" | "--help") => return Err(String::new()),
            Some(s) if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    if paths.len() < 2 {
        return Err("needs a DEST and at least one SOURCE".into());
    }
    let dest = paths.remove(0);
    Ok(Args {
        dest,
        sources: paths,
        options,
    })
}

fn run(args: Args) -> Result<String, String> {
    let mut importer = Importer::new(&args.dest, args.options)?;
    for source in &args.sources {
        importer.add(source)?;
    }
    let layers: Vec<_> = importer
        .records()
        .iter()
        .map(|r| {
            let (outcome, name, reason) = match &r.outcome {
                Outcome::Written(n) => ("written", Some(n), None),
                Outcome::Linked(n) => ("linked", Some(n), None),
                Outcome::Duplicate(n) => ("duplicate", Some(n), None),
                Outcome::TooSmall => ("too-small", None, None),
                Outcome::Skipped(why) => ("skipped", None, Some(why)),
            };
            json!({
                "source": r.source,
                "outcome": outcome,
                "name": name,
                "reason": reason,
                "size": r.size,
                "diff_id": r.diff_id.map(|d| d.to_string()),
            })
        })
        .collect();
    Ok(json!({ "dest": args.dest, "layers": layers }).to_string())
}

fn main() -> ExitCode {
    estargz_benches::tool::main("import-layers", USAGE, parse_args, run)
}
