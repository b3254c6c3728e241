//! Prioritized files and landmarks (spec §4.6): the TestSort cases S1–S17
//! of §7.4, each × {plain, gzip input} × {"", "./", "/"} on the prioritized
//! names × {"", "./", "/"} on the tar names × {PAX, GNU} headers, checked
//! header by header in the decompressed blob; then what the reference lacks
//! (missing parents, an all-missing list, global headers, hostile inputs)
//! and the reference driver on our reordered blobs.

use crate::common;

use common::run_reference;
use common::tar_writer::*;
use estargz_core::internals::{Item, Scanner};
use estargz_core::prioritize::{
    parse_list, reorder, spool, tar_file, Landmark, PrioritizeOptions, Reordered, LANDMARK_DIGEST,
};
use estargz_core::{
    verify, Blob, ConvertReport, Converter, Digest, EntryType, Error, Input, NamePolicy,
    OpenOptions, ReadAt, ScanLimits, VerifyOptions,
};
use std::io::{Read, Write};

const L: &str = ".prefetch.landmark";
const NL: &str = ".no.prefetch.landmark";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A landmark entry as some writer may have left it in the input.
fn landmark_entry(name: &str) -> TestEntry {
    file(name, [0x0f])
}

/// The reordered tar's bytes.
fn reordered_bytes<S: ReadAt>(mut r: Reordered<S>) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out.len() as u64, r.len(), "len() is what read gives");
    out
}

/// Reorders `tar` (given as `gzip` or plain) and converts the result.
fn prioritize(
    tar: &[u8],
    gzipped: bool,
    list: Option<&[String]>,
    allow_missing: bool,
) -> Result<
    (
        Vec<u8>,
        ConvertReport,
        estargz_core::prioritize::ReorderReport,
    ),
    Error,
> {
    let options = {
        let mut o = PrioritizeOptions::default();
        o.allow_missing = allow_missing;
        o
    };
    let mut blob = Vec::new();
    let (convert_report, report) = if gzipped {
        let file = spool(&gzip(tar)[..])?;
        let reordered = reorder(file, list, &options)?;
        let report = reordered.report().clone();
        (
            Converter::new().convert(Input::stream(reordered), &mut blob)?,
            report,
        )
    } else {
        let reordered = reorder(tar, list, &options)?;
        let report = reordered.report().clone();
        (
            Converter::new().convert(Input::stream(reordered), &mut blob)?,
            report,
        )
    };
    Ok((blob, convert_report, report))
}

/// Names and data of the entries of the tar inside the blob, in order (the
/// TOC tar after the end-of-archive is not reached).
fn headers(blob: &[u8]) -> Vec<(String, Vec<u8>)> {
    let all = common::gunzip(blob);
    let mut s = Scanner::new(&all[..], NamePolicy::Replace, ScanLimits::default());
    let mut out = Vec::new();
    while let Some(item) = s.next_item().unwrap() {
        match item {
            Item::Entry(e) => {
                let mut data = Vec::new();
                s.read_data(&mut data, e.size).unwrap();
                out.push((e.name.clone(), data));
            }
            Item::End { .. } => break,
        }
    }
    out
}

/// What every reordered blob must satisfy: it verifies, its landmark has the
/// known digest, and `.prefetch.landmark`'s data starts a member whose
/// offset the reader reports as the end of the prefetch range.
fn check_blob(label: &str, blob: &[u8], report: &ConvertReport, landmark: Landmark) {
    let check = verify(blob, &{
        let mut o = VerifyOptions::default();
        o.expected_toc_digest = Some(report.toc_digest);
        o
    });
    assert!(check.is_valid(), "{label}: {:?}", check.problems);
    let (toc, _, _) = common::read_toc(blob);
    let entries: Vec<_> = toc
        .entries
        .iter()
        .filter(|e| e.name == L || e.name == NL)
        .collect();
    assert_eq!(entries.len(), 1, "{label}: exactly one landmark");
    let e = entries[0];
    assert_eq!(e.name, landmark.name(), "{label}");
    assert_eq!(
        (e.kind.clone(), e.size, e.mode),
        (EntryType::Reg, 1, 0),
        "{label}: landmark entry"
    );
    assert_eq!(e.digest, LANDMARK_DIGEST, "{label}");
    assert_eq!(e.chunk_digest, LANDMARK_DIGEST, "{label}");
    let starts: Vec<i64> = common::members(blob).iter().map(|m| m.0 as i64).collect();
    assert!(
        starts.contains(&e.offset),
        "{label}: landmark data at {} does not start a member",
        e.offset
    );
    let opened = Blob::open(blob, &OpenOptions::default()).unwrap();
    match landmark {
        Landmark::Prefetch => {
            assert_eq!(
                opened.index().prefetch_end(),
                Some(e.offset as u64),
                "{label}"
            );
            assert!(!opened.index().has_no_prefetch_landmark(), "{label}");
        }
        Landmark::NoPrefetch => {
            assert_eq!(opened.index().prefetch_end(), None, "{label}");
            assert!(opened.index().has_no_prefetch_landmark(), "{label}");
        }
    }
}

