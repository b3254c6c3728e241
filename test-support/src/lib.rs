//! What the workspace's tests share across crates: where the reference
//! driver is, a real nginx to serve blobs, deterministic noise, the footer
//! and TOC read from the spec alone ([`spec`]), and a reader that returns
//! short reads ([`ShortReads`]).
//!
//! Not published: a dev-dependency of the crates whose tests use it.

mod certs;
pub mod nginx;
pub mod noise;
mod reference;
pub mod registry;
mod short_reads;
pub mod spec;

pub use reference::reference_driver;
pub use short_reads::ShortReads;
