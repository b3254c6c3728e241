//! `estargz convert-image` with registry images, against a real registry
//! (`docker-registry`, started per test on loopback): images are put in
//! and taken out with skopeo, which checks every digest it copies, and the
//! converted layers are checked with `estargz verify --toc-digest`.
//!
//! Without docker-registry or skopeo these tests are skipped with a
//! message, except under CI (`CI` set), where that fails.

use crate::common::registry::{require, RegistryServer, PASSWORD, USER};
use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub(crate) const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const NO_TLS: [&str; 2] = ["--src-tls-verify=false", "--dest-tls-verify=false"];

pub(crate) fn skopeo() -> Option<PathBuf> {
    let found = Path::new("/usr/bin/skopeo").is_file() || on_path("skopeo");
    require("skopeo", found).then(|| PathBuf::from("skopeo"))
}

fn skopeo_run(args: &[&str]) -> Output {
    Command::new("skopeo")
        .args(args)
        .env("REGISTRY_AUTH_FILE", "/nonexistent/auth.json")
        .output()
        .expect("cannot run skopeo")
}

#[track_caller]
pub(crate) fn skopeo_ok(args: &[&str]) -> String {
    let out = skopeo_run(args);
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_of(&out)
}

/// `skopeo inspect --raw` of `reference`, over plain HTTP.
#[track_caller]
fn inspect_raw(reference: &str) -> String {
    skopeo_ok(&["inspect", "--raw", "--tls-verify=false", reference])
}

/// Whether `skopeo inspect` finds `reference` (over plain HTTP).
fn exists(reference: &str) -> bool {
    skopeo_run(&["inspect", "--raw", "--tls-verify=false", reference])
        .status
        .success()
}

/// The manifests that `index` (of `docker://HOST/REPO`) names, fetched by
/// digest with skopeo.
fn platform_manifests(host: &str, repo: &str, index: &Value) -> Vec<Value> {
    let children = index["manifests"].as_array().unwrap();
    children
        .iter()
        .map(|child| {
            let digest = child["digest"].as_str().unwrap();
            serde_json::from_str(&inspect_raw(&format!("docker://{host}/{repo}@{digest}"))).unwrap()
        })
        .collect()
}

/// `skopeo copy --all` of `from` to `to` as Docker schema 2, which drops
/// the layers' annotations.
fn copy_as_docker_schema_2(from: &str, to: &str) {
    skopeo_ok(&[
        "copy",
        "--all",
        "--format",
        "v2s2",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        from,
        to,
    ]);
}

/// `skopeo copy --all EXTRA reference` into a layout at `dir`, then
/// [`verify_layout`] of it.
#[track_caller]
fn pull_and_verify(dir: &Path, reference: &str, extra: &[&str]) -> usize {
    let oci = format!("oci:{}", dir.display());
    let copy = ["copy", "--all", "--src-tls-verify=false"];
    skopeo_ok(&[&copy[..], extra, &[reference, &oci]].concat());
    verify_layout(dir)
}

/// A layout at `dir` whose index names one multi-platform index: amd64 and
/// arm64 manifests sharing an uncompressed layer, each with its own
/// second layer (gzip for arm64).
fn build_layout(dir: &Path) {
    init_layout(dir);
    let blob = |bytes: &[u8], media_type: &str| put_blob(dir, bytes, media_type);
    let shared = read(SAMPLE_LAYER);
    let amd = lcg_tar(&[("amd64.txt", 20_000), ("etc/conf", 300)], true);
    let arm_tar = lcg_tar(&[("arm64.txt", 30_000)], true);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &arm_tar).unwrap();
    let arm = gz.finish().unwrap();
    let mut manifests = Vec::new();
    for (arch, (second, second_type, second_tar)) in [
        ("amd64", (&amd, OCI_TAR, &amd)),
        ("arm64", (&arm, OCI_GZIP, &arm_tar)),
    ] {
        let config = json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&shared), sha256_digest(second_tar)]},
        });
        let config = blob(&serde_json::to_vec(&config).unwrap(), OCI_CONFIG);
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
            "layers": [blob(&shared, OCI_TAR), blob(second, second_type)],
        });
        let mut desc = blob(&serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST);
        desc["platform"] = json!({"architecture": arch, "os": "linux"});
        manifests.push(desc);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let root = blob(&serde_json::to_vec(&index).unwrap(), OCI_INDEX);
    write_layout_index(dir, root);
}

