//! Writer-side conformance cases of the spec (§7): B1–B4 in lossless form,
//! W1–W12 (W13/W14 need MinChunkSize), F6 determinism, each across ustar,
//! PAX and GNU headers and the name prefixes "", "./", "/", "../".

use crate::common;

use common::tar_writer::*;
use common::{check_lossless, convert_with, non_chunks};
use estargz_core::{Converter, Digest, EntryType, Error, Toc};

/// Runs `entries` through every format and prefix; `check` sees the TOC.
fn each_variant(entries: &[TestEntry], chunk_size: u64, check: impl Fn(&Toc, &str)) {
    for format in FORMATS {
        for prefix in PREFIXES {
            let tar = build_tar(format, &prefixed(entries, prefix), 100);
            let (blob, report) = convert_with(&tar, chunk_size);
            let toc = check_lossless(&tar, &blob, &report, chunk_size);
            let names: Vec<String> = entries
                .iter()
                .map(|e| format!("{prefix}{}", e.name))
                .collect();
            let got: Vec<&str> = non_chunks(&toc).iter().map(|e| e.name.as_str()).collect();
            assert_eq!(
                got, names,
                "{format:?} {prefix:?}: raw names in input order"
            );
            check(&toc, prefix);
        }
    }
}

fn entry<'a>(toc: &'a Toc, prefix: &str, name: &str) -> &'a estargz_core::TocEntry {
    let full = format!("{prefix}{name}");
    toc.entries
        .iter()
        .find(|e| e.name == full && e.kind != EntryType::Chunk)
        .unwrap_or_else(|| panic!("{full} missing"))
}

fn data_entries(toc: &Toc, prefix: &str, name: &str) -> Vec<(i64, i64)> {
    let full = format!("{prefix}{name}");
    toc.entries
        .iter()
        .filter(|e| e.name == full && matches!(e.kind, EntryType::Reg | EntryType::Chunk))
        .map(|e| (e.chunk_offset, e.chunk_size))
        .collect()
}

fn various() -> Vec<TestEntry> {
    vec![
        file("baz.txt", "bazbazbazbazbazbazbaz"),
        file("foo1.txt", "a"),
        file("bar/foo2.txt", "b"),
        file("foo3.txt", "c"),
        symlink("barlink", "test/bar.txt"),
        dir("test"),
        dir("dev"),
        blockdev("dev/testblock", 3, 4),
        fifo("dev/testfifo"),
        chardev("dev/testchar1", 5, 6),
        file("test/bar.txt", "testbartestbar").xattr("test2", b"sample2"),
        dir("test2"),
        hardlink("test2/bazlink", "baz.txt"),
        chardev("dev/testchar2", 1, 2),
    ]
}

#[test]
fn b1_regfiles_and_directories() {
    let entries = [
        file("foo", "test1"),
        dir("foo2"),
        file("foo2/bar", "test2").xattr("test", b"sample"),
    ];
    each_variant(&entries, 4, |toc, p| {
        assert_eq!(data_entries(toc, p, "foo"), vec![(0, 4), (4, 0)]);
        assert_eq!(entry(toc, p, "foo2/bar").xattrs["test"], b"sample");
    });
}

#[test]
fn b2_empty_files() {
    let mut entries = Vec::new();
    for i in 1..=6 {
        let n = if i == 1 { String::new() } else { i.to_string() };
        entries.push(file(&format!("foo{n}"), "tttttt"));
        if i < 6 {
            let n = if i == 1 { String::new() } else { i.to_string() };
            entries.push(file(&format!("foo_empty{n}"), ""));
        }
    }
    each_variant(&entries, 4, |toc, p| {
        let empty = entry(toc, p, "foo_empty");
        assert_eq!(
            (empty.size, empty.offset, empty.digest.as_str()),
            (0, 0, &*Digest::of(b"").to_string())
        );
        assert_eq!(
            toc.entries
                .iter()
                .filter(|e| e.kind == EntryType::Chunk)
                .count(),
            6
        );
    });
}

