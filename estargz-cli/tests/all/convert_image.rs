//! End-to-end tests of `estargz convert-image`: OCI layouts and archives
//! are built here from the tars in testdata/, converted by the real binary,
//! then checked by skopeo (which verifies every digest it copies), by the
//! reference driver (`estargz-ref verify -toc-digest`) and here (diffIDs,
//! annotations, what must pass through byte for byte).
//!
//! skopeo and estargz-ref are external tools: without them these checks are
//! skipped with a message, except under CI (`CI` set), where that fails.

use crate::common;

use common::*;
use flate2::read::MultiGzDecoder;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

// ---------------------------------------------------------------------------
// Building layouts
// ---------------------------------------------------------------------------

struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    fn blob(&self, bytes: &[u8], media_type: &str) -> Value {
        let digest = sha256_digest(bytes);
        std::fs::write(self.blob_path(&digest), bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    fn json(&self, doc: &Value, media_type: &str) -> Value {
        self.blob(&serde_json::to_vec(doc).unwrap(), media_type)
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    /// An image manifest over `layers` (blob bytes, media type, the tar inside).
    fn image(
        &self,
        layers: &[(&[u8], &str, &[u8])],
        manifest_type: &str,
        config_type: &str,
    ) -> Value {
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256_digest(l.2)).collect::<Vec<_>>()},
            "history": [{"created_by": "test"}],
        });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": self.json(&config, config_type),
            "layers": layers.iter().map(|l| self.blob(l.0, l.1)).collect::<Vec<_>>(),
            "annotations": {"org.example.keep": "manifest"},
        });
        self.json(&manifest, manifest_type)
    }

    fn index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index).unwrap(),
        )
        .unwrap();
    }
}

/// `root/src`: an image of one uncompressed layer holding `size` bytes of
/// varied text, slow to compress.
fn text_image(root: &Path, size: usize) -> PathBuf {
    let mut text = Vec::with_capacity(size);
    let mut x: u64 = 1;
    while text.len() < size {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.extend_from_slice(format!("line {} {:x}\n", x >> 40, x).as_bytes());
    }
    let mut header = tar::Header::new_ustar();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_data(&mut header, "big.txt", &text[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let src = root.join("src");
    let l = Layout::new(&src);
    let image = l.image(&[(&tar, OCI_TAR, &tar)], OCI_MANIFEST, OCI_CONFIG);
    l.index(vec![image]);
    src
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn with(mut desc: Value, key: &str, value: Value) -> Value {
    desc[key] = value;
    desc
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn tar_fixture(name: &str) -> Vec<u8> {
    read(Path::new(TESTDATA).join(name))
}

fn read_json(path: impl AsRef<Path>) -> Value {
    serde_json::from_slice(&read(path)).unwrap()
}

/// The main fixture: index.json → a multi-platform index ("multi": amd64
/// and arm64 sharing an uncompressed layer, plus a buildx-style attestation
/// manifest), a Docker schema-2 image ("docker") and a signature-like
/// artifact ("sig").
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    /// Source digest of the attestation and the artifact manifests.
    unchanged: Vec<String>,
}

/// A buildx-style attestation manifest: one in-toto statement layer.
fn attestation_manifest(l: &Layout) -> Value {
    let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#;
    l.json(
        &json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": l.json(&json!({"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[sha256_digest(statement)]}}), OCI_CONFIG),
            "layers": [l.blob(statement, "application/vnd.in-toto+json")],
        }),
        OCI_MANIFEST,
    )
}

/// A signature-like artifact manifest, one of whose layers is `sample_gz`.
fn signature_artifact(l: &Layout, sample_gz: &[u8]) -> Value {
    l.json(
        &json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": l.json(&json!({}), "application/vnd.oci.empty.v1+json"),
            // An artifact's layers are not the image's, even when one is the
            // same gzip tar as an image layer: both must stay as they are.
            "layers": [
                l.blob(b"signature bytes", "application/vnd.example.signature.payload"),
                l.blob(sample_gz, OCI_GZIP),
            ],
        }),
        OCI_MANIFEST,
    )
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let src = root.join("src");
    let l = Layout::new(&src);
    let sample = tar_fixture("sample-layer.tar");
    let shared = tar_fixture("tars/valid/gnu-ustar.tar");
    let pax = tar_fixture("tars/valid/python-pax.tar");
    let sample_gz = gzip(&sample);

    let amd64 = l.image(
        &[(&sample_gz, OCI_GZIP, &sample), (&shared, OCI_TAR, &shared)],
        OCI_MANIFEST,
        OCI_CONFIG,
    );
    let pax_zstd = zstd::encode_all(&pax[..], 3).unwrap();
    let arm64 = l.image(
        &[
            (&shared, OCI_TAR, &shared),
            (
                &pax_zstd,
                "application/vnd.oci.image.layer.v1.tar+zstd",
                &pax,
            ),
        ],
        OCI_MANIFEST,
        OCI_CONFIG,
    );
    let attestation = attestation_manifest(&l);
    let attestation_digest = attestation["digest"].as_str().unwrap().to_string();
    let multi = l.json(
        &json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                with(amd64, "platform", json!({"architecture": "amd64", "os": "linux"})),
                with(arm64, "platform", json!({"architecture": "arm64", "os": "linux", "variant": "v8"})),
                with(with(attestation, "platform", json!({"architecture": "unknown", "os": "unknown"})),
                     "annotations", json!({"vnd.docker.reference.type": "attestation-manifest",
                                           "vnd.docker.reference.digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"})),
            ],
            "annotations": {"org.example.keep": "index"},
        }),
        OCI_INDEX,
    );
    let docker = l.image(
        &[
            (
                &sample_gz,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                &sample,
            ),
            (
                &pax,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                &pax,
            ),
        ],
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.container.image.v1+json",
    );
    let sig = signature_artifact(&l, &sample_gz);
    let sig_digest = sig["digest"].as_str().unwrap().to_string();
    let refname = |d: Value, name: &str| {
        with(
            d,
            "annotations",
            json!({"org.opencontainers.image.ref.name": name, "org.example.other": "kept"}),
        )
    };
    l.index(vec![
        refname(multi, "multi"),
        refname(docker, "docker"),
        refname(sig, "sig"),
    ]);
    Fixture {
        _tmp: tmp,
        root,
        src,
        unchanged: vec![attestation_digest, sig_digest],
    }
}

