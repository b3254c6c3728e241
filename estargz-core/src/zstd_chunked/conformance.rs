//! The conformance cases of spec §9 answered by this layer and the
//! writer: Z1–Z7, Z13, Z14, Z16, Z17, Z19, Z22–Z24, Z26, Z28–Z30 on the
//! format layer's own pieces, and the writer's Z8–Z12, Z15–Z21 through
//! the converter (fixtures.rs covers the reading side of Z18, Z22, Z31;
//! the reader's cases are in the integration tests). Z18's chunk
//! boundaries are checked against an independent copy of
//! containers/storage's chunker (test-support's `chunker`) and against
//! skopeo's blob of the same tar. Z15's time zones are the CLI test's.

use super::annotations;
use super::fixtures::path;
use super::footer::tests::{unhex, C40_SMALL};
use super::footer::{self, encode_40, encode_64, FooterVersion, TarSplitLocation, ZstdFooter};
use super::frame::tests::{no_content_size, text};
use super::frame::{frame_extent, next_frame, skippable, Frame, FrameDecoder, FrameEncoder};
use super::tar_split::tests::split_of;
use super::tar_split::{check_against_toc, decode_tar_split_frame, TarSplitMatcher};
use super::toc::{
    decode_toc_frame, format_rfc3339_nano, parse_toc, ContainersEntry, ContainersToc, MetadataFrame,
};
use super::{Dialect, Limits, ZstdError};
use crate::digest::Digest;
use crate::tar::{Item, NamePolicy, ScanLimits, Scanner};
use std::collections::BTreeMap;

fn parse(blob: &[u8]) -> Result<Option<ZstdFooter>, ZstdError> {
    let tail = &blob[blob.len().saturating_sub(footer::MAX_FOOTER_SIZE)..];
    footer::parse(tail, blob.len() as u64)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(path(name)).unwrap()
}

