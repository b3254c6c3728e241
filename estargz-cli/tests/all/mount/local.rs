//! Mounting local blobs: the tree read back exactly (gzip and zstd:chunked,
//! whiteouts both ways), concurrent random reads, and damaged blobs.

use super::fixture::{self, compare_tree, expected, layer_tar, BIG, SMALL};
use super::{convert, fuse_available, is_mounted, read_all, Mount};
use crate::common::*;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The fixture converted with chunks of 512 KiB (`data/big.bin` has 11).
fn fixture_blob(dir: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["--chunk-size", "524288"];
    args.extend_from_slice(extra);
    convert(dir, "layer.esgz", &layer_tar(), &args)
}

#[test]
fn a_mounted_layer_reads_back_its_tar() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let blob = fixture_blob(tmp.path(), &[]);
    let mount = Mount::start(blob.to_str().unwrap(), &[]);
    compare_tree(mount.dir(), &layer_tar(), true);
    let statfs = rustix::fs::statfs(mount.dir()).unwrap();
    assert!(statfs.f_files > 60, "{}", statfs.f_files);
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{status}\n{stderr}");
    assert!(stderr.contains("unmounted"), "{stderr}");
    assert!(stderr.contains("0 failed"), "{stderr}");
}

#[test]
fn whiteouts_can_be_shown_as_stored() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let blob = fixture_blob(tmp.path(), &[]);
    let mount = Mount::start(blob.to_str().unwrap(), &["--whiteouts", "stored"]);
    compare_tree(mount.dir(), &layer_tar(), false);
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_zstd_chunked_layer_reads_back_its_tar() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let blob = fixture_blob(tmp.path(), &["--compression", "zstd:chunked"]);
    let mount = Mount::start(blob.to_str().unwrap(), &[]);
    compare_tree(mount.dir(), &layer_tar(), true);
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_zstd_chunked_layer_from_skopeo_mounts() {
    if !fuse_available() {
        return;
    }
    // containers/storage's dialect, as skopeo wrote it; its tar is the
    // blob decompressed up to the TOC: `unpack` gives it back.
    let blob = estargz_test_support::zstd_fixture("c40-mixed.zst");
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("c40.tar");
    let out = run([
        "unpack".as_ref(),
        blob.as_os_str(),
        "-o".as_ref(),
        tar.as_os_str(),
    ]);
    assert_exit(&out, 0);
    let tar = fs::read(&tar).unwrap();
    let mount = Mount::start(blob.to_str().unwrap(), &["--whiteouts", "stored"]);
    let all = expected(&tar);
    let by_path = all.iter().map(|e| (e.path.as_str(), e)).collect();
    for e in &all {
        fixture::check_entry(mount.dir(), e, &by_path, true);
    }
    let names = all.iter().map(|e| e.path.clone()).collect();
    assert_eq!(fixture::walk(mount.dir()), names);
    mount.stop();
}

/// Deterministic pseudo-random numbers.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