/// A registry holding `src:1` (pushed by skopeo from [`build_layout`]),
/// the test's temporary directory, and the TMPDIR its conversions get.
struct Setup {
    // Declared before `tmp`: stopped before the directory goes.
    server: RegistryServer,
    tmp: tempfile::TempDir,
    host: String,
    /// `docker://HOST/src:1`
    src: String,
    /// `docker://HOST/dst:1`
    dst: String,
    /// The TMPDIR of [`Setup::convert_json`] and [`Setup::convert_fails`].
    scratch: PathBuf,
}

impl Setup {
    /// `None` when a tool is missing (outside CI).
    fn start(htpasswd: bool) -> Option<Self> {
        skopeo()?;
        let server = if htpasswd {
            RegistryServer::start_with_htpasswd()?
        } else {
            RegistryServer::start()?
        };
        let tmp = tempfile::tempdir().unwrap();
        push_source(&server, tmp.path(), htpasswd);
        Some(Self::around(server, tmp))
    }

    /// A setup for a `server` that already holds `src:1`.
    fn around(server: RegistryServer, tmp: tempfile::TempDir) -> Self {
        let host = server.host();
        Self {
            src: format!("docker://{host}/src:1"),
            dst: format!("docker://{host}/dst:1"),
            scratch: tmp.path().join("scratch"),
            host,
            server,
            tmp,
        }
    }

    /// `name` in the test's temporary directory.
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `docker://HOST/name`.
    fn image(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host)
    }

    /// `convert-image ARGS --json` without TLS, asserted to succeed: the
    /// report.
    #[track_caller]
    fn convert_json(&self, args: &[&str]) -> Value {
        let out = convert(&self.scratch, &no_tls(&[args, &["--json"]].concat()));
        assert_exit(&out, 0);
        json_value(&out.stdout)
    }

    /// `convert-image ARGS` without TLS, asserted to exit 1: its stderr.
    #[track_caller]
    fn convert_fails(&self, args: &[&str]) -> String {
        let out = convert(&self.scratch, &no_tls(args));
        assert_exit(&out, 1);
        stderr_of(&out)
    }
}

/// `args` and [`NO_TLS`].
fn no_tls<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [args, &NO_TLS].concat()
}

/// Pushes [`build_layout`]'s image to `server` as `src:1` with skopeo.
fn push_source(server: &RegistryServer, tmp: &Path, with_creds: bool) {
    let layout = tmp.join("layout");
    build_layout(&layout);
    let src = format!("oci:{}", layout.display());
    let dst = format!("docker://{}/src:1", server.host());
    let creds = format!("{USER}:{PASSWORD}");
    let mut args = vec!["copy", "--all", "--dest-tls-verify=false"];
    if with_creds {
        args.extend(["--dest-creds", &creds]);
    }
    args.extend([src.as_str(), dst.as_str()]);
    skopeo_ok(&args);
}

/// `estargz convert-image ARGS` with `TMPDIR=tmpdir` and no auth file.
pub(crate) fn convert(tmpdir: &Path, args: &[&str]) -> Output {
    convert_with_tmpdir(tmpdir, tmpdir, args)
}

/// [`convert`] with `home` for what it keeps in `tmpdir` (the auth
/// file, the cache next to it) and `TMPDIR` set to `tmpdir`, which need
/// not exist.
fn convert_with_tmpdir(home: &Path, tmpdir: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(home).unwrap();
    let tmpdir_env = tmpdir;
    let tmpdir = home;
    estargz(std::iter::once("convert-image").chain(args.iter().copied()))
        .env("TMPDIR", tmpdir_env)
        .env("REGISTRY_AUTH_FILE", tmpdir.join("no-auth.json"))
        .env("HOME", tmpdir)
        // A cache of this test's own, next to TMPDIR: what other tests
        // converted is not a hit here.
        .env("XDG_CACHE_HOME", tmpdir.with_extension("xdg-cache"))
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("cannot run estargz")
}

/// Every image manifest under the layout's index: (its layer
/// descriptors, checked to be eStargz by `estargz verify --toc-digest`).
fn verify_layout(dir: &Path) -> usize {
    let blob = |digest: &str| layout_blob_path(dir, digest);
    let top: Value = serde_json::from_slice(&read(dir.join("index.json"))).unwrap();
    let mut pending: Vec<Value> = top["manifests"].as_array().unwrap().clone();
    let mut verified = 0;
    while let Some(desc) = pending.pop() {
        let doc: Value =
            serde_json::from_slice(&read(blob(desc["digest"].as_str().unwrap()))).unwrap();
        if let Some(children) = doc["manifests"].as_array() {
            pending.extend(children.iter().cloned());
            continue;
        }
        for layer in doc["layers"].as_array().unwrap() {
            assert_eq!(layer["mediaType"], OCI_GZIP, "{layer}");
            let toc = layer["annotations"][TOC_DIGEST_ANNOTATION]
                .as_str()
                .unwrap();
            assert_verifies(&blob(layer["digest"].as_str().unwrap()), toc);
            verified += 1;
        }
    }
    verified
}

