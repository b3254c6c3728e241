//! End-to-end tests of `convert --prioritized-files`, `--allow-missing` and
//! `--no-prefetch-landmark`: the order inside the blob, the "not lossless"
//! note and JSON fields, exit codes, and that the blob verifies and unpacks
//! to the reordered tar.

use crate::common;

use common::*;
use flate2::read::MultiGzDecoder;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A ustar header for `name` (a directory if it ends in `/`).
fn header(name: &str, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let dir = name.ends_with('/');
    h[100..108].copy_from_slice(if dir { b"0000755\0" } else { b"0000644\0" });
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = if dir { b'5' } else { b'0' };
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// A tar of `entries` (name, data; names ending in `/` are directories).
fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        out.extend_from_slice(&header(name, data.len()));
        out.extend_from_slice(data.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn layer() -> Vec<u8> {
    tar_of(&[
        ("./", ""),
        ("./etc/", ""),
        ("./etc/motd", "hello\n"),
        ("./bin/", ""),
        ("./bin/sh", "#!shell"),
        ("./usr/lib/libc.so", "libc"),
        ("./x", "x"),
    ])
}

/// Entry names of the tar at the start of `bytes`, up to its end-of-archive.
fn names(tar: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let h = &tar[at..at + 512];
        let end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        out.push(String::from_utf8_lossy(&h[..end]).into_owned());
        let size_text = std::str::from_utf8(&h[124..135]).unwrap();
        let size = usize::from_str_radix(size_text, 8).unwrap();
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

struct Setup {
    _dir: tempfile::TempDir,
    input: PathBuf,
    list: PathBuf,
    out: PathBuf,
}

fn setup(list: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("layer.tar");
    std::fs::write(&input, layer()).unwrap();
    let list_path = dir.path().join("prioritized.txt");
    std::fs::write(&list_path, list).unwrap();
    let out = dir.path().join("out.esgz");
    Setup {
        input,
        list: list_path,
        out,
        _dir: dir,
    }
}

fn convert(s: &Setup, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "convert".as_ref(),
        s.input.as_os_str(),
        "-o".as_ref(),
        s.out.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    run(args)
}

fn verify_and_unpack(blob_path: &Path, toc_digest: &str) -> Vec<u8> {
    let out = run([
        "verify".as_ref(),
        blob_path.as_os_str(),
        "--toc-digest".as_ref(),
        toc_digest.as_ref(),
    ]);
    assert_exit(&out, 0);
    let tar_path = blob_path.with_extension("unpacked.tar");
    let out = run([
        "unpack".as_ref(),
        blob_path.as_os_str(),
        "-o".as_ref(),
        tar_path.as_os_str(),
    ]);
    assert_exit(&out, 0);
    read(&tar_path)
}

#[test]
fn prioritized_files_move_to_the_front_and_the_report_says_not_lossless() {
    let s = setup("/bin/sh\n{\"path\":\"usr/lib/libc.so\",\"ops\":[]}\n\n/not/there\n");
    let list = s.list.to_str().unwrap();
    let out = convert(
        &s,
        &["--prioritized-files", list, "--allow-missing", "--json"],
    );
    assert_exit(&out, 0);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("not lossless"), "{stderr}");
    assert!(stderr.contains("\"/not/there\""), "{stderr}");
    let json = json_object(&out.stdout);
    assert_eq!(json["lossless"], false);
    let prefetch = json["prefetch"].as_object().expect("prefetch object");
    assert_eq!(prefetch["landmark"], ".prefetch.landmark");
    assert_eq!(prefetch["listed"], 3);
    assert_eq!(
        prefetch["found"],
        serde_json::json!(["/bin/sh", "usr/lib/libc.so"])
    );
    assert_eq!(prefetch["missing"], serde_json::json!(["/not/there"]));
    assert_eq!(prefetch["prefetch_entries"], 4);
    assert!(json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("/not/there")));

    let blob = read(&s.out);
    assert_eq!(str_field(&json, "digest"), sha256_digest(&blob));
    let landmark_offset = toc(&blob)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == ".prefetch.landmark")
        .expect("landmark in the TOC")["offset"]
        .as_u64()
        .unwrap();
    assert!(landmark_offset > 0);
    assert_eq!(prefetch["prefetch_end"], landmark_offset);
    let want = [
        "./",
        "./bin/",
        "./bin/sh",
        "./usr/lib/libc.so",
        ".prefetch.landmark",
        "./etc/",
        "./etc/motd",
        "./x",
    ];
    let inside = gunzip(&blob);
    assert_eq!(names(&inside), want);
    let unpacked = verify_and_unpack(&s.out, str_field(&json, "toc_digest"));
    assert_eq!(names(&unpacked), want);
    assert_eq!(unpacked.len() as u64, u64_field(&json, "tar_size"));
    assert_eq!(&inside[..unpacked.len()], &unpacked[..]);
}

