//! End-to-end tests of the reading commands of the `estargz` binary:
//! `verify`, `unpack`, `ls`, `cat` and `info`. Every test runs the real built
//! executable on blobs made by `estargz convert` (or by the reference driver
//! `estargz-ref`) from the fixtures in `testdata`, and checks exit codes,
//! output streams and the files left behind. Expected values are computed
//! here (from the input tar, GNU tar or the convert report), never hard-coded.

use crate::common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// ---------------------------------------------------------------------------
// Helpers of the reading commands' tests (the shared ones are in `common`)
// ---------------------------------------------------------------------------

/// Stdout lines of a successful run.
fn lines(out: &Output) -> Vec<String> {
    stdout_of(out).lines().map(str::to_owned).collect()
}

/// A converted blob and the JSON report `convert --json` gave for it.
struct Converted {
    path: PathBuf,
    report: serde_json::Map<String, Value>,
}

/// Converts `input` to `dir/name` with `convert --json`, asserting success.
fn convert(input: &Path, dir: &Path, name: &str) -> Converted {
    let path = dir.join(name);
    let out = run(convert_args(input, &path, &[OsStr::new("--json")]));
    assert_exit(&out, 0);
    let report = json_object(&out.stdout);
    assert!(path.is_file(), "convert wrote no {}", path.display());
    Converted { path, report }
}

/// Runs the reference driver, asserting success, and returns its stdout.
fn run_reference(args: &[&OsStr]) -> Vec<u8> {
    let out = Command::new(reference_driver())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run estargz-ref");
    assert!(
        out.status.success(),
        "estargz-ref {args:?} failed:\n{}",
        stderr_of(&out)
    );
    out.stdout
}

/// Writes a blob of the sample layer with the reference driver (`mode` is
/// `lossless` or `build`) to `dir/name`; returns its path and the driver's
/// JSON report.
fn reference_blob(mode: &str, dir: &Path, name: &str) -> (PathBuf, serde_json::Map<String, Value>) {
    let path = dir.join(name);
    let input = Path::new(SAMPLE_LAYER);
    let stdout = run_reference(&[OsStr::new(mode), input.as_os_str(), path.as_os_str()]);
    assert!(path.is_file(), "estargz-ref {mode} wrote no blob");
    (path, json_object(&stdout))
}

/// Runs GNU tar with `args` in the UTC time zone, asserting success.
fn gnu_tar(args: &[&OsStr]) -> Output {
    let out = Command::new("tar")
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run GNU tar");
    assert!(
        out.status.success(),
        "tar {args:?} failed:\n{}",
        stderr_of(&out)
    );
    out
}

/// Extracts `tar` into `dir` with GNU tar, keeping permissions.
fn gnu_extract(tar: &Path, dir: &Path) {
    gnu_tar(&[
        OsStr::new("-xpf"),
        tar.as_os_str(),
        OsStr::new("-C"),
        dir.as_os_str(),
    ]);
}

/// The sample layer extracted by GNU tar into a fresh temporary directory.
fn sample_extracted() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    gnu_extract(Path::new(SAMPLE_LAYER), dir.path());
    dir
}

/// What one path of an unpacked tree is.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir { mode: u32, mtime: i64 },
    File { mode: u32, mtime: i64, sha: String },
    Symlink { target: PathBuf },
}

/// Every path under `root` (relative, sorted) with its kind, permissions,
/// mtime (not for symlinks), content digest and symlink target.
fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.file_type().is_symlink() {
                Node::Symlink {
                    target: std::fs::read_link(&path).unwrap(),
                }
            } else if meta.is_dir() {
                walk(root, &path, out);
                Node::Dir {
                    mode,
                    mtime: meta.mtime(),
                }
            } else if meta.is_file() {
                Node::File {
                    mode,
                    mtime: meta.mtime(),
                    sha: sha256_digest(&read(&path)),
                }
            } else {
                panic!("unexpected file type at {}", path.display());
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The sample layer converted to `layer.esgz` in a fresh temporary
/// directory (kept alive by the returned handle).
fn sample_blob() -> (tempfile::TempDir, Converted) {
    let dir = tempfile::tempdir().unwrap();
    let blob = convert(Path::new(SAMPLE_LAYER), dir.path(), "layer.esgz");
    (dir, blob)
}

/// The `.tar` fixtures of `testdata/tars/valid`, sorted.
fn valid_tars() -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(VALID_DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("tar")))
        .collect();
    inputs.sort();
    inputs
}

