//! Property test: random file trees, written by the `tar` crate in GNU,
//! ustar and PAX form, convert losslessly; the blob decompresses to the
//! input plus the TOC tar, every digest and size agrees, and the TOC lists
//! what an independent tar reader (the `tar` crate) sees.

use crate::common;

use common::check_lossless;
use estargz_core::{Converter, EntryType};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

#[derive(Debug, Clone, Copy)]
enum Fmt {
    Gnu,
    Ustar,
    Pax,
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..3000).prop_map(Node::File),
        1 => Just(Node::Dir),
        1 => "[a-z./]{1,40}".prop_map(Node::Symlink),
    ]
}

fn tree() -> impl Strategy<Value = Vec<(String, Node, u32, u64, u64)>> {
    let name =
        prop::collection::vec("[a-zA-Z0-9_é-]{1,12}", 1..5).prop_map(|parts| parts.join("/"));
    let long = "[a-z]{90,140}".prop_map(|s| format!("deep/{s}"));
    prop::collection::vec(
        (
            prop_oneof![5 => name, 1 => long],
            node(),
            0u32..0o7777,
            0u64..70000,
            0u64..2_000_000_000,
        ),
        0..16,
    )
}

fn pax_header(records: &[(&str, String)]) -> (tar::Header, Vec<u8>) {
    let mut body = Vec::new();
    for (k, v) in records {
        let rest = format!(" {k}={v}\n");
        let mut len = rest.len() + 1;
        while len.to_string().len() + rest.len() != len {
            len = len.to_string().len() + rest.len();
        }
        body.extend_from_slice(format!("{len}{rest}").as_bytes());
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeaders/entry").unwrap();
    h.set_size(body.len() as u64);
    h.set_cksum();
    (h, body)
}

/// Writes the tree with the `tar` crate; names ustar cannot hold are skipped.
fn write_tar(fmt: Fmt, tree: &[(String, Node, u32, u64, u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, (name, node, mode, id, mtime)) in tree.iter().enumerate() {
        let mut h = match fmt {
            Fmt::Gnu => tar::Header::new_gnu(),
            Fmt::Ustar | Fmt::Pax => tar::Header::new_ustar(),
        };
        h.set_mode(*mode);
        h.set_uid(*id);
        h.set_gid(id / 2);
        h.set_mtime(*mtime);
        let full_name = match node {
            Node::Dir => format!("{name}/"),
            _ => name.clone(),
        };
        // ustar cannot hold every name; GNU always can, through an L header.
        if !matches!(fmt, Fmt::Gnu) && h.set_path(&full_name).is_err() {
            continue;
        }
        if let Fmt::Pax = fmt {
            let (ph, body) = pax_header(&[
                ("path", full_name.clone()),
                ("mtime", format!("{mtime}.{i}")),
            ]);
            b.append(&ph, &body[..]).unwrap();
        }
        match node {
            Node::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, &data[..]).unwrap()
            }
            Node::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, &full_name, std::io::empty()).unwrap()
            }
            Node::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap()
            }
        }
    }
    b.into_inner().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(
        tree in tree(),
        fmt in prop_oneof![Just(Fmt::Gnu), Just(Fmt::Ustar), Just(Fmt::Pax)],
        chunk_size in prop_oneof![Just(1u64), Just(7), Just(512), Just(4096), Just(4 << 20)],
        threads in 1usize..4,
        level in prop_oneof![Just(1u32), Just(6), Just(9)],
    ) {
        let tar = write_tar(fmt, &tree);
        // A random tree may hold a file with children (a file `é`, then
        // `é/x`). Readers refuse such a TOC, and so does the converter's
        // open check (unreadable_toc.rs); this property is about the
        // writer's bytes, so it converts them anyway.
        let opts = Converter::builder().chunk_size(chunk_size).threads(Some(threads)).level(level).skip_open_check(true).build().unwrap();
        let mut blob = Vec::new();
        let report = opts.convert(&tar[..], &mut blob).unwrap();
        let toc = check_lossless(&tar, &blob, &report, chunk_size);

        // The TOC lists what the tar crate reads, in order.
        let mut archive = tar::Archive::new(&tar[..]);
        let theirs: Vec<(String, EntryType, i64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let kind = match e.header().entry_type() {
                    tar::EntryType::Directory => EntryType::Dir,
                    tar::EntryType::Symlink => EntryType::Symlink,
                    _ => EntryType::Reg,
                };
                let size = if kind == EntryType::Reg { e.size() as i64 } else { 0 };
                let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                (path, kind, size)
            })
            .collect();
        let ours: Vec<(String, EntryType, i64)> = common::non_chunks(&toc)
            .iter()
            .map(|e| (e.name.clone(), e.kind.clone(), e.size))
            .collect();
        prop_assert_eq!(ours, theirs);
    }
}