/// Z1.
#[test]
fn z1_footer_40_round_trips() {
    for m in [8u64, 173, (1 << 32) + 5] {
        let bytes = encode_40(m, 274, 566);
        assert_eq!(&bytes[..8], &[0x50, 0x2a, 0x4d, 0x18, 0x28, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &m.to_le_bytes());
        assert_eq!(&bytes[40..], b"GnUlInUx");
        let f = footer::parse(&bytes, m + 274 + 48).unwrap().unwrap();
        assert_eq!(
            (f.version, f.manifest_offset, f.payload_end()),
            (FooterVersion::V40, m, m - 8)
        );
        assert_eq!(
            (f.toc_compressed, f.toc_uncompressed, f.manifest_type),
            (274, 566, 1)
        );
    }
}

/// Z2.
#[test]
fn z2_footer_64_round_trips() {
    let ts = TarSplitLocation {
        offset: 5000,
        compressed: 300,
        uncompressed: 9000,
    };
    let bytes = encode_64(4000, 992, 3000, ts);
    assert_eq!(&bytes[..8], &[0x50, 0x2a, 0x4d, 0x18, 0x40, 0, 0, 0]);
    assert_eq!(&bytes[64..], b"GNUlInUx");
    let f = footer::parse(&bytes, 5300 + 72).unwrap().unwrap();
    assert_eq!((f.version, f.tar_split), (FooterVersion::V64, Some(ts)));
    assert_eq!(f.encode(), bytes.to_vec());
    // The TOC must end before the tar-split's skippable header.
    let overlapping = encode_64(4000, 993, 3000, ts);
    assert!(footer::parse(&overlapping, 5300 + 72).is_err());
}

/// Z3: the C56 tail is recognised, with a warning, and its TOC is usable.
#[test]
fn z3_footer_56_is_read_with_a_warning() {
    let c40 = fixture("c40-small.zst");
    let mut blob = c40[..c40.len() - 48].to_vec();
    let f = ZstdFooter {
        version: FooterVersion::V56,
        ..parse(&c40).unwrap().unwrap()
    };
    blob.extend_from_slice(&f.encode());
    assert_eq!(blob.len(), c40.len() + 16);
    assert!(blob.ends_with(&[0; 16]));
    let got = parse(&blob).unwrap().unwrap();
    assert_eq!(
        (got.version, got.manifest_position()),
        (FooterVersion::V56, "177:243:488:1".into())
    );
    assert_eq!(got.warnings.len(), 1);
    let (start, len) = MetadataFrame::toc(&got).range();
    let mut d = FrameDecoder::new(27).unwrap();
    let toc = decode_toc_frame(
        &got,
        &blob[start as usize..(start + len) as usize],
        &Limits::default(),
        &mut d,
    )
    .unwrap();
    let parsed = parse_toc(&toc.json, got.version, got.manifest_offset).unwrap();
    assert_eq!(
        (parsed.dialect, parsed.toc.entries.len()),
        (Dialect::Containers, 2)
    );
    // Without its skippable header the pattern is an error, not "no footer".
    let mut broken = blob.clone();
    let at = broken.len() - 64;
    broken[at + 4] = 0x40;
    assert!(matches!(parse(&broken), Err(ZstdError::Footer { .. })));
}

/// Z4: magics in the wrong layout, bad skippable magic or length.
#[test]
fn z4_wrong_magic_for_the_layout() {
    let size = 100_000;
    let mut s_in_64 = encode_64(
        1000,
        100,
        100,
        TarSplitLocation {
            offset: 2000,
            compressed: 100,
            uncompressed: 1,
        },
    )
    .to_vec();
    s_in_64[64..].copy_from_slice(b"GnUlInUx");
    let mut gnu_in_40 = encode_40(1000, 100, 100).to_vec();
    gnu_in_40[40..].copy_from_slice(b"GNUlInUx");
    let mut bad_magic = encode_40(1000, 100, 100).to_vec();
    bad_magic[0] = 0x51;
    let mut bad_len = encode_40(1000, 100, 100).to_vec();
    bad_len[4] = 0x29;
    let mut bad_len_64 = encode_64(
        1000,
        100,
        100,
        TarSplitLocation {
            offset: 2000,
            compressed: 100,
            uncompressed: 1,
        },
    )
    .to_vec();
    bad_len_64[4] = 0x38;
    for (what, tail) in [
        ("GnUlInUx in a 64-byte footer", s_in_64),
        ("GNUlInUx in a 40-byte footer", gnu_in_40),
        ("bad skippable magic", bad_magic),
        ("bad skippable length", bad_len),
        ("64-byte footer with a 56 length", bad_len_64),
    ] {
        let err = footer::parse(&tail, size).unwrap_err();
        assert!(matches!(err, ZstdError::Footer { .. }), "{what}: {err}");
    }
}

/// Z5: type 7, L = 0, L = 2^40, M ∈ {0, 3}, M beyond the footer are
/// footer errors; U ≠ JSON length fails decoding; a huge L is refused
/// before anything is read.
#[test]
fn z5_bad_footer_fields() {
    let c40 = fixture("c40-small.zst");
    let good = parse(&c40).unwrap().unwrap();
    let reencode = |f: ZstdFooter| {
        let mut blob = c40[..c40.len() - 48].to_vec();
        blob.extend_from_slice(&f.encode());
        blob
    };
    for f in [
        ZstdFooter {
            manifest_type: 7,
            ..good.clone()
        },
        ZstdFooter {
            toc_compressed: 0,
            ..good.clone()
        },
        ZstdFooter {
            toc_compressed: 1 << 40,
            ..good.clone()
        },
        ZstdFooter {
            manifest_offset: 0,
            ..good.clone()
        },
        ZstdFooter {
            manifest_offset: 3,
            ..good.clone()
        },
        ZstdFooter {
            manifest_offset: 421,
            ..good.clone()
        },
        ZstdFooter {
            manifest_offset: u64::MAX - 10,
            ..good.clone()
        },
    ] {
        let err = parse(&reencode(f.clone())).unwrap_err();
        assert!(matches!(err, ZstdError::Footer { .. }), "{f:?}: {err}");
    }
    let mut d = FrameDecoder::new(27).unwrap();
    let (start, len) = MetadataFrame::toc(&good).range();
    let bytes = &c40[start as usize..(start + len) as usize];
    for u in [487, 489] {
        let f = ZstdFooter {
            toc_uncompressed: u,
            ..good.clone()
        };
        let err = decode_toc_frame(&f, bytes, &Limits::default(), &mut d).unwrap_err();
        assert!(
            matches!(
                err,
                ZstdError::Frame {
                    what: "TOC",
                    offset: 177,
                    ..
                }
            ),
            "{err}"
        );
    }
    // Caps come first: neither a 2^40 compressed nor a 2^40 uncompressed
    // length gets as far as looking at the (absent) bytes.
    for f in [
        ZstdFooter {
            toc_compressed: 1 << 40,
            ..good.clone()
        },
        ZstdFooter {
            toc_uncompressed: 1 << 40,
            ..good.clone()
        },
    ] {
        let err = decode_toc_frame(&f, &[], &Limits::default(), &mut d).unwrap_err();
        assert!(matches!(err, ZstdError::Limit { .. }), "{err}");
    }
}

/// Z6: the bytes at M − 8 must be the skippable magic and length L.
#[test]
fn z6_toc_skippable_header_is_checked() {
    let c40 = fixture("c40-small.zst");
    let f = parse(&c40).unwrap().unwrap();
    let (start, len) = MetadataFrame::toc(&f).range();
    let mut d = FrameDecoder::new(27).unwrap();
    for (at, value) in [(0, 0x51), (3, 0x19), (4, 0xf4), (7, 1)] {
        let mut bytes = c40[start as usize..(start + len) as usize].to_vec();
        bytes[at] = value;
        let err = decode_toc_frame(&f, &bytes, &Limits::default(), &mut d).unwrap_err();
        assert!(
            matches!(
                err,
                ZstdError::Skippable {
                    what: "TOC",
                    offset: 169,
                    ..
                }
            ),
            "{err}"
        );
    }
}

/// Z7: blobs of 0, 39 and 47 bytes.
#[test]
fn z7_tiny_blobs() {
    for n in [0usize, 39, 47] {
        let mut blob = vec![0u8; n];
        assert_eq!(parse(&blob).unwrap(), None);
        // No zstd magic: the gzip footers decide (the smallest is 46 bytes).
        let gzip = crate::footer::parse(&blob, n as u64);
        if n < 46 {
            assert!(matches!(
                gzip,
                Err(crate::footer::FooterError::TooSmall { .. })
            ));
        } else {
            assert!(gzip.is_err());
        }
        if n >= 8 {
            blob[n - 8..].copy_from_slice(b"GnUlInUx");
            assert_eq!(
                parse(&blob),
                Err(ZstdError::TooSmall {
                    size: n as u64,
                    need: 48
                })
            );
            blob[n - 8..].copy_from_slice(b"GNUlInUx");
            assert_eq!(
                parse(&blob),
                Err(ZstdError::TooSmall {
                    size: n as u64,
                    need: 72
                })
            );
        }
    }
}

/// Z13 and Z26 for the metadata frames: a TOC frame of ours carries what
/// §7.3 asks; decoding one that is one byte longer or shorter than
/// declared, has a wrong content size or a bad checksum fails.
#[test]
fn z13_z26_metadata_frames() {
    let json = text(50_000);
    let mut enc = FrameEncoder::new(3).unwrap();
    let (skip, l) = enc.skippable(&json).unwrap();
    let extent = frame_extent(&skip[8..]).unwrap();
    extent.header.check_written().unwrap();
    assert_eq!((extent.len, extent.header.content_size), (l, Some(50_000)));
    let footer = ZstdFooter {
        version: FooterVersion::V40,
        manifest_offset: 8,
        toc_compressed: l,
        toc_uncompressed: 50_000,
        manifest_type: 1,
        tar_split: None,
        warnings: Vec::new(),
    };
    let mut d = FrameDecoder::new(27).unwrap();
    let got = decode_toc_frame(&footer, &skip, &Limits::default(), &mut d).unwrap();
    assert!(got.json == json);
    assert_eq!(got.manifest_checksum, Digest::of(&skip[8..]));
    assert_eq!(got.toc_digest, Digest::of(&json));
    // A checksum that does not match.
    let mut bad_sum = skip.clone();
    let n = bad_sum.len();
    bad_sum[n - 1] ^= 0xff;
    assert!(decode_toc_frame(&footer, &bad_sum, &Limits::default(), &mut d).is_err());
    // No content size: the length alone decides, one byte either way fails.
    let bare = no_content_size(&json);
    let bare_skip = skippable(&bare).unwrap();
    for u in [49_999, 50_001] {
        let f = ZstdFooter {
            toc_compressed: bare.len() as u64,
            toc_uncompressed: u,
            ..footer.clone()
        };
        let err = decode_toc_frame(&f, &bare_skip, &Limits::default(), &mut d).unwrap_err();
        assert!(matches!(err, ZstdError::Frame { .. }), "{u}: {err}");
    }
    let f = ZstdFooter {
        toc_compressed: bare.len() as u64,
        ..footer.clone()
    };
    assert!(
        decode_toc_frame(&f, &bare_skip, &Limits::default(), &mut d)
            .unwrap()
            .json
            == json
    );
    // Over the cap: refused before decoding.
    let tight = Limits {
        max_toc_json: 49_999,
        ..Limits::default()
    };
    assert!(matches!(
        decode_toc_frame(&footer, &skip, &tight, &mut d),
        Err(ZstdError::Limit {
            what: "TOC JSON size",
            ..
        })
    ));
}

/// The C64 layout of small.tar assembled from this layer's pieces, as the
/// writer will (spec §4.2): frames of 1,024, 13 and 9,203 bytes, the TOC,
/// the tar-split, the 64-byte footer.
pub(crate) fn c64_of(tar: &[u8]) -> (Vec<u8>, Vec<u64>, ContainersToc, Vec<u8>) {
    let mut enc = FrameEncoder::new(10).unwrap();
    let mut blob = Vec::new();
    let mut plain_sizes = Vec::new();
    let mut open = Vec::new();
    let mut entries = Vec::new();
    let mut frame = |blob: &mut Vec<u8>, data: &[u8]| {
        plain_sizes.push(data.len() as u64);
        enc.compress(data, blob).unwrap();
    };
    let mut scanner = Scanner::new(tar, NamePolicy::Strict, ScanLimits::default());
    while let Some(item) = scanner.next_item().unwrap() {
        let e = match item {
            Item::Entry(e) => e,
            Item::End { raw, .. } => {
                open.extend_from_slice(&raw);
                while scanner.read_trailing(&mut open, 1 << 20).unwrap() > 0 {}
                break;
            }
        };
        open.extend_from_slice(&e.raw);
        let mut c = ContainersEntry {
            kind: e.kind.toc_type().as_str().into(),
            name: e.name.clone(),
            link_name: e.link_name.clone(),
            mode: e.mode,
            size: e.size as i64,
            uid: e.uid,
            gid: e.gid,
            modtime: format_rfc3339_nano(e.mtime.0, e.mtime.1).unwrap(),
            ..Default::default()
        };
        if e.size > 0 {
            frame(&mut blob, &std::mem::take(&mut open));
            let mut data = Vec::new();
            scanner.read_data(&mut data, e.size).unwrap();
            c.offset = blob.len() as i64;
            frame(&mut blob, &data);
            c.end_offset = blob.len() as i64;
            c.digest = Digest::of(&data).to_string();
        }
        entries.push(c);
    }
    frame(&mut blob, &open);
    // The tar-split first: the TOC holds its digest.
    let split = split_of(tar);
    let (split_skippable, split_len) = enc.skippable(&split).unwrap();
    let toc = ContainersToc {
        version: 1,
        entries,
        tar_split_digest: Digest::of(&split_skippable[8..]).to_string(),
    };
    let json = toc.to_json();
    let (toc_skippable, toc_len) = enc.skippable(&json).unwrap();
    let m = blob.len() as u64 + 8;
    blob.extend_from_slice(&toc_skippable);
    let t = blob.len() as u64 + 8;
    blob.extend_from_slice(&split_skippable);
    let location = TarSplitLocation {
        offset: t,
        compressed: split_len,
        uncompressed: split.len() as u64,
    };
    blob.extend_from_slice(&encode_64(m, toc_len, json.len() as u64, location));
    (blob, plain_sizes, toc, split)
}

/// Z16 and Z14: the containers dialect of small.tar, written from this
/// layer's pieces and read back with them.
#[test]
fn z16_containers_c64_of_small_tar() {
    let tar = fixture("small.tar");
    let (blob, sizes, toc, split) = c64_of(&tar);
    assert_eq!(sizes, [1024, 13, 9203]);
    assert_eq!(toc.to_json().len(), 435);
    assert_eq!(split.len(), 13958);
    assert!(zstd::decode_all(&blob[..]).unwrap() == tar);

    let f = parse(&blob).unwrap().unwrap();
    assert_eq!(f.version, FooterVersion::V64);
    let mut d = FrameDecoder::new(27).unwrap();
    let (start, len) = MetadataFrame::toc(&f).range();
    let frame = decode_toc_frame(
        &f,
        &blob[start as usize..(start + len) as usize],
        &Limits::default(),
        &mut d,
    )
    .unwrap();
    let decoded = parse_toc(&frame.json, f.version, f.manifest_offset).unwrap();
    assert_eq!(decoded.dialect, Dialect::Containers);
    let extras = decoded.containers.unwrap();
    let location = f.tar_split.unwrap();
    let (start, len) = f.tar_split_skippable().unwrap();
    let (stream, digest) = decode_tar_split_frame(
        &location,
        &blob[start as usize..(start + len) as usize],
        &Limits::default(),
        &mut d,
    )
    .unwrap();
    assert_eq!(Some(digest.to_string()), extras.tar_split_digest);
    assert!(stream == split);
    let mut m = TarSplitMatcher::new(&stream);
    m.update(&zstd::decode_all(&blob[..f.payload_end() as usize]).unwrap())
        .unwrap();
    assert_eq!(m.finish().unwrap(), (2, 10240));
    let names = decoded
        .toc
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.size as u64));
    check_against_toc(&stream, names).unwrap();
    // Z14: three io.github.* keys; the checksum is sha256 of [M, M + L).
    let ann = annotations::written(
        Dialect::Containers,
        &f,
        &frame.manifest_checksum,
        &frame.toc_digest,
        10240,
        false,
    );
    assert_eq!(ann.len(), 3);
    let m_range =
        &blob[f.manifest_offset as usize..(f.manifest_offset + f.toc_compressed) as usize];
    assert_eq!(frame.manifest_checksum, Digest::of(m_range));
    annotations::locate(&ann)
        .unwrap()
        .check(&f, &frame.manifest_checksum, &frame.toc_digest)
        .unwrap();
    // Every frame written follows §7.3 rule 2 (Z13).
    let mut at = 0;
    while at < f.payload_end() as usize {
        let Frame::Data(x) = next_frame(&blob[at..]).unwrap() else {
            panic!()
        };
        x.header.check_written().unwrap();
        at += x.len as usize;
    }
}