// ---------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The tool, or `None` (skip) outside CI when it is not installed.
fn tool(name: &str, env: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = env.and_then(std::env::var_os) {
        return Some(PathBuf::from(p));
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools")
        .join(name);
    if local.exists() {
        return Some(local);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is not installed; under CI these checks must run (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed; its checks do not run");
    }
    found
}

fn run_tool(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        tool.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// Checking an output layout
// ---------------------------------------------------------------------------

/// Walks the converted layout: every blob's digest and size, every image's
/// layers (eStargz, annotated, verified by the reference) and diffIDs.
/// Returns the converted layer digests met.
fn check_layout(dir: &Path) -> Vec<String> {
    let index = read_json(dir.join("index.json"));
    let mut converted = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        check_descriptor(dir, m, &mut converted);
    }
    converted.sort();
    converted.dedup();
    let reference = tool("estargz-ref", Some("ESTARGZ_REF"));
    for (digest, toc) in converted.iter().map(|c| c.split_once(' ').unwrap()) {
        if let Some(r) = &reference {
            let blob = blob_path(dir, digest);
            let out = run_tool(r, &["verify", "-toc-digest", toc, blob.to_str().unwrap()]);
            assert!(out.contains(toc), "{out}");
        }
    }
    converted
}

fn verified_blob(dir: &Path, desc: &Value) -> Vec<u8> {
    let digest = desc["digest"].as_str().unwrap();
    let bytes = read(blob_path(dir, digest));
    assert_eq!(sha256_digest(&bytes), digest);
    assert_eq!(bytes.len() as u64, desc["size"].as_u64().unwrap());
    bytes
}

fn check_descriptor(dir: &Path, desc: &Value, converted: &mut Vec<String>) {
    let doc: Value = serde_json::from_slice(&verified_blob(dir, desc)).unwrap();
    match desc["mediaType"].as_str().unwrap() {
        OCI_INDEX => {
            assert_eq!(doc["mediaType"], OCI_INDEX);
            for m in doc["manifests"].as_array().unwrap() {
                check_descriptor(dir, m, converted);
            }
        }
        OCI_MANIFEST => {
            assert_eq!(doc["mediaType"], OCI_MANIFEST);
            let config_bytes = verified_blob(dir, &doc["config"]);
            let layers = doc["layers"].as_array().unwrap();
            if doc["config"]["mediaType"] != OCI_CONFIG
                || desc["annotations"]["vnd.docker.reference.type"].is_string()
            {
                for l in layers {
                    verified_blob(dir, l);
                }
                return;
            }
            let config: Value = serde_json::from_slice(&config_bytes).unwrap();
            let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
            assert_eq!(diff_ids.len(), layers.len());
            for (layer, diff_id) in layers.iter().zip(diff_ids) {
                assert_eq!(layer["mediaType"], OCI_GZIP, "{layer}");
                let blob = verified_blob(dir, layer);
                let tar = gunzip(&blob);
                assert_eq!(
                    diff_id.as_str().unwrap(),
                    sha256_digest(&tar),
                    "diffID of {layer}"
                );
                let a = &layer["annotations"];
                assert_eq!(
                    a[UNCOMPRESSED_SIZE_ANNOTATION].as_str().unwrap(),
                    tar.len().to_string()
                );
                let toc = a[TOC_DIGEST_ANNOTATION].as_str().unwrap();
                assert_eq!(sha256_digest(&toc_json(&blob)), toc);
                converted.push(format!("{} {toc}", layer["digest"].as_str().unwrap()));
            }
        }
        other => panic!("unexpected media type {other} in {desc}"),
    }
}

fn ref_names(dir: &Path) -> Vec<(String, Value)> {
    read_json(dir.join("index.json"))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                m.clone(),
            )
        })
        .collect()
}

