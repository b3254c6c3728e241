//! `convert-image` on layers already in a lazy-pull format: gzip eStargz
//! layers converted to zstd:chunked on request (`--compression
//! zstd:chunked`), zstd:chunked layers passed through unless
//! `--reconvert`, and what a converted lazy layer keeps: its tar without
//! the TOC and landmark entries, the config's diffID updated to it.
//!
//! The layers are real: ours (annotated, and unannotated under a Docker
//! media type), the reference's `estargz-ref build` output (landmark and
//! TOC entries in its tar), and our zstd:chunked.

use crate::common;

use crate::convert_image_registry::skopeo_ok;
use common::*;
use flate2::read::MultiGzDecoder;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ESTARGZ_ONLY: [&str; 3] = [
    "stargz.index.json",
    ".prefetch.landmark",
    ".no.prefetch.landmark",
];

/// A source layer: its blob, media type, the annotations its descriptor
/// gets, and the tar it was made from.
struct Layer {
    blob: Vec<u8>,
    media_type: &'static str,
    annotations: Option<Value>,
    tar: Vec<u8>,
}

/// `estargz convert TAR --json ARGS`: the blob and the report's annotations.
fn ours(tar: &Path, args: &[&str]) -> (Vec<u8>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("blob");
    let mut all: Vec<&std::ffi::OsStr> = vec![
        "convert".as_ref(),
        tar.as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
        "--json".as_ref(),
    ];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let out = run(all);
    assert_exit(&out, 0);
    (
        read(&out_path),
        json_value(&out.stdout)["annotations"].clone(),
    )
}

/// `estargz-ref build TAR`: gzip eStargz whose tar holds a landmark and the TOC entry.
fn reference_build(tar: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("blob");
    reference_ok(["build".as_ref(), tar.as_os_str(), out_path.as_os_str()]);
    read(out_path)
}

/// A layout of one image over `layers`; diff_ids are their blobs' decompressed digests.
fn layout(dir: &Path, layers: &[Layer]) {
    init_layout(dir);
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| sha256_digest(&decompress(&l.blob)))
        .collect();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = put_blob(
        dir,
        &serde_json::to_vec(&config).unwrap(),
        "application/vnd.oci.image.config.v1+json",
    );
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|l| {
            let mut d = put_blob(dir, &l.blob, l.media_type);
            if let Some(a) = &l.annotations {
                d["annotations"] = a.clone();
            }
            d
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config, "layers": descriptors,
    });
    let manifest = put_blob(dir, &serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST);
    write_layout_index(dir, manifest);
}

/// gzip or zstd, by the magic; the whole stream (skippable frames passed over).
fn decompress(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if blob.starts_with(&[0x1f, 0x8b]) {
        MultiGzDecoder::new(blob).read_to_end(&mut out).unwrap();
    } else {
        out = zstd::decode_all(blob).unwrap();
    }
    out
}

/// What a tar holds, entry by entry (up to its end-of-archive): name,
/// type, mode, owner, mtime, link target, the data's digest.
fn entries(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(format!(
            "{name} {:?} {:o} {}:{} {} {link:?} {}",
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            sha256_digest(&data)
        ));
    }
    out
}

fn without_estargz_entries(entries: Vec<String>) -> Vec<String> {
    entries
        .into_iter()
        .filter(|e| {
            let name = e.split(' ').next().unwrap().trim_start_matches("./");
            !ESTARGZ_ONLY.contains(&name)
        })
        .collect()
}

/// The converted image at `dst`: its manifest, config and the `--json` report.
struct Converted {
    manifest: Value,
    config: Value,
    report: Value,
}

