//! Deterministic incompressible bytes (xorshift64), for blobs whose members
//! must not shrink.

/// `n` bytes from `seed`.
pub fn noise(mut seed: u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(n);
    out
}
