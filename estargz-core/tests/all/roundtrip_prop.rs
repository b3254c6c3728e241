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
