//! Mounting blobs served over HTTP by a real nginx: requests are counted
//! from its access log, and stopping it mid-read gives EIO, not a hang.

use super::fixture::{compare_tree, expected, layer_tar, BIG, SMALL};
use super::{convert, fuse_available, read_all, Mount};
use crate::common::nginx::Nginx;
use crate::common::noise;
use std::fs;
use std::os::unix::fs::FileExt;

fn blob_size(server: &Nginx, name: &str) -> u64 {
    fs::metadata(server.www().join(name)).unwrap().len()
}

/// nginx serving the fixture layer as `layer.esgz` (512 KiB chunks), or
/// `None` where FUSE or nginx is missing (outside CI).
fn serving_the_layer() -> Option<Nginx> {
    if !fuse_available() {
        return None;
    }
    let server = Nginx::start()?;
    let args = ["--chunk-size", "524288"];
    convert(&server.www(), "layer.esgz", &layer_tar(), &args);
    Some(server)
}

#[test]
fn reading_one_small_file_costs_one_small_request() {
    let Some(server) = serving_the_layer() else {
        return;
    };
    let size = blob_size(&server, "layer.esgz");
    let (mount, opened) = server.requests_during(|| Mount::start(&server.url("layer.esgz"), &[]));
    assert_eq!(opened.len(), 1, "open reads the tail only: {opened:?}");

    // Names and attributes come from the TOC: no request at all.
    let (names, listing) = server.requests_during(|| super::fixture::walk(mount.dir()));
    assert!(names.len() > 60);
    assert_eq!(listing, vec![], "listing the tree");

    let (data, small) = server.requests_during(|| read_all(&mount.path(SMALL)).unwrap());
    assert_eq!(data, b"fixture-host\n");
    assert_eq!(small.len(), 1, "{small:?}");
    let bytes: u64 = small.iter().map(|r| r.body_bytes).sum();
    assert!(
        bytes < 64 << 10,
        "{bytes} bytes for a 13-byte file: {small:?}"
    );

    // The whole tree reads back exactly, without fetching the blob twice.
    let (_, all) = server.requests_during(|| compare_tree(mount.dir(), &layer_tar(), true));
    let bytes: u64 = all.iter().map(|r| r.body_bytes).sum();
    assert!(bytes <= size, "{bytes} bytes fetched of a {size}-byte blob");
    assert!(all.iter().all(|r| r.status == 206), "{all:?}");
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("HTTP requests"), "{stderr}");
}

#[test]
fn stopping_the_server_mid_read_is_eio_and_unmounting_stays_clean() {
    let Some(server) = serving_the_layer() else {
        return;
    };
    let url = server.url("layer.esgz");
    let mut mount = Mount::start(&url, &["--retries", "0", "--timeout", "5"]);
    let big = expected(&layer_tar())
        .into_iter()
        .find(|e| e.path == BIG)
        .unwrap()
        .data;
    let file = fs::File::open(mount.path(BIG)).unwrap();
    let mut head = vec![0u8; 4096];
    file.read_exact_at(&mut head, 0).unwrap();
    assert!(head == big[..4096]);

    drop(server);
    let mut rest = vec![0u8; 1 << 20];
    let err = file.read_exact_at(&mut rest, 3 << 20).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Again: a failure is not remembered as data.
    let err = file.read_exact_at(&mut rest, 3 << 20).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // What was read before the server went still reads.
    file.read_exact_at(&mut head, 0).unwrap();
    assert!(head == big[..4096]);
    let stderr = mount.wait_for_stderr("failed, EIO");
    assert!(stderr.contains(BIG), "{stderr}");
    drop(file);
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn the_prefetch_region_comes_in_one_request_and_background_fetch_the_rest() {
    if !fuse_available() {
        return;
    }
    let Some(server) = Nginx::start() else { return };
    let list = server.www().join("prioritized.txt");
    fs::write(&list, "etc/hostname\ndata/medium.bin\nbin/suid\n").unwrap();
    let list = list.to_str().unwrap();
    let args = ["--chunk-size", "524288", "--prioritized-files", list];
    convert(&server.www(), "layer.esgz", &layer_tar(), &args);
    let url = server.url("layer.esgz");
    let mut mount = Mount::start(&url, &["--background-fetch"]);
    let stderr = mount.wait_for_stderr("background fetch:");
    assert!(stderr.contains("background fetch: done"), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("prefetch of [0, "))
        .unwrap();
    assert!(
        line.contains("done") && line.contains(" in 1 reads"),
        "{line}"
    );
    let end: u64 = line["estargz: prefetch of [0, ".len()..]
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // One request for the region: from its first chunk's bytes to its end.
    let requests = server.requests();
    let in_region: Vec<_> = requests
        .iter()
        .filter(|r| {
            let range = r.range.as_deref().unwrap_or("");
            let first = range
                .trim_start_matches("bytes=")
                .split('-')
                .next()
                .unwrap();
            first.parse::<u64>().is_ok_and(|at| at < end)
        })
        .collect();
    assert_eq!(in_region.len(), 1, "{requests:?}");
    let range = in_region[0].range.as_deref().unwrap();
    assert!(range.ends_with(&format!("-{}", end - 1)), "{range}");

    // Everything is cached now: reading the whole tree asks for nothing.
    let (_, reads) = server.requests_during(|| compare_tree(mount.dir(), &layer_tar(), true));
    assert_eq!(reads, vec![], "reads after the background fetch");
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_stalled_server_is_eio_at_the_deadline_and_other_reads_go_on() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = convert(
        tmp.path(),
        "layer.esgz",
        &layer_tar(),
        &["--chunk-size", "524288"],
    );
    let blob = fs::read(&path).unwrap();
    // Responses stop short inside chunk 5 of the big file and hang there.
    let toc = crate::common::toc(&blob);
    let chunk = toc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == BIG)
        .nth(5)
        .unwrap();
    let stall_at = chunk["offset"].as_u64().unwrap() as usize + 1000;
    let server = crate::cli_unpack_dir::StallingServer::start(blob, stall_at);
    let mount = Mount::start(&server.url, &["--retries", "0", "--timeout", "1"]);
    let big = mount.path(BIG);
    let stalled = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        fs::File::open(big)
            .unwrap()
            .read_exact_at(&mut buf, 5 * 524_288 + 10)
            .unwrap_err()
    });
    // Meanwhile the mount answers other requests.
    assert_eq!(read_all(&mount.path(SMALL)).unwrap(), b"fixture-host\n");
    assert!(super::fixture::walk(mount.dir()).len() > 60);
    let err = stalled.join().unwrap();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("failed, EIO"), "{stderr}");
}

