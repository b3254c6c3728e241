//! A file handle that owns its blob: what a file-handle table keeps.

use super::{Blob, FileReader, NodeId, ReadAt};
use crate::error::{Error, Result};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// An open regular file of a shared [`Blob`], with a position: `Read`
/// and `Seek` like a `std::fs::File`, and positioned reads that leave the
/// position alone. Handles share the blob's chunk cache.
///
/// ```
/// use estargz_core::{Blob, Converter, OpenOptions, OwnedFile};
/// use std::io::{Read, Seek, SeekFrom};
/// use std::sync::Arc;
/// # let tar = {
/// # let mut b = tar::Builder::new(Vec::new());
/// # let mut h = tar::Header::new_ustar();
/// # h.set_size(5);
/// # h.set_cksum();
/// # b.append_data(&mut h, "greeting", &b"hello"[..]).unwrap();
/// # b.into_inner().unwrap()
/// # };
/// let mut bytes = Vec::new();
/// Converter::new().convert(&tar, &mut bytes)?;
/// let blob = Arc::new(Blob::open(bytes, &OpenOptions::default())?);
/// let id = blob.index().lookup_id("greeting").unwrap();
/// let mut file = OwnedFile::open(blob.clone(), id)?;
/// file.seek(SeekFrom::Start(1))?;
/// let mut rest = String::new();
/// file.read_to_string(&mut rest)?;
/// assert_eq!(rest, "ello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct OwnedFile<S> {
    blob: Arc<Blob<S>>,
    id: NodeId,
    position: u64,
    verify: bool,
}

impl<S: ReadAt> OwnedFile<S> {
    /// The regular file at node `id` of `blob` (see
    /// [`Index::lookup_id`](crate::Index::lookup_id)); chunks are checked
    /// against their digests as they are decoded.
    pub fn open(blob: Arc<Blob<S>>, id: NodeId) -> Result<OwnedFile<S>> {
        let node = blob
            .index()
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("node {id}")))?;
        FileReader::new(&blob, node, node.name())?;
        Ok(OwnedFile {
            blob,
            id,
            position: 0,
            verify: true,
        })
    }

    /// Whether chunks are checked against their digests (the default);
    /// the cache keeps a checked chunk checked.
    pub fn verifying(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// The node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// File size.
    pub fn size(&self) -> u64 {
        self.blob.index().node(self.id).size()
    }

    /// Reads from file offset `offset` into `buf`, as
    /// [`FileReader::read_at`](crate::FileReader::read_at); the position
    /// does not move.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        // By id: no path to clean and look up on every read.
        let node = self.blob.index().node(self.id);
        FileReader::new(&self.blob, node, node.name())?
            .verifying(self.verify)
            .read_at(offset, buf)
    }
}

impl<S: ReadAt> Read for OwnedFile<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.position, buf).map_err(io::Error::from)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<S: ReadAt> Seek for OwnedFile<S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.size().checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.position)
    }
}
