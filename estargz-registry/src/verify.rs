//! A blob stream checked against its digest and announced size.

use crate::error::Error;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};

/// The body of a blob, checked while it streams: the read that reaches the
/// end returns an error instead of `Ok(0)` when the bytes were fewer or
/// more than the `Content-Length`, or their digest is not the one asked
/// for. The error is an [`io::Error`] whose inner error is this crate's
/// [`Error::SizeMismatch`] or [`Error::DigestMismatch`] (get it with
/// `e.get_ref().and_then(|e| e.downcast_ref::<estargz_registry::Error>())`).
pub struct BlobReader {
    inner: Box<dyn Read + Send>,
    url: String,
    digest: String,
    size: Option<u64>,
    hasher: Sha256,
    read: u64,
    verified: bool,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("url", &self.url)
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    pub(crate) fn new(
        inner: Box<dyn Read + Send>,
        url: String,
        digest: &str,
        size: Option<u64>,
    ) -> BlobReader {
        BlobReader {
            inner,
            url,
            digest: digest.to_string(),
            size,
            hasher: Sha256::new(),
            read: 0,
            verified: false,
        }
    }

    /// The size the registry announced (`Content-Length`), when it did.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(size) = self.size.filter(|&s| s != self.read) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                Error::SizeMismatch {
                    url: self.url.clone(),
                    expected: size,
                    received: self.read,
                },
            ));
        }
        let actual = format!(
            "sha256:{}",
            crate::client::hex(&std::mem::take(&mut self.hasher).finalize())
        );
        if actual != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Error::DigestMismatch {
                    url: self.url.clone(),
                    expected: self.digest.clone(),
                    actual,
                },
            ));
        }
        self.verified = true;
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.verified {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            // ureq reports a body cut short of its Content-Length this way.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            self.finish()?;
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if self.size.is_some_and(|s| self.read > s) {
            self.finish()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(body: &'static [u8], digest_of: &[u8], size: Option<u64>) -> BlobReader {
        let digest = crate::client::sha256_digest(digest_of);
        BlobReader::new(Box::new(body), "u".into(), &digest, size)
    }

    fn inner(e: &io::Error) -> &Error {
        e.get_ref()
            .and_then(|e| e.downcast_ref::<Error>())
            .expect("a registry error inside")
    }

    #[test]
    fn checks_digest_and_size_at_the_end() {
        let mut out = Vec::new();
        reader(b"hello", b"hello", Some(5))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
        let e = reader(b"hellO", b"hello", Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(inner(&e), Error::DigestMismatch { .. }), "{e}");
        let e = reader(b"hell", b"hello", Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(
                inner(&e),
                Error::SizeMismatch {
                    expected: 5,
                    received: 4,
                    ..
                }
            ),
            "{e}"
        );
        let e = reader(b"hello!", b"hello", Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(inner(&e), Error::SizeMismatch { .. }), "{e}");
        reader(b"hello", b"hello", None)
            .read_to_end(&mut Vec::new())
            .unwrap();
    }
}