/// Runs `estargz SUBCOMMAND BLOB EXTRA...`.
fn run_on(subcommand: &str, blob: &Path, extra: &[&str]) -> Output {
    let mut args = vec![OsStr::new(subcommand), blob.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    run(args)
}

/// Runs `estargz verify BLOB --toc-digest DIGEST`.
fn run_verify_digest(blob: &Path, digest: &str) -> Output {
    run_on("verify", blob, &["--toc-digest", digest])
}

/// Runs `estargz unpack BLOB FLAG DEST` (`FLAG` is `-o` or `-C`).
fn run_unpack(blob: &Path, flag: &str, dest: &Path) -> Output {
    run([
        OsStr::new("unpack"),
        blob.as_os_str(),
        OsStr::new(flag),
        dest.as_os_str(),
    ])
}

/// Runs `estargz cat BLOB PATH`.
fn run_cat(blob: &Path, path: &str) -> Output {
    run_on("cat", blob, &[path])
}

/// The `problems` array of a `verify --json` report.
fn problems_of(report: &serde_json::Map<String, Value>) -> &Vec<Value> {
    report
        .get("problems")
        .and_then(Value::as_array)
        .expect("problems missing or not an array")
}

// ---------------------------------------------------------------------------
// A minimal ustar writer, for tars the fixtures do not have
// ---------------------------------------------------------------------------

const TYPE_REG: u8 = b'0';
const TYPE_SYMLINK: u8 = b'2';
const TYPE_DIR: u8 = b'5';

/// Writes `value` as a NUL-terminated octal number filling `field`.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    assert_eq!(digits.len(), field.len() - 1, "{value} does not fit");
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()] = 0;
}

/// Appends one ustar entry (header and padded data) to `tar`.
fn ustar_entry(tar: &mut Vec<u8>, name: &str, typeflag: u8, mode: u32, link: &str, data: &[u8]) {
    assert!(name.len() <= 100 && link.len() <= 100, "name too long");
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut h[100..108], mode.into());
    put_octal(&mut h[108..116], 0); // uid
    put_octal(&mut h[116..124], 0); // gid
    put_octal(&mut h[124..136], data.len() as u64);
    put_octal(&mut h[136..148], 1_600_000_000); // mtime
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    tar.extend_from_slice(&h);
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

/// Ends a tar with its two zero blocks.
fn ustar_finish(tar: &mut Vec<u8>) {
    tar.resize(tar.len() + 1024, 0);
}

// ---------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------

#[test]
fn verify_converted_blob_is_ok() {
    let (_dir, blob) = sample_blob();
    let out = run_on("verify", &blob.path, &[]);
    assert_exit(&out, 0);
    let stdout = stdout_of(&out);
    assert!(stdout.starts_with("ok"), "stdout: {stdout}");
    assert!(
        stdout.contains(str_field(&blob.report, "toc_digest")),
        "the ok line does not show the TOC digest: {stdout}"
    );
}

#[test]
fn verify_all_valid_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = valid_tars();
    assert!(inputs.len() >= 10, "fixtures missing: {inputs:?}");
    for input in inputs {
        let name = input.file_name().unwrap().to_str().unwrap();
        let blob = convert(&input, dir.path(), &format!("{name}.esgz"));
        let out = run_verify_digest(&blob.path, str_field(&blob.report, "toc_digest"));
        assert_exit_for(&out, 0, format!("{name}: verify"));
    }
}

#[test]
fn verify_toc_digest_option() {
    let (_dir, blob) = sample_blob();
    let right = str_field(&blob.report, "toc_digest").to_owned();
    assert_eq!(right, sha256_digest(&toc_json(&read(&blob.path))));

    let out = run_verify_digest(&blob.path, &right);
    assert_exit(&out, 0);
    assert!(stdout_of(&out).starts_with("ok"));

    // Well-formed but wrong: the last hex digit changed.
    let mut wrong = right.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    let out = run_verify_digest(&blob.path, &wrong);
    assert_exit(&out, 1);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("TOC digest"), "stderr: {stderr}");
    assert!(
        stderr.contains(&wrong),
        "stderr does not name {wrong}: {stderr}"
    );
    assert!(
        !stdout_of(&out).starts_with("ok"),
        "an invalid blob was reported ok"
    );
}

#[test]
fn verify_malformed_toc_digest_is_usage_error() {
    let (_dir, blob) = sample_blob();
    let right = str_field(&blob.report, "toc_digest").to_owned();
    let hex = right.strip_prefix("sha256:").unwrap();
    let bad = [
        "nonsense".to_owned(),
        "sha256:abc".to_owned(),
        hex.to_owned(),
        format!("sha256:{}", &hex[1..]),
        format!("sha256:{hex}0"),
        format!("sha256:{}g", &hex[1..]),
        format!("md5:{hex}"),
    ];
    for digest in &bad {
        let out = run_verify_digest(&blob.path, digest);
        assert_exit_for(&out, 2, format!("{digest:?}"));
        assert!(out.stdout.is_empty(), "{digest:?}: stdout written");
        assert!(!out.stderr.is_empty(), "{digest:?}: no message");
    }
}

#[test]
fn verify_json_report() {
    let (_dir, blob) = sample_blob();

    let out = run_on("verify", &blob.path, &["--json"]);
    assert_exit(&out, 0);
    let report = json_object(&out.stdout);
    assert_eq!(report.get("valid"), Some(&Value::Bool(true)));
    let problems = problems_of(&report);
    assert!(problems.is_empty(), "problems: {problems:?}");
    assert_eq!(
        str_field(&report, "toc_digest"),
        str_field(&blob.report, "toc_digest")
    );
    assert_eq!(
        u64_field(&report, "toc_offset"),
        u64_field(&blob.report, "toc_offset")
    );

    // A wrong TOC digest: still one JSON object, now invalid.
    let wrong = sha256_digest(b"not the TOC");
    let problems = verify_problems(&blob.path, &["--toc-digest", &wrong]);
    assert!(
        problems.iter().any(|p| p
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("TOC digest"))),
        "no problem mentions the TOC digest: {problems:?}"
    );
}