fn convert_image(src: &Path, dst: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["convert-image".as_ref(), src.as_os_str(), dst.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    run(args)
}

/// Nothing but the named entries in `dir`: no temporary leftovers.
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn converts_every_layer_of_a_multi_platform_image_and_skopeo_copies_it() {
    let f = fixture();
    let dst = f.root.join("dst");
    let out = convert_image(&f.src, &dst, &["--json", "--jobs", "2", "--threads", "2"]);
    assert_exit(&out, 0);
    let stderr = stderr_of(&out);
    // One line per distinct layer blob: the gzip one is used twice; the pax
    // tar comes twice, gzip (docker) and zstd (arm64), and converts to one blob.
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with('[') && l.contains("] sha256:"))
            .count(),
        4,
        "{stderr}"
    );

    let report = json_value(&out.stdout);
    let layers = report["layers"].as_array().unwrap();
    let converted: Vec<_> = layers
        .iter()
        .filter(|l| l["action"] == "converted")
        .collect();
    assert_eq!(
        converted.len(),
        4,
        "each distinct layer converted once: {report}"
    );
    assert!(converted
        .iter()
        .any(|l| l["source_media_type"].as_str().unwrap().ends_with("+zstd")));
    for l in &converted {
        for key in [
            "source_digest",
            "source_media_type",
            "digest",
            "diff_id",
            "toc_digest",
        ] {
            assert!(l[key].is_string(), "{key} in {l}");
        }
        assert!(l["size"].is_u64() && l["seconds"].is_number());
        assert_eq!(l["media_type"], OCI_GZIP);
    }

    let met = check_layout(&dst);
    // The pax tar converted from gzip and from zstd is one and the same blob.
    assert_eq!(met.len(), 3);
    for (name, desc) in ref_names(&dst) {
        assert_eq!(desc["annotations"]["org.example.other"], "kept", "{name}");
        if name == "docker" {
            assert_eq!(
                desc["mediaType"], OCI_MANIFEST,
                "a Docker image with new layers becomes OCI"
            );
        }
    }
    let multi = read_json(blob_path(
        &dst,
        ref_names(&dst)[0].1["digest"].as_str().unwrap(),
    ));
    assert_eq!(multi["annotations"]["org.example.keep"], "index");
    assert_eq!(multi["manifests"][1]["platform"]["variant"], "v8");
    // Attestations and artifacts describe the source: kept byte for byte.
    for d in &f.unchanged {
        assert_eq!(read(blob_path(&dst, d)), read(blob_path(&f.src, d)));
    }
    assert_eq!(
        multi["manifests"][2]["digest"].as_str().unwrap(),
        f.unchanged[0]
    );
    assert_eq!(
        ref_names(&dst)[2].1["digest"].as_str().unwrap(),
        f.unchanged[1]
    );

    if let Some(skopeo) = tool("skopeo", None) {
        let oci = |d: &Path, r: &str| format!("oci:{}:{r}", d.display());
        for r in ["multi", "docker", "sig"] {
            run_tool(&skopeo, &["inspect", "--raw", &oci(&dst, r)]);
        }
        for r in ["multi", "docker"] {
            let out = run_tool(&skopeo, &["inspect", &oci(&dst, r)]);
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{out}");
        }
        let copy = f.root.join("copy");
        run_tool(
            &skopeo,
            &["copy", "--all", &oci(&dst, "multi"), &oci(&copy, "multi")],
        );
        run_tool(
            &skopeo,
            &["copy", &oci(&dst, "docker"), &oci(&copy, "docker")],
        );
        check_layout(&copy);
    }
}

/// `oci:DIR:REF` as skopeo spells it: SRC's REF picks one image of the
/// layout, DST's names the result; a name the layout lacks is an error that
/// lists the names it has.
#[test]
fn oci_references_pick_and_name_an_image() {
    let f = fixture();
    let dst = f.root.join("picked");
    let src_ref = format!("oci:{}:docker", f.src.display());
    let dst_ref = format!("oci:{}:converted", dst.display());
    let out = run(["convert-image", &src_ref, &dst_ref, "--json"]);
    assert_exit(&out, 0);
    let report = json_value(&out.stdout);
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "only the docker image's layers: {report}");
    let names = ref_names(&dst);
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(names[0].0, "converted");
    assert_eq!(
        names[0].1["annotations"]["org.example.other"], "kept",
        "other annotations stay"
    );
    check_layout(&dst);

    // Naming needs one image: the whole layout has three.
    let many = f.root.join("many");
    let out = run([
        "convert-image".to_string(),
        f.src.display().to_string(),
        format!("oci:{}:one", many.display()),
    ]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("3 images"), "{}", stderr_of(&out));
    assert!(!many.exists(), "nothing written");

    let missing = f.root.join("missing");
    let out = run([
        "convert-image".to_string(),
        format!("oci:{}:nope", f.src.display()),
        missing.display().to_string(),
    ]);
    assert_exit(&out, 1);
    let err = stderr_of(&out);
    assert!(
        err.contains("\"nope\"") && err.contains("docker, multi, sig"),
        "{err}"
    );
    assert!(!missing.exists(), "nothing written");

    if let Some(skopeo) = tool("skopeo", None) {
        let out = run_tool(&skopeo, &["inspect", &dst_ref]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{out}");
    }
}