/// The access-log lines of blob uploads into `repo` (`POST` opening one,
/// `PUT` closing one), once the log has at least `at_least` of them
/// (the registry may write a line just after answering).
fn uploads(server: &RegistryServer, repo: &str, at_least: usize) -> usize {
    let post = format!("\"POST /v2/{repo}/blobs/uploads/");
    let put = format!("\"PUT /v2/{repo}/blobs/uploads/");
    log_lines(server, at_least, |l| l.contains(&post) || l.contains(&put))
}

/// The registry's access-log lines that `matches`, once there are at least
/// `at_least` of them or 5 s have passed (the registry may write a line
/// just after answering).
fn log_lines(server: &RegistryServer, at_least: usize, matches: impl Fn(&str) -> bool) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = server.log().lines().filter(|l| matches(l)).count();
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[track_caller]
fn assert_empty_dir(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "no-auth.json")
        .collect();
    assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
}

#[test]
fn registry_to_registry_converts_every_platform_and_a_rerun_uploads_nothing() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let report = s.convert_json(&[&s.src, &s.dst]);
    assert_empty_dir(&s.scratch);
    assert_eq!(report["pulled"]["manifests"], 3, "{report}");
    // 2 configs, 2 converted layers, 1 converted shared layer
    assert_eq!(report["pushed"]["blobs_pushed"], 5, "{report}");
    assert_eq!(report["pushed"]["manifests"], 3, "{report}");
    let first = uploads(&s.server, "dst", 10);
    assert_eq!(first, 10, "a POST and a PUT per blob");

    let raw = inspect_raw(&s.dst);
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    for manifest in platform_manifests(&s.host, "dst", &index) {
        for layer in manifest["layers"].as_array().unwrap() {
            assert_eq!(layer["mediaType"], OCI_GZIP, "{layer}");
            assert!(
                layer["annotations"][TOC_DIGEST_ANNOTATION].is_string(),
                "{layer}"
            );
            assert!(
                layer["annotations"][UNCOMPRESSED_SIZE_ANNOTATION].is_string(),
                "{layer}"
            );
        }
    }
    assert_eq!(pull_and_verify(&s.path("copied"), &s.dst, &[]), 4);

    let report = s.convert_json(&[&s.src, &s.dst]);
    assert_eq!(report["pushed"]["blobs_pushed"], 0, "{report}");
    assert_eq!(report["pushed"]["blobs_existing"], 5, "{report}");
    assert_eq!(
        uploads(&s.server, "dst", first + 1),
        first,
        "no upload on a rerun"
    );
    assert_empty_dir(&s.scratch);

    // Converting the converted image into another repository of the same
    // registry changes nothing: every blob is mounted, none uploaded.
    let report = s.convert_json(&[&s.dst, &s.image("team/copy:1")]);
    assert_eq!(report["pushed"]["blobs_mounted"], 5, "{report}");
    assert_eq!(report["pushed"]["blobs_pushed"], 0, "{report}");
    assert_eq!(
        report["pushed"]["digest"],
        sha256_digest(raw.as_bytes()),
        "{report}"
    );
    assert_eq!(uploads(&s.server, "team/copy", 5), 5, "the mounts' POSTs");
    assert!(!s.server.log().contains("\"PUT /v2/team/copy/blobs/"));
    assert_empty_dir(&s.scratch);
}

#[test]
fn registry_to_layout_and_layout_to_registry() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let out_dir = s.path("out");
    let dst_dir = format!("oci:{}", out_dir.display());
    let out = convert(&s.scratch, &[&s.src, &dst_dir, "--src-tls-verify=false"]);
    assert_exit(&out, 0);
    assert_eq!(verify_layout(&out_dir), 4);
    let top: Value = serde_json::from_slice(&read(out_dir.join("index.json"))).unwrap();
    assert_eq!(
        top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "1"
    );
    assert_empty_dir(&s.scratch);

    // The converted layout, pushed to another repository, converts to
    // the same image again: nothing is left to convert.
    let dst = s.image("from-layout:v2");
    let out = convert(
        &s.scratch,
        &[out_dir.to_str().unwrap(), &dst, "--dest-tls-verify=false"],
    );
    assert_exit(&out, 0);
    let raw = inspect_raw(&dst);
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        sha256_digest(raw.as_bytes()),
        top["manifests"][0]["digest"].as_str().unwrap()
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let archive = s.path("image.oci");
    let out = convert(
        &s.scratch,
        &[
            &dst,
            &format!("oci-archive:{}", archive.display()),
            "--src-tls-verify=false",
        ],
    );
    assert_exit(&out, 0);
    let listing = Command::new("tar")
        .arg("tf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(stdout_of(&listing).contains("index.json"));
    assert_empty_dir(&s.scratch);
}

