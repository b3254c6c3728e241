//! The conversion cache of `estargz convert-image` (`--cache`,
//! `--no-cache`, `--cache-max`): layouts and a real registry
//! (`docker-registry`, whose access log tells which blobs were fetched).

use crate::common::registry::RegistryServer;
use crate::common::*;
use crate::convert_image_registry::{
    convert, skopeo, skopeo_ok, NO_TLS, OCI_CONFIG, OCI_MANIFEST, OCI_TAR,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An OCI layout at `dir` of one image whose layers are tars of one file
/// each, named as given (same size, so the converted blobs are about as
/// large); returns the layer digests.
fn build_image(dir: &Path, files: &[&str]) -> Vec<String> {
    init_layout(dir);
    let blob = |bytes: &[u8], media_type: &str| put_blob(dir, bytes, media_type);
    let tars: Vec<Vec<u8>> = files
        .iter()
        .map(|f| lcg_tar(&[(f, 300_000)], false))
        .collect();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": tars.iter().map(|t| sha256_digest(t)).collect::<Vec<_>>()},
    });
    let config = blob(&serde_json::to_vec(&config).unwrap(), OCI_CONFIG);
    let layers: Vec<Value> = tars.iter().map(|t| blob(t, OCI_TAR)).collect();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
    });
    let root = blob(&serde_json::to_vec(&manifest).unwrap(), OCI_MANIFEST);
    write_layout_index(dir, root);
    tars.iter().map(|t| sha256_digest(t)).collect()
}

const BASE: [&str; 2] = ["base-1.bin", "base-2.bin"];

/// Image A: the two base layers and `a-own.bin`; B: the same base, `b-own.bin`.
fn images(tmp: &Path) -> (PathBuf, Vec<String>, PathBuf, Vec<String>) {
    let (a, b) = (tmp.join("image-a"), tmp.join("image-b"));
    let da = build_image(&a, &[BASE[0], BASE[1], "a-own.bin"]);
    let db = build_image(&b, &[BASE[0], BASE[1], "b-own.bin"]);
    assert_eq!(da[..2], db[..2]);
    (a, da, b, db)
}

fn layers(report: &Value) -> &Vec<Value> {
    report["layers"].as_array().unwrap()
}

