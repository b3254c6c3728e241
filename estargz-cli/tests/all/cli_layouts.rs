//! The layouts beyond one member per chunk: `--min-chunk-size` (small files
//! sharing members at an `innerOffset`) and `--external-toc` (the TOC in its
//! own file), written by `convert` and read back by the other commands.

use crate::common;

use common::*;
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// `(offset, innerOffset)` of every TOC entry holding file data.
fn data_positions(toc: &serde_json::Value) -> Vec<(u64, u64)> {
    toc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "chunk" || e["size"].as_u64().unwrap_or(0) > 0)
        .map(|e| {
            let n = |k: &str| e[k].as_u64().unwrap_or(0);
            (n("offset"), n("innerOffset"))
        })
        .collect()
}

fn convert_ok(
    input: &Path,
    output: &Path,
    extra: &[&str],
) -> serde_json::Map<String, serde_json::Value> {
    let mut args: Vec<&std::ffi::OsStr> = convert_args(input, output, &[]);
    args.push(std::ffi::OsStr::new("--json"));
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = run(&args);
    assert_exit(&out, 0);
    json_object(&out.stdout)
}

#[test]
fn min_chunk_size_groups_small_files_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.esgz");
    let grouped = dir.path().join("grouped.esgz");
    convert_ok(SAMPLE_LAYER.as_ref(), &plain, &[]);
    let report = convert_ok(
        SAMPLE_LAYER.as_ref(),
        &grouped,
        &["--min-chunk-size", "64K"],
    );
    assert_eq!(u64_field(&report, "min_chunk_size"), 64 << 10);

    let (plain_blob, blob) = (read(&plain), read(&grouped));
    let positions = data_positions(&toc(&blob));
    let members: std::collections::BTreeSet<u64> = positions.iter().map(|p| p.0).collect();
    assert!(
        positions.iter().any(|p| p.1 > 0),
        "no chunk shares a member"
    );
    assert!(
        members.len() < data_positions(&toc(&plain_blob)).len(),
        "{} members for {} chunks",
        members.len(),
        positions.len()
    );
    // Still lossless, and the same layer bytes as without grouping.
    let tar = read(SAMPLE_LAYER);
    assert_eq!(gunzip(&blob)[..tar.len()], tar[..]);

    let verified = run(["verify", grouped.to_str().unwrap()]);
    assert_exit(&verified, 0);
    // Every file reads back through `cat`, byte for byte as `unpack` gives it.
    let unpacked = dir.path().join("root");
    assert_exit(
        &run([
            "unpack",
            grouped.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ]),
        0,
    );
    let listing = run(["ls", grouped.to_str().unwrap()]);
    assert_exit(&listing, 0);
    let mut checked = 0;
    for entry in walk_files(&unpacked) {
        let rel = entry
            .strip_prefix(&unpacked)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let cat = run(["cat", grouped.to_str().unwrap(), &rel]);
        assert_exit(&cat, 0);
        assert_eq!(cat.stdout, read(&entry), "{rel}");
        checked += 1;
    }
    assert!(checked > 10, "only {checked} files compared");
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            out.extend(walk_files(&e.path()));
        } else if ty.is_file() {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

#[test]
fn external_toc_blob_is_the_input_tar_and_the_toc_file_matches() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("layer.esgz");
    let toc_path = dir.path().join("layer.toc");
    let report = convert_ok(
        SAMPLE_LAYER.as_ref(),
        &blob_path,
        &["--external-toc", toc_path.to_str().unwrap()],
    );
    let (blob, toc_file, tar) = (read(&blob_path), read(&toc_path), read(SAMPLE_LAYER));
    // The blob decompresses to exactly the input: the diffID does not change.
    assert_eq!(gunzip(&blob), tar);
    assert_eq!(str_field(&report, "diff_id"), sha256_digest(&tar));
    assert_eq!(str_field(&report, "digest"), sha256_digest(&blob));
    assert_eq!(u64_field(&report, "uncompressed_size"), tar.len() as u64);
    assert!(report["toc_offset"].is_null());
    let external = report["external_toc"].as_object().unwrap();
    assert_eq!(str_field(external, "digest"), sha256_digest(&toc_file));
    assert_eq!(u64_field(external, "size"), toc_file.len() as u64);
    assert_eq!(str_field(external, "path"), toc_path.to_str().unwrap());
    assert_eq!(&blob[blob.len() - 46..][16..33], b"STARGZEXTERNALTOC");

    // The TOC file holds the same JSON an embedded conversion writes.
    let embedded = dir.path().join("embedded.esgz");
    let normal = convert_ok(SAMPLE_LAYER.as_ref(), &embedded, &[]);
    assert_eq!(
        str_field(&normal, "toc_digest"),
        str_field(&report, "toc_digest")
    );
    let embedded = read(&embedded);
    assert_eq!(
        &embedded[toc_offset(&embedded)..embedded.len() - 51],
        &toc_file[..]
    );
}

