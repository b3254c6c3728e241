//! Min-chunk-size blobs (several chunks per member, `innerOffset`, spec
//! §4.4, W13/W14) and external-TOC blobs (spec §2.4): as this writer makes
//! them, and as another writer could group them (members merged by hand).

use crate::common;

use common::tar_writer::*;
use common::{convert_min, convert_with};
use estargz_core::internals::footer;
use estargz_core::{verify, Blob, Converter, Digest, EntryType, OpenOptions, VerifyOptions};
use std::io::Write;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Re-packs `blob` so that members are merged into groups: member `i` joins
/// group `group_of(i)` (non-decreasing). Chunks then point at their group's
/// start with an `innerOffset`, as a min-chunk-size writer does.
fn merge_members(blob: &[u8], group_of: impl Fn(usize) -> usize) -> (Vec<u8>, Digest) {
    let (mut toc, _, _) = common::read_toc(blob);
    let all = common::members(blob);
    let payload = &all[..all.len() - 2];
    let mut groups: Vec<Vec<u8>> = Vec::new();
    // Where each old member lands: (group, uncompressed position inside it).
    let mut placed = Vec::new();
    for (i, (_, data)) in payload.iter().enumerate() {
        let g = group_of(i);
        while groups.len() <= g {
            groups.push(Vec::new());
        }
        placed.push((g, groups[g].len() as u64));
        groups[g].extend_from_slice(data);
    }
    let mut out = Vec::new();
    let mut starts = Vec::new();
    for g in &groups {
        starts.push(out.len() as u64);
        out.extend(gzip(g));
    }
    for e in &mut toc.entries {
        if matches!(e.kind, EntryType::Reg | EntryType::Chunk) && (e.offset > 0 || e.size > 0) {
            if let Some(i) = payload.iter().position(|m| m.0 == e.offset as u64) {
                let (g, inner) = placed[i];
                e.offset = starts[g] as i64;
                e.inner_offset = inner as i64;
            }
        }
    }
    let json = toc.to_json();
    let toc_offset = out.len() as u64;
    out.extend(gzip(&estargz_core::internals::tar_bytes(&json)));
    out.extend_from_slice(&footer::encode(toc_offset));
    (out, Digest::of(&json))
}

/// Full verification of `blob` opened with `open`, against `toc_digest`, finds nothing.
#[track_caller]
fn assert_verifies(blob: &[u8], open: OpenOptions, toc_digest: Digest) {
    let mut options = VerifyOptions::default();
    options.expected_toc_digest = Some(toc_digest);
    options.open = open;
    let v = verify(blob, &options);
    assert!(v.is_valid(), "{:?}", v.problems);
}

fn alnum(n: usize, seed: u64) -> Vec<u8> {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            A[(s % 62) as usize]
        })
        .collect()
}

fn check_blob(blob: Vec<u8>, digest: Digest, entries: &[TestEntry]) {
    let report = verify(&blob[..], &{
        let mut o = VerifyOptions::default();
        o.expected_toc_digest = Some(digest);
        o
    });
    assert!(report.is_valid(), "{:?}", report.problems);
    let opened = Blob::open(blob, &OpenOptions::default()).unwrap();
    for e in entries {
        if let Kind::File(data) = &e.kind {
            assert_eq!(&opened.read_file(&e.name).unwrap(), data, "{}", e.name);
            let reader = opened.open_file(&e.name).unwrap();
            let mut buf = vec![0u8; 100];
            let from = data.len() / 2;
            let n = reader.read_at(from as u64, &mut buf).unwrap();
            assert_eq!(&buf[..n], &data[from..(from + 100).min(data.len())]);
        }
    }
}

/// W13: several files in one member (min chunk 8000).
#[test]
fn w13_several_files_in_one_member() {
    let entries = w13_entries();
    let tar = build_tar(Format::Pax, &entries, 0);
    let (blob, _) = convert_with(&tar, 4 << 20);
    // Members: 0 headers, 1 foo1, 2 foo2, 3 foo22, 4 bar.txt, 5 foo3: merge 0..=4, keep 5.
    let (merged, digest) = merge_members(&blob, |i| if i <= 4 { 0 } else { 1 });
    let (toc, _, _) = common::read_toc(&merged);
    let inner: Vec<(i64, i64)> = toc
        .entries
        .iter()
        .filter(|e| e.kind == EntryType::Reg)
        .map(|e| (e.offset, e.inner_offset))
        .collect();
    assert!(
        inner[..4].iter().all(|&(o, i)| o == 0 && i > 0),
        "{inner:?}"
    );
    assert_eq!(common::gunzip(&merged)[..tar.len()], tar[..]);
    check_blob(merged.clone(), digest, &entries);

    // Tampering one shared member's byte inside foo22 is caught and named.
    let foo22 = toc
        .entries
        .iter()
        .find(|e| e.name == "foo22")
        .unwrap()
        .clone();
    let (bad, bad_digest) = common::tamper(&merged, |members, _| {
        members[0][foo22.inner_offset as usize] ^= 1
    });
    let report = verify(&bad[..], &{
        let mut o = VerifyOptions::default();
        o.expected_toc_digest = Some(bad_digest);
        o
    });
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.entry.as_deref() == Some("foo22")),
        "{:?}",
        report.problems
    );
}