#[test]
fn archives_in_and_out_give_the_same_image_every_time() {
    let f = fixture();
    // A tar as `tar` makes it: entries named ./oci-layout, ./blobs/...
    let src_tar = f.root.join("src.tar");
    let status = Command::new("tar")
        .args([
            "-C",
            f.src.to_str().unwrap(),
            "-cf",
            src_tar.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());

    let dir_out = f.root.join("from-dir");
    assert_exit(&convert_image(&f.src, &dir_out, &["-q"]), 0);
    let out_a = f.root.join("a.tar");
    let out_b = f.root.join("b.tar");
    assert_exit(
        &convert_image(&src_tar, &out_a, &["-q", "--threads", "1"]),
        0,
    );
    assert_exit(&convert_image(&src_tar, &out_b, &["-q", "--jobs", "3"]), 0);
    assert_eq!(
        read(&out_a),
        read(&out_b),
        "output depends on jobs or threads"
    );

    // The archive holds exactly the directory's files.
    let unpacked = f.root.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .args([
            "-C",
            unpacked.to_str().unwrap(),
            "-xf",
            out_a.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(dir_listing(&unpacked), dir_listing(&dir_out));
    assert_eq!(
        read(unpacked.join("index.json")),
        read(dir_out.join("index.json"))
    );
    check_layout(&unpacked);

    if let Some(skopeo) = tool("skopeo", None) {
        let arch = |p: &Path, r: &str| format!("oci-archive:{}:{r}", p.display());
        run_tool(&skopeo, &["inspect", &arch(&out_a, "multi")]);
        let copy = f.root.join("copy.tar");
        run_tool(
            &skopeo,
            &["copy", &arch(&out_a, "docker"), &arch(&copy, "docker")],
        );
    }
    assert_only(
        &f.root,
        &[
            "src", "src.tar", "from-dir", "a.tar", "b.tar", "unpacked", "copy.tar",
        ]
        .into_iter()
        .filter(|n| *n != "copy.tar" || f.root.join("copy.tar").exists())
        .collect::<Vec<_>>(),
    );
}

#[test]
fn converting_the_output_again_changes_nothing() {
    let f = fixture();
    let once = f.root.join("once");
    let twice = f.root.join("twice");
    assert_exit(&convert_image(&f.src, &once, &["-q"]), 0);
    let out = convert_image(&once, &twice, &["--json"]);
    assert_exit(&out, 0);
    let report = json_value(&out.stdout);
    assert!(
        report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["action"] == "passed-through"),
        "{report}"
    );
    assert_eq!(
        read(once.join("index.json")),
        read(twice.join("index.json"))
    );
    assert_eq!(dir_listing(&once), dir_listing(&twice));
}

/// `estargz convert --json` of testdata's `name` to `out`: the report, the
/// blob and the tar inside it.
fn convert_layer(name: &str, out: &Path) -> (Value, Vec<u8>, Vec<u8>) {
    let done = run([
        "convert".as_ref(),
        Path::new(TESTDATA).join(name).as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_exit(&done, 0);
    let blob = read(out);
    let tar = gunzip(&blob);
    (json_value(&done.stdout), blob, tar)
}

/// The path of the blob `desc` names in the layout at `dir`.
fn blob_of(dir: &Path, desc: &Value) -> PathBuf {
    blob_path(dir, desc["digest"].as_str().unwrap())
}

/// `root/src` for [`nested_indexes_foreign_and_estargz_layers`]: "nested",
/// an index of an index of one image whose layers are a plain tar, an
/// annotated eStargz layer, a non-distributable layer not shipped (urls
/// only), and an eStargz layer under a Docker media type.
struct Nested {
    src: PathBuf,
    /// The image manifest's layer descriptors as written.
    src_layers: Value,
    /// The tar inside the annotated eStargz layer.
    pre_tar: Vec<u8>,
    /// `estargz convert --json` of the Docker-typed layer.
    bare_report: Value,
}

fn nested_source(root: &Path) -> Nested {
    let src = root.join("src");
    let l = Layout::new(&src);
    let sample = tar_fixture("sample-layer.tar");
    // A layer that already is eStargz, converted by the CLI with its annotations.
    let (pre_report, pre_blob, pre_tar) =
        convert_layer("tars/valid/python-pax.tar", &root.join("pre.esgz"));
    let foreign_tar = b"not shipped".to_vec();
    // Another eStargz layer, under a Docker media type and so without annotations.
    let (bare_report, bare_blob, bare_tar) =
        convert_layer("tars/valid/gnu-ustar.tar", &root.join("bare.esgz"));
    let image = l.image(
        &[
            (&sample, OCI_TAR, &sample),
            (&pre_blob, OCI_GZIP, &pre_tar),
            (
                &foreign_tar,
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                &foreign_tar,
            ),
            (
                &bare_blob,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                &bare_tar,
            ),
        ],
        OCI_MANIFEST,
        OCI_CONFIG,
    );
    // Annotate the eStargz layer; leave the foreign blob out, with urls.
    let manifest_path = blob_of(&src, &image);
    let mut manifest = read_json(&manifest_path);
    manifest["layers"][1]["annotations"] = pre_report["annotations"].clone();
    manifest["layers"][2]["urls"] = json!(["https://example.invalid/foreign"]);
    std::fs::remove_file(blob_of(&src, &manifest["layers"][2])).unwrap();
    std::fs::remove_file(&manifest_path).unwrap();
    let src_layers = manifest["layers"].clone();
    let image = l.json(&manifest, OCI_MANIFEST);
    let inner = l.json(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [with(image, "platform", json!({"architecture":"amd64","os":"linux"}))]}), OCI_INDEX);
    let outer = l.json(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [inner]}),
        OCI_INDEX,
    );
    l.index(vec![with(
        outer,
        "annotations",
        json!({"org.opencontainers.image.ref.name": "nested"}),
    )]);
    Nested {
        src,
        src_layers,
        pre_tar,
        bare_report,
    }
}