#[test]
fn external_toc_may_not_overwrite_input_or_output() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("layer.esgz");
    for clash in [blob_path.to_str().unwrap(), SAMPLE_LAYER] {
        let out = run([
            "convert",
            SAMPLE_LAYER,
            "-o",
            blob_path.to_str().unwrap(),
            "--external-toc",
            clash,
        ]);
        assert_exit(&out, 2);
        assert!(
            stderr_of(&out).contains("--external-toc"),
            "{}",
            stderr_of(&out)
        );
    }
    assert!(!blob_path.exists());
}

/// Runs `args` under `script`, so that the binary's stderr is a terminal.
fn run_in_terminal(args: &[&str]) -> String {
    let command = std::iter::once(env!("CARGO_BIN_EXE_estargz"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from util-linux runs the binary in a pseudo-terminal");
    assert_exit(&out, 0);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_is_drawn_only_on_a_terminal_and_not_with_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.esgz");
    let args = ["convert", SAMPLE_LAYER, "-o", output.to_str().unwrap()];
    let shown = run_in_terminal(&args);
    assert!(shown.contains("converting ["), "{shown:?}");
    assert!(shown.contains("converted "), "{shown:?}");

    let quiet = run_in_terminal(&[&args[..], &["-q"]].concat());
    assert!(!quiet.contains("converting"), "{quiet:?}");
    // Not a terminal: the summary only, no control sequences.
    let piped = run(args);
    assert_exit(&piped, 0);
    let stderr = stderr_of(&piped);
    assert!(
        !stderr.contains("converting") && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
}

#[test]
fn version_names_the_codecs_and_man_and_completions_list_the_commands() {
    let version = run(["--version"]);
    assert_exit(&version, 0);
    let text = stdout_of(&version);
    assert!(
        text.contains("libdeflate") && text.contains("zlib-rs"),
        "{text}"
    );

    let man = run(["man"]);
    assert_exit(&man, 0);
    let page = stdout_of(&man);
    assert!(
        page.starts_with(".ie") || page.contains(".TH"),
        "not roff: {page:.200}"
    );
    for section in ["ESTARGZ CONVERT", "ESTARGZ VERIFY", "min\\-chunk\\-size"] {
        assert!(page.contains(section), "man page lacks {section}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = run(["completions", shell]);
        assert_exit(&out, 0);
        let script = stdout_of(&out);
        for word in ["convert", "verify", "external-toc"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    assert_exit(&run(["completions", "nosuchshell"]), 2);
}

#[test]
fn external_toc_blobs_are_read_with_the_toc_file() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("layer.esgz");
    let toc_path = dir.path().join("layer.toc");
    let report = convert_ok(
        SAMPLE_LAYER.as_ref(),
        &blob_path,
        &[
            "--external-toc",
            toc_path.to_str().unwrap(),
            "--min-chunk-size",
            "16K",
        ],
    );
    let (blob, toc) = (blob_path.to_str().unwrap(), toc_path.to_str().unwrap());
    let toc_digest = str_field(&report, "toc_digest");

    let verified = run([
        "verify",
        blob,
        "--external-toc",
        toc,
        "--toc-digest",
        toc_digest,
    ]);
    assert_exit(&verified, 0);
    let listing = run(["ls", blob, "--external-toc", toc]);
    assert_exit(&listing, 0);
    assert!(stdout_of(&listing).lines().count() > 10);
    let info = run(["info", blob, "--external-toc", toc, "--json"]);
    assert_exit(&info, 0);
    assert_eq!(
        str_field(&json_object(&info.stdout), "toc_digest"),
        toc_digest
    );

    // cat gives what unpack -C writes.
    let root = dir.path().join("root");
    assert_exit(&run(["unpack", blob, "-C", root.to_str().unwrap()]), 0);
    let file = walk_files(&root)
        .into_iter()
        .max_by_key(|p| read(p).len())
        .unwrap();
    let rel = file
        .strip_prefix(&root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let cat = run(["cat", blob, &rel, "--external-toc", toc]);
    assert_exit(&cat, 0);
    assert_eq!(cat.stdout, read(&file));

    // Without the TOC file the commands that need it fail, saying why.
    for args in [
        vec!["ls", blob],
        vec!["verify", blob],
        vec!["cat", blob, &rel],
    ] {
        let out = run(&args);
        assert_exit(&out, 1);
        assert!(
            stderr_of(&out).contains("external-TOC"),
            "{}",
            stderr_of(&out)
        );
    }
    // A TOC file of another blob does not verify against this one.
    let other_blob = dir.path().join("other.esgz");
    let other_toc = dir.path().join("other.toc");
    convert_ok(
        SAMPLE_LAYER.as_ref(),
        &other_blob,
        &["--external-toc", other_toc.to_str().unwrap()],
    );
    let mismatched = run([
        "verify",
        blob,
        "--external-toc",
        other_toc.to_str().unwrap(),
    ]);
    assert_exit(&mismatched, 1);
}

/// `-o` naming a FIFO (or `/dev/null`, a device) writes into it: renaming a
/// temporary file over it would replace the node with an ordinary file.
#[test]
fn output_to_a_fifo_is_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (sender, received) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        // Detached: if the FIFO were replaced, this open would never return.
        std::thread::spawn(move || sender.send(std::fs::read(fifo).unwrap()));
    }
    let out = run(["convert", SAMPLE_LAYER, "-o", fifo.to_str().unwrap(), "-q"]);
    assert_exit(&out, 0);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let through_fifo = received
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("nothing was written into the FIFO");

    let regular = dir.path().join("regular.esgz");
    assert_exit(
        &run([
            "convert",
            SAMPLE_LAYER,
            "-o",
            regular.to_str().unwrap(),
            "-q",
        ]),
        0,
    );
    assert_eq!(through_fifo, read(&regular));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty());
}

/// Reordering combines with the other layouts: with small files grouped and
/// the TOC outside, the prefetch region still ends at the landmark's member.
#[test]
fn prioritized_files_with_min_chunk_size_and_external_toc() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    assert_exit(
        &run([
            "convert",
            SAMPLE_LAYER,
            "-o",
            dir.path().join("x").to_str().unwrap(),
            "-q",
        ]),
        0,
    );
    assert_exit(
        &run([
            "unpack",
            dir.path().join("x").to_str().unwrap(),
            "-C",
            root.to_str().unwrap(),
        ]),
        0,
    );
    let files = walk_files(&root);
    let last = files
        .last()
        .unwrap()
        .strip_prefix(&root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("{last}\n")).unwrap();

    let blob = dir.path().join("p.esgz");
    let toc = dir.path().join("p.toc");
    let report = convert_ok(
        SAMPLE_LAYER.as_ref(),
        &blob,
        &[
            "--prioritized-files",
            list.to_str().unwrap(),
            "--min-chunk-size",
            "1M",
            "--external-toc",
            toc.to_str().unwrap(),
        ],
    );
    assert_eq!(report["lossless"], false);
    let end = report["prefetch"]["prefetch_end"]
        .as_u64()
        .expect("prefetch_end read back");
    assert!(end > 0);
    // The listed file reads back through the external TOC.
    let cat = run([
        "cat",
        blob.to_str().unwrap(),
        &last,
        "--external-toc",
        toc.to_str().unwrap(),
    ]);
    assert_exit(&cat, 0);
    assert_eq!(cat.stdout, read(root.join(&last)));
    let verify = run([
        "verify",
        blob.to_str().unwrap(),
        "--external-toc",
        toc.to_str().unwrap(),
    ]);
    assert_exit(&verify, 0);
}

#[test]
fn verify_quiet_and_unpack_json() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("b.esgz");
    assert_exit(
        &run(["convert", SAMPLE_LAYER, "-o", blob.to_str().unwrap(), "-q"]),
        0,
    );
    let b = blob.to_str().unwrap();

    let quiet = run(["verify", b, "-q"]);
    assert_exit(&quiet, 0);
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
    let mut damaged = read(&blob);
    let middle = damaged.len() / 3;
    damaged[middle] ^= 0xff;
    let bad = dir.path().join("bad.esgz");
    std::fs::write(&bad, damaged).unwrap();
    let failed = run(["verify", bad.to_str().unwrap(), "-q"]);
    assert_exit(&failed, 1);
    assert!(!failed.stderr.is_empty(), "problems are still reported");

    let root = dir.path().join("root");
    let unpacked = run(["unpack", b, "-C", root.to_str().unwrap(), "--json"]);
    assert_exit(&unpacked, 0);
    let report = json_object(&unpacked.stdout);
    let files = walk_files(&root);
    // Hard links share their data: count each inode once.
    let mut inodes = std::collections::BTreeMap::new();
    for f in &files {
        let meta = std::fs::metadata(f).unwrap();
        inodes.insert(std::os::unix::fs::MetadataExt::ino(&meta), meta.len());
    }
    let bytes: u64 = inodes.values().sum();
    assert_eq!(u64_field(&report, "bytes"), bytes);
    assert!(u64_field(&report, "entries") >= files.len() as u64);

    let tar = dir.path().join("out.tar");
    let to_tar = run(["unpack", b, "-o", tar.to_str().unwrap(), "--json"]);
    assert_exit(&to_tar, 0);
    assert_eq!(
        u64_field(&json_object(&to_tar.stdout), "bytes"),
        read(&tar).len() as u64
    );
    assert_eq!(read(&tar), read(SAMPLE_LAYER));
    assert_exit(&run(["unpack", b, "-o", "-", "--json"]), 2);
}
