use super::*;
use proptest::prelude::*;
use std::io::{Read, Write};

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Compressible, but not trivially: text-like runs with counters in them.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("line {} value {:x}\n", x % 1000, x >> 40).as_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn decodes_members_one_after_another() {
    let parts: Vec<Vec<u8>> = [0usize, 1, 100, 65_536, 300_000]
        .iter()
        .enumerate()
        .map(|(i, &n)| sample(n, i as u64))
        .collect();
    let blob: Vec<u8> = parts.iter().flat_map(|p| gzip(p, 6)).collect();
    let mut d = MemberDecoder::new();
    let mut out = vec![0u8; 1 << 20];
    let mut pos = 0;
    for part in &parts {
        let r = d.decode(&blob[pos..], &mut out).unwrap();
        assert_eq!(&out[..r.produced], &part[..]);
        pos += r.consumed;
    }
    assert_eq!(pos, blob.len());
}

#[test]
fn output_too_small_is_insufficient_space() {
    let data = sample(10_000, 3);
    let gz = gzip(&data, 9);
    let mut d = MemberDecoder::new();
    let mut out = vec![0u8; 9_999];
    assert_eq!(d.decode(&gz, &mut out), Err(DecodeError::InsufficientSpace));
    let mut out = vec![0u8; 10_000];
    assert_eq!(d.decode(&gz, &mut out).unwrap().produced, 10_000);
}

#[test]
fn truncated_or_damaged_members_are_bad_data() {
    let data = sample(50_000, 4);
    let gz = gzip(&data, 6);
    let mut d = MemberDecoder::new();
    let mut out = vec![0u8; 100_000];
    for cut in [0, 1, 9, 10, 11, gz.len() / 2, gz.len() - 8, gz.len() - 1] {
        assert_eq!(
            d.decode(&gz[..cut], &mut out),
            Err(DecodeError::BadData),
            "cut at {cut}"
        );
    }
    // The CRC, then the length, in the trailer.
    for at in [gz.len() - 8, gz.len() - 1] {
        let mut bad = gz.clone();
        bad[at] ^= 1;
        assert_eq!(
            d.decode(&bad, &mut out),
            Err(DecodeError::BadData),
            "flip at {at}"
        );
    }
    // Not gzip at all.
    assert_eq!(
        d.decode(b"plain text, not gzip", &mut out),
        Err(DecodeError::BadData)
    );
    // The decoder is still good afterwards.
    assert_eq!(d.decode(&gz, &mut out).unwrap().produced, data.len());
}

proptest! {
    /// Whatever the members and whatever follows them, each decode agrees
    /// with flate2 on the bytes and on where the member ends.
    #[test]
    fn agrees_with_flate2(
        sizes in proptest::collection::vec(0usize..20_000, 1..6),
        level in 0u32..10,
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let parts: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| sample(n, i as u64 + 7)).collect();
        let mut blob: Vec<u8> = parts.iter().flat_map(|p| gzip(p, level)).collect();
        blob.extend_from_slice(&tail);
        let mut d = MemberDecoder::new();
        let mut out = vec![0u8; 20_000];
        let mut pos = 0;
        for part in &parts {
            let r = d.decode(&blob[pos..], &mut out).unwrap();
            prop_assert_eq!(&out[..r.produced], &part[..]);
            // flate2 reads the same member and leaves the same rest.
            let mut reference = flate2::bufread::GzDecoder::new(&blob[pos..]);
            let mut expected = Vec::new();
            reference.read_to_end(&mut expected).unwrap();
            prop_assert_eq!(&expected, part);
            prop_assert_eq!(reference.into_inner().len(), blob.len() - pos - r.consumed);
            pos += r.consumed;
        }
    }

    /// Arbitrary bytes never crash it, and never claim more than they have.
    #[test]
    fn arbitrary_input_is_an_error_or_a_member(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut d = MemberDecoder::new();
        let mut out = vec![0u8; 4096];
        if let Ok(r) = d.decode(&input, &mut out) {
            prop_assert!(r.consumed <= input.len() && r.produced <= out.len());
        }
        // A valid header in front of garbage, too.
        let mut framed = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        framed.extend_from_slice(&input);
        if let Ok(r) = d.decode(&framed, &mut out) {
            prop_assert!(r.consumed <= framed.len() && r.produced <= out.len());
        }
    }
}