/// (source digest, `cache`) of every layer of a --json report.
fn cache_column(report: &Value) -> Vec<(String, String)> {
    layers(report)
        .iter()
        .map(|l| {
            (
                l["source_digest"].as_str().unwrap().to_string(),
                l["cache"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn count(report: &Value, field: &str, value: &str) -> usize {
    layers(report).iter().filter(|l| l[field] == value).count()
}

/// Source digests of the layer entries in the cache at `dir` (not the
/// source configs kept beside them), and the paths of their JSON files.
fn cache_entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut entries = Vec::new();
    for item in std::fs::read_dir(dir.join("v1")).unwrap() {
        let path = item.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let entry: Value = serde_json::from_slice(&read(&path)).unwrap();
            if entry["fingerprint"] == "source document" {
                continue;
            }
            entries.push((entry["source_digest"].as_str().unwrap().to_string(), path));
        }
    }
    entries.sort();
    entries
}

fn cached_sources(dir: &Path) -> BTreeSet<String> {
    cache_entries(dir).into_iter().map(|(d, _)| d).collect()
}

/// Blob GETs of `repo` in the registry's log after byte `from`.
fn blob_gets(server: &RegistryServer, from: usize, repo: &str) -> Vec<String> {
    let prefix = format!("\"GET /v2/{repo}/blobs/");
    server.log()[from..]
        .lines()
        .filter_map(|l| l.split_once(&prefix))
        .map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_string())
        .collect()
}

/// [`blob_gets`] once it names `digest` (the registry may log a line just
/// after answering), or after 5 s.
fn wait_for_get(server: &RegistryServer, from: usize, repo: &str, digest: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let gets = blob_gets(server, from, repo);
        if gets.iter().any(|g| g == digest) || Instant::now() > deadline {
            return gets;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A registry holding images A and B as `src-a:1` and `src-b:1` (skopeo
/// compresses their layers: the digests are in the reports).
fn registry_with_images(tmp: &Path) -> Option<RegistryServer> {
    skopeo()?;
    let server = RegistryServer::start()?;
    let (a, _, b, _) = images(tmp);
    for (dir, name) in [(&a, "src-a"), (&b, "src-b")] {
        let src = format!("oci:{}", dir.display());
        let dst = format!("docker://{}/{name}:1", server.host());
        skopeo_ok(&["copy", "--dest-tls-verify=false", &src, &dst]);
    }
    Some(server)
}

/// The source digests of a report's layers, in the image's order.
fn sources(report: &Value) -> Vec<String> {
    cache_column(report).into_iter().map(|(d, _)| d).collect()
}

/// `convert-image SRC DST --json --cache CACHE` (registry flags added),
/// checked to succeed; its report.
fn convert_ok(tmp: &Path, cache: &Path, src: &str, dst: &str, extra: &[&str]) -> Value {
    let cache = cache.to_str().unwrap();
    let mut args = vec![src, dst, "--json", "--cache", cache];
    args.extend(NO_TLS);
    args.extend(extra);
    let out = convert(&tmp.join("scratch"), &args);
    assert_exit(&out, 0);
    json_value(&out.stdout)
}

#[test]
fn registry_to_registry_converts_shared_layers_once_and_a_warm_rerun_transfers_only_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(server) = registry_with_images(tmp.path()) else {
        return;
    };
    let (host, cache) = (server.host(), tmp.path().join("cache"));
    let t = tmp.path();
    let a = convert_ok(
        t,
        &cache,
        &format!("docker://{host}/src-a:1"),
        &format!("docker://{host}/out-a:1"),
        &[],
    );
    assert_eq!(count(&a, "cache", "miss"), 3, "{a}");
    assert_eq!(count(&a, "state", "pushed"), 3, "{a}");
    let da = sources(&a);
    for l in layers(&a) {
        assert_eq!(l["bytes_in"], l["source_size"], "{l}");
        assert_eq!(l["bytes_out"], l["size"], "{l}");
        assert_eq!(l["action"], "converted", "{l}");
    }
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cache).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);

    // B shares the base: both are taken from the cache, neither is fetched.
    let mark = server.log().len();
    let b = convert_ok(
        t,
        &cache,
        &format!("docker://{host}/src-b:1"),
        &format!("docker://{host}/out-b:1"),
        &[],
    );
    let column = cache_column(&b);
    let db = sources(&b);
    assert_eq!(db[..2], da[..2]);
    let hits: Vec<_> = column.iter().filter(|(_, c)| c == "hit").collect();
    assert_eq!(hits.len(), 2, "{b}");
    assert!(hits.iter().all(|(d, _)| da[..2].contains(d)), "{b}");
    assert_eq!(count(&b, "cache", "miss"), 1, "{b}");
    let gets = wait_for_get(&server, mark, "src-b", &db[2]);
    assert!(gets.contains(&db[2]), "B's own layer is fetched: {gets:?}");
    for shared in &da[..2] {
        assert!(!gets.contains(shared), "{shared} fetched: {gets:?}");
    }
    for l in layers(&b).iter().filter(|l| l["cache"] == "hit") {
        // out-b lacks them: uploaded from the cache.
        assert_eq!(l["bytes_in"], 0, "{l}");
        assert_eq!(l["state"], "pushed", "{l}");
        assert_eq!(l["bytes_out"], l["size"], "{l}");
    }

    // A again, to a new repository: every layer from the cache, none fetched.
    let mark = server.log().len();
    let a2 = convert_ok(
        t,
        &cache,
        &format!("docker://{host}/src-a:1"),
        &format!("docker://{host}/out-a2:1"),
        &[],
    );
    assert_eq!(count(&a2, "cache", "hit"), 3, "{a2}");
    assert_eq!(a2["pushed"]["digest"], a["pushed"]["digest"], "{a2}");
    assert_eq!(a2["pulled"]["blobs"], 0, "the config is cached too: {a2}");
    // Only manifests go over the wire: no blob GET at all (given the
    // registry 5 s to log a late one).
    let gets = wait_for_get(&server, mark, "src-a", "sha256:never");
    assert!(gets.is_empty(), "{gets:?}");

    // A again to out-a, which has every converted blob: nothing is uploaded.
    let a3 = convert_ok(
        t,
        &cache,
        &format!("docker://{host}/src-a:1"),
        &format!("docker://{host}/out-a:2"),
        &[],
    );
    assert_eq!(count(&a3, "state", "exists"), 3, "{a3}");
    assert_eq!(a3["pushed"]["blobs_pushed"], 0, "{a3}");
    assert!(layers(&a3).iter().all(|l| l["bytes_out"] == 0), "{a3}");
    let copied = tmp.path().join("copied");
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/out-a:2"),
        &format!("oci:{}", copied.display()),
    ]);
}

