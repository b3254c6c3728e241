//! Responses kept for the reads that follow, and which readers are
//! sequential.

use std::collections::VecDeque;

/// Bytes `[start, start + data.len())` of the blob.
#[derive(Debug, Default)]
pub(crate) struct Window {
    pub(crate) start: u64,
    pub(crate) data: Vec<u8>,
}

impl Window {
    pub(crate) fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// Copies what it holds of `[offset, ..)` into `buf`.
    pub(crate) fn copy_to(&self, offset: u64, buf: &mut [u8]) -> Option<usize> {
        if offset < self.start || offset >= self.end() {
            return None;
        }
        let from = (offset - self.start) as usize;
        let n = buf.len().min(self.data.len() - from);
        buf[..n].copy_from_slice(&self.data[from..from + n]);
        Some(n)
    }

    /// Whether it holds all of `[start, end)`.
    pub(crate) fn holds(&self, start: u64, end: u64) -> bool {
        self.start <= start && end <= self.end()
    }
}

/// Readers followed at once: enough for a few files read in parallel.
const STREAMS: usize = 8;
/// Reads in a row, each starting where the one before ended, before
/// reading ahead: two reads of adjacent chunks are not yet a sequential
/// reader, and reading ahead for them fetches bytes nobody reads.
pub(crate) const SEQUENTIAL_AFTER: u32 = 3;

/// A reader followed: where its last read ended, how many reads in a row
/// were adjacent, and the size of the last request made for it.
#[derive(Debug, Clone, Copy)]
struct Stream {
    end: u64,
    run: u32,
    last_request: u64,
}

/// The recent responses, least recently used first, within `budget`
/// bytes; and the readers seen lately.
#[derive(Debug)]
pub(crate) struct Recent {
    windows: VecDeque<Window>,
    used: u64,
    budget: u64,
    streams: VecDeque<Stream>,
}

impl Recent {
    pub(crate) fn new(budget: u64) -> Recent {
        Recent {
            windows: VecDeque::new(),
            used: 0,
            budget,
            streams: VecDeque::new(),
        }
    }

    /// Copies what a kept response holds of `[offset, ..)` into `buf`,
    /// and marks that response as used.
    pub(crate) fn copy_to(&mut self, offset: u64, buf: &mut [u8]) -> Option<usize> {
        let at = self
            .windows
            .iter()
            .rposition(|w| w.start <= offset && offset < w.end())?;
        let window = self.windows.remove(at)?;
        let n = window.copy_to(offset, buf);
        self.windows.push_back(window);
        n
    }

    /// Whether a kept response holds all of `[start, end)`.
    pub(crate) fn holds(&self, start: u64, end: u64) -> bool {
        self.windows.iter().any(|w| w.holds(start, end))
    }

    /// Keeps `window` (when it fits the budget), dropping the responses
    /// it covers and then the least recently used ones.
    pub(crate) fn keep(&mut self, window: Window) {
        let len = window.data.len() as u64;
        if len == 0 || len > self.budget {
            return;
        }
        let (start, end) = (window.start, window.end());
        let mut freed = 0;
        self.windows.retain(|w| {
            let covered = start <= w.start && w.end() <= end;
            if covered {
                freed += w.data.len() as u64;
            }
            !covered
        });
        self.used -= freed;
        self.used += len;
        self.windows.push_back(window);
        while self.used > self.budget {
            match self.windows.pop_front() {
                Some(w) => self.used -= w.data.len() as u64,
                None => break,
            }
        }
    }

    /// Records a read at `offset`; returns how many reads in a row,
    /// this one included, each started where the one before ended, and
    /// the last request made for that reader.
    pub(crate) fn note_read(&mut self, offset: u64) -> (u32, u64) {
        let found = self.streams.iter().rposition(|s| s.end == offset);
        let stream = match found.and_then(|at| self.streams.remove(at)) {
            Some(s) => Stream {
                run: s.run.saturating_add(1),
                ..s
            },
            None => Stream {
                end: offset,
                run: 1,
                last_request: 0,
            },
        };
        if self.streams.len() >= STREAMS {
            self.streams.pop_front();
        }
        self.streams.push_back(stream);
        (stream.run, stream.last_request)
    }

    /// The read noted last (by [`note_read`](Self::note_read) at
    /// `offset`) ended at `end`; `request` is the size of the request
    /// made for it, if one was.
    pub(crate) fn read_done(&mut self, offset: u64, end: u64, request: Option<u64>) {
        if let Some(s) = self.streams.iter_mut().rev().find(|s| s.end == offset) {
            s.end = end;
            if let Some(len) = request {
                s.last_request = len;
            }
        }
    }

    /// Bytes of responses kept.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: u64, len: usize) -> Window {
        Window {
            start,
            data: vec![7; len],
        }
    }

    #[test]
    fn window_copies_only_what_it_holds() {
        let w = Window {
            start: 10,
            data: vec![1, 2, 3],
        };
        let mut buf = [0u8; 5];
        assert_eq!(w.copy_to(9, &mut buf), None);
        assert_eq!(w.copy_to(13, &mut buf), None);
        assert_eq!(w.copy_to(11, &mut buf), Some(2));
        assert_eq!(&buf[..2], &[2, 3]);
    }

    #[test]
    fn responses_are_kept_within_the_budget_least_recently_used_first() {
        let mut recent = Recent::new(100);
        recent.keep(window(0, 40));
        recent.keep(window(100, 40));
        let mut buf = [0u8; 1];
        assert_eq!(recent.copy_to(10, &mut buf), Some(1)); // 0 is now the newer
        recent.keep(window(200, 40));
        assert!(recent.holds(0, 40) && recent.holds(200, 240));
        assert!(!recent.holds(100, 101));
        assert_eq!(recent.used(), 80);
        recent.keep(window(0, 101)); // larger than the budget: not kept
        assert_eq!(recent.used(), 80);
        recent.keep(window(0, 60)); // covers [0, 40)
        assert_eq!(recent.used(), 100);
        assert!(recent.holds(0, 60) && recent.holds(200, 240));
    }

    #[test]
    fn a_reader_is_sequential_after_reads_in_a_row() {
        let mut recent = Recent::new(0);
        assert_eq!(recent.note_read(0), (1, 0));
        recent.read_done(0, 10, Some(10));
        // Another reader in between does not break the first one's run.
        assert_eq!(recent.note_read(500), (1, 0));
        recent.read_done(500, 510, Some(10));
        assert_eq!(recent.note_read(10), (2, 10));
        recent.read_done(10, 20, None);
        assert_eq!(recent.note_read(20), (3, 10));
        // Alternating between two adjacent regions is no run.
        let mut recent = Recent::new(0);
        for _ in 0..5 {
            let (run, _) = recent.note_read(1000);
            recent.read_done(1000, 2000, None);
            assert!(run < SEQUENTIAL_AFTER);
            let (run, _) = recent.note_read(2000);
            recent.read_done(2000, 3000, None);
            assert!(run < SEQUENTIAL_AFTER);
        }
    }
}
