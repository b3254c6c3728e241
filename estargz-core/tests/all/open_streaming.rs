//! `Blob::open` builds the index while the TOC streams out of its
//! decompressor (issue #20: peak memory during open): the TOC digest asked
//! for is still checked before anything is used, whatever the TOC holds,
//! and hostile TOCs cost bounded memory, in both formats and both
//! zstd:chunked dialects. Memory is the heap this test's thread had live
//! at its peak during `open` (`common::heap`).

use crate::common::heap::peak_during;
use crate::common::tar_writer::*;
use crate::zstd_read::assemble;
use estargz_core::internals::{footer, tar_bytes};
use estargz_core::{Blob, Compression, Converter, Digest, Error, OpenOptions, TocFormat};

/// A blob holding only a TOC, gzip: the TOC member at 0, then the footer.
fn gzip_blob(json: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &tar_bytes(json)).unwrap();
    let mut blob = enc.finish().unwrap();
    blob.extend_from_slice(&footer::encode(0));
    blob
}

/// The TOC `json` in a blob of each format (zstd:chunked with a 40-byte
/// footer, whose dialect the JSON's keys tell).
fn blobs(json: &[u8]) -> [(&'static str, Vec<u8>); 2] {
    [("gzip", gzip_blob(json)), ("zstd", assemble(&[], json))]
}

fn open_with(blob: &[u8], opts: &OpenOptions) -> Result<(), Error> {
    Blob::open(blob, opts).map(|_| ())
}

fn expecting(digest: Digest) -> OpenOptions {
    let mut opts = OpenOptions::default();
    opts.expected_toc_digest = Some(digest);
    opts
}

/// A TOC that is not the one asked for is refused as that, even when an
/// entry in it is bad (which the index builder, fed while the JSON streams,
/// meets before the digest is known) or it does not map onto the eStargz
/// model; with the right digest the entry's error is what comes out.
#[test]
fn a_toc_other_than_the_expected_one_is_refused_in_every_format() {
    let stamp = "\"accesstime\":\"2020-01-02T03:04:05Z\"";
    let cases = [
        (
            "stargz, a chunk without its file",
            r#"{"version":1,"entries":[{"name":"x","type":"chunk","offset":5}]}"#.to_string(),
            "does not follow a regular file",
        ),
        (
            "containers, a chunk without its file",
            format!(r#"{{"version":1,"entries":[{{"type":"chunk","name":"x",{stamp}}}]}}"#),
            "does not follow a regular file",
        ),
        (
            "containers, an unknown chunk type",
            format!(
                r#"{{"version":1,"entries":[{{"type":"reg","name":"f",{stamp},"chunkType":"holes"}}]}}"#
            ),
            "unknown chunkType",
        ),
        (
            "stargz, not JSON after the first entry",
            r#"{"version":1,"entries":[{"name":"a","type":"dir"},{"name":}]}"#.to_string(),
            "error decoding TOC JSON",
        ),
    ];
    let wrong = Digest::of(b"another TOC");
    for (what, json, want) in &cases {
        for (format, blob) in blobs(json.as_bytes()) {
            if format == "gzip" && want.contains("chunkType") {
                continue; // an eStargz TOC has no such key: it is ignored
            }
            match open_with(&blob, &expecting(wrong)) {
                Err(Error::TocDigestMismatch {
                    expected, actual, ..
                }) => assert_eq!(
                    (expected, actual),
                    (wrong, Digest::of(json.as_bytes())),
                    "{what}, {format}"
                ),
                other => panic!("{what}, {format}: {other:?}"),
            }
            let Err(err) = open_with(&blob, &expecting(Digest::of(json.as_bytes()))) else {
                panic!("{what}, {format}: opened");
            };
            assert!(err.to_string().contains(want), "{what}, {format}: {err}");
            if format == "gzip" && want.contains("regular file") {
                assert!(matches!(err, Error::InvalidEntry { index: 0, .. }), "{err}");
            }
        }
    }

    // The containers dialect of the 64-byte footer, read in one pass:
    // either digest naming the TOC opens it, another does not.
    let tar = build_tar(Format::Ustar, &[file("a", "x"), file("b", "yy")], 0);
    let converter = Converter::builder()
        .compression(Compression::ZstdChunked)
        .toc_format(TocFormat::Containers)
        .build()
        .unwrap();
    let mut blob = Vec::new();
    converter.convert(&tar, &mut blob).unwrap();
    let opened = Blob::open(&blob[..], &OpenOptions::default()).unwrap();
    let checksum = opened.zstd_chunked().unwrap().manifest_checksum;
    open_with(&blob, &expecting(opened.toc_digest())).unwrap();
    open_with(&blob, &expecting(checksum)).unwrap();
    assert!(matches!(
        open_with(&blob, &expecting(wrong)),
        Err(Error::TocDigestMismatch { .. })
    ));
}

/// `n` directory entries, `{"name":"d0","type":"dir"}` and so on.
fn many_entries(n: usize) -> Vec<u8> {
    let entries: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name":"d{i}","type":"dir"}}"#))
        .collect();
    format!(r#"{{"version":1,"entries":[{}]}}"#, entries.join(",")).into_bytes()
}

/// A TOC of 100,000 entries against a cap of 1,000 is refused with its
/// whole count, and the entries past the cap are parsed and dropped one
/// at a time: open never holds the JSON (3 MB) or the entries (about
/// 30 MB parsed).
#[test]
fn a_toc_of_too_many_entries_costs_no_more_than_the_cap() {
    let json = many_entries(100_000);
    let mut opts = OpenOptions::default();
    opts.index.max_entries = 1000;
    for (format, blob) in blobs(&json) {
        let (result, peak) = peak_during(|| open_with(&blob, &opts));
        match result {
            Err(Error::LimitExceeded { what, value, limit }) => {
                assert_eq!((what, value, limit), ("TOC entry count", 100_000, 1000))
            }
            other => panic!("{format}: {other:?}"),
        }
        // The TOC member as read (for gzip, about a fifth of the JSON
        // here), an index of 1,000 nodes and the read buffers.
        assert!(
            peak < json.len() / 2,
            "{format}: {peak} bytes at the peak, the JSON is {}",
            json.len()
        );
    }
    // Under the cap, the same TOC opens into its index.
    opts.index.max_entries = 100_000;
    for (format, blob) in blobs(&json) {
        let blob = Blob::open(&blob[..], &opts).unwrap();
        assert_eq!(blob.index().len(), 100_001, "{format}");
        assert!(blob.index().lookup("d99999").is_some(), "{format}");
    }
}

/// Nesting 100,000 deep is skipped without recursion in a key the TOC
/// does not use, and refused as the TOC itself; a name of 4 MiB is
/// refused by the index's name cap with memory of a few times its length.
#[test]
fn deep_nesting_and_huge_strings_are_bounded() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let json = format!(r#"{{"version":1,"entries":[{{"name":"a","type":"dir","x":{nested}}}]}}"#);
    for (format, blob) in blobs(json.as_bytes()) {
        let blob = Blob::open(&blob[..], &OpenOptions::default()).unwrap();
        assert!(blob.index().lookup("a").is_some(), "{format}");
    }
    for (format, blob) in blobs(nested.as_bytes()) {
        let err = open_with(&blob, &OpenOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("error decoding TOC JSON"),
            "{format}: {err}"
        );
    }
    let long = "n".repeat(4 << 20);
    let json = format!(r#"{{"version":1,"entries":[{{"name":"{long}","type":"dir"}}]}}"#);
    for (format, blob) in blobs(json.as_bytes()) {
        let (result, peak) = peak_during(|| open_with(&blob, &OpenOptions::default()));
        match result {
            Err(Error::InvalidEntry {
                index: 0, reason, ..
            }) => {
                assert!(reason.contains("name longer than"), "{format}: {reason}")
            }
            other => panic!("{format}: {other:?}"),
        }
        // The string as serde gathers it, the entry's, its cleaned form
        // and the error's copy: four, whatever the rest of the TOC holds.
        assert!(peak < 5 * long.len(), "{format}: {peak} bytes at the peak");
    }
}

/// Each entry is parsed into the previous one's place: what an entry
/// leaves out is absent from its node, not the previous entry's value.
#[test]
fn an_entry_keeps_nothing_of_the_one_before() {
    let json = br#"{"version":1,"entries":[
        {"name":"full","type":"symlink","linkName":"t","mode":420,"uid":7,"gid":8,
         "userName":"u","groupName":"g","modtime":"2020-01-02T03:04:05Z",
         "devMajor":1,"devMinor":2,"xattrs":{"user.a":"YQ=="}},
        {"name":"bare","type":"dir"}
    ]}"#;
    for (format, blob) in blobs(json) {
        let blob = Blob::open(&blob[..], &OpenOptions::default()).unwrap();
        let full = blob.index().lookup("full").unwrap();
        assert_eq!(
            (full.link_name(), full.mode(), full.xattrs().len()),
            ("t", 420, 1),
            "{format}"
        );
        let bare = blob.index().lookup("bare").unwrap();
        assert_eq!(
            (bare.link_name(), bare.mode(), bare.uid(), bare.gid()),
            ("", 0, 0, 0),
            "{format}"
        );
        assert_eq!((bare.dev_major(), bare.dev_minor()), (0, 0), "{format}");
        assert!(bare.xattrs().is_empty(), "{format}");
        assert_eq!(bare.modtime(), None, "{format}");
    }
}