#[test]
fn a_missing_repository_is_an_error_and_pushes_nothing() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let err = s.convert_fails(&[&s.image("nope:1"), &s.dst]);
    assert!(err.contains("nope") && err.contains("not found"), "{err}");
    assert!(!exists(&s.dst));
    assert_empty_dir(&s.scratch);
}

#[test]
fn credentials_from_flags_and_auth_files_and_a_wrong_password() {
    let Some(s) = Setup::start(true) else {
        return;
    };
    let good = format!("{USER}:{PASSWORD}");
    let bad = format!("{USER}:not-{PASSWORD}");
    let creds_ok = format!("--src-creds={good}");

    // Right to read, wrong to write: nothing lands, the password is not shown.
    let args = [&s.src, &s.dst, &creds_ok, "--dest-creds", &bad, "--json"];
    let out = convert(&s.scratch, &no_tls(&args));
    assert_exit(&out, 1);
    let err = stderr_of(&out);
    assert!(err.contains("401"), "{err}");
    assert!(
        !err.contains(PASSWORD) && !stdout_of(&out).contains(PASSWORD),
        "{err}"
    );
    let inspect = [
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &good,
        &s.dst,
    ];
    assert!(
        !skopeo_run(&inspect).status.success(),
        "the tag must not exist"
    );
    assert_eq!(uploads(&s.server, "dst", 0), 0);
    assert_empty_dir(&s.scratch);

    // No credentials at all: the same refusal, for the source.
    let err = s.convert_fails(&[&s.src, &s.dst]);
    assert!(err.contains("401"), "{err}");

    // The auth file's entry is used when no --*-creds is given.
    std::fs::create_dir_all(&s.scratch).unwrap();
    let auth = base64_encode(good.as_bytes());
    let auth_json = json!({"auths": {s.host.clone(): {"auth": auth}}});
    std::fs::write(s.scratch.join("no-auth.json"), auth_json.to_string()).unwrap();
    let out = convert(&s.scratch, &no_tls(&[&s.src, &s.dst, "--json"]));
    assert_exit(&out, 0);
    assert!(!stdout_of(&out).contains(PASSWORD));
    let raw = skopeo_ok(&inspect);
    assert!(raw.contains(OCI_INDEX), "{raw}");
    assert_empty_dir(&s.scratch);
}

/// Registry to registry through the Bearer flow of a real token-auth
/// registry: the converted image is there for skopeo, every layer verifies,
/// and a wrong password is a clear exit 1 with nothing pushed.
#[test]
fn registry_to_registry_behind_token_auth() {
    let tmp = tempfile::tempdir().unwrap();
    if skopeo().is_none() {
        return;
    }
    let Some(server) = RegistryServer::start_with_token(Duration::from_secs(600)) else {
        return;
    };
    push_source(&server, tmp.path(), true);
    let s = Setup::around(server, tmp);
    let good = format!("{USER}:{PASSWORD}");
    let bad = format!("--dest-creds={USER}:not-{PASSWORD}");
    let src_creds = format!("--src-creds={good}");
    let dest_creds = format!("--dest-creds={good}");

    let err = s.convert_fails(&[&s.src, &s.dst, &src_creds, &bad]);
    assert!(err.contains("401") && !err.contains(PASSWORD), "{err}");
    assert_eq!(uploads(&s.server, "dst", 0), 0);

    let report = s.convert_json(&[&s.src, &s.dst, &src_creds, &dest_creds]);
    assert_empty_dir(&s.scratch);
    let layer = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["toc_digest"].is_string())
        .expect("a converted layer")
        .clone();
    read_layer_lazily(&s.server, &s.scratch, &layer);
    let issuer = s.server.issuer().unwrap();
    assert!(
        issuer.requests().iter().any(|t| t
            .scopes
            .iter()
            .any(|s| s.starts_with("repository:dst:") && s.contains("push"))),
        "a push token for dst: {:#?}",
        issuer.requests()
    );
    assert_eq!(
        pull_and_verify(&s.path("pulled"), &s.dst, &["--src-creds", &good]),
        4,
        "every layer of both platforms"
    );
}

