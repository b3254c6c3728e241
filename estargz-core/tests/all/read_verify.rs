//! Reader and verifier: the reader-side conformance cases (W1–W12, F1,
//! D1–D4 with their tampering), malformed blobs, random access costs.

use crate::common;

use common::tar_writer::*;
use common::{convert_min, convert_with, tamper, CountingSource};
use estargz_core::{
    unpack_tar, verify, Blob, Digest, EntryType, Error, OpenOptions, StoredDigest, VerifyOptions,
    VerifyReport,
};

fn check(blob: &[u8], toc_digest: Digest) -> VerifyReport {
    verify(blob, &{
        let mut o = VerifyOptions::default();
        o.expected_toc_digest = Some(toc_digest);
        o
    })
}

/// Opens, verifies, reads every file whole and in odd slices, and unpacks.
fn read_back(entries: &[TestEntry], format: Format, prefix: &str, chunk: u64) -> Blob<Vec<u8>> {
    let tar = build_tar(format, &prefixed(entries, prefix), 100);
    let (blob, report) = convert_with(&tar, chunk);
    let v = check(&blob, report.toc_digest);
    assert!(v.is_valid(), "{format:?} {prefix:?}: {:?}", v.problems);
    let mut unpacked = Vec::new();
    unpack_tar(&blob[..], &mut unpacked).unwrap();
    assert_eq!(unpacked, tar, "unpack gives the input tar");
    let blob = Blob::open(blob, &OpenOptions::default()).unwrap();
    for e in entries {
        let Kind::File(data) = &e.kind else { continue };
        let path = format!("{prefix}{}", e.name);
        // The last entry of a name wins.
        let last = entries.iter().rev().find(|x| x.name == e.name).unwrap();
        if !std::ptr::eq(last, e) {
            continue;
        }
        assert_eq!(&blob.read_file(&path).unwrap(), data, "{path}");
        let reader = blob.open_file(&path).unwrap();
        for start in 0..data.len().min(30) {
            for len in [1, 3, 5, 100] {
                let mut buf = vec![0u8; len];
                let n = reader.read_at(start as u64, &mut buf).unwrap();
                let want = &data[start..(start + len).min(data.len())];
                assert_eq!(&buf[..n], want, "{path} at {start}+{len}");
            }
        }
        let mut buf = [0u8; 4];
        assert_eq!(reader.read_at(data.len() as u64, &mut buf).unwrap(), 0);
    }
    blob
}

fn each(entries: &[TestEntry], chunk: u64, check: impl Fn(&Blob<Vec<u8>>)) {
    for format in FORMATS {
        for prefix in PREFIXES {
            check(&read_back(entries, format, prefix, chunk));
        }
    }
}

