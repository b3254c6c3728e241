//! `estargz ls`: the entries of a blob, like `tar -t` / `tar -tv`.

use crate::input::BlobArgs;
use crate::output::{print_json, text_stdout};
use anyhow::Result;
use estargz_core::{EntryType, TocEntry};
use std::io::Write;

/// List the entries of a blob in TOC order (chunks folded into their file).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: BlobArgs,
    /// Long listing: mode, owner, size, time, name, link target.
    #[arg(short, long)]
    long: bool,
    /// Print a JSON array on stdout.
    #[arg(long)]
    json: bool,
}

fn mode_string(e: &TocEntry) -> String {
    let kind = match e.kind {
        EntryType::Dir => 'd',
        EntryType::Symlink => 'l',
        EntryType::Hardlink => 'h',
        EntryType::Char => 'c',
        EntryType::Block => 'b',
        EntryType::Fifo => 'p',
        _ => '-',
    };
    let m = e.mode;
    let bit = |mask: i64, c: char| if m & mask != 0 { c } else { '-' };
    let special = |x: i64, s: i64, lower: char, upper: char| match (m & x != 0, m & s != 0) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    format!(
        "{kind}{}{}{}{}{}{}{}{}{}",
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's', 'S'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's', 'S'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't', 'T'),
    )
}

pub fn run(args: Args) -> Result<()> {
    let blob = args.source.open()?;
    let toc = blob.toc();
    if args.json {
        let list: Vec<serde_json::Value> = toc
            .listing()
            .map(|listed| {
                let e = listed.entry;
                serde_json::json!({
                    "name": e.name,
                    "type": e.kind.as_str(),
                    "size": e.size,
                    "mode": e.mode,
                    "uid": e.uid,
                    "gid": e.gid,
                    "user": listed.user,
                    "group": listed.group,
                    "modtime": e.modtime,
                    "link": e.link_name,
                    "dev_major": e.dev_major,
                    "dev_minor": e.dev_minor,
                    "xattrs": e.xattrs.keys().collect::<Vec<_>>(),
                    "digest": e.digest,
                    "chunks": listed.chunks,
                })
            })
            .collect();
        return print_json(&serde_json::Value::Array(list));
    }
    let mut out = text_stdout();
    for listed in toc.listing() {
        let e = listed.entry;
        if args.long {
            let owner = |name: &str, id: i64| {
                if name.is_empty() {
                    id.to_string()
                } else {
                    name.to_string()
                }
            };
            let time = listed.modtime().unwrap_or_else(|| "-".into());
            let link = match e.kind {
                EntryType::Symlink => format!(" -> {}", e.link_name),
                EntryType::Hardlink => format!(" link to {}", e.link_name),
                _ => String::new(),
            };
            let size = match e.kind {
                EntryType::Char | EntryType::Block => format!("{},{}", e.dev_major, e.dev_minor),
                _ => e.size.to_string(),
            };
            writeln!(
                out,
                "{} {}/{} {size:>10} {time} {}{link}",
                mode_string(e),
                owner(&listed.user, e.uid),
                owner(&listed.group, e.gid),
                e.name
            )?;
        } else {
            writeln!(out, "{}", e.name)?;
        }
    }
    Ok(())
}
