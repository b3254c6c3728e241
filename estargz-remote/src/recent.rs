//! Responses kept for the reads that follow, and which readers are
//! sequential.

use estargz_core::ReadHint;
use std::collections::VecDeque;
use std::sync::Arc;

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
    /// Where the first read of the run started.
    start: u64,
}

/// What [`Recent::note_read`] knows of the reader of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Reads in a row, this one included, each starting where the one
    /// before ended.
    pub(crate) run: u32,
    /// The size of the last request made for this reader (0: none).
    pub(crate) last_request: u64,
    /// Where the run's first read started.
    pub(crate) run_start: u64,
}

/// Bytes to request for a read of `wanted` bytes at `offset` (at least
/// `wanted`, never past `limit`): exactly what is asked until the reader
/// is sequential ([`SEQUENTIAL_AFTER`]), then more, within `max_request`.
///
/// How much more depends on what the reader said it reads (`hint`):
/// - a reader whose run started inside the file it reads is reading that
///   file: the rest of the file's bytes, nothing past them;
/// - a reader that came into the file from the bytes before it walks the
///   blob file after file: twice the last request, up to the end of the
///   file's region (the next region, such as the prefetch region's
///   successor, is read apart);
/// - without a hint, twice the last request.
pub(crate) fn request_len(
    seen: Seen,
    offset: u64,
    wanted: u64,
    max_request: u64,
    limit: u64,
    hint: Option<ReadHint>,
) -> u64 {
    let room = limit.saturating_sub(offset);
    if seen.run < SEQUENTIAL_AFTER {
        return wanted.min(room);
    }
    let doubled = seen.last_request.max(wanted).saturating_mul(2);
    let ahead = match hint {
        Some(h) if seen.run_start >= h.file_start() && offset < h.file_end() => {
            (h.file_end() - offset).min(max_request)
        }
        Some(h) => doubled
            .min(max_request)
            .min(h.region_end().saturating_sub(offset)),
        None => doubled.min(max_request),
    };
    wanted.max(ahead).min(room)
}

/// A response kept, and how far reads have taken bytes from it.
#[derive(Debug)]
struct Kept {
    window: Arc<Window>,
    read_to: u64,
}

impl Kept {
    /// Whether reads took its bytes up to its end: a sequential reader
    /// is done with it (the bytes read ahead for it are used).
    fn read_through(&self) -> bool {
        self.read_to >= self.window.end()
    }
}