#[test]
fn w1_to_w12_read_back() {
    each(&[], 4, |b| {
        assert_eq!(*b.index().root().kind(), EntryType::Dir);
        assert!(b.index().is_empty());
    });
    each(&[dir("foo"), file("foo/bar.txt", "")], 4, |b| {
        assert_eq!(
            b.index().lookup("foo/bar.txt").unwrap().digest(),
            StoredDigest::Sha256(Digest::of(b""))
        );
        let foo = b.index().lookup("foo").unwrap();
        let names = b.index().children(foo).map(|(n, _)| n);
        assert_eq!(names.collect::<Vec<_>>(), vec!["bar.txt"]);
    });
    let w3 = [
        dir("foo"),
        file("foo/bar.txt", "Some contents")
            .xattr("foo", b"bar")
            .xattr("invalid-utf8", b"\xff\xfe\xfd"),
    ];
    each(&w3, 4, |b| {
        let f = b.index().lookup("foo/bar.txt").unwrap();
        assert_eq!(f.xattrs()["invalid-utf8"], b"\xff\xfe\xfd");
        assert_eq!(
            b.index()
                .children(b.index().root())
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            vec!["foo"]
        );
    });
    each(&[dir("bar"), dir("foo"), dir("foo/bar")], 4, |b| {
        let links = |p: &str| b.index().lookup(p).unwrap().num_link();
        assert_eq!((links("bar"), links("foo"), links("foo/bar")), (2, 3, 2));
    });
    each(&[dir("foo"), symlink("foo/bar", "../../x")], 4, |b| {
        assert_eq!(b.index().lookup("foo/bar").unwrap().link_name(), "../../x");
    });
    // W7 and F1: every byte's chunk reproduces the chunk list.
    each(
        &[dir("foo"), file("foo/big.txt", "This is such a big file")],
        4,
        |b| {
            let f = b.index().lookup("foo/big.txt").unwrap();
            assert_eq!(f.chunks().len(), 6);
            for off in 0..23u64 {
                let c = f.chunk_for_offset(off).unwrap();
                assert_eq!(
                    (c.chunk_offset(), c.size()),
                    (off / 4 * 4, if off >= 20 { 3 } else { 4 })
                );
            }
            assert!(f.chunk_for_offset(23).is_none());
            for w in f.chunks().windows(2) {
                assert_eq!(w[0].next_offset(), w[1].offset());
            }
            assert_eq!(f.chunks()[5].next_offset(), b.payload_end());
        },
    );
    each(
        &[blockdev("b", 123, 456), chardev("c", 111, 222), fifo("f")],
        4,
        |b| {
            let n = b.index().lookup("b").unwrap();
            assert_eq!(
                (n.kind().clone(), n.dev_major(), n.dev_minor(), n.num_link()),
                (EntryType::Block, 123, 456, 1)
            );
            assert_eq!(*b.index().lookup("f").unwrap().kind(), EntryType::Fifo);
        },
    );
    // W12 with a chunked target: the link name reads the whole file.
    each(
        &[
            dir("foo"),
            file("foo/foo1", "test and more"),
            hardlink("foolink", "foo/foo1"),
        ],
        4,
        |b| {
            let link = b.index().lookup("foolink").unwrap();
            assert_eq!(link.name(), "foo/foo1");
            assert_eq!(link.num_link(), 2);
            assert_eq!(b.read_file("foolink").unwrap(), b"test and more");
            assert_eq!(link.chunk_for_offset(9).unwrap().chunk_offset(), 8);
        },
    );
}

#[test]
fn w8_root_entry_is_not_its_own_child() {
    let tar = build_tar(
        Format::Pax,
        &[
            dir("/").owner(50, 100),
            dir("bar"),
            dir("foo"),
            file("foo/bar.txt", "x"),
        ],
        0,
    );
    let (blob, _) = convert_with(&tar, 4);
    let blob = Blob::open(blob, &OpenOptions::default()).unwrap();
    let root = blob.index().root();
    assert_eq!((root.uid(), root.gid()), (50, 100));
    let names = blob.index().children(root).map(|(n, _)| n);
    assert_eq!(names.collect::<Vec<_>>(), vec!["bar", "foo"]);
}

fn d_cases() -> Vec<(&'static str, Vec<TestEntry>)> {
    vec![
        ("no-regfile", vec![dir("test")]),
        (
            "small-files",
            vec![
                file("baz.txt", ""),
                file("foo.txt", "a"),
                dir("test"),
                file("test/bar.txt", "bbb"),
            ],
        ),
        (
            "big-files",
            vec![
                file("baz.txt", "bazbazbazbazbazbazbaz"),
                file("foo.txt", "a"),
                dir("test"),
                file("test/bar.txt", "testbartestbar"),
            ],
        ),
        (
            "with-non-regfiles",
            vec![
                file("baz.txt", "bazbazbazbazbazbazbaz"),
                file("foo.txt", "a"),
                file("bar/foo2.txt", "b"),
                file("foo3.txt", "c"),
                symlink("barlink", "test/bar.txt"),
                dir("test"),
                file("test/bar.txt", "testbartestbar"),
                dir("test2"),
                hardlink("test2/bazlink", "baz.txt"),
            ],
        ),
    ]
}

