//! Real container runtimes pull images that `estargz convert-image`
//! converted registry to registry (gzip eStargz and zstd:chunked), from a
//! real registry on loopback, and the trees they unpack are compared with
//! the source layers entry by entry (names, types, modes, contents, link
//! targets; owners and file times where the runtime keeps them).
//!
//! - containerd (Debian's 1.6, started by the test with a private
//!   configuration): `ctr images pull --plain-http` unpacks every layer
//!   and checks each layer's digest of the uncompressed stream against the
//!   config's `diff_ids`; an image with one wrong diffID is refused.
//! - podman (Debian's 4.3) with `enable_partial_images`: a partial pull
//!   through the TOC, seen in its debug log ("Retrieved partial blob" per
//!   layer) and in the registry's access log (only 206 range responses for
//!   the layers): gzip eStargz, and zstd:chunked in both dialects (the
//!   containers one through its `io.containers.*` annotations, spec Z35).
//!   With only the `io.github.containers.*` annotations podman 4.3 pulls
//!   the containers dialect whole (Z36).
//! - the stargz snapshotter (`stargz-grpc`, a Go build, so `#[ignore]`d:
//!   scripts/lazy-pull-test.sh runs it): every layer mounted lazily over
//!   FUSE, read through an overlay of the mounts.
//!
//! Both run as root in a private mount namespace (`unshare --mount`) for
//! reading the tree, so no mount they make outlives the test. Without
//! these tools the tests are skipped with a message, except under CI.

use crate::common::containerd::Containerd;
use crate::common::noise::noise;
use crate::common::registry::{require, RegistryServer};
use crate::common::stargz::StargzSnapshotter;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const NO_TLS: [&str; 2] = ["--src-tls-verify=false", "--dest-tls-verify=false"];
/// Small chunks, so that the large file spans several and a partial pull
/// fetches ranges of it.
const CHUNK_SIZE: &str = "--chunk-size=65536";
const MTIME: u64 = 1_700_000_000;
/// The containers dialect's manifest-checksum annotation, as containers/storage writes it now.
const ZSTD_CHECKSUM: &str = "io.github.containers.zstd-chunked.manifest-checksum";
/// `--compression zstd:chunked --toc-format containers`: the 64-byte dialect.
const CONTAINERS_DIALECT: [&str; 4] = [
    "--compression",
    "zstd:chunked",
    "--toc-format",
    "containers",
];

// ---------------------------------------------------------------------------
// The source image
// ---------------------------------------------------------------------------