/// One TestSort case: input entries (unprefixed), the prioritized list
/// (`None`: no list), and the expected names (unprefixed; `L`/`NL` are the
/// landmarks) or `None` for an error.
struct Case {
    id: &'static str,
    input: Vec<TestEntry>,
    list: Option<Vec<&'static str>>,
    allow_missing: bool,
    expected: Option<Vec<&'static str>>,
    missed: Vec<&'static str>,
}

fn case(
    id: &'static str,
    input: Vec<TestEntry>,
    list: Option<Vec<&'static str>>,
    expected: Option<Vec<&'static str>>,
) -> Case {
    Case {
        id,
        input,
        list,
        allow_missing: false,
        expected,
        missed: Vec::new(),
    }
}

/// Every TestSort case, S1–S17 in order.
fn sort_cases() -> Vec<Case> {
    let mut cases = shuffle_cases();
    cases.extend(name_and_type_cases());
    cases.extend(existing_landmark_cases());
    cases.extend(missing_duplicate_and_link_cases());
    cases
}

fn four_files() -> Vec<TestEntry> {
    vec![
        file("foo.txt", "foo"),
        file("baz.txt", "baz"),
        file("bar.txt", "bar"),
        file("baa.txt", "baa"),
    ]
}

/// Input that already holds a `.prefetch.landmark`.
fn landmarked() -> Vec<TestEntry> {
    vec![
        file("baa.txt", "baa"),
        file("bar.txt", "bar"),
        file("baz.txt", "baz"),
        landmark_entry(L),
        file("foo.txt", "foo"),
    ]
}

/// Input that already holds a `.no.prefetch.landmark`.
fn no_landmarked() -> Vec<TestEntry> {
    vec![
        landmark_entry(NL),
        file("baa.txt", "baa"),
        file("bar.txt", "bar"),
        file("baz.txt", "baz"),
        file("foo.txt", "foo"),
    ]
}

/// Entries under `root` (`./` or `/`), the root itself included.
fn rooted(root: &str) -> Vec<TestEntry> {
    vec![
        dir(root),
        file(&format!("{root}foo.txt"), "foo"),
        file(&format!("{root}baz.txt"), "baz"),
        file(&format!("{root}baa.txt"), "baa"),
        hardlink(&format!("{root}bazlink"), &format!("{root}baz.txt")),
    ]
}

/// S1–S5: no list, and lists that reorder files, directories and links.
fn shuffle_cases() -> Vec<Case> {
    vec![
        case(
            "S1 nolog",
            vec![
                file("foo.txt", "foo"),
                dir("bar"),
                file("bar/baz.txt", "baz"),
                file("bar/bar.txt", "bar"),
            ],
            None,
            Some(vec![NL, "foo.txt", "bar/", "bar/baz.txt", "bar/bar.txt"]),
        ),
        case(
            "S2 identical",
            vec![
                file("foo.txt", "foo"),
                dir("bar"),
                file("bar/baz.txt", "baz"),
                file("bar/bar.txt", "bar"),
                file("bar/baa.txt", "baa"),
            ],
            Some(vec!["foo.txt", "bar/baz.txt"]),
            Some(vec![
                "foo.txt",
                "bar/",
                "bar/baz.txt",
                L,
                "bar/bar.txt",
                "bar/baa.txt",
            ]),
        ),
        case(
            "S3 shuffle_reg",
            four_files(),
            Some(vec!["baa.txt", "bar.txt", "baz.txt"]),
            Some(vec!["baa.txt", "bar.txt", "baz.txt", L, "foo.txt"]),
        ),
        case(
            "S4 shuffle_directory",
            vec![
                file("foo.txt", "foo"),
                dir("bar"),
                file("bar/bar.txt", "bar"),
                file("bar/baa.txt", "baa"),
                dir("baz"),
                file("baz/baz1.txt", "baz1"),
                file("baz/baz2.txt", "baz2"),
                dir("baz/bazbaz"),
                file("baz/bazbaz/bazbaz_b.txt", "b"),
                file("baz/bazbaz/bazbaz_a.txt", "a"),
            ],
            Some(vec!["baz/bazbaz/bazbaz_a.txt", "baz/baz2.txt", "foo.txt"]),
            Some(vec![
                "baz/",
                "baz/bazbaz/",
                "baz/bazbaz/bazbaz_a.txt",
                "baz/baz2.txt",
                "foo.txt",
                L,
                "bar/",
                "bar/bar.txt",
                "bar/baa.txt",
                "baz/baz1.txt",
                "baz/bazbaz/bazbaz_b.txt",
            ]),
        ),
        case(
            "S5 shuffle_link",
            vec![
                file("foo.txt", "foo"),
                file("baz.txt", "baz"),
                hardlink("bar.txt", "baz.txt"),
                file("baa.txt", "baa"),
            ],
            Some(vec!["baz.txt"]),
            Some(vec!["baz.txt", L, "foo.txt", "bar.txt", "baa.txt"]),
        ),
    ]
}

