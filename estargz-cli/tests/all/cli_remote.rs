//! End-to-end tests of `ls`, `cat`, `info`, `verify` and `unpack` on blobs given as
//! `http://` URLs, served by a real nginx on loopback (see
//! `common/nginx.rs`). Requests are counted from nginx's access log: what
//! the server saw, not what the client says it did.

use crate::common;

use common::nginx::{Nginx, Request, TOKEN};
use common::noise::noise;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// What `HttpBlob` fetches from the end of a blob on open (its default).
const TAIL: u64 = 512 << 10;

fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        append_file(&mut tar, name, data);
    }
    tar.into_inner().unwrap()
}

/// Converts `files` into `www/name` of the server; returns the local path.
fn serve_blob(server: &Nginx, name: &str, files: &[(String, Vec<u8>)]) -> PathBuf {
    let tar = server.www().join(format!("{name}.tar"));
    std::fs::write(&tar, tar_of(files)).unwrap();
    let blob = server.www().join(name);
    let out = run(convert_args(&tar, &blob, &[]));
    assert_exit(&out, 0);
    blob
}

/// A 3 MiB blob: a small file, 3 MiB of noise, a small file; its TOC fits
/// in the tail fetched on open, the first small file does not.
fn big_blob(server: &Nginx) -> PathBuf {
    serve_blob(
        server,
        "big.esgz",
        &[
            ("etc/hostname".into(), b"remote-host\n".to_vec()),
            ("data/noise.bin".into(), noise(1, 3 << 20)),
            ("etc/motd".into(), b"welcome\n".to_vec()),
        ],
    )
}

/// The sample layer converted: about 110 KB, smaller than the tail.
fn small_blob(server: &Nginx) -> PathBuf {
    let blob = server.www().join("small.esgz");
    let out = run(convert_args(Path::new(SAMPLE_LAYER), &blob, &[]));
    assert_exit(&out, 0);
    blob
}

/// `[offset, end)` of the member run holding regular file `name`: from its
/// TOC offset to the next larger offset in the TOC (or the TOC itself).
fn member_range(blob: &[u8], name: &str) -> (u64, u64) {
    let toc = toc(blob);
    let entries = toc["entries"].as_array().unwrap();
    let offset_of = |e: &Value| e["offset"].as_u64().unwrap_or(0);
    let entry = entries
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the TOC"));
    let start = offset_of(entry);
    let end = entries
        .iter()
        .map(offset_of)
        .filter(|&o| o > start)
        .min()
        .unwrap_or(toc_offset(blob) as u64);
    (start, end)
}

fn range(start: u64, end: u64) -> Option<String> {
    Some(format!("bytes={start}-{}", end - 1))
}

fn ranges(requests: &[Request]) -> Vec<Option<String>> {
    requests.iter().map(|r| r.range.clone()).collect()
}

fn no_panic(out: &Output) {
    let stderr = stderr_of(out);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic: {stderr}"
    );
}

#[test]
fn cat_costs_the_tail_and_the_files_member() {
    let Some(server) = Nginx::start() else { return };
    let path = big_blob(&server);
    let bytes = read(&path);
    let size = bytes.len() as u64;
    assert!(
        size > 3 * TAIL,
        "blob of {size} bytes is too small for this test"
    );
    assert!(
        (toc_offset(&bytes) as u64) > size - TAIL,
        "the TOC should fit in the tail"
    );
    let url = server.url("big.esgz");

    let (out, requests) = server.requests_during(|| run(["cat", &url, "etc/hostname"]));
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"remote-host\n");
    let (start, end) = member_range(&bytes, "etc/hostname");
    eprintln!("cat etc/hostname: {requests:?}");
    assert_eq!(
        ranges(&requests),
        vec![Some(format!("bytes=-{TAIL}")), range(start, end)],
        "footer and TOC in one request, then exactly the file's member"
    );
    assert!(requests.iter().all(|r| r.status == 206), "{requests:?}");
    assert_eq!(requests[1].body_bytes, end - start);

    // A file whose member is in the tail costs nothing more.
    let (out, requests) = server.requests_during(|| run(["cat", &url, "etc/motd"]));
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"welcome\n");
    assert_eq!(ranges(&requests), vec![Some(format!("bytes=-{TAIL}"))]);
}