#[test]
fn a_corrupt_cached_blob_is_detected_and_rebuilt_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(server) = registry_with_images(tmp.path()) else {
        return;
    };
    let (host, cache) = (server.host(), tmp.path().join("cache"));
    let src = format!("docker://{host}/src-a:1");
    let t = tmp.path();
    let first = convert_ok(t, &cache, &src, &format!("docker://{host}/one:1"), &[]);
    let da = sources(&first);
    let (_, json_path) = cache_entries(&cache)
        .into_iter()
        .find(|(d, _)| d == &da[0])
        .unwrap();
    let blob_path = json_path.with_extension("blob");
    let mut bytes = read(&blob_path);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&blob_path, &bytes).unwrap();

    let mark = server.log().len();
    let second = convert_ok(t, &cache, &src, &format!("docker://{host}/two:1"), &[]);
    let column = cache_column(&second);
    assert!(column.contains(&(da[0].clone(), "miss".into())), "{second}");
    assert_eq!(count(&second, "cache", "hit"), 2, "{second}");
    let warnings = second["warnings"].to_string();
    assert!(warnings.contains("corrupt"), "{warnings}");
    assert_eq!(second["pushed"]["digest"], first["pushed"]["digest"]);
    let gets = wait_for_get(&server, mark, "src-a", &da[0]);
    assert!(gets.contains(&da[0]), "rebuilt from the source: {gets:?}");
    // The entry is sound again.
    let entry: Value = serde_json::from_slice(&read(&json_path)).unwrap();
    assert_eq!(sha256_digest(&read(&blob_path)), entry["digest"]);

    // Into a layout too: the same blobs, byte for byte.
    std::fs::write(&blob_path, b"truncated").unwrap();
    let out = tmp.path().join("layout");
    let third = convert_ok(t, &cache, &src, out.to_str().unwrap(), &[]);
    // A blob of the wrong length is not even a hit.
    let column = cache_column(&third);
    assert!(column.contains(&(da[0].clone(), "miss".into())), "{third}");
    for l in layers(&first) {
        let d = l["digest"].as_str().unwrap();
        assert_eq!(sha256_digest(&read(layout_blob_path(&out, d))), d);
    }
}

/// `convert-image SRC DST --json ARGS` between layouts, checked to succeed.
fn convert_layout(src: &Path, dst: &Path, args: &[&str]) -> Value {
    let out = estargz(
        [
            "convert-image".as_ref(),
            src.as_os_str(),
            dst.as_os_str(),
            "--json".as_ref(),
        ]
        .into_iter()
        .chain(args.iter().map(|a| a.as_ref())),
    )
    .output()
    .unwrap();
    assert_exit(&out, 0);
    json_value(&out.stdout)
}

#[test]
fn layout_to_layout_takes_shared_layers_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, da, b, _) = images(tmp.path());
    let cache = tmp.path().join("cache");
    let c = cache.to_str().unwrap();
    let (out_a, out_b) = (tmp.path().join("out-a"), tmp.path().join("out-b"));
    let ra = convert_layout(&a, &out_a, &["--cache", c]);
    assert_eq!(count(&ra, "cache", "miss"), 3, "{ra}");
    assert_eq!(count(&ra, "state", "converted"), 3, "{ra}");
    let rb = convert_layout(&b, &out_b, &["--cache", c]);
    assert_eq!(count(&rb, "cache", "hit"), 2, "{rb}");
    assert_eq!(count(&rb, "state", "cached"), 2, "{rb}");
    assert_eq!(count(&rb, "state", "converted"), 1, "{rb}");
    for l in layers(&rb).iter().filter(|l| l["cache"] == "hit") {
        assert!(da.contains(&l["source_digest"].as_str().unwrap().to_string()));
        // A local source is still read, to check its digest.
        assert_eq!(l["bytes_in"], l["source_size"], "{l}");
        assert_eq!(l["bytes_out"], l["size"], "{l}");
        let d = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        assert_eq!(
            read(out_a.join("blobs/sha256").join(d)),
            read(out_b.join("blobs/sha256").join(d))
        );
    }
    // Existing fields are kept as they were.
    for l in layers(&rb) {
        for field in ["source_digest", "digest", "diff_id", "toc_digest", "action"] {
            assert!(l[field].is_string(), "{field}: {l}");
        }
    }
}

