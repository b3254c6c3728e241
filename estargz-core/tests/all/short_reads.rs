//! Every streaming path of the library fed through [`ShortReads`] (1 to N
//! bytes per call, positioned or not) gives what it gives with a reader
//! that fills every buffer: converting a stream (plain tar and gzip),
//! blob_info_of, unpack_tar, prioritize's spool and reorder, and the
//! positioned paths (open, read, verify, unpack) that take a `ReadAt`.

use estargz_core::prioritize::{reorder, spool, PrioritizeOptions};
use estargz_core::{
    blob_info_of, unpack_tar, unpack_to_dir, verify, Blob, ConvertReport, Converter, Digest, Input,
    OpenOptions, ReadAt, TocInfo, UnpackOptions, VerifyOptions,
};
use estargz_test_support::ShortReads;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Largest read per call: one byte at a time, a few, and more than a tar
/// block but less than most buffers.
const MAXES: [usize; 3] = [1, 7, 1000];

fn testdata(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Layer streams as they arrive: plain tars of several writers, one with
/// trailing bytes, one without its end blocks, and gzip ones (one member,
/// several members, a 4 MiB tar in 14 KB).
fn streams() -> Vec<(String, Vec<u8>)> {
    let sample = testdata("sample-layer.tar");
    let mut out = vec![
        ("sample-layer.tar.gz".to_string(), gzip(&sample)),
        ("sample-layer.tar".to_string(), sample),
    ];
    for name in [
        "gnu-posix.tar",
        "python-pax-global.tar",
        "trailing-garbage-37.tar",
        "no-eoa.tar",
        "multi-member.tar.gz",
        "python-ustar.tar.gz",
        "exact-4mib.tar.gz",
    ] {
        out.push((name.to_string(), testdata(&format!("tars/valid/{name}"))));
    }
    out
}

fn options(chunk_size: u64) -> Converter {
    Converter::builder().chunk_size(chunk_size).build().unwrap()
}

/// [`options`], with the TOC written apart.
fn external_options(chunk_size: u64) -> Converter {
    Converter::builder()
        .chunk_size(chunk_size)
        .external_toc(true)
        .build()
        .unwrap()
}

/// The external TOC a conversion returned, taken out of its report (so
/// that reports compare on everything else too).
fn take_toc(report: &mut ConvertReport) -> Vec<u8> {
    std::mem::take(&mut report.external_toc.as_mut().expect("an external TOC").bytes)
}

fn blob_of(stream: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    options(1000).convert(stream, &mut blob).unwrap();
    blob
}

#[test]
fn short_reads_are_short_and_lose_nothing() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let mut r = ShortReads::new(&data[..], 7);
    let (mut out, mut buf) = (Vec::new(), [0u8; 64]);
    let mut lengths = std::collections::BTreeSet::new();
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lengths.insert(n);
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, data);
    assert_eq!(lengths, (1..=7).collect(), "every length from 1 to 7");

    let r = ShortReads::new(&data[..], 5);
    let n = r.read_at(1234, &mut buf).unwrap();
    assert!((1..=5).contains(&n), "{n}");
    assert_eq!(&buf[..n], &data[1234..1234 + n]);
    assert_eq!(
        r.read_at(1234, &mut buf).unwrap(),
        n,
        "same offset, same length"
    );
    assert_eq!(r.read_range(17, 5000).unwrap(), &data[17..5017]);
    assert!(r.calls() >= 5000 / 5);
}

#[test]
fn converting_a_stream_of_short_reads_writes_the_same_blob() {
    for (name, stream) in streams() {
        for chunk_size in [4 << 20, 1000] {
            let opts = options(chunk_size);
            let mut blob = Vec::new();
            let report = opts.convert(&stream[..], &mut blob).unwrap();
            let external_opts = external_options(chunk_size);
            let mut external = Vec::new();
            let mut external_report = external_opts.convert(&stream[..], &mut external).unwrap();
            let toc = take_toc(&mut external_report);
            for max in MAXES {
                let what = format!("{name}, chunk size {chunk_size}, reads of 1..={max}");
                let mut short_blob = Vec::new();
                let input = ShortReads::new(&stream[..], max);
                let short_report = opts.convert(Input::stream(input), &mut short_blob).unwrap();
                assert!(short_blob == blob, "{what}: the blob differs");
                assert_eq!(short_report, report, "{what}");

                let mut short_external = Vec::new();
                let input = ShortReads::new(&stream[..], max);
                let mut short_report = external_opts
                    .convert(Input::stream(input), &mut short_external)
                    .unwrap();
                let short_toc = take_toc(&mut short_report);
                assert!(
                    short_external == external,
                    "{what}: external-TOC blob differs"
                );
                assert_eq!(short_toc, toc, "{what}: TOC differs");
                assert_eq!(short_report, external_report, "{what}");
            }
        }
    }
}