/// S6–S7: long names and non-regular entry types.
fn name_and_type_cases() -> Vec<Case> {
    let n120 = Box::leak("x".repeat(120).into_boxed_str()) as &'static str;
    let bar_n150 = Box::leak(format!("bar/{}", "y".repeat(150)).into_boxed_str()) as &'static str;
    vec![
        case(
            "S6 longname",
            vec![
                file("foo.txt", "foo"),
                file(n120, "long"),
                dir("bar"),
                file("bar/bar.txt", "bar"),
                file("bar/baa.txt", "baa"),
                file(bar_n150, "longer"),
            ],
            Some(vec![bar_n150, n120]),
            Some(vec![
                "bar/",
                bar_n150,
                n120,
                L,
                "foo.txt",
                "bar/bar.txt",
                "bar/baa.txt",
            ]),
        ),
        case(
            "S7 various_types",
            vec![
                file("foo.txt", "foo"),
                symlink("foo2", "foo.txt"),
                chardev("foochar", 10, 50),
                blockdev("fooblock", 15, 20),
                fifo("fifoo"),
            ],
            Some(vec!["fifoo", "foo2", "foo.txt", "fooblock"]),
            Some(vec!["fifoo", "foo2", "foo.txt", "fooblock", L, "foochar"]),
        ),
    ]
}

/// S8–S11: inputs that already hold a landmark, with and without a list.
fn existing_landmark_cases() -> Vec<Case> {
    vec![
        case(
            "S8 existing_landmark",
            landmarked(),
            Some(vec!["foo.txt", "bar.txt"]),
            Some(vec!["foo.txt", "bar.txt", L, "baa.txt", "baz.txt"]),
        ),
        case(
            "S9 existing_landmark_nolog",
            landmarked(),
            None,
            Some(vec![NL, "baa.txt", "bar.txt", "baz.txt", "foo.txt"]),
        ),
        case(
            "S10 existing_noprefetch_landmark",
            no_landmarked(),
            Some(vec!["foo.txt", "bar.txt"]),
            Some(vec!["foo.txt", "bar.txt", L, "baa.txt", "baz.txt"]),
        ),
        case(
            "S11 existing_noprefetch_landmark_nolog",
            no_landmarked(),
            None,
            Some(vec![NL, "baa.txt", "bar.txt", "baz.txt", "foo.txt"]),
        ),
    ]
}

