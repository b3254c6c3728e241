//! A tar converted in memory (file data taken in place) against the same
//! bytes converted as a stream: identical blobs, TOCs and
//! reports on every fixture, under every option that moves member
//! boundaries, and identical errors on every damaged input.

use crate::common;

use estargz_core::{ConvertReport, Converter, Input, InputBytes, SharedInput};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn fixtures() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/tars");
    let mut files = Vec::new();
    for dir in ["valid", "invalid", "sparse"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.sort();
    assert!(files.len() > 20, "fixtures missing: {files:?}");
    files
}

/// Blob, external TOC (when asked for) and report, or the error's text.
type Outcome = Result<(Vec<u8>, Option<Vec<u8>>, ConvertReport), String>;

fn streamed(input: &[u8], opts: &Converter) -> Outcome {
    outcome(|blob| opts.convert(input, blob))
}

fn in_memory(input: SharedInput, opts: &Converter) -> Outcome {
    outcome(|blob| opts.convert(Input::InMemory(input), blob))
}

/// The blob `convert` writes, the external TOC it returns and its report.
fn outcome(convert: impl FnOnce(&mut Vec<u8>) -> estargz_core::Result<ConvertReport>) -> Outcome {
    let mut blob = Vec::new();
    convert(&mut blob)
        .map(|mut r| {
            let toc = r
                .external_toc
                .as_mut()
                .map(|t| std::mem::take(&mut t.bytes));
            (blob, toc, r)
        })
        .map_err(|e| e.to_string())
}

fn option_sets() -> Vec<(Converter, bool)> {
    let mut sets = Vec::new();
    for (chunk_size, min_chunk_size) in [(4 << 20, 0), (1000, 0), (4 << 20, 3000), (700, 100_000)] {
        for threads in [1, 3] {
            for external in [false, true] {
                let opts = Converter::builder()
                    .chunk_size(chunk_size)
                    .min_chunk_size(min_chunk_size)
                    .threads(Some(threads))
                    .external_toc(external)
                    .build()
                    .unwrap();
                sets.push((opts, external));
            }
        }
    }
    sets
}

fn assert_same(name: &str, input: &[u8], opts: &Converter, external: bool) -> bool {
    let a = streamed(input, opts);
    let b = in_memory(Arc::new(input.to_vec()), opts);
    assert_eq!(a, b, "{name} with {opts:?}, external TOC {external}");
    a.is_ok()
}

#[test]
fn every_fixture_gives_the_same_blob_or_error() {
    let (mut ok, mut failed) = (0, 0);
    for path in fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        for (opts, external) in option_sets() {
            if assert_same(&path.display().to_string(), &bytes, &opts, external) {
                ok += 1;
            } else {
                failed += 1;
            }
        }
    }
    // Both kinds were compared (gzip fixtures go through the stream path).
    assert!(ok > 100 && failed > 50, "{ok} converted, {failed} refused");
}

#[test]
fn truncated_and_damaged_tars_fail_alike() {
    let tar = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sample-layer.tar"),
    )
    .unwrap();
    let opts = Converter::builder().chunk_size(4096).build().unwrap();
    let mut errors = 0;
    for cut in (1..tar.len()).step_by(tar.len() / 97 + 1) {
        if !assert_same(&format!("cut at {cut}"), &tar[..cut], &opts, false) {
            errors += 1;
        }
    }
    for at in (0..tar.len()).step_by(tar.len() / 53 + 1) {
        let mut bad = tar.clone();
        bad[at] ^= 0x5a;
        assert_same(&format!("byte {at} flipped"), &bad, &opts, false);
    }
    assert!(errors > 50, "only {errors} truncations failed");
}

#[test]
fn every_truncation_of_a_small_tar_fails_alike() {
    let mut b = tar::Builder::new(Vec::new());
    for (name, size) in [("empty", 0usize), ("a", 700), ("dir/b", 3000), ("c", 513)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let opts = Converter::builder()
        .chunk_size(1000)
        .threads(Some(1))
        .build()
        .unwrap();
    for cut in 1..tar.len() {
        assert_same(&format!("cut at {cut}"), &tar[..cut], &opts, false);
    }
}

/// An input that records what the converter says it is done with.
struct Recording {
    bytes: Vec<u8>,
    released: Mutex<Vec<usize>>,
}

impl InputBytes for Recording {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn release(&self, end: usize) {
        self.released.lock().unwrap().push(end);
    }
}

#[test]
fn release_moves_forward_to_the_end_of_the_tar() {
    let tar = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sample-layer.tar"),
    )
    .unwrap();
    let input = Arc::new(Recording {
        bytes: tar.clone(),
        released: Mutex::new(Vec::new()),
    });
    let opts = Converter::builder().chunk_size(2048).build().unwrap();
    let mut blob = Vec::new();
    opts.convert(Input::InMemory(input.clone()), &mut blob)
        .unwrap();
    let released = input.released.lock().unwrap().clone();
    assert!(!released.is_empty());
    assert!(released.windows(2).all(|w| w[0] <= w[1]), "{released:?}");
    assert_eq!(*released.last().unwrap(), tar.len());
    let (expected, _) = common::convert_with(&tar, 2048);
    assert_eq!(blob, expected);
}
