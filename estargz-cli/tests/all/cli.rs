//! End-to-end tests of the `estargz` binary: every test runs the real built
//! executable and checks its exit code, its output streams and the files it
//! leaves behind. Expected digests are computed here, never hard-coded.

use crate::common;

use common::*;
use flate2::read::MultiGzDecoder;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

// ---------------------------------------------------------------------------
// Helpers of the convert and digest tests (the shared ones are in `common`)
// ---------------------------------------------------------------------------

const INVALID_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tars/invalid");
const SPARSE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tars/sparse");

const MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Runs the binary with `args`, feeding `input` on stdin (from another
/// thread, so a large stdout cannot deadlock the pipe).
fn run_with_stdin<I, S>(args: I, input: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = estargz(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the estargz binary");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            // The child may legitimately stop reading early; ignore EPIPE.
            let _ = stdin.write_all(input);
        });
        child.wait_with_output().expect("cannot wait for estargz")
    })
}

/// All gzip members of `bytes` decompressed and concatenated.
fn gunzip_all(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("output is not valid gzip");
    out
}

/// Number of gzip members in `bytes`, decoding them one after another.
fn gzip_member_count(mut rest: &[u8]) -> usize {
    let mut count = 0;
    while !rest.is_empty() {
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut decoder, &mut std::io::sink())
            .unwrap_or_else(|e| panic!("gzip member {count} is invalid: {e}"));
        rest = decoder.into_inner();
        count += 1;
    }
    count
}

/// The layer's tar stream: the gzip members before the TOC, decompressed.
/// (The TOC itself records compressed offsets, so it differs between levels
/// and chunk sizes even when the layer content is the same.)
fn tar_before_toc(blob: &[u8]) -> Vec<u8> {
    gunzip_all(&blob[..toc_offset(blob)])
}

/// Copies `src` into `dir` under `name` and returns the new path.
fn copy_into(src: impl AsRef<Path>, dir: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(src.as_ref(), &dst).expect("cannot copy fixture");
    dst
}

/// Converts `input` to `dir/name` with extra `args`, asserting success, and
/// returns the output bytes.
fn convert_to_file(input: &Path, dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out_path = dir.join(name);
    let extra: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let out = run(convert_args(input, &out_path, &extra));
    assert_exit(&out, 0);
    read(out_path)
}

/// All malformed and sparse fixtures the converter must refuse.
fn rejected_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [INVALID_DIR, SPARSE_DIR]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 20, "fixtures missing: {files:?}");
    files
}

/// Checks the error message printed for a refused fixture.
#[track_caller]
fn assert_refusal_message(out: &Output, input: &Path) {
    let stderr = stderr_of(out);
    let lower = stderr.to_lowercase();
    assert!(lower.contains("error"), "no \"error\" in: {stderr}");
    let is_empty_fixture = input.file_name() == Some(OsStr::new("empty-file.tar"));
    if is_empty_fixture {
        assert!(lower.contains("empty"), "no \"empty\" in: {stderr}");
    } else {
        assert!(lower.contains("byte"), "no byte offset in: {stderr}");
    }
    assert!(
        stderr.contains(&*input.to_string_lossy()),
        "stderr does not name {}: {stderr}",
        input.display()
    );
}

// ---------------------------------------------------------------------------
// convert: the JSON report and the blob it describes
// ---------------------------------------------------------------------------