/// `estargz ls`/`verify` of a converted layer straight from the token
/// registry (`docker://HOST/REPO@DIGEST`): range reads with the token
/// flow, refused without credentials, and a tag is a usage error.
fn read_layer_lazily(server: &RegistryServer, scratch: &Path, layer: &Value) {
    let digest = layer["digest"].as_str().unwrap();
    let blob = format!("docker://{}/dst@{digest}", server.host());
    let creds = format!("--creds={USER}:{PASSWORD}");
    let estargz_blob = |args: &[&str]| {
        estargz(args)
            .env("REGISTRY_AUTH_FILE", scratch.join("no-auth.json"))
            .output()
            .expect("cannot run estargz")
    };
    let toc = layer["toc_digest"].as_str().unwrap();
    let out = estargz_blob(&[
        "verify",
        &blob,
        &creds,
        "--tls-verify=false",
        "--toc-digest",
        toc,
    ]);
    assert_exit(&out, 0);
    let out = estargz_blob(&["ls", &blob, &creds, "--tls-verify=false"]);
    assert_exit(&out, 0);
    assert!(!stdout_of(&out).is_empty());
    let get = format!("GET /v2/dst/blobs/{digest}");
    let ranges = log_lines(server, 2, |l| l.contains(&get) && l.contains(" 206 "));
    assert!(ranges >= 2, "range reads of the layer:\n{}", server.log());

    let out = estargz_blob(&["ls", &blob, "--tls-verify=false"]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("401"), "{}", stderr_of(&out));
    let tagged = format!("docker://{}/dst:1", server.host());
    let out = estargz_blob(&["ls", &tagged, &creds, "--tls-verify=false"]);
    assert_exit(&out, 2);
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn endpoint_forms_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    for (src, dst, want) in [
        ("docker://", "out", "no image name"),
        ("oci:", "out", "no path"),
        ("docker://h/r@sha256:12", "out", "invalid image reference"),
    ] {
        let out = convert(&scratch, &[src, dst]);
        assert_exit_for(&out, 2, src);
        assert!(stderr_of(&out).contains(want), "{src}: {}", stderr_of(&out));
    }
}

#[test]
fn https_with_a_private_ca_from_cert_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    if skopeo().is_none() {
        return;
    }
    let Some(server) = RegistryServer::start_with_htpasswd_and_tls() else {
        return;
    };
    let host = server.host();
    let certs = tmp.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(server.ca(), certs.join("ca.crt")).unwrap();
    let certs = certs.to_str().unwrap();
    let layout = tmp.path().join("layout");
    build_layout(&layout);
    let good = format!("{USER}:{PASSWORD}");
    let (src, dst) = (
        format!("docker://{host}/src:1"),
        format!("docker://{host}/dst:1"),
    );
    let oci = format!("oci:{}", layout.display());
    let push = [
        "copy",
        "--all",
        "--dest-cert-dir",
        certs,
        "--dest-creds",
        &good,
    ];
    skopeo_ok(&[&push[..], &[oci.as_str(), src.as_str()]].concat());
    let scratch = tmp.path().join("scratch");
    let creds = [&["--src-creds", &good][..], &["--dest-creds", &good]].concat();

    // The built-in roots do not know the test CA.
    let out = convert(
        &scratch,
        &[&[src.as_str(), dst.as_str()][..], &creds].concat(),
    );
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains(&host), "{}", stderr_of(&out));

    let dirs = ["--src-cert-dir", certs, "--dest-cert-dir", certs];
    let out = convert(
        &scratch,
        &[&[src.as_str(), dst.as_str()][..], &creds, &dirs].concat(),
    );
    assert_exit(&out, 0);
    let inspect = [
        "inspect",
        "--raw",
        "--cert-dir",
        certs,
        "--creds",
        &good,
        &dst,
    ];
    let index: Value = serde_json::from_str(&skopeo_ok(&inspect)).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert_empty_dir(&scratch);
}

