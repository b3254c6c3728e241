//! SHA-256 of one byte stream into several running hashes at once.
//!
//! An eStargz converter hashes every tar byte for the layer's diffID, every
//! file byte again for its chunk's digest, and the bytes of a file split into
//! several chunks a third time for the file's own digest. Three passes of
//! SHA-256 over the same bytes were the largest cost of a conversion besides
//! compression.
//!
//! On x86-64, one SHA-256 stream runs at the *latency* of the `sha256rnds2`
//! instruction, not at its throughput: each pair of rounds waits for the
//! previous one. Hashers fed the same bytes share each block's message
//! schedule, and their rounds are independent, so they fill each other's
//! waits. On the AMD EPYC (Zen 3) machines this project is measured on,
//! hashing 64 MiB into two lanes takes 0.99-1.02x the time the `sha2` crate
//! takes for one (1.4 GB/s), three lanes 1.21-1.25x, four 1.31-1.44x.
//!
//! [`update_all`] is that: the same bytes into every hasher given. Hashers
//! whose streams are at the same offset modulo 64 bytes share the work; the
//! others are updated one by one, with the same result. Without SHA-NI
//! (other CPUs, other architectures) every lane goes through the `sha2`
//! crate's own block function, one after the other.
//!
//! ```
//! use sha2::Digest as _;
//! use sha256_lanes::{update_all, Sha256};
//!
//! // A whole stream, and a part of it that starts on a 64-byte boundary.
//! let header = [7u8; 512];
//! let body = b"file contents";
//! let mut whole = Sha256::new();
//! whole.update(&header);
//! let mut part = Sha256::new();
//! update_all(&mut [&mut whole, &mut part], body);
//!
//! let mut expected = Sha256::new();
//! expected.update(&[&header[..], &body[..]].concat());
//! assert_eq!(whole.finalize(), expected.finalize());
//! assert_eq!(part.finalize()[..], sha2::Sha256::digest(body)[..]);
//! ```

#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod portable;
#[cfg(target_arch = "x86_64")]
mod shani;

/// Bytes per SHA-256 block.
const BLOCK: usize = 64;

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The round constants (FIPS 180-4, 4.2.2).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Most hashers one pass runs together; more are taken in groups. Three
/// covers the converter's diffID, chunk and file digests.
const MAX_LANES: usize = 4;

/// A running SHA-256.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    /// The bytes of an incomplete block, `pending` of them.
    block: [u8; BLOCK],
    pending: usize,
    /// Bytes hashed so far.
    len: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha256").field("len", &self.len).finish()
    }
}

impl Sha256 {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Sha256 {
            state: INITIAL,
            block: [0; BLOCK],
            pending: 0,
            len: 0,
        }
    }

    /// Appends `data` to the hashed stream.
    pub fn update(&mut self, data: &[u8]) {
        update_all(&mut [self], data);
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes were hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything hashed.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        // 0x80, zeros up to 56 mod 64, then the length in bits.
        let mut pad = [0u8; BLOCK + 8];
        pad[0] = 0x80;
        let zeros_to = if self.pending < 56 { 56 } else { 56 + BLOCK };
        self.update(&pad[..zeros_to - self.pending]);
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// Appends the same `data` to every hasher in `hashers`.
///
/// The result is what [`Sha256::update`] on each would give. It is faster
/// when the hashers' lengths are equal modulo 64 (for example, a hasher
/// started at a block boundary of another's stream): then they share every
/// block of `data`.
pub fn update_all(hashers: &mut [&mut Sha256], data: &[u8]) {
    let Some(pending) = hashers.first().map(|h| h.pending) else {
        return;
    };
    if hashers.len() > 1 && hashers.iter().any(|h| h.pending != pending) {
        for h in hashers.iter_mut() {
            update_all(&mut [&mut **h], data);
        }
        return;
    }
    let mut data = data;
    if pending > 0 {
        // Top up the incomplete blocks: their earlier bytes may differ.
        let take = data.len().min(BLOCK - pending);
        for h in hashers.iter_mut() {
            h.block[pending..pending + take].copy_from_slice(&data[..take]);
            h.pending += take;
            h.len += take as u64;
            if h.pending == BLOCK {
                let block = h.block;
                compress(std::slice::from_mut(h), &block);
                h.pending = 0;
            }
        }
        data = &data[take..];
    }
    let whole = data.len() - data.len() % BLOCK;
    if whole > 0 {
        for group in hashers.chunks_mut(MAX_LANES) {
            compress(group, &data[..whole]);
        }
    }
    let tail = &data[whole..];
    for h in hashers.iter_mut() {
        h.len += whole as u64;
        if !tail.is_empty() {
            h.block[..tail.len()].copy_from_slice(tail);
            h.pending = tail.len();
            h.len += tail.len() as u64;
        }
    }
}

/// Runs the state of every hasher in `group` (at most [`MAX_LANES`]) over
/// `blocks`, whole 64-byte blocks.
fn compress(group: &mut [&mut Sha256], blocks: &[u8]) {
    debug_assert!(blocks.len().is_multiple_of(BLOCK) && group.len() <= MAX_LANES);
    #[cfg(target_arch = "x86_64")]
    match group {
        [a] => return shani::compress_lanes([&mut a.state], blocks),
        [a, b] => return shani::compress_lanes([&mut a.state, &mut b.state], blocks),
        [a, b, c] => {
            return shani::compress_lanes([&mut a.state, &mut b.state, &mut c.state], blocks)
        }
        [a, b, c, d] => {
            let states = [&mut a.state, &mut b.state, &mut c.state, &mut d.state];
            return shani::compress_lanes(states, blocks);
        }
        _ => {}
    }
    for h in group.iter_mut() {
        portable::compress(&mut h.state, blocks);
    }
}

#[cfg(test)]
mod tests;