#[test]
fn convert_json_report_matches_the_written_blob() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("layer.esgz");
    let input = read(SAMPLE_LAYER);

    let out = run([
        OsStr::new("convert"),
        OsStr::new(SAMPLE_LAYER),
        OsStr::new("-o"),
        out_path.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_exit(&out, 0);
    let report = json_object(&out.stdout);
    let blob = read(&out_path);

    // Blob digest and size.
    assert_eq!(str_field(&report, "media_type"), MEDIA_TYPE);
    assert_eq!(str_field(&report, "digest"), sha256_digest(&blob));
    assert_eq!(u64_field(&report, "size"), blob.len() as u64);

    // diffID and uncompressed size: the whole decompressed blob.
    let tar = gunzip_all(&blob);
    assert_eq!(str_field(&report, "diff_id"), sha256_digest(&tar));
    assert_eq!(u64_field(&report, "uncompressed_size"), tar.len() as u64);
    assert!(
        tar.starts_with(&input),
        "the decompressed blob does not start with the input tar"
    );
    assert!(
        tar_before_toc(&blob) == input,
        "the members before the TOC do not decompress to exactly the input tar"
    );

    // TOC digest: sha256 of the JSON inside the TOC member.
    let toc = toc_json(&blob);
    let toc_digest = str_field(&report, "toc_digest");
    assert_eq!(toc_digest, sha256_digest(&toc));
    let toc_value: Value = serde_json::from_slice(&toc).expect("TOC is not JSON");
    assert!(toc_value.get("entries").is_some(), "TOC has no entries");

    // Annotations.
    let annotations = report
        .get("annotations")
        .and_then(Value::as_object)
        .expect("annotations missing or not an object");
    assert_eq!(
        annotations
            .get(TOC_DIGEST_ANNOTATION)
            .and_then(Value::as_str),
        Some(toc_digest)
    );
    assert_eq!(
        annotations
            .get(UNCOMPRESSED_SIZE_ANNOTATION)
            .and_then(Value::as_str),
        Some(tar.len().to_string().as_str())
    );
}

/// The keys of `convert --json`, which scripts read: the report is
/// serialized from the converter's types, and must keep these names.
#[test]
fn convert_json_report_keeps_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "etc/hostname\nnot/there\n").unwrap();
    let keys = |extra: &[&OsStr]| -> (Vec<String>, serde_json::Map<String, Value>) {
        let out_path = dir.path().join("layer.esgz");
        let mut args = vec![
            OsStr::new("convert"),
            OsStr::new(SAMPLE_LAYER),
            OsStr::new("-o"),
            out_path.as_os_str(),
            OsStr::new("--json"),
            OsStr::new("-q"),
        ];
        args.extend_from_slice(extra);
        let out = run(args);
        assert_exit(&out, 0);
        let report = json_object(&out.stdout);
        (report.keys().cloned().collect(), report)
    };
    let common = [
        "annotations",
        "chunk_size",
        "chunks",
        "diff_id",
        "digest",
        "entries",
        "external_toc",
        "files",
        "input",
        "level",
        "lossless",
        "media_type",
        "min_chunk_size",
        "output",
        "size",
        "tar_size",
        "toc_digest",
        "toc_offset",
        "uncompressed_size",
        "warnings",
    ];
    let (plain, report) = keys(&[]);
    assert_eq!(plain, common);
    assert!(report["external_toc"].is_null());
    assert!(report["toc_offset"].is_u64());
    assert_eq!(report["lossless"], true);

    let toc_path = dir.path().join("layer.toc");
    let (external, report) = keys(&[OsStr::new("--external-toc"), toc_path.as_os_str()]);
    assert_eq!(external, common);
    assert!(report["toc_offset"].is_null());
    let toc_keys: Vec<&String> = report["external_toc"].as_object().unwrap().keys().collect();
    assert_eq!(toc_keys, ["digest", "path", "size"]);
    assert_eq!(
        report["external_toc"]["path"],
        toc_path.display().to_string()
    );

    let (prioritized, report) = keys(&[
        OsStr::new("--prioritized-files"),
        list.as_os_str(),
        OsStr::new("--allow-missing"),
    ]);
    let mut with_prefetch: Vec<&str> = common.to_vec();
    with_prefetch.push("prefetch");
    with_prefetch.sort_unstable();
    assert_eq!(prioritized, with_prefetch);
    assert_eq!(report["lossless"], false);
    let prefetch_keys: Vec<&String> = report["prefetch"].as_object().unwrap().keys().collect();
    assert_eq!(
        prefetch_keys,
        [
            "dropped_duplicates",
            "dropped_landmarks",
            "entries",
            "found",
            "landmark",
            "listed",
            "missing",
            "prefetch_end",
            "prefetch_entries",
        ]
    );
    assert_eq!(report["warnings"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// convert: where the output goes
// ---------------------------------------------------------------------------

#[test]
fn convert_without_output_derives_name_from_tar() {
    let dir = tempfile::tempdir().unwrap();
    let input = copy_into(SAMPLE_LAYER, dir.path(), "layer.tar");

    let out = run([OsStr::new("convert"), input.as_os_str()]);
    assert_exit(&out, 0);
    assert!(out.stdout.is_empty(), "nothing should go to stdout");
    assert_eq!(
        dir_listing(dir.path()),
        ["layer.esgz.tar.gz", "layer.tar"],
        "unexpected files in the directory"
    );
    let blob = read(dir.path().join("layer.esgz.tar.gz"));
    assert!(gunzip_all(&blob).starts_with(&read(SAMPLE_LAYER)));
}

#[test]
fn convert_without_output_derives_name_from_tar_gz() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(VALID_DIR).join("python-ustar.tar.gz");
    let input = copy_into(&fixture, dir.path(), "python-ustar.tar.gz");

    let out = run([OsStr::new("convert"), input.as_os_str()]);
    assert_exit(&out, 0);
    assert_eq!(
        dir_listing(dir.path()),
        ["python-ustar.esgz.tar.gz", "python-ustar.tar.gz"]
    );
    let blob = read(dir.path().join("python-ustar.esgz.tar.gz"));
    let original_tar = gunzip_all(&read(&fixture));
    assert!(gunzip_all(&blob).starts_with(&original_tar));
}

#[test]
fn convert_stdin_to_stdout_matches_file_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = convert_to_file(Path::new(SAMPLE_LAYER), dir.path(), "a.esgz", &[]);

    let out = run_with_stdin(["convert", "-", "-o", "-"], &read(SAMPLE_LAYER));
    assert_exit(&out, 0);
    assert!(
        out.stdout == from_file,
        "`convert - -o -` differs from `convert FILE -o OUT`"
    );
}