#[test]
fn a_missing_prioritized_file_fails_naming_it_and_leaves_no_output() {
    let s = setup("bin/sh\n./nope\n/also-nope\n");
    let out = convert(&s, &["--prioritized-files", s.list.to_str().unwrap()]);
    assert_exit(&out, 1);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("\"./nope\"") && stderr.contains("\"/also-nope\""),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-missing"), "{stderr}");
    assert!(!s.out.exists());
    assert_eq!(
        dir_listing(s.out.parent().unwrap()),
        ["layer.tar", "prioritized.txt"]
    );
}

#[test]
fn a_missing_list_file_is_a_failure_naming_it() {
    let s = setup("");
    let out = convert(&s, &["--prioritized-files", "/no/such/list.txt"]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("/no/such/list.txt"),
        "{}",
        stderr_of(&out)
    );
    assert!(!s.out.exists());
    let bad = setup("ok\n{\"path\": 1}\n");
    let out = convert(&bad, &["--prioritized-files", bad.list.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(stderr_of(&out).contains("line 2"), "{}", stderr_of(&out));
}

#[test]
fn conflicting_or_incomplete_flags_are_usage_errors() {
    let s = setup("bin/sh\n");
    let list = s.list.to_str().unwrap();
    for extra in [
        vec!["--allow-missing"],
        vec!["--prioritized-files", list, "--no-prefetch-landmark"],
    ] {
        let out = convert(&s, &extra);
        assert_exit_for(&out, 2, format!("{extra:?}"));
        assert!(!s.out.exists());
    }
}

#[test]
fn no_prefetch_landmark_goes_first_and_quiet_silences_the_note() {
    let s = setup("");
    let out = convert(&s, &["--no-prefetch-landmark", "-q"]);
    assert_exit(&out, 0);
    assert_eq!(stderr_of(&out), "", "quiet");
    let blob = read(&s.out);
    let mut want = vec![".no.prefetch.landmark".to_string()];
    want.extend(names(&layer()));
    assert_eq!(names(&gunzip(&blob)), want);

    let out = convert(&s, &["--no-prefetch-landmark", "--json"]);
    assert_exit(&out, 0);
    assert!(stderr_of(&out).contains("not lossless"));
    let json = json_object(&out.stdout);
    assert_eq!(json["lossless"], false);
    assert_eq!(json["prefetch"]["landmark"], ".no.prefetch.landmark");
    assert_eq!(json["prefetch"]["listed"], serde_json::Value::Null);
    assert_eq!(json["prefetch"]["prefetch_end"], serde_json::Value::Null);
    verify_and_unpack(&s.out, str_field(&json, "toc_digest"));

    // Without the flags the report stays lossless and has no prefetch part.
    let out = convert(&s, &["--json", "-q"]);
    assert_exit(&out, 0);
    let json = json_object(&out.stdout);
    assert_eq!(json["lossless"], true);
    assert!(!json.contains_key("prefetch"));
}

#[test]
fn a_list_with_nothing_found_writes_no_prefetch_landmark_and_warns() {
    let s = setup("/nope\n");
    let out = convert(
        &s,
        &[
            "--prioritized-files",
            s.list.to_str().unwrap(),
            "--allow-missing",
            "--json",
        ],
    );
    assert_exit(&out, 0);
    assert!(
        stderr_of(&out).contains("warning: none of the 1 prioritized files"),
        "{}",
        stderr_of(&out)
    );
    let json = json_object(&out.stdout);
    assert_eq!(json["prefetch"]["landmark"], ".no.prefetch.landmark");
    assert_eq!(names(&gunzip(&read(&s.out)))[0], ".no.prefetch.landmark");
}

#[test]
fn gzip_input_from_stdin_is_spooled_and_reordered() {
    let s = setup("x\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer()).unwrap();
    let gz = gz.finish().unwrap();
    let mut child = estargz([
        "convert".as_ref(),
        "-".as_ref(),
        "-o".as_ref(),
        s.out.as_os_str(),
        "--prioritized-files".as_ref(),
        s.list.as_os_str(),
        "-q".as_ref(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(
        names(&gunzip(&read(&s.out)))[..3],
        ["./", "./x", ".prefetch.landmark"]
    );
}

#[test]
fn help_says_reordering_is_not_lossless() {
    let out = run(["convert", "--help"]);
    assert_exit(&out, 0);
    let help = stdout_of(&out);
    for flag in [
        "--prioritized-files",
        "--allow-missing",
        "--no-prefetch-landmark",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    assert!(help.matches("NOT lossless").count() >= 2, "{help}");
}