/// Changes the registry's copy of `src:1`'s arm64 gzip layer with
/// `change`; returns the layer's digest.
fn damage_arm64_layer(
    server: &RegistryServer,
    src: &str,
    change: impl FnOnce(&mut Vec<u8>),
) -> String {
    let host = server.host();
    let index: Value = serde_json::from_str(&inspect_raw(src)).unwrap();
    let arm = format!(
        "docker://{host}/src@{}",
        index["manifests"][1]["digest"].as_str().unwrap()
    );
    let manifest: Value = serde_json::from_str(&inspect_raw(&arm)).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let data = server.blob_data(&layer);
    let mut bytes = read(&data);
    change(&mut bytes);
    std::fs::write(&data, bytes).unwrap();
    layer
}

#[test]
fn a_corrupt_blob_in_the_source_registry_is_an_error_and_pushes_nothing() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    // The arm64 gzip layer, pushed as it is: flip a byte in the registry's copy.
    let layer = damage_arm64_layer(&s.server, &s.src, |bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
    });

    let err = s.convert_fails(&[&s.src, &s.dst]);
    assert!(err.contains(&layer) && err.contains("digest"), "{err}");
    assert_eq!(uploads(&s.server, "dst", 0), 0);
    assert!(!exists(&s.dst));
    assert_empty_dir(&s.scratch);
}

/// A layer the registry serves cut short fails as a corrupt one does:
/// while it streams, before anything is uploaded, spooled or not.
#[test]
fn a_truncated_blob_in_the_source_registry_is_an_error_and_pushes_nothing() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let layer = damage_arm64_layer(&s.server, &s.src, |bytes| bytes.truncate(bytes.len() / 2));
    for memory in ["1GiB", "1"] {
        let err = s.convert_fails(&[&s.src, &s.dst, "--no-cache", "--memory", memory]);
        assert!(err.contains(&layer) && err.contains("mismatch"), "{err}");
        assert_eq!(uploads(&s.server, "dst", 0), 0);
        assert_empty_dir(&s.scratch);
    }
    assert!(!exists(&s.dst));
}

/// Layers that fit --memory never touch the disk: with $TMPDIR missing
/// the conversion still succeeds, and nothing appears there.
#[test]
fn registry_to_registry_within_memory_writes_nothing_to_tmpdir() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let home = s.path("home");
    let missing = s.path("no-such-tmpdir");
    let args = no_tls(&[&s.src, &s.dst, "--json", "--no-cache"]);
    let out = convert_with_tmpdir(&home, &missing, &args);
    assert_exit(&out, 0);
    assert!(!missing.exists(), "{} was created", missing.display());
    let report = json_value(&out.stdout);
    assert_eq!(report["pushed"]["blobs_pushed"], 5, "{report}");
    for layer in report["layers"].as_array().unwrap() {
        assert_eq!(layer["bytes_spooled"], 0, "{layer}");
        assert_eq!(layer["state"], "pushed", "{layer}");
    }
    assert_eq!(pull_and_verify(&s.path("copied"), &s.dst, &[]), 4);
}

/// With a budget too small to hold anything, every converted blob is
/// spooled to $TMPDIR (reported per layer), the image is the same as one
/// converted in memory, and the spool files are gone afterwards; with no
/// $TMPDIR to spool to, that is an error and nothing is pushed.
#[test]
fn registry_to_registry_beyond_memory_spools_to_tmpdir_and_cleans_up() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let spooled = s.image("spooled:1");
    let report = s.convert_json(&[&s.src, &spooled, "--no-cache", "--memory", "1"]);
    assert_empty_dir(&s.scratch);
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{report}");
    for layer in layers {
        assert_eq!(layer["bytes_spooled"], layer["size"], "{layer}");
        assert!(layer["size"].as_u64().unwrap() > 0, "{layer}");
    }

    let again = s.convert_json(&[&s.src, &s.image("in-memory:1"), "--no-cache"]);
    assert_eq!(
        again["pushed"]["digest"], report["pushed"]["digest"],
        "{again}"
    );

    let home = s.path("home");
    let missing = s.path("no-such-tmpdir");
    let nowhere = s.image("nowhere:1");
    let args = no_tls(&[&s.src, &nowhere, "--no-cache", "--memory", "1"]);
    let out = convert_with_tmpdir(&home, &missing, &args);
    assert_exit(&out, 1);
    let err = stderr_of(&out);
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
    assert_eq!(uploads(&s.server, "nowhere", 0), 0);
    assert!(!missing.exists());
}

