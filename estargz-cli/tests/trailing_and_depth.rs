//! Issue #16, items 1 and 2, end to end: bytes after the end-of-archive
//! blocks are streamed (and capped), and a deep path neither overflows a
//! stack nor makes a blob the tool's own reader refuses.

mod common;

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
