//! Prefetch: the landmark region read at once, its chunks decoded into
//! the cache before anyone asks for them.

use super::file::decode_chunk;
use super::node::Chunk;
use super::{Blob, ReadAt};
use crate::error::{Error, Result};
use std::io;
use std::ops::Range;

/// Compressed bytes read by one [`ReadAt::read_ranges`] call of a
/// prefetch: a remote source makes one request per batch of adjacent
/// ranges, and memory stays bounded whatever the region's size.
const BATCH: u64 = 64 << 20;

/// What [`Blob::prefetch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prefetched {
    /// Chunks decoded, checked against their digests and offered to the
    /// cache.
    pub chunks: usize,
    /// Their decoded bytes.
    pub bytes: u64,
    /// Compressed bytes read from the source.
    pub compressed: u64,
}

impl<S: ReadAt> Blob<S> {
    /// Reads the blob's prefetch region (the files before its
    /// `.prefetch.landmark`, which a converter puts there for a container
    /// to need first) and stores their chunks, decoded and checked against
    /// their digests, in the chunk cache: later reads of those files read
    /// nothing from the source while the cache holds them (its budget
    /// decides how much it keeps). The compressed bytes are asked for with
    /// one [`ReadAt::read_ranges`] call per 64 MiB, which a remote source
    /// such as `estargz_remote::HttpBlob` serves with one request. A blob
    /// without a prefetch landmark prefetches nothing.
    ///
    /// ```
    /// use estargz_core::{Blob, Converter, OpenOptions};
    ///
    /// // A layer whose `bin/sh` comes before the landmark, `etc/motd` after.
    /// let mut tar = tar::Builder::new(Vec::new());
    /// for (name, data) in [("bin/sh", &b"#!"[..]), (".prefetch.landmark", b"\x0f"), ("etc/motd", b"hi")] {
    ///     let mut h = tar::Header::new_ustar();
    ///     h.set_size(data.len() as u64);
    ///     h.set_cksum();
    ///     tar.append_data(&mut h, name, data)?;
    /// }
    /// let mut bytes = Vec::new();
    /// Converter::new().convert(&tar.into_inner()?, &mut bytes)?;
    /// let blob = Blob::open(bytes, &OpenOptions::default())?;
    /// let done = blob.prefetch()?;
    /// assert_eq!((done.chunks, done.bytes), (1, 2)); // bin/sh
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefetch(&self) -> Result<Prefetched> {
        match self.index.prefetch_end() {
            Some(end) => self.prefetch_range(0..end),
            None => Ok(Prefetched::default()),
        }
    }

    /// [`prefetch`](Self::prefetch) for the chunks whose compressed bytes
    /// lie inside `range` of the blob.
    pub fn prefetch_range(&self, range: Range<u64>) -> Result<Prefetched> {
        let mut wanted: Vec<(&str, &Chunk)> = Vec::new();
        for node in self.index.files() {
            for chunk in node.chunks() {
                if chunk.offset() >= range.start && chunk.next_offset() <= range.end {
                    wanted.push((node.name(), chunk));
                }
            }
        }
        wanted.sort_by_key(|(_, c)| (c.offset(), c.inner_offset()));
        let mut done = Prefetched::default();
        let mut rest = &wanted[..];
        while !rest.is_empty() {
            let mut runs: Vec<Range<u64>> = Vec::new();
            let mut take = 0;
            for (_, c) in rest {
                let run = c.offset()..c.next_offset();
                if runs.last() != Some(&run) {
                    let bytes: u64 = runs.iter().map(|r| r.end - r.start).sum();
                    if !runs.is_empty() && bytes + (run.end - run.start) > BATCH {
                        break;
                    }
                    runs.push(run);
                }
                take += 1;
            }
            let (batch, later) = rest.split_at(take);
            rest = later;
            self.prefetch_batch(batch, &runs, &mut done)?;
        }
        Ok(done)
    }

    /// Reads the member runs `runs` with one call and caches `chunks`,
    /// which they hold.
    fn prefetch_batch(
        &self,
        chunks: &[(&str, &Chunk)],
        runs: &[Range<u64>],
        done: &mut Prefetched,
    ) -> Result<()> {
        let Some((name, first)) = chunks.first() else {
            return Ok(());
        };
        let data = self.source.read_ranges(runs).map_err(|source| Error::Io {
            entry: name.to_string(),
            offset: first.offset(),
            len: runs.iter().map(|r| r.end - r.start).sum(),
            source,
        })?;
        done.compressed += data.iter().map(|d| d.len() as u64).sum::<u64>();
        let zstd = self.kind().is_zstd_chunked();
        for (name, chunk) in chunks {
            let Some(at) = runs.iter().position(|r| r.start == chunk.offset()) else {
                continue;
            };
            let held = Held {
                start: chunk.offset(),
                data: &data[at],
            };
            let key = self.chunk_key(chunk);
            let loaded = self.in_flight.load(&*self.cache.0, key, true, || {
                Ok(super::CachedChunk {
                    data: decode_chunk(&held, name, chunk, true, zstd, None)?.into(),
                    verified: true,
                })
            })?;
            done.chunks += 1;
            done.bytes += loaded.data.len() as u64;
        }
        Ok(())
    }
}

/// Bytes `[start, start + data.len())` of the blob, already read.
struct Held<'a> {
    start: u64,
    data: &'a [u8],
}

impl ReadAt for Held<'_> {
    fn size(&self) -> io::Result<u64> {
        Ok(self.start + self.data.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let at = offset.checked_sub(self.start).ok_or_else(|| {
            io::Error::other(format!(
                "byte {offset} is before the prefetched {}",
                self.start
            ))
        })?;
        self.data.read_at(at, buf)
    }
}