/// Tar entries for the source layers (GNU headers: long names work).
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, owner: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner);
        h.set_gid(owner);
        h.set_mtime(MTIME + owner);
        h.set_size(size);
        h
    }

    fn dir(mut self, name: &str, mode: u32, owner: u64) -> Layer {
        let mut h = Layer::header(tar::EntryType::Directory, mode, owner, 0);
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }

    fn file(mut self, name: &str, mode: u32, owner: u64, data: &[u8]) -> Layer {
        let mut h = Layer::header(tar::EntryType::Regular, mode, owner, data.len() as u64);
        self.0.append_data(&mut h, name, data).unwrap();
        self
    }

    /// A symlink, or a hard link: its header carries the target's mode
    /// as tar writes it (containerd applies it to the linked file).
    fn link(mut self, kind: tar::EntryType, mode: u32, name: &str, target: &str) -> Layer {
        let mut h = Layer::header(kind, mode, 0, 0);
        self.0.append_link(&mut h, name, target).unwrap();
        self
    }

    fn fifo(mut self, name: &str) -> Layer {
        let mut h = Layer::header(tar::EntryType::Fifo, 0o640, 0, 0);
        self.0.append_data(&mut h, name, &[][..]).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Three layers: a base with every kind of entry a runtime must recreate
/// (modes with setuid, owners, empty and multi-chunk files, a zero run,
/// long and non-ASCII names, symlink, hard link); an update with a
/// whiteout, an opaque directory and a replaced file; a layer with a FIFO.
fn source_layers() -> Vec<Vec<u8>> {
    let long_dir = format!("usr/share/{}/", "long-directory-name".repeat(6));
    let long = format!("{long_dir}file.txt");
    let base = Layer::new()
        .dir("etc/", 0o755, 0)
        .file("etc/hello", 0o644, 0, b"hello\n")
        .file("etc/secret", 0o600, 1000, b"removed by the next layer\n")
        .file("etc/empty", 0o644, 0, b"")
        .file("etc/gr\u{fc}\u{df}e.txt", 0o644, 0, "grüße\n".as_bytes())
        .dir("usr/", 0o755, 0)
        .dir("usr/bin/", 0o755, 0)
        .file("usr/bin/tool", 0o4755, 0, &noise(7, 300_000))
        .link(
            tar::EntryType::Link,
            0o4755,
            "usr/bin/tool-again",
            "usr/bin/tool",
        )
        .link(tar::EntryType::Symlink, 0o777, "usr/link", "../etc/hello")
        .dir("usr/share/", 0o755, 0)
        .dir(&long_dir, 0o755, 0)
        .file(&long, 0o644, 0, b"a name longer than 100 bytes\n")
        .file("usr/share/zeros", 0o644, 0, &vec![0u8; 200_000])
        .dir("var/", 0o755, 0)
        .dir("var/cache/", 0o700, 1000)
        .file(
            "var/cache/old",
            0o640,
            1000,
            b"hidden by an opaque directory\n",
        )
        .finish();
    let update = Layer::new()
        .dir("etc/", 0o755, 0)
        .file("etc/.wh.secret", 0o644, 0, b"")
        .file("etc/hello", 0o644, 0, b"hello again\n")
        .dir("var/", 0o755, 0)
        .dir("var/cache/", 0o750, 1000)
        .file("var/cache/.wh..wh..opq", 0o644, 0, b"")
        .file(
            "var/cache/new",
            0o644,
            1000,
            b"after the opaque directory\n",
        )
        .finish();
    let last = Layer::new()
        .dir("app/", 0o755, 0)
        .file("app/data.bin", 0o644, 0, &noise(11, 150_000))
        .fifo("app/pipe")
        .finish();
    vec![base, update, last]
}

/// Writes an OCI layout at `dir` with `layers` (uncompressed) and a config
/// whose `diff_ids` are theirs.
fn write_layout(dir: &Path, layers: &[Vec<u8>]) {
    init_layout(dir);
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = put_blob(dir, &serde_json::to_vec(&config).unwrap(), OCI_CONFIG);
    let layers: Vec<Value> = layers.iter().map(|l| put_blob(dir, l, OCI_TAR)).collect();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
    });
    let manifest = put_blob(dir, &serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST);
    write_layout_index(dir, manifest);
}

fn skopeo_ok(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .env("REGISTRY_AUTH_FILE", "/nonexistent/auth.json")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run skopeo");
    assert!(out.status.success(), "skopeo {args:?}: {}", stderr_of(&out));
    stdout_of(&out)
}

fn tool_found(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        || Path::new("/usr/bin").join(name).is_file()
}

/// A registry holding the source image as `src:1` (pushed by skopeo, which
/// gzips its layers), or `None` when a tool is missing outside CI.
fn registry_with_source(tmp: &Path) -> Option<RegistryServer> {
    if !require("skopeo", tool_found("skopeo")) {
        return None;
    }
    let server = RegistryServer::start()?;
    let layout = tmp.join("source");
    write_layout(&layout, &source_layers());
    let dst = format!("docker://{}/src:1", server.host());
    let src = format!("oci:{}", layout.display());
    skopeo_ok(&["copy", "--dest-tls-verify=false", &src, &dst]);
    Some(server)
}

/// The converted image in the registry.
struct Converted {
    /// `HOST/REPO:1`, as runtimes name it.
    reference: String,
    repo: String,
    /// The layers' digests.
    layers: Vec<String>,
    diff_ids: Vec<String>,
}