/// D1–D4: verification passes, and fails for a modified tar, a rewritten
/// TOC entry and a flipped content byte; with every chunk in its own member
/// and, as spec §7.2 requires, with MinChunkSize 64000 (all files sharing
/// members at an `innerOffset`).
#[test]
fn d1_to_d4_digest_and_verify() {
    for min in [0, 64_000] {
        d1_to_d4_with_min_chunk_size(min);
    }
}

fn d1_to_d4_with_min_chunk_size(min: u64) {
    for (name, entries) in d_cases() {
        for format in FORMATS {
            for prefix in PREFIXES {
                let tar = build_tar(format, &prefixed(&entries, prefix), 100);
                let (blob, report) = convert_min(&tar, 3, min);
                assert!(check(&blob, report.toc_digest).is_valid(), "{name}");
                check_member_layout(name, &blob, min);
                check_changed_tar_rejected(name, &entries, format, prefix, min, report.toc_digest);
                if name == "no-regfile" {
                    continue;
                }
                let target = format!(
                    "{prefix}{}",
                    if name == "small-files" {
                        "foo.txt"
                    } else {
                        "test/bar.txt"
                    }
                );
                check_tampered_toc_rejected(name, &blob, &target);
                check_broken_content_rejected(name, &blob, &target);
            }
        }
    }
}

/// Without a minimum chunk size every chunk has its own member; with one,
/// all of these small layers' chunks share a single member.
fn check_member_layout(name: &str, blob: &[u8], min: u64) {
    let toc = common::read_toc(blob).0;
    let data: Vec<(i64, i64)> = toc
        .entries
        .iter()
        .filter(|e| e.size > 0 || e.kind == EntryType::Chunk)
        .map(|e| (e.offset, e.inner_offset))
        .collect();
    let members: std::collections::BTreeSet<i64> = data.iter().map(|d| d.0).collect();
    if min == 0 {
        assert!(data.iter().all(|d| d.1 == 0), "{name}: {data:?}");
        assert_eq!(members.len(), data.len(), "{name}: a member per chunk");
    } else {
        // These layers are far below 64000 bytes: one member holds every chunk.
        assert!(members.len() <= 1, "{name}: {data:?}");
    }
}

/// InvalidStargz: a different tar does not verify against the original TOC digest.
fn check_changed_tar_rejected(
    name: &str,
    entries: &[TestEntry],
    format: Format,
    prefix: &str,
    min: u64,
    toc_digest: Digest,
) {
    let mut changed = entries.to_vec();
    match name {
        "no-regfile" => changed[0] = dir("test2"),
        "with-non-regfiles" => changed[8] = hardlink("test2/bazlink", "foo.txt"),
        _ => changed[1] = file("foo.txt", "M"),
    }
    let tar2 = build_tar(format, &prefixed(&changed, prefix), 100);
    let (blob2, _) = convert_min(&tar2, 3, min);
    let v = check(&blob2, toc_digest);
    assert!(
        v.problems.iter().any(|p| p.message.contains("TOC digest")),
        "{name}: {:?}",
        v.problems
    );
}

/// InvalidTOCEntry: `target`'s chunk digests cleared, or its data position
/// moved to another data entry's.
fn check_tampered_toc_rejected(name: &str, blob: &[u8], target: &str) {
    let (bad, digest) = tamper(blob, |_, toc| {
        for e in toc.entries.iter_mut().filter(|e| e.name == target) {
            e.chunk_digest.clear();
        }
    });
    let v = check(&bad, digest);
    assert!(
        v.problems
            .iter()
            .any(|p| p.message.contains("without a chunkDigest")),
        "{name}: {:?}",
        v.problems
    );
    let (bad, digest) = tamper(blob, |_, toc| {
        let at = |e: &estargz_core::TocEntry| (e.offset, e.inner_offset);
        let mine = at(toc.entries.iter().find(|e| e.name == target).unwrap());
        let other = toc
            .entries
            .iter()
            .find(|e| e.size > 0 && e.name != target && at(e) != mine)
            .map(at)
            .unwrap();
        let e = toc.entries.iter_mut().find(|e| e.name == target).unwrap();
        (e.offset, e.inner_offset) = other;
    });
    assert!(
        !check(&bad, digest).is_valid(),
        "{name}: moved offset accepted"
    );
}