/// The W14 layer: two files of two 32000-byte chunks around a small one.
fn w14_entries() -> Vec<TestEntry> {
    vec![
        dir("foo"),
        file("foo/foo1", alnum(64_000, 3)),
        file("foo2", "bb"),
        dir("bar"),
        file("foo3", alnum(64_000, 4)),
    ]
}

/// W14: min chunk 8000 and chunk size 32000: a file's chunks share members with others.
#[test]
fn w14_chunked_files_sharing_members() {
    let entries = w14_entries();
    let tar = build_tar(Format::Gnu, &entries, 0);
    let (blob, _) = convert_with(&tar, 32_000);
    // Members: 0 headers, 1-2 foo1's two chunks, 3 foo2, 4-5 foo3's two chunks.
    // Merge foo1's second chunk, foo2 and foo3's first chunk into one member.
    let (merged, digest) = merge_members(&blob, |i| match i {
        0 | 1 => i,
        2..=4 => 2,
        _ => 3,
    });
    check_blob(merged, digest, &entries);
}

/// External TOC: the blob holds only the payload and a 46-byte footer; the
/// TOC comes separately.
#[test]
fn external_toc_blobs_read_when_the_toc_is_supplied() {
    let entries = vec![
        dir("etc"),
        file("etc/a", "alpha"),
        file("etc/b", alnum(10_000, 5)),
    ];
    let tar = build_tar(Format::Ustar, &entries, 0);
    let (blob, report) = convert_with(&tar, 4096);
    let (_, json, toc_offset) = common::read_toc(&blob);
    let mut external = blob[..toc_offset as usize].to_vec();
    external.extend_from_slice(b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x15\x00SG\x11\x00STARGZEXTERNALTOC\x01\x00\x00\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00");
    let err = Blob::open(external.clone(), &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("supplied separately"), "{err}");
    let toc_member = gzip(&estargz_core::internals::tar_bytes(&json));
    let opts = {
        let mut o = OpenOptions::default();
        o.external_toc = Some(toc_member);
        o
    };
    let opened = Blob::open(external.clone(), &opts).unwrap();
    assert_eq!(opened.toc_digest(), report.toc_digest);
    assert_eq!(opened.payload_end(), external.len() as u64 - 46);
    assert_eq!(opened.read_file("etc/b").unwrap(), alnum(10_000, 5));
    assert_verifies(&external, opts, report.toc_digest);
    // The payload alone is the original tar: the layer keeps its diffID.
    assert_eq!(common::gunzip(&external), tar);
}

/// `(name, offset, innerOffset)` of every entry holding file data.
fn data_positions(blob: &[u8]) -> Vec<(String, i64, i64)> {
    common::read_toc(blob)
        .0
        .entries
        .iter()
        .filter(|e| e.size > 0 || e.kind == EntryType::Chunk)
        .map(|e| (e.name.clone(), e.offset, e.inner_offset))
        .collect()
}

fn w13_entries() -> Vec<TestEntry> {
    vec![
        dir("foo"),
        file("foo/foo1", alnum(64_000, 1)),
        file("foo2", "bb"),
        file("foo22", "ccc"),
        dir("bar"),
        file("bar/bar.txt", "aaa"),
        file("foo3", alnum(64_000, 2)),
    ]
}

/// W13 as written here: with min chunk 8000, the small files after foo1
/// share one member, and the blob has the spec's 4 members.
#[test]
fn w13_written_with_min_chunk_size() {
    let entries = w13_entries();
    for format in [Format::Ustar, Format::Pax, Format::Gnu] {
        let tar = build_tar(format, &entries, 0);
        let (blob, report) = convert_min(&tar, 4 << 20, 8000);
        assert_eq!(common::members(&blob).len(), 4, "{format:?}");
        let at = data_positions(&blob);
        // foo1 joins the first member (after its headers); foo2 starts the
        // second, foo22, bar.txt and foo3 follow inside it.
        assert_eq!(at[0].1, 0);
        assert!(at[0].2 > 0, "{at:?}");
        assert_eq!(at[1].2, 0, "{at:?}");
        assert!(at[2..].iter().all(|p| p.1 == at[1].1 && p.2 > 0), "{at:?}");
        assert_eq!(common::gunzip(&blob)[..tar.len()], tar[..], "lossless");
        check_blob(blob, report.toc_digest, &entries);
    }
}

/// W14 as written here: chunk 32000 and min chunk 8000 give the spec's 6 members.
#[test]
fn w14_written_with_min_chunk_size() {
    let entries = w14_entries();
    let tar = build_tar(Format::Pax, &entries, 0);
    let (blob, report) = convert_min(&tar, 32_000, 8000);
    assert_eq!(common::members(&blob).len(), 6);
    let at = data_positions(&blob);
    assert_eq!(at.len(), 5, "{at:?}");
    // foo3's first chunk shares foo2's member.
    assert_eq!(at[3].1, at[2].1, "{at:?}");
    check_blob(blob, report.toc_digest, &entries);
}

/// Grouping is decided before compression: the same bytes for any thread
/// count and the same grouping for any level.
#[test]
fn min_chunk_size_output_is_deterministic() {
    let mut entries = Vec::new();
    for i in 0..300 {
        entries.push(file(&format!("d/f{i}"), alnum(i * 37 % 5000, i as u64 + 9)));
    }
    let tar = build_tar(Format::Pax, &entries, 0);
    let run = |threads, level| {
        let opts = Converter::builder()
            .chunk_size(4096)
            .min_chunk_size(20_000)
            .threads(Some(threads))
            .level(level)
            .build()
            .unwrap();
        let mut blob = Vec::new();
        opts.convert(&tar[..], &mut blob).unwrap();
        blob
    };
    let one = run(1, 6);
    assert_eq!(run(2, 6), one);
    assert_eq!(run(4, 6), one);
    let grouping = |blob: &[u8]| {
        data_positions(blob)
            .into_iter()
            .map(|p| p.2)
            .collect::<Vec<_>>()
    };
    assert_eq!(grouping(&run(2, 1)), grouping(&one));
    let members = common::members(&one).len();
    assert!(members < 300 / 3, "{members} members for 300 small files");
    let json = common::read_toc(&one).1;
    check_blob(one, Digest::of(&json), &entries);
}

/// A landmark's data starts a member even when small files share members:
/// its offset is where the prefetch region ends.
#[test]
fn landmarks_start_a_member_with_min_chunk_size() {
    let entries = vec![
        file("a", "first"),
        file(".prefetch.landmark", [0x0fu8]),
        file("b", "second"),
    ];
    let tar = build_tar(Format::Ustar, &entries, 0);
    let (blob, report) = convert_min(&tar, 4 << 20, 64_000);
    let at = data_positions(&blob);
    assert_eq!(at[1].0, ".prefetch.landmark");
    assert!(at[1].1 > 0 && at[1].2 == 0, "{at:?}");
    assert_eq!(
        at[2].1, at[1].1,
        "b follows in the landmark's member: {at:?}"
    );
    check_blob(blob, report.toc_digest, &entries);
}

/// The writer's external-TOC blobs: payload and 46-byte footer, the TOC in
/// its own file; the blob's diffID is the input tar's.
#[test]
fn external_toc_written_separately_keeps_the_diff_id() {
    for min in [0, 8000] {
        let entries = w13_entries();
        let tar = build_tar(Format::Gnu, &entries, 0);
        let opts = Converter::builder()
            .min_chunk_size(min)
            .external_toc(true)
            .build()
            .unwrap();
        let mut blob = Vec::new();
        let report = opts.convert(&tar[..], &mut blob).unwrap();
        let toc = report.external_toc.clone().unwrap().bytes;
        assert_eq!(
            &blob[blob.len() - 46..],
            &footer::encode_external()[..],
            "ends with the external-TOC footer"
        );
        assert_eq!(common::gunzip(&blob), tar, "the blob is exactly the tar");
        assert_eq!(report.blob.diff_id, Digest::of(&tar));
        assert_eq!(report.blob.uncompressed_size, tar.len() as u64);
        assert_eq!(report.blob.digest, Digest::of(&blob));
        let external = report.external_toc.clone().unwrap();
        assert_eq!(
            (external.digest, external.size),
            (Digest::of(&toc), toc.len() as u64)
        );
        // The TOC file is the embedded TOC member a normal conversion writes.
        let (embedded, embedded_report) = convert_min(&tar, 4 << 20, min);
        assert_eq!(embedded_report.toc_digest, report.toc_digest);
        let toc_offset = embedded_report.toc_offset as usize;
        assert_eq!(&embedded[toc_offset..embedded.len() - 51], &toc[..]);
        assert_eq!(&embedded[..toc_offset], &blob[..blob.len() - 46]);

        let opts = {
            let mut o = OpenOptions::default();
            o.external_toc = Some(toc.clone());
            o
        };
        let opened = Blob::open(&blob[..], &opts).unwrap();
        assert_eq!(opened.read_file("foo/foo1").unwrap(), alnum(64_000, 1));
        assert_verifies(&blob, opts, report.toc_digest);
    }
}
