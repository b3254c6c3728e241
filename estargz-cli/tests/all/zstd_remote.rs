//! Z25 of docs/zstd-chunked-format.md §9: every zstd:chunked variant this
//! machine writes, served by a real nginx, read over HTTP. The stargz
//! dialect (ours, and the reference's `estargz-ref lossless -zstd` and
//! `build -zstd`), skopeo's 40-byte containers dialect (`skopeo copy
//! --dest-compress-format zstd:chunked`, spec §10) and our 64-byte one:
//! `ls`, `cat`, `verify` and `unpack` of the URL succeed, and a read
//! inside a multi-chunk file's second chunk (the library's positioned
//! read through `HttpBlob`) fetches nothing outside that chunk's frames,
//! counted from nginx's access log.

use crate::common;

use common::nginx::{Nginx, Request};
use common::noise::noise;
use common::registry::require;
use common::*;
use estargz_core::{Blob, EntryType, OpenOptions, TocInfo};
use estargz_remote::{HttpBlob, HttpOptions};
use serde_json::json;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

const BIG: &str = "data/big.bin";
const CHUNK: &str = "65536";

/// The source: a directory, small files, and a 1 MiB file of noise that
/// every writer splits into several chunks (64 KiB for the stargz
/// writers; containers/storage's rolling sum averages about that). No
/// bytes after the end-of-archive: skopeo 1.9.3 fails on them (spec §8 #6).
fn source_tar() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_mtime(1_700_000_000);
    dir.set_size(0);
    dir.set_cksum();
    tar.append_data(&mut dir, "data/", &[][..]).unwrap();
    let files: [(&str, Vec<u8>); 3] = [
        ("data/hostname", b"zstd-host\n".to_vec()),
        (BIG, noise(25, 1 << 20)),
        ("data/motd", b"welcome\n".to_vec()),
    ];
    for (name, data) in files {
        append_file(&mut tar, name, &data);
    }
    tar.into_inner().unwrap()
}

/// A blob of `tar`, whether it holds every tar byte (lossless), and the
/// dialect and footer length `info` must name.
struct Variant {
    name: &'static str,
    blob: Vec<u8>,
    lossless: bool,
    dialect: (&'static str, u64),
}

fn ours(dir: &Path, tar: &Path, name: &'static str, extra: &[&str]) -> Variant {
    let out_path = dir.join(name);
    let mut args = vec![
        "convert",
        tar.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
        "--compression",
        "zstd:chunked",
        "--chunk-size",
        CHUNK,
    ];
    args.extend_from_slice(extra);
    assert_exit(&run(&args), 0);
    let containers = extra.contains(&"containers");
    Variant {
        name,
        blob: read(out_path),
        lossless: true,
        dialect: if containers {
            ("containers", 64)
        } else {
            ("stargz", 40)
        },
    }
}

fn reference(dir: &Path, tar: &Path, mode: &str, name: &'static str) -> Variant {
    let out_path = dir.join(name);
    reference_ok(
        [mode, "-zstd", "-chunk", CHUNK]
            .map(OsStr::new)
            .into_iter()
            .chain([tar.as_os_str(), out_path.as_os_str()]),
    );
    Variant {
        name,
        blob: read(out_path),
        lossless: mode == "lossless",
        dialect: ("stargz", 40),
    }
}

/// skopeo's zstd:chunked layer of `tar` (an OCI layout of it copied to
/// another layout with `--dest-compress-format zstd:chunked`).
fn skopeo(dir: &Path, tar: &[u8]) -> Variant {
    let (src, dst) = (dir.join("skopeo-in"), dir.join("skopeo-out"));
    init_layout(&src);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
    });
    let config = put_blob(
        &src,
        &serde_json::to_vec(&config).unwrap(),
        "application/vnd.oci.image.config.v1+json",
    );
    let layer = put_blob(&src, tar, "application/vnd.oci.image.layer.v1.tar");
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer],
    });
    let manifest = put_blob(
        &src,
        &serde_json::to_vec(&manifest).unwrap(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    write_layout_index(&src, manifest);
    output_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--dest-compress-format", "zstd:chunked"])
            .arg(format!("oci:{}", src.display()))
            .arg(format!("oci:{}:latest", dst.display()))
            .env("REGISTRY_AUTH_FILE", dir.join("no-auth.json")),
    );
    let index: serde_json::Value = serde_json::from_slice(&read(dst.join("index.json"))).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&read(layout_blob_path(
        &dst,
        index["manifests"][0]["digest"].as_str().unwrap(),
    )))
    .unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    Variant {
        name: "skopeo-c40",
        blob: read(layout_blob_path(&dst, layer["digest"].as_str().unwrap())),
        lossless: true,
        dialect: ("containers", 40),
    }
}

/// What a tar holds up to its end-of-archive, entry by entry, the
/// eStargz landmarks left out.
fn entries(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if !name.ends_with(".landmark") {
            out.push((name, data));
        }
    }
    out
}