/// BrokenContent: first byte of `target`'s first chunk flipped.
fn check_broken_content_rejected(name: &str, blob: &[u8], target: &str) {
    let (first_offset, inner) = common::read_toc(blob)
        .0
        .entries
        .iter()
        .find(|e| e.name == target)
        .map(|e| (e.offset as u64, e.inner_offset as usize))
        .unwrap();
    let (bad, digest) = tamper(blob, |members, _| {
        let i = common::members(blob)
            .iter()
            .position(|m| m.0 == first_offset)
            .unwrap();
        members[i][inner] ^= 0x55;
    });
    let v = check(&bad, digest);
    assert!(
        v.problems
            .iter()
            .any(|p| p.message.contains("chunkDigest") && p.entry.as_deref() == Some(target)),
        "{name}: {:?}",
        v.problems
    );
    let opened = Blob::open(bad, &OpenOptions::default()).unwrap();
    assert!(
        opened.read_file(target).is_err(),
        "{name}: reading a broken chunk with digests checked fails"
    );
}

/// Reading a small file touches the footer, the TOC and that file's member.
#[test]
fn cat_of_a_small_file_reads_a_bounded_number_of_bytes() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u8
    };
    let mut entries = vec![dir("big")];
    for i in 0..200 {
        let data: Vec<u8> = (0..20_000).map(|_| noise()).collect();
        entries.push(file(&format!("big/f{i}"), data));
    }
    entries.push(file("small.txt", "hello"));
    let tar = build_tar(Format::Pax, &entries, 0);
    let (blob, report) = convert_with(&tar, 4 << 20);
    let (_, json, toc_offset) = common::read_toc(&blob);
    let source = CountingSource::new(&blob);
    let opened = Blob::open(&source, &OpenOptions::default()).unwrap();
    assert_eq!(opened.read_file("small.txt").unwrap(), b"hello");
    let read = source.bytes.load(std::sync::atomic::Ordering::Relaxed);
    let toc_member = blob.len() as u64 - 51 - toc_offset;
    let small = opened.index().lookup("small.txt").unwrap().chunks()[0].clone();
    let file_member = small.next_offset() - small.offset();
    assert_eq!(
        read,
        51 + toc_member + file_member,
        "footer + TOC + one member"
    );
    assert!(read < blob.len() as u64 / 20, "{read} of {}", blob.len());
    assert!(source.calls.load(std::sync::atomic::Ordering::Relaxed) <= 3);
    assert!(json.len() > 1000 && report.files == 201);
}

/// Malformed blobs: every one is an error (open) or a problem (verify), never a panic.
#[test]
fn malformed_blobs_are_errors_not_panics() {
    let tar = build_tar(
        Format::Gnu,
        &[
            dir("d"),
            file("d/a", "hello hello"),
            file("b", "x"),
            hardlink("h", "b"),
        ],
        0,
    );
    let (blob, report) = convert_with(&tar, 4);
    let mut cases = truncated_and_bad_footer_blobs(&blob);
    for (what, edit) in malformed_toc_edits() {
        cases.push((what, tamper(&blob, |_, toc| edit(toc)).0));
    }
    for (what, bad) in cases {
        let v = check(&bad, report.toc_digest);
        assert!(!v.is_valid(), "{what}: verify accepted it");
        for p in &v.problems {
            assert!(!p.message.is_empty());
        }
        // Opening, reading every file and unpacking must not panic, whatever they return.
        if let Ok(opened) = Blob::open(bad.clone(), &OpenOptions::default()) {
            for f in opened.index().files() {
                let _ = opened.read_file(f.name());
            }
        }
        let _ = unpack_tar(&bad[..], Vec::new());
    }
}

