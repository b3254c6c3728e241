//! Where `-o` writes: symbolic links, /proc handles, directories, a closed
//! stdout, a reader that goes away, and temporary files a killed run leaves.

use crate::common;

use common::*;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The blob `convert SAMPLE_LAYER` writes to a regular file.
fn reference_blob(dir: &Path) -> Vec<u8> {
    let path = dir.join("reference.esgz");
    assert_exit(
        &run(["convert", SAMPLE_LAYER, "-o", path.to_str().unwrap(), "-q"]),
        0,
    );
    let blob = read(&path);
    std::fs::remove_file(&path).unwrap();
    blob
}

/// Runs `convert SAMPLE_LAYER -o OUTPUT` with stdout redirected to `stdout_file`.
fn convert_with_stdout_to(output: &OsStr, stdout_file: &Path) -> std::process::Output {
    let file = File::create(stdout_file).unwrap();
    estargz([
        OsStr::new("convert"),
        OsStr::new(SAMPLE_LAYER),
        OsStr::new("-o"),
    ])
    .arg(output)
    .arg("-q")
    .stdout(Stdio::from(file))
    .output()
    .unwrap()
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// `-o` through a /proc link to an open file (what /dev/stdout is) writes
/// into that file: before, the link was replaced by a regular file and the
/// redirected stdout stayed empty.
#[test]
fn output_through_a_proc_link_writes_the_open_file() {
    let dir = tempfile::tempdir().unwrap();
    let blob = reference_blob(dir.path());

    let link = dir.path().join("stdout-link");
    symlink("/proc/self/fd/1", &link).unwrap();
    let redirected = dir.path().join("redirected");
    let out = convert_with_stdout_to(link.as_os_str(), &redirected);
    assert_exit(&out, 0);
    assert!(is_symlink(&link), "the link was replaced");
    assert_eq!(read(&redirected), blob);
    assert_eq!(dir_listing(dir.path()), ["redirected", "stdout-link"]);

    // The real /dev/stdout, only once the copy above proved it safe: a
    // regression would replace the host's /dev/stdout with a file.
    let redirected = dir.path().join("redirected-dev");
    let out = convert_with_stdout_to(OsStr::new("/dev/stdout"), &redirected);
    assert_exit(&out, 0);
    assert!(is_symlink(Path::new("/dev/stdout")));
    assert_eq!(read(&redirected), blob);
}

/// A symbolic link to a regular file (or to a name not yet taken): the file
/// it leads to is replaced atomically; the link stays.
#[test]
fn output_through_a_symlink_replaces_its_target_not_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let blob = reference_blob(dir.path());
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    for existing in [true, false] {
        let target = sub.join("real.esgz");
        if existing {
            std::fs::write(&target, b"old contents").unwrap();
        }
        let link = dir.path().join("link");
        symlink("sub/real.esgz", &link).unwrap();
        let out = run(["convert", SAMPLE_LAYER, "-o", link.to_str().unwrap(), "-q"]);
        assert_exit(&out, 0);
        assert!(
            is_symlink(&link),
            "existing={existing}: the link was replaced"
        );
        assert_eq!(read(&target), blob, "existing={existing}");
        assert_eq!(dir_listing(&sub), ["real.esgz"], "existing={existing}");
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&target).unwrap();
    }
}

/// A FIFO behind a symbolic link gets the bytes in place.
#[test]
fn output_through_a_symlink_to_a_fifo_is_written_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let blob = reference_blob(dir.path());
    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let link = dir.path().join("link");
    symlink(&fifo, &link).unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    {
        let fifo = fifo.clone();
        // Detached: if the FIFO were replaced, this open would never return.
        std::thread::spawn(move || sender.send(std::fs::read(fifo).unwrap()));
    }
    let out = run(["convert", SAMPLE_LAYER, "-o", link.to_str().unwrap(), "-q"]);
    assert_exit(&out, 0);
    let through = received
        .recv_timeout(Duration::from_secs(60))
        .expect("nothing was written into the FIFO");
    assert_eq!(through, blob);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(is_symlink(&link));
}

