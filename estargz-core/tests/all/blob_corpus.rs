//! The blob corpus in `testdata/blobs/` (see its README and make-blobs.sh):
//! blobs the reference wrote, blobs damaged one defect at a time, and
//! hostile layers. Valid ones verify, read and unpack exactly; every damaged
//! one is reported invalid; nothing unpacks outside its directory.

use crate::common;

use estargz_core::{
    unpack_tar, unpack_to_dir, verify, Blob, Digest, OpenOptions, UnpackOptions, VerifyOptions,
};
use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// (blob bytes, sidecar JSON, file name) for every blob in `dir`.
fn blobs(dir: &str) -> Vec<(Vec<u8>, serde_json::Value, String)> {
    let root = testdata().join("blobs").join(dir);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "esgz"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no blobs in {}", root.display());
    names
        .into_iter()
        .map(|p| {
            let sidecar: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p.with_extension("json")).unwrap()).unwrap();
            (
                std::fs::read(&p).unwrap(),
                sidecar,
                p.file_name().unwrap().to_string_lossy().into_owned(),
            )
        })
        .collect()
}

fn expected_digest(sidecar: &serde_json::Value) -> Option<Digest> {
    sidecar["toc_digest"].as_str().map(|d| d.parse().unwrap())
}

#[test]
fn reference_and_control_blobs_are_valid_and_read_exactly() {
    for dir in ["ref", "control"] {
        for (blob, sidecar, name) in blobs(dir) {
            let report = verify(&blob[..], &{
                let mut o = VerifyOptions::default();
                o.expected_toc_digest = expected_digest(&sidecar);
                o
            });
            assert!(report.is_valid(), "{dir}/{name}: {:?}", report.problems);
            let opened = Blob::open(blob.clone(), &OpenOptions::default()).unwrap();
            for f in opened.index().files() {
                assert_eq!(
                    opened.read_file(f.name()).unwrap().len() as u64,
                    f.size(),
                    "{name}: {}",
                    f.name()
                );
            }
            let mut tar = Vec::new();
            unpack_tar(&blob[..], &mut tar).unwrap();
            if let Some(diff_id) = sidecar["diff_id"].as_str() {
                let (toc, ..) = common::read_toc(&blob);
                let mut all = tar.clone();
                all.extend(estargz_core::internals::tar_bytes(&toc.to_json()));
                // The reference's TOC JSON re-encodes identically, so the diffID follows.
                assert_eq!(Digest::of(&all).to_string(), diff_id, "{name}: diffID");
            }
            if sidecar["mode"] == "lossless" {
                let source =
                    std::fs::read(testdata().join(sidecar["source"].as_str().unwrap())).unwrap();
                assert_eq!(tar, source, "{name}: unpack gives the source tar");
            }
        }
    }
}

#[test]
fn every_damaged_blob_is_reported() {
    for (blob, sidecar, name) in blobs("bad") {
        let report = verify(&blob[..], &{
            let mut o = VerifyOptions::default();
            o.expected_toc_digest = expected_digest(&sidecar);
            o
        });
        assert!(
            !report.is_valid(),
            "bad/{name} verified ({})",
            sidecar["what"]
        );
        // Also without an expected digest: the defect itself must be found,
        // except where the only defect is the digest.
        let own = verify(&blob[..], &VerifyOptions::default());
        let tampered_toc_only = name.starts_with("tampered-toc");
        assert!(
            !own.is_valid() || tampered_toc_only,
            "bad/{name} verified with its own digest"
        );
        // Opening and reading must not panic, whatever they return.
        if let Ok(opened) = Blob::open(blob.clone(), &OpenOptions::default()) {
            for f in opened.index().files() {
                let _ = opened.read_file(f.name());
            }
        }
    }
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        out.push(e.unwrap().file_name().to_string_lossy().into_owned());
    }
    out.sort();
    out
}

#[test]
fn hostile_blobs_never_write_outside_the_directory() {
    for (blob, sidecar, name) in blobs("hostile") {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        let result = unpack_to_dir(&blob[..], &target, &UnpackOptions::default());
        assert_eq!(
            tree(tmp.path()),
            vec!["target"],
            "{name}: something appeared beside the target"
        );
        assert!(!Path::new("/etc/evil").exists() && !Path::new("/abs-evil").exists());
        if let Ok(report) = &result {
            assert!(report.entries > 0, "{name}");
        }
        // The tar stream itself is still the original.
        let mut tar = Vec::new();
        unpack_tar(&blob[..], &mut tar).unwrap();
        assert_eq!(
            Some(Digest::of(&tar).to_string().as_str()),
            sidecar["tar_sha256"].as_str(),
            "{name}"
        );
    }
}