#[test]
fn b3_various_files() {
    each_variant(&various(), 4, |toc, p| {
        let b = entry(toc, p, "dev/testblock");
        assert_eq!(
            (b.kind.clone(), b.dev_major, b.dev_minor),
            (EntryType::Block, 3, 4)
        );
        let h = entry(toc, p, "test2/bazlink");
        assert_eq!(
            (h.kind.clone(), h.link_name.clone()),
            (EntryType::Hardlink, format!("{p}baz.txt"))
        );
        assert_eq!(entry(toc, p, "barlink").link_name, "test/bar.txt");
        assert_eq!(entry(toc, p, "dev/testfifo").kind, EntryType::Fifo);
        assert_eq!(data_entries(toc, p, "baz.txt").len(), 6);
    });
}

#[test]
fn b4_no_contents() {
    let entries: Vec<TestEntry> = various()
        .into_iter()
        .filter(|e| !["foo1.txt", "bar/foo2.txt", "foo3.txt"].contains(&e.name.as_str()))
        .map(|mut e| {
            if e.name == "baz.txt" || e.name == "test/bar.txt" {
                e.kind = Kind::File(Vec::new());
            }
            e
        })
        .collect();
    each_variant(&entries, 4, |toc, p| {
        assert!(toc
            .entries
            .iter()
            .all(|e| e.offset == 0 && e.chunk_digest.is_empty()));
        assert_eq!(entry(toc, p, "test/bar.txt").xattrs["test2"], b"sample2");
    });
}

#[test]
fn w1_empty_archive_gets_one_member_for_its_end_blocks() {
    for format in FORMATS {
        let tar = build_tar(format, &[], 0);
        let (blob, report) = convert_with(&tar, 4);
        let toc = check_lossless(&tar, &blob, &report, 4);
        assert!(toc.entries.is_empty());
        assert_eq!(common::members(&blob).len(), 3);
    }
}

#[test]
fn w2_to_w12_write_cases() {
    let now = 1_700_000_000;
    each_variant(&[dir("foo"), file("foo/bar.txt", "")], 4, |toc, p| {
        assert_eq!(
            entry(toc, p, "foo/bar.txt").digest,
            Digest::of(b"").to_string()
        );
    });
    // W3: non-UTF-8 xattr values round-trip (base64).
    let w3 = [
        dir("foo"),
        file("foo/bar.txt", "Some contents")
            .xattr("foo", b"bar")
            .xattr("invalid-utf8", b"\xff\xfe\xfd"),
    ];
    each_variant(&w3, 4, |toc, p| {
        let e = entry(toc, p, "foo/bar.txt");
        assert_eq!(e.xattrs["invalid-utf8"], b"\xff\xfe\xfd");
        assert_eq!(e.size, 13);
    });
    let w4 = [
        dir("bar").owner(50, 100),
        dir("foo").owner(50, 100),
        file("foo/bar.txt", "Some contents").owner(50, 100),
    ];
    each_variant(&w4, 4 << 20, |toc, p| {
        let e = entry(toc, p, "foo/bar.txt");
        assert_eq!((e.uid, e.gid), (50, 100));
        assert_eq!(data_entries(toc, p, "foo/bar.txt"), vec![(0, 0)]);
    });
    each_variant(&[dir("bar"), dir("foo"), dir("foo/bar")], 4, |toc, _| {
        assert_eq!(toc.entries.len(), 3)
    });
    each_variant(&[dir("foo"), symlink("foo/bar", "../../x")], 4, |toc, p| {
        assert_eq!(entry(toc, p, "foo/bar").link_name, "../../x");
    });
    // W7: 23 bytes in chunks of 4 = 6 chunks, 9 members.
    each_variant(
        &[dir("foo"), file("foo/big.txt", "This is such a big file")],
        4,
        |toc, p| {
            let chunks = data_entries(toc, p, "foo/big.txt");
            assert_eq!(
                chunks,
                vec![(0, 4), (4, 4), (8, 4), (12, 4), (16, 4), (20, 0)]
            );
            assert_eq!(toc.entries.len(), 7);
        },
    );
    each_variant(
        &[
            chardev("c", 111, 222),
            blockdev("b", 123, 456),
            fifo("f").mtime(now, 0),
        ],
        4,
        |toc, p| {
            let c = entry(toc, p, "c");
            assert_eq!(
                (c.dev_major, c.dev_minor, c.kind.clone()),
                (111, 222, EntryType::Char)
            );
            assert_eq!(entry(toc, p, "f").modtime, "2023-11-14T22:13:20Z");
        },
    );
    let w10 = [
        dir("foo1").mode(0o2755),
        file("foo1/bar1", "x").mode(0o4700),
        file("foo1/bar2", "x").mode(0o2755),
        dir("foo2").mode(0o1755),
        file("foo2/bar3", "x").mode(0o1755),
    ];
    each_variant(&w10, 4, |toc, p| {
        assert_eq!(entry(toc, p, "foo1/bar1").mode, 0o4700);
        assert_eq!(entry(toc, p, "foo2/").mode, 0o1755);
    });
    let w12 = [
        dir("foo"),
        file("foo/foo1", "test"),
        hardlink("foolink", "foo/foo1"),
    ];
    each_variant(&w12, 4, |toc, p| {
        assert_eq!(entry(toc, p, "foolink").link_name, format!("{p}foo/foo1"))
    });
}