#[test]
fn convert_stdin_without_output_writes_to_piped_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = convert_to_file(Path::new(SAMPLE_LAYER), dir.path(), "a.esgz", &[]);

    let out = run_with_stdin(["convert", "-"], &read(SAMPLE_LAYER));
    assert_exit(&out, 0);
    assert!(
        out.stdout == from_file,
        "`convert -` on a pipe differs from `convert FILE -o OUT`"
    );
}

#[test]
fn convert_json_with_blob_on_stdout_is_usage_error() {
    let out = run(["convert", SAMPLE_LAYER, "-o", "-", "--json"]);
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty(), "no blob or JSON may be written");
    assert!(stderr_of(&out).contains("--json"));

    // Stdin input without -o also sends the blob to stdout.
    let out = run_with_stdin(["convert", "-", "--json"], &read(SAMPLE_LAYER));
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty(), "no blob or JSON may be written");
}

// ---------------------------------------------------------------------------
// convert: determinism and options
// ---------------------------------------------------------------------------

#[test]
fn convert_output_is_independent_of_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(SAMPLE_LAYER);
    // Small chunks give many members, so the threads really share the work.
    let one = convert_to_file(
        input,
        dir.path(),
        "t1",
        &["--threads", "1", "--chunk-size", "1K"],
    );
    let two = convert_to_file(
        input,
        dir.path(),
        "t2",
        &["--threads", "2", "--chunk-size", "1K"],
    );
    assert!(one == two, "--threads 1 and --threads 2 differ");
}

#[test]
fn convert_is_deterministic_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(SAMPLE_LAYER);
    let first = convert_to_file(input, dir.path(), "run1", &[]);
    let second = convert_to_file(input, dir.path(), "run2", &[]);
    assert!(first == second, "two runs produced different blobs");
}

#[test]
fn convert_level_changes_compression_not_content() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(SAMPLE_LAYER);
    let fast = convert_to_file(input, dir.path(), "l1", &["--level", "1"]);
    let best = convert_to_file(input, dir.path(), "l9", &["--level", "9"]);
    assert!(fast != best, "--level 1 and --level 9 gave identical files");
    let input_tar = read(input);
    assert!(
        tar_before_toc(&fast) == input_tar,
        "--level 1 layer does not decompress to the input"
    );
    assert!(
        tar_before_toc(&best) == input_tar,
        "--level 9 layer does not decompress to the input"
    );
}

