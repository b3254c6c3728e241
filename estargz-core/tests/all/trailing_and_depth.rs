//! Issue #16, items 1 and 2, in the library: bytes after the end-of-archive
//! block become members of at most the chunk size (alike in memory and as
//! a stream) under a cap, and deep paths are handled without recursion,
//! within the reader's limits.

use crate::common;

use common::tar_writer::{build_tar, file, Format};
use common::{check_lossless, convert_with, members};
use estargz_core::{verify, Blob, Converter, Error, Input, OpenOptions, ScanLimits, VerifyOptions};
use std::sync::Arc;

/// A one-file tar followed by `tail` bytes of trailing data after its
/// first end-of-archive block (the writer's second block included).
fn tar_with_tail(tail: usize) -> Vec<u8> {
    let mut tar = build_tar(Format::Ustar, &[file("f", b"data")], 0);
    tar.truncate(tar.len() - 512);
    tar.extend((0..tail).map(|i| (i % 251) as u8));
    tar
}

#[test]
fn trailing_data_fills_members_of_at_most_the_chunk_size_or_1_mib() {
    const MIB: usize = 1 << 20;
    let tar = tar_with_tail(2 * MIB + 1000);
    let (blob, report) = convert_with(&tar, 1000);
    assert_eq!(&common::gunzip(&blob)[..tar.len()], &tar[..], "lossless");
    assert_eq!(report.tar_size, tar.len() as u64);
    let sizes: Vec<usize> = members(&blob).iter().map(|(_, d)| d.len()).collect();
    // The file's header; its data, padding, the zero block and the first
    // MiB of the tail; a MiB; the rest (then the TOC and the footer).
    assert_eq!(sizes[..sizes.len() - 2], [512, 1024 + MIB, MIB, 1000]);
    let verified = verify(&blob[..], &VerifyOptions::default());
    assert!(verified.is_valid(), "{:?}", verified.problems);
    assert_eq!(verified.members, 4);
    // With a chunk size over 1 MiB, members take up to a chunk size of it.
    let (blob, _) = convert_with(&tar, (MIB + MIB / 2) as u64);
    let sizes: Vec<usize> = members(&blob).iter().map(|(_, d)| d.len()).collect();
    assert_eq!(
        sizes[..sizes.len() - 2],
        [512, 1024 + MIB + MIB / 2, MIB / 2 + 1000]
    );
    // The record padding real tars carry stays in the last member, as the
    // reference writes it, even with a tiny chunk size.
    let small = tar_with_tail(10_240);
    let (blob, report) = convert_with(&small, 4);
    check_lossless(&small, &blob, &report, 4);
}

#[test]
fn trailing_data_over_the_cap_is_refused_alike_in_memory_and_streamed() {
    let tar = tar_with_tail(5000);
    let first_trailing = 3 * 512;
    for (cap, ok) in [(5000, true), (4999, false)] {
        let opts = Converter::builder()
            .chunk_size(700)
            .scan_limits({
                let mut o = ScanLimits::default();
                o.max_trailing = cap;
                o
            })
            .build()
            .unwrap();
        let streamed = opts
            .convert(&tar[..], Vec::new())
            .map_err(|e| e.to_string());
        let in_memory = opts
            .convert(Input::InMemory(Arc::new(tar.clone())), Vec::new())
            .map_err(|e| e.to_string());
        assert_eq!(streamed, in_memory, "cap {cap}");
        match streamed {
            Ok(_) => assert!(ok, "cap {cap}"),
            Err(e) => {
                assert!(!ok, "cap {cap}: {e}");
                let at = first_trailing + cap;
                assert!(
                    e.starts_with(&format!("malformed tar at byte {at}: ")),
                    "{e}"
                );
                assert!(e.contains("trailing data from byte 1536"), "{e}");
            }
        }
    }
}