#[test]
fn cat_with_a_toc_larger_than_the_tail_costs_three_requests() {
    let Some(server) = Nginx::start() else { return };
    // Thousands of files with distinct contents: their digests make a TOC
    // of several hundred KiB even compressed.
    let mut files: Vec<(String, Vec<u8>)> = (0..14000u64)
        .map(|i| (format!("many/{i:05}"), noise(i + 7, 24)))
        .collect();
    files.insert(0, ("etc/hostname".into(), b"toc-host\n".to_vec()));
    let path = serve_blob(&server, "bigtoc.esgz", &files);
    let bytes = read(&path);
    let size = bytes.len() as u64;
    let toc_at = toc_offset(&bytes) as u64;
    assert!(
        toc_at < size - TAIL,
        "the TOC ({} bytes) should not fit in the tail",
        size - toc_at
    );
    let url = server.url("bigtoc.esgz");

    let (out, requests) = server.requests_during(|| run(["cat", &url, "etc/hostname"]));
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"toc-host\n");
    let (start, end) = member_range(&bytes, "etc/hostname");
    eprintln!("cat etc/hostname (large TOC): {requests:?}");
    assert_eq!(
        ranges(&requests),
        vec![
            Some(format!("bytes=-{TAIL}")),
            range(toc_at, size - TAIL),
            range(start, end)
        ],
        "the tail, the rest of the TOC (not again what the tail holds), the file's member"
    );
}

#[test]
fn a_blob_smaller_than_the_tail_costs_one_request() {
    let Some(server) = Nginx::start() else { return };
    let path = small_blob(&server);
    let url = server.url("small.esgz");
    let local_cat = run(["cat", path.to_str().unwrap(), "etc/group"]);
    assert_exit(&local_cat, 0);
    let (out, requests) = server.requests_during(|| run(["cat", &url, "etc/group"]));
    assert_exit(&out, 0);
    assert_eq!(out.stdout, local_cat.stdout);
    assert_eq!(ranges(&requests), vec![Some(format!("bytes=-{TAIL}"))]);
    assert_eq!(requests[0].body_bytes, read(&path).len() as u64);
}

/// Runs `args` on the local path and on the URL and compares exit codes
/// and output, with the URL shown as the path.
fn assert_same_output(server: &Nginx, path: &Path, url: &str, args: &[&str]) -> Vec<Request> {
    let with = |blob: &str| {
        let mut all = vec![args[0], blob];
        all.extend_from_slice(&args[1..]);
        run(all)
    };
    let local = with(path.to_str().unwrap());
    let (remote, requests) = server.requests_during(|| with(url));
    let shown = |out: &Output| {
        (
            out.status.code(),
            stdout_of(out).replace(url, &path.display().to_string()),
            stderr_of(out).replace(url, &path.display().to_string()),
        )
    };
    assert_eq!(shown(&remote), shown(&local), "{args:?} on {url}");
    requests
}

#[test]
fn ls_info_verify_cat_give_the_same_output_as_on_the_local_file() {
    let Some(server) = Nginx::start() else { return };
    let big = big_blob(&server);
    let small = small_blob(&server);
    let size = read(&big).len() as u64;
    for (path, url) in [
        (&big, server.url("big.esgz")),
        (&small, server.url("small.esgz")),
        // Redirects are followed.
        (&big, server.url("moved/big.esgz")),
    ] {
        for args in [
            &["ls"][..],
            &["ls", "-l"],
            &["ls", "--json"],
            &["info"],
            &["info", "--json"],
            &["verify"],
            &["verify", "--json"],
            &["cat", "etc/motd"],
            &["unpack", "-o", "-"],
        ] {
            let requests = assert_same_output(&server, path, &url, args);
            if path == &big && !url.contains("moved") {
                eprintln!(
                    "{args:?}: {} requests {:?}",
                    requests.len(),
                    ranges(&requests)
                );
                // verify and info read the whole blob: a few large
                // requests (sequential reads double the request size),
                // never one per small read.
                let bound = match args[0] {
                    "verify" | "info" | "unpack" => 1 + 4,
                    _ => 1,
                };
                assert!(requests.len() <= bound, "{args:?}: {requests:?}");
                let sent: u64 = requests.iter().map(|r| r.body_bytes).sum();
                assert!(
                    sent <= size + TAIL,
                    "{args:?}: {sent} bytes for a {size}-byte blob"
                );
            }
        }
    }
}

