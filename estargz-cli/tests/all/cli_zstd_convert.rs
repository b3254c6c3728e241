//! `estargz convert --compression zstd:chunked`: the blob decompresses to
//! the input tar, `--json` names the format, media type and the §7.2
//! annotations, and options the codec cannot take are usage errors (exit 2).

use crate::common::{init_layout, layout_blob_path, put_blob, write_layout_index};
use std::io::Read;
use std::process::{Command, Output, Stdio};

const SAMPLE_LAYER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/sample-layer.tar");

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_estargz"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the estargz binary runs")
}

#[track_caller]
fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

fn unzstd(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(blob)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn converts_losslessly_and_reports_the_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("layer.zst");
    let out = run(&[
        "convert",
        "--compression",
        "zstd:chunked",
        "--json",
        SAMPLE_LAYER,
        "-o",
        blob_path.to_str().unwrap(),
    ]);
    assert_exit(&out, 0, "convert");
    let tar = std::fs::read(SAMPLE_LAYER).unwrap();
    let blob = std::fs::read(&blob_path).unwrap();
    assert!(unzstd(&blob) == tar, "not lossless");
    assert_eq!(&blob[blob.len() - 8..], b"GnUlInUx");

    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(json["compression"], "zstd:chunked");
    assert_eq!(json["level"], 3);
    assert_eq!(json["lossless"], true);
    assert_eq!(json["diff_id"], sha256(&tar).as_str());
    assert_eq!(json["digest"], sha256(&blob).as_str());
    assert_eq!(json["uncompressed_size"], tar.len() as u64);
    let toc_offset = json["toc_offset"].as_u64().unwrap();
    let manifest = toc_offset + 8;
    let compressed = u32::from_le_bytes(
        blob[toc_offset as usize + 4..][..4]
            .try_into()
            .expect("4 bytes"),
    ) as u64;
    let frame = &blob[manifest as usize..][..compressed as usize];
    let toc_json = zstd::decode_all(frame).unwrap();
    let a = &json["annotations"];
    assert_eq!(a.as_object().unwrap().len(), 4, "{a}");
    assert_eq!(
        a["containerd.io/snapshot/stargz/toc.digest"],
        sha256(&toc_json).as_str()
    );
    assert_eq!(json["toc_digest"], sha256(&toc_json).as_str());
    assert_eq!(
        a["io.containers.zstd-chunked.manifest-checksum"],
        sha256(frame).as_str()
    );
    assert_eq!(json["manifest_checksum"], sha256(frame).as_str());
    assert_eq!(
        a["io.containers.zstd-chunked.manifest-position"],
        format!("{manifest}:{compressed}:{}:1", toc_json.len()).as_str()
    );
    assert_eq!(
        a["io.containers.estargz.uncompressed-size"],
        tar.len().to_string().as_str()
    );
}

#[test]
fn gzip_reports_keep_their_media_type() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("layer.esgz");
    let out = run(&[
        "convert",
        "--json",
        SAMPLE_LAYER,
        "-o",
        blob_path.to_str().unwrap(),
    ]);
    assert_exit(&out, 0, "convert");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["media_type"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // The keys of gzip reports are as before zstd:chunked.
    assert!(json.get("compression").is_none());
    assert_eq!(json["level"], 7);
    assert!(json.get("manifest_checksum").is_none());
    assert_eq!(json["annotations"].as_object().unwrap().len(), 2);
}

/// `convert SAMPLE_LAYER -o OUT EXTRA...` fails as a usage error (exit 2)
/// and writes nothing.
fn refused_as_usage(extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let mut args = vec!["convert", SAMPLE_LAYER, "-o", out_path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert_exit(&out, 2, &format!("{extra:?}"));
    assert!(!out_path.exists(), "{extra:?}: output written");
    out
}

#[test]
fn levels_follow_the_codec() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let out_arg = out_path.to_str().unwrap();
    // 13 to 22 are zstd levels, not gzip ones.
    let ok = run(&[
        "convert",
        "-q",
        "--compression",
        "zstd:chunked",
        "--level",
        "19",
        SAMPLE_LAYER,
        "-o",
        out_arg,
    ]);
    assert_exit(&ok, 0, "zstd level 19");
    assert!(unzstd(&std::fs::read(&out_path).unwrap()) == std::fs::read(SAMPLE_LAYER).unwrap());

    let toc = dir.path().join("toc");
    let cases: &[&[&str]] = &[
        &["--compression", "zstd:chunked", "--level", "0"],
        &["--compression", "zstd:chunked", "--level", "23"],
        &["--level", "13"],
        &["--compression", "zstd"],
        &[
            "--compression",
            "zstd:chunked",
            "--external-toc",
            toc.to_str().unwrap(),
        ],
    ];
    for extra in cases {
        let out = refused_as_usage(extra);
        assert!(!out.stderr.is_empty(), "{extra:?}: no message");
    }
    assert!(!toc.exists());
}