#[test]
fn convert_small_chunk_size_gives_more_gzip_members() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(SAMPLE_LAYER);
    // The sample layer holds files larger than 1 KiB.
    let default = convert_to_file(input, dir.path(), "default", &[]);
    let small = convert_to_file(input, dir.path(), "small", &["--chunk-size", "1K"]);
    let (n_default, n_small) = (gzip_member_count(&default), gzip_member_count(&small));
    assert!(
        n_small > n_default,
        "--chunk-size 1K gave {n_small} members, default gave {n_default}"
    );
    assert!(
        tar_before_toc(&default) == tar_before_toc(&small),
        "the chunk size changed the layer content"
    );
}

// ---------------------------------------------------------------------------
// convert: refused input
// ---------------------------------------------------------------------------

#[test]
fn convert_rejects_invalid_and_sparse_tars_leaving_no_output() {
    for input in rejected_fixtures() {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out.esgz");
        let mut stderrs = Vec::new();
        // The file mapped (the default) and read as a stream fail alike.
        for extra in [None, Some("--no-mmap")] {
            let mut args = vec![
                OsStr::new("convert"),
                input.as_os_str(),
                OsStr::new("-o"),
                out_path.as_os_str(),
            ];
            args.extend(extra.map(OsStr::new));
            let out = run(args);
            assert_exit_for(&out, 1, input.display());
            assert_refusal_message(&out, &input);
            assert!(
                dir_listing(dir.path()).is_empty(),
                "{}: files left behind: {:?}",
                input.display(),
                dir_listing(dir.path())
            );
            stderrs.push(stderr_of(&out));
        }
        assert_eq!(stderrs[0], stderrs[1], "{}", input.display());
    }
}

#[test]
fn convert_refuses_a_tar_readers_could_not_open_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut file = tar::Header::new_ustar();
    file.set_size(3);
    file.set_mode(0o644);
    b.append_data(&mut file, "a", &b"abc"[..]).unwrap();
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Link);
    link.set_size(0);
    b.append_link(&mut link, "b", "not-here").unwrap();
    let input = dir.path().join("in.tar");
    std::fs::write(&input, b.into_inner().unwrap()).unwrap();
    let out_path = dir.path().join("out.esgz");
    let convert = |extra: &[&str]| {
        let mut args = vec![
            "convert",
            input.to_str().unwrap(),
            "-o",
            out_path.to_str().unwrap(),
        ];
        args.extend(extra);
        run(args)
    };
    for extra in [&[][..], &["--no-mmap"]] {
        let out = convert(extra);
        assert_exit(&out, 1);
        let err = stderr_of(&out);
        assert!(
            err.contains("in.tar")
                && err.contains("entry \"b\" at byte 1024")
                && err.contains("isn't found")
                && err.contains("--no-open-check"),
            "{err}"
        );
        assert_eq!(dir_listing(dir.path()), ["in.tar"]);
    }
    assert_exit(&convert(&["--no-open-check"]), 0);
    let verified = run(["verify", out_path.to_str().unwrap()]);
    assert_exit(&verified, 1);
    assert!(stderr_of(&verified).contains("isn't found"));
}

#[test]
fn a_mapped_file_a_streamed_file_and_stdin_convert_alike() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(SAMPLE_LAYER);
    let args = ["--chunk-size", "1K", "--min-chunk-size", "3K"];
    let mapped = convert_to_file(input, dir.path(), "mapped", &args);
    let mut streamed_args = args.to_vec();
    streamed_args.push("--no-mmap");
    let streamed = convert_to_file(input, dir.path(), "streamed", &streamed_args);
    assert!(mapped == streamed, "--no-mmap changes the blob");
    let mut stdin_args = vec!["convert", "-", "-o", "-"];
    stdin_args.extend(args);
    let out = run_with_stdin(stdin_args, &read(input));
    assert_exit(&out, 0);
    assert!(out.stdout == mapped, "stdin gives another blob");
}