/// A directory as `-o` (or through a link) is a usage error, found before
/// the input is even opened: a missing input is not what is reported.
#[test]
fn output_naming_a_directory_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tar");
    let link = dir.path().join("link-to-dir");
    symlink(dir.path(), &link).unwrap();
    for target in [dir.path().to_path_buf(), link.clone()] {
        for command in ["convert", "unpack"] {
            let out = run([
                OsStr::new(command),
                missing.as_os_str(),
                OsStr::new("-o"),
                target.as_os_str(),
            ]);
            let what = format!("{command} -o {}", target.display());
            assert_exit_for(&out, 2, &what);
            let stderr = stderr_of(&out);
            assert!(stderr.contains("is a directory"), "{what}: {stderr}");
            assert!(!stderr.contains("missing.tar"), "{what}: {stderr}");
        }
    }
    // convert's --external-toc too.
    let toc = run([
        OsStr::new("convert"),
        missing.as_os_str(),
        OsStr::new("-o"),
        dir.path().join("out.esgz").as_os_str(),
        OsStr::new("--external-toc"),
        dir.path().as_os_str(),
    ]);
    assert_exit(&toc, 2);
    assert_eq!(dir_listing(dir.path()), ["link-to-dir"]);
}

/// `-o -` with stdout closed: the blob would vanish (the runtime puts
/// /dev/null there), so it is an error; a `>/dev/null` the user chose, or
/// `-o /dev/null`, is fine.
#[test]
fn binary_output_to_a_closed_stdout_fails() {
    let bin = env!("CARGO_BIN_EXE_estargz");
    for (script, code) in [
        ("exec >&-; exec \"$0\" convert \"$1\" -o - -q", 1),
        ("exec >&-; exec \"$0\" unpack \"$2\" -o -", 1),
        ("exec \"$0\" convert \"$1\" -o - -q >/dev/null", 0),
        ("exec >&-; exec \"$0\" convert \"$1\" -o /dev/null -q", 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("blob.esgz");
        std::fs::write(&blob, reference_blob(dir.path())).unwrap();
        let out = Command::new("sh")
            .args(["-c", script, bin, SAMPLE_LAYER, blob.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_exit_for(&out, code, script);
        if code == 1 {
            let stderr = stderr_of(&out);
            assert!(stderr.contains("stdout is closed"), "{script}: {stderr}");
        }
    }
}

/// A blob whose listing, and whose file `dir/big`, are far larger than a
/// pipe's buffer, so the writer is still writing when its reader goes away.
fn many_entries_blob(dir: &Path) -> PathBuf {
    let mut tar = tar::Builder::new(Vec::new());
    let big = vec![b'y'; 4 << 20];
    let mut header = tar::Header::new_gnu();
    header.set_size(big.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "dir/big", &big[..]).unwrap();
    for i in 0..6000 {
        let mut header = tar::Header::new_gnu();
        header.set_size(1000);
        header.set_mode(0o644);
        header.set_cksum();
        let data = vec![b'x'; 1000];
        tar.append_data(
            &mut header,
            format!("dir/a-rather-long-name-{i:05}"),
            &data[..],
        )
        .unwrap();
    }
    let tar_path = dir.join("many.tar");
    std::fs::write(&tar_path, tar.into_inner().unwrap()).unwrap();
    let blob = dir.join("many.esgz");
    assert_exit(
        &run([
            "convert",
            tar_path.to_str().unwrap(),
            "-o",
            blob.to_str().unwrap(),
            "-q",
        ]),
        0,
    );
    blob
}

/// Reads the first bytes of `child`'s stdout, closes the pipe (as `head`
/// does), and waits for it.
fn read_a_little_and_hang_up(mut child: Child) -> std::process::Output {
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 4096];
    assert!(stdout.read(&mut first).unwrap() > 0, "nothing was printed");
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    }
}

/// `estargz ls BLOB | head -1` ends quietly with success, like `ls | head`;
/// `unpack -o - | head -1` loses the rest of the tar, so it fails.
#[test]
fn a_reader_going_away_ends_listings_quietly_and_fails_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let blob = many_entries_blob(dir.path());
    let blob = blob.to_str().unwrap();
    let spawn = |args: &[&str]| {
        estargz(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    for args in [
        &["ls", blob][..],
        &["ls", "-l", blob],
        &["ls", "--json", blob],
        &["cat", blob, "dir/big"],
    ] {
        let out = read_a_little_and_hang_up(spawn(args));
        let what = args.join(" ");
        assert_exit_for(&out, 0, &what);
        assert_eq!(stderr_of(&out), "", "{what}");
    }
    let out = read_a_little_and_hang_up(spawn(&["unpack", blob, "-o", "-"]));
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("Broken pipe"),
        "{}",
        stderr_of(&out)
    );

    // Through a shell pipeline, as a user runs it.
    let out = Command::new("bash")
        .args([
            "-c",
            "set -o pipefail; \"$0\" ls \"$1\" | head -1 >/dev/null",
            env!("CARGO_BIN_EXE_estargz"),
            blob,
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(stderr_of(&out), "");
}

/// Every command's stdout a pipe nobody reads any more: the first write
/// fails with EPIPE. Printing commands end quietly (`info`, `digest` and
/// `verify` used to panic in println!); blob writers fail.
#[test]
fn a_pipe_already_closed_ends_printing_quietly_and_fails_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let blob = many_entries_blob(dir.path());
    let blob = blob.to_str().unwrap();
    let run_into_closed_pipe = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        estargz(args).stdout(writer).output().unwrap()
    };
    for args in [
        &["ls", blob][..],
        &["cat", blob, "dir/big"],
        &["info", blob],
        &["info", "--json", blob],
        &["digest", blob],
        &["digest", "--json", blob],
        &["verify", blob],
        &["verify", "--json", blob],
    ] {
        let out = run_into_closed_pipe(args);
        let what = args.join(" ");
        assert_exit_for(&out, 0, &what);
        assert_eq!(stderr_of(&out), "", "{what}");
    }
    for args in [
        &["convert", SAMPLE_LAYER, "-o", "-", "-q"][..],
        &["unpack", blob, "-o", "-"],
    ] {
        let out = run_into_closed_pipe(args);
        let what = args.join(" ");
        assert_exit_for(&out, 1, &what);
        assert!(
            stderr_of(&out).contains("Broken pipe"),
            "{what}: {}",
            stderr_of(&out)
        );
    }
}

/// Whether `pid` has a file in `dir` open (an unnamed O_TMPFILE shows as
/// `DIR/#INODE (deleted)`).
fn has_open_file_in(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| target.starts_with(dir))
}