#[test]
fn output_is_the_same_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Vec::new();
    for threads in ["1", "2", "5"] {
        let path = dir.path().join(format!("t{threads}"));
        let out = run(&[
            "convert",
            "-q",
            "--compression",
            "zstd:chunked",
            "--chunk-size",
            "4K",
            "--threads",
            threads,
            SAMPLE_LAYER,
            "-o",
            path.to_str().unwrap(),
        ]);
        assert_exit(&out, 0, threads);
        blobs.push(std::fs::read(&path).unwrap());
    }
    assert!(blobs[0] == blobs[1] && blobs[1] == blobs[2]);
}

fn read_blob(dir: &std::path::Path, desc: &serde_json::Value) -> Vec<u8> {
    std::fs::read(layout_blob_path(dir, desc["digest"].as_str().unwrap())).unwrap()
}

/// An OCI layout of one image whose layers are `tar` as is and gzipped.
fn layout_of(dir: &std::path::Path, tar: &[u8]) {
    init_layout(dir);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, tar).unwrap();
    let gz = gz.finish().unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar), sha256(tar)]},
    });
    let config = put_blob(
        dir,
        &serde_json::to_vec(&config).unwrap(),
        "application/vnd.oci.image.config.v1+json",
    );
    let layers = vec![
        put_blob(dir, tar, "application/vnd.oci.image.layer.v1.tar"),
        put_blob(dir, &gz, "application/vnd.oci.image.layer.v1.tar+gzip"),
    ];
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    });
    let manifest = put_blob(
        dir,
        &serde_json::to_vec(&manifest).unwrap(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    write_layout_index(dir, manifest);
}

/// The sample layout converted by `convert-image -q --compression
/// zstd:chunked EXTRA... SRC DST`.
struct ConvertedImage {
    _root: tempfile::TempDir,
    tar: Vec<u8>,
    dst: std::path::PathBuf,
    manifest: serde_json::Value,
    config: serde_json::Value,
}

fn convert_image(extra: &[&str]) -> ConvertedImage {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src"), root.path().join("dst"));
    let tar = std::fs::read(SAMPLE_LAYER).unwrap();
    layout_of(&src, &tar);
    let mut args = vec!["convert-image", "-q", "--compression", "zstd:chunked"];
    args.extend_from_slice(extra);
    args.extend([src.to_str().unwrap(), dst.to_str().unwrap()]);
    let out = run(&args);
    assert_exit(&out, 0, "convert-image");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dst.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&read_blob(&dst, &index["manifests"][0])).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&read_blob(&dst, &manifest["config"])).unwrap();
    ConvertedImage {
        _root: root,
        tar,
        dst,
        manifest,
        config,
    }
}

#[test]
fn convert_image_writes_zstd_chunked_layers_and_keeps_diff_ids() {
    let ConvertedImage {
        _root,
        tar,
        dst,
        manifest,
        config,
    } = convert_image(&[]);
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([sha256(&tar), sha256(&tar)]),
        "lossless zstd:chunked keeps the diffIDs"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for layer in layers {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let blob = read_blob(&dst, layer);
        assert!(unzstd(&blob) == tar, "not lossless");
        let a = layer["annotations"].as_object().unwrap();
        for key in [
            "containerd.io/snapshot/stargz/toc.digest",
            "io.containers.estargz.uncompressed-size",
            "io.containers.zstd-chunked.manifest-checksum",
            "io.containers.zstd-chunked.manifest-position",
        ] {
            assert!(a.contains_key(key), "{key} missing: {a:?}");
        }
        assert_eq!(
            a["io.containers.estargz.uncompressed-size"],
            tar.len().to_string().as_str()
        );
    }
}

const CONTAINERS_KEYS: [&str; 5] = [
    "io.containers.zstd-chunked.manifest-checksum",
    "io.containers.zstd-chunked.manifest-position",
    "io.github.containers.zstd-chunked.manifest-checksum",
    "io.github.containers.zstd-chunked.manifest-position",
    "io.github.containers.zstd-chunked.tarsplit-position",
];

