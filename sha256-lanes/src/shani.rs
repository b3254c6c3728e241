//! x86-64 SHA extensions: up to [`MAX_LANES`](super::MAX_LANES) states
//! over the same blocks, sharing each block's message schedule.
//!
//! The state lives in two registers per lane in the order the instructions
//! want (ABEF and CDGH); each 4-word group of the schedule is computed once
//! (`sha256msg1`, `sha256msg2`) and fed to every lane's `sha256rnds2`. The
//! lanes' rounds do not depend on each other, so the CPU overlaps them.

use super::{BLOCK, K};
use std::arch::x86_64::{
    _mm_add_epi32, _mm_alignr_epi8, _mm_extract_epi32, _mm_set_epi32, _mm_sha256msg1_epu32,
    _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
};

/// Whether this CPU has every feature [`compress_lanes`] is compiled for.
pub(crate) fn available() -> bool {
    // The standard library caches the CPUID answers; this is a load and a test.
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
}

/// Runs every state over `blocks` (whole 64-byte blocks). Falls back to
/// the portable code if the CPU lacks the SHA extensions.
#[allow(unsafe_code)] // The crate's one unsafe block, below.
pub(crate) fn compress_lanes<const N: usize>(states: [&mut [u32; 8]; N], blocks: &[u8]) {
    if !available() {
        for state in states {
            super::portable::compress(state, blocks);
        }
        return;
    }
    // SAFETY: `kernel` needs sha, sse2, ssse3 and sse4.1, checked just above.
    // It takes no pointers: every load and store is safe code.
    unsafe { kernel(states, blocks) }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn kernel<const N: usize>(states: [&mut [u32; 8]; N], blocks: &[u8]) {
    // Four words as one vector, the first in the lowest lane.
    let set = |[a, b, c, d]: [u32; 4]| _mm_set_epi32(d as i32, c as i32, b as i32, a as i32);
    // State words a..h as the instructions want them: ABEF and CDGH, A highest.
    let mut abef = [set([0; 4]); N];
    let mut cdgh = [set([0; 4]); N];
    for (i, s) in states.iter().enumerate() {
        abef[i] = set([s[5], s[4], s[1], s[0]]);
        cdgh[i] = set([s[7], s[6], s[3], s[2]]);
    }
    for block in blocks.chunks_exact(BLOCK) {
        let word = |i: usize| {
            u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ])
        };
        let (saved_abef, saved_cdgh) = (abef, cdgh);
        // The schedule's last four groups W[4g..4g+4], oldest first.
        let mut w = [
            set([word(0), word(1), word(2), word(3)]),
            set([word(4), word(5), word(6), word(7)]),
            set([word(8), word(9), word(10), word(11)]),
            set([word(12), word(13), word(14), word(15)]),
        ];
        for (g, kg) in K.chunks_exact(4).enumerate() {
            let current = if g < 4 {
                w[g]
            } else {
                // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], four at a time.
                let partial = _mm_sha256msg1_epu32(w[0], w[1]);
                let partial = _mm_add_epi32(partial, _mm_alignr_epi8(w[3], w[2], 4));
                let next = _mm_sha256msg2_epu32(partial, w[3]);
                w = [w[1], w[2], w[3], next];
                next
            };
            let wk = _mm_add_epi32(current, set([kg[0], kg[1], kg[2], kg[3]]));
            let wk_high = _mm_shuffle_epi32(wk, 0x0E);
            for i in 0..N {
                cdgh[i] = _mm_sha256rnds2_epu32(cdgh[i], abef[i], wk);
            }
            for i in 0..N {
                abef[i] = _mm_sha256rnds2_epu32(abef[i], cdgh[i], wk_high);
            }
        }
        for i in 0..N {
            abef[i] = _mm_add_epi32(abef[i], saved_abef[i]);
            cdgh[i] = _mm_add_epi32(cdgh[i], saved_cdgh[i]);
        }
    }
    for (i, s) in states.into_iter().enumerate() {
        let (x, y) = (abef[i], cdgh[i]);
        *s = [
            _mm_extract_epi32(x, 3),
            _mm_extract_epi32(x, 2),
            _mm_extract_epi32(y, 3),
            _mm_extract_epi32(y, 2),
            _mm_extract_epi32(x, 1),
            _mm_extract_epi32(x, 0),
            _mm_extract_epi32(y, 1),
            _mm_extract_epi32(y, 0),
        ]
        .map(|v| v as u32);
    }
}
