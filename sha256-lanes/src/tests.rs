//! Every path against the `sha2` crate: lanes in step and out of step,
//! every split of the input, the SHA extensions and the portable code.

use super::*;
use proptest::prelude::*;
use sha2::Digest as _;

fn reference(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// Bytes that are not periodic, so a wrong offset shows.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn known_answers() {
    let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let one = |data: &[u8]| {
        let mut h = Sha256::new();
        h.update(data);
        hex(h.finalize())
    };
    assert_eq!(
        one(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        one(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        one(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

#[test]
fn padding_at_every_length_around_a_block() {
    for len in 0..=3 * BLOCK + 1 {
        let data = bytes(len, 1);
        let mut h = Sha256::new();
        h.update(&data);
        assert_eq!(h.len(), len as u64);
        assert_eq!(h.finalize(), reference(&data), "length {len}");
    }
}

#[test]
fn every_lane_count_shares_blocks() {
    let data = bytes(10 * BLOCK + 17, 2);
    for lanes in 1..=2 * MAX_LANES + 1 {
        let mut hashers: Vec<Sha256> = (0..lanes).map(|_| Sha256::new()).collect();
        let mut refs: Vec<&mut Sha256> = hashers.iter_mut().collect();
        update_all(&mut refs, &data[..5]);
        update_all(&mut refs, &data[5..]);
        for h in hashers {
            assert_eq!(h.finalize(), reference(&data), "{lanes} lanes");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn sha_extensions_match_the_portable_code() {
    if !shani::available() {
        eprintln!("no SHA extensions on this CPU: only the portable code is tested");
        return;
    }
    let blocks = bytes(37 * BLOCK, 3);
    let starts: [[u32; 8]; 4] = std::array::from_fn(|i| INITIAL.map(|w| w.rotate_left(i as u32)));
    let mut expected = starts;
    for s in &mut expected {
        portable::compress(s, &blocks);
    }
    let [mut a, mut b, mut c, mut d] = starts;
    shani::compress_lanes([&mut a, &mut b, &mut c, &mut d], &blocks);
    assert_eq!([a, b, c, d], expected);
    let [mut a, _, _, _] = starts;
    shani::compress_lanes([&mut a], &blocks);
    assert_eq!(a, expected[0]);
}

proptest! {
    /// Streams that share a tail: each hasher first gets its own prefix
    /// (some in step modulo 64, some not), then the shared bytes arrive
    /// in pieces. Each digest must be that of its prefix plus the tail.
    #[test]
    fn shared_tail_after_own_prefixes(
        prefixes in prop::collection::vec(0usize..300, 1..7),
        tail_len in 0usize..2000,
        cuts in prop::collection::vec(0usize..2000, 0..5),
        seed in any::<u32>(),
    ) {
        let tail = bytes(tail_len, seed);
        let owned: Vec<Vec<u8>> = prefixes
            .iter()
            .enumerate()
            .map(|(i, &n)| bytes(n, seed ^ i as u32))
            .collect();
        let mut hashers: Vec<Sha256> = owned
            .iter()
            .map(|p| {
                let mut h = Sha256::new();
                h.update(p);
                h
            })
            .collect();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(tail_len)).collect();
        cuts.sort_unstable();
        let mut at = 0;
        for cut in cuts.into_iter().chain([tail_len]) {
            let mut refs: Vec<&mut Sha256> = hashers.iter_mut().collect();
            update_all(&mut refs, &tail[at..cut]);
            at = cut;
        }
        for (h, p) in hashers.into_iter().zip(&owned) {
            prop_assert_eq!(h.len(), (p.len() + tail_len) as u64);
            prop_assert_eq!(h.finalize(), reference(&[&p[..], &tail[..]].concat()));
        }
    }
}