/// `--toc-format containers`: the 64-byte footer, the containers
/// annotations (both generations, never the stargz TOC digest) in
/// `--json`; `verify` and `info --json` read it back as that dialect.
#[test]
fn containers_dialect_converts_verifies_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("layer.zst");
    let blob_arg = blob_path.to_str().unwrap();
    let out = run(&[
        "convert",
        "--compression",
        "zstd:chunked",
        "--toc-format",
        "containers",
        "--chunk-size",
        "4K",
        "--json",
        SAMPLE_LAYER,
        "-o",
        blob_arg,
    ]);
    assert_exit(&out, 0, "convert");
    let tar = std::fs::read(SAMPLE_LAYER).unwrap();
    let blob = std::fs::read(&blob_path).unwrap();
    assert!(unzstd(&blob) == tar, "not lossless");
    assert_eq!(&blob[blob.len() - 8..], b"GNUlInUx");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["toc_format"], "containers");
    assert_eq!(json["diff_id"], sha256(&tar).as_str());
    let a = json["annotations"].as_object().unwrap();
    let keys: Vec<&str> = a.keys().map(String::as_str).collect();
    assert_eq!(keys, CONTAINERS_KEYS, "{a:?}");
    assert_eq!(
        a["io.github.containers.zstd-chunked.manifest-checksum"],
        json["manifest_checksum"]
    );

    let verified = run(&["verify", blob_arg]);
    assert_exit(&verified, 0, "verify");
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(said.contains("64-byte footer"), "{said}");
    let info = run(&["info", "--json", blob_arg]);
    assert_exit(&info, 0, "info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["zstd_chunked"]["dialect"], "containers");
    assert_eq!(info["zstd_chunked"]["footer_version"], 64);
    assert_eq!(info["diff_id"], sha256(&tar).as_str());
    for key in CONTAINERS_KEYS {
        assert_eq!(info["annotations"][key], a[key], "{key}");
    }
}

/// Spec §7.3 rule 5, Z15: the bytes depend on neither the time zone nor
/// the thread count, in either dialect.
#[test]
fn no_time_zone_or_thread_dependence() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["stargz", "containers"] {
        let mut blobs = Vec::new();
        for (tz, threads) in [
            ("UTC", "1"),
            ("Europe/Berlin", "3"),
            ("America/St_Johns", "2"),
        ] {
            let path = dir.path().join(format!("{format}-{threads}"));
            let out = run_env(
                &[
                    "convert",
                    "-q",
                    "--compression",
                    "zstd:chunked",
                    "--toc-format",
                    format,
                    "--threads",
                    threads,
                    SAMPLE_LAYER,
                    "-o",
                    path.to_str().unwrap(),
                ],
                &[("TZ", tz)],
            );
            assert_exit(&out, 0, &format!("{format} TZ={tz}"));
            blobs.push(std::fs::read(&path).unwrap());
        }
        assert!(blobs[0] == blobs[1] && blobs[1] == blobs[2], "{format}");
    }
}

/// What the containers dialect cannot carry fails with the entry and its
/// offset (exit 1, nothing written); the option is refused with gzip and
/// with a minimum chunk size (usage errors, exit 2).
#[test]
fn containers_dialect_refusals() {
    let valid = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tars/valid/");
    for (tar, said) in [
        ("git-archive.tar", "entry \"pax_global_header\" at byte 0"),
        ("gnu-duplicate-names.tar", "entry \"dup.txt\" at byte 2048"),
        (
            "python-gnu-nonutf8-name.tar",
            "at byte 512: its name is not valid UTF-8",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out");
        let input = format!("{valid}{tar}");
        let out = run(&[
            "convert",
            "--compression",
            "zstd:chunked",
            "--toc-format",
            "containers",
            &input,
            "-o",
            out_path.to_str().unwrap(),
        ]);
        assert_exit(&out, 1, tar);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(said) && err.contains("containers dialect"),
            "{tar}: {err}"
        );
        assert!(!out_path.exists(), "{tar}: output written");
        // The stargz dialect takes it.
        let ok = run(&[
            "convert",
            "-q",
            "--compression",
            "zstd:chunked",
            &input,
            "-o",
            out_path.to_str().unwrap(),
        ]);
        assert_exit(&ok, 0, tar);
    }
    for extra in [
        &["--toc-format", "containers"][..],
        &[
            "--compression",
            "zstd:chunked",
            "--toc-format",
            "containers",
            "--min-chunk-size",
            "1M",
        ],
        &["--compression", "zstd:chunked", "--toc-format", "c64"],
    ] {
        refused_as_usage(extra);
    }
}

#[test]
fn convert_image_writes_the_containers_dialect() {
    let ConvertedImage {
        _root,
        tar,
        dst,
        manifest,
        config,
    } = convert_image(&["--toc-format", "containers"]);
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([sha256(&tar), sha256(&tar)])
    );
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let blob = read_blob(&dst, layer);
        assert!(unzstd(&blob) == tar, "not lossless");
        assert_eq!(&blob[blob.len() - 8..], b"GNUlInUx");
        let a = layer["annotations"].as_object().unwrap();
        let keys: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(keys, CONTAINERS_KEYS, "{a:?}");
    }
}
