//! Helpers shared by the end-to-end tests of the `estargz` binary
//! (`cli.rs` and `cli_read.rs`): running the built executable, checking its
//! exit code and output, reading eStargz blobs and their JSON reports.

pub use estargz_test_support::{containerd, fault_proxy, nginx, noise, registry, stargz};

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const SAMPLE_LAYER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/sample-layer.tar");
pub const VALID_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tars/valid");

pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";
pub const UNCOMPRESSED_SIZE_ANNOTATION: &str = "io.containers.estargz.uncompressed-size";

/// A command for the built binary with the given arguments, stdin closed,
/// and the default conversion cache under target/tmp rather than the
/// user's: tests that mean to use a cache say `--cache DIR`.
pub fn estargz<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_estargz"));
    cmd.args(args).stdin(Stdio::null()).env(
        "XDG_CACHE_HOME",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/xdg-cache"),
    );
    cmd
}

/// Runs the binary with `args` (stdin closed) and captures stdout and stderr.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    estargz(args)
        .output()
        .expect("cannot run the estargz binary")
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, showing stdout and stderr when it is not the
/// expected one.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit code {code}; stdout:\n{}\nstderr:\n{}",
        stdout_of(out),
        stderr_of(out)
    );
}

/// [`assert_exit`] for one case of a loop: the message starts with `what`.
#[track_caller]
pub fn assert_exit_for(out: &Output, code: i32, what: impl Display) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit code {code}; stdout:\n{}\nstderr:\n{}",
        stdout_of(out),
        stderr_of(out)
    );
}

/// Runs `cmd`, asserting that it exits 0 (its stderr in the message).
#[track_caller]
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `estargz-ref ARGS`, asserted to succeed.
#[track_caller]
pub fn reference_ok<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    output_ok(Command::new(reference_driver()).args(args))
}

/// Asserts that `estargz verify --toc-digest TOC_DIGEST BLOB` accepts the
/// blob at `path`.
#[track_caller]
pub fn assert_verifies(path: &Path, toc_digest: &str) {
    let out = run([
        OsStr::new("verify"),
        OsStr::new("--toc-digest"),
        OsStr::new(toc_digest),
        path.as_os_str(),
    ]);
    assert_exit(&out, 0);
}

/// Whether an executable file `name` is in a directory of `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

pub fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `sha256:<lower-case hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Names of the entries of `dir`, sorted.
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// JSON output
// ---------------------------------------------------------------------------

/// Parses stdout as exactly one JSON value (trailing non-whitespace fails).
pub fn json_value(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not exactly one JSON value ({e}):\n{}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// Parses stdout as exactly one JSON object.
pub fn json_object(stdout: &[u8]) -> serde_json::Map<String, Value> {
    match json_value(stdout) {
        Value::Object(map) => map,
        other => panic!("stdout is JSON but not an object: {other}"),
    }
}

pub fn str_field<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("JSON key {key:?} missing or not a string"))
}

pub fn u64_field(obj: &serde_json::Map<String, Value>, key: &str) -> u64 {
    obj.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("JSON key {key:?} missing or not an unsigned integer"))
}

// ---------------------------------------------------------------------------
// eStargz blobs
// ---------------------------------------------------------------------------

/// The footer and TOC as the spec describes them, parsed independently of
/// estargz-core.
pub use estargz_test_support::spec::{toc_json, toc_offset, FOOTER_SIZE};

/// The TOC of an eStargz blob, parsed.
pub fn toc(blob: &[u8]) -> Value {
    serde_json::from_slice(&toc_json(blob)).expect("TOC is not JSON")
}

/// The arguments of `convert INPUT -o OUTPUT EXTRA...`.
pub fn convert_args<'a>(input: &'a Path, output: &'a Path, extra: &[&'a OsStr]) -> Vec<&'a OsStr> {
    let mut args = vec![
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("-o"),
        output.as_os_str(),
    ];
    args.extend_from_slice(extra);
    args
}

pub use estargz_test_support::reference_driver;

/// A ustar tar of `files` (name, size), their data from one linear
/// congruential generator: text-like bytes, which are slow to compress at
/// level 12 (so a run lasts seconds, long enough to change its input), or
/// raw ones. The same arguments give the same bytes.
pub fn lcg_tar(files: &[(&str, usize)], text_like: bool) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut state = 12345u32;
    for (name, size) in files {
        let data: Vec<u8> = (0..*size)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if text_like {
                    b"abcdefgh ijklmnop\n"[(state >> 16) as usize % 18]
                } else {
                    (state >> 16) as u8
                }
            })
            .collect();
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, &data[..]).unwrap();
    }
    tar.into_inner().unwrap()
}

/// Appends a regular file `name` holding `data` to `tar`: ustar, mode
/// 0644, a fixed mtime (the same arguments give the same bytes).
pub fn append_file(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    tar.append_data(&mut h, name, data).unwrap();
}

/// Starts an OCI layout at `dir`: the blobs directory and `oci-layout`.
pub fn init_layout(dir: &Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Where the layout at `dir` keeps the blob `digest` (`sha256:...`).
pub fn layout_blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Stores `bytes` in the layout's blobs; its descriptor.
pub fn put_blob(dir: &Path, bytes: &[u8], media_type: &str) -> Value {
    let digest = sha256_digest(bytes);
    std::fs::write(layout_blob_path(dir, &digest), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

/// Writes the layout's `index.json` naming the one descriptor `root`.
pub fn write_layout_index(dir: &Path, root: Value) {
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [root]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}
