//! `estargz mount --layers`: a three-layer image, converted by
//! `convert-image` and pushed to a registry with skopeo, mounted as one
//! overlay and compared with the tree its layer tars make once whiteouts
//! and opaque directories are applied; and the failures that must leave
//! no mount behind.

use super::overlay::tar_of;
use super::{fuse_available, is_mounted, Mount};
use crate::common::registry::RegistryServer;
use crate::common::*;
use crate::convert_image_registry::{skopeo, skopeo_ok, OCI_CONFIG, OCI_MANIFEST, OCI_TAR};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Path → `None` for a directory, `Some(bytes)` for a file.
type Tree = BTreeMap<String, Option<Vec<u8>>>;

fn layer_tars() -> Vec<Vec<u8>> {
    vec![
        tar_of(&[
            ("etc/", b""),
            ("etc/keep", b"kept\n"),
            ("etc/gone", b"removed by layer 1\n"),
            ("d/", b""),
            ("d/old", b"hidden by the opaque directory\n"),
            ("d/sub/", b""),
            ("d/sub/deep", b"hidden too\n"),
            ("a/", b""),
            ("a/file", b"removed by layer 2\n"),
            ("a/stays", b"stays\n"),
        ]),
        tar_of(&[
            ("etc/", b""),
            ("etc/.wh.gone", b""),
            ("etc/new", b"new\n"),
            ("d/", b""),
            ("d/.wh..wh..opq", b""),
            ("d/fresh", b"fresh\n"),
        ]),
        tar_of(&[
            ("a/", b""),
            ("a/.wh.file", b""),
            ("etc/", b""),
            ("etc/keep", b"replaced by layer 2\n"),
            ("b/", b""),
            ("b/x", b"x\n"),
        ]),
    ]
}

/// The merged tree, applying each layer's opaque markers and whiteouts to
/// the layers below it, as the OCI image spec says.
fn expected_tree(tars: &[Vec<u8>]) -> Tree {
    let mut tree = Tree::new();
    for tar in tars {
        let mut entries = Vec::new();
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let path = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            let is_dir = e.header().entry_type().is_dir();
            entries.push((path, (!is_dir).then_some(data)));
        }
        let remove_under = |tree: &mut Tree, prefix: &str| {
            tree.retain(|k, _| !k.starts_with(&format!("{prefix}/")));
        };
        for (path, _) in &entries {
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
            if name == ".wh..wh..opq" {
                remove_under(&mut tree, dir);
            } else if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = if dir.is_empty() {
                    gone.to_string()
                } else {
                    format!("{dir}/{gone}")
                };
                tree.remove(&gone);
                remove_under(&mut tree, &gone);
            }
        }
        for (path, data) in entries {
            if !path.rsplit('/').next().unwrap().starts_with(".wh.") {
                tree.insert(path, data);
            }
        }
    }
    tree
}

fn tree_of(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                tree.insert(rel, None);
                todo.push(path);
            } else {
                tree.insert(rel, Some(fs::read(&path).unwrap()));
            }
        }
    }
    tree
}