/// `blob` cut short, or with its footer's TOC offset or extra field broken.
fn truncated_and_bad_footer_blobs(blob: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let footer_at = blob.len() - 51;
    let with_offset = |text: &str| {
        let mut b = blob.to_vec();
        b[footer_at + 16..footer_at + 32].copy_from_slice(text.as_bytes());
        b
    };
    vec![
        ("empty", vec![]),
        ("3 bytes", blob[..3].to_vec()),
        ("truncated by one", blob[..blob.len() - 1].to_vec()),
        ("truncated by ten", blob[..blob.len() - 10].to_vec()),
        (
            "offset past the end",
            with_offset(&format!("{:016x}", blob.len() * 2)),
        ),
        ("negative offset", with_offset("-000000000000064")),
        ("non-hex offset", with_offset("00000X0000000000")),
        (
            "offset in the footer",
            with_offset(&format!("{:016x}", footer_at + 3)),
        ),
        ("offset at file data", with_offset(&format!("{:016x}", 1))),
        ("short extra", {
            let mut b = blob.to_vec();
            b[footer_at + 10] = 2;
            b
        }),
    ]
}

type TocEdit = Box<dyn Fn(&mut estargz_core::Toc)>;

fn entry_named<'t>(t: &'t mut estargz_core::Toc, name: &str) -> &'t mut estargz_core::TocEntry {
    t.entries.iter_mut().find(|e| e.name == name).unwrap()
}

fn first_chunk(t: &mut estargz_core::Toc) -> &mut estargz_core::TocEntry {
    t.entries
        .iter_mut()
        .find(|e| e.kind == EntryType::Chunk)
        .unwrap()
}

/// TOC edits, made to the blob of [`malformed_blobs_are_errors_not_panics`],
/// that break the TOC's own rules.
fn malformed_toc_edits() -> Vec<(&'static str, TocEdit)> {
    vec![
        (
            "hardlink cycle",
            Box::new(|t| entry_named(t, "h").link_name = "h".into()),
        ),
        (
            "hardlink missing",
            Box::new(|t| entry_named(t, "h").link_name = "nope".into()),
        ),
        (
            "hardlink to dir",
            Box::new(|t| entry_named(t, "h").link_name = "d/".into()),
        ),
        ("chunk gap", Box::new(|t| first_chunk(t).chunk_offset += 1)),
        (
            "chunk overlap",
            Box::new(|t| first_chunk(t).chunk_offset -= 1),
        ),
        (
            "offsets decreasing",
            Box::new(|t| {
                let offs: Vec<usize> = t
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.offset > 0)
                    .map(|(i, _)| i)
                    .collect();
                let (a, b) = (offs[0], offs[1]);
                let tmp = t.entries[a].offset;
                t.entries[a].offset = t.entries[b].offset;
                t.entries[b].offset = tmp;
            }),
        ),
        ("negative size", Box::new(|t| entry_named(t, "b").size = -1)),
        (
            "unknown type",
            Box::new(|t| t.entries[0].kind = EntryType::Other("weird".into())),
        ),
        (
            "bad digest",
            Box::new(|t| entry_named(t, "b").chunk_digest = "sha256:xyz".into()),
        ),
        (
            "child of a file",
            Box::new(|t| {
                let mut child = entry_named(t, "b").clone();
                child.name = "b/x".into();
                t.entries.push(child);
            }),
        ),
        (
            "offset past the TOC",
            Box::new(|t| entry_named(t, "b").offset = 1 << 40),
        ),
    ]
}