#[test]
fn nested_indexes_foreign_and_estargz_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let Nested {
        src,
        src_layers,
        pre_tar,
        bare_report,
    } = nested_source(tmp.path());

    let dst = tmp.path().join("dst");
    let out = convert_image(&src, &dst, &["--json"]);
    assert_exit(&out, 0);
    assert!(
        stderr_of(&out).contains("non-distributable layer"),
        "{}",
        stderr_of(&out)
    );
    let outer = read_json(blob_of(&dst, &ref_names(&dst)[0].1));
    let inner = read_json(blob_of(&dst, &outer["manifests"][0]));
    let manifest = read_json(blob_of(&dst, &inner["manifests"][0]));
    assert_eq!(manifest["layers"][0]["mediaType"], OCI_GZIP);
    assert_eq!(
        manifest["layers"][1], src_layers[1],
        "an eStargz layer passes through unchanged"
    );
    assert_eq!(
        manifest["layers"][2]["urls"][0],
        "https://example.invalid/foreign"
    );
    assert!(!blob_of(&dst, &manifest["layers"][2]).exists());
    // The unannotated eStargz layer: same blob, annotated now.
    assert_eq!(manifest["layers"][3]["digest"], bare_report["digest"]);
    assert_eq!(manifest["layers"][3]["mediaType"], OCI_GZIP);
    assert_eq!(
        manifest["layers"][3]["annotations"],
        bare_report["annotations"]
    );
    let config = read_json(blob_of(&dst, &manifest["config"]));
    let blob0 = blob_of(&dst, &manifest["layers"][0]);
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap(),
        sha256_digest(&gunzip(&read(&blob0)))
    );
    assert_eq!(
        config["rootfs"]["diff_ids"][1].as_str().unwrap(),
        sha256_digest(&pre_tar)
    );
    if let Some(r) = tool("estargz-ref", Some("ESTARGZ_REF")) {
        let toc = manifest["layers"][0]["annotations"][TOC_DIGEST_ANNOTATION]
            .as_str()
            .unwrap();
        run_tool(&r, &["verify", "-toc-digest", toc, blob0.to_str().unwrap()]);
    }
    if let Some(skopeo) = tool("skopeo", None) {
        run_tool(
            &skopeo,
            &["inspect", "--raw", &format!("oci:{}:nested", dst.display())],
        );
    }
}

#[test]
fn docker_save_manifest_json_is_rewritten() {
    let f = fixture();
    let index = read_json(f.src.join("index.json"));
    let docker = &index["manifests"][1];
    let manifest = read_json(blob_path(&f.src, docker["digest"].as_str().unwrap()));
    let path = |d: &Value| {
        format!(
            "blobs/sha256/{}",
            d["digest"].as_str().unwrap().trim_start_matches("sha256:")
        )
    };
    let legacy = json!([{
        "Config": path(&manifest["config"]),
        "RepoTags": ["example:latest"],
        "Layers": manifest["layers"].as_array().unwrap().iter().map(path).collect::<Vec<_>>(),
    }]);
    std::fs::write(
        f.src.join("manifest.json"),
        serde_json::to_vec(&legacy).unwrap(),
    )
    .unwrap();
    let dst = f.root.join("dst");
    assert_exit(&convert_image(&f.src, &dst, &["-q"]), 0);
    let new_manifest = read_json(blob_path(
        &dst,
        ref_names(&dst)[1].1["digest"].as_str().unwrap(),
    ));
    let legacy = read_json(dst.join("manifest.json"));
    assert_eq!(
        legacy[0]["Config"].as_str().unwrap(),
        path(&new_manifest["config"])
    );
    assert_eq!(legacy[0]["RepoTags"][0], "example:latest");
    let layers: Vec<String> = new_manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(path)
        .collect();
    assert_eq!(legacy[0]["Layers"], json!(layers));
}