/// `"end": N` of the `prefetch` object `estargz info --json` prints for
/// `blob`.
fn prefetch_end(blob: &std::path::Path) -> u64 {
    let out = crate::common::estargz(["info", "--json"])
        .arg(blob)
        .output()
        .unwrap();
    let json = String::from_utf8(out.stdout).unwrap();
    let at = json.find("\"prefetch\"").expect("a prefetch region");
    let rest = &json[at..];
    let digits = rest[rest.find("\"end\":").unwrap() + "\"end\":".len()..].trim_start();
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap();
    digits[..end].parse().unwrap()
}

/// `[first, last]` of a logged `Range: bytes=FIRST-LAST`.
fn span(r: &crate::common::nginx::Request) -> (u64, u64) {
    let range = r.range.as_deref().expect("a range request");
    let (first, last) = range.trim_start_matches("bytes=").split_once('-').unwrap();
    (first.parse().unwrap(), last.parse().unwrap())
}

#[test]
fn reading_the_prefetch_region_on_demand_fetches_nothing_past_its_end() {
    if !fuse_available() {
        return;
    }
    let Some(server) = Nginx::start() else { return };
    let files: Vec<(String, Vec<u8>)> = (0..30u64)
        .map(|i| (format!("app/f{i:02}"), noise::noise(300 + i, 30_000)))
        .chain([("rest/big".to_string(), noise::noise(400, 2 << 20))])
        .collect();
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in &files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, &data[..]).unwrap();
    }
    let list = server.www().join("prioritized.txt");
    let names: Vec<&str> = files[..30].iter().map(|(n, _)| n.as_str()).collect();
    fs::write(&list, names.join("\n")).unwrap();
    let args = ["--prioritized-files", list.to_str().unwrap()];
    let blob = convert(
        &server.www(),
        "layer.esgz",
        &tar.into_inner().unwrap(),
        &args,
    );
    let end = prefetch_end(&blob);
    let mount = Mount::start(&server.url("layer.esgz"), &["--no-prefetch"]);
    let (_, logged) = server.requests_during(|| {
        for (name, data) in &files[..30] {
            assert!(read_all(&mount.path(name)).unwrap() == *data, "{name}");
        }
    });
    for r in &logged {
        assert!(span(r).1 < end, "{r:?} reads past the region's end {end}");
    }
    let bytes: u64 = logged.iter().map(|r| r.body_bytes).sum();
    assert!(bytes <= end, "{bytes} bytes for a region of {end}");
    assert!(logged.len() <= 10, "{} requests: {logged:?}", logged.len());
    // A file of the rest, read whole: exactly its bytes, in few requests.
    let (data, logged) = server.requests_during(|| read_all(&mount.path("rest/big")).unwrap());
    assert!(data == files[30].1);
    assert!(logged.iter().all(|r| span(r).0 >= end), "{logged:?}");
    assert!(logged.len() <= 3, "{logged:?}");
    let (status, stderr) = mount.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_disk_cache_serves_later_mounts_and_other_layers_without_requests() {
    let Some(server) = serving_the_layer() else {
        return;
    };
    // The same tree as zstd:chunked: other bytes, the same chunks.
    let args = ["--chunk-size", "524288", "--compression", "zstd:chunked"];
    convert(&server.www(), "layer.zst", &layer_tar(), &args);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let with_cache = ["--disk-cache", cache_dir, "--background-fetch"];

    let mut first = Mount::start(&server.url("layer.esgz"), &with_cache);
    let stderr = first.wait_for_stderr("background fetch:");
    assert!(stderr.contains("background fetch: done"), "{stderr}");
    let (status, stderr) = first.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains(" 0 hits, "), "{stderr}");
    assert!(!stderr.contains(" 0 chunks ("), "{stderr}");

    for blob in ["layer.esgz", "layer.zst"] {
        let mut mount = Mount::start(&server.url(blob), &with_cache);
        mount.wait_for_stderr("background fetch: done; 0 chunks");
        let (_, reads) = server.requests_during(|| compare_tree(mount.dir(), &layer_tar(), true));
        assert_eq!(reads, vec![], "{blob}: reads with every chunk on disk");
        let (status, stderr) = mount.stop();
        assert!(status.success(), "{stderr}");
        assert!(stderr.contains(" 0 chunks (0 bytes) written"), "{stderr}");
        assert!(stderr.contains(" 0 bad entries dropped"), "{stderr}");
    }
}