/// `estargz convert-image docker://HOST/src:1 docker://HOST/REPO:1 EXTRA`,
/// checked to succeed and to give layers of `media_type`, each with its TOC
/// annotation (the stargz TOC digest; for the containers dialect of
/// zstd:chunked, its manifest checksum).
fn convert(
    server: &RegistryServer,
    tmp: &Path,
    repo: &str,
    extra: &[&str],
    media_type: &str,
) -> Converted {
    let host = server.host();
    let (src, dst) = (
        format!("docker://{host}/src:1"),
        format!("docker://{host}/{repo}:1"),
    );
    let scratch = tmp.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let args = [
        &["convert-image", &src, &dst, CHUNK_SIZE][..],
        &NO_TLS,
        extra,
    ]
    .concat();
    let out = estargz(args)
        .env("TMPDIR", &scratch)
        .env("REGISTRY_AUTH_FILE", scratch.join("no-auth.json"))
        .output()
        .expect("cannot run estargz");
    assert_exit(&out, 0);
    let manifest: Value = serde_json::from_str(&skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &dst,
    ]))
    .unwrap();
    let config: Value = serde_json::from_str(&skopeo_ok(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &dst,
    ]))
    .unwrap();
    let toc_key = if extra.contains(&"containers") {
        ZSTD_CHECKSUM
    } else {
        TOC_DIGEST_ANNOTATION
    };
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], media_type, "{l}");
            assert!(l["annotations"][toc_key].is_string(), "{l}");
            l["digest"].as_str().unwrap().to_string()
        })
        .collect();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 3);
    assert_eq!(diff_ids.len(), 3);
    Converted {
        reference: format!("{host}/{repo}:1"),
        repo: repo.to_string(),
        layers,
        diff_ids,
    }
}

// ---------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------

/// One entry of a tree: its type (`d`, `f`, `l`, `p`), permission bits,
/// owner, file time, and content digest (files) or target (symlinks).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    mode: u32,
    owner: (u64, u64),
    mtime: Option<i64>,
    data: String,
}

type Tree = BTreeMap<String, Node>;

/// A tree and the hard links it holds (link, target).
type Expected = (Tree, Vec<(String, String)>);

/// The tree the layers give when applied in order, with OCI whiteouts,
/// and the hard links it holds (link, target).
fn expected_tree(layers: &[Vec<u8>]) -> Expected {
    let mut tree = Tree::new();
    let mut hardlinks = Vec::new();
    for layer in layers {
        let mut archive = tar::Archive::new(&layer[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let path = path.trim_end_matches('/').to_string();
            let (parent, base) = path.rsplit_once('/').unwrap_or(("", &path));
            if base == ".wh..wh..opq" {
                let prefix = format!("{parent}/");
                tree.retain(|p, _| !p.starts_with(&prefix));
                continue;
            }
            if let Some(gone) = base.strip_prefix(".wh.") {
                let gone = if parent.is_empty() {
                    gone.to_string()
                } else {
                    format!("{parent}/{gone}")
                };
                let prefix = format!("{gone}/");
                tree.retain(|p, _| *p != gone && !p.starts_with(&prefix));
                continue;
            }
            let h = entry.header().clone();
            let mut node = Node {
                kind: 'f',
                mode: h.mode().unwrap() & 0o7777,
                owner: (h.uid().unwrap(), h.gid().unwrap()),
                mtime: Some(h.mtime().unwrap() as i64),
                data: String::new(),
            };
            match h.entry_type() {
                tar::EntryType::Directory => (node.kind, node.mtime) = ('d', None),
                tar::EntryType::Symlink => {
                    node.kind = 'l';
                    node.data = entry.link_name().unwrap().unwrap().to_string_lossy().into();
                }
                tar::EntryType::Fifo => node.kind = 'p',
                tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    node = tree[&target].clone();
                    hardlinks.push((path.clone(), target));
                }
                _ => {
                    let mut data = Vec::new();
                    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                    node.data = sha256_digest(&data);
                }
            }
            tree.insert(path, node);
        }
    }
    (tree, hardlinks)
}

/// The tree under `root` (not `root` itself), walked without recursion.
fn walk(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            let path = root.join(&rel);
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let (kind, data, mtime) = if ft.is_dir() {
                pending.push(rel.clone());
                ('d', String::new(), None)
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                (
                    'l',
                    target.to_string_lossy().into_owned(),
                    Some(meta.mtime()),
                )
            } else if ft.is_file() {
                ('f', sha256_digest(&read(&path)), Some(meta.mtime()))
            } else if std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
                ('p', String::new(), Some(meta.mtime()))
            } else {
                panic!("unexpected type of {}: {ft:?}", path.display());
            };
            let node = Node {
                kind,
                mode: meta.mode() & 0o7777,
                owner: (u64::from(meta.uid()), u64::from(meta.gid())),
                mtime,
                data,
            };
            tree.insert(rel.to_string_lossy().into_owned(), node);
        }
    }
    tree
}