/// W11: an input entry named stargz.index.json, however spelled, is refused.
#[test]
fn w11_existing_toc_is_refused_in_every_spelling() {
    for format in FORMATS {
        for prefix in PREFIXES {
            let entries = prefixed(&[dir("bar"), file("stargz.index.json", "dummy")], prefix);
            let tar = build_tar(format, &entries, 0);
            let err = Converter::new().convert(&tar[..], Vec::new()).unwrap_err();
            match err {
                Error::ExistingToc { entry, offset } => {
                    assert_eq!(entry, format!("{prefix}stargz.index.json"));
                    assert!(offset >= 512, "offset {offset}");
                }
                other => panic!("{format:?} {prefix:?}: {other}"),
            }
        }
    }
}

/// §3.8: user and group names are written once per id, mtimes are rounded.
#[test]
fn names_are_deduplicated_and_times_rounded() {
    let entries = [
        dir("foo")
            .owner(1000, 1000)
            .names("alice", "staff")
            .mtime(1577934245, 600_000_000),
        file("foo/bar.txt", "Some contents")
            .owner(1000, 1000)
            .names("alice", "staff")
            .mtime(1577934245, 600_000_000),
        file("empty", "").names("root", "root"),
        file("other", "x").owner(1000, 2000).names("alice", "wheel"),
        file("again", "x").owner(1000, 1000).names("bob", "staff"),
    ];
    // PAX carries the fractional mtime that the rounding rule needs.
    let tar = build_tar(Format::Pax, &entries, 0);
    let (blob, report) = convert_with(&tar, 4);
    let toc = check_lossless(&tar, &blob, &report, 4);
    let e = non_chunks(&toc);
    let names: Vec<(&str, &str)> = e
        .iter()
        .map(|e| (e.user_name.as_str(), e.group_name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("alice", "staff"),
            ("", ""),
            ("root", "root"),
            ("", "wheel"),
            ("bob", "")
        ]
    );
    assert_eq!(e[0].modtime, "2020-01-02T03:04:06Z");
    assert_eq!(e[2].modtime, "");
}

/// §3.5: sizes equal to and multiples of the chunk size carry chunkSize on the last chunk.
#[test]
fn chunk_size_rule_at_exact_multiples() {
    let entries = [
        file("four", "abcd"),
        file("eight", "abcdefgh"),
        file("nine", "abcdefghi"),
        file("three", "abc"),
    ];
    each_variant(&entries, 4, |toc, p| {
        assert_eq!(data_entries(toc, p, "four"), vec![(0, 4)]);
        assert_eq!(data_entries(toc, p, "eight"), vec![(0, 4), (4, 4)]);
        assert_eq!(data_entries(toc, p, "nine"), vec![(0, 4), (4, 4), (8, 0)]);
        assert_eq!(data_entries(toc, p, "three"), vec![(0, 0)]);
    });
}

