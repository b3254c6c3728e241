//! # estargz-core
//!
//! Reading and writing eStargz, the seekable `tar.gz` layer format that lets
//! container runtimes start a container before its image is pulled.
//!
//! An eStargz blob is an ordinary gzip layer made of independent gzip
//! members, with a table of contents (`stargz.index.json`) and a 51-byte
//! footer at the end that locate every file and chunk. This crate writes
//! such blobs losslessly: decompressing one up to its TOC gives back the
//! input tar byte for byte.
//!
//! ```
//! use estargz_core::{convert, blob_info_of, ConvertOptions};
//!
//! let mut tar = tar::Builder::new(Vec::new());
//! let mut header = tar::Header::new_gnu();
//! header.set_size(3);
//! header.set_cksum();
//! tar.append_data(&mut header, "etc/motd", &b"hi\n"[..]).unwrap();
//! let tar = tar.into_inner().unwrap();
//!
//! let mut blob = Vec::new();
//! let report = convert(&tar[..], &mut blob, &ConvertOptions::default()).unwrap();
//! // The numbers an image manifest needs, computed in the same pass...
//! println!("{} {}", report.blob.digest, report.toc_digest);
//! // ...and they agree with what any gzip reader sees in the blob.
//! assert_eq!(blob_info_of(&blob[..]).unwrap(), report.blob);
//! ```
//!
//! Modules, one concept each: [`footer`], [`toc`], [`tar`] (lossless
//! scanning), [`convert`](mod@convert) (plan, codec, pipeline), [`blob_info`] (the digest
//! tee), [`name`] (path cleaning), [`digest`], [`prioritize`] (prefetch
//! ordering and landmarks; not lossless).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blob_info;
pub mod convert;
pub mod digest;
mod error;
pub mod footer;
pub mod name;
pub mod prioritize;
pub mod read;
pub mod tar;
pub mod toc;
pub mod unpack;
pub mod verify;
#[allow(dead_code)] // wired into the reader and the convert pipeline next (issue #19)
mod zstd_chunked;

pub use blob_info::{blob_info_of, BlobInfo, BlobInfoWriter};
pub use convert::{convert, convert_external_toc, ConvertOptions, ConvertReport, ExternalToc};
pub use digest::Digest;
pub use error::{Error, Result, TarErrorKind};
