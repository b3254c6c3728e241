//! The reading commands on zstd:chunked blobs (issue #19): `ls`, `cat`,
//! `info`, `unpack`, `verify` and `digest` work unchanged on the fixtures of
//! testdata/blobs/zstd/ (stargz dialect by the reference driver, containers
//! dialect by Debian's skopeo). Expected values come from the sidecars the
//! writers' reports filled, and from an independent decoder (`zstd -dc` as
//! the `zstd` crate does it).

use crate::common::*;
use serde_json::Value;

use estargz_test_support::{zstd_fixture as fixture, ZSTD_FIXTURES as FIXTURES};

/// A path as an argument (the fixtures' and temporary paths are UTF-8).
fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn sidecar(name: &str) -> Value {
    serde_json::from_slice(&read(fixture(&format!("{name}.json")))).unwrap()
}

/// Regular files of a tar: (name, contents).
fn tar_files(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut out = Vec::new();
    for entry in tar::Archive::new(tar).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() == tar::EntryType::Regular {
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((name, data));
        }
    }
    out
}

#[test]
fn ls_cat_unpack_verify_and_digest_on_every_fixture() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let blob = fixture(&format!("{name}.zst"));
        let bytes = read(&blob);
        let whole = zstd::decode_all(&bytes[..]).unwrap();
        let diff_id = sha256_digest(&whole);

        let out = run(["verify", s(&blob)]);
        assert_exit_for(&out, 0, name);
        let text = stdout_of(&out);
        assert!(
            text.starts_with("ok ") && text.contains("zstd:chunked"),
            "{text}"
        );
        assert!(text.contains("manifest_checksum=sha256:"), "{text}");

        let out = run(["ls", s(&blob)]);
        assert_exit_for(&out, 0, name);
        let listed = stdout_of(&out);
        for (path, data) in tar_files(&whole) {
            assert!(
                listed.lines().any(|l| l == path),
                "{name}: {path} in {listed}"
            );
            let out = run(["cat", s(&blob), path.as_str()]);
            assert_exit_for(&out, 0, format!("{name}: cat {path}"));
            assert!(out.stdout == data, "{name}: cat {path}");
        }

        let tar = dir.path().join(format!("{name}.tar"));
        let out = run(["unpack", s(&blob), "-o", s(&tar)]);
        assert_exit_for(&out, 0, name);
        assert!(read(&tar) == whole, "{name}: unpack -o");
        let into = dir.path().join(name);
        let out = run(["unpack", s(&blob), "-C", s(&into)]);
        assert_exit_for(&out, 0, name);
        for (path, data) in tar_files(&whole) {
            if path.ends_with("prefetch.landmark") {
                // Z33: format artifacts, not unpacked.
                assert!(!into.join(&path).exists(), "{name}: {path}");
                continue;
            }
            assert!(read(into.join(&path)) == data, "{name}: unpack -C {path}");
        }

        let out = run(["digest", "--json", s(&blob)]);
        assert_exit_for(&out, 0, name);
        let digest = json_object(&out.stdout);
        assert_eq!(str_field(&digest, "diff_id"), diff_id, "{name}");
        assert_eq!(str_field(&digest, "digest"), sha256_digest(&bytes));
        if let Some(want) = sidecar(name)["ref"]["diff_id"].as_str() {
            assert_eq!(diff_id, want, "{name}");
        }
    }
}

/// `info --json` names the dialect, the footer version and both digests,
/// the media type and the annotations of that dialect.
#[test]
fn info_names_dialect_footer_and_both_digests() {
    for name in FIXTURES {
        let blob = fixture(&format!("{name}.zst"));
        let side = sidecar(name);
        let out = run(["info", "--json", s(&blob)]);
        assert_exit_for(&out, 0, name);
        let info = json_object(&out.stdout);
        let z = info["zstd_chunked"]
            .as_object()
            .expect("zstd_chunked object");
        assert_eq!(z["dialect"], side["dialect"], "{name}");
        assert_eq!(z["footer_version"], 40, "{name}");
        assert_eq!(z["toc_digest"], info["toc_digest"]);
        assert_eq!(
            info["media_type"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let ann = info["annotations"].as_object().unwrap();
        let checksum = &ann["io.containers.zstd-chunked.manifest-checksum"];
        assert_eq!(&z["manifest_checksum"], checksum, "{name}");
        match side["dialect"].as_str().unwrap() {
            "stargz" => {
                assert_eq!(z["toc_digest"], side["ref"]["toc_digest"], "{name}");
                assert_eq!(ann[TOC_DIGEST_ANNOTATION], side["ref"]["toc_digest"]);
            }
            _ => {
                let layer = &side["layer"]["annotations"];
                assert_eq!(
                    checksum,
                    &layer["io.containers.zstd-chunked.manifest-checksum"]
                );
                assert_eq!(
                    ann["io.containers.zstd-chunked.manifest-position"],
                    layer["io.containers.zstd-chunked.manifest-position"]
                );
                assert!(!ann.contains_key(TOC_DIGEST_ANNOTATION), "{name}");
            }
        }
        let out = run(["info", s(&blob)]);
        assert_exit_for(&out, 0, name);
        let text = stdout_of(&out);
        assert!(text.contains("zstd:chunked 40-byte (48 bytes)"), "{text}");
        assert!(
            text.contains(z["manifest_checksum"].as_str().unwrap()),
            "{text}"
        );
    }
}

/// A damaged data frame: `cat` fails naming the frame's offset, `verify`
/// exits 1 naming it, `unpack` fails.
#[test]
fn damaged_frame_fails_cat_verify_and_unpack() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = read(fixture("s-lossless-small.zst"));
    // foo/bar.txt's frame is at 129, 36 bytes long (spec §3.6).
    bytes[129 + 20] ^= 0x01;
    let blob = dir.path().join("bad.zst");
    std::fs::write(&blob, &bytes).unwrap();
    let out = run(["cat", s(&blob), "foo/bar.txt"]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("129"), "{}", stderr_of(&out));
    let out = run(["verify", "--json", s(&blob)]);
    assert_exit(&out, 1);
    let report = json_value(&out.stdout);
    let problems = report["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p["offset"] == 129), "{problems:?}");
    let out = run(["unpack", s(&blob), "-o", "-"]);
    assert_ne!(out.status.code(), Some(0));
    // A footer pointing outside the blob: an error naming the footer's offset.
    let mut bytes = read(fixture("s-lossless-small.zst"));
    let n = bytes.len();
    bytes[n - 40..n - 32].copy_from_slice(&3u64.to_le_bytes());
    std::fs::write(&blob, &bytes).unwrap();
    for cmd in ["ls", "verify", "info"] {
        let out = run([cmd, s(&blob)]);
        assert_exit_for(&out, 1, cmd);
        assert!(
            stderr_of(&out).contains(&(n - 48).to_string()),
            "{cmd}: {}",
            stderr_of(&out)
        );
    }
}