/// F6: 128 files of 1500 random bytes, chunk 512: identical bytes for 1, 2 and 8 threads.
#[test]
fn f6_output_is_identical_for_any_thread_count() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u8
    };
    let entries: Vec<TestEntry> = (0..128)
        .map(|i| {
            file(
                &format!("f{i}"),
                (0..1500).map(|_| rand()).collect::<Vec<u8>>(),
            )
        })
        .collect();
    let tar = build_tar(Format::Pax, &entries, 0);
    let blobs: Vec<Vec<u8>> = [1, 2, 8]
        .iter()
        .map(|&t| {
            let opts = Converter::builder()
                .chunk_size(512)
                .threads(Some(t))
                .build()
                .unwrap();
            let mut blob = Vec::new();
            let report = opts.convert(&tar[..], &mut blob).unwrap();
            check_lossless(&tar, &blob, &report, 512);
            blob
        })
        .collect();
    assert!(
        blobs.windows(2).all(|w| w[0] == w[1]),
        "thread count changed the output"
    );
}

/// Every level produces a valid lossless blob; higher levels are not larger on text.
#[test]
fn every_level_is_lossless() {
    let text: Vec<u8> = (0..200_000u32)
        .map(|i| b"the quick brown fox "[(i % 20) as usize])
        .collect();
    let tar = build_tar(Format::Gnu, &[file("t", &text)], 0);
    let mut sizes = Vec::new();
    for level in 0..=12 {
        let opts = Converter::builder().level(level).build().unwrap();
        let mut blob = Vec::new();
        let report = opts.convert(&tar[..], &mut blob).unwrap();
        check_lossless(&tar, &blob, &report, 4 << 20);
        sizes.push(blob.len());
    }
    assert!(sizes[0] > tar.len(), "level 0 stores");
    assert!(sizes[9] <= sizes[1], "{sizes:?}");
    // Options are refused when the converter is built, before any input.
    for bad in [
        Converter::builder().level(13),
        Converter::builder().chunk_size(0),
        Converter::builder().chunk_size(estargz_core::MAX_CHUNK_SIZE + 1),
        Converter::builder().min_chunk_size(estargz_core::MAX_CHUNK_SIZE + 1),
    ] {
        assert!(matches!(bad.build(), Err(Error::InvalidOption(_))));
    }
}

/// Gzip input is decoded on its own thread: a multi-member .tar.gz larger
/// than the decoder's buffers gives the plain tar's blob for any thread
/// count, and a corrupt one an error rather than a hang or a short blob.
#[test]
fn gzip_input_matches_plain_tar_for_any_thread_count() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 16) as u8
    };
    // Low-entropy data, so the gzip input is well under its 3.3 MB tar.
    let entries: Vec<TestEntry> = (0..40)
        .map(|i| {
            file(
                &format!("f{i}"),
                (0..80_000 + 997 * i).map(|_| rand()).collect::<Vec<u8>>(),
            )
        })
        .collect();
    let tar = build_tar(Format::Pax, &entries, 0);
    let gzip = |part: &[u8]| {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(part).unwrap();
        enc.finish().unwrap()
    };
    let mut tar_gz = gzip(&tar[..tar.len() / 3]);
    tar_gz.extend(gzip(&tar[tar.len() / 3..]));
    let opts = |t| {
        Converter::builder()
            .chunk_size(64 << 10)
            .threads(Some(t))
            .build()
            .unwrap()
    };
    let mut plain = Vec::new();
    let plain_report = opts(1).convert(&tar[..], &mut plain).unwrap();
    check_lossless(&tar, &plain, &plain_report, 64 << 10);
    for t in [1, 2, 8] {
        let mut blob = Vec::new();
        let report = opts(t).convert(&tar_gz[..], &mut blob).unwrap();
        assert!(
            blob == plain,
            "gzip input, {t} threads: blob differs from the plain tar's"
        );
        assert_eq!(report.blob, plain_report.blob);
    }
    let mut corrupt = tar_gz.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 64].fill(0xa5);
    assert!(opts(2).convert(&corrupt[..], Vec::new()).is_err());
}