#[test]
fn cache_max_evicts_the_least_recently_used_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let a = t.join("a");
    let da = build_image(&a, &["lru-1.bin", "lru-2.bin", "lru-3.bin"]);
    let only2 = t.join("only-2");
    build_image(&only2, &["lru-2.bin"]);
    let four = t.join("four");
    let d4 = build_image(&four, &["lru-4.bin"]);
    let sizing = convert_layout(&a, &t.join("sizing"), &["--no-cache"]);
    let sizes: Vec<u64> = layers(&sizing)
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect();
    let biggest = *sizes.iter().max().unwrap();
    // Room for two blobs, not three.
    let cap = (2 * biggest + 1000).to_string();
    assert!(2 * biggest + 1000 < sizes.iter().sum::<u64>());
    let cache = t.join("cache");
    let args = [
        "--cache",
        cache.to_str().unwrap(),
        "--cache-max",
        &cap,
        "--jobs",
        "1",
    ];
    convert_layout(&a, &t.join("out-a"), &args);
    // Stored in order 1, 2, 3: the first went when the third came.
    let expect: BTreeSet<String> = [da[1].clone(), da[2].clone()].into();
    assert_eq!(cached_sources(&cache), expect);

    // 2 is used again, so 3 is now the least recently used.
    let r = convert_layout(&only2, &t.join("out-2"), &args);
    assert_eq!(count(&r, "cache", "hit"), 1, "{r}");
    convert_layout(&four, &t.join("out-4"), &args);
    let expect: BTreeSet<String> = [da[1].clone(), d4[0].clone()].into();
    assert_eq!(cached_sources(&cache), expect);
    // Also with a K suffix: a cap below any blob stores nothing more.
    convert_layout(
        &a,
        &t.join("out-tiny"),
        &["--cache", cache.to_str().unwrap(), "--cache-max", "1K"],
    );
    assert!(cached_sources(&cache).is_empty());
}

#[test]
fn no_cache_writes_nothing_and_the_default_is_under_xdg_cache_home() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _, _, _) = images(tmp.path());
    let xdg = tmp.path().join("xdg");
    let run = |dst: &str, extra: &[&str]| {
        let out = estargz(
            [
                "convert-image".as_ref(),
                a.as_os_str(),
                tmp.path().join(dst).as_os_str(),
            ]
            .into_iter()
            .chain(extra.iter().map(|a| a.as_ref())),
        )
        .env("XDG_CACHE_HOME", &xdg)
        .arg("--json")
        .output()
        .unwrap();
        assert_exit(&out, 0);
        json_value(&out.stdout)
    };
    let r = run("off", &["--no-cache"]);
    assert_eq!(count(&r, "cache", "off"), 3, "{r}");
    assert!(!xdg.exists(), "--no-cache made {}", xdg.display());
    let r = run("on", &[]);
    assert_eq!(count(&r, "cache", "miss"), 3, "{r}");
    assert_eq!(cache_entries(&xdg.join("estargz")).len(), 3);
    let r = run("again", &[]);
    assert_eq!(count(&r, "cache", "hit"), 3, "{r}");
}

#[test]
fn concurrent_runs_on_one_cache_both_succeed_with_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _, _, _) = images(tmp.path());
    let cache = tmp.path().join("cache");
    let children: Vec<_> = (0..2)
        .map(|i| {
            let dst = tmp.path().join(format!("out-{i}"));
            estargz([
                "convert-image".as_ref(),
                a.as_os_str(),
                dst.as_os_str(),
                "--cache".as_ref(),
                cache.as_os_str(),
                "--quiet".as_ref(),
            ])
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_exit(&out, 0);
    }
    let (one, two) = (tmp.path().join("out-0"), tmp.path().join("out-1"));
    assert_eq!(dir_listing(&one), dir_listing(&two));
    assert_eq!(read(one.join("index.json")), read(two.join("index.json")));
    for item in std::fs::read_dir(one.join("blobs/sha256")).unwrap() {
        let name = item.unwrap().file_name();
        assert_eq!(
            read(one.join("blobs/sha256").join(&name)),
            read(two.join("blobs/sha256").join(&name))
        );
    }
    assert_eq!(cache_entries(&cache).len(), 3);
    let leftovers: Vec<_> = std::fs::read_dir(cache.join("v1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_terminal_gets_one_line_per_layer_with_bytes_and_state() {
    let script = Path::new("/usr/bin/script");
    if !crate::common::registry::require("script (bsdutils)", script.is_file()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, _, _, _) = images(tmp.path());
    let cache = tmp.path().join("cache");
    // `script` gives the run a pseudo-terminal and copies what it draws.
    let on_a_terminal = |dst: &str, extra: &str| {
        let command = format!(
            "{} convert-image {} {} --cache {}{extra}",
            env!("CARGO_BIN_EXE_estargz"),
            a.display(),
            tmp.path().join(dst).display(),
            cache.display()
        );
        let out = std::process::Command::new(script)
            .args(["-qec", &command, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_exit(&out, 0);
        stdout_of(&out)
    };
    let first = on_a_terminal("one", "");
    assert!(
        first.contains("out 0.3 MB converted (cache miss)"),
        "{first}"
    );
    let second = on_a_terminal("two", "");
    assert!(second.contains("out 0.3 MB cached (cache hit)"), "{second}");
    let json = on_a_terminal("three", " --json");
    assert!(!json.contains("(cache hit)"), "{json}");
    assert!(json.contains("\"cache\": \"hit\"") || json.contains("\"cache\":\"hit\""));
}