/// eStargz layers whose annotations a Docker schema 2 copy dropped are
/// recognised in the registry by their footer (range requests, not a
/// download) and kept as they are, annotated again.
#[test]
fn estargz_layers_without_annotations_in_a_registry_are_kept() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let out = convert(&s.scratch, &no_tls(&[&s.src, &s.dst, "--no-cache"]));
    assert_exit(&out, 0);
    let docker = s.image("docker-esgz:1");
    copy_as_docker_schema_2(&s.dst, &docker);
    let again = s.image("again:1");
    let report = s.convert_json(&[&docker, &again, "--no-cache"]);
    assert_empty_dir(&s.scratch);
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{report}");
    for layer in layers {
        assert_eq!(layer["action"], "passed-through", "{layer}");
        assert!(
            layer["reason"].as_str().unwrap().contains("footer"),
            "{layer}"
        );
        assert_eq!(layer["digest"], layer["source_digest"], "{layer}");
        assert!(layer["toc_digest"].is_string(), "{layer}");
    }
    let probes = log_lines(&s.server, 3, |l| {
        l.contains("\"GET /v2/docker-esgz/blobs/") && l.contains(" 206 ")
    });
    assert!(
        probes >= 3,
        "a range request per layer:\n{}",
        s.server.log()
    );
    assert_eq!(pull_and_verify(&s.path("copied"), &again, &[]), 4);
}

#[test]
fn a_docker_schema_2_source_converts() {
    let Some(s) = Setup::start(false) else {
        return;
    };
    let docker = s.image("docker:1");
    copy_as_docker_schema_2(&s.src, &docker);
    let raw = inspect_raw(&docker);
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.list.v2+json"),
        "{raw}"
    );

    let out_dir = s.path("out");
    let out = convert(
        &s.scratch,
        &[&docker, out_dir.to_str().unwrap(), "--src-tls-verify=false"],
    );
    assert_exit(&out, 0);
    assert_eq!(verify_layout(&out_dir), 4);
    assert_empty_dir(&s.scratch);
}

/// One access-log request of `server` from `client` (an IP address):
/// (method, target, status).
fn requests_from(server: &RegistryServer, client: &str) -> Vec<(String, String, u16)> {
    let prefix = format!("{client} - ");
    server
        .log()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let (_, rest) = l.split_once('"')?;
            let (request, after) = rest.split_once('"')?;
            let mut words = request.split(' ');
            let (method, target) = (words.next()?, words.next()?);
            let status = after.split_whitespace().next()?.parse().ok()?;
            Some((method.to_string(), target.to_string(), status))
        })
        .collect()
}

/// The `digest=` of an upload-closing target.
fn digest_param(target: &str) -> Option<&str> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|p| p.strip_prefix("digest="))
}

/// The upload session of a `/v2/REPO/blobs/uploads/UUID…` target.
fn upload_session(target: &str) -> Option<&str> {
    let (_, rest) = target.split_once("/blobs/uploads/")?;
    Some(rest.split('?').next().unwrap_or(rest)).filter(|s| !s.is_empty())
}

/// Every blob (configs and layers) of the image `reference` in
/// `docker://HOST/dst`, through skopeo.
fn image_blobs(host: &str, reference: &str) -> BTreeSet<String> {
    let index: Value = serde_json::from_str(&inspect_raw(reference)).unwrap();
    let mut blobs = BTreeSet::new();
    for manifest in platform_manifests(host, "dst", &index) {
        let layers = manifest["layers"].as_array().unwrap();
        for desc in layers.iter().chain([&manifest["config"]]) {
            blobs.insert(desc["digest"].as_str().unwrap().to_string());
        }
    }
    blobs
}

/// The blobs of `dst` that `requests` HEADed: (found, not found).
fn blob_heads(requests: &[(String, String, u16)]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut present = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for (method, target, status) in requests {
        if let Some(digest) = target.strip_prefix("/v2/dst/blobs/") {
            if method == "HEAD" && status == &200 {
                present.insert(digest.to_string());
            } else if method == "HEAD" && status == &404 {
                missing.insert(digest.to_string());
            }
        }
    }
    (present, missing)
}