/// An OCI layout of one image with `tars` as uncompressed layers.
fn build_layout(dir: &Path, tars: &[Vec<u8>]) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let blob = |bytes: &[u8], media_type: &str| {
        let digest = sha256_digest(bytes);
        let hex = digest.trim_start_matches("sha256:");
        fs::write(dir.join("blobs/sha256").join(hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    };
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256_digest(t)).collect();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = blob(&serde_json::to_vec(&config).unwrap(), OCI_CONFIG);
    let layers: Vec<Value> = tars.iter().map(|t| blob(t, OCI_TAR)).collect();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
    });
    let desc = blob(&serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST);
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// An OCI layout whose index lists one image per `(arch, tars)`.
fn build_multi_layout(dir: &Path, images: &[(&str, &[Vec<u8>])]) {
    let mut manifests = Vec::new();
    for (arch, tars) in images {
        let one = dir.join(format!("single-{arch}"));
        build_layout(&one, tars);
        for e in fs::read_dir(one.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
            fs::copy(e.path(), dir.join("blobs/sha256").join(e.file_name())).unwrap();
        }
        let index: Value = serde_json::from_slice(&read(one.join("index.json"))).unwrap();
        let mut desc = index["manifests"][0].clone();
        desc["platform"] = json!({"os": "linux", "architecture": arch});
        manifests.push(desc);
        fs::remove_dir_all(&one).unwrap();
    }
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    // One index blob under index.json, as skopeo wants a multi-platform
    // image.
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let bytes = serde_json::to_vec(&index).unwrap();
    let digest = sha256_digest(&bytes);
    let hex = digest.trim_start_matches("sha256:");
    fs::write(dir.join("blobs/sha256").join(hex), &bytes).unwrap();
    let desc = json!({"mediaType": OCI_INDEX, "digest": digest, "size": bytes.len()});
    let top = json!({"schemaVersion": 2, "manifests": [desc]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
}

/// Rewrites the layout's (one) manifest with `edit`, keeping it valid.
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut index: Value = serde_json::from_slice(&read(dir.join("index.json"))).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut manifest: Value = serde_json::from_slice(&read(&path)).unwrap();
    edit(&mut manifest);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256_digest(&bytes);
    fs::write(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        &bytes,
    )
    .unwrap();
    index["manifests"][0]["digest"] = json!(digest);
    index["manifests"][0]["size"] = json!(bytes.len());
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn push(server: &RegistryServer, layout: &Path, name: &str) -> String {
    let src = format!("oci:{}", layout.display());
    let dst = format!("docker://{}/{name}", server.host());
    skopeo_ok(&["copy", "--dest-tls-verify=false", &src, &dst]);
    dst
}

/// Mount points under `dir` the kernel still lists.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = format!("{}/", dir.display());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// A registry holding the source image (`src:1`) and its conversion
/// (`img:1`), and the layouts they came from.
struct Fixture {
    server: RegistryServer,
    tmp: tempfile::TempDir,
    tars: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Option<Fixture> {
        Fixture::converted_with(&[])
    }

    /// The image converted with the extra `convert-image` `args`.
    fn converted_with(args: &[&str]) -> Option<Fixture> {
        if !fuse_available() || skopeo().is_none() {
            return None;
        }
        let server = RegistryServer::start()?;
        let tmp = tempfile::tempdir().unwrap();
        let tars = layer_tars();
        let src = tmp.path().join("src");
        build_layout(&src, &tars);
        let out = tmp.path().join("converted");
        let mut conv: Vec<&std::ffi::OsStr> =
            vec!["convert-image".as_ref(), src.as_os_str(), out.as_os_str()];
        conv.extend(args.iter().map(std::ffi::OsStr::new));
        let conv = run(conv);
        assert_exit(&conv, 0);
        push(&server, &src, "src:1");
        push(&server, &out, "img:1");
        Some(Fixture { server, tmp, tars })
    }

    fn hidden(&self) -> std::path::PathBuf {
        let dir = self.tmp.path().join("hidden");
        fs::create_dir_all(&dir).unwrap();
        dir.canonicalize().unwrap()
    }
}

#[test]
fn an_image_mounts_as_the_merged_tree_of_its_layers() {
    let Some(f) = Fixture::new() else { return };
    let hidden = f.hidden();
    let image = format!("docker://{}/img:1", f.server.host());
    let args = ["--layers", "--tls-verify=false"];
    let mount = Mount::start_with_env(&image, &args, &[("TMPDIR", &hidden)]);
    assert!(
        mount.stderr().contains("(3 layers) mounted on"),
        "{}",
        mount.stderr()
    );
    // Three layer mounts in the private directory, and the overlay.
    assert_eq!(
        mounts_under(&hidden).len(),
        3,
        "{:?}",
        mounts_under(&hidden)
    );
    let expected = expected_tree(&f.tars);
    assert!(expected.contains_key("b/x") && !expected.contains_key("d/old"));
    assert_eq!(tree_of(mount.dir()), expected);

    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(mounts_under(&hidden), Vec::<String>::new());
    assert_eq!(dir_listing(&hidden), Vec::<String>::new(), "{stderr}");
}

#[test]
fn a_layer_that_cannot_be_read_lazily_is_refused_by_name() {
    let Some(f) = Fixture::new() else { return };
    let hidden = f.hidden();
    let dir = f.tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let image = format!("docker://{}/src:1", f.server.host());
    let out = estargz(["mount", "--layers", "--tls-verify=false", &image])
        .arg(&dir)
        .env("TMPDIR", &hidden)
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("layer 0 (sha256:") && stderr.contains("cannot be mounted lazily"),
        "{stderr}"
    );
    assert!(!is_mounted(&dir.canonicalize().unwrap()));
    assert_eq!(dir_listing(&hidden), Vec::<String>::new());
}

#[test]
fn a_failure_on_the_top_layer_unmounts_the_layers_below() {
    let Some(f) = Fixture::new() else { return };
    let hidden = f.hidden();
    // The top layer's TOC digest annotation no longer matches its TOC: the
    // two layers below are mounted by the time it is opened and refused.
    let bad = f.tmp.path().join("bad");
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/img:1", f.server.host()),
        &format!("oci:{}", bad.display()),
    ]);
    let wrong = format!("sha256:{}", "0".repeat(64));
    edit_manifest(&bad, |m| {
        m["layers"][2]["annotations"]["containerd.io/snapshot/stargz/toc.digest"] = json!(wrong);
    });
    let image = push(&f.server, &bad, "bad:1");
    let dir = f.tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let out = estargz(["mount", "--layers", "--tls-verify=false", &image])
        .arg(&dir)
        .env("TMPDIR", &hidden)
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("layer 2 (sha256:"), "{stderr}");
    // Refused only once the layers below it were up.
    assert!(stderr.contains(") mounted\n"), "{stderr}");
    assert_eq!(stderr.matches(") mounted\n").count(), 2, "{stderr}");
    assert!(stderr.contains(&wrong), "{stderr}");
    assert!(!is_mounted(&dir.canonicalize().unwrap()));
    assert_eq!(mounts_under(&hidden), Vec::<String>::new());
    assert_eq!(dir_listing(&hidden), Vec::<String>::new(), "{stderr}");
}