#[test]
fn existing_destination_needs_force_and_failures_leave_nothing() {
    let f = fixture();
    let dst = f.root.join("dst");
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(dst.join("keep"), "x").unwrap();
    let out = convert_image(&f.src, &dst, &["-q"]);
    assert_exit(&out, 2);
    assert!(stderr_of(&out).contains("--force"), "{}", stderr_of(&out));
    assert_eq!(read(dst.join("keep")), b"x");
    assert_exit(&convert_image(&f.src, &dst, &["-q", "--force"]), 0);
    assert!(!dst.join("keep").exists());
    check_layout(&dst);

    // A FIFO (or a device such as /dev/null) is never moved aside and deleted.
    let fifo = f.root.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = convert_image(&f.src, &fifo, &["-q", "--force"]);
    assert_exit(&out, 2);
    assert!(stderr_of(&out).contains("neither a directory nor a file"));
    {
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }
    std::fs::remove_file(&fifo).unwrap();

    // A tampered layer: error, and DST is left as it was.
    let index = read_json(f.src.join("index.json"));
    let docker = read_json(blob_path(
        &f.src,
        index["manifests"][1]["digest"].as_str().unwrap(),
    ));
    let layer = blob_path(&f.src, docker["layers"][1]["digest"].as_str().unwrap());
    let mut bytes = read(&layer);
    let last = bytes.len() - 9;
    bytes[last] ^= 1;
    std::fs::write(&layer, &bytes).unwrap();
    let before = dir_listing(&dst);
    let out = convert_image(&f.src, &dst, &["-q", "--force"]);
    assert_exit(&out, 1);
    let err = stderr_of(&out);
    assert!(
        err.contains("digest mismatch") && err.contains(layer.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(dir_listing(&dst), before);
    let fresh = f.root.join("fresh.tar");
    assert_exit(&convert_image(&f.src, &fresh, &["-q"]), 1);
    assert_only(&f.root, &["src", "dst"]);
}

fn write_index(src: &Path, index: &Value) {
    std::fs::write(src.join("index.json"), serde_json::to_vec(index).unwrap()).unwrap();
}

/// Stores `bytes` as a blob and points the index's manifest `i` at it,
/// digest and size, so that its name still matches (else this is a digest
/// mismatch). Returns the blob's path.
fn replace_manifest(src: &Path, index: &Value, i: usize, bytes: &[u8]) -> PathBuf {
    let new = sha256_digest(bytes);
    std::fs::write(blob_path(src, &new), bytes).unwrap();
    let mut index = index.clone();
    index["manifests"][i]["digest"] = json!(new);
    index["manifests"][i]["size"] = json!(bytes.len());
    write_index(src, &index);
    blob_path(src, &new)
}

/// Damages a fresh [`fixture`] (given its index) and returns the file the
/// error must name.
type Damage = fn(&Path, &Value) -> String;

/// `damage` makes the conversion exit 1, with an error that names the file
/// and says `message`, and no output left behind.
fn assert_damage_is_an_error(what: &str, damage: Damage, message: &str) {
    let f = fixture();
    let index = read_json(f.src.join("index.json"));
    let file = damage(&f.src, &index);
    let dst = f.root.join("dst");
    let out = convert_image(&f.src, &dst, &["-q"]);
    assert_exit_for(&out, 1, what);
    let err = stderr_of(&out);
    assert!(
        err.contains(&file) && err.contains(message),
        "{what}: expected {file:?} and {message:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_only(&f.root, &["src"]);
}

/// Each malformed input: exit 1, an error naming the file and the problem.
#[test]
fn malformed_inputs_are_errors_naming_the_file() {
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "bad JSON in a manifest",
            |src, index| {
                let p = replace_manifest(src, index, 1, b"{not json");
                p.display().to_string()
            },
            "invalid JSON",
        ),
        (
            "missing blob",
            |src, index| {
                let p = blob_of(src, &index["manifests"][2]);
                std::fs::remove_file(&p).unwrap();
                p.display().to_string()
            },
            "missing",
        ),
        (
            "path traversal",
            |src, index| {
                let mut index = index.clone();
                index["manifests"][0]["digest"] = json!("sha256:../../etc/passwd");
                write_index(src, &index);
                src.join("index.json").display().to_string()
            },
            "invalid digest",
        ),
        (
            "unknown algorithm",
            |src, index| {
                let mut index = index.clone();
                index["manifests"][0]["digest"] = json!("md5:d41d8cd98f00b204e9800998ecf8427e");
                write_index(src, &index);
                src.join("index.json").display().to_string()
            },
            "unknown algorithm",
        ),
        (
            "bad index.json",
            |src, _| {
                std::fs::write(src.join("index.json"), b"[]").unwrap();
                src.join("index.json").display().to_string()
            },
            "invalid JSON",
        ),
        (
            "size mismatch",
            |src, index| {
                let mut index = index.clone();
                index["manifests"][2]["size"] = json!(1);
                write_index(src, &index);
                blob_of(src, &index["manifests"][2]).display().to_string()
            },
            "size mismatch",
        ),
        (
            "gzip layer labelled zstd",
            |src, index| {
                let mut m = read_json(blob_of(src, &index["manifests"][1]));
                m["layers"][1]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+zstd");
                replace_manifest(src, index, 1, &serde_json::to_vec(&m).unwrap());
                blob_of(src, &m["layers"][1]).display().to_string()
            },
            "converting the layer failed",
        ),
        (
            "no oci-layout",
            |src, _| {
                std::fs::remove_file(src.join("oci-layout")).unwrap();
                src.join("oci-layout").display().to_string()
            },
            "not an OCI image layout",
        ),
    ];
    for (what, damage, message) in cases {
        assert_damage_is_an_error(what, damage, message);
    }
}

#[test]
fn an_archive_that_is_not_a_tar_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("junk.tar");
    std::fs::write(&src, vec![7u8; 3000]).unwrap();
    let out = convert_image(&src, &tmp.path().join("dst"), &[]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains(src.to_str().unwrap()),
        "{}",
        stderr_of(&out)
    );
}