#[test]
fn verify_json_says_what_the_library_reports() {
    use estargz_core::{verify, VerifyOptions};
    let (dir, blob) = sample_blob();
    let mut bytes = read(&blob.path);
    let n = bytes.len();
    bytes[n / 3 + n / 15] ^= 0xff;
    let corrupt = dir.path().join("corrupt.esgz");
    std::fs::write(&corrupt, &bytes).unwrap();

    let wrong = sha256_digest(b"not the TOC");
    for extra in [&[][..], &["--toc-digest", &wrong]] {
        let out = run_on("verify", &corrupt, &[&["--json"], extra].concat());
        assert_exit(&out, 1);
        let cli = json_object(&out.stdout);
        let library = verify(&bytes[..], &{
            let mut o = VerifyOptions::default();
            o.expected_toc_digest = extra.get(1).map(|d| d.parse().unwrap());
            o
        });
        let Value::Object(mut want) = serde_json::to_value(&library).unwrap() else {
            panic!("the report does not serialize to an object");
        };
        want.insert("blob".into(), Value::from(corrupt.to_str().unwrap()));
        want.insert("valid".into(), Value::Bool(false));
        assert_eq!(cli, want, "{extra:?}");
        // Each problem: a kind to match on, beside where it is.
        for p in problems_of(&cli) {
            assert!(p["kind"].is_string(), "{p}");
            for key in ["entry", "toc_index", "offset", "tar_offset", "message"] {
                assert!(p.get(key).is_some(), "{key} missing: {p}");
            }
        }
        let kinds: Vec<&str> = problems_of(&cli)
            .iter()
            .filter_map(|p| p["kind"].as_str())
            .collect();
        if extra.is_empty() {
            assert!(!kinds.contains(&"toc_digest_mismatch"), "{kinds:?}");
        } else {
            assert!(kinds.contains(&"toc_digest_mismatch"), "{kinds:?}");
        }
    }
}

/// The problems of `verify BLOB --json EXTRA...`, asserting exit code 1 and
/// an invalid report with at least one problem.
#[track_caller]
fn verify_problems(blob: &Path, extra: &[&str]) -> Vec<Value> {
    let out = run_on("verify", blob, &[&["--json"], extra].concat());
    assert_exit(&out, 1);
    let report = json_object(&out.stdout);
    assert_eq!(report.get("valid"), Some(&Value::Bool(false)));
    let problems = problems_of(&report).clone();
    assert!(!problems.is_empty(), "an invalid blob without problems");
    problems
}

#[test]
fn verify_detects_a_flipped_byte_in_file_data() {
    let (dir, blob) = sample_blob();
    let mut bytes = read(&blob.path);

    // The largest regular file's gzip member: from its offset to the next
    // member's (or the TOC's) offset.
    let toc = toc(&bytes);
    let entries = toc["entries"].as_array().unwrap();
    let largest = entries
        .iter()
        .filter(|e| e["type"] == "reg")
        .max_by_key(|e| e["size"].as_u64().unwrap_or(0))
        .unwrap();
    let name = largest["name"].as_str().unwrap().to_owned();
    let start = largest["offset"].as_u64().unwrap() as usize;
    let end = entries
        .iter()
        .filter_map(|e| e["offset"].as_u64())
        .map(|o| o as usize)
        .filter(|&o| o > start)
        .min()
        .unwrap_or_else(|| toc_offset(&bytes));
    assert!(end - start > 100, "member of {name} is too small");
    let at = start + (end - start) / 2;
    bytes[at] ^= 0xff;
    let corrupt = dir.path().join("corrupt.esgz");
    std::fs::write(&corrupt, &bytes).unwrap();

    // Plain verify: exit 1, the problem on stderr, no ok line.
    let out = run_on("verify", &corrupt, &[]);
    assert_exit(&out, 1);
    assert!(!stdout_of(&out).starts_with("ok"));
    assert!(
        stderr_of(&out).contains(&name),
        "stderr does not name {name}: {}",
        stderr_of(&out)
    );

    let problems = verify_problems(&corrupt, &[]);
    assert!(
        problems.iter().any(|p| p["entry"] == name.as_str()
            || p["message"].as_str().is_some_and(|m| m.contains(&name))),
        "no problem names {name}: {problems:?}"
    );

    // cat checks digests: the damaged file fails, another is still readable.
    let out = run_cat(&corrupt, &name);
    assert_exit(&out, 1);
    let out = run_cat(&corrupt, "etc/hostname");
    assert_exit(&out, 0);
    let x = sample_extracted();
    assert!(out.stdout == read(x.path().join("etc/hostname")));
}

