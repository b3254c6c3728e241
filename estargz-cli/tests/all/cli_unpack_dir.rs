//! `estargz unpack -C`: deep trees with few descriptors, and what it says
//! when it stops part way (an error, or a signal) and leaves a partial tree.

use crate::common;

use common::noise::noise;
use common::*;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A tar of `(name, data)` files, `None` data meaning a directory.
fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_000_000_000);
        match data {
            Some(d) => {
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, *d).unwrap();
            }
            None => {
                h.set_mode(0o755);
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Converts `tar` with the CLI into `dir/blob.esgz`.
fn blob_in(dir: &Path, tar: &[u8]) -> PathBuf {
    let input = dir.join("in.tar");
    let blob = dir.join("blob.esgz");
    std::fs::write(&input, tar).unwrap();
    let chunk = OsStr::new("--chunk-size=65536");
    let out = run(convert_args(&input, &blob, &[chunk]));
    assert_exit_for(&out, 0, "convert");
    blob
}

#[test]
fn a_deep_tree_unpacks_and_is_cleared_with_few_descriptors() {
    // 700 levels, then an opaque whiteout at the top removing them all:
    // removing recursively with a descriptor per level needs ~700, more
    // than the 128 allowed here.
    let tmp = tempfile::tempdir().unwrap();
    let chain = vec!["d"; 700].join("/");
    let deep = format!("{chain}/f");
    let blob = blob_in(
        tmp.path(),
        &tar_of(&[
            (&deep, Some(b"deep")),
            (".wh..wh..opq", Some(b"")),
            ("after", Some(b"x")),
        ]),
    );
    let dest = tmp.path().join("out");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_estargz"))
        .args([OsStr::new("unpack"), blob.as_os_str(), OsStr::new("-C")])
        .arg(&dest)
        .arg("--apply-whiteouts")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(dir_listing(&dest), vec!["after".to_string()]);
}

#[test]
fn a_failed_unpack_says_how_far_it_got_and_which_file_is_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let big = noise(7, 3 << 20);
    let mut blob = read(blob_in(
        tmp.path(),
        &tar_of(&[("a", Some(b"first")), ("b", Some(&big))]),
    ));
    // Halfway through: inside b's data, which is nearly all of the blob.
    let at = blob.len() / 2;
    for byte in &mut blob[at..at + 64] {
        *byte ^= 0x5a;
    }
    let bad = tmp.path().join("bad.esgz");
    std::fs::write(&bad, &blob).unwrap();
    let dest = tmp.path().join("out");
    let out = run([
        OsStr::new("unpack"),
        bad.as_os_str(),
        OsStr::new("-C"),
        dest.as_os_str(),
    ]);
    assert_exit(&out, 1);
    let err = stderr_of(&out);
    let expected = format!(
        "stopped after 1 entry; {} may be incomplete; {} holds a partial tree",
        dest.join("b").display(),
        dest.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"first");
}

/// Serves a blob to range requests, but stops every response at blob byte
/// `stall_at` and holds the connection until dropped: a download that hangs.
pub(crate) struct StallingServer {
    pub(crate) url: String,
    stop: Arc<AtomicBool>,
}

impl StallingServer {
    pub(crate) fn start(blob: Vec<u8>, stall_at: usize) -> StallingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/blob", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let (blob, flag) = (Arc::new(blob), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (blob, flag) = (blob.clone(), flag.clone());
                std::thread::spawn(move || serve(conn, &blob, stall_at, &flag));
            }
        });
        StallingServer { url, stop }
    }
}

impl Drop for StallingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Answers range requests on one connection until it closes or stalls.
fn serve(conn: TcpStream, blob: &[u8], stall_at: usize, stop: &AtomicBool) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(spec) = line.strip_prefix("range: bytes=") {
                range = Some(spec.to_owned());
            }
        }
        let total = blob.len();
        let (first, last) = match range.as_deref().and_then(|r| r.split_once('-')) {
            Some(("", n)) => (total - n.parse::<usize>().unwrap().min(total), total - 1),
            Some((a, b)) => (
                a.parse().unwrap(),
                b.parse::<usize>().unwrap().min(total - 1),
            ),
            None => (0, total - 1),
        };
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{total}\r\n\
             Content-Length: {}\r\n\r\n",
            last - first + 1
        );
        let stalls = (first..=last).contains(&stall_at);
        let end = if stalls { stall_at } else { last + 1 };
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&blob[first..end]).is_err() {
            return;
        }
        let _ = conn.flush();
        if stalls {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
    }
}

#[test]
fn an_interrupted_unpack_says_how_far_it_got_and_which_file_is_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let big = noise(9, 20 << 20);
    let blob = read(blob_in(
        tmp.path(),
        &tar_of(&[("a", Some(b"first")), ("b", Some(&big))]),
    ));
    // Three quarters in: the payload is read about 13.5 MiB at a time, so
    // the request that stalls comes after b's first MiB was written, and
    // the tail fetched when opening the blob is served whole.
    let server = StallingServer::start(blob.clone(), blob.len() * 3 / 4);
    let dest = tmp.path().join("out");
    let child = estargz([
        OsStr::new("unpack"),
        OsStr::new(&server.url),
        OsStr::new("-C"),
        dest.as_os_str(),
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Ready when b holds data: the unpack is inside it, waiting for more.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(dest.join("b")).map_or(true, |m| m.len() == 0) {
        assert!(
            Instant::now() < deadline,
            "the unpack never started writing b"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 130);
    let err = stderr_of(&out);
    let expected = format!(
        "interrupted: unpacking {} into {} stopped after 1 entry; {} may be incomplete; {} holds \
         a partial tree",
        server.url,
        dest.display(),
        dest.join("b").display(),
        dest.display()
    );
    assert!(err.contains(&expected), "{err}");
    drop(server);
}