/// The second chunk of `BIG`: its range in the file, and in the blob
/// `[its frame's offset, the next larger offset in the TOC)` (or the TOC
/// frame's offset when none is larger).
fn second_chunk(blob: &[u8]) -> ((u64, u64), (u64, u64)) {
    let (info, _) = TocInfo::read(blob, &OpenOptions::default()).unwrap();
    let entries = &info.toc.entries;
    let mut chunks: Vec<_> = entries
        .iter()
        .filter(|e| e.name == BIG && matches!(e.kind, EntryType::Reg | EntryType::Chunk))
        .collect();
    chunks.sort_by_key(|e| e.chunk_offset);
    assert!(chunks.len() >= 3, "{BIG} in {} chunks", chunks.len());
    let (second, third) = (chunks[1], chunks[2]);
    let start = second.offset as u64;
    let end = entries
        .iter()
        .map(|e| e.offset as u64)
        .filter(|&o| o > start)
        .min()
        .unwrap_or(info.toc_offset);
    (
        (second.chunk_offset as u64, third.chunk_offset as u64),
        (start, end),
    )
}

/// `bytes=A-B` as `(A, B + 1)`.
fn range_of(r: &Request) -> (u64, u64) {
    let spec = r.range.as_deref().and_then(|r| r.strip_prefix("bytes="));
    let (a, b) = spec
        .and_then(|s| s.split_once('-'))
        .unwrap_or_else(|| panic!("not a range request: {r:?}"));
    (a.parse().unwrap(), b.parse::<u64>().unwrap() + 1)
}

/// `info`, `ls`, `cat`, `verify` and `unpack` of `url`, checked against `tar`.
fn cli_reads(v: &Variant, url: &str, tar: &[u8], big: &[u8], scratch: &Path) {
    let out = run(["info", "--json", url]);
    assert_exit_for(&out, 0, v.name);
    let info = json_value(&out.stdout);
    let z = &info["zstd_chunked"];
    assert_eq!(
        (
            z["dialect"].as_str().unwrap(),
            z["footer_version"].as_u64().unwrap()
        ),
        v.dialect,
        "{}",
        v.name
    );
    let out = run(["ls", url]);
    assert_exit_for(&out, 0, v.name);
    assert!(
        stdout_of(&out).contains(BIG),
        "{}: {}",
        v.name,
        stdout_of(&out)
    );
    let out = run(["cat", url, BIG]);
    assert_exit_for(&out, 0, v.name);
    assert!(out.stdout == big, "{}: cat {BIG} differs", v.name);
    let out = run(["verify", url]);
    assert_exit_for(&out, 0, v.name);
    let unpacked = scratch.join(format!("{}.tar", v.name));
    let out = run(["unpack", url, "-o", unpacked.to_str().unwrap()]);
    assert_exit_for(&out, 0, v.name);
    let unpacked = read(&unpacked);
    if v.lossless {
        assert!(unpacked == tar, "{}: unpack is not the input tar", v.name);
    }
    assert!(
        entries(&unpacked) == entries(tar),
        "{}: unpack's entries differ",
        v.name
    );
}

/// A read inside `BIG`'s second chunk, through `HttpBlob`: after the
/// opening reads (tail, TOC), only bytes of that chunk's frames are fetched.
fn second_chunk_read(v: &Variant, server: &Nginx, url: &str, big: &[u8]) {
    let ((c_start, c_end), (b_start, b_end)) = second_chunk(&v.blob);
    // A small tail: the chunk is not among the bytes fetched on open.
    let opts = HttpOptions {
        tail_size: 4096,
        ..HttpOptions::default()
    };
    let blob = Blob::open(HttpBlob::open(url, &opts).unwrap(), &OpenOptions::default()).unwrap();
    let file = blob.open_file(BIG).unwrap();
    let at = c_start + (c_end - c_start) / 3;
    let mut buf = vec![0; 1000];
    let (n, requests) = server.requests_during(|| file.read_at(at, &mut buf).unwrap());
    assert_eq!(n, buf.len(), "{}", v.name);
    assert!(
        buf[..] == big[at as usize..][..n],
        "{}: wrong bytes",
        v.name
    );
    assert!(!requests.is_empty(), "{}: nothing fetched", v.name);
    let mut fetched = 0;
    for r in &requests {
        let (a, b) = range_of(r);
        assert!(
            r.status == 206 && b_start <= a && b <= b_end,
            "{}: {r:?} outside the chunk's [{b_start}, {b_end})",
            v.name
        );
        fetched += b - a;
    }
    assert!(fetched <= b_end - b_start, "{}: {requests:?}", v.name);
}

#[test]
fn every_zstd_chunked_variant_reads_over_http_chunk_by_chunk() {
    if !require(
        "skopeo",
        Command::new("skopeo").arg("--version").output().is_ok(),
    ) {
        return;
    }
    let Some(server) = Nginx::start() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let tar = source_tar();
    let tar_path = dir.join("source.tar");
    std::fs::write(&tar_path, &tar).unwrap();
    let big = noise(25, 1 << 20);
    let variants = [
        ours(dir, &tar_path, "ours-stargz", &[]),
        ours(dir, &tar_path, "ours-c64", &["--toc-format", "containers"]),
        reference(dir, &tar_path, "lossless", "ref-lossless"),
        reference(dir, &tar_path, "build", "ref-build"),
        skopeo(dir, &tar),
    ];
    for v in &variants {
        server.serve(v.name, &v.blob);
        let url = server.url(v.name);
        cli_reads(v, &url, &tar, &big, dir);
        second_chunk_read(v, &server, &url, &big);
    }
}