#[test]
fn verify_detects_a_flipped_byte_in_the_middle_third() {
    let (dir, blob) = sample_blob();
    let original = read(&blob.path);
    let n = original.len();
    // A few positions across the middle third: every one must be caught.
    for k in 1..=4 {
        let at = n / 3 + k * (n / 3) / 5;
        let mut bytes = original.clone();
        bytes[at] ^= 0xff;
        let corrupt = dir.path().join(format!("corrupt-{at}.esgz"));
        std::fs::write(&corrupt, &bytes).unwrap();
        let out = run_on("verify", &corrupt, &[]);
        assert_exit_for(&out, 1, format!("byte {at} of {n} flipped"));
        verify_problems(&corrupt, &[]);
    }
}

#[test]
fn verify_truncated_blob_fails() {
    let (dir, blob) = sample_blob();
    let bytes = read(&blob.path);
    for keep in [
        bytes.len() - 1,
        bytes.len() - FOOTER_SIZE,
        bytes.len() / 2,
        0,
    ] {
        let truncated = dir.path().join(format!("truncated-{keep}.esgz"));
        std::fs::write(&truncated, &bytes[..keep]).unwrap();
        let out = run_on("verify", &truncated, &[]);
        assert_exit_for(&out, 1, format!("truncated to {keep} bytes"));
        assert!(!stdout_of(&out).starts_with("ok"));
        verify_problems(&truncated, &[]);
    }
}

#[test]
fn verify_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-blob.esgz");
    for json in [false, true] {
        let mut args = vec![OsStr::new("verify"), missing.as_os_str()];
        if json {
            args.push(OsStr::new("--json"));
        }
        let out = run(&args);
        assert_exit(&out, 1);
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains(&*missing.to_string_lossy()),
            "stderr does not name the missing file: {stderr}"
        );
    }
}

#[test]
fn verify_reference_written_blobs() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["lossless", "build"] {
        let (path, ref_report) = reference_blob(mode, dir.path(), mode);
        let toc_digest = str_field(&ref_report, "toc_digest");
        let out = run_verify_digest(&path, toc_digest);
        assert!(
            out.status.code() == Some(0) && stdout_of(&out).starts_with("ok"),
            "{mode}: verify of the reference blob failed:\n{}",
            stderr_of(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// unpack -o: the tar stream
// ---------------------------------------------------------------------------

#[test]
fn unpack_to_tar_is_lossless() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = valid_tars();
    inputs.push(PathBuf::from(SAMPLE_LAYER));
    for input in inputs {
        let name = input.file_name().unwrap().to_str().unwrap();
        let blob = convert(&input, dir.path(), &format!("{name}.esgz"));
        let tar_out = dir.path().join(format!("{name}.out.tar"));
        let out = run_unpack(&blob.path, "-o", &tar_out);
        assert_exit_for(&out, 0, format!("{name}: unpack"));
        assert!(
            read(&tar_out) == read(&input),
            "{name}: unpack -o is not the input tar byte for byte"
        );
    }
}

#[test]
fn unpack_to_stdout_matches_file() {
    let (dir, blob) = sample_blob();
    let out = run_unpack(&blob.path, "-o", Path::new("-"));
    assert_exit(&out, 0);
    assert!(
        out.stdout == read(SAMPLE_LAYER),
        "unpack -o - is not the input tar byte for byte ({} bytes)",
        out.stdout.len()
    );
    assert_eq!(
        dir_listing(dir.path()),
        ["layer.esgz"],
        "files left behind by -o -"
    );
}

#[test]
fn unpack_reference_blobs_to_tar() {
    let dir = tempfile::tempdir().unwrap();
    // Lossless: the input, byte for byte.
    let (lossless, _) = reference_blob("lossless", dir.path(), "ll");
    let tar_out = dir.path().join("ll.tar");
    let out = run_unpack(&lossless, "-o", &tar_out);
    assert_exit(&out, 0);
    assert!(read(&tar_out) == read(SAMPLE_LAYER));

    // Build (re-tarred): what the reference's own unpack gives.
    let (built, _) = reference_blob("build", dir.path(), "b");
    let ours = dir.path().join("b.ours.tar");
    let theirs = dir.path().join("b.ref.tar");
    let out = run_unpack(&built, "-o", &ours);
    assert_exit(&out, 0);
    run_reference(&[OsStr::new("unpack"), built.as_os_str(), theirs.as_os_str()]);
    assert!(
        read(&ours) == read(&theirs),
        "unpack -o of a reference `build` blob differs from estargz-ref unpack"
    );
}

#[test]
fn unpack_needs_exactly_one_destination() {
    let (dir, blob) = sample_blob();
    let tar_out = dir.path().join("out.tar");
    let dest = dir.path().join("dest");

    let out = run([
        OsStr::new("unpack"),
        blob.path.as_os_str(),
        OsStr::new("-o"),
        tar_out.as_os_str(),
        OsStr::new("-C"),
        dest.as_os_str(),
    ]);
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty());
    assert!(!out.stderr.is_empty(), "no message for -o with -C");

    let out = run_on("unpack", &blob.path, &[]);
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty());
    assert!(!out.stderr.is_empty(), "no message without -o or -C");

    assert_eq!(dir_listing(dir.path()), ["layer.esgz"], "output written");
}

// ---------------------------------------------------------------------------
// unpack -C: into a directory
// ---------------------------------------------------------------------------