#[test]
fn convert_rejects_invalid_and_sparse_tars_without_output_flag() {
    for fixture in rejected_fixtures() {
        let dir = tempfile::tempdir().unwrap();
        let name = fixture.file_name().unwrap().to_str().unwrap();
        let input = copy_into(&fixture, dir.path(), name);
        let out = run([OsStr::new("convert"), input.as_os_str()]);
        assert_exit_for(&out, 1, name);
        assert_refusal_message(&out, &input);
        assert_eq!(dir_listing(dir.path()), [name], "{name}: files left behind");
        assert!(read(&input) == read(&fixture), "{name}: input modified");
    }
}

#[test]
fn convert_missing_input_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-layer.tar");
    let out = run([
        OsStr::new("convert"),
        missing.as_os_str(),
        OsStr::new("-o"),
        dir.path().join("out").as_os_str(),
    ]);
    assert_exit(&out, 1);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&*missing.to_string_lossy()),
        "stderr does not name the missing file: {stderr}"
    );
    assert!(dir_listing(dir.path()).is_empty(), "files left behind");
}

#[test]
fn convert_refuses_to_overwrite_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = copy_into(SAMPLE_LAYER, dir.path(), "layer.tar");
    let original = read(&input);

    // The same path, spelled identically and through `.`.
    let same = dir.path().join(".").join("layer.tar");
    for output in [input.as_os_str(), same.as_os_str()] {
        let out = run([
            OsStr::new("convert"),
            input.as_os_str(),
            OsStr::new("-o"),
            output,
        ]);
        assert_exit(&out, 2);
        assert!(read(&input) == original, "the input was modified");
        assert_eq!(dir_listing(dir.path()), ["layer.tar"], "files left behind");
    }
}

// ---------------------------------------------------------------------------
// Usage errors and help
// ---------------------------------------------------------------------------

#[test]
fn convert_usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["convert", SAMPLE_LAYER, "--no-such-flag"],
        &["convert"],
        &["convert", SAMPLE_LAYER, "--level", "13"],
        &["convert", SAMPLE_LAYER, "--chunk-size", "0"],
        &["convert", SAMPLE_LAYER, "--chunk-size", "4X"],
    ];
    for args in cases {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out");
        let mut full: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        if args.len() > 1 {
            full.extend([OsStr::new("-o"), out_path.as_os_str()]);
        }
        let out = run(&full);
        assert_exit_for(&out, 2, format!("{args:?}"));
        assert!(!out.stderr.is_empty(), "{args:?}: no message on stderr");
        assert!(
            dir_listing(dir.path()).is_empty(),
            "{args:?}: output written"
        );
    }
}