/// TOC members that are not what they claim.
#[test]
fn broken_toc_members_are_rejected() {
    let tar = build_tar(Format::Pax, &[file("a", "abc")], 0);
    let (blob, _) = convert_with(&tar, 4);
    let (_, json, toc_offset) = common::read_toc(&blob);
    let rebuild = |toc_tar: Vec<u8>, raw_member: Option<Vec<u8>>| {
        let mut out = blob[..toc_offset as usize].to_vec();
        let member = raw_member.unwrap_or_else(|| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &toc_tar).unwrap();
            enc.finish().unwrap()
        });
        out.extend(member);
        out.extend_from_slice(&estargz_core::internals::footer::encode(toc_offset));
        out
    };
    let fix_checksum = |t: &mut Vec<u8>| {
        t[148..156].fill(b' ');
        let sum: u32 = t[..512].iter().map(|&b| u32::from(b)).sum();
        t[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    };
    let renamed = {
        let mut t = estargz_core::internals::tar_bytes(&json);
        t[..20].copy_from_slice(b"./stargz.index.json\0");
        fix_checksum(&mut t);
        t
    };
    let mut trailing = json.clone();
    trailing.extend_from_slice(b"  x");
    let mut spaces = json.clone();
    spaces.extend_from_slice(b" \n\t ");
    let cases = vec![
        (
            "not JSON",
            rebuild(estargz_core::internals::tar_bytes(b"not json"), None),
            "decoding TOC JSON",
        ),
        (
            "not gzip",
            rebuild(Vec::new(), Some(vec![0x42; 64])),
            "not valid gzip",
        ),
        ("misnamed", rebuild(renamed, None), "had name"),
        (
            "trailing garbage",
            rebuild(estargz_core::internals::tar_bytes(&trailing), None),
            "trailing",
        ),
        (
            "size claim",
            rebuild(
                {
                    let mut t = estargz_core::internals::tar_bytes(&json);
                    t[124..135].copy_from_slice(b"77777777777");
                    fix_checksum(&mut t);
                    t
                },
                None,
            ),
            "TOC JSON size",
        ),
        (
            "bad crc",
            {
                let mut b = blob.clone();
                let crc_at = b.len() - 51 - 8;
                b[crc_at] ^= 1;
                b
            },
            "not valid gzip",
        ),
    ];
    for (what, bad, want) in cases {
        let err = Blob::open(bad.clone(), &OpenOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{what}: {err}");
        assert!(
            !verify(&bad[..], &VerifyOptions::default()).is_valid(),
            "{what}"
        );
    }
    // Whitespace after the JSON is fine, and digested with it.
    let ok = rebuild(estargz_core::internals::tar_bytes(&spaces), None);
    let opened = Blob::open(ok, &OpenOptions::default()).unwrap();
    assert_eq!(opened.toc_digest(), Digest::of(&spaces));
    // Caps apply before anything is allocated from the claim.
    let small = {
        let mut o = OpenOptions::default();
        o.max_toc_json = 10;
        o
    };
    assert!(Blob::open(blob.clone(), &small).is_err());
    let small = {
        let mut o = OpenOptions::default();
        o.max_toc_compressed = 10;
        o
    };
    assert!(Blob::open(blob, &small).is_err());
}

/// A blob of two files in chunks of 4 bytes (a member each) and a hardlink.
fn chunked_blob() -> (Vec<u8>, Digest) {
    let entries = vec![
        file("a.txt", "hello, world"),
        file("b.txt", "0123456789abcdef"),
        hardlink("c.txt", "a.txt"),
    ];
    let tar = build_tar(Format::Ustar, &entries, 100);
    let (blob, report) = convert_with(&tar, 4);
    assert!(check(&blob, report.toc_digest).is_valid());
    (blob, report.toc_digest)
}

#[test]
fn a_broken_chunk_is_reported_with_its_kind_entry_index_and_offsets() {
    use estargz_core::ProblemKind;
    let (blob, _) = chunked_blob();
    let toc = common::read_toc(&blob).0;
    // b.txt's third chunk: its own member, one byte of it flipped.
    let (index, chunk) = toc
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.name == "b.txt" && e.chunk_offset == 8)
        .unwrap();
    assert_eq!(chunk.kind, EntryType::Chunk);
    let (bad, digest) = tamper(&blob, |members, _| {
        let i = common::members(&blob)
            .iter()
            .position(|m| m.0 == chunk.offset as u64)
            .unwrap();
        members[i][chunk.inner_offset as usize] ^= 0x55;
    });
    let offset = common::read_toc(&bad).0.entries[index].offset as u64;
    let v = check(&bad, digest);
    let p = v
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::ChunkDigest)
        .unwrap_or_else(|| panic!("no chunk digest problem: {:?}", v.problems));
    assert_eq!(p.entry.as_deref(), Some("b.txt"));
    assert_eq!(p.toc_index, Some(index));
    assert_eq!(p.offset, Some(offset));
    assert!(p.tar_offset.is_some(), "{p:?}");
    assert_eq!(
        p.to_string(),
        format!("entry \"b.txt\": at byte {offset}: {}", p.message)
    );
    // The file's digest fails too, named at its first member.
    let file = v
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::FileDigest)
        .unwrap_or_else(|| panic!("no file digest problem: {:?}", v.problems));
    let reg = toc.entries.iter().position(|e| e.name == "b.txt").unwrap();
    assert_eq!(file.toc_index, Some(reg));
    assert_eq!(file.entry.as_deref(), Some("b.txt"));

    // Serialized: the kind by its snake_case name, every field beside it.
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json["kind"], "chunk_digest");
    assert_eq!(json["entry"], "b.txt");
    assert_eq!(json["toc_index"], index as u64);
    assert_eq!(json["offset"], offset);
    assert_eq!(json["message"], p.message.as_str());
}

