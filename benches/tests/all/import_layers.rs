//! `import-layers`, the real binary, on images and blobs built here from the
//! tars in testdata/: every imported layer must be the original tar byte
//! for byte, each distinct layer once, and what is not a layer must be
//! skipped or refused by name.

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(TESTDATA).join(name)).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// An OCI layout written blob by blob.
struct Layout(PathBuf);

impl Layout {
    fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout(dir.to_path_buf())
    }

    fn put(&self, bytes: &[u8], media_type: &str) -> Value {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(self.0.join("blobs/sha256").join(hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    fn manifest(&self, layers: Vec<Value>) -> Value {
        let config = self.put(b"{}", "application/vnd.oci.image.config.v1+json");
        let doc = json!({"schemaVersion": 2, "config": config, "layers": layers});
        self.put(
            doc.to_string().as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        )
    }

    fn index(&self, path: &str, manifests: Vec<Value>) -> Value {
        let doc = json!({"schemaVersion": 2, "manifests": manifests}).to_string();
        if path == "index.json" {
            std::fs::write(self.0.join(path), doc).unwrap();
            Value::Null
        } else {
            self.put(doc.as_bytes(), "application/vnd.oci.image.index.v1+json")
        }
    }
}

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A layout: a nested index over two images sharing a layer, plus an
/// attestation-like layer and a layer already eStargz.
fn layout(dir: &Path) -> Layout {
    let l = Layout::new(dir);
    let sample = fixture("sample-layer.tar");
    let gnu = fixture("tars/valid/gnu-ustar.tar");
    let pax = fixture("tars/valid/python-pax.tar");
    let mut estargz = l.put(&gzip(&fixture("tars/valid/busybox.tar")), GZIP);
    estargz["annotations"] = json!({"containerd.io/snapshot/stargz/toc.digest": "sha256:00"});
    let a = l.manifest(vec![l.put(&gzip(&sample), GZIP), l.put(&gnu, TAR)]);
    let b = l.manifest(vec![
        l.put(&gnu, TAR),
        l.put(&zstd::encode_all(&pax[..], 3).unwrap(), ZSTD),
        l.put(b"{}", "application/vnd.in-toto+json"),
        estargz,
    ]);
    let nested = l.index("", vec![a, b]);
    l.index("index.json", vec![nested]);
    l
}

fn import(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_import-layers"));
    for a in args {
        cmd.arg(a);
    }
    cmd.output().unwrap()
}

fn records_of(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "import-layers failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["layers"].as_array().unwrap().clone()
}

fn outcomes(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            let what = r["name"].as_str().or(r["reason"].as_str()).unwrap_or("");
            (r["outcome"].as_str().unwrap().to_string(), what.to_string())
        })
        .collect()
}

/// Every name in `dir` (temporary files included), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn pair(outcome: &str, what: &str) -> (String, String) {
    (outcome.to_string(), what.to_string())
}

#[test]
fn layout_and_archive_give_each_distinct_layer_once() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("app");
    layout(&src);
    // The same layout as an OCI archive.
    let archive = tmp.path().join("app.oci.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    builder.append_dir_all(".", &src).unwrap();
    builder.into_inner().unwrap();

    let dest = tmp.path().join("corpus");
    let out = import(&[&dest, &src, &archive]);
    let records = records_of(&out);
    assert_eq!(
        outcomes(&records),
        vec![
            pair("written", "app-1"),
            pair("written", "app-2"),
            pair("written", "app-3"),
            pair("skipped", "not a layer: application/vnd.in-toto+json"),
            pair("skipped", "already eStargz"),
            pair("duplicate", "app-1"),
            pair("duplicate", "app-2"),
            pair("duplicate", "app-3"),
            pair("skipped", "not a layer: application/vnd.in-toto+json"),
            pair("skipped", "already eStargz"),
        ]
    );
    assert_eq!(listing(&dest), ["app-1.tar", "app-2.tar", "app-3.tar"]);
    for (name, original) in [
        ("app-1.tar", "sample-layer.tar"),
        ("app-2.tar", "tars/valid/gnu-ustar.tar"),
        ("app-3.tar", "tars/valid/python-pax.tar"),
    ] {
        let bytes = std::fs::read(dest.join(name)).unwrap();
        assert!(bytes == fixture(original), "{name} is not {original}");
    }
    let first = &records[0];
    assert_eq!(first["size"], fixture("sample-layer.tar").len());
    assert_eq!(first["diff_id"], sha256(&fixture("sample-layer.tar")));
    assert!(first["source"].as_str().unwrap().contains("blobs/sha256/"));
}

