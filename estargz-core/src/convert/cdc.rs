//! containers/storage's content-defined chunking (docs/zstd-chunked-format.md
//! §4.3), so that the containers dialect cuts files where podman, buildah
//! and skopeo do and chunks de-duplicate against their layers.
//!
//! Per file, containers/storage (`pkg/chunked/compressor`) makes every
//! maximal run of at least [`HOLE_MIN`] zero bytes a chunk of its own
//! (`chunkType: "zeros"`), and cuts the rest after every byte at which a
//! bup rolling sum over the last [`WINDOW`] bytes has its low 16 bits set.
//! The sum runs through the zero runs too, but is only tested on the other
//! bytes; a cut never resets it.
//!
//! Both sums are functions of the last 64 bytes alone (bytes before the
//! file count as zeros), and a zero run's extent of the bytes alone, so the
//! boundaries are a function of the file's content and not of where the
//! previous chunk ended. That is what lets a cut be computed from the 64
//! bytes before the chunk and the bytes ahead of it, and what realigns the
//! boundaries with containers/storage's right after a chunk this writer
//! had to end early at its size cap.

/// Bytes the rolling sum covers.
pub const WINDOW: usize = 64;
/// The shortest zero run that is a chunk of its own (`holesThreshold`).
pub const HOLE_MIN: usize = 1024;
/// Low bits of `s2` that must all be set for a cut (`RollsumBits`).
const SPLIT_MASK: u32 = 0xffff;
/// bup's offset added to every byte in the window.
const CHAR_OFFSET: u32 = 31;

/// Where the next chunk of a file ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Bytes in the chunk (0 only when there was no data to cut).
    pub len: usize,
    /// The chunk is a run of zero bytes (`chunkType: "zeros"`).
    pub zeros: bool,
}

/// The next chunk of a file.
///
/// * `buf[..history]` are the up to [`WINDOW`] bytes of the file just before
///   the chunk (fewer only at the start of the file: the sum takes what is
///   missing as zeros); the chunk starts at `buf[history]`.
/// * `buf` holds at least `cap + HOLE_MIN` bytes after `history`, or the
///   rest of the file: whether a zero run that starts before the cap is
///   long enough to be a chunk may depend on bytes after it.
/// * `cap` bounds the chunk (containers/storage has no bound).
/// * `in_hole`: the previous chunk was a zero run ended by the cap, whose
///   zeros go on into this chunk.
pub fn next_cut(buf: &[u8], history: usize, cap: usize, in_hole: bool) -> Cut {
    let history = history.min(buf.len()).min(WINDOW);
    let data = &buf[history..];
    let limit = data.len().min(cap);
    if limit == 0 {
        return Cut {
            len: 0,
            zeros: false,
        };
    }
    if in_hole {
        let run = zero_run(&data[..limit]);
        if run > 0 {
            return Cut {
                len: run,
                zeros: true,
            };
        }
    }
    // The first split of the sum, then whether a zero run starts before it:
    // both stop near the chunk end, which is on average 64 KiB away.
    let split = first_split(buf, history, history + limit).map_or(limit, |s| s - history);
    match first_hole(data, split) {
        Some(0) => Cut {
            len: zero_run(&data[..limit]),
            zeros: true,
        },
        Some(start) => Cut {
            len: start,
            zeros: false,
        },
        None => Cut {
            len: split,
            zeros: false,
        },
    }
}

/// The sums after the bytes in `window` (at most [`WINDOW`], newest last;
/// missing older ones are zeros): `s1` = 64·31 + Σ bytes, `s2` = 64·63·31 +
/// Σ (age + 1)·byte, as bup's recurrence leaves them.
fn sums(window: &[u8]) -> (u32, u32) {
    let (mut s1, mut s2) = (WINDOW as u32 * CHAR_OFFSET, 0u32);
    for (age, &b) in window.iter().rev().enumerate() {
        s1 += u32::from(b);
        s2 += (age as u32 + 1) * u32::from(b);
    }
    (s1, s2 + (WINDOW as u32) * (WINDOW as u32 - 1) * CHAR_OFFSET)
}

/// Bytes rolled between two tests for a split in [`first_split`].
const BLOCK: usize = 8;