#[test]
fn blob_info_of_short_reads_is_the_same() {
    for (name, stream) in streams() {
        let blob = blob_of(&stream);
        // The converted blob, and the gzip streams as they came.
        let mut layers = vec![blob];
        if stream.starts_with(&[0x1f, 0x8b]) {
            layers.push(stream);
        }
        for layer in layers {
            let info = blob_info_of(&layer[..]).unwrap();
            for max in MAXES {
                let short = blob_info_of(ShortReads::new(&layer[..], max)).unwrap();
                assert_eq!(short, info, "{name}, reads of 1..={max}");
            }
        }
    }
}

#[test]
fn unpack_tar_over_short_reads_gives_the_same_tar() {
    for (name, stream) in streams() {
        let blob = blob_of(&stream);
        let mut tar = Vec::new();
        let n = unpack_tar(&blob[..], &mut tar).unwrap();
        for max in MAXES {
            let mut short_tar = Vec::new();
            let short = ShortReads::new(&blob[..], max);
            let short_n = unpack_tar(&short, &mut short_tar).unwrap();
            assert_eq!(short_n, n, "{name}, reads of 1..={max}");
            assert!(
                short_tar == tar,
                "{name}, reads of 1..={max}: the tar differs"
            );
        }
    }
}

/// Reorders `tar` and reads the result to the end: (tar, report).
fn reordered<S: ReadAt>(
    tar: S,
    list: Option<&[String]>,
) -> (Vec<u8>, estargz_core::prioritize::ReorderReport) {
    let mut r = reorder(tar, list, &PrioritizeOptions::default()).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    (out, r.report().clone())
}

/// What a spool file holds.
fn spooled_tar(file: std::fs::File) -> Vec<u8> {
    file.read_range(0, file.size().unwrap() as usize).unwrap()
}

#[test]
fn prioritize_spool_and_reorder_over_short_reads_give_the_same_tar() {
    let sample = testdata("sample-layer.tar");
    let blob = Blob::open(blob_of(&sample), &OpenOptions::default()).unwrap();
    // The last files first: every entry moves.
    let last: Vec<String> = blob
        .index()
        .files()
        .iter()
        .rev()
        .take(3)
        .map(|n| n.name().to_string())
        .collect();
    for (name, stream) in streams() {
        let list = (name == "sample-layer.tar").then_some(&last[..]);
        let tar = spooled_tar(spool(&stream[..]).unwrap());
        let (want, report) = reordered(&tar[..], list);
        for max in MAXES {
            let what = format!("{name}, reads of 1..={max}");
            let short_tar = spooled_tar(spool(ShortReads::new(&stream[..], max)).unwrap());
            assert!(short_tar == tar, "{what}: the spooled tar differs");

            let (got, short_report) = reordered(ShortReads::new(&tar[..], max), list);
            assert!(got == want, "{what}: the reordered tar differs");
            assert_eq!(short_report, report, "{what}");
        }
    }
}

/// The files, directories and links under `root`: relative path → (mode,
/// modification time, digest of the contents or link target). Times of
/// links, FIFOs and devices are left out (unpack leaves them as made), and
/// all times unless `times`
/// (an unpack that failed set neither the times of directories, set last,
/// nor that of the file it was writing).
fn tree(root: &Path, times: bool) -> BTreeMap<String, (u32, i64, String)> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let (mtime, content) = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                (0, target.into_os_string().into_encoded_bytes())
            } else if meta.is_dir() {
                todo.push(path.clone());
                (meta.mtime(), Vec::new())
            } else if meta.is_file() {
                (meta.mtime(), std::fs::read(&path).unwrap())
            } else {
                // A FIFO or a device (its mode says which); its time is
                // left as made, like a link's.
                (0, Vec::new())
            };
            let mtime = if times { mtime } else { 0 };
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let digest = Digest::of(&content).to_string();
            out.insert(rel, (meta.mode(), mtime, digest));
        }
    }
    out
}

