//! Interoperability with the reference Go implementation, run for real
//! through its driver `estargz-ref` (`../shared/tools/estargz-ref`; the test
//! script builds it). For every fixture: the reference verifies our blob
//! against our TOC digest and unpacks it to the input's exact bytes; where
//! the reference can convert the same input, both TOCs agree but for offsets.

use crate::common;

use common::run_reference;
use common::tar_writer::*;
use estargz_core::Digest;
use std::path::{Path, PathBuf};

/// The reference's TOC of `blob` with every `offset` removed.
fn toc_without_offsets(blob: &Path) -> serde_json::Value {
    let (ok, out, err) = run_reference(&["toc", blob.to_str().unwrap()]);
    assert!(ok, "estargz-ref toc {}: {err}", blob.display());
    let mut toc: serde_json::Value = serde_json::from_str(&out).unwrap();
    for e in toc["entries"].as_array_mut().into_iter().flatten() {
        e.as_object_mut().unwrap().remove("offset");
    }
    toc
}

/// Converts `tar` here, then checks it with the reference; returns whether
/// the reference could also convert the input.
fn check_against_reference(label: &str, tar: &[u8], chunk_size: u64) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.tar");
    std::fs::write(&input, tar).unwrap();
    let (blob, report) = common::convert_with(tar, chunk_size);
    let ours = dir.path().join("ours.esgz");
    std::fs::write(&ours, &blob).unwrap();
    let ours_s = ours.to_str().unwrap();

    let toc_digest = report.toc_digest.to_string();
    let (ok, out, err) = run_reference(&["verify", "-toc-digest", &toc_digest, ours_s]);
    let empty_layer = common::read_toc(&blob).0.entries.is_empty();
    if empty_layer {
        // v0.12.0 has no root for an empty TOC (spec §8.1 #13): a known reference gap.
        assert!(!ok && err.contains("no root"), "{label}: {out}{err}");
    } else {
        assert!(ok, "{label}: reference rejects our blob: {err}");
        assert!(out.contains(&toc_digest), "{label}: {out}");
    }
    let unpacked = dir.path().join("unpacked.tar");
    let (ok, out, err) = run_reference(&["unpack", ours_s, unpacked.to_str().unwrap()]);
    assert!(ok, "{label}: reference unpack failed: {err}");
    assert_eq!(
        out.trim(),
        Digest::of(tar).to_string(),
        "{label}: reference unpack differs from the input"
    );

    // A wrong TOC digest must fail there too.
    if !empty_layer {
        let (ok, ..) = run_reference(&[
            "verify",
            "-toc-digest",
            &Digest::of(b"wrong").to_string(),
            ours_s,
        ]);
        assert!(!ok, "{label}: reference accepted a wrong TOC digest");
    }

    let theirs = dir.path().join("theirs.esgz");
    let chunk = chunk_size.to_string();
    let (ok, _, err) = run_reference(&[
        "lossless",
        "-chunk",
        &chunk,
        input.to_str().unwrap(),
        theirs.to_str().unwrap(),
    ]);
    if !ok {
        // The reference rejects PAX global headers, dumpdirs and the like (spec §8.1).
        assert!(
            err.contains("unsupported input tar entry"),
            "{label}: unexpected reference failure: {err}"
        );
        return false;
    }
    assert_eq!(
        toc_without_offsets(&ours),
        toc_without_offsets(&theirs),
        "{label}: TOCs differ beyond offsets"
    );
    true
}

#[test]
fn reference_accepts_every_valid_fixture() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/tars/valid");
    let mut both = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let tar = if path.extension().is_some_and(|e| e == "gz") {
            common::gunzip(&bytes)
        } else {
            bytes
        };
        both += usize::from(check_against_reference(
            &path.display().to_string(),
            &tar,
            0x1000,
        ));
    }
    assert!(
        both * 2 > files.len(),
        "the reference converted only {both} of {} fixtures",
        files.len()
    );
}