/// Z17: the tar-split of a PAX tar: one segment per entry with all of its
/// header blocks, a file line for every entry, reassembly gives the tar;
/// and it agrees with the TOC skopeo wrote for the same tar.
#[test]
fn z17_tar_split_of_a_pax_tar() {
    // The stargz blob is lossless: its stream is mixed.tar (checked in fixtures.rs).
    let mixed = zstd::decode_all(&fixture("s-lossless-mixed-c4096.zst")[..]).unwrap();
    assert_eq!(mixed.len(), 184_320);
    let split = split_of(&mixed);
    let items: Vec<_> = super::tar_split::TarSplitReader::new(&split)
        .map(Result::unwrap)
        .collect();
    use super::tar_split::TarSplitItem::{File, Segment};
    let files = items.iter().filter(|i| matches!(i, File { .. })).count();
    assert_eq!(files, 8);
    // The directory has no PAX header, the xattr file has one.
    assert!(matches!(&items[0], Segment(b) if b.len() == 512));
    assert!(matches!(&items[2], Segment(b) if b.len() == 1536));
    let mut m = TarSplitMatcher::new(&split);
    m.update(&mixed).unwrap();
    assert_eq!(m.finish().unwrap(), (8, 184_320));
    let c40 = fixture("c40-mixed.zst");
    let f = parse(&c40).unwrap().unwrap();
    let (start, len) = MetadataFrame::toc(&f).range();
    let mut d = FrameDecoder::new(27).unwrap();
    let frame = decode_toc_frame(
        &f,
        &c40[start as usize..(start + len) as usize],
        &Limits::default(),
        &mut d,
    )
    .unwrap();
    let toc: ContainersToc = serde_json::from_slice(&frame.json).unwrap();
    let names = toc
        .entries
        .iter()
        .filter(|e| e.kind != "chunk")
        .map(|e| (e.name.as_str(), e.size as u64));
    check_against_toc(&split, names).unwrap();
}