/// The recent responses, least recently used first, within `budget`
/// bytes; and the readers seen lately.
///
/// To stay within the budget, responses read through go first, then the
/// least recently used: a response read ahead for a reader that has not
/// got to its end yet holds bytes that reader is about to take, and
/// dropping it for a newer response (another reader's, or the next one
/// for the same reader) would fetch them again.
#[derive(Debug)]
pub(crate) struct Recent {
    windows: VecDeque<Kept>,
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
        let at = self.position(offset)?;
        let mut kept = self.windows.remove(at)?;
        let n = kept.window.copy_to(offset, buf);
        if let Some(n) = n {
            kept.read_to = kept.read_to.max(offset + n as u64);
        }
        self.windows.push_back(kept);
        n
    }

    /// The newest kept response holding byte `offset`.
    fn position(&self, offset: u64) -> Option<usize> {
        self.windows
            .iter()
            .rposition(|k| k.window.start <= offset && offset < k.window.end())
    }

    /// Bytes `[offset, end)` were read from a response (handed over
    /// without [`copy_to`](Self::copy_to)): the one kept that holds
    /// `offset` counts them as read.
    pub(crate) fn mark_read(&mut self, offset: u64, end: u64) {
        if let Some(at) = self.position(offset) {
            let kept = &mut self.windows[at];
            kept.read_to = kept.read_to.max(end);
        }
    }

    /// Whether a kept response holds all of `[start, end)`.
    pub(crate) fn holds(&self, start: u64, end: u64) -> bool {
        self.windows.iter().any(|k| k.window.holds(start, end))
    }

    /// Keeps `window` (when it fits the budget), dropping the responses
    /// it covers, then those read through, then the least recently used.
    pub(crate) fn keep(&mut self, window: Arc<Window>) {
        let len = window.data.len() as u64;
        if len == 0 || len > self.budget {
            return;
        }
        let (start, end) = (window.start, window.end());
        let mut freed = 0;
        self.windows.retain(|k| {
            let covered = start <= k.window.start && k.window.end() <= end;
            if covered {
                freed += k.window.data.len() as u64;
            }
            !covered
        });
        self.used -= freed;
        self.used += len;
        while self.used > self.budget {
            let Some(at) = self.windows.iter().position(Kept::read_through) else {
                break;
            };
            if let Some(k) = self.windows.remove(at) {
                self.used -= k.window.data.len() as u64;
            }
        }
        while self.used > self.budget {
            match self.windows.pop_front() {
                Some(k) => self.used -= k.window.data.len() as u64,
                None => break,
            }
        }
        self.windows.push_back(Kept {
            window,
            read_to: start,
        });
    }

    /// Records a read at `offset`: what is known of its reader.
    pub(crate) fn note_read(&mut self, offset: u64) -> Seen {
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
                start: offset,
            },
        };
        if self.streams.len() >= STREAMS {
            self.streams.pop_front();
        }
        self.streams.push_back(stream);
        Seen {
            run: stream.run,
            last_request: stream.last_request,
            run_start: stream.start,
        }
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

    fn window(start: u64, len: usize) -> Arc<Window> {
        Arc::new(Window {
            start,
            data: vec![7; len],
        })
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
    fn responses_read_through_go_before_those_still_being_read() {
        let mut recent = Recent::new(100);
        let mut buf = [0u8; 40];
        recent.keep(window(0, 40)); // read ahead, half read
        assert_eq!(recent.copy_to(0, &mut buf[..20]), Some(20));
        recent.keep(window(100, 40)); // read through
        recent.mark_read(100, 140);
        recent.keep(window(200, 40)); // over budget: [100, 140) goes
        assert!(recent.holds(0, 40) && recent.holds(200, 240));
        assert!(!recent.holds(100, 101));
        // None read through: the least recently used goes.
        recent.keep(window(300, 40));
        assert!(!recent.holds(0, 1));
        assert!(recent.holds(200, 240) && recent.holds(300, 340));
    }

    #[test]
    fn a_reader_is_sequential_after_reads_in_a_row() {
        let mut recent = Recent::new(0);
        let seen = |run, last_request, run_start| Seen {
            run,
            last_request,
            run_start,
        };
        assert_eq!(recent.note_read(0), seen(1, 0, 0));
        recent.read_done(0, 10, Some(10));
        // Another reader in between does not break the first one's run.
        assert_eq!(recent.note_read(500), seen(1, 0, 500));
        recent.read_done(500, 510, Some(10));
        assert_eq!(recent.note_read(10), seen(2, 10, 0));
        recent.read_done(10, 20, None);
        assert_eq!(recent.note_read(20), seen(3, 10, 0));
        // Alternating between two adjacent regions is no run.
        let mut recent = Recent::new(0);
        for _ in 0..5 {
            let run = recent.note_read(1000).run;
            recent.read_done(1000, 2000, None);
            assert!(run < SEQUENTIAL_AFTER);
            let run = recent.note_read(2000).run;
            recent.read_done(2000, 3000, None);
            assert!(run < SEQUENTIAL_AFTER);
        }
    }

    #[test]
    fn read_ahead_stays_within_what_the_hint_says_is_used() {
        let sequential = |run_start| Seen {
            run: SEQUENTIAL_AFTER,
            last_request: 100,
            run_start,
        };
        let max = 1 << 20;
        // Not sequential yet: what is asked.
        let first = Seen {
            run: 1,
            ..sequential(0)
        };
        assert_eq!(request_len(first, 0, 50, max, 10_000, None), 50);
        // No hint: twice the last request (or the read).
        assert_eq!(request_len(sequential(0), 300, 50, max, 10_000, None), 200);
        assert_eq!(request_len(sequential(0), 300, 50, max, 400, None), 100);
        // Reading one file (the run started in it): the rest of the file.
        let file = ReadHint::new(1000..9000, 50_000);
        assert_eq!(
            request_len(sequential(1000), 3000, 50, max, 100_000, Some(file)),
            6000
        );
        assert_eq!(
            request_len(sequential(1000), 3000, 50, 4000, 100_000, Some(file)),
            4000
        );
        // Walking the blob into the file: doubling, up to the region's end.
        assert_eq!(
            request_len(sequential(10), 1000, 50, max, 100_000, Some(file)),
            200
        );
        let walker = Seen {
            last_request: 80_000,
            ..sequential(10)
        };
        assert_eq!(
            request_len(walker, 1000, 50, max, 100_000, Some(file)),
            49_000
        );
        // Never less than the read, never past the limit.
        assert_eq!(
            request_len(walker, 1000, 60_000, max, 100_000, Some(file)),
            60_000
        );
        assert_eq!(
            request_len(walker, 1000, 60_000, max, 30_000, Some(file)),
            29_000
        );
    }
}