/// A tar of one file `a/` × `depth` then `x` (a PAX `path`).
fn deep_tar(depth: usize) -> (Vec<u8>, String) {
    let name = format!("{}x", "a/".repeat(depth));
    (build_tar(Format::Pax, &[file(&name, b"deep")], 0), name)
}

#[test]
fn a_deep_path_converts_opens_and_verifies_on_a_small_stack() {
    let (tar, name) = deep_tar(3999);
    // The conversion's own threads have the default 2 MiB stack, where a
    // recursion per component overflowed; reading runs on 256 KiB here.
    let (blob, report) = convert_with(&tar, 4 << 20);
    check_lossless(&tar, &blob, &report, 4 << 20);
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let opened = Blob::open(&blob[..], &OpenOptions::default()).unwrap();
            assert_eq!(opened.read_file(&name).unwrap(), b"deep");
            assert_eq!(opened.index().walk().len(), 4000);
            let report = verify(&blob[..], &VerifyOptions::default());
            assert!(report.is_valid(), "{:?}", report.problems);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_path_deeper_than_readers_accept_is_not_converted() {
    let (tar, _) = deep_tar(10_000);
    let err = Converter::new().convert(&tar[..], Vec::new()).unwrap_err();
    match &err {
        Error::UnreadableEntry {
            entry,
            offset,
            reason,
        } => {
            assert!(entry.starts_with("a/a/") && entry.ends_with("/x"), "{err}");
            // The file's own header follows the PAX header and its records.
            assert_eq!(*offset as usize, tar.len() - 1024 - 512 - 512, "{err}");
            assert_eq!(reason, "path deeper than 4096 components");
        }
        other => panic!("{other}"),
    }
}

/// Largest uncompressed member of a blob, the TOC member excluded.
fn largest_member(blob: &[u8]) -> usize {
    let members = members(blob);
    members[..members.len() - 1]
        .iter()
        .map(|(_, d)| d.len())
        .max()
        .unwrap_or(0)
}

/// Converts `tar` streamed and in memory; both must give the same bytes.
fn convert_both_ways(tar: &[u8]) -> Vec<u8> {
    let opts = Converter::new();
    let mut streamed = Vec::new();
    opts.convert(tar, &mut streamed).expect("streamed");
    let mut in_memory = Vec::new();
    opts.convert(Input::InMemory(Arc::new(tar.to_vec())), &mut in_memory)
        .expect("in memory");
    assert!(streamed == in_memory, "streamed and in-memory blobs differ");
    let verified = verify(&streamed[..], &VerifyOptions::default());
    assert!(verified.is_valid(), "{:?}", verified.problems);
    assert_eq!(&common::gunzip(&streamed)[..tar.len()], tar, "lossless");
    streamed
}

#[test]
fn a_long_run_of_headers_is_split_into_members_of_bounded_size() {
    // 12,000 empty directories in a row: 6 MB of headers with no file data
    // to start a member. They used to pile up in one member, however many.
    let entries: Vec<_> = (0..12_000)
        .map(|i| common::tar_writer::dir(&format!("d{i}")))
        .collect();
    let tar = build_tar(Format::Ustar, &entries, 0);
    let blob = convert_both_ways(&tar);
    let cap = estargz_core::DEFAULT_CHUNK_SIZE as usize;
    let largest = largest_member(&blob);
    assert!(largest <= cap + 512, "a member of {largest} bytes");
    assert!(members(&blob).len() >= 3, "the run was not split");
}

#[test]
fn non_file_data_goes_into_members_piece_by_piece() {
    // A GNU dumpdir carries data (the directory's listing); 9 MiB of it
    // must not be held at once, nor fill one member.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::new(b'D'));
    h.set_mode(0o755);
    let listing = vec![b'Y'; 9 << 20];
    h.set_size(listing.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, "dumped/", &listing[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let blob = convert_both_ways(&tar);
    let cap = estargz_core::DEFAULT_CHUNK_SIZE as usize;
    let largest = largest_member(&blob);
    assert!(largest <= cap + 512, "a member of {largest} bytes");
}