/// Z19: PAX times, exact in the containers dialect, rounded in the stargz one.
#[test]
fn z19_times() {
    let t = 1577934245;
    assert_eq!(
        format_rfc3339_nano(t, 600_000_000).unwrap(),
        "2020-01-02T03:04:05.6Z"
    );
    assert_eq!(
        format_rfc3339_nano(t + 1, 250_000_000).unwrap(),
        "2020-01-02T03:04:06.25Z"
    );
    assert_eq!(
        format_rfc3339_nano(t + 2, 0).unwrap(),
        "2020-01-02T03:04:07Z"
    );
    assert_eq!(
        crate::toc::format_modtime(t, 600_000_000),
        "2020-01-02T03:04:06Z"
    );
}

/// Z23, Z24: walking the frames finds a data frame between the TOC frame
/// and the footer (verify: error) and a skippable frame between data frames
/// (verify: warning), which decompression skips: the DiffID stays.
#[test]
fn z23_z24_extra_frames() {
    let s = fixture("s-lossless-small.zst");
    let f = parse(&s).unwrap().unwrap();
    let toc_end = (f.manifest_offset + f.toc_compressed) as usize;
    let mut extra = Vec::new();
    FrameEncoder::new(3)
        .unwrap()
        .compress(b"sneaky", &mut extra)
        .unwrap();
    // Z23: the footer still parses (it points at the TOC); the walk finds the frame.
    let mut z23 = s[..toc_end].to_vec();
    z23.extend_from_slice(&extra);
    z23.extend_from_slice(&s[toc_end..]);
    let f23 = parse(&z23).unwrap().unwrap();
    let between = &z23[toc_end..z23.len() - 48];
    assert!(matches!(next_frame(between), Ok(Frame::Data(_))));
    assert_eq!(f23.manifest_position(), f.manifest_position());
    // Z24: a skippable frame at 129, between the two data frames.
    let mut z24 = s[..129].to_vec();
    z24.extend_from_slice(&skippable(b"hidden").unwrap());
    z24.extend_from_slice(&s[129..]);
    assert_eq!(next_frame(&z24[129..]), Ok(Frame::Skippable(14)));
    assert!(zstd::decode_all(&z24[..]).unwrap() == zstd::decode_all(&s[..]).unwrap());
}

/// Z28: a containers frame must decode to exactly its chunk, a stargz
/// frame to at least `innerOffset + chunkSize`.
#[test]
fn z28_frames_shorter_or_longer_than_their_chunk() {
    let data = text(10_000);
    let mut frame = Vec::new();
    FrameEncoder::new(3)
        .unwrap()
        .compress(&data, &mut frame)
        .unwrap();
    let mut d = FrameDecoder::new(27).unwrap();
    assert!(d.decode_exact(&frame, 9_999).is_err());
    assert!(d.decode_exact(&frame, 10_001).is_err());
    assert!(d.decode_prefix(&frame, 5000, 5001).is_err());
    assert!(d.decode_prefix(&frame, 5000, 5000).unwrap() == data[5000..]);
    let bare = no_content_size(&data);
    assert!(d.decode_exact(&bare, 9_999).is_err());
    assert!(d.decode_exact(&bare, 10_001).is_err());
    assert!(d.decode_prefix(&bare, 1, 10_000).is_err());
}

/// Z29: reserved header bit, reserved block type, dictionary ID, windowLog 28.
#[test]
fn z29_frame_header_and_block_errors() {
    let data = text(3000);
    let bare = no_content_size(&data); // window descriptor at byte 5
    let mut d = FrameDecoder::new(27).unwrap();
    let mut reserved = bare.clone();
    reserved[4] |= 0x08;
    assert!(frame_extent(&reserved)
        .unwrap_err()
        .contains("reserved bit"));
    assert!(d.decode_prefix(&reserved, 0, 1).is_err());
    let mut block3 = bare.clone();
    block3[6] |= 0x06; // first block header: type 3
    assert!(frame_extent(&block3).unwrap_err().contains("reserved type"));
    assert!(d.decode_exact(&block3, 3000).is_err());
    let mut dict = bare[..5].to_vec();
    dict[4] |= 0x01;
    dict.push(bare[5]);
    dict.push(7); // dictionary 7
    dict.extend_from_slice(&bare[6..]);
    let h = super::frame::FrameHeader::parse(&dict).unwrap();
    assert_eq!(h.dict_id, Some(7));
    assert!(h.check_readable(27).unwrap_err().contains("dictionary"));
    assert!(d.decode_prefix(&dict, 0, 10).is_err());
    // windowLog 28: refused by default, accepted when configured.
    let mut wide = bare.clone();
    wide[5] = (28 - 10) << 3;
    assert!(d
        .decode_prefix(&wide, 0, 3000)
        .unwrap_err()
        .contains("window"));
    let mut d28 = FrameDecoder::new(28).unwrap();
    assert!(d28.decode_prefix(&wide, 0, 3000).unwrap() == data);
}