/// An interrupt while layers are converting removes the temporary
/// directory (the signal handler's job) and leaves no DST.
#[test]
fn an_interrupt_leaves_nothing_behind() {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // The layer is a FIFO (its size 0, as the file's): the conversion
    // blocks on it until this test writes, which it never does, so the
    // signal always lands mid-conversion.
    let src = root.join("src");
    let l = Layout::new(&src);
    let image = l.image(&[(b"", OCI_TAR, b"")], OCI_MANIFEST, OCI_CONFIG);
    l.index(vec![image]);
    let fifo = l.blob_path(&sha256_digest(b""));
    std::fs::remove_file(&fifo).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());

    let dst = root.join("dst");
    let mut child = estargz([
        "convert-image".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
        "-q".as_ref(),
    ])
    .spawn()
    .unwrap();
    // Ready when the converter has the layer open: a writer's
    // non-blocking open succeeds only once a reader has it.
    let started = std::time::Instant::now();
    let _writer = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the conversion ended before reading its layer"
                );
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(30),
                    "the conversion never opened its layer"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open {}: {e}", fifo.display()),
        }
    };
    // The temporary directory is made before any layer is read.
    let temp_exists = || {
        std::fs::read_dir(root).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".estargz-image-")
        })
    };
    assert!(temp_exists(), "no temporary directory mid-conversion");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert_only(root, &["src"]);
}

/// `--min-chunk-size` reaches every layer; such blobs are checked with this
/// verifier (the reference's rejects every min-chunk-size blob, spec §8).
#[test]
fn min_chunk_size_applies_to_every_layer() {
    let f = fixture();
    let dst = f.root.join("grouped");
    assert_exit(
        &convert_image(&f.src, &dst, &["-q", "--min-chunk-size", "64K"]),
        0,
    );
    let index = read_json(dst.join("index.json"));
    let mut converted = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        check_descriptor(&dst, m, &mut converted);
    }
    converted.sort();
    converted.dedup();
    assert!(converted.len() >= 3, "{converted:?}");
    for (digest, toc) in converted.iter().map(|c| c.split_once(' ').unwrap()) {
        let blob = blob_path(&dst, digest);
        let verified = run(["verify", blob.to_str().unwrap(), "--toc-digest", toc]);
        assert_exit(&verified, 0);
        let toc_doc: Value = serde_json::from_slice(&toc_json(&read(&blob))).unwrap();
        let shared = toc_doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["innerOffset"].as_u64().unwrap_or(0) > 0)
            .count();
        assert!(shared > 0, "{digest}: no chunk shares a member");
    }
}