#[test]
fn missing_blob_is_an_error_naming_the_url_and_status() {
    let Some(server) = Nginx::start() else { return };
    let url = server.url("missing.esgz");
    for args in [
        vec!["ls", &url],
        vec!["cat", &url, "etc/hostname"],
        vec!["info", &url],
        vec!["verify", &url],
        vec!["verify", "--json", &url],
    ] {
        let out = run(&args);
        assert_exit_for(&out, 1, format!("{args:?}"));
        let stderr = stderr_of(&out);
        assert!(stderr.contains(&url), "{args:?}: {stderr}");
        assert!(stderr.contains("404 Not Found"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_server_that_ignores_ranges_is_refused_unless_the_blob_fits_in_the_tail() {
    let Some(server) = Nginx::start() else { return };
    big_blob(&server);
    let small = small_blob(&server);

    let url = server.url("noranges/big.esgz");
    let (out, requests) = server.requests_during(|| run(["ls", &url]));
    assert_exit(&out, 1);
    let stderr = stderr_of(&out);
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("does not serve range requests"), "{stderr}");
    assert_eq!(
        requests.len(),
        1,
        "gave up after the first answer: {requests:?}"
    );
    assert_eq!(requests[0].status, 200);

    // A blob no larger than the tail is what the first request asks for
    // anyway: the whole body is used.
    let url = server.url("noranges/small.esgz");
    assert_same_output(&server, &small, &url, &["ls", "-l"]);
    let requests = assert_same_output(&server, &small, &url, &["verify"]);
    assert_eq!(requests.len(), 1, "{requests:?}");
}

#[test]
fn truncated_or_damaged_remote_blobs_fail_without_panicking() {
    let Some(server) = Nginx::start() else { return };
    let bytes = read(big_blob(&server));
    let (noise_start, noise_end) = member_range(&bytes, "data/noise.bin");

    server.serve("no-footer.esgz", &bytes[..bytes.len() - 20]);
    server.serve("half.esgz", &bytes[..bytes.len() / 2]);
    server.serve("empty.esgz", b"");
    let mut damaged = bytes.clone();
    let mid = ((noise_start + noise_end) / 2) as usize;
    for b in &mut damaged[mid..mid + 64] {
        *b ^= 0x5a;
    }
    server.serve("damaged.esgz", &damaged);

    for name in ["no-footer.esgz", "half.esgz", "empty.esgz"] {
        let url = server.url(name);
        for args in [
            vec!["ls", &url],
            vec!["cat", &url, "etc/hostname"],
            vec!["info", &url],
            vec!["verify", &url],
        ] {
            let out = run(&args);
            assert_exit_for(&out, 1, format!("{args:?}"));
            no_panic(&out);
            assert!(
                stderr_of(&out).contains(&url),
                "{args:?}: {}",
                stderr_of(&out)
            );
        }
    }

    let url = server.url("damaged.esgz");
    let out = run(["ls", &url]);
    assert_exit(&out, 0);
    let out = run(["cat", &url, "etc/hostname"]);
    assert_exit(&out, 0);
    for args in [vec!["cat", &url, "data/noise.bin"], vec!["verify", &url]] {
        let out = run(&args);
        assert_exit_for(&out, 1, format!("{args:?}"));
        no_panic(&out);
    }
    let out = run(["verify", "--json", &url]);
    assert_exit(&out, 1);
    let report = json_object(&out.stdout);
    assert_eq!(report["valid"], Value::Bool(false));
}

#[test]
fn a_server_failing_mid_read_is_an_error_naming_url_range_and_status() {
    let Some(server) = Nginx::start() else { return };
    let bytes = read(big_blob(&server));
    let url = server.url("flaky/big.esgz");
    // Opening works (the tail is served), reading the file's member does not.
    let (start, end) = member_range(&bytes, "etc/hostname");
    // A 503 is retried: once here, to keep the test short.
    let (out, requests) =
        server.requests_during(|| run(["cat", "--retries", "1", &url, "etc/hostname"]));
    assert_exit(&out, 1);
    no_panic(&out);
    let stderr = stderr_of(&out);
    let wanted = range(start, end).unwrap();
    for part in [
        url.as_str(),
        wanted.as_str(),
        "503 Service Unavailable",
        "gave up after 2 attempts",
    ] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [206, 503, 503]);
    for args in [
        vec!["verify", "--retries", "0", &url],
        vec!["info", "--retries", "0", &url],
        vec!["unpack", "--retries", "0", &url, "-o", "-"],
    ] {
        let out = run(&args);
        assert_exit_for(&out, 1, format!("{args:?}"));
        no_panic(&out);
        assert!(
            stderr_of(&out).contains("503"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    // The blob could not be read: unreadable, not a bad payload.
    let out = run(["verify", "--json", "--retries", "0", &url]);
    assert_exit(&out, 1);
    no_panic(&out);
    let report = json_object(&out.stdout);
    assert_eq!(report["valid"], Value::Bool(false));
    let problems = report["problems"].as_array().expect("a problem list");
    let kinds: Vec<&Value> = problems.iter().map(|p| &p["kind"]).collect();
    assert_eq!(kinds, [&Value::from("unreadable")], "{problems:?}");
    let message = problems[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&url) && message.contains("503"),
        "{message}"
    );
    // ls needs only the tail.
    assert_exit(&run(["ls", &url]), 0);
}

#[test]
fn https_with_the_servers_ca() {
    let Some(server) = Nginx::start_with_tls() else {
        return;
    };
    let big = big_blob(&server);
    let url = server.https_url("big.esgz");
    let ca = server.ca();
    let ca = ca.to_str().unwrap();

    let local = run(["ls", "-l", big.to_str().unwrap()]);
    let out = run(["ls", "-l", &url, "--cacert", ca]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, local.stdout);
    let (out, requests) =
        server.requests_during(|| run(["cat", &url, "etc/hostname", "--cacert", ca]));
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"remote-host\n");
    assert_eq!(requests.len(), 2, "{requests:?}");

    // The bundled Mozilla roots do not know this CA.
    let out = run(["ls", &url]);
    assert_exit(&out, 1);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&url) && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );

    let out = run(["ls", &url, "--cacert", "/nonexistent/ca.pem"]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("/nonexistent/ca.pem"),
        "{}",
        stderr_of(&out)
    );
    let out = run(["ls", &url, "--cacert", big.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("CA certificates"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn headers_for_a_private_blob() {
    let Some(server) = Nginx::start() else { return };
    let big = big_blob(&server);
    let url = server.url("private/big.esgz");
    let auth = format!("Authorization: Bearer {TOKEN}");

    let out = run(["ls", &url]);
    assert_exit(&out, 1);
    assert!(
        stderr_of(&out).contains("401 Unauthorized"),
        "{}",
        stderr_of(&out)
    );

    let local = run(["ls", big.to_str().unwrap()]);
    let out = run(["ls", &url, "--header", &auth]);
    assert_exit(&out, 0);
    assert_eq!(out.stdout, local.stdout);

    let out = estargz(["cat", &url, "etc/hostname"])
        .env("ESTARGZ_HTTP_HEADERS", format!("X-Other: 1\n{auth}\n"))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(out.stdout, b"remote-host\n");

    for bad in ["no colon", "Bad Name: x"] {
        let out = run(["ls", &url, "--header", bad]);
        assert_exit_for(&out, 2, bad);
        assert!(!stderr_of(&out).contains(TOKEN));
    }
}

#[test]
fn a_server_that_never_answers_fails_by_the_timeout() {
    // Connections are accepted and held, never answered; the listener
    // lives as long as this test, so its port is nobody else's.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/blob", listener.local_addr().unwrap());
    let holder = std::thread::spawn(move || {
        // Bounded: `ls` makes one request, and retries none after a timeout.
        listener.set_nonblocking(true).unwrap();
        let started = std::time::Instant::now();
        let mut held = Vec::new();
        while started.elapsed() < std::time::Duration::from_secs(30) && held.len() < 4 {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        held.len()
    });
    let started = std::time::Instant::now();
    let out = run(["ls", "--timeout", "1", &url]);
    let took = started.elapsed();
    assert_exit(&out, 1);
    no_panic(&out);
    let stderr = stderr_of(&out);
    assert!(
        took < std::time::Duration::from_secs(20),
        "{took:?}: {stderr}"
    );
    for part in [
        url.as_str(),
        "bytes=-524288",
        "timed out: no complete response within 5.0 s",
    ] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
    drop(holder);
}

#[test]
fn another_server_on_the_port_is_not_taken_for_nginx() {
    // Another test's server holds the port nginx was to bind: nginx exits
    // (here: a child that never listens, and exits), and the harness must
    // see that rather than the other server answering.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let foreign = std::thread::spawn(move || {
        use std::io::{Read, Write};
        listener.set_nonblocking(true).unwrap();
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(10) {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nother\n");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ready = common::nginx::wait_ready(&mut child, port, "this instance\n", dir.path());
    assert!(ready.is_err(), "a foreign listener was taken for nginx");
    drop(foreign);
}