/// Asserts that `got` (under `root`) is `want`: every name, type, mode and
/// content; owners and file times too when `exact`. Symlinks' own mode
/// and time are not compared (Linux gives them 0777, and a copy may not
/// keep their time).
#[track_caller]
fn assert_same_tree(want: &Expected, root: &Path, exact: bool, what: &str) {
    let got = walk(root);
    let strip = |tree: &Tree| -> Tree {
        tree.iter()
            .map(|(p, n)| {
                let mut n = n.clone();
                if n.kind == 'l' {
                    (n.mode, n.mtime) = (0o777, None);
                }
                if !exact {
                    (n.owner, n.mtime) = ((0, 0), None);
                }
                (p.clone(), n)
            })
            .collect()
    };
    let (want_tree, hardlinks) = want;
    let (want_tree, got_tree) = (strip(want_tree), strip(&got));
    let names = |t: &Tree| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got_tree), names(&want_tree), "{what}: names");
    for (path, node) in &want_tree {
        assert_eq!(&got_tree[path], node, "{what}: {path}");
    }
    for (link, target) in hardlinks {
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
        assert_eq!(
            ino(link),
            ino(target),
            "{what}: {link} is a hard link to {target}"
        );
    }
}

/// Runs `sh -ec SCRIPT sh ARGS` in a private mount namespace (as root):
/// the mounts made there end with it.
fn in_private_mounts(script: &str, args: &[&str]) -> Output {
    in_private_mounts_env(script, args, &[])
}

/// [`in_private_mounts`] with `env` added to the environment.
fn in_private_mounts_env(script: &str, args: &[&str], env: &[(&str, PathBuf)]) -> Output {
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-ec",
            script,
            "sh",
        ])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run unshare")
}

/// Whether the tests can make mounts (root, `unshare` there); a panic under
/// CI when not.
fn can_mount() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| stdout_of(&o).trim() == "0");
    require(
        "root and unshare (for private mounts)",
        root && tool_found("unshare"),
    )
}

// ---------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------

/// The chain IDs of `diff_ids` (the OCI image spec's ChainID): the keys of
/// the snapshots an unpack under these diffIDs commits.
fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

/// `ctr images pull --plain-http` of `image` into namespace `ns`: it
/// succeeds, unpacks, and the committed snapshots are the chain of the
/// config's diffIDs (containerd checked each layer's uncompressed digest
/// against them). Then the image's tree, read through `ctr images mount`
/// in a private mount namespace, is the source's.
fn containerd_pulls(ctd: &Containerd, image: &Converted, ns: &str, want: &Expected, tmp: &Path) {
    let out = ctd.ctr_run(ns, &["images", "pull", "--plain-http", &image.reference]);
    assert!(
        out.status.success(),
        "ctr pull {}: {}\n{}",
        image.reference,
        stderr_of(&out),
        stdout_of(&out)
    );
    assert!(
        stdout_of(&out).contains("unpacking linux/amd64"),
        "{}",
        stdout_of(&out)
    );
    let snapshots = stdout_of(&ctd.ctr_run(ns, &["snapshots", "ls"]));
    for chain_id in chain_ids(&image.diff_ids) {
        assert!(
            snapshots
                .lines()
                .any(|l| l.starts_with(&chain_id) && l.trim_end().ends_with("Committed")),
            "{}: no committed snapshot {chain_id}:\n{snapshots}",
            image.reference
        );
    }
    let (mnt, copy) = (
        tmp.join(format!("{ns}-mnt")),
        tmp.join(format!("{ns}-tree")),
    );
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&copy).unwrap();
    let socket = ctd.socket();
    let script = r#"ctr --address "$1" --namespace "$2" images mount "$3" "$4" >/dev/null
cp -a "$4"/. "$5"/
umount "$4""#;
    let out = in_private_mounts(
        script,
        &[
            socket.to_str().unwrap(),
            ns,
            &image.reference,
            mnt.to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "ctr images mount: {}",
        stderr_of(&out)
    );
    assert_same_tree(
        want,
        &copy,
        true,
        &format!("containerd, {}", image.reference),
    );
}

/// Pushes `image` again as `repo:1` with the config's last diffID replaced
/// by a wrong one.
fn push_with_wrong_diff_id(server: &RegistryServer, tmp: &Path, image: &Converted, repo: &str) {
    push_edited(server, tmp, image, repo, |_, config| {
        config["rootfs"]["diff_ids"][2] = json!(sha256_digest(b"not this layer"));
    });
}