/// S12–S17: listed names missing from the tar, duplicates, hardlinks and
/// rooted names.
fn missing_duplicate_and_link_cases() -> Vec<Case> {
    vec![
        Case {
            missed: vec!["dummy"],
            ..case(
                "S12 not_existing_file",
                four_files(),
                Some(vec!["baa.txt", "bar.txt", "dummy"]),
                None,
            )
        },
        Case {
            allow_missing: true,
            missed: vec!["dummy1", "dummy2"],
            ..case(
                "S13 not_existing_file_allow_fail",
                four_files(),
                Some(vec!["baa.txt", "dummy1", "bar.txt", "dummy2"]),
                Some(vec!["baa.txt", "bar.txt", L, "foo.txt", "baz.txt"]),
            )
        },
        case(
            "S14 duplicated_entry",
            vec![
                file("foo.txt", "foo"),
                dir("bar"),
                file("bar/baz.txt", "baz"),
                dir("bar"),
                file("bar/baz.txt", "baz2"),
            ],
            Some(vec!["bar/baz.txt"]),
            Some(vec!["bar/", "bar/baz.txt", L, "foo.txt"]),
        ),
        case(
            "S15 hardlink",
            vec![file("baz.txt", "aaaaa"), hardlink("bazlink", "baz.txt")],
            Some(vec!["bazlink"]),
            Some(vec!["baz.txt", "bazlink", L]),
        ),
        case(
            "S16 root_relative_file",
            rooted("./"),
            Some(vec!["baa.txt", "bazlink"]),
            Some(vec![
                "./",
                "./baa.txt",
                "./baz.txt",
                "./bazlink",
                L,
                "./foo.txt",
            ]),
        ),
        case(
            "S17 root_absolute_file",
            rooted("/"),
            Some(vec!["baa.txt", "bazlink"]),
            Some(vec!["/", "/baa.txt", "/baz.txt", "/bazlink", L, "/foo.txt"]),
        ),
    ]
}

const NAME_PREFIXES: [&str; 3] = ["", "./", "/"];

/// `entries` with the tar prefix on every name but the landmarks'.
fn tar_entries(entries: &[TestEntry], prefix: &str) -> Vec<TestEntry> {
    entries
        .iter()
        .map(|e| {
            if e.name == L || e.name == NL {
                e.clone()
            } else {
                prefixed(std::slice::from_ref(e), prefix).remove(0)
            }
        })
        .collect()
}

#[test]
fn test_sort_cases_s1_to_s17() {
    for c in sort_cases() {
        for format in [Format::Pax, Format::Gnu] {
            for gzipped in [false, true] {
                for list_prefix in NAME_PREFIXES {
                    for tar_prefix in NAME_PREFIXES {
                        let label = format!(
                            "{} {format:?} gzip={gzipped} list {list_prefix:?} tar {tar_prefix:?}",
                            c.id
                        );
                        let tar = build_tar(format, &tar_entries(&c.input, tar_prefix), 0);
                        let list: Option<Vec<String>> = c
                            .list
                            .as_ref()
                            .map(|l| l.iter().map(|n| format!("{list_prefix}{n}")).collect());
                        let result = prioritize(&tar, gzipped, list.as_deref(), c.allow_missing);
                        let missed: Vec<String> = c
                            .missed
                            .iter()
                            .map(|n| format!("{list_prefix}{n}"))
                            .collect();
                        let Some(expected) = &c.expected else {
                            match result {
                                Err(Error::PrioritizedNotFound { names }) => {
                                    assert_eq!(names, missed, "{label}: names as given")
                                }
                                Err(other) => panic!("{label}: wrong error {other}"),
                                Ok(_) => panic!("{label}: no error"),
                            }
                            continue;
                        };
                        let (blob, convert_report, report) =
                            result.unwrap_or_else(|e| panic!("{label}: {e}"));
                        let want: Vec<String> = expected
                            .iter()
                            .map(|n| {
                                if *n == L || *n == NL {
                                    n.to_string()
                                } else {
                                    format!("{tar_prefix}{n}")
                                }
                            })
                            .collect();
                        let got = headers(&blob);
                        let got_names: Vec<&str> = got.iter().map(|h| h.0.as_str()).collect();
                        assert_eq!(got_names, want, "{label}");
                        assert_eq!(report.missing, missed, "{label}: missed");
                        let landmark = if expected.contains(&L) {
                            Landmark::Prefetch
                        } else {
                            Landmark::NoPrefetch
                        };
                        assert_eq!(report.landmark, landmark, "{label}");
                        assert_eq!(convert_report.tar_size, report.tar_size, "{label}");
                        if c.id.starts_with("S14") {
                            let baz: Vec<&Vec<u8>> = got
                                .iter()
                                .filter(|h| h.0.ends_with("baz.txt"))
                                .map(|h| &h.1)
                                .collect();
                            assert_eq!(baz, [&b"baz2".to_vec()], "{label}: last wins");
                            assert_eq!(report.dropped_duplicates, 2, "{label}");
                        }
                        check_blob(&label, &blob, &convert_report, landmark);
                    }
                }
            }
        }
    }
}