#[test]
fn a_tar_toc_mismatch_carries_offsets_its_text_does_not_name() {
    use estargz_core::ProblemKind;
    let (blob, _) = chunked_blob();
    let (bad, digest) = tamper(&blob, |_, toc| {
        let e = toc.entries.iter_mut().find(|e| e.name == "a.txt").unwrap();
        e.size += 1;
    });
    let toc = common::read_toc(&bad).0;
    let reg = toc.entries.iter().position(|e| e.name == "a.txt").unwrap();
    let v = check(&bad, digest);
    let p = v
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::SizeMismatch)
        .unwrap_or_else(|| panic!("no size mismatch: {:?}", v.problems));
    assert_eq!(p.entry.as_deref(), Some("a.txt"));
    assert_eq!(p.toc_index, Some(reg));
    assert_eq!(p.offset, Some(toc.entries[reg].offset as u64));
    // a.txt is the first entry: its header opens the payload.
    assert_eq!(p.tar_offset, Some(0));
    assert_eq!(
        p.to_string(),
        "entry \"a.txt\": size 12 in the tar, 13 in the TOC"
    );
}

#[test]
fn an_index_error_keeps_its_entry_and_toc_index() {
    use estargz_core::ProblemKind;
    let (blob, _) = chunked_blob();
    let (bad, digest) = tamper(&blob, |_, toc| {
        let e = toc.entries.iter_mut().find(|e| e.name == "c.txt").unwrap();
        e.link_name = "missing.txt".into();
    });
    let toc = common::read_toc(&bad).0;
    let link = toc.entries.iter().position(|e| e.name == "c.txt").unwrap();
    let v = check(&bad, digest);
    let p = v
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::Index)
        .unwrap_or_else(|| panic!("no index problem: {:?}", v.problems));
    assert_eq!(p.entry.as_deref(), Some("c.txt"));
    assert_eq!(p.toc_index, Some(link));
    // The text is the library error's, which names both already.
    assert_eq!(p.to_string(), p.message);
    assert!(p
        .message
        .starts_with(&format!("TOC entry {link} (\"c.txt\")")));
    let l = v
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::LinkMismatch)
        .unwrap_or_else(|| panic!("no link mismatch: {:?}", v.problems));
    assert_eq!((l.toc_index, l.offset), (Some(link), None));
}