#[test]
fn unpack_to_dir_matches_gnu_tar() {
    let (dir, blob) = sample_blob();
    let ours = dir.path().join("ours");
    let out = run_unpack(&blob.path, "-C", &ours);
    assert_exit(&out, 0);
    let theirs = sample_extracted();

    let (ours_tree, theirs_tree) = (tree(&ours), tree(theirs.path()));
    assert!(theirs_tree.len() > 20, "GNU tar extracted too little");
    let ours_names: Vec<&String> = ours_tree.keys().collect();
    let theirs_names: Vec<&String> = theirs_tree.keys().collect();
    assert_eq!(ours_names, theirs_names, "different file lists");
    for (name, node) in &theirs_tree {
        assert_eq!(&ours_tree[name], node, "{name} differs");
    }

    // The hardlink is a hardlink.
    let ino = |root: &Path, p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
    assert_eq!(
        ino(theirs.path(), "usr/bin/pydoc"),
        ino(theirs.path(), "usr/bin/pydoc3"),
        "fixture changed: usr/bin/pydoc3 should be a hardlink"
    );
    assert_eq!(
        ino(&ours, "usr/bin/pydoc"),
        ino(&ours, "usr/bin/pydoc3"),
        "usr/bin/pydoc3 is not a hardlink of usr/bin/pydoc"
    );
}

#[test]
fn unpack_reference_blobs_to_dir() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = sample_extracted();
    let expected = tree(theirs.path());
    for mode in ["lossless", "build"] {
        let (path, _) = reference_blob(mode, dir.path(), mode);
        let dest = dir.path().join(format!("{mode}.d"));
        let out = run_unpack(&path, "-C", &dest);
        assert_exit(&out, 0);
        // The landmark the reference adds is skipped; the rest is the layer.
        let got = tree(&dest);
        let got_names: Vec<&String> = got.keys().collect();
        let expected_names: Vec<&String> = expected.keys().collect();
        assert_eq!(got_names, expected_names, "{mode}: different file lists");
        for (name, node) in &expected {
            match (node, &got[name]) {
                // Contents and targets must match; `build` may re-encode times.
                (Node::File { sha: a, .. }, Node::File { sha: b, .. }) => {
                    assert_eq!(a, b, "{mode}: {name} content")
                }
                (a, b) => assert_eq!(
                    std::mem::discriminant(a),
                    std::mem::discriminant(b),
                    "{mode}: {name} kind"
                ),
            }
            if let Node::Symlink { .. } = node {
                assert_eq!(node, &got[name], "{mode}: {name} target");
            }
        }
    }
}

/// Builds a tar with a symlink `link -> link_target` followed by a regular
/// file `link/<through>`, converts it, and unpacks it with -C into a fresh
/// directory: it must fail, and nothing may appear at `outside` (where the
/// file would land if the symlink were followed) or next to the directory.
fn unpack_symlink_escape(link_target: &str, through: &str, outside: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let mut tar = Vec::new();
    ustar_entry(&mut tar, "link", TYPE_SYMLINK, 0o777, link_target, b"");
    ustar_entry(
        &mut tar,
        &format!("link/{through}"),
        TYPE_REG,
        0o644,
        "",
        b"escaped\n",
    );
    ustar_finish(&mut tar);
    let tar_path = dir.path().join("evil.tar");
    std::fs::write(&tar_path, &tar).unwrap();

    // The tar itself is well-formed: GNU tar lists it.
    let listed = gnu_tar(&[OsStr::new("-tf"), tar_path.as_os_str()]);
    assert_eq!(
        stdout_of(&listed),
        format!("link\nlink/{through}\n"),
        "the hand-made tar is not what GNU tar sees"
    );

    // Readers refuse its TOC (a file under a symlink), so convert does too
    // unless told; other writers make such blobs, and unpack must be safe.
    let blob = dir.path().join("evil.esgz");
    assert_exit(&run(convert_args(&tar_path, &blob, &[])), 1);
    let no_check = [OsStr::new("--no-open-check")];
    assert_exit(&run(convert_args(&tar_path, &blob, &no_check)), 0);
    let dest = dir.path().join("dest");
    let _ = std::fs::remove_file(outside);
    let out = run_unpack(&blob, "-C", &dest);
    let escaped = std::fs::symlink_metadata(outside).is_ok();
    let _ = std::fs::remove_file(outside);
    assert!(
        !escaped,
        "unpack wrote {} outside the target directory",
        outside.display()
    );
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("symlink"),
        "stderr does not say why: {}",
        stderr_of(&out)
    );
    assert_eq!(
        dir_listing(dir.path()),
        ["dest", "evil.esgz", "evil.tar"],
        "files created next to the target directory"
    );
    // Inside the target, nothing but the symlink itself.
    for rel in dir_listing(&dest) {
        assert_eq!(rel, "link", "unexpected entry in the target directory");
        let meta = std::fs::symlink_metadata(dest.join("link")).unwrap();
        assert!(meta.file_type().is_symlink(), "link is not a symlink");
    }
}