fn convert(src: &Path, dst: &Path, args: &[&str]) -> Converted {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["convert-image".as_ref(), src.as_os_str(), dst.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    all.extend(["--json", "--no-cache"].map(std::ffi::OsStr::new));
    let out = run(all);
    assert_exit(&out, 0);
    let index: Value = serde_json::from_slice(&read(dst.join("index.json"))).unwrap();
    let manifest: Value = serde_json::from_slice(&read(layout_blob_path(
        dst,
        index["manifests"][0]["digest"].as_str().unwrap(),
    )))
    .unwrap();
    let config: Value = serde_json::from_slice(&read(layout_blob_path(
        dst,
        manifest["config"]["digest"].as_str().unwrap(),
    )))
    .unwrap();
    Converted {
        manifest,
        config,
        report: json_value(&out.stdout),
    }
}

/// Checks converted layer `i` of `c` (in `dst`): its media type, that its
/// decompressed tar holds what `source_tar` does, minus the eStargz-only
/// entries, that the config's diffID is that tar's, that `estargz verify`
/// accepts it against its TOC annotation and `estargz digest` gives that
/// diffID. Returns the blob.
fn check_converted(
    dst: &Path,
    c: &Converted,
    i: usize,
    media_type: &str,
    source_tar: &[u8],
) -> Vec<u8> {
    let layer = &c.manifest["layers"][i];
    assert_eq!(layer["mediaType"], media_type, "{layer}");
    let path = layout_blob_path(dst, layer["digest"].as_str().unwrap());
    let blob = read(&path);
    let tar = decompress(&blob);
    let diff_id = c.config["rootfs"]["diff_ids"][i].as_str().unwrap();
    assert_eq!(diff_id, sha256_digest(&tar), "layer {i}: config diffID");
    let inside = entries(&tar);
    assert_eq!(
        inside,
        without_estargz_entries(inside.clone()),
        "layer {i}: TOC or landmark entries left"
    );
    assert_eq!(
        inside,
        without_estargz_entries(entries(source_tar)),
        "layer {i}: the tar inside"
    );
    let toc = layer["annotations"][TOC_DIGEST_ANNOTATION]
        .as_str()
        .unwrap();
    assert_verifies(&path, toc);
    let out = run(["digest".as_ref(), "--json".as_ref(), path.as_os_str()]);
    assert_exit(&out, 0);
    assert_eq!(
        json_value(&out.stdout)["diff_id"],
        diff_id,
        "layer {i}: estargz digest"
    );
    blob
}

/// The source image: ours gzip eStargz (annotated), ours with a no-prefetch
/// landmark under a Docker media type (no annotations: found by its
/// footer), the reference's `build` (landmark and TOC entries), and ours
/// zstd:chunked (annotated).
fn lazy_source(root: &Path) -> (PathBuf, Vec<Layer>) {
    let pax = Path::new(VALID_DIR).join("python-pax.tar");
    let gnu = Path::new(VALID_DIR).join("gnu-ustar.tar");
    let sample = Path::new(SAMPLE_LAYER);
    let (esgz, esgz_annotations) = ours(&pax, &[]);
    let (landmarked, _) = ours(&gnu, &["--no-prefetch-landmark"]);
    let (zstd, zstd_annotations) = ours(sample, &["--compression", "zstd:chunked"]);
    let layers = vec![
        Layer {
            blob: esgz,
            media_type: OCI_GZIP,
            annotations: Some(esgz_annotations),
            tar: read(&pax),
        },
        Layer {
            blob: landmarked,
            media_type: DOCKER_GZIP,
            annotations: None,
            tar: read(&gnu),
        },
        Layer {
            blob: reference_build(sample),
            media_type: OCI_GZIP,
            annotations: None,
            tar: read(sample),
        },
        Layer {
            blob: zstd,
            media_type: OCI_ZSTD,
            annotations: Some(zstd_annotations),
            tar: read(sample),
        },
    ];
    let src = root.join("src");
    layout(&src, &layers);
    (src, layers)
}

#[test]
fn zstd_chunked_converts_estargz_layers_and_passes_zstd_chunked_ones() {
    let root = tempfile::tempdir().unwrap();
    let (src, layers) = lazy_source(root.path());
    let dst = root.path().join("zstd");
    let c = convert(&src, &dst, &["--compression", "zstd:chunked"]);
    let report = c.report["layers"].as_array().unwrap();
    for (i, layer) in layers.iter().enumerate().take(3) {
        let blob = check_converted(&dst, &c, i, OCI_ZSTD, &layer.tar);
        // Ours was lossless: the tar inside is the original byte for byte.
        if i == 0 {
            assert!(
                decompress(&blob) == layer.tar,
                "layer 0 is not the original tar"
            );
        }
        let r = report
            .iter()
            .find(|r| r["source_digest"] == sha256_digest(&layer.blob))
            .unwrap();
        assert_eq!(r["action"], "converted", "{r}");
        assert!(r["reason"].as_str().unwrap().contains("was eStargz"), "{r}");
    }
    // zstd:chunked already: the same descriptor, the same diffID.
    let src_index: Value = serde_json::from_slice(&read(src.join("index.json"))).unwrap();
    let src_manifest: Value = serde_json::from_slice(&read(layout_blob_path(
        &src,
        src_index["manifests"][0]["digest"].as_str().unwrap(),
    )))
    .unwrap();
    assert_eq!(c.manifest["layers"][3], src_manifest["layers"][3]);
    assert_eq!(
        c.config["rootfs"]["diff_ids"][3],
        sha256_digest(&layers[3].tar)
    );
    let r = report
        .iter()
        .find(|r| r["source_digest"] == sha256_digest(&layers[3].blob))
        .unwrap();
    assert_eq!(r["action"], "passed-through", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("zstd:chunked"),
        "{r}"
    );
    if on_path("skopeo") {
        skopeo_ok(&["inspect", "--raw", &format!("oci:{}", dst.display())]);
    }

    // Back to gzip: zstd:chunked layers pass through by default, image unchanged...
    let again = root.path().join("gzip");
    let g = convert(&dst, &again, &[]);
    assert!(
        g.report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["action"] == "passed-through"),
        "{}",
        g.report
    );
    assert_eq!(read(dst.join("index.json")), read(again.join("index.json")));
    // ...and are converted with --reconvert, to the very blob converting the tar gives.
    let back = root.path().join("reconverted");
    let g = convert(&dst, &back, &["--reconvert"]);
    for (i, layer) in layers.iter().enumerate() {
        let blob = check_converted(&back, &g, i, OCI_GZIP, &layer.tar);
        if i == 0 {
            assert_eq!(sha256_digest(&blob), sha256_digest(&layers[0].blob));
        }
        if i == 3 {
            let (plain, _) = ours(Path::new(SAMPLE_LAYER), &[]);
            assert_eq!(sha256_digest(&blob), sha256_digest(&plain));
        }
    }
}