/// `OpenOptions::expected_toc_digest` is checked on the stored JSON before
/// it is parsed: a TOC that is not the one asked for is refused as that,
/// even when it would not parse; zstd:chunked blobs match their TOC digest
/// or their manifest checksum.
#[test]
fn the_expected_toc_digest_is_checked_before_parsing() {
    use estargz_core::internals::{footer, tar_bytes};
    let open = |blob: &[u8], expected: Option<Digest>| {
        let mut opts = OpenOptions::default();
        opts.expected_toc_digest = expected;
        Blob::open(blob, &opts).map(|_| ())
    };
    let json = b"{ not json";
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &tar_bytes(json)).unwrap();
    let mut blob = enc.finish().unwrap();
    blob.extend_from_slice(&footer::encode(0));
    let wrong = Digest::of(b"another TOC");
    match open(&blob, Some(wrong)) {
        Err(Error::TocDigestMismatch {
            offset: 0,
            expected,
            actual,
        }) => assert_eq!((expected, actual), (wrong, Digest::of(json))),
        other => panic!("{other:?}"),
    }
    // The right digest gets as far as the parse, which fails.
    assert!(matches!(
        open(&blob, Some(Digest::of(json))),
        Err(Error::InvalidToc { .. })
    ));

    let (good, report) = convert_with(&build_tar(Format::Ustar, &[file("a", "x")], 0), 1 << 20);
    open(&good, Some(report.toc_digest)).unwrap();
    open(&good, None).unwrap();
    assert!(matches!(
        open(&good, Some(wrong)),
        Err(Error::TocDigestMismatch { .. })
    ));

    let zstd_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/blobs/zstd");
    let zst = std::fs::read(zstd_dir.join("s-lossless-small.zst")).unwrap();
    let opened = Blob::open(&zst[..], &OpenOptions::default()).unwrap();
    let checksum = opened.zstd_chunked().unwrap().manifest_checksum;
    open(&zst, Some(opened.toc_digest())).unwrap();
    open(&zst, Some(checksum)).unwrap();
    assert!(matches!(
        open(&zst, Some(wrong)),
        Err(Error::TocDigestMismatch { .. })
    ));
}

/// A blob whose source fails (a connection reset) at any read touching
/// `[fail.start, fail.end)`.
struct FailingSource<'a> {
    blob: &'a [u8],
    fail: std::ops::Range<u64>,
}

impl estargz_core::ReadAt for FailingSource<'_> {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.blob.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = offset + buf.len() as u64;
        if offset < self.fail.end && self.fail.start < end {
            let what = format!("reset reading bytes {offset}..{end}");
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                what,
            ));
        }
        self.blob.read_at(offset, buf)
    }
}

#[test]
fn a_failing_source_is_unreadable_wherever_verify_reads_it() {
    use estargz_core::ProblemKind;
    let (blob, digest) = chunked_blob();
    let len = blob.len() as u64;
    let toc_offset = check(&blob, digest).toc_offset.unwrap();
    for (what, fail) in [
        ("the footer", len - 10..len),
        ("the TOC", toc_offset..toc_offset + 1),
        ("the payload", 0..1),
        (
            "the middle of the payload",
            toc_offset / 2..toc_offset / 2 + 1,
        ),
    ] {
        let source = FailingSource { blob: &blob, fail };
        let mut opts = VerifyOptions::default();
        opts.expected_toc_digest = Some(digest);
        let v = verify(&source, &opts);
        let kinds: Vec<ProblemKind> = v.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ProblemKind::Unreadable], "{what}: {:?}", v.problems);
        let message = v.problems[0].to_string();
        assert!(message.contains("reset reading bytes"), "{what}: {message}");
        let json = serde_json::to_value(&v.problems[0]).unwrap();
        assert_eq!(json["kind"], "unreadable");
    }
}