/// Z30: 32 KiB of RLE blocks expanding to 1 GiB behind a 4-byte chunk.
#[test]
fn z30_rle_bomb_costs_only_what_is_read() {
    let mut bomb = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3];
    for i in 0..8192u32 {
        let last = u32::from(i == 8191);
        let h = (128 << 10) << 3 | 1 << 1 | last;
        bomb.extend_from_slice(&h.to_le_bytes()[..3]);
        bomb.push(b'A');
    }
    assert_eq!(bomb.len(), 6 + 8192 * 4);
    let extent = frame_extent(&bomb).unwrap();
    assert_eq!((extent.len, extent.blocks), (bomb.len() as u64, 8192));
    let mut d = FrameDecoder::new(27).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(d.decode_prefix(&bomb, 0, 4).unwrap(), b"AAAA");
    // Exact decoding of a 4-byte chunk stops at the first block.
    assert!(d.decode_exact(&bomb, 4).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// Z22 on the footer side: skopeo's C40 footer is the §4.8 one.
#[test]
fn z22_debian_c40_footer() {
    let c40 = fixture("c40-small.zst");
    assert_eq!(c40[c40.len() - 48..], unhex(C40_SMALL)[..]);
}

// ---------------------------------------------------------------------
// The writer's cases (Z8-Z12, Z15-Z21), both dialects, through the one
// convert entry point. The 64-byte dialect has no other reader or writer
// on this machine: its cases are checked against the spec's examples and
// against this layer's own pieces (`c64_of`, `split_of`).

use crate::{Compression, ConvertReport, Converter, TocFormat};

fn write(tar: &[u8], format: TocFormat, chunk: u64, threads: usize) -> (Vec<u8>, ConvertReport) {
    let converter = Converter::builder()
        .compression(Compression::ZstdChunked)
        .toc_format(format)
        .chunk_size(chunk)
        .threads(Some(threads))
        .build()
        .unwrap();
    let mut blob = Vec::new();
    let report = converter.convert(tar, &mut blob).unwrap();
    (blob, report)
}

/// Offset and decompressed length of every data frame before the TOC;
/// each frame checked to carry what §7.3 rule 2 asks (Z13).
fn data_frames(blob: &[u8]) -> Vec<(u64, u64)> {
    let f = parse(blob).unwrap().unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < f.payload_end() as usize {
        let Frame::Data(x) = next_frame(&blob[at..]).unwrap() else {
            panic!("skippable frame at {at} inside the payload")
        };
        x.header.check_written().unwrap();
        let plain = zstd::decode_all(&blob[at..at + x.len as usize]).unwrap();
        assert_eq!(
            x.header.content_size,
            Some(plain.len() as u64),
            "FCS at {at}"
        );
        out.push((at as u64, plain.len() as u64));
        at += x.len as usize;
    }
    out
}

/// The footer, the decoded TOC and (64-byte footer) the tar-split stream
/// and the sha256 of its compressed frame.
fn metadata(blob: &[u8]) -> (ZstdFooter, super::toc::TocFrame, Option<(Vec<u8>, Digest)>) {
    let f = parse(blob).unwrap().unwrap();
    let mut d = FrameDecoder::new(27).unwrap();
    let (start, len) = MetadataFrame::toc(&f).range();
    let toc = decode_toc_frame(
        &f,
        &blob[start as usize..(start + len) as usize],
        &Limits::default(),
        &mut d,
    )
    .unwrap();
    let split = f.tar_split.map(|location| {
        let (start, len) = f.tar_split_skippable().unwrap();
        decode_tar_split_frame(
            &location,
            &blob[start as usize..(start + len) as usize],
            &Limits::default(),
            &mut d,
        )
        .unwrap()
    });
    (f, toc, split)
}

fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mtime: u64) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

/// The containers TOC with what depends on compressed sizes cleared.
fn without_offsets(mut toc: ContainersToc) -> ContainersToc {
    for e in &mut toc.entries {
        (e.offset, e.end_offset) = (0, 0);
    }
    toc.tar_split_digest.clear();
    toc
}

/// Z8: the stargz dialect of small.tar: frames of 1,024 and 9,216 bytes,
/// the TOC the reference wrote modulo `offset`, position `M:L:U:1`,
/// lossless.
#[test]
fn z8_stargz_write_small_tar() {
    let tar = fixture("small.tar");
    let (blob, report) = write(&tar, TocFormat::Stargz, 4 << 20, 2);
    let frames: Vec<u64> = data_frames(&blob).iter().map(|f| f.1).collect();
    assert_eq!(frames, [1024, 9216]);
    assert!(zstd::decode_all(&blob[..]).unwrap() == tar);
    let (f, toc, split) = metadata(&blob);
    assert_eq!(f.version, FooterVersion::V40);
    assert!(split.is_none());
    assert_eq!(f.toc_uncompressed, toc.json.len() as u64);
    assert_eq!(
        report.annotations()[annotations::LEGACY_MANIFEST_POSITION],
        f.manifest_position()
    );
    let ours = parse_toc(&toc.json, f.version, f.manifest_offset)
        .unwrap()
        .toc;
    let reference = open_fixture_toc("s-lossless-small");
    let strip = |mut t: crate::toc::Toc| {
        t.entries.iter_mut().for_each(|e| e.offset = 0);
        t
    };
    assert_eq!(strip(ours), strip(reference));
}

fn open_fixture_toc(name: &str) -> crate::toc::Toc {
    let blob = fixture(&format!("{name}.zst"));
    let (f, toc, _) = metadata(&blob);
    parse_toc(&toc.json, f.version, f.manifest_offset)
        .unwrap()
        .toc
}

/// Z9: a 5 MiB + 1000 B file at chunk size 4 MiB: a frame of exactly
/// 4,194,304 bytes, then the rest with the padding and the next header.
#[test]
fn z9_stargz_write_a_two_chunk_file() {
    let big: Vec<u8> = (0..(5 << 20) + 1000u32).map(|i| (i % 251) as u8).collect();
    let tar = tar_of(|b| {
        file(b, "big.bin", &big, 1);
        file(b, "next.txt", b"x", 1);
    });
    let (blob, _) = write(&tar, TocFormat::Stargz, 4 << 20, 2);
    let frames: Vec<u64> = data_frames(&blob).iter().map(|f| f.1).collect();
    assert_eq!(frames[..3], [512, 4 << 20, (1 << 20) + 1000 + 24 + 512]);
    // The containers dialect: the chunks alone, headers in frames of their own.
    let (blob, _) = write(&tar, TocFormat::Containers, 4 << 20, 2);
    let frames: Vec<u64> = data_frames(&blob).iter().map(|f| f.1).collect();
    assert_eq!(frames[..4], [512, 4 << 20, (1 << 20) + 1000, 24 + 512]);
    assert!(zstd::decode_all(&blob[..]).unwrap() == tar);
}