/// The first `i` in `from..to` after whose byte the sum splits, as `i + 1`
/// (an index into `buf`); `buf[..from]` holds the bytes before, as in
/// [`next_cut`].
///
/// The sum is a chain of dependent additions, about 1 ns a byte. A split
/// is rare (one byte in 65,536), so blocks of [`BLOCK`] bytes are rolled
/// with one branch between them, and only a block with a split is rolled
/// again to find where: a quarter less time than a branch per byte.
/// Rolling several stretches side by side (the sum depends on the last 64
/// bytes only) or prefix sums over 64 bytes were measured no faster
/// without SIMD instructions.
fn first_split(buf: &[u8], from: usize, to: usize) -> Option<usize> {
    let (mut s1, mut s2) = sums(&buf[from.saturating_sub(WINDOW)..from]);
    // Near the start of the file the byte leaving the window is a zero
    // before the file; past it, the byte WINDOW back.
    let head_end = to.min(WINDOW).max(from);
    if let Some(i) = buf[from..head_end]
        .iter()
        .position(|&b| roll(&mut s1, &mut s2, b, 0))
    {
        return Some(from + i + 1);
    }
    let mut at = head_end;
    if at >= to {
        return None;
    }
    let adds = buf[at..to].chunks_exact(BLOCK);
    let drops = buf[at - WINDOW..to - WINDOW].chunks_exact(BLOCK);
    for (add, drop) in adds.zip(drops) {
        let before = (s1, s2);
        let mut hit = false;
        for (&a, &d) in add.iter().zip(drop) {
            hit |= roll(&mut s1, &mut s2, a, d);
        }
        if hit {
            (s1, s2) = before;
            return add
                .iter()
                .zip(drop)
                .position(|(&a, &d)| roll(&mut s1, &mut s2, a, d))
                .map(|i| at + i + 1);
        }
        at += BLOCK;
    }
    (at..to)
        .find(|&i| roll(&mut s1, &mut s2, buf[i], buf[i - WINDOW]))
        .map(|i| i + 1)
}

/// One step of the sum: `add` enters the window, `drop` leaves it;
/// whether it splits after `add`.
#[inline(always)]
fn roll(s1: &mut u32, s2: &mut u32, add: u8, drop: u8) -> bool {
    let (add, drop) = (u32::from(add), u32::from(drop));
    *s1 = s1.wrapping_add(add).wrapping_sub(drop);
    *s2 = s2
        .wrapping_add(*s1)
        .wrapping_sub(WINDOW as u32 * (drop + CHAR_OFFSET));
    *s2 & SPLIT_MASK == SPLIT_MASK
}

/// Where the first zero run of at least [`HOLE_MIN`] bytes starts, if
/// before `end`. A run that starts before `end` is measured past it.
///
/// Such a run covers a whole block of `HOLE_MIN / 2` bytes on any grid,
/// so only a block that is all zeros (on a grid from the start of `data`)
/// is looked at closer: most blocks end the test at their first byte.
/// Looking at every zero byte instead took a third of the conversion's
/// extra time on layers of binaries, which are full of short zero runs.
fn first_hole(data: &[u8], end: usize) -> Option<usize> {
    const GRID: usize = HOLE_MIN / 2;
    let mut block = 0;
    // A run starting before `end` covers a block starting before `end + GRID`.
    while block < end.saturating_add(GRID) {
        let bytes = data.get(block..block + GRID)?;
        if bytes.iter().any(|&b| b != 0) {
            block += GRID;
            continue;
        }
        let before = data[..block].iter().rev().take_while(|&&b| b == 0).count();
        let start = block - before;
        let stop = block + GRID + zero_run(&data[block + GRID..]);
        if stop - start >= HOLE_MIN {
            return (start < end).then_some(start);
        }
        // The byte at `stop` is not zero: the next run starts after it.
        block = (stop / GRID + 1) * GRID;
    }
    None
}