/// SIGKILL (the OOM killer's signal) mid-conversion: no handler runs, and
/// still nothing is left in the output directory.
#[test]
fn convert_killed_with_sigkill_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().canonicalize().unwrap().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("out.esgz");
    let mut child = estargz(["convert", "-", "-o", output.to_str().unwrap(), "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Half a tar: the converter waits, mid-stream, for the rest.
    let tar = read(SAMPLE_LAYER);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&tar[..tar.len() / 2]).unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_open_file_in(child.id(), &out_dir) && dir_listing(&out_dir).is_empty() {
        assert!(Instant::now() < deadline, "the output was never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(dir_listing(&out_dir), Vec::<String>::new());
}

/// Field 22 of /proc/self/stat: this process's start time.
fn own_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

fn own_pid_namespace() -> u64 {
    let link = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let text = link.to_str().unwrap();
    text["pid:[".len()..text.len() - 1].parse().unwrap()
}

/// A pid no process has: one that just exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// The next run in a directory removes the partial outputs of dead runs
/// (pid gone, or reused by a process that started later) and keeps those
/// of live ones and names it does not own.
#[test]
fn stale_partials_of_dead_runs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (me, start, ns) = (std::process::id(), own_start_time(), own_pid_namespace());
    let dead = dead_pid();
    let stale_file = format!(".estargz-{dead}-{start}-{ns}-AbC123.partial");
    let stale_dir = format!(".estargz-image-{dead}-{start}-{ns}-DeF456.partial");
    let reused = format!(".estargz-{me}-{}-{ns}-GhI789.partial", start + 1);
    let live = format!(".estargz-{me}-{start}-{ns}-JkL012.partial");
    // Another pid namespace, recent: its pid means nothing here.
    let foreign = format!(".estargz-{dead}-{start}-{}-MnO345.partial", ns + 1);
    let unknown = ".estargz-PqR678.partial".to_string();
    let aside = format!(".estargz-image-{dead}-{start}-{ns}-StU901.old");
    for name in [&stale_file, &reused, &live, &foreign, &unknown, &aside] {
        std::fs::write(dir.path().join(name), b"partial").unwrap();
    }
    std::fs::create_dir(dir.path().join(&stale_dir)).unwrap();
    std::fs::write(dir.path().join(&stale_dir).join("blob"), b"x").unwrap();

    let output = dir.path().join("out.esgz");
    assert_exit(
        &run([
            "convert",
            SAMPLE_LAYER,
            "-o",
            output.to_str().unwrap(),
            "-q",
        ]),
        0,
    );
    let mut kept = vec![aside, unknown, foreign, live, "out.esgz".to_string()];
    kept.sort();
    assert_eq!(dir_listing(dir.path()), kept);
}
