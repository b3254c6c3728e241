//! Random access to one regular file's bytes.

use super::node::{Chunk, Node};
use super::{read_exact_hinted, Blob, ReadAt, ReadHint};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::toc::EntryType;
use std::io::{self, Read};

/// Reads a regular file of a [`Blob`] at any offset, decoding only the
/// members that hold the requested bytes.
pub struct FileReader<'a, S> {
    blob: &'a Blob<S>,
    node: &'a Node,
    verify: bool,
}

impl<'a, S: ReadAt> FileReader<'a, S> {
    pub(super) fn new(blob: &'a Blob<S>, node: &'a Node, path: &str) -> Result<Self> {
        if *node.kind() != EntryType::Reg {
            return Err(Error::NotRegular {
                path: path.to_string(),
                kind: node.kind().to_string(),
            });
        }
        Ok(FileReader {
            blob,
            node,
            verify: false,
        })
    }

    /// Check each chunk against its `chunkDigest` as it is decoded.
    pub fn verifying(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// File size.
    pub fn size(&self) -> u64 {
        self.node.size()
    }

    /// The file's node.
    pub fn node(&self) -> &Node {
        self.node
    }

    /// Fills `buf` from file offset `offset` (fully, or up to the end of the
    /// file); returns the number of bytes read, 0 at or past the end. The
    /// arguments come in [`ReadAt::read_at`]'s order.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            if at >= self.node.size() {
                break;
            }
            let chunk = self
                .node
                .chunk_for_offset(at)
                .ok_or_else(|| Error::CorruptData {
                    entry: self.node.name().to_string(),
                    offset: 0,
                    reason: format!("no chunk covers file byte {at}"),
                })?;
            let data = self.blob.chunk_data(self.node, chunk, self.verify)?;
            let from = (at - chunk.chunk_offset) as usize;
            let n = (buf.len() - done).min(data.len() - from);
            buf[done..done + n].copy_from_slice(&data[from..from + n]);
            done += n;
        }
        Ok(done)
    }

    /// Decodes one chunk: its member run, `innerOffset` bytes skipped.
    pub fn decode(&self, chunk: &Chunk) -> Result<Vec<u8>> {
        let zstd = self.blob.kind().is_zstd_chunked();
        decode_chunk(
            self.blob.source(),
            self.node.name(),
            chunk,
            self.verify,
            zstd,
            None,
        )
    }
}

/// Decodes `chunk` of the file `name` from `source`, checking its digest
/// when asked: from gzip members, or from a zstd frame (`zstd`); the
/// source is told what the reader goes on to read when `hint` says.
pub(crate) fn decode_chunk<S: ReadAt + ?Sized>(
    source: &S,
    name: &str,
    chunk: &Chunk,
    verify: bool,
    zstd: bool,
    hint: Option<ReadHint>,
) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::CorruptData {
        entry: name.to_string(),
        offset: chunk.offset,
        reason,
    };
    let len = chunk
        .next_offset
        .checked_sub(chunk.offset)
        .filter(|&l| l > 0)
        .ok_or_else(|| {
            corrupt(format!(
                "member run [{}, {}) is empty",
                chunk.offset, chunk.next_offset
            ))
        })?;
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    let compressed = match hint {
        Some(hint) => {
            let mut buf = vec![0u8; len_usize];
            read_exact_hinted(source, chunk.offset, &mut buf, hint).map(|()| buf)
        }
        None => source.read_range(chunk.offset, len_usize),
    }
    .map_err(|source| Error::Io {
        entry: name.to_string(),
        offset: chunk.offset,
        len,
        source,
    })?;
    let data = if zstd {
        super::decode_frame_prefix(&compressed, chunk.inner_offset, chunk.size)
            .map_err(|e| corrupt(format!("chunk at file offset {}: {e}", chunk.chunk_offset)))?
    } else {
        decode_gzip(&compressed, chunk).map_err(corrupt)?
    };
    if verify && !chunk.digest.is_absent() && !chunk.digest.matches(&Digest::of(&data)) {
        return Err(corrupt(format!(
            "chunk at file offset {} does not match its chunkDigest",
            chunk.chunk_offset
        )));
    }
    Ok(data)
}

/// `chunk.size` bytes after `chunk.inner_offset` of the gzip members in `compressed`.
fn decode_gzip(compressed: &[u8], chunk: &Chunk) -> std::result::Result<Vec<u8>, String> {
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed);
    let skipped = io::copy(
        &mut (&mut decoder).take(chunk.inner_offset),
        &mut io::sink(),
    )
    .map_err(|e| format!("decompressing: {e}"))?;
    if skipped < chunk.inner_offset {
        return Err(format!(
            "member holds {skipped} bytes, fewer than innerOffset {}",
            chunk.inner_offset
        ));
    }
    let mut data = Vec::with_capacity(usize::try_from(chunk.size).unwrap_or(0).min(64 << 20));
    (&mut decoder)
        .take(chunk.size)
        .read_to_end(&mut data)
        .map_err(|e| format!("decompressing: {e}"))?;
    if (data.len() as u64) < chunk.size {
        return Err(format!(
            "chunk at file offset {} needs {} bytes, the member run holds {}",
            chunk.chunk_offset,
            chunk.size,
            data.len()
        ));
    }
    Ok(data)
}
