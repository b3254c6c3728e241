//! A byte stream made of the buffers another thread sends: the converter's
//! gzip decoding thread feeds the planner through it, and
//! [`BlobInfoWriter`](crate::BlobInfoWriter) its decompressing thread.

use std::io::{self, Read};
use std::sync::mpsc::Receiver;

/// Reads the buffers received, in order, as one stream. A received error
/// is returned by the read that reaches it; the sender hanging up ends the
/// stream.
pub(crate) struct ChannelReader {
    received: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    at: usize,
    consumed: u64,
}

impl ChannelReader {
    pub(crate) fn new(received: Receiver<io::Result<Vec<u8>>>) -> Self {
        ChannelReader {
            received,
            buf: Vec::new(),
            at: 0,
            consumed: 0,
        }
    }

    /// Bytes read so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            match self.received.recv() {
                Ok(next) => {
                    self.buf = next?;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        self.consumed += n as u64;
        Ok(n)
    }
}
