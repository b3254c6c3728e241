//! Issue #16, items 1 and 2, end to end: bytes after the end-of-archive
//! blocks are streamed (and capped), and a deep path neither overflows a
//! stack nor makes a blob the tool's own reader refuses.

use crate::common;

use common::{assert_exit, dir_listing, run, stderr_of, stdout_of};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Zeros after the small tar in the bomb: more than the address-space
/// limits below could hold even once, so any copy of them fails the run.
const ZERO_TAIL: u64 = 384 << 20;
/// Address space for `convert` and for `verify` (see [`limited`]).
const CONVERT_AS: u64 = 320 << 20;
const VERIFY_AS: u64 = 256 << 20;

/// A small ustar tar (one file, two end-of-archive blocks).
fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", &b"hello\n"[..]).unwrap();
    b.into_inner().unwrap()
}

/// `(cat small.tar; head -c ZERO_TAIL /dev/zero) | gzip -1`, written to
/// `path` without ever holding the zeros.
fn write_bomb(path: &Path, tar: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::fast());
    gz.write_all(tar).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..ZERO_TAIL / zeros.len() as u64 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap().flush().unwrap();
}

/// Runs the binary with at most `bytes` of address space (`ulimit -v`, so a
/// copy of the tail makes an allocation fail). The thread count and glibc's
/// arena count are pinned so the reservation does not depend on the machine.
fn limited(bytes: u64, args: &[&OsStr]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {} && exec \"$@\"", bytes >> 10))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_estargz"))
        .args(args)
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run sh")
}

/// The decompressed blob up to the TOC: the payload.
fn payload_prefix_matches(blob: &Path, tar: &[u8]) {
    let mut d = flate2::read::MultiGzDecoder::new(std::fs::File::open(blob).unwrap());
    let mut head = vec![0u8; tar.len()];
    d.read_exact(&mut head).unwrap();
    assert_eq!(head, tar, "the blob starts with the input tar");
    let mut zeros = vec![0u8; 1 << 20];
    let mut left = ZERO_TAIL;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        d.read_exact(&mut zeros[..n]).unwrap();
        assert!(zeros[..n].iter().all(|&b| b == 0), "the zero tail, intact");
        left -= n as u64;
    }
    // Then the TOC tar: its first header names the TOC.
    let mut header = [0u8; 512];
    d.read_exact(&mut header).unwrap();
    assert!(header.starts_with(b"stargz.index.json\0"));
}

#[test]
fn a_zero_tail_is_capped_or_streamed_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let tar = small_tar();
    let bomb = dir.path().join("bomb.tar.gz");
    write_bomb(&bomb, &tar);
    let out = dir.path().join("out.esgz.tar.gz");
    let (bomb_os, out_os) = (bomb.as_os_str(), out.as_os_str());
    let threads = [OsStr::new("--threads"), OsStr::new("2")];

    // Over the default cap: refused, naming the input and where the cap was passed.
    let mut args = vec![OsStr::new("convert"), bomb_os, OsStr::new("-o"), out_os];
    args.extend(threads);
    let refused = limited(CONVERT_AS, &args);
    assert_exit(&refused, 1);
    let err = stderr_of(&refused);
    let cap_passed = tar.len() as u64 - 512 + (16 << 20);
    assert!(err.contains("bomb.tar.gz"), "{err}");
    assert!(err.contains(&format!("at byte {cap_passed}")), "{err}");
    assert!(err.contains("trailing data"), "{err}");
    assert_eq!(
        dir_listing(dir.path()),
        ["bomb.tar.gz"],
        "nothing left behind"
    );

    // Under a raised cap: converted within the same limit, losslessly.
    args.extend([OsStr::new("--max-trailing"), OsStr::new("1GiB")]);
    let converted = limited(CONVERT_AS, &args);
    assert_exit(&converted, 0);
    payload_prefix_matches(&out, &tar);

    // Its own verify walks the whole tail in bounded memory too.
    let verified = limited(VERIFY_AS, &[OsStr::new("verify"), out_os]);
    assert_exit(&verified, 0);
    assert!(
        stdout_of(&verified).starts_with("ok "),
        "{}",
        stdout_of(&verified)
    );
}