/// Z10 (0-byte input is refused, as for gzip: not a tar) and Z11 (the
/// end-of-archive blocks alone: one frame of 1,024 bytes), both dialects.
#[test]
fn z10_z11_empty_and_end_of_archive_only() {
    for format in [TocFormat::Stargz, TocFormat::Containers] {
        let converter = Converter::builder()
            .compression(Compression::ZstdChunked)
            .toc_format(format)
            .build()
            .unwrap();
        let err = converter.convert(&[][..], Vec::new()).unwrap_err();
        assert!(matches!(err, crate::Error::EmptyInput), "{format}: {err}");
        let tar = vec![0u8; 1024];
        let (blob, report) = write(&tar, format, 4 << 20, 1);
        assert_eq!(data_frames(&blob), [(0, 1024)], "{format}");
        assert_eq!(report.blob.diff_id, Digest::of(&tar));
    }
    let (blob, _) = write(&[0u8; 1024], TocFormat::Containers, 4 << 20, 1);
    let (_, toc, split) = metadata(&blob);
    let (stream, digest) = split.unwrap();
    let want = format!("{{\"version\":1,\"entries\":null,\"tarSplitDigest\":\"{digest}\"}}");
    assert_eq!(String::from_utf8(toc.json).unwrap(), want);
    // tar-split: the end-of-archive segment (both blocks), then the empty one.
    assert_eq!(stream, split_of(&[0u8; 1024]));
}

/// Z12: an empty file starts no frame; the stargz TOC gives it sha256 of
/// nothing, the containers TOC neither `digest` nor `offset`.
#[test]
fn z12_empty_file() {
    let tar = tar_of(|b| {
        file(b, "empty", b"", 1);
        file(b, "one", b"1", 1);
    });
    let (blob, _) = write(&tar, TocFormat::Stargz, 4 << 20, 1);
    let frames = data_frames(&blob);
    assert_eq!(frames.len(), 2, "{frames:?}");
    let toc = open_toc(&blob);
    assert_eq!(toc.entries[0].digest, Digest::of(b"").to_string());
    let (blob, _) = write(&tar, TocFormat::Containers, 4 << 20, 1);
    let c = containers_toc(&blob);
    assert_eq!((c.entries[0].digest.as_str(), c.entries[0].offset), ("", 0));
    assert_eq!(c.entries[1].digest, Digest::of(b"1").to_string());
    assert_eq!(data_frames(&blob).len(), 3);
}

fn open_toc(blob: &[u8]) -> crate::toc::Toc {
    let (f, toc, _) = metadata(blob);
    parse_toc(&toc.json, f.version, f.manifest_offset)
        .unwrap()
        .toc
}

fn containers_toc(blob: &[u8]) -> ContainersToc {
    serde_json::from_slice(&metadata(blob).1.json).unwrap()
}

/// Z15 (threads; the time zone is the CLI test's): the same bytes for 1
/// and 3 threads, chunk sizes that split files, both dialects.
#[test]
fn z15_same_bytes_for_any_thread_count() {
    let mixed = zstd::decode_all(&fixture("s-lossless-mixed-c4096.zst")[..]).unwrap();
    for format in [TocFormat::Stargz, TocFormat::Containers] {
        for chunk in [4096, 4 << 20] {
            let one = write(&mixed, format, chunk, 1).0;
            assert!(one == write(&mixed, format, chunk, 3).0, "{format} {chunk}");
        }
    }
}