/// The direct run's uploads to `dest`: one session per blob of `missing`
/// (a POST, no cross-repository mount, a PUT of its digest) and no more.
fn assert_uploads_exactly(dest: &RegistryServer, missing: &BTreeSet<String>) {
    let direct_ip = "127.0.0.1 - ";
    let upload = |l: &str| l.starts_with(direct_ip) && l.contains(" /v2/dst/blobs/uploads/");
    // Once every expected line is in, wait for one more that must not come.
    let expected = 2 * missing.len();
    assert_eq!(
        log_lines(dest, expected + 1, upload),
        expected,
        "{}",
        dest.log()
    );
    let requests = requests_from(dest, "127.0.0.1");
    let uploads: Vec<_> = requests
        .iter()
        .filter(|(_, t, _)| t.starts_with("/v2/dst/blobs/uploads/"))
        .collect();
    let committed: BTreeMap<&str, &str> = uploads
        .iter()
        .filter(|(m, _, s)| m == "PUT" && *s == 201)
        .filter_map(|(_, t, _)| Some((upload_session(t)?, digest_param(t)?)))
        .collect();
    assert_eq!(
        committed
            .values()
            .map(|d| d.to_string())
            .collect::<BTreeSet<_>>(),
        *missing,
        "uploads of exactly the missing blobs: {uploads:#?}"
    );
    for (method, target, _) in &uploads {
        match method.as_str() {
            "POST" => assert!(!target.contains("mount="), "{target}"),
            "PATCH" | "PUT" => {
                let session = upload_session(target).unwrap_or_default();
                assert!(committed.contains_key(session), "{method} {target}");
            }
            _ => panic!("{method} {target}"),
        }
    }
    let posts = uploads.iter().filter(|(m, _, _)| m == "POST").count();
    assert_eq!(posts, missing.len(), "{uploads:#?}");
}

/// A push cut off after two blob uploads (by a proxy in front of the
/// destination, at a point set by the order of requests, not by time)
/// fails with nothing tagged; the rerun, sent straight to the registry,
/// uploads only the blobs the first run did not, and HEADs the others.
/// The registry's log tells the two runs apart by client address: the
/// proxy connects from 127.0.0.2.
#[test]
fn an_interrupted_push_is_resumed_by_a_rerun() {
    use crate::common::fault_proxy::{FaultProxy, PROXY_SOURCE};
    const PASSED: usize = 2;
    let Some(source) = Setup::start(false) else {
        return;
    };
    let Some(dest) = RegistryServer::start() else {
        return;
    };
    let proxy = FaultProxy::start(&dest.host(), PASSED);
    let via_proxy = format!("docker://{}/dst:1", proxy.host());
    let direct = format!("docker://{}/dst:1", dest.host());

    let err = source.convert_fails(&[&source.src, &via_proxy]);
    assert!(
        err.contains(&proxy.host()) && err.contains("/dst") && !err.contains("panicked"),
        "{err}"
    );
    assert!(proxy.tripped(), "the run ended before the cut: {err}");
    assert_eq!(proxy.uploads_passed(), PASSED);
    assert_empty_dir(&source.scratch);
    assert!(!exists(&direct), "the tag must not exist");
    drop(proxy);

    let report = source.convert_json(&[&source.src, &direct]);
    assert_empty_dir(&source.scratch);
    let all = image_blobs(&dest.host(), &direct);
    assert_eq!(all.len(), 5, "2 configs, 3 layers: {all:?}");

    // The rerun's requests: every blob HEADed; uploads for the missing.
    let direct_ip = "127.0.0.1 - ";
    let blob_head =
        |l: &str| l.starts_with(direct_ip) && l.contains("\"HEAD /v2/dst/blobs/sha256:");
    log_lines(&dest, all.len(), blob_head);
    let requests = requests_from(&dest, "127.0.0.1");
    let (present, missing) = blob_heads(&requests);
    assert!(present.is_disjoint(&missing), "{requests:#?}");
    assert_eq!(
        present.union(&missing).cloned().collect::<BTreeSet<_>>(),
        all,
        "a HEAD of every blob: {requests:#?}"
    );
    assert!(
        (1..=PASSED).contains(&present.len()),
        "what the first run uploaded (at most the {PASSED} the proxy passed): {present:?}"
    );
    assert_eq!(report["pushed"]["blobs_pushed"], missing.len(), "{report}");
    assert_eq!(
        report["pushed"]["blobs_existing"],
        present.len(),
        "{report}"
    );

    assert_uploads_exactly(&dest, &missing);

    // The first run's uploads came through the proxy; it pushed no
    // manifest.
    let proxied = format!("{PROXY_SOURCE} - ");
    let first_put = |l: &str| {
        l.starts_with(&proxied)
            && l.contains("\"PUT /v2/dst/blobs/uploads/")
            && l.contains("\" 201 ")
    };
    assert!(log_lines(&dest, 1, first_put) >= 1, "{}", dest.log());
    let first_run = requests_from(&dest, &PROXY_SOURCE.to_string());
    assert!(
        !first_run
            .iter()
            .any(|(m, t, _)| m == "PUT" && t.contains("/manifests/")),
        "{first_run:#?}"
    );
    assert_eq!(pull_and_verify(&source.path("copied"), &direct, &[]), 4);
}