#[test]
fn reference_accepts_conformance_cases_in_every_format_and_prefix() {
    let cases: Vec<Vec<TestEntry>> = vec![
        vec![],
        vec![
            dir("foo"),
            file("foo/bar.txt", "Some contents")
                .xattr("foo", b"bar")
                .xattr("bin", b"\xff\xfe"),
        ],
        vec![dir("foo"), file("foo/big.txt", "This is such a big file")],
        vec![
            file("four", "abcd"),
            file("eight", "abcdefgh"),
            file("empty", ""),
            hardlink("h", "four"),
        ],
        vec![
            chardev("c", 111, 222),
            blockdev("b", 123, 456),
            fifo("f"),
            symlink("s", "../../x"),
        ],
        vec![
            file(&"n".repeat(150), "long name"),
            dir(&format!("{}/d", "p".repeat(120))),
        ],
    ];
    for (i, entries) in cases.iter().enumerate() {
        for format in FORMATS {
            for prefix in PREFIXES {
                if format == Format::Ustar && entries.iter().any(|e| e.name.len() > 100) {
                    continue;
                }
                let tar = build_tar(format, &prefixed(entries, prefix), 100);
                let label = format!("case {i} {format:?} {prefix:?}");
                assert!(
                    check_against_reference(&label, &tar, 4),
                    "{label}: the reference should convert this"
                );
            }
        }
    }
}

/// Blobs the reference writes (`lossless` and `build`, default and tiny
/// chunks, prioritized files) open, verify, read and unpack here; one
/// flipped payload byte fails verification on both sides.
#[test]
fn reference_blobs_verify_and_read_here() {
    use estargz_core::unpack_tar;
    use estargz_core::{verify, VerifyOptions};
    use estargz_core::{Blob, OpenOptions};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let sources = [
        "sample-layer.tar",
        "tars/valid/gnu-gnu.tar",
        "tars/valid/gnu-posix-xattrs.tar",
        "tars/valid/python-pax.tar",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for source in sources {
        let input = root.join(source);
        let tar = std::fs::read(&input).unwrap();
        let variants: Vec<(&str, Vec<&str>)> = vec![
            ("lossless", vec!["lossless"]),
            ("lossless-chunk", vec!["lossless", "-chunk", "1024"]),
            ("build", vec!["build"]),
            ("build-chunk", vec!["build", "-chunk", "64"]),
        ];
        for (label, args) in variants {
            let out = dir.path().join(format!("{label}.esgz"));
            let mut full = args.clone();
            full.push(input.to_str().unwrap());
            full.push(out.to_str().unwrap());
            let (ok, stdout, err) = run_reference(&full);
            assert!(ok, "{source} {label}: {err}");
            let printed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
            let toc_digest: Digest = printed["toc_digest"].as_str().unwrap().parse().unwrap();
            let blob = std::fs::read(&out).unwrap();
            let report = verify(&blob[..], &{
                let mut o = VerifyOptions::default();
                o.expected_toc_digest = Some(toc_digest);
                o
            });
            assert!(report.is_valid(), "{source} {label}: {:?}", report.problems);
            assert!(report.chunks > 0 && report.files > 0);
            let mut unpacked = Vec::new();
            unpack_tar(&blob[..], &mut unpacked).unwrap();
            if label.starts_with("lossless") {
                assert_eq!(unpacked, tar, "{source} {label}: unpack is the input");
            }
            let (ok, theirs, _) = run_reference(&[
                "unpack",
                out.to_str().unwrap(),
                dir.path().join("u.tar").to_str().unwrap(),
            ]);
            assert!(ok);
            assert_eq!(
                theirs.trim(),
                Digest::of(&unpacked).to_string(),
                "{source} {label}: both unpack alike"
            );
            let opened = Blob::open(blob.clone(), &OpenOptions::default()).unwrap();
            for f in opened.index().files() {
                let data = opened
                    .read_file(f.name())
                    .unwrap_or_else(|e| panic!("{source} {label} {}: {e}", f.name()));
                assert_eq!(data.len() as u64, f.size());
            }
            // One flipped byte inside a payload member: both verifiers object.
            let victim = opened
                .index()
                .files()
                .iter()
                .max_by_key(|f| f.size())
                .unwrap()
                .chunks()[0]
                .offset()
                + 20;
            let mut bad = blob.clone();
            bad[victim as usize] ^= 0x01;
            let bad_path = dir.path().join("bad.esgz");
            std::fs::write(&bad_path, &bad).unwrap();
            assert!(
                !verify(&bad[..], &VerifyOptions::default()).is_valid(),
                "{source} {label}: flipped byte accepted here"
            );
            let (ok, ..) = run_reference(&["verify", bad_path.to_str().unwrap()]);
            assert!(
                !ok,
                "{source} {label}: flipped byte accepted by the reference"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}