/// Z16 and Z14, written by the converter: small.tar's containers dialect
/// has frames of 1,024, 13 and 9,203 bytes, the spec's TOC (435 bytes)
/// modulo offsets, the tar-split of §4.8 byte for byte, the 64-byte
/// footer and both generations of the annotation keys.
#[test]
fn z16_containers_write_small_tar() {
    let tar = fixture("small.tar");
    let (blob, report) = write(&tar, TocFormat::Containers, 4 << 20, 2);
    let frames = data_frames(&blob);
    assert_eq!(
        frames.iter().map(|f| f.1).collect::<Vec<_>>(),
        [1024, 13, 9203]
    );
    assert!(zstd::decode_all(&blob[..]).unwrap() == tar);
    let (f, toc, split) = metadata(&blob);
    assert_eq!(f.version, FooterVersion::V64);
    assert_eq!(
        &blob[blob.len() - 72..blob.len() - 64],
        &[0x50, 0x2a, 0x4d, 0x18, 0x40, 0, 0, 0]
    );
    let (stream, split_digest) = split.unwrap();
    assert!(stream == split_of(&tar));
    assert_eq!(stream.len(), 13958);
    let c = containers_toc(&blob);
    assert_eq!(c.tar_split_digest, split_digest.to_string());
    assert_eq!(toc.json.len(), 435);
    let (_, _, reference, _) = c64_of(&tar);
    assert_eq!(without_offsets(c.clone()), without_offsets(reference));
    assert_eq!(
        (c.entries[1].offset as u64, c.entries[1].end_offset as u64),
        (frames[1].0, frames[2].0)
    );
    // The spec's entry, offsets aside.
    let text = String::from_utf8(toc.json.clone()).unwrap();
    assert!(text.contains("{\"type\":\"reg\",\"name\":\"foo/bar.txt\",\"mode\":420,\"size\":13,\"uid\":1000,\"gid\":1000,\"modtime\":\"2020-01-02T03:04:05Z\",\"digest\":\"sha256:729f6325279004939aefac7dd2e69bb35659b2d38724cc28fbfe1fb104f51bdf\",\"offset\":"), "{text}");
    // Z14: manifest checksum = sha256(blob[M, M + L)), in both key sets.
    let m = &blob[f.manifest_offset as usize..(f.manifest_offset + f.toc_compressed) as usize];
    assert_eq!(toc.manifest_checksum, Digest::of(m));
    let a = report.annotations();
    let want: BTreeMap<String, String> = [
        (annotations::MANIFEST_CHECKSUM, Digest::of(m).to_string()),
        (annotations::MANIFEST_POSITION, f.manifest_position()),
        (
            annotations::TAR_SPLIT_POSITION,
            annotations::tar_split_position(&f.tar_split.unwrap()),
        ),
        (
            annotations::LEGACY_MANIFEST_CHECKSUM,
            Digest::of(m).to_string(),
        ),
        (annotations::LEGACY_MANIFEST_POSITION, f.manifest_position()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(a, want);
    annotations::locate(&a)
        .unwrap()
        .check(&f, &toc.manifest_checksum, &toc.toc_digest)
        .unwrap();
    // The layout of §4.2: TOC skippable, tar-split skippable, footer, nothing between.
    let t = f.tar_split.unwrap();
    assert_eq!(f.manifest_offset + f.toc_compressed + 8, t.offset);
    assert_eq!(t.offset + t.compressed + 72, blob.len() as u64);
}

/// Z17 and Z18 on mixed.tar (PAX, xattrs, a 5 MiB file, a zero run):
/// the writer's tar-split is the one of §4.5; every data frame holds
/// exactly its chunk; `endOffset` is the end of the last chunk's frame;
/// chunk fields only on files of two or more chunks.
#[test]
fn z17_z18_containers_write_mixed_tar() {
    let mixed = zstd::decode_all(&fixture("s-lossless-mixed-c4096.zst")[..]).unwrap();
    let (blob, _) = write(&mixed, TocFormat::Containers, 4096, 2);
    assert!(zstd::decode_all(&blob[..]).unwrap() == mixed);
    let (_, _, split) = metadata(&blob);
    assert!(split.unwrap().0 == split_of(&mixed));
    let frames: BTreeMap<u64, u64> = data_frames(&blob).into_iter().collect();
    let c = containers_toc(&blob);
    let mut multi = 0;
    for (i, e) in c.entries.iter().enumerate() {
        let next_is_chunk = c.entries.get(i + 1).is_some_and(|n| n.kind == "chunk");
        if e.kind == "reg" && e.size > 0 {
            assert!(e.end_offset > e.offset, "{}", e.name);
            assert!(
                frames.contains_key(&(e.end_offset as u64))
                    || e.end_offset as u64 == parse(&blob).unwrap().unwrap().payload_end()
            );
            assert_eq!(next_is_chunk, e.chunk_size > 0, "{}", e.name);
            assert_eq!(next_is_chunk, !e.chunk_digest.is_empty(), "{}", e.name);
            let len = if next_is_chunk { e.chunk_size } else { e.size };
            assert_eq!(
                frames.get(&(e.offset as u64)),
                Some(&(len as u64)),
                "{}",
                e.name
            );
            multi += usize::from(next_is_chunk);
        }
        if e.kind == "chunk" {
            assert_eq!(
                frames.get(&(e.offset as u64)),
                Some(&(e.chunk_size as u64)),
                "{} {}",
                e.name,
                e.chunk_offset
            );
            assert!(e.digest.is_empty() && e.end_offset == 0);
        }
    }
    assert!(multi >= 2, "files of several chunks: {multi}");
}

/// Regular files of a tar with data: (name, contents), in order.
fn files_of(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut out = Vec::new();
    for entry in tar::Archive::new(tar).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() == tar::EntryType::Regular && entry.size() > 0 {
            let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((name, data));
        }
    }
    out
}

/// containers/storage's chunks (the independent chunker's), each cut into
/// pieces of at most `cap` bytes: the boundaries the writer promises for a
/// chunk size of `cap` (its cuts depend on the content alone, so a forced
/// cut never moves the next one).
fn capped(chunks: Vec<estargz_test_support::chunker::Chunk>, cap: u64) -> Vec<(u64, u64, bool)> {
    let mut out = Vec::new();
    for c in chunks {
        let mut at = 0;
        while at < c.size {
            let len = cap.min(c.size - at);
            out.push((c.offset + at, len, c.zeros));
            at += len;
        }
    }
    out
}

/// Z18, the writer: the containers dialect cuts files where
/// containers/storage does (spec §4.3; an independent copy of its chunker
/// in test-support decides), a zero run is one `zeros` chunk, every data
/// frame decompresses exactly to its chunk, and the chunk size only caps a
/// chunk. The same tar written by Debian's skopeo (containers/storage
/// 1.43, `c40-mixed.zst`) has the same chunks.
#[test]
fn z18_containers_chunks_are_content_defined() {
    use estargz_test_support::chunker::{chunks, toc_chunks};
    let mixed = zstd::decode_all(&fixture("s-lossless-mixed-c4096.zst")[..]).unwrap();
    let files = files_of(&mixed);
    for cap in [4 << 20, 65_536, 4096, 1000] {
        let (blob, _) = write(&mixed, TocFormat::Containers, cap, 3);
        assert!(write(&mixed, TocFormat::Containers, cap, 1).0 == blob);
        let converter = Converter::builder()
            .compression(Compression::ZstdChunked)
            .toc_format(TocFormat::Containers)
            .chunk_size(cap)
            .build()
            .unwrap();
        let mut in_memory = Vec::new();
        converter
            .convert(crate::Input::in_memory(mixed.clone()), &mut in_memory)
            .unwrap();
        assert!(
            in_memory == blob,
            "chunk size {cap}: in memory and streamed differ"
        );
        let got = toc_chunks(&blob);
        assert_eq!(got.len(), files.len());
        let frames: BTreeMap<u64, Vec<u8>> = data_frames(&blob)
            .into_iter()
            .map(|(at, _)| {
                let x = frame_extent(&blob[at as usize..]).unwrap();
                let plain = zstd::decode_all(&blob[at as usize..][..x.len as usize]).unwrap();
                (at, plain)
            })
            .collect();
        let c = containers_toc(&blob);
        let offsets: Vec<u64> = c
            .entries
            .iter()
            .filter(|e| e.kind == "chunk" || (e.kind == "reg" && e.size > 0))
            .map(|e| e.offset as u64)
            .collect();
        let mut offsets = offsets.into_iter();
        let mut zeros_chunks = Vec::new();
        for ((name, data), (toc_name, toc)) in files.iter().zip(&got) {
            assert_eq!(name, toc_name);
            let want = capped(chunks(data), cap);
            let strip = |v: &[(u64, u64, bool)]| v.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>();
            let have: Vec<(u64, u64, bool)> =
                toc.iter().map(|c| (c.offset, c.size, c.zeros)).collect();
            if want.len() > 1 {
                assert_eq!(have, want, "{name}, chunk size {cap}");
            } else {
                // One chunk: the TOC has no chunk fields, so no chunkType.
                assert_eq!(strip(&have), strip(&want), "{name}, chunk size {cap}");
            }
            for &(off, size, zeros) in &have {
                let chunk = &data[off as usize..(off + size) as usize];
                let frame = &frames[&offsets.next().unwrap()];
                assert!(
                    frame[..] == *chunk,
                    "{name} at {off}: frame is not its chunk"
                );
                if zeros {
                    assert!(chunk.iter().all(|&b| b == 0));
                    zeros_chunks.push((name.clone(), off, size));
                }
            }
        }
        if cap == 4 << 20 {
            // mixed.tar's one zero run of at least 1,024 bytes (§3.6): 3,000 bytes.
            assert_eq!(zeros_chunks.len(), 1, "{zeros_chunks:?}");
            assert_eq!(zeros_chunks[0].2, 3000);
            // containers/storage's own output for the same tar.
            assert_eq!(toc_chunks(&fixture("c40-mixed.zst")), got);
        }
    }
}

/// The independent chunker itself, on cases worked by hand from spec §4.3:
/// a zero run of 1,023 bytes is data, one of 1,024 a chunk, and a file of
/// zeros one `zeros` chunk.
#[test]
fn z18_independent_chunker_on_hand_cases() {
    use estargz_test_support::chunker::{chunks, Chunk};
    assert_eq!(chunks(b""), vec![]);
    assert_eq!(
        chunks(&[0; 2000]),
        vec![Chunk {
            offset: 0,
            size: 2000,
            zeros: true
        }]
    );
    let mut d = vec![1u8; 100];
    d.extend([0; 1023]);
    d.extend([2; 10]);
    d.extend([0; 1024]);
    d.extend([3; 5]);
    let c = chunks(&d);
    assert_eq!(
        c.iter().map(|c| (c.size, c.zeros)).collect::<Vec<_>>(),
        [(1133, false), (1024, true), (5, false)]
    );
}

/// Z19: PAX times, exact in the containers TOC (nanoseconds, UTC), whole
/// seconds in the stargz one; GNU header atime/ctime are read too.
#[test]
fn z19_times_written() {
    let t = 1577934245u64;
    let tar = tar_of(|b| {
        b.append_pax_extensions([
            ("mtime", &b"1577934245.6"[..]),
            ("atime", b"1577934246.25"),
            ("ctime", b"1577934247"),
        ])
        .unwrap();
        file(b, "pax", b"p", t);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mtime(t);
        h.as_gnu_mut().unwrap().set_atime(t + 10);
        h.as_gnu_mut().unwrap().set_ctime(t + 20);
        h.set_cksum();
        b.append_data(&mut h, "gnu", &b"g"[..]).unwrap();
        file(b, "plain", b"x", 0);
    });
    let (blob, _) = write(&tar, TocFormat::Containers, 4 << 20, 1);
    let c = containers_toc(&blob);
    let times = |i: usize| {
        let e = &c.entries[i];
        (
            e.modtime.as_str(),
            e.accesstime.as_str(),
            e.changetime.as_str(),
        )
    };
    assert_eq!(
        times(0),
        (
            "2020-01-02T03:04:05.6Z",
            "2020-01-02T03:04:06.25Z",
            "2020-01-02T03:04:07Z"
        )
    );
    assert_eq!(
        times(1),
        (
            "2020-01-02T03:04:05Z",
            "2020-01-02T03:04:15Z",
            "2020-01-02T03:04:25Z"
        )
    );
    assert_eq!(times(2), ("1970-01-01T00:00:00Z", "", ""));
    let (blob, _) = write(&tar, TocFormat::Stargz, 4 << 20, 1);
    assert_eq!(open_toc(&blob).entries[0].modtime, "2020-01-02T03:04:06Z");
}

/// Z20: duplicates, PAX `g`, a non-UTF-8 name and a sparse file: the
/// stargz dialect accepts the first three (U+FFFD and a warning for the
/// name) and refuses sparse; the containers dialect refuses all four,
/// naming the entry and its offset.
#[test]
fn z20_what_each_dialect_refuses() {
    let tars = |name: &str| std::fs::read(path(&format!("../../tars/{name}"))).unwrap();
    let cases = [
        (
            "valid/gnu-duplicate-names.tar",
            "\"dup.txt\" at byte 2048",
            "same name",
        ),
        (
            "valid/git-archive.tar",
            "\"pax_global_header\" at byte 0",
            "PAX global header",
        ),
        (
            "valid/python-gnu-nonutf8-name.tar",
            "at byte 512",
            "not valid UTF-8",
        ),
        ("sparse/gnu-gnu-sparse.tar", "at byte", "sparse"),
    ];
    for (name, at, why) in cases {
        let tar = tars(name);
        let converter = Converter::builder()
            .compression(Compression::ZstdChunked)
            .toc_format(TocFormat::Containers)
            .build()
            .unwrap();
        let err = converter.convert(&tar, Vec::new()).unwrap_err().to_string();
        assert!(err.contains(at) && err.contains(why), "{name}: {err}");
        let stargz = Converter::builder()
            .compression(Compression::ZstdChunked)
            .build()
            .unwrap();
        let result = stargz.convert(&tar, Vec::new());
        if name.starts_with("sparse/") {
            assert!(
                matches!(result, Err(crate::Error::SparseEntry { .. })),
                "{name}"
            );
        } else {
            let report = result.unwrap();
            assert_eq!(
                report.warnings.is_empty(),
                !name.contains("nonutf8"),
                "{name}"
            );
        }
    }
}

/// Z21: lossless round trips of small.tar and mixed.tar in both dialects,
/// with the diffID reported = the input's (the fixture tars are the
/// integration tests').
#[test]
fn z21_round_trips() {
    let mixed = zstd::decode_all(&fixture("s-lossless-mixed-c4096.zst")[..]).unwrap();
    for tar in [fixture("small.tar"), mixed] {
        for format in [TocFormat::Stargz, TocFormat::Containers] {
            let (blob, report) = write(&tar, format, 4096, 2);
            assert!(zstd::decode_all(&blob[..]).unwrap() == tar, "{format}");
            assert_eq!(report.blob.diff_id, Digest::of(&tar));
            if let Some((stream, _)) = metadata(&blob).2 {
                let mut matcher = TarSplitMatcher::new(&stream);
                matcher.update(&tar).unwrap();
                matcher.finish().unwrap();
            }
        }
    }
}