#[test]
fn unpack_to_dir_refuses_to_write_through_symlink_to_root() {
    // A symlink to /, and a file under it whose path from / ends in a
    // directory of this test's own: followed, the link would land the file
    // there, not in a directory others use.
    let outside_dir = tempfile::tempdir().unwrap();
    let outside_dir_path = outside_dir.path().canonicalize().unwrap();
    let outside = outside_dir_path.join("estargz-evil-root");
    let through = outside.strip_prefix("/").unwrap().to_str().unwrap();
    unpack_symlink_escape("/", through, &outside);
    assert!(dir_listing(&outside_dir_path).is_empty());
}

#[test]
fn unpack_to_dir_refuses_to_write_through_symlink_outside() {
    // A symlink to a directory outside, given as an absolute path.
    let outside_dir = tempfile::tempdir().unwrap();
    let name = format!("estargz-evil-{}-abs", std::process::id());
    let outside = outside_dir.path().join(&name);
    unpack_symlink_escape(outside_dir.path().to_str().unwrap(), &name, &outside);
    assert!(dir_listing(outside_dir.path()).is_empty());
}

#[test]
fn unpack_to_dir_keeps_dotdot_names_inside() {
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let mut tar = Vec::new();
    ustar_entry(&mut tar, "a/", TYPE_DIR, 0o755, "", b"");
    let evil = format!("a/../../estargz-evil-{pid}-dotdot");
    ustar_entry(&mut tar, &evil, TYPE_REG, 0o644, "", b"escaped\n");
    ustar_finish(&mut tar);
    let tar_path = dir.path().join("dotdot.tar");
    std::fs::write(&tar_path, &tar).unwrap();

    let blob_path = dir.path().join("dotdot.esgz");
    let out = run(convert_args(&tar_path, &blob_path, &[]));
    if out.status.code() != Some(0) {
        // Refusing such a name outright is fine too.
        assert_exit(&out, 1);
        return;
    }
    let dest = dir.path().join("sub").join("dest");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let out = run_unpack(&blob_path, "-C", &dest);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "unexpected exit: {:?}",
        out.status
    );
    assert_eq!(
        dir_listing(dir.path()),
        ["dotdot.esgz", "dotdot.tar", "sub"]
    );
    assert_eq!(dir_listing(&dir.path().join("sub")), ["dest"]);
}

// ---------------------------------------------------------------------------
// ls
// ---------------------------------------------------------------------------

#[test]
fn ls_names_match_gnu_tar() {
    let (_dir, blob) = sample_blob();
    let out = run_on("ls", &blob.path, &[]);
    assert_exit(&out, 0);
    let expected = gnu_tar(&[OsStr::new("-tf"), OsStr::new(SAMPLE_LAYER)]);
    let (ours, theirs) = (lines(&out), lines(&expected));
    assert!(theirs.len() > 20, "GNU tar listed too little");
    assert_eq!(ours, theirs, "ls differs from tar -tf");
}

#[test]
fn ls_long_matches_gnu_tar_verbose() {
    let (_dir, blob) = sample_blob();
    let out = run([OsStr::new("ls"), OsStr::new("-l"), blob.path.as_os_str()]);
    assert_exit(&out, 0);
    let expected = gnu_tar(&[
        OsStr::new("--numeric-owner"),
        OsStr::new("-tvf"),
        OsStr::new(SAMPLE_LAYER),
    ]);
    let (ours, theirs) = (lines(&out), lines(&expected));
    assert_eq!(ours.len(), theirs.len(), "ls -l:\n{}", ours.join("\n"));

    let mode_re = |s: &str| {
        s.len() == 10
            && "-dlhcbp".contains(&s[..1])
            && s[1..]
                .chars()
                .zip("rwxrwxrwx".chars())
                .all(|(c, bit)| c == '-' || c == bit || "sStT".contains(c))
    };
    let mut symlinks = 0;
    for (o, t) in ours.iter().zip(&theirs) {
        // ours: MODE OWNER SIZE TIME NAME [-> TARGET | link to TARGET]
        // tar:  MODE OWNER SIZE DATE HH:MM NAME [...]
        let of: Vec<&str> = o.split_whitespace().collect();
        let tf: Vec<&str> = t.split_whitespace().collect();
        assert!(mode_re(of[0]), "bad mode string in {o:?}");
        assert_eq!(of[0], tf[0], "mode: {o:?} vs {t:?}");
        assert_eq!(of[1], tf[1], "owner: {o:?} vs {t:?}");
        assert_eq!(of[2], tf[2], "size: {o:?} vs {t:?}");
        assert!(
            of[3].starts_with(&format!("{}T{}", tf[3], tf[4])),
            "time: {o:?} vs {t:?}"
        );
        assert_eq!(of[4..], tf[5..], "name and link: {o:?} vs {t:?}");
        if of[0].starts_with('l') {
            symlinks += 1;
            assert!(o.contains(" -> "), "symlink without target: {o:?}");
        }
    }
    assert!(symlinks >= 2, "the fixture should hold symlinks");
    assert!(ours.iter().any(|l| l.starts_with("-rw-r--r--")));
    assert!(ours.iter().any(|l| l.starts_with("drwxr-xr-x")));
}