/// Pushes `image` again as `repo:1` with its manifest and config as `edit`
/// leaves them (through an OCI layout written by convert-image, which
/// passes the converted layers through); the image as pushed.
fn push_edited(
    server: &RegistryServer,
    tmp: &Path,
    image: &Converted,
    repo: &str,
    edit: impl FnOnce(&mut Value, &mut Value),
) -> Converted {
    let layout = tmp.join(format!("edited-{repo}"));
    let out = estargz([
        "convert-image",
        "--src-tls-verify=false",
        &format!("docker://{}", image.reference),
        layout.to_str().unwrap(),
    ])
    .env("TMPDIR", tmp)
    .env("REGISTRY_AUTH_FILE", tmp.join("no-auth.json"))
    .output()
    .unwrap();
    assert_exit(&out, 0);
    let blob = |d: &str| layout_blob_path(&layout, d);
    let index: Value = serde_json::from_slice(&read(layout.join("index.json"))).unwrap();
    let mut manifest: Value = serde_json::from_slice(&read(blob(
        index["manifests"][0]["digest"].as_str().unwrap(),
    )))
    .unwrap();
    let mut config: Value =
        serde_json::from_slice(&read(blob(manifest["config"]["digest"].as_str().unwrap())))
            .unwrap();
    edit(&mut manifest, &mut config);
    manifest["config"] = put_blob(&layout, &serde_json::to_vec(&config).unwrap(), OCI_CONFIG);
    let desc = put_blob(
        &layout,
        &serde_json::to_vec(&manifest).unwrap(),
        OCI_MANIFEST,
    );
    let index = json!({"schemaVersion": 2, "manifests": [desc]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let src = format!("oci:{}", layout.display());
    let dst = format!("docker://{}/{repo}:1", server.host());
    skopeo_ok(&["copy", "--dest-tls-verify=false", &src, &dst]);
    let ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    Converted {
        reference: format!("{}/{repo}:1", server.host()),
        repo: repo.to_string(),
        layers: image.layers.clone(),
        diff_ids: ids
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect(),
    }
}

#[test]
fn containerd_unpacks_converted_images_checking_every_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    if !can_mount() {
        return;
    }
    let Some(ctd) = Containerd::start() else {
        return;
    };
    let Some(server) = registry_with_source(tmp.path()) else {
        return;
    };
    let layers = source_layers();
    let want = expected_tree(&layers);
    let esgz = convert(&server, tmp.path(), "esgz", &[], OCI_GZIP);
    containerd_pulls(&ctd, &esgz, "esgz", &want, tmp.path());

    let zstd = convert(
        &server,
        tmp.path(),
        "zchunked",
        &["--compression", "zstd:chunked"],
        OCI_ZSTD,
    );
    let source_diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    assert_eq!(
        zstd.diff_ids, source_diff_ids,
        "lossless zstd:chunked keeps every diffID"
    );
    containerd_pulls(&ctd, &zstd, "zchunked", &want, tmp.path());

    // The check is real: one wrong diffID in the config and the pull fails.
    push_with_wrong_diff_id(&server, tmp.path(), &esgz, "wrong");
    let reference = format!("{}/wrong:1", server.host());
    let out = ctd.ctr_run("wrong", &["images", "pull", "--plain-http", &reference]);
    assert!(
        !out.status.success(),
        "a wrong diffID was accepted: {}",
        stdout_of(&out)
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("wrong diff id calculated on extraction"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------

/// A private podman store: storage.conf (overlay, partial pulls on),
/// registries.conf (the loopback registry is insecure), an empty
/// containers.conf, an empty auth file, and the global options that keep
/// podman's root, run root, temporary files, network configuration and
/// events inside `dir`.
fn podman_store(dir: &Path, registry: &str) -> (Vec<(&'static str, PathBuf)>, Vec<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    let storage = format!(
        "[storage]\ndriver = \"overlay\"\nrunroot = \"{d}/run\"\ngraphroot = \"{d}/root\"\n\
         [storage.options]\npull_options = {{enable_partial_images = \"true\", \
         use_hard_links = \"false\", ostree_repos = \"\"}}\n"
    );
    let registries = format!(
        "unqualified-search-registries = []\n[[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"
    );
    std::fs::write(dir.join("storage.conf"), storage).unwrap();
    std::fs::write(dir.join("registries.conf"), registries).unwrap();
    std::fs::write(dir.join("containers.conf"), "").unwrap();
    std::fs::write(dir.join("no-auth.json"), r#"{"auths": {}}"#).unwrap();
    let env = vec![
        ("CONTAINERS_STORAGE_CONF", dir.join("storage.conf")),
        ("CONTAINERS_REGISTRIES_CONF", dir.join("registries.conf")),
        ("CONTAINERS_CONF", dir.join("containers.conf")),
        ("REGISTRY_AUTH_FILE", dir.join("no-auth.json")),
    ];
    let global = vec![
        format!("--root={d}/root"),
        format!("--runroot={d}/run"),
        format!("--tmpdir={d}/tmp"),
        format!("--network-config-dir={d}/networks"),
        "--storage-driver=overlay".to_string(),
        "--events-backend=none".to_string(),
    ];
    (env, global)
}

/// The statuses of the registry's responses to `GET`s of `repo`'s blob
/// `digest`, once there is at least one (the registry may log a line just
/// after answering).
fn blob_get_statuses(server: &RegistryServer, repo: &str, digest: &str) -> Vec<String> {
    let request = format!("\"GET /v2/{repo}/blobs/{digest} ");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let statuses: Vec<String> = server
            .log()
            .lines()
            .filter_map(|l| l.split_once(&request))
            .filter_map(|(_, rest)| {
                rest.split_once("\" ")?
                    .1
                    .split(' ')
                    .next()
                    .map(String::from)
            })
            .collect();
        if !statuses.is_empty() || Instant::now() > deadline {
            return statuses;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `podman --log-level=debug pull` of `image` into a fresh private store
/// under `dir`, with partial pulls on, checked to succeed; its debug log
/// and a copy of the image's tree (through `podman image mount`).
fn podman_pull(server: &RegistryServer, image: &Converted, dir: &Path) -> (String, PathBuf) {
    let (env, global) = podman_store(dir, &server.host());
    let (log, copy) = (dir.join("pull.log"), dir.join("tree"));
    std::fs::create_dir_all(&copy).unwrap();
    // Root's podman keeps a blob-info cache in /var/lib/containers/cache
    // whatever --root says: a tmpfs hides it in the private mount
    // namespace, so the machine's cache is neither read nor written.
    let script = r#"log=$1; copy=$2; ref=$3; shift 3
mkdir -p /var/lib/containers/cache
mount -t tmpfs tmpfs /var/lib/containers/cache
podman "$@" --log-level=debug pull "$ref" >"$log" 2>&1
merged=$(podman "$@" image mount "$ref")
cp -a "$merged"/. "$copy"/
podman "$@" image unmount "$ref" >/dev/null"#;
    let mut args = vec![
        log.to_str().unwrap(),
        copy.to_str().unwrap(),
        &image.reference,
    ];
    args.extend(global.iter().map(String::as_str));
    let out = in_private_mounts_env(script, &args, &env);
    let pull_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "podman {}: {}\n{pull_log}",
        image.reference,
        stderr_of(&out)
    );
    (pull_log, copy)
}

/// The registry answered every GET of each of `image`'s layers with 206:
/// only ranges were read.
fn assert_ranges_only(server: &RegistryServer, image: &Converted) {
    for layer in &image.layers {
        let statuses = blob_get_statuses(server, &image.repo, layer);
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| s == "206"),
            "{}: GETs of {layer} answered {statuses:?}",
            image.reference
        );
    }
}

/// [`podman_pull`] of `image`: every layer is "Retrieved partial blob" (no
/// fallback to a full pull) and the registry answered every GET of a layer
/// with 206 (range requests only). The image's tree is the source's, but
/// for owners and file times, which podman 4.3's partial pull does not
/// keep (zstd-chunked spec §8 #7), and FIFOs, which it does not make.
fn podman_pulls_partially(server: &RegistryServer, image: &Converted, dir: &Path, want: &Expected) {
    let (pull_log, copy) = podman_pull(server, image, dir);
    assert!(
        !pull_log.contains("Failed to retrieve partial blob"),
        "{pull_log}"
    );
    for layer in &image.layers {
        assert!(
            pull_log.contains(&format!("Retrieved partial blob {layer}")),
            "{}: no partial pull of {layer}:\n{pull_log}",
            image.reference
        );
    }
    assert_ranges_only(server, image);
    // podman 4.3's partial pull (containers/storage 1.43) makes no FIFO
    // from a TOC's `fifo` entry; so with the reference's own
    // `estargz-ref lossless` blob (see docs/convert-image.md).
    let mut want = want.clone();
    want.0.retain(|_, node| node.kind != 'p');
    assert_same_tree(&want, &copy, false, &format!("podman, {}", image.reference));
}

/// [`podman_pull`] of `image`: no layer is pulled partially (podman says
/// why it falls back), the registry sent each layer whole (a 200), and the
/// tree is exactly the source's, owners, file times and FIFOs included.
fn podman_pulls_in_full(
    server: &RegistryServer,
    image: &Converted,
    dir: &Path,
    want: &Expected,
    why: &str,
) {
    let (pull_log, copy) = podman_pull(server, image, dir);
    assert!(
        !pull_log.contains("Retrieved partial blob"),
        "{}: a partial pull:\n{pull_log}",
        image.reference
    );
    assert!(
        pull_log.contains(why),
        "{}: no {why:?}:\n{pull_log}",
        image.reference
    );
    for layer in &image.layers {
        let statuses = blob_get_statuses(server, &image.repo, layer);
        assert!(
            statuses.iter().any(|s| s == "200"),
            "{}: GETs of {layer} answered {statuses:?}",
            image.reference
        );
    }
    assert_same_tree(want, &copy, true, &format!("podman, {}", image.reference));
}

/// Where podman can run: a directory, a registry holding the source
/// image, and the tree that image should give.
fn podman_setup() -> Option<(tempfile::TempDir, RegistryServer, Expected)> {
    let tmp = tempfile::tempdir().unwrap();
    if !can_mount() || !require("podman", tool_found("podman")) {
        return None;
    }
    let server = registry_with_source(tmp.path())?;
    Some((tmp, server, expected_tree(&source_layers())))
}

#[test]
fn podman_pulls_converted_images_partially() {
    let Some((tmp, server, want)) = podman_setup() else {
        return;
    };
    let esgz = convert(&server, tmp.path(), "esgz", &[], OCI_GZIP);
    podman_pulls_partially(&server, &esgz, &tmp.path().join("podman-esgz"), &want);
    let zstd = convert(
        &server,
        tmp.path(),
        "zchunked",
        &["--compression", "zstd:chunked"],
        OCI_ZSTD,
    );
    podman_pulls_partially(&server, &zstd, &tmp.path().join("podman-zchunked"), &want);
    // Z35, second half: the 64-byte containers dialect, whose
    // `io.containers.*` annotations podman 4.3 reads it by (spec §6, C2).
    let c64 = convert(&server, tmp.path(), "c64", &CONTAINERS_DIALECT, OCI_ZSTD);
    podman_pulls_partially(&server, &c64, &tmp.path().join("podman-c64"), &want);
}

/// Z36: the 64-byte containers dialect with only current containers/storage's
/// `io.github.containers.zstd-chunked.*` annotations, which podman 4.3 does
/// not know: it pulls the layers whole (spec §6, C), and gets the same tree.
#[test]
fn podman_pulls_the_containers_dialect_without_its_old_annotations_in_full() {
    let Some((tmp, server, want)) = podman_setup() else {
        return;
    };
    let c64 = convert(&server, tmp.path(), "c64", &CONTAINERS_DIALECT, OCI_ZSTD);
    let github_only = push_edited(&server, tmp.path(), &c64, "github-only", |manifest, _| {
        for layer in manifest["layers"].as_array_mut().unwrap() {
            let a = layer["annotations"].as_object_mut().unwrap();
            a.retain(|k, _| !k.starts_with("io.containers."));
            assert!(a
                .keys()
                .any(|k| k.starts_with("io.github.containers.zstd-chunked.")));
        }
    });
    podman_pulls_in_full(
        &server,
        &github_only,
        &tmp.path().join("podman-github-only"),
        &want,
        "blob type not supported for partial retrieval",
    );
}

// ---------------------------------------------------------------------------
// The stargz snapshotter (lazy mounts)
// ---------------------------------------------------------------------------

/// `ctr-remote images rpull --plain-http` of `image` through the stargz
/// snapshotter, which must log each layer's snapshot as "verified" and
/// prepared remotely. Returns the layers' chain IDs.
fn rpull_lazily(
    ctd: &Containerd,
    snapshotter: &StargzSnapshotter,
    image: &Converted,
) -> Vec<String> {
    let ns = image.repo.as_str();
    let out = Command::new("ctr-remote")
        .arg("--address")
        .arg(ctd.socket())
        .args([
            "--namespace",
            ns,
            "images",
            "rpull",
            "--plain-http",
            &image.reference,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ctr-remote");
    assert!(
        out.status.success(),
        "rpull {}: {}",
        image.reference,
        stderr_of(&out)
    );
    let chain = chain_ids(&image.diff_ids);
    let log = snapshotter.log();
    for chain_id in &chain {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(chain_id.as_str()))
            .collect();
        assert!(
            lines.iter().any(|l| l.contains("\"msg\":\"verified\""))
                && lines
                    .iter()
                    .any(|l| l.contains("\"remote-snapshot-prepared\":\"true\"")),
            "{}: layer {chain_id} not mounted lazily:\n{log}",
            image.reference
        );
    }
    chain
}

/// The mount options (comma-separated) of a stargz `view` snapshot of
/// `top`: an overlay of the lazy mounts.
fn lazy_view_options(ctd: &Containerd, ns: &str, top: &str) -> String {
    let view = format!("{ns}-view");
    let out = ctd.ctr_run(
        ns,
        &[
            "snapshots",
            "--snapshotter",
            "stargz",
            "view",
            "--mounts",
            &view,
            top,
        ],
    );
    assert!(out.status.success(), "view: {}", stderr_of(&out));
    let mounts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mount = &mounts[0];
    assert_eq!(mount["Type"], "overlay", "{mounts}");
    let options: Vec<&str> = mount["Options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    options.join(",")
}

/// `ctr-remote images rpull --plain-http` of `image` through the stargz
/// snapshotter: every layer is mounted remotely (its snapshot logged as
/// "verified" against the TOC digest and "prepared remote snapshot"),
/// nothing is unpacked, and the tree read through the lazy mounts (an
/// overlay of them, in a private mount namespace) is the source's. The
/// registry answers every GET of a layer with 206: only ranges are read.
fn snapshotter_mounts_lazily(
    ctd: &Containerd,
    snapshotter: &StargzSnapshotter,
    server: &RegistryServer,
    image: &Converted,
    tmp: &Path,
    want: &Expected,
) {
    let ns = image.repo.as_str();
    let chain = rpull_lazily(ctd, snapshotter, image);
    let options = lazy_view_options(ctd, ns, &chain[2]);
    let (mnt, copy) = (
        tmp.join(format!("{ns}-lazy")),
        tmp.join(format!("{ns}-lazy-tree")),
    );
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&copy).unwrap();
    // Not `cp -a`: the snapshotter's FUSE files answer SEEK_HOLE at 0 with
    // 0 after SEEK_DATA at 0 said 0, and coreutils 9.1's cp loops on that
    // forever (its blobs and the reference's alike); tar reads plainly.
    // The timeout turns a hang into a failure.
    let script = r#"mount -t overlay overlay -o "$1" "$2"
timeout 600 tar --numeric-owner -cf "$3.tar" -C "$2" .
tar --numeric-owner -xpf "$3.tar" -C "$3" 2>/dev/null
umount "$2""#;
    let out = in_private_mounts(
        script,
        &[&options, mnt.to_str().unwrap(), copy.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "overlay of the lazy mounts: {}",
        stderr_of(&out)
    );
    assert_ranges_only(server, image);
    assert_same_tree(
        want,
        &copy,
        true,
        &format!("stargz snapshotter, {}", image.reference),
    );
}

/// Needs `stargz-grpc`, which takes Go and minutes to build (too slow for
/// CI): run by hand with `scripts/lazy-pull-test.sh`.
#[test]
#[ignore = "needs stargz-grpc (Go build): run scripts/lazy-pull-test.sh"]
fn the_stargz_snapshotter_mounts_converted_images_lazily() {
    let tmp = tempfile::tempdir().unwrap();
    if !can_mount() || !require("ctr-remote", tool_found("ctr-remote")) {
        return;
    }
    let Some(snapshotter) = StargzSnapshotter::start() else {
        return;
    };
    let Some(ctd) = Containerd::start_with_snapshotter("stargz", &snapshotter.socket()) else {
        return;
    };
    let Some(server) = registry_with_source(tmp.path()) else {
        return;
    };
    let want = expected_tree(&source_layers());
    let esgz = convert(&server, tmp.path(), "esgz", &[], OCI_GZIP);
    snapshotter_mounts_lazily(&ctd, &snapshotter, &server, &esgz, tmp.path(), &want);
    let zstd = convert(
        &server,
        tmp.path(),
        "zchunked",
        &["--compression", "zstd:chunked"],
        OCI_ZSTD,
    );
    snapshotter_mounts_lazily(&ctd, &snapshotter, &server, &zstd, tmp.path(), &want);
    drop(ctd);
}