#[test]
fn reconvert_applies_to_gzip_estargz_under_gzip_too() {
    let root = tempfile::tempdir().unwrap();
    let (src, layers) = lazy_source(root.path());
    let dst = root.path().join("plain");
    let c = convert(&src, &dst, &[]);
    let actions: Vec<&str> = c.report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.iter().all(|&a| a == "passed-through"),
        "{}",
        c.report
    );
    let dst = root.path().join("again");
    let c = convert(&src, &dst, &["--reconvert"]);
    for (i, layer) in layers.iter().enumerate() {
        check_converted(&dst, &c, i, OCI_GZIP, &layer.tar);
    }
}

/// An unannotated zstd:chunked layer (found by its footer) converted with
/// --reconvert is cached; a run without --reconvert must still pass it
/// through rather than take the cached conversion, and a run with it
/// takes the cache.
#[test]
fn the_cache_is_keyed_by_reconvert() {
    let root = tempfile::tempdir().unwrap();
    let (zstd, _) = ours(Path::new(SAMPLE_LAYER), &["--compression", "zstd:chunked"]);
    let src = root.path().join("src");
    let tar = read(SAMPLE_LAYER);
    layout(
        &src,
        &[Layer {
            blob: zstd,
            media_type: OCI_ZSTD,
            annotations: None,
            tar,
        }],
    );
    let cache = root.path().join("cache");
    let cache = cache.to_str().unwrap();
    let run_with = |name: &str, extra: &[&str]| {
        let dst = root.path().join(name);
        let mut args = vec![
            "convert-image",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
            "--json",
            "--cache",
            cache,
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_exit(&out, 0);
        let report = json_value(&out.stdout);
        let l = &report["layers"][0];
        (
            l["action"].as_str().unwrap().to_string(),
            l["cache"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        run_with("a", &["--reconvert"]),
        ("converted".into(), "miss".into())
    );
    assert_eq!(run_with("b", &[]), ("passed-through".into(), "off".into()));
    assert_eq!(
        run_with("c", &["--reconvert"]),
        ("converted".into(), "hit".into())
    );
}