#[test]
fn ls_json_lists_every_entry() {
    let (_dir, blob) = sample_blob();
    let names = lines(&run_on("ls", &blob.path, &[]));
    let out = run([
        OsStr::new("ls"),
        OsStr::new("--json"),
        blob.path.as_os_str(),
    ]);
    assert_exit(&out, 0);
    let list = match json_value(&out.stdout) {
        Value::Array(list) => list,
        other => panic!("ls --json is not an array: {other}"),
    };
    assert_eq!(list.len(), names.len());

    // Sizes and types from GNU tar's verbose listing.
    let verbose = gnu_tar(&[OsStr::new("-tvf"), OsStr::new(SAMPLE_LAYER)]);
    for ((entry, name), t) in list.iter().zip(&names).zip(lines(&verbose)) {
        let obj = entry.as_object().expect("entry is not an object");
        assert_eq!(str_field(obj, "name"), name);
        let tf: Vec<&str> = t.split_whitespace().collect();
        let expected_type = match &tf[0][..1] {
            "-" => "reg",
            "d" => "dir",
            "l" => "symlink",
            "h" => "hardlink",
            other => panic!("unexpected type {other} in {t:?}"),
        };
        assert_eq!(str_field(obj, "type"), expected_type, "{name}");
        let size: u64 = tf[2].parse().unwrap();
        assert_eq!(u64_field(obj, "size"), size, "{name}");
        if expected_type == "symlink" {
            assert_eq!(str_field(obj, "link"), *tf.last().unwrap(), "{name}");
        }
    }
}

#[test]
fn ls_reference_blob_lists_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = reference_blob("lossless", dir.path(), "ll");
    let out = run_on("ls", &path, &[]);
    assert_exit(&out, 0);
    let expected = gnu_tar(&[OsStr::new("-tf"), OsStr::new(SAMPLE_LAYER)]);
    let ours: Vec<String> = lines(&out)
        .into_iter()
        .filter(|n| !n.ends_with("prefetch.landmark"))
        .collect();
    assert_eq!(ours, lines(&expected));
}

#[test]
fn ls_of_non_blob_fails() {
    let out = run(["ls", SAMPLE_LAYER]);
    assert_exit(&out, 1);
    assert!(out.stdout.is_empty());
    assert!(stderr_of(&out).contains(SAMPLE_LAYER));
}

// ---------------------------------------------------------------------------
// cat
// ---------------------------------------------------------------------------

/// The regular files of a GNU tar extraction, as (relative path, size).
fn regular_files(root: &Path) -> Vec<(String, u64)> {
    tree(root)
        .into_iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(p, _)| {
            let size = std::fs::metadata(root.join(&p)).unwrap().len();
            (p, size)
        })
        .collect()
}

#[test]
fn cat_matches_gnu_tar_extraction() {
    let (dir, blob) = sample_blob();
    let x = sample_extracted();
    let files = regular_files(x.path());
    let largest = files.iter().max_by_key(|(_, s)| *s).unwrap().0.clone();
    let smallest = files
        .iter()
        .filter(|(_, s)| *s > 0)
        .min_by_key(|(_, s)| *s)
        .unwrap()
        .0
        .clone();
    let empty = files.iter().find(|(_, s)| *s == 0).map(|(p, _)| p.clone());

    let mut paths = vec![largest, smallest, "usr/bin/pydoc3".to_owned()];
    paths.extend(empty);
    for p in &paths {
        let out = run_cat(&blob.path, p);
        assert_exit(&out, 0);
        assert!(
            out.stdout == read(x.path().join(p)),
            "cat {p}: {} bytes, not what GNU tar extracted",
            out.stdout.len()
        );
    }

    // Every file, through a reference-written blob too.
    let (built, _) = reference_blob("build", dir.path(), "b");
    for (p, _) in &files {
        let out = run_cat(&built, p);
        assert_exit(&out, 0);
        assert!(
            out.stdout == read(x.path().join(p)),
            "cat {p} of the reference blob differs"
        );
    }
}

#[test]
fn cat_accepts_dot_slash_and_slash_prefixes() {
    let (_dir, blob) = sample_blob();
    let x = sample_extracted();
    let path = "etc/os-release";
    let expected = read(x.path().join(path));
    for spelled in [path.to_owned(), format!("./{path}"), format!("/{path}")] {
        let out = run_cat(&blob.path, &spelled);
        assert_exit(&out, 0);
        assert!(out.stdout == expected, "cat {spelled:?} differs");
    }
}

#[test]
fn cat_missing_path_fails_naming_it() {
    let (_dir, blob) = sample_blob();
    let out = run_cat(&blob.path, "etc/no-such-file");
    assert_exit(&out, 1);
    assert!(out.stdout.is_empty());
    let stderr = stderr_of(&out);
    assert!(stderr.contains("etc/no-such-file"), "stderr: {stderr}");
}

#[test]
fn cat_directory_fails() {
    let (_dir, blob) = sample_blob();
    for p in ["etc", "etc/", "usr/lib/python3.11"] {
        let out = run_cat(&blob.path, p);
        assert_exit(&out, 1);
        assert!(out.stdout.is_empty(), "cat {p}: stdout written");
        let stderr = stderr_of(&out);
        assert!(stderr.contains("not a regular file"), "cat {p}: {stderr}");
    }
}