#[test]
fn an_oci_layout_mounts_too_and_sigterm_unmounts_it() {
    let Some(f) = Fixture::new() else { return };
    let hidden = f.hidden();
    let image = format!("oci:{}", f.tmp.path().join("converted").display());
    let mount = Mount::start_with_env(&image, &["--layers"], &[("TMPDIR", &hidden)]);
    assert_eq!(tree_of(mount.dir()), expected_tree(&f.tars));
    mount.signal(rustix::process::Signal::TERM);
    let (status, stderr) = mount.stop_after_exit();
    assert!(status.success(), "{stderr}");
    assert_eq!(mounts_under(&hidden), Vec::<String>::new());
    assert_eq!(dir_listing(&hidden), Vec::<String>::new(), "{stderr}");
}

#[test]
fn zstd_chunked_images_of_both_dialects_mount() {
    for dialect in ["stargz", "containers"] {
        let args = ["--compression", "zstd:chunked", "--toc-format", dialect];
        let Some(f) = Fixture::converted_with(&args) else {
            return;
        };
        let hidden = f.hidden();
        let image = format!("docker://{}/img:1", f.server.host());
        let args = ["--layers", "--tls-verify=false"];
        let mount = Mount::start_with_env(&image, &args, &[("TMPDIR", &hidden)]);
        assert_eq!(tree_of(mount.dir()), expected_tree(&f.tars), "{dialect}");
        let (status, stderr) = mount.stop();
        assert!(status.success(), "{dialect}: {stderr}");
        assert_eq!(dir_listing(&hidden), Vec::<String>::new(), "{stderr}");
    }
}

#[test]
fn umount_of_the_overlay_takes_the_layers_down() {
    let Some(f) = Fixture::new() else { return };
    let hidden = f.hidden();
    let image = format!("docker://{}/img:1", f.server.host());
    let args = ["--layers", "--tls-verify=false"];
    let mount = Mount::start_with_env(&image, &args, &[("TMPDIR", &hidden)]);
    let out = std::process::Command::new("umount")
        .arg(mount.dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (status, stderr) = mount.stop_after_exit();
    assert!(status.success(), "{stderr}");
    assert_eq!(mounts_under(&hidden), Vec::<String>::new());
    assert_eq!(dir_listing(&hidden), Vec::<String>::new(), "{stderr}");
}

#[test]
fn an_index_is_resolved_by_platform() {
    if !fuse_available() || skopeo().is_none() {
        return;
    }
    let Some(server) = RegistryServer::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let amd = layer_tars();
    let arm = vec![tar_of(&[("arm/", b""), ("arm/only", b"arm64\n")])];
    let src = tmp.path().join("src");
    build_multi_layout(&src, &[("amd64", &amd), ("arm64", &arm)]);
    let out = tmp.path().join("converted");
    assert_exit(
        &run(["convert-image".as_ref(), src.as_os_str(), out.as_os_str()]),
        0,
    );
    let dst = format!("docker://{}/multi:1", server.host());
    let from = format!("oci:{}", out.display());
    skopeo_ok(&["copy", "--all", "--dest-tls-verify=false", &from, &dst]);

    let mount = Mount::start(
        &dst,
        &[
            "--layers",
            "--tls-verify=false",
            "--platform",
            "linux/arm64",
        ],
    );
    assert_eq!(tree_of(mount.dir()), expected_tree(&arm));
    mount.stop();
    if std::env::consts::ARCH == "x86_64" {
        let mount = Mount::start(&dst, &["--layers", "--tls-verify=false"]);
        assert_eq!(tree_of(mount.dir()), expected_tree(&amd));
        mount.stop();
    }
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).unwrap();
    let args = [
        "mount",
        "--layers",
        "--tls-verify=false",
        "--platform",
        "linux/s390x",
        &dst,
    ];
    let out = estargz(args).arg(&dir).output().unwrap();
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no image for linux/s390x"), "{stderr}");
}

#[test]
fn layers_with_chunks_at_the_same_offsets_each_read_their_own() {
    if !fuse_available() {
        return;
    }
    // One file each, of one length: their chunks sit at the same offsets
    // of both blobs, and the layers share one chunk cache.
    let tars = [tar_of(&[("a", b"lower\n")]), tar_of(&[("b", b"upper\n")])];
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
    build_layout(&src, &tars);
    let convert = ["convert-image".as_ref(), src.as_os_str(), out.as_os_str()];
    assert_exit(&run(convert), 0);
    // In memory, and on disk (keyed by content, which differs).
    let disk = tmp.path().join("chunks");
    let disk = ["--disk-cache", disk.to_str().unwrap()];
    for cache in [&[][..], &disk[..]] {
        let args = [&["--layers"][..], cache].concat();
        let mount = Mount::start(&format!("oci:{}", out.display()), &args);
        assert_eq!(fs::read(mount.path("a")).unwrap(), b"lower\n");
        assert_eq!(fs::read(mount.path("b")).unwrap(), b"upper\n");
        let (status, stderr) = mount.stop();
        assert!(status.success(), "{stderr}");
    }
}