#[test]
fn files_read_in_random_order_from_several_threads_are_exact() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let blob = fixture_blob(tmp.path(), &[]);
    // A cache of two chunks: evictions all the time.
    let mount = Mount::start(blob.to_str().unwrap(), &["--cache-size", "1048576"]);
    let files: Arc<Vec<(PathBuf, Vec<u8>)>> = Arc::new(
        expected(&layer_tar())
            .into_iter()
            .filter(|e| e.kind == tar::EntryType::Regular && !fixture::is_whiteout(&e.path))
            .map(|e| (mount.path(&e.path), e.data))
            .collect(),
    );
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let files = files.clone();
            std::thread::spawn(move || {
                let mut rng = Lcg(t + 1);
                for _ in 0..150 {
                    let (path, data) = &files[rng.next(files.len() as u64) as usize];
                    let file = fs::File::open(path).unwrap();
                    let at = rng.next(data.len() as u64 + 1) as usize;
                    let len = rng.next(300_000) as usize;
                    let mut buf = vec![0u8; len];
                    let n = file.read_at(&mut buf, at as u64).unwrap();
                    let want = &data[at..(at + len).min(data.len())];
                    assert!(n <= want.len());
                    assert!(buf[..n] == want[..n], "{}: bytes at {at}", path.display());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (path, data) in files.iter() {
        assert!(&read_all(path).unwrap() == data, "{}", path.display());
    }
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

/// The TOC entries (files and chunks) of `name`, in order, and the offset
/// where each one's compressed bytes end (the next larger offset).
fn chunk_runs(blob: &[u8], name: &str) -> Vec<(u64, u64)> {
    let toc = toc(blob);
    let entries = toc["entries"].as_array().unwrap();
    let mut offsets: Vec<u64> = entries
        .iter()
        .filter_map(|e| e["offset"].as_u64())
        .collect();
    offsets.push(toc_offset(blob) as u64);
    offsets.sort();
    entries
        .iter()
        .filter(|e| e["name"] == name && e["offset"].as_u64().is_some_and(|o| o > 0))
        .map(|e| {
            let start = e["offset"].as_u64().unwrap();
            let end = *offsets.iter().find(|&&o| o > start).unwrap();
            (start, end)
        })
        .collect()
}

/// Reads that touch the damaged chunk fail with EIO every time (the cache
/// never holds what failed); the rest of the file and other files read.
fn assert_only_the_chunk_fails(mount: &mut Mount, chunk: usize) {
    let tar = layer_tar();
    let big = expected(&tar)
        .into_iter()
        .find(|e| e.path == BIG)
        .unwrap()
        .data;
    for _ in 0..2 {
        let err = read_all(&mount.path(BIG)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    }
    let file = fs::File::open(mount.path(BIG)).unwrap();
    let mut buf = vec![0u8; 4096];
    let at = (chunk as u64) * 524_288 + 100;
    assert_eq!(
        file.read_at(&mut buf, at).unwrap_err().raw_os_error(),
        Some(libc::EIO)
    );
    file.read_exact_at(&mut buf, 100).unwrap();
    assert!(buf == big[100..4196]);
    assert_eq!(read_all(&mount.path(SMALL)).unwrap(), b"fixture-host\n");
    assert!(read_all(&mount.path("data/medium.bin")).is_ok());
    let stderr = mount.wait_for_stderr("failed, EIO");
    assert!(stderr.contains(BIG), "{stderr}");
}

#[test]
fn a_corrupt_chunk_is_eio_for_that_file_only_and_every_time() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture_blob(tmp.path(), &[]);
    let mut blob = fs::read(&path).unwrap();
    let runs = chunk_runs(&blob, BIG);
    assert!(runs.len() > 5, "{runs:?}");
    let (start, end) = runs[3];
    blob[((start + end) / 2) as usize] ^= 0x55;
    fs::write(&path, &blob).unwrap();
    let mut mount = Mount::start(path.to_str().unwrap(), &[]);
    assert_only_the_chunk_fails(&mut mount, 3);
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

/// `blob` with its TOC JSON replaced by `edit` of it, footer rewritten.
fn with_toc(blob: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut json = toc(blob);
    edit(&mut json);
    let json = serde_json::to_vec(&json).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(json.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "stargz.index.json", &json[..])
        .unwrap();
    let at = toc_offset(blob);
    let mut gz = flate2::write::GzEncoder::new(blob[..at].to_vec(), flate2::Compression::best());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    let mut out = gz.finish().unwrap();
    out.extend_from_slice(&estargz_test_support::spec::footer(at as u64));
    out
}

#[test]
fn a_chunk_that_differs_from_its_toc_digest_is_eio() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture_blob(tmp.path(), &[]);
    let original = fs::read(&path).unwrap();
    // The bytes decode fine; only the TOC's digest of chunk 2 disagrees.
    let blob = with_toc(&original, |toc| {
        let chunk = toc["entries"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .filter(|e| e["name"] == BIG)
            .nth(2)
            .unwrap();
        chunk["chunkDigest"] = Value::from(sha256_digest(b"something else"));
    });
    fs::write(&path, &blob).unwrap();
    let mut mount = Mount::start(path.to_str().unwrap(), &[]);
    assert_only_the_chunk_fails(&mut mount, 2);
    mount.stop();

    // The TOC digest the layer was published with no longer matches.
    let digest = sha256_digest(&toc_json(&original));
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let out = run([
        "mount",
        "--toc-digest",
        &digest,
        path.to_str().unwrap(),
        mnt.to_str().unwrap(),
    ]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains(&digest), "{}", stderr_of(&out));
    assert!(!is_mounted(&mnt.canonicalize().unwrap()));
}

#[test]
fn the_toc_digest_given_is_checked_before_mounting() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture_blob(tmp.path(), &[]);
    let digest = sha256_digest(&toc_json(&fs::read(&path).unwrap()));
    let mount = Mount::start(path.to_str().unwrap(), &["--toc-digest", &digest]);
    assert_eq!(read_all(&mount.path(SMALL)).unwrap(), b"fixture-host\n");
    mount.stop();

    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let wrong = sha256_digest(b"another layer");
    let out = run([
        "mount",
        "--toc-digest",
        &wrong,
        path.to_str().unwrap(),
        mnt.to_str().unwrap(),
    ]);
    assert_exit(&out, 1);
    assert!(!is_mounted(&mnt.canonicalize().unwrap()));
    let out = run([
        "mount",
        "--toc-digest",
        "sha256:nope",
        path.to_str().unwrap(),
        mnt.to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
    let out = run([
        "mount",
        path.to_str().unwrap(),
        tmp.path().join("absent").to_str().unwrap(),
    ]);
    assert_exit(&out, 2);
}

#[test]
fn sigusr1_reports_reads_and_debug_prints_fuse_requests() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture_blob(tmp.path(), &[]);
    let mut mount = Mount::start(path.to_str().unwrap(), &["-d"]);
    assert_eq!(read_all(&mount.path(SMALL)).unwrap(), b"fixture-host\n");
    mount.signal(rustix::process::Signal::USR1);
    let stderr = mount.wait_for_stderr("file reads");
    assert!(
        stderr.contains("LOOKUP") || stderr.contains("Lookup"),
        "{stderr}"
    );
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_busy_mount_is_detached_on_a_second_signal() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = fixture_blob(tmp.path(), &[]);
    let mut mount = Mount::start(path.to_str().unwrap(), &[]);
    let open = fs::File::open(mount.path(SMALL)).unwrap();
    mount.signal(rustix::process::Signal::INT);
    mount.wait_for_stderr("signal again to detach");
    assert!(is_mounted(mount.dir()));
    mount.signal(rustix::process::Signal::INT);
    // Detached: the name is gone, the open file still reads.
    mount.wait_until_unmounted();
    let mut buf = [0u8; 7];
    open.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"fixture");
    drop(open);
    let (status, stderr) = mount.stop_after_exit();
    assert!(status.success(), "{stderr}");
}
