//! A reader that never fills a buffer: what a pipe, a socket or a slow
//! disk may do, and what every streaming path must take in its stride.

use estargz_core::ReadAt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

/// Wraps a reader so that each call returns 1 to `max` bytes (never more
/// than asked for), in a fixed pseudo-random pattern: the same calls get
/// the same lengths on every run.
///
/// As [`Read`], the length depends on how many calls came before; as
/// [`ReadAt`], on the offset, so reads from several threads stay
/// deterministic whatever their order.
#[derive(Debug)]
pub struct ShortReads<R> {
    inner: R,
    max: usize,
    calls: AtomicU64,
}

impl<R> ShortReads<R> {
    /// `inner`, at most `max` bytes (at least 1) per call.
    pub fn new(inner: R, max: usize) -> Self {
        assert!(max >= 1, "a read must be able to return a byte");
        ShortReads {
            inner,
            max,
            calls: AtomicU64::new(0),
        }
    }

    /// How many reads were made through the wrapper.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The length of read number (or at offset) `n`: 1..=max.
    fn step(&self, n: u64) -> usize {
        // Fibonacci hashing: consecutive n give lengths all over 1..=max.
        let mixed = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (mixed % self.max as u64) as usize + 1
    }
}

impl<R: Read> Read for ShortReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let n = self.step(call).min(buf.len());
        self.inner.read(&mut buf[..n])
    }
}

impl<R: ReadAt> ReadAt for ShortReads<R> {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let n = self.step(offset).min(buf.len());
        self.inner.read_at(offset, &mut buf[..n])
    }
}