/// A layer with a hard link to a file of a lower layer: its TOC would not
/// open, so the layer is kept as it was (the image still works, that layer
/// pulled whole), or converted anyway with --no-open-check.
#[test]
fn a_layer_readers_would_refuse_is_kept_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let l = Layout::new(&src);
    let sample = tar_fixture("sample-layer.tar");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, "usr/bin/link", "usr/bin/in-a-lower-layer")
        .unwrap();
    let linking = b.into_inner().unwrap();
    let linking_gz = gzip(&linking);
    let image = l.image(
        &[
            (&sample, OCI_TAR, &sample),
            (&linking_gz, OCI_GZIP, &linking),
        ],
        OCI_MANIFEST,
        OCI_CONFIG,
    );
    l.index(vec![image]);
    let manifest_of = |dst: &Path| {
        let index = read_json(dst.join("index.json"));
        let digest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        read_json(blob_path(dst, &digest))
    };

    let dst = tmp.path().join("out");
    let out = convert_image(&src, &dst, &["--json"]);
    assert_exit(&out, 0);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("kept as it was") && stderr.contains("usr/bin/link"),
        "{stderr}"
    );
    let layers = json_value(&out.stdout)["layers"].clone();
    let actions: Vec<&str> = layers
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["converted", "passed-through"], "{layers}");
    let manifest = manifest_of(&dst);
    assert_ne!(manifest["layers"][0]["digest"], sha256_digest(&sample));
    assert_eq!(
        manifest["layers"][1],
        json!({"mediaType": OCI_GZIP, "digest": sha256_digest(&linking_gz), "size": linking_gz.len()}),
        "the refused layer's descriptor is unchanged"
    );
    assert_eq!(
        read(blob_path(&dst, &sha256_digest(&linking_gz))),
        linking_gz
    );
    let config = read_json(blob_path(
        &dst,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["rootfs"]["diff_ids"][1], sha256_digest(&linking));

    let forced = tmp.path().join("forced");
    assert_exit(&convert_image(&src, &forced, &["-q", "--no-open-check"]), 0);
    let layer = &manifest_of(&forced)["layers"][1];
    assert!(
        layer["annotations"]["containerd.io/snapshot/stargz/toc.digest"].is_string(),
        "{layer}"
    );
    let blob = blob_path(&forced, layer["digest"].as_str().unwrap());
    let verified = run(["verify", blob.to_str().unwrap()]);
    assert_exit(&verified, 1);
    assert!(stderr_of(&verified).contains("isn't found"));
}

/// Two runs to one absent DST started together: exactly one succeeds; the
/// other fails naming DST, replaces nothing and leaves nothing behind.
#[test]
fn concurrent_runs_to_one_destination_do_not_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Seconds of work, so that both runs find DST absent when they start.
    let src = text_image(root, 6 << 20);
    for name in ["dst", "dst.tar"] {
        let dst = root.join(name);
        let spawn = || {
            estargz(["convert-image", "-q", "--level", "9", "--threads", "1"])
                .args([&src, &dst])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let mut outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        outs.sort_by_key(|o| o.status.code());
        assert_exit(&outs[0], 0);
        assert_exit(&outs[1], 1);
        let err = stderr_of(&outs[1]);
        assert!(
            err.contains(&format!(
                "{} appeared or was filled while converting",
                dst.display()
            )),
            "{err}"
        );
        assert_only(root, &["src", name]);
        if dst.is_dir() {
            check_layout(&dst);
            std::fs::remove_dir_all(&dst).unwrap();
        } else {
            let mut archive = tar::Archive::new(std::fs::File::open(&dst).unwrap());
            let names: Vec<String> = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            assert!(names.iter().any(|n| n == "index.json"), "{names:?}");
            std::fs::remove_file(&dst).unwrap();
        }
    }
}

/// SIGTERM at many points of a --force run over an existing DST: DST is
/// always a complete image, the old or the new one, and nothing else is
/// left (no moved-aside `.old`, no partial output).
#[test]
fn an_interrupted_forced_replacement_leaves_the_old_or_the_new_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let src = text_image(root, 2 << 20);
    let keep = tempfile::tempdir().unwrap();
    let old_copy = keep.path().join("old");
    assert_exit(&convert_image(&src, &old_copy, &["-q", "--level", "1"]), 0);
    // Many files in the old DST: removing it once replaced takes a while,
    // and that must not be cut short either.
    std::fs::create_dir(old_copy.join("junk")).unwrap();
    for i in 0..3000 {
        std::fs::write(old_copy.join("junk").join(i.to_string()), b"").unwrap();
    }
    let old = read(old_copy.join("index.json"));
    // The new image, timed: the signals below are spread over that time.
    let dst = root.join("dst");
    let started = std::time::Instant::now();
    assert_exit(&convert_image(&src, &dst, &["-q", "--threads", "1"]), 0);
    let run_time = started.elapsed();
    let new = read(dst.join("index.json"));
    assert_ne!(old, new);
    for i in 0..30u32 {
        if read(dst.join("index.json")) != old {
            std::fs::remove_dir_all(&dst).unwrap();
            let copied = Command::new("cp")
                .arg("-a")
                .args([&old_copy, &dst])
                .status()
                .unwrap();
            assert!(copied.success());
        }
        let mut child = estargz(["convert-image", "--force", "-q", "--threads", "1"])
            .args([&src, &dst])
            .spawn()
            .unwrap();
        std::thread::sleep(run_time * 2 * i / 50 + run_time / 10);
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        // 0: done before the signal; 130: the handler ran; no code: killed
        // before the handler was installed.
        assert!(
            matches!(status.code(), Some(0 | 130) | None),
            "run {i}: {status:?}"
        );
        let index = read(dst.join("index.json"));
        assert!(
            index == old || index == new,
            "run {i}: DST is neither image"
        );
        if status.code() == Some(0) {
            assert_eq!(index, new, "run {i}");
        }
        check_layout(&dst);
        assert_only(root, &["src", "dst"]);
    }
}
