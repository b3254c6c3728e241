//! # estargz-image
//!
//! Converts every layer of an OCI image to eStargz: reads an OCI image
//! layout directory or OCI archive tar (Docker ≥ 25 `docker save` output
//! included), converts each distinct tar, tar+gzip or tar+zstd layer once with
//! [`estargz_core::Converter`], and writes a new layout whose configs,
//! manifests and indexes carry the new digests, diffIDs and the eStargz
//! layer annotations. Every blob read is checked against its digest.
//!
//! ```no_run
//! use estargz_image::{convert_image, write_archive, ImageOptions, LayoutWriter, Progress, Source};
//! use std::path::Path;
//!
//! let source = Source::open(Path::new("image.tar"))?;        // or a layout directory
//! std::fs::create_dir("converted")?;
//! let out = LayoutWriter::new(Path::new("converted"))?;
//! let report = convert_image(&source, &out, &ImageOptions::default(), &|p| {
//!     if let Progress::Converted { done, total, layer } = p {
//!         eprintln!("{done}/{total} {} -> {}", layer.source_digest, layer.digest);
//!     }
//! })?;
//! println!("{} layers", report.layers.len());
//! // As an OCI archive instead of a directory:
//! write_archive(Path::new("converted"), std::fs::File::create("converted.tar")?, "converted.tar")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules: [`cache`] (the conversion cache), [`oci`] (documents and media types), [`source`] (reading,
//! verified), [`sink`] (writing), [`driver`] (the conversion), [`registry`]
//! (pulling an image into a layout, pushing a layout's image).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod driver;
mod error;
pub mod held;
pub mod oci;
mod refs;
pub mod registry;
pub mod sink;
pub mod source;

pub use driver::{
    convert_image, estimated_memory, BlobCheck, ImageOptions, ImageReport, LayerReport, Progress,
    DEFAULT_MEMORY_BUDGET,
};
pub use error::{Error, Result};
pub use sink::{write_archive, LayoutWriter};
pub use source::Source;