// ---------------------------------------------------------------------------
// info
// ---------------------------------------------------------------------------

#[test]
fn info_json_agrees_with_convert_and_the_file() {
    let (_dir, blob) = sample_blob();
    let bytes = read(&blob.path);

    let out = run_on("info", &blob.path, &["--json"]);
    assert_exit(&out, 0);
    let info = json_object(&out.stdout);
    assert_eq!(str_field(&info, "footer"), "eStargz");
    let toc_digest = str_field(&blob.report, "toc_digest");
    assert_eq!(str_field(&info, "toc_digest"), toc_digest);
    assert_eq!(toc_digest, sha256_digest(&toc_json(&bytes)));
    assert_eq!(str_field(&info, "digest"), sha256_digest(&bytes));
    assert_eq!(u64_field(&info, "size"), bytes.len() as u64);
    assert_eq!(u64_field(&info, "toc_offset"), toc_offset(&bytes) as u64);
    for key in ["digest", "diff_id"] {
        assert_eq!(str_field(&info, key), str_field(&blob.report, key), "{key}");
    }
    assert_eq!(
        u64_field(&info, "uncompressed_size"),
        u64_field(&blob.report, "uncompressed_size")
    );
    assert_eq!(
        u64_field(&info, "entries"),
        toc(&bytes)["entries"].as_array().unwrap().len() as u64
    );

    let annotations = info
        .get("annotations")
        .and_then(Value::as_object)
        .expect("annotations missing or not an object");
    assert_eq!(annotations.len(), 2, "annotations: {annotations:?}");
    assert_eq!(str_field(annotations, TOC_DIGEST_ANNOTATION), toc_digest);
    assert_eq!(
        str_field(annotations, UNCOMPRESSED_SIZE_ANNOTATION),
        u64_field(&blob.report, "uncompressed_size").to_string()
    );
}

#[test]
fn info_plain_output() {
    let (_dir, blob) = sample_blob();
    let out = run_on("info", &blob.path, &[]);
    assert_exit(&out, 0);
    let stdout = stdout_of(&out);
    assert!(stdout.contains("annotations"), "stdout: {stdout}");
    for key in ["digest", "diff_id", "toc_digest"] {
        assert!(
            stdout.contains(str_field(&blob.report, key)),
            "no {key} in: {stdout}"
        );
    }
    assert!(stdout.contains(TOC_DIGEST_ANNOTATION), "stdout: {stdout}");
    assert!(
        stdout.contains(UNCOMPRESSED_SIZE_ANNOTATION),
        "stdout: {stdout}"
    );
}

#[test]
fn info_of_reference_blob_agrees_with_reference() {
    let dir = tempfile::tempdir().unwrap();
    for mode in ["lossless", "build"] {
        let (path, ref_report) = reference_blob(mode, dir.path(), mode);
        let bytes = read(&path);
        let out = run_on("info", &path, &["--json"]);
        assert_exit(&out, 0);
        let info = json_object(&out.stdout);
        assert_eq!(str_field(&info, "footer"), "eStargz", "{mode}");
        assert_eq!(
            str_field(&info, "toc_digest"),
            str_field(&ref_report, "toc_digest"),
            "{mode}"
        );
        assert_eq!(
            str_field(&info, "diff_id"),
            str_field(&ref_report, "diff_id"),
            "{mode}"
        );
        assert_eq!(
            str_field(&info, "digest"),
            str_field(&ref_report, "compressed_digest"),
            "{mode}"
        );
        assert_eq!(str_field(&info, "digest"), sha256_digest(&bytes), "{mode}");
        assert_eq!(
            u64_field(&info, "size"),
            u64_field(&ref_report, "compressed_size"),
            "{mode}"
        );
    }
}

// ---------------------------------------------------------------------------
// Usage errors
// ---------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["verify"],
        &["no-such-subcommand"],
        &[],
        &["ls"],
        &["cat", SAMPLE_LAYER],
        &["info"],
        &["unpack"],
        &["verify", SAMPLE_LAYER, "--no-such-flag"],
    ];
    for args in cases {
        let out = run(*args);
        assert_exit_for(&out, 2, format!("{args:?}"));
        assert!(!out.stderr.is_empty(), "{args:?}: no message on stderr");
        assert!(out.stdout.is_empty(), "{args:?}: stdout written");
    }
}

/// A blob changed while `unpack` reads it: exit 1 naming it, whatever was
/// already written. The run is held mid-way by not reading its stdout.
#[test]
fn unpack_of_a_blob_changed_underneath_fails() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("layer.tar");
    std::fs::write(&input, common::lcg_tar(&[("big", 16 << 20)], false)).unwrap();
    let blob = convert(&input, dir.path(), "layer.esgz").path;
    let mut child = estargz([OsStr::new("unpack"), blob.as_os_str()])
        .args(["-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Output has come, so the blob was opened; the run then blocks on the
    // full pipe, megabytes before the blob's end.
    let mut head = [0u8; 512];
    stdout.read_exact(&mut head).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&blob)
        .unwrap()
        .write_all(b"appended")
        .unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 1);
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "{} changed while it was being read",
            blob.display()
        )),
        "{err}"
    );
}