#[test]
fn entries_keep_their_exact_bytes() {
    // GNU long names and PAX records survive: every moved entry's bytes are
    // a slice of the input.
    for format in [Format::Pax, Format::Gnu] {
        let long = format!("d/{}", "n".repeat(200));
        let input = vec![
            dir("d"),
            file("d/a", "a".repeat(700)),
            file(&long, "long").xattr("user.k", b"v"),
        ];
        let tar = build_tar(format, &input, 0);
        let list = vec![long.clone()];
        let r = reorder(&tar[..], Some(&list), &PrioritizeOptions::default()).unwrap();
        assert_eq!(r.report().prefetch_entries, 2);
        let out = reordered_bytes(r);
        let names: Vec<String> = headers(&gzip(&out)).into_iter().map(|h| h.0).collect();
        assert_eq!(names, ["d/", long.as_str(), L, "d/a"], "{format:?}");
        // The input minus its end-of-archive, in 512-byte blocks, is a multiset
        // of the output's blocks: nothing was re-encoded.
        let mut input_blocks: Vec<&[u8]> = tar[..tar.len() - 1024].chunks(512).collect();
        let mut output_blocks: Vec<&[u8]> = out.chunks(512).collect();
        output_blocks.retain(|b| !b.starts_with(L.as_bytes()) && !b.starts_with(&[0x0f]));
        output_blocks.truncate(output_blocks.len() - 2);
        input_blocks.sort();
        output_blocks.sort();
        assert_eq!(input_blocks, output_blocks, "{format:?}");
        assert!(out.ends_with(&[0u8; 1024]));
    }
}

#[test]
fn missing_parent_directories_are_skipped() {
    let tar = build_tar(
        Format::Pax,
        &[
            file("x.txt", "x"),
            file("a/b/c.txt", "c"),
            dir("a/b"),
            file("a/b/d.txt", "d"),
        ],
        0,
    );
    let list = vec!["/a/b/d.txt".to_string(), "a/b/c.txt".to_string()];
    let (blob, convert_report, report) = prioritize(&tar, false, Some(&list), false).unwrap();
    let names: Vec<String> = headers(&blob).into_iter().map(|h| h.0).collect();
    assert_eq!(names, ["a/b/", "a/b/d.txt", "a/b/c.txt", L, "x.txt"]);
    assert_eq!(report.found, list);
    assert_eq!(report.prefetch_entries, 3);
    check_blob("missing parent", &blob, &convert_report, Landmark::Prefetch);
}

#[test]
fn a_list_with_nothing_found_gives_no_prefetch_landmark() {
    let tar = build_tar(Format::Pax, &[file("a", "a"), file("b", "b")], 0);
    for list in [vec!["nope".to_string(), "/also/not".to_string()], vec![]] {
        let (blob, convert_report, report) = prioritize(&tar, false, Some(&list), true).unwrap();
        let names: Vec<String> = headers(&blob).into_iter().map(|h| h.0).collect();
        assert_eq!(names, [NL, "a", "b"]);
        assert_eq!(report.landmark, Landmark::NoPrefetch);
        assert_eq!(report.missing, list);
        assert!(report.found.is_empty());
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains(".no.prefetch.landmark")),
            "{:?}",
            report.warnings
        );
        check_blob("all missing", &blob, &convert_report, Landmark::NoPrefetch);
    }
}

#[test]
fn ndjson_and_plain_lists_mix() {
    let text = "{\"path\":\"/bin/sh\",\"ops\":[{\"op\":\"open\"}]}\n\
                etc/passwd\r\n\
                \n\
                {\"path\": \"./usr/lib/a b\"}\n";
    assert_eq!(
        parse_list(text).unwrap(),
        ["/bin/sh", "etc/passwd", "./usr/lib/a b"]
    );
    for bad in ["{\"path\": null}", "{\"nopath\": \"x\"}", "{broken"] {
        let err = parse_list(&format!("ok\n{bad}\n")).unwrap_err();
        assert!(
            matches!(err, Error::PrioritizedList { line: 2, .. }),
            "{bad}: {err}"
        );
    }
}