#[test]
fn loose_blobs_are_sniffed_linked_and_filtered() {
    let tmp = tempfile::tempdir().unwrap();
    let blobs = tmp.path().join("blobs");
    std::fs::create_dir(&blobs).unwrap();
    let sample = fixture("sample-layer.tar");
    let pax = fixture("tars/valid/python-pax.tar");
    // Names that lie about the format, a digest name, a plain tar, junk.
    std::fs::write(blobs.join("a-sample.tar"), gzip(&sample)).unwrap();
    let zst = zstd::encode_all(&pax[..], 3).unwrap();
    std::fs::write(blobs.join(sha256(&zst)), &zst).unwrap();
    std::fs::write(blobs.join("c-plain.tar"), &sample).unwrap();
    std::fs::write(
        blobs.join("d-small.tgz"),
        gzip(&fixture("tars/valid/git-archive.tar")),
    )
    .unwrap();
    std::fs::write(blobs.join("notes.txt"), "not a layer\n").unwrap();
    // Opening a FIFO would block: it must not even be opened.
    let fifo = Command::new("mkfifo")
        .arg(blobs.join("f-fifo"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::fs::write(blobs.join("e-junk.gz"), gzip(b"plain text, gzipped")).unwrap();

    let dest = tmp.path().join("corpus");
    let out = import(&[&"--link", &"--min-size", &"20000", &dest, &blobs]);
    let records = records_of(&out);
    let hex12 = &sha256(&zst)["sha256:".len()..][..12];
    assert_eq!(
        outcomes(&records),
        vec![
            pair("written", "a-sample"),
            pair("duplicate", "a-sample"),
            pair("too-small", ""),
            pair("skipped", "decompresses to something that is not a tar"),
            pair("skipped", "not a regular file"),
            pair("skipped", "neither a tar nor a gzip or zstd stream"),
            pair("written", hex12),
        ]
    );
    assert_eq!(
        listing(&dest),
        [format!("{hex12}.tar"), "a-sample.tar".to_string()]
    );
    assert!(std::fs::read(dest.join("a-sample.tar")).unwrap() == sample);
    assert!(std::fs::read(dest.join(format!("{hex12}.tar"))).unwrap() == pax);

    // On its own, the plain tar is linked, not copied.
    let dest2 = tmp.path().join("corpus2");
    let records = records_of(&import(&[&"--link", &dest2, &blobs.join("c-plain.tar")]));
    assert_eq!(outcomes(&records), vec![pair("linked", "c-plain")]);
    let link = dest2.join("c-plain.tar");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(std::fs::read(&link).unwrap() == sample);
    // Without --link it is copied.
    let dest3 = tmp.path().join("corpus3");
    let records = records_of(&import(&[&dest3, &blobs.join("c-plain.tar")]));
    assert_eq!(outcomes(&records), vec![pair("written", "c-plain")]);
    assert!(!dest3
        .join("c-plain.tar")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn refusals_name_the_file_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    // A blob that does not match its digest.
    let src = tmp.path().join("bad");
    let l = layout(&src);
    let gnu = fixture("tars/valid/gnu-ustar.tar");
    let hex = sha256(&gnu)["sha256:".len()..].to_string();
    let mut damaged = gnu.clone();
    damaged[600] ^= 1;
    std::fs::write(l.0.join("blobs/sha256").join(&hex), &damaged).unwrap();
    let dest = tmp.path().join("corpus");
    let out = import(&[&dest, &src]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&hex) && err.contains("digest mismatch"),
        "{err}"
    );
    // The layer before it stays; nothing of the damaged one, no temporary file.
    assert_eq!(listing(&dest), ["bad-1.tar"]);

    // A file named on the command line that is not a layer.
    let junk = tmp.path().join("notes.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    let out = import(&[&dest, &junk]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt: neither a tar nor a gzip or zstd stream"),
        "{err}"
    );

    // An old `docker save` archive.
    let old = tmp.path().join("old.tar");
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", b"[]".as_slice()),
        ("0123/layer.tar", &gnu[..]),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        builder.append_data(&mut h, name, data).unwrap();
    }
    std::fs::write(&old, builder.into_inner().unwrap()).unwrap();
    let out = import(&[&dest, &old]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("old.tar") && err.contains("skopeo copy docker-archive:"),
        "{err}"
    );

    // Usage errors exit 2.
    let out = import(&[&dest]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(listing(&dest), ["bad-1.tar"]);
}