/// Everything `r` gives, or the error that stopped it.
fn read_all(mut r: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// What TocInfo::read finds (footer, TOC and where they are), or its error.
fn toc_info<S: ReadAt>(source: S, opts: &OpenOptions) -> Result<String, String> {
    TocInfo::read(source, opts)
        .map(|(info, _)| format!("{info:?}"))
        .map_err(|e| e.to_string())
}

/// Opens, reads, verifies and unpacks the valid `blob` plainly and through
/// short reads, and checks that all agree.
fn check_positioned_paths(what: &str, blob: &[u8], opts: &OpenOptions) {
    let verify_opts = {
        let mut o = VerifyOptions::default();
        o.open = opts.clone();
        o
    };
    let plain_report = verify(blob, &verify_opts);
    assert!(plain_report.is_valid(), "{what}: {plain_report:?}");
    let report = serde_json::to_value(plain_report).unwrap();
    let opened = Blob::open(blob, opts).map_err(|e| e.to_string());
    let info = toc_info(blob, opts);
    let dir = tempfile::tempdir().unwrap();
    let plain_dir = dir.path().join("plain");
    let unpacked =
        unpack_to_dir(blob, &plain_dir, &UnpackOptions::default()).map_err(|e| e.to_string());
    assert!(unpacked.is_ok(), "{what}: {unpacked:?}");
    let plain_tree = tree(&plain_dir, true);
    for max in MAXES {
        let what = format!("{what}, reads of 1..={max}");
        let short = ShortReads::new(blob, max);
        let short_report = serde_json::to_value(verify(&short, &verify_opts)).unwrap();
        assert_eq!(short_report, report, "{what}: verify");
        assert_eq!(toc_info(&short, opts), info, "{what}: TocInfo::read");

        let short_opened = Blob::open(&short, opts).map_err(|e| e.to_string());
        assert_eq!(
            short_opened.as_ref().err(),
            opened.as_ref().err(),
            "{what}: open"
        );
        if let (Ok(plain), Ok(short_blob)) = (&opened, &short_opened) {
            for file in plain.index().files() {
                let data = plain.read_file(file.name()).map_err(|e| e.to_string());
                let short_data = short_blob.read_file(file.name()).map_err(|e| e.to_string());
                assert!(short_data == data, "{what}: {} differs", file.name());
                let Ok(data) = data else { continue };
                // Windows that straddle chunk ends; a few per file, as
                // each may decode a whole chunk.
                let reader = short_blob.open_file(file.name()).unwrap();
                for start in (0..data.len()).step_by(777.max(data.len() / 8)) {
                    let mut buf = vec![0u8; 900.min(data.len() - start)];
                    let mut got = 0;
                    while got < buf.len() {
                        let n = reader
                            .read_at((start + got) as u64, &mut buf[got..])
                            .unwrap();
                        assert!(n > 0, "{what}: {} ends early", file.name());
                        got += n;
                    }
                    assert!(
                        buf == data[start..start + buf.len()],
                        "{what}: {}",
                        file.name()
                    );
                }
            }
            let plain_stream = read_all(plain.tar_stream());
            let short_stream = read_all(short_blob.tar_stream());
            assert!(short_stream == plain_stream, "{what}: tar_stream differs");
        }

        let out = dir.path().join(format!("short-{max}"));
        let short_unpacked =
            unpack_to_dir(&short, &out, &UnpackOptions::default()).map_err(|e| e.to_string());
        assert_eq!(short_unpacked, unpacked, "{what}: unpack_to_dir");
        assert_eq!(
            tree(&out, true),
            plain_tree,
            "{what}: unpacked trees differ"
        );
    }
}

/// A damaged blob gets the same verdict from verify and unpack_to_dir
/// whatever the read sizes (verify's problems: see
/// `verify_problems_on_damaged_blobs_do_not_depend_on_read_sizes`).
fn check_damaged(what: &str, blob: &[u8]) {
    let report = verify(blob, &VerifyOptions::default());
    let unpacked = unpack_to_dir(
        blob,
        &tempfile::tempdir().unwrap().path().join("out"),
        &UnpackOptions::default(),
    );
    for max in MAXES {
        let what = format!("{what}, reads of 1..={max}");
        let short = ShortReads::new(blob, max);
        let short_report = verify(&short, &VerifyOptions::default());
        assert_eq!(short_report.is_valid(), report.is_valid(), "{what}: verify");
        assert_eq!(
            (
                short_report.footer,
                short_report.toc_digest,
                short_report.toc_offset
            ),
            (report.footer, report.toc_digest, report.toc_offset),
            "{what}: verify"
        );
        let short_unpacked = unpack_to_dir(
            &short,
            &tempfile::tempdir().unwrap().path().join("out"),
            &UnpackOptions::default(),
        );
        assert_eq!(
            short_unpacked.is_ok(),
            unpacked.is_ok(),
            "{what}: unpack_to_dir {short_unpacked:?}, not {unpacked:?}"
        );
    }
}

#[test]
fn open_read_verify_and_unpack_over_short_reads_agree() {
    for (name, stream) in streams() {
        for chunk_size in [4 << 20, 1000] {
            let mut blob = Vec::new();
            options(chunk_size).convert(&stream[..], &mut blob).unwrap();
            let what = format!("{name}, chunk size {chunk_size}");
            check_positioned_paths(&what, &blob, &OpenOptions::default());

            let mut damaged = blob.clone();
            let middle = damaged.len() / 3;
            damaged[middle] ^= 0x55;
            check_damaged(&format!("{what}, damaged"), &damaged);
        }
        let mut blob = Vec::new();
        let mut report = external_options(1000)
            .convert(&stream[..], &mut blob)
            .unwrap();
        let toc = take_toc(&mut report);
        let opts = {
            let mut o = OpenOptions::default();
            o.external_toc = Some(toc);
            o
        };
        check_positioned_paths(&format!("{name}, external TOC"), &blob, &opts);
    }
}

/// Damaged blobs of `name` (converted with 1000-byte chunks): a byte
/// flipped at several places (in a member's deflate data, a gzip header,
/// the TOC), the blob cut short, a member's tar cut short, and a wrong
/// chunkDigest.
fn damaged_blobs(name: &str, stream: &[u8]) -> Vec<(String, Vec<u8>)> {
    let blob = blob_of(stream);
    let mut out = Vec::new();
    let members = crate::common::members(&blob);
    let mut places = vec![blob.len() / 3, blob.len() / 2, blob.len() - 60];
    // A few bytes into the second and the last payload member.
    for m in [1, members.len().saturating_sub(3)] {
        if let Some((at, _)) = members.get(m) {
            places.push(*at as usize + 2);
            places.push(*at as usize + 20);
        }
    }
    for at in places.into_iter().filter(|&at| at < blob.len()) {
        let mut damaged = blob.clone();
        damaged[at] ^= 0x55;
        out.push((format!("{name}, byte {at} flipped"), damaged));
    }
    out.push((
        format!("{name}, cut short"),
        blob[..blob.len() * 2 / 3].to_vec(),
    ));
    let (short_tar, _) = crate::common::tamper(&blob, |data, _| {
        let cut = data.len() / 2;
        let keep = data[cut].len() / 2;
        data[cut].truncate(keep);
    });
    out.push((format!("{name}, a member's tar cut short"), short_tar));
    let (wrong_digest, _) = crate::common::tamper(&blob, |_, toc| {
        let wrong = Digest::of(b"not this chunk").to_string();
        let chunks = toc
            .entries
            .iter_mut()
            .filter(|e| !e.chunk_digest.is_empty());
        for e in chunks.step_by(3) {
            e.chunk_digest = wrong.clone();
        }
    });
    out.push((format!("{name}, wrong chunkDigests"), wrong_digest));
    out
}

/// The problems verify reports for a damaged blob, and their order, do
/// not depend on how the source splits its reads.
#[test]
fn verify_problems_on_damaged_blobs_do_not_depend_on_read_sizes() {
    let mut damage_found = 0;
    for (name, stream) in streams() {
        for (what, damaged) in damaged_blobs(&name, &stream) {
            let report = verify(&damaged[..], &VerifyOptions::default());
            // Not every flipped byte is damage verify can see (a tar
            // header's mtime is not in what it compares).
            if !report.is_valid() {
                damage_found += 1;
            } else {
                eprintln!("{what}: no problem found");
            }
            let report = serde_json::to_value(report).unwrap();
            for max in MAXES {
                let short = ShortReads::new(&damaged[..], max);
                let short_report = serde_json::to_value(verify(&short, &VerifyOptions::default()));
                assert_eq!(short_report.unwrap(), report, "{what}, reads of 1..={max}");
            }
        }
    }
    assert!(
        damage_found > 50,
        "only {damage_found} damaged blobs found bad"
    );
}