/// A PAX global header block with `records` (as `git archive` writes one).
fn pax_global(records: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..23].copy_from_slice(b"pax_global_header\0\0\0\0\0\0");
    h[100..108].copy_from_slice(b"0000666\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", records.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'g';
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(records.as_bytes());
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn leading_pax_global_header_stays_in_front() {
    let global = pax_global("52 comment=0123456789abcdef0123456789abcdef01234567\n");
    let mut tar = global.clone();
    tar.extend(build_tar(
        Format::Pax,
        &[dir("repo"), file("repo/a", "a"), file("repo/b", "b")],
        0,
    ));
    for gzipped in [false, true] {
        let list = vec!["repo/b".to_string()];
        let (blob, convert_report, _) = prioritize(&tar, gzipped, Some(&list), false).unwrap();
        let all = common::gunzip(&blob);
        assert_eq!(&all[..global.len()], &global[..], "global header first");
        let names: Vec<String> = headers(&blob).into_iter().map(|h| h.0).collect();
        assert_eq!(names, ["repo/", "repo/b", L, "repo/a"]);
        check_blob("git archive", &blob, &convert_report, Landmark::Prefetch);
        let (blob, convert_report, _) = prioritize(&tar, gzipped, None, false).unwrap();
        assert_eq!(&common::gunzip(&blob)[..global.len()], &global[..]);
        check_blob(
            "git archive nolog",
            &blob,
            &convert_report,
            Landmark::NoPrefetch,
        );
    }
}

#[test]
fn a_global_header_after_an_entry_is_an_error() {
    let first = build_tar(Format::Pax, &[file("a", "a")], 0);
    let mut tar = first[..first.len() - 1024].to_vec();
    let at = tar.len() as u64;
    tar.extend(pax_global("17 comment=later\n"));
    tar.extend(build_tar(Format::Pax, &[file("b", "b")], 0));
    let err = reorder(&tar[..], None, &PrioritizeOptions::default())
        .err()
        .expect("an error");
    match &err {
        Error::Reorder { offset, entry, .. } => {
            assert_eq!(*offset, at, "{err}");
            assert_eq!(entry.as_deref(), Some("b"), "{err}");
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("PAX global header"), "{err}");
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let good = build_tar(Format::Pax, &[file("a", "abc"), file("b", "b")], 0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "truncated data",
            good[..good.len() - 1024 - 512 - 300].to_vec(),
        ),
        ("garbage", vec![b'x'; 2048]),
        ("truncated header", good[..100].to_vec()),
    ];
    for (label, tar) in cases {
        let r = reorder(&tar[..], None, &PrioritizeOptions::default());
        assert!(r.is_err(), "{label}");
        assert!(
            spool(&tar[..])
                .and_then(|f| reorder(f, None, &PrioritizeOptions::default()))
                .is_err(),
            "{label} spooled"
        );
    }
    // Bad gzip is an error while spooling, not a panic.
    let mut gz = gzip(&good);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz.truncate(gz.len() - 4);
    assert!(spool(&gz[..]).is_err());

    // Hard-link cycles and deep names terminate.
    let tar = build_tar(
        Format::Pax,
        &[
            hardlink("x", "y"),
            hardlink("y", "x"),
            file("d/".repeat(5000).trim_end_matches('/'), "deep"),
        ],
        0,
    );
    let list = vec!["x".to_string(), "d/".repeat(5000)];
    let r = reorder(&tar[..], Some(&list), &PrioritizeOptions::default()).unwrap();
    assert_eq!(r.report().prefetch_entries, 3);
    let names: Vec<String> = headers(&gzip(&reordered_bytes(r)))
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(&names[..2], ["y", "x"]);
    assert_eq!(names[3], L);

    // The end-of-archive-only tar gets just a landmark.
    let eoa = vec![0u8; 1024];
    let out = reordered_bytes(reorder(&eoa[..], None, &PrioritizeOptions::default()).unwrap());
    assert_eq!(out.len(), 2048);
}

#[test]
fn an_existing_toc_entry_is_refused_at_its_input_offset() {
    let tar = build_tar(
        Format::Ustar,
        &[file("a", "a"), file("./stargz.index.json", "{}")],
        0,
    );
    let list = vec!["a".to_string()];
    match reorder(&tar[..], Some(&list), &PrioritizeOptions::default()) {
        Err(Error::ExistingToc { entry, offset }) => {
            assert_eq!((entry.as_str(), offset), ("./stargz.index.json", 1024));
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn files_and_gzip_files_are_read_in_place_or_spooled() {
    let tar = build_tar(Format::Gnu, &[file("a", "a"), file("b", "bb")], 7);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("l.tar");
    let gz = dir.path().join("l.tar.gz");
    std::fs::write(&plain, &tar).unwrap();
    std::fs::write(&gz, gzip(&tar)).unwrap();
    let list = vec!["b".to_string()];
    let mut outs = Vec::new();
    for path in [&plain, &gz] {
        let file = tar_file(std::fs::File::open(path).unwrap()).unwrap();
        let r = reorder(file, Some(&list), &PrioritizeOptions::default()).unwrap();
        assert!(
            r.report().warnings.is_empty(),
            "zero trailing bytes are not worth a warning: {:?}",
            r.report().warnings
        );
        outs.push(reordered_bytes(r));
    }
    assert_eq!(outs[0], outs[1]);
    let names: Vec<String> = headers(&gzip(&outs[0])).into_iter().map(|h| h.0).collect();
    assert_eq!(names, ["b", L, "a"]);
}

// ---------------------------------------------------------------------------
// The reference driver on our reordered blobs
// ---------------------------------------------------------------------------

#[test]
fn reference_verifies_and_unpacks_reordered_blobs_and_sorts_alike() {
    let dir = tempfile::tempdir().unwrap();
    for c in sort_cases() {
        let Some(_) = &c.expected else { continue };
        for tar_prefix in NAME_PREFIXES {
            let label = format!("{} tar {tar_prefix:?}", c.id);
            let tar = build_tar(Format::Pax, &tar_entries(&c.input, tar_prefix), 0);
            let list: Option<Vec<String>> = c
                .list
                .as_ref()
                .map(|l| l.iter().map(|n| n.to_string()).collect());
            let options = {
                let mut o = PrioritizeOptions::default();
                o.allow_missing = c.allow_missing;
                o
            };
            let reordered = reordered_bytes(reorder(&tar[..], list.as_deref(), &options).unwrap());
            let (blob, report) = common::convert_with(&reordered, 4 << 20);
            common::check_lossless(&reordered, &blob, &report, 4 << 20);
            let path = dir.path().join("ours.esgz");
            std::fs::write(&path, &blob).unwrap();
            let p = path.to_str().unwrap();
            let digest = report.toc_digest.to_string();
            let (ok, out, err) = run_reference(&["verify", "-toc-digest", &digest, p]);
            assert!(ok, "{label}: reference rejects our blob: {err}");
            assert!(out.contains(&digest), "{label}: {out}");
            let unpacked = dir.path().join("unpacked.tar");
            let (ok, out, err) = run_reference(&["unpack", p, unpacked.to_str().unwrap()]);
            assert!(ok, "{label}: reference unpack: {err}");
            assert_eq!(
                out.trim(),
                Digest::of(&reordered).to_string(),
                "{label}: reference unpacks the reordered tar"
            );

            // Where the reference can sort the same input (no allow-missing
            // flag in its driver), its TOC lists the entries in our order.
            if c.allow_missing {
                continue;
            }
            let input = dir.path().join("in.tar");
            std::fs::write(&input, &tar).unwrap();
            let theirs = dir.path().join("theirs.esgz");
            let mut args = vec!["build".to_string()];
            if let Some(list) = &list {
                args.push("-prioritized".into());
                args.push(list.join(","));
            }
            args.push(input.to_str().unwrap().into());
            args.push(theirs.to_str().unwrap().into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, _, err) = run_reference(&args);
            assert!(ok, "{label}: reference build: {err}");
            let names = |toc: &str| -> Vec<String> {
                let v: serde_json::Value = serde_json::from_str(toc).unwrap();
                v["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["type"] != "chunk")
                    .map(|e| e["name"].as_str().unwrap().to_string())
                    .collect()
            };
            let (ok, theirs_toc, err) = run_reference(&["toc", theirs.to_str().unwrap()]);
            assert!(ok, "{label}: {err}");
            let (ok, ours_toc, err) = run_reference(&["toc", p]);
            assert!(ok, "{label}: {err}");
            assert_eq!(names(&ours_toc), names(&theirs_toc), "{label}: order");
        }
    }
}

// ---------------------------------------------------------------------------
// Random trees and damaged tars
// ---------------------------------------------------------------------------

mod random {
    use super::*;
    use proptest::prelude::*;

    /// Names from a small pool, so duplicates, parents and hard-link
    /// targets (present or not, cycles included) come up often.
    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4)
            .prop_map(|parts| parts.join("/"))
    }

    fn entry() -> impl Strategy<Value = TestEntry> {
        prop_oneof![
            3 => (name(), prop::collection::vec(any::<u8>(), 0..700)).prop_map(|(n, d)| file(&n, d)),
            2 => name().prop_map(|n| dir(&n)),
            1 => (name(), name()).prop_map(|(n, t)| hardlink(&n, &t)),
            1 => (name(), name()).prop_map(|(n, t)| symlink(&n, &t)),
            1 => prop::sample::select(vec![L, NL]).prop_map(landmark_entry),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn reordering_keeps_the_last_of_each_name_and_puts_the_list_first(
            entries in prop::collection::vec(entry(), 0..12),
            list in prop::option::of(prop::collection::vec(
                (prop::sample::select(vec!["", "./", "/"]), name()), 0..4)),
            allow_missing in any::<bool>(),
            tar_prefix in prop::sample::select(vec!["", "./", "/"]),
        ) {
            let tar = build_tar(Format::Pax, &tar_entries(&entries, tar_prefix), 0);
            let list: Option<Vec<String>> =
                list.map(|l| l.into_iter().map(|(p, n)| format!("{p}{n}")).collect());
            let options = { let mut o = PrioritizeOptions::default(); o.allow_missing = allow_missing; o };
            let result = reorder(&tar[..], list.as_deref(), &options);
            let reordered = match result {
                Err(Error::PrioritizedNotFound { names }) => {
                    prop_assert!(!allow_missing && !names.is_empty());
                    return Ok(());
                }
                other => other.unwrap(),
            };
            let report = reordered.report().clone();
            let out = reordered_bytes(reordered);
            let got: Vec<String> = headers(&gzip(&out)).into_iter().map(|h| h.0).collect();

            // The kept entries: the last of each cleaned name, landmarks dropped.
            let clean = estargz_core::internals::clean;
            let mut last = std::collections::HashMap::new();
            for (i, e) in entries.iter().enumerate() {
                let c = clean(&e.name);
                if c != L && c != NL {
                    last.insert(c, i);
                }
            }
            let landmark = report.landmark.name();
            prop_assert_eq!(got.iter().filter(|n| n.as_str() == L || n.as_str() == NL).count(), 1);
            let at = got.iter().position(|n| n == landmark).unwrap();
            if report.landmark == Landmark::NoPrefetch {
                prop_assert_eq!(at, 0);
            } else {
                prop_assert_eq!(at, report.prefetch_entries);
            }
            let mut kept: Vec<String> = got.iter().filter(|n| *n != landmark).cloned().collect();
            let mut want: Vec<String> = last
                .values()
                .map(|&i| format!("{}{}", tar_prefix, entries[i].name))
                .collect();
            kept.sort();
            want.sort();
            prop_assert_eq!(kept, want);
            // Every found name is in the prefetch region.
            let before: Vec<String> = got[..at].iter().map(|n| clean(n)).collect();
            for found in &report.found {
                prop_assert!(before.contains(&clean(found)), "{} not before the landmark", found);
            }
            prop_assert_eq!(report.found.len() + report.missing.len(),
                list.as_ref().map_or(0, |l| l.len()) - list.as_ref().map_or(0, |l| {
                    l.iter().filter(|n| clean(n).is_empty() && !last.contains_key("")).count()
                }));
        }

        #[test]
        fn damaged_tars_never_panic(
            cuts in prop::collection::vec((0usize..4096, any::<u8>()), 1..6),
            truncate in prop::option::of(0usize..4096),
        ) {
            let mut tar = build_tar(
                Format::Gnu,
                &[dir("d"), file("d/a", "a".repeat(600)), hardlink("d/b", "d/a"),
                  file(&format!("d/{}", "l".repeat(150)), "long")],
                0,
            );
            for (at, byte) in cuts {
                let len = tar.len();
                tar[at % len] = byte;
            }
            if let Some(t) = truncate {
                tar.truncate(t.min(tar.len()));
            }
            let list = vec!["d/b".to_string()];
            let options = { let mut o = PrioritizeOptions::default(); o.allow_missing = true; o };
            if let Ok(r) = reorder(&tar[..], Some(&list), &options) {
                let out = reordered_bytes(r);
                let _ = Converter::new().convert(&out[..], std::io::sink());
            }
        }
    }
}

#[test]
fn small_reads_cross_piece_boundaries_exactly() {
    let tar = build_tar(
        Format::Gnu,
        &[file("a", "x".repeat(513)), dir("d"), file("d/b", "b")],
        0,
    );
    let list = vec!["d/b".to_string()];
    let whole =
        reordered_bytes(reorder(&tar[..], Some(&list), &PrioritizeOptions::default()).unwrap());
    for step in [1usize, 7, 511, 513, 4096] {
        let mut r = reorder(&tar[..], Some(&list), &PrioritizeOptions::default()).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, whole, "reads of {step}");
        assert_eq!(r.read(&mut buf).unwrap(), 0, "stays at the end");
    }
}