/// The containers dialect's TOC JSON and tar-split stream of `blob`.
fn containers_metadata(blob: &[u8]) -> (serde_json::Value, Vec<serde_json::Value>) {
    use estargz_core::internals::zstd_chunked::parse_footer;
    let f = parse_footer(&blob[blob.len() - 72..], blob.len() as u64)
        .unwrap()
        .unwrap();
    let at = |offset: u64, len: u64| &blob[offset as usize..(offset + len) as usize];
    let toc = zstd::decode_all(at(f.manifest_offset, f.toc_compressed)).unwrap();
    let split_header = f.manifest_offset + f.toc_compressed;
    let split_len = u32::from_le_bytes(at(split_header + 4, 4).try_into().unwrap());
    let split = zstd::decode_all(at(split_header + 8, u64::from(split_len))).unwrap();
    let lines = split
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (serde_json::from_slice(&toc).unwrap(), lines)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The containers dialect of zstd:chunked on the same random trees:
    /// lossless, a tar-split whose segments and file sizes add up to the
    /// tar, a TOC listing what the tar crate reads with exact PAX times;
    /// or, for a tree with a name twice, a refusal naming it.
    #[test]
    fn random_trees_round_trip_in_the_containers_dialect(
        tree in tree(),
        fmt in prop_oneof![Just(Fmt::Gnu), Just(Fmt::Ustar), Just(Fmt::Pax)],
        chunk_size in prop_oneof![Just(1u64), Just(512), Just(4096), Just(4 << 20)],
        threads in 1usize..4,
    ) {
        use estargz_core::{Compression, Digest, Error, TocFormat};
        let tar = write_tar(fmt, &tree);
        let converter = Converter::builder()
            .compression(Compression::ZstdChunked)
            .toc_format(TocFormat::Containers)
            .chunk_size(chunk_size)
            .threads(Some(threads))
            .skip_open_check(true)
            .build()
            .unwrap();
        let mut blob = Vec::new();
        let report = match converter.convert(&tar[..], &mut blob) {
            Err(Error::UnsupportedInDialect { reason, .. }) => {
                prop_assert!(reason.contains("same name"), "{}", reason);
                return Ok(());
            }
            other => other.unwrap(),
        };
        prop_assert_eq!(report.blob.diff_id, Digest::of(&tar));
        prop_assert!(zstd::decode_all(&blob[..]).unwrap() == tar);
        let (toc, split) = containers_metadata(&blob);
        let covered: u64 = split
            .iter()
            .map(|l| match l["type"].as_i64() {
                Some(1) => l["size"].as_u64().unwrap_or(0),
                _ => {
                    use base64::Engine as _;
                    let p = l["payload"].as_str().unwrap();
                    base64::engine::general_purpose::STANDARD.decode(p).unwrap().len() as u64
                }
            })
            .sum();
        prop_assert_eq!(covered, tar.len() as u64);
        let entries: Vec<&serde_json::Value> = toc["entries"]
            .as_array()
            .map(|a| a.iter().filter(|e| e["type"] != "chunk").collect())
            .unwrap_or_default();
        let mut archive = tar::Archive::new(&tar[..]);
        let theirs: Vec<(String, String, u64, Option<String>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let kind = match e.header().entry_type() {
                    tar::EntryType::Directory => "dir",
                    tar::EntryType::Symlink => "symlink",
                    _ => "reg",
                };
                let size = if kind == "reg" { e.size() } else { 0 };
                let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                // The PAX mtime's fraction, trailing zeros dropped.
                let fraction = e.pax_extensions().unwrap().and_then(|mut x| {
                    x.find_map(|r| {
                        let r = r.unwrap();
                        (r.key() == Ok("mtime")).then(|| {
                            let v = r.value().unwrap();
                            let f = v.split_once('.').map_or("", |(_, f)| f);
                            f.trim_end_matches('0').to_string()
                        })
                    })
                });
                (path, kind.to_string(), size, fraction)
            })
            .collect();
        prop_assert_eq!(entries.len(), theirs.len());
        let files = split.iter().filter(|l| l["type"] == 1).count();
        prop_assert_eq!(files, theirs.len());
        for (ours, (name, kind, size, fraction)) in entries.iter().zip(&theirs) {
            prop_assert_eq!(ours["name"].as_str().unwrap(), name.as_str());
            prop_assert_eq!(ours["type"].as_str().unwrap(), kind.as_str());
            prop_assert_eq!(ours["size"].as_u64().unwrap_or(0), *size);
            let modtime = ours["modtime"].as_str().unwrap();
            prop_assert!(modtime.ends_with('Z'), "{}", modtime);
            // PAX times carry a fraction (the tree index): kept exactly.
            match fraction.as_deref() {
                Some("") | None => prop_assert!(!modtime.contains('.'), "{}", modtime),
                Some(f) => prop_assert!(modtime.ends_with(&format!(".{f}Z")), "{} {}", modtime, f),
            }
        }
    }
}
