//! # estargz-fuse
//!
//! A read-only FUSE file system that serves one eStargz or zstd:chunked
//! layer lazily: names and attributes come from the TOC, file bytes are
//! decoded chunk by chunk as they are read, through the blob's chunk
//! cache, each chunk checked against its digest in the TOC. It is a thin
//! adapter over `estargz-core`'s read API ([`Blob`](estargz_core::Blob),
//! [`Index`](estargz_core::Index), [`OwnedFile`](estargz_core::OwnedFile));
//! the bytes come from any [`ReadAt`](estargz_core::ReadAt): a file, or
//! `estargz-remote`'s HTTP range reads.
//!
//! - [`LayerFs`]: the file system ([`fuser::Filesystem`]); failures are
//!   `EIO` for the read concerned and reported as an [`Event`].
//! - [`View`]: the tree as the mount shows it, whiteouts in overlayfs'
//!   form ([`Whiteouts::Overlay`]) or as stored.
//! - [`CountedSource`]: counts the reads of the source ([`Stats`]).
//! - [`Fetch`]: fills the cache ahead of reads, the prefetch region
//!   ([`prefetch_region`]) first, in a few large reads.
//! - [`mount`]: mounts it (`ro,nodev,nosuid`); [`Mounted::run`] serves
//!   until unmounted.
//! - [`StackBuilder`]: a whole image, each layer on a hidden FUSE mount
//!   and a read-only overlayfs over them; [`Stack::run`] serves it until a
//!   [`StackUnmounter`] takes it down (overlay first, then the layers).
//!
//! ```no_run
//! use estargz_core::{Blob, LruChunkCache, OpenOptions};
//! use estargz_fuse::{mount, CountedSource, LayerFs, MountOptions};
//! use std::sync::Arc;
//!
//! let source = CountedSource::new(std::fs::File::open("layer.esgz")?);
//! let blob = Blob::open(source, &OpenOptions::default())?
//!     .with_cache(Arc::new(LruChunkCache::new(256 << 20)));
//! let fs = LayerFs::new(Arc::new(blob)).on_event(|e| eprintln!("{e:?}"));
//! let mounted = mount(fs, "/mnt/layer".as_ref(), &MountOptions::default())?;
//! mounted.run()?; // until `umount /mnt/layer`
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod fetch;
mod fs;
mod mount;
mod source;
mod stack;
mod view;

pub use fetch::{prefetch_region, Fetch, FetchReport, Stopped, BACKGROUND_WINDOW, MAX_WINDOW};
pub use fs::{Event, LayerFs};
pub use fuser;
pub use mount::{mount, Error, MountOptions, Mounted, Unmounter};
pub use source::{CountedSource, Counters, Stats};
pub use stack::{Stack, StackBuilder, StackError, StackOptions, StackUnmounter};
pub use view::{DirEntry, View, Whiteouts, OPAQUE_XATTR};