/// Stores `bytes` as a blob of the layout at `dir`; returns its descriptor.
fn add_blob(dir: &Path, bytes: &[u8], media_type: &str) -> serde_json::Value {
    let digest = common::sha256_digest(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(&digest["sha256:".len()..]), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

/// An OCI layout at `dir` of one image whose one layer is `layer` (gzip),
/// which decompresses to a tar with digest `diff_id`.
fn one_layer_image(dir: &Path, layer: &[u8], diff_id: &str) {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = add_blob(
        dir,
        config.to_string().as_bytes(),
        "application/vnd.oci.image.config.v1+json",
    );
    let layer = add_blob(dir, layer, "application/vnd.oci.image.layer.v1.tar+gzip");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let manifest = add_blob(
        dir,
        manifest.to_string().as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// The digest of the bomb's decompressed bytes, hashed as a stream.
fn bomb_diff_id(bomb: &Path) -> String {
    use sha2::Digest;
    let mut d = flate2::read::MultiGzDecoder::new(std::fs::File::open(bomb).unwrap());
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut d, &mut hasher).unwrap();
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[test]
fn convert_image_caps_a_zero_tail_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.tar.gz");
    write_bomb(&bomb, &small_tar());
    let src = dir.path().join("src");
    let layer = std::fs::read(&bomb).unwrap();
    one_layer_image(&src, &layer, &bomb_diff_id(&bomb));
    let layer_file = format!("blobs/sha256/{}", &common::sha256_digest(&layer)[7..]);
    let dst = dir.path().join("dst");
    let mut args: Vec<&OsStr> = ["convert-image", "--threads", "2", "--jobs", "1"]
        .iter()
        .map(OsStr::new)
        .collect();
    args.extend([src.as_os_str(), dst.as_os_str()]);

    let refused = limited(CONVERT_AS, &args);
    assert_exit(&refused, 1);
    let err = stderr_of(&refused);
    assert!(err.contains(&layer_file), "names the layer: {err}");
    assert!(err.contains("trailing data"), "{err}");
    assert_eq!(
        dir_listing(dir.path()),
        ["bomb.tar.gz", "src"],
        "nothing left behind"
    );

    args.extend([OsStr::new("--max-trailing"), OsStr::new("1G")]);
    let converted = limited(CONVERT_AS, &args);
    assert_exit(&converted, 0);
    assert_eq!(dir_listing(dir.path()), ["bomb.tar.gz", "dst", "src"]);
}

/// A tar of one file whose name, `a/` × `depth` then `x`, is in a PAX header.
fn deep_pax_tar(depth: usize) -> (Vec<u8>, String) {
    let name = format!("{}x", "a/".repeat(depth));
    let mut record_len = name.len() + " path=\n".len();
    while format!("{record_len} path={name}\n").len() != record_len {
        record_len += 1;
    }
    let record = format!("{record_len} path={name}\n");
    let mut b = tar::Builder::new(Vec::new());
    let mut x = tar::Header::new_ustar();
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_path("PaxHeaders/x").unwrap();
    x.set_size(record.len() as u64);
    x.set_mode(0o644);
    x.set_cksum();
    b.append(&x, record.as_bytes()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("x").unwrap();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"deep\n"[..]).unwrap();
    (b.into_inner().unwrap(), name)
}

#[test]
fn a_deep_path_within_the_limits_converts_verifies_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (tar, name) = deep_pax_tar(3999);
    let input = dir.path().join("deep.tar");
    std::fs::write(&input, &tar).unwrap();
    let out = dir.path().join("deep.esgz.tar.gz");
    let converted = run([
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ]);
    assert_exit(&converted, 0);
    let verified = run([OsStr::new("verify"), out.as_os_str()]);
    assert_exit(&verified, 0);
    let listed = run([OsStr::new("ls"), out.as_os_str()]);
    assert_exit(&listed, 0);
    assert!(
        stdout_of(&listed).lines().any(|l| l == name),
        "ls lists {name:?}"
    );
    let cat = run([OsStr::new("cat"), out.as_os_str(), OsStr::new(&name)]);
    assert_exit(&cat, 0);
    assert_eq!(cat.stdout, b"deep\n");
}

#[test]
fn a_path_deeper_than_readers_accept_is_refused_by_convert() {
    let dir = tempfile::tempdir().unwrap();
    let (tar, _) = deep_pax_tar(10_000);
    let input = dir.path().join("deeper.tar");
    std::fs::write(&input, &tar).unwrap();
    let out = dir.path().join("deeper.esgz.tar.gz");
    let refused = run([
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
    ]);
    assert_exit(&refused, 1);
    let err = stderr_of(&refused);
    assert!(err.contains("deeper.tar"), "{err}");
    assert!(err.contains("entry \"a/a/a/"), "names the entry: {err}");
    // The entry's header follows the PAX header and its record.
    let header_offset = tar.len() - 3 * 512 - 512;
    assert!(err.contains(&format!("at byte {header_offset}")), "{err}");
    assert!(err.contains("deeper than 4096 components"), "{err}");
    assert_eq!(
        dir_listing(dir.path()),
        ["deeper.tar"],
        "nothing left behind"
    );
}