#[test]
fn version_flag_exits_0() {
    let out = run(["--version"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("estargz"), "version output: {stdout}");
    assert!(
        stdout.contains(env!("CARGO_PKG_VERSION")),
        "version output: {stdout}"
    );
}

#[test]
fn convert_help_mentions_chunk_size() {
    let out = run(["convert", "--help"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--chunk-size"), "help output: {stdout}");
}

// ---------------------------------------------------------------------------
// digest
// ---------------------------------------------------------------------------

#[test]
fn digest_json_agrees_with_convert_report() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("layer.esgz");
    let out = run([
        OsStr::new("convert"),
        OsStr::new(SAMPLE_LAYER),
        OsStr::new("-o"),
        blob_path.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_exit(&out, 0);
    let report = json_object(&out.stdout);

    let out = run([
        OsStr::new("digest"),
        blob_path.as_os_str(),
        OsStr::new("--json"),
    ]);
    assert_exit(&out, 0);
    let digest = json_object(&out.stdout);
    for key in ["digest", "diff_id"] {
        assert_eq!(str_field(&digest, key), str_field(&report, key), "{key}");
    }
    for key in ["size", "uncompressed_size"] {
        assert_eq!(u64_field(&digest, key), u64_field(&report, key), "{key}");
    }
}

#[test]
fn digest_of_plain_gzip() {
    let payload: Vec<u8> = (0..100_000u32)
        .flat_map(|i| format!("line {i} of some layer\n").into_bytes())
        .collect();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&payload).unwrap();
    let gz = encoder.finish().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.gz");
    std::fs::write(&path, &gz).unwrap();

    let out = run([OsStr::new("digest"), path.as_os_str(), OsStr::new("--json")]);
    assert_exit(&out, 0);
    let info = json_object(&out.stdout);
    assert_eq!(str_field(&info, "digest"), sha256_digest(&gz));
    assert_eq!(u64_field(&info, "size"), gz.len() as u64);
    assert_eq!(str_field(&info, "diff_id"), sha256_digest(&payload));
    assert_eq!(u64_field(&info, "uncompressed_size"), payload.len() as u64);
}

#[test]
fn digest_of_non_gzip_fails() {
    let out = run(["digest", SAMPLE_LAYER]);
    assert_exit(&out, 1);
    assert!(out.stdout.is_empty(), "no result may be printed");
    let stderr = stderr_of(&out);
    assert!(stderr.contains("error"), "stderr: {stderr}");
    assert!(stderr.contains(SAMPLE_LAYER), "stderr: {stderr}");
}

/// SIGINT or SIGTERM mid-conversion leaves neither the output nor a temporary file.
#[test]
fn convert_interrupted_by_a_signal_leaves_nothing_behind() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.esgz");
        let mut child = Command::new(env!("CARGO_BIN_EXE_estargz"))
            .args(["convert", "-", "-o", out.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Half a tar: the converter is mid-stream, waiting for more input.
        let tar = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/sample-layer.tar"
        ))
        .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&tar[..tar.len() / 2]).unwrap();
        stdin.flush().unwrap();
        // Wait until the temporary file is open (unnamed: an O_TMPFILE shows
        // only in /proc), so the signal lands mid-conversion.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let dir_path = dir.path().canonicalize().unwrap();
        let output_open = || {
            std::fs::read_dir(format!("/proc/{}/fd", child.id()))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| target.starts_with(&dir_path))
        };
        while !output_open() {
            assert!(
                std::time::Instant::now() < deadline,
                "the output was never opened"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        drop(stdin);
        assert_eq!(exit.code(), Some(130), "{signal}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{signal}: left behind {left:?}");
    }
}

/// A mapped input truncated mid-conversion: exit 1 with a message, and no
/// output or temporary file (the SIGBUS handler, or the change check when
/// the conversion had already read everything).
#[test]
fn convert_of_a_file_truncated_underneath_fails_cleanly() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("layer.tar");
    let names: Vec<String> = (0..24).map(|i| format!("f{i}")).collect();
    let files: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 1 << 20)).collect();
    std::fs::write(&input, common::lcg_tar(&files, true)).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_estargz"))
        .args(["convert", "--level", "12", "--threads", "1"])
        .arg(&input)
        .arg("-o")
        .arg(out_dir.join("out.esgz"))
        .arg("--external-toc")
        .arg(out_dir.join("out.toc"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("truncated while it was being converted")
            || stderr.contains("changed while it was being read"),
        "stderr: {stderr}"
    );
    assert!(
        dir_listing(&out_dir).is_empty(),
        "left behind: {:?}",
        dir_listing(&out_dir)
    );
}

/// `--no-mmap` reads a regular file as a stream; bytes appended to it while
/// it is read must not give a blob that verifies: exit 1, no output.
#[test]
fn convert_no_mmap_of_a_file_appended_to_underneath_fails_cleanly() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("layer.tar");
    std::fs::write(&input, common::lcg_tar(&[("big", 16 << 20)], true)).unwrap();
    let output = dir.path().join("out.esgz");
    let mut child = Command::new(env!("CARGO_BIN_EXE_estargz"))
        .args([
            "convert",
            "--no-mmap",
            "--level",
            "12",
            "--threads",
            "1",
            "-q",
        ])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Appended once the run has begun reading the input (its offset moved),
    // so after the input was opened and stat'ed, and long before its end.
    let pid = child.id();
    let reading = || {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t == input)
                && std::fs::read_to_string(format!(
                    "/proc/{pid}/fdinfo/{}",
                    fd.file_name().to_string_lossy()
                ))
                .is_ok_and(|info| !info.starts_with("pos:\t0\n"))
        })
    };
    let started = std::time::Instant::now();
    while !reading() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the append: make the input bigger"
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{} changed while it was being read",
            input.display()
        )),
        "stderr: {stderr}"
    );
    assert_eq!(dir_listing(dir.path()), ["layer.tar"]);
}