/// Leading zero bytes of `data`.
fn zero_run(data: &[u8]) -> usize {
    const WORD: usize = 16;
    let mut words = data.chunks_exact(WORD);
    let mut n = 0;
    for w in words.by_ref() {
        if w.iter().any(|&b| b != 0) {
            break;
        }
        n += WORD;
    }
    n + data[n..].iter().take_while(|&&b| b == 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bup's rolling sum as containers/storage writes it (a ring of the
    /// last 64 bytes), to check the closed form and the head handling.
    struct Ring {
        s1: u32,
        s2: u32,
        window: [u8; WINDOW],
        at: usize,
    }

    impl Ring {
        fn new() -> Self {
            Ring {
                s1: 64 * 31,
                s2: 64 * 63 * 31,
                window: [0; WINDOW],
                at: 0,
            }
        }
        fn roll(&mut self, b: u8) -> bool {
            let drop = u32::from(self.window[self.at]);
            self.s1 = self.s1.wrapping_add(u32::from(b)).wrapping_sub(drop);
            self.s2 = self.s2.wrapping_add(self.s1).wrapping_sub(64 * (drop + 31));
            self.window[self.at] = b;
            self.at = (self.at + 1) % WINDOW;
            self.s2 & 0xffff == 0xffff
        }
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn closed_form_sums_match_the_ring() {
        let data = noise(300, 7);
        let mut ring = Ring::new();
        for i in 0..data.len() {
            ring.roll(data[i]);
            let (s1, s2) = sums(&data[(i + 1).saturating_sub(WINDOW)..=i]);
            assert_eq!((s1, s2), (ring.s1, ring.s2), "after byte {i}");
        }
    }

    #[test]
    fn splits_match_the_ring_from_any_start() {
        let data = noise(1 << 20, 11);
        let mut ring = Ring::new();
        let expected: Vec<usize> = (0..data.len())
            .filter(|&i| ring.roll(data[i]))
            .map(|i| i + 1)
            .collect();
        assert!(expected.len() > 4, "{}", expected.len());
        // From the start, and resuming after each split with 64 bytes of history.
        let mut got = Vec::new();
        let mut at = 0usize;
        while let Some(s) = first_split(
            &data[at.saturating_sub(WINDOW)..],
            at.min(WINDOW),
            data.len() - at + at.min(WINDOW),
        ) {
            at += s - at.min(WINDOW);
            got.push(at);
        }
        assert_eq!(got, expected);
        // Starting within the first 64 bytes.
        assert_eq!(
            first_split(&data, 10, data.len()),
            expected.first().copied()
        );
    }

    #[test]
    fn zero_runs_become_chunks_and_short_ones_stay_data() {
        let mut data = noise(5000, 3);
        data[100..100 + HOLE_MIN - 1].fill(0);
        data[2000..2000 + HOLE_MIN].fill(0);
        let cap = 1 << 20;
        // No split of the sum in 5000 bytes of this noise before the hole.
        assert_eq!(first_split(&data, 0, 2000), None);
        assert_eq!(
            next_cut(&data, 0, cap, false),
            Cut {
                len: 2000,
                zeros: false
            }
        );
        assert_eq!(
            next_cut(&data[2000 - 64..], 64, cap, false),
            Cut {
                len: HOLE_MIN,
                zeros: true
            }
        );
        // The cap splits a run, which goes on as zeros in the next chunk.
        assert_eq!(
            next_cut(&data[2000 - 64..], 64, 1000, false),
            Cut {
                len: 1000,
                zeros: true
            }
        );
        assert_eq!(
            next_cut(&data[3000 - 64..], 64, 1000, true),
            Cut {
                len: HOLE_MIN - 1000,
                zeros: true
            }
        );
        // A run that starts before the cap and ends after it is a hole.
        assert_eq!(
            next_cut(&data, 0, 2500, false),
            Cut {
                len: 2000,
                zeros: false
            }
        );
        assert_eq!(
            next_cut(&data, 0, 0, false),
            Cut {
                len: 0,
                zeros: false
            }
        );
        // A short run at the file end is data.
        let tail = [1u8, 0, 0, 0];
        assert_eq!(
            next_cut(&tail, 0, cap, false),
            Cut {
                len: 4,
                zeros: false
            }
        );
    }

    /// The first run of at least HOLE_MIN zeros starting before `end`,
    /// byte by byte.
    fn naive_hole(data: &[u8], end: usize) -> Option<usize> {
        let mut i = 0;
        while i < end.min(data.len()) {
            if data[i] == 0 {
                let run = zero_run(&data[i..]);
                if run >= HOLE_MIN {
                    return Some(i);
                }
                i += run;
            } else {
                i += 1;
            }
        }
        None
    }

    #[test]
    fn holes_are_found_wherever_they_lie_on_the_grid() {
        let mut data = noise(200_000, 5);
        // Runs around the threshold and the grid, at odd places; noise has
        // short runs of its own.
        let mut at = 300;
        for (i, len) in [
            1023, 1024, 1025, 511, 512, 513, 1535, 1536, 2047, 3000, 1024,
        ]
        .into_iter()
        .enumerate()
        {
            data[at..at + len].fill(0);
            at += len + 1 + i * 2371 % 4000;
        }
        data[199_000..].fill(0);
        for end in (0..data.len()).step_by(97) {
            assert_eq!(first_hole(&data, end), naive_hole(&data, end), "end {end}");
        }
        for start in (0..30_000).step_by(61) {
            let d = &data[start..];
            assert_eq!(
                first_hole(d, d.len()),
                naive_hole(d, d.len()),
                "from {start}"
            );
        }
    }
}
