//! What the workspace's tests share across crates: where the reference
//! driver is, a real nginx to serve blobs, a real registry (and a proxy
//! that interrupts pushes to it), containerd and
//! stargz snapshotter, deterministic noise, the footer and TOC read from
//! the spec alone ([`spec`]), and a reader that returns short reads
//! ([`ShortReads`]).
//!
//! Not published: a dev-dependency of the crates whose tests use it.

mod certs;
pub mod chunker;
pub mod containerd;
pub mod fault_proxy;
pub mod nginx;
pub mod noise;
mod reference;
pub mod registry;
mod short_reads;
pub mod spec;
pub mod stargz;
mod tar_of;
pub mod token;
mod tools;

pub use reference::reference_driver;
pub use short_reads::ShortReads;
pub use tar_of::tar_of;

/// The zstd:chunked blobs in `testdata/blobs/zstd/` (file stems): the
/// reference's stargz dialect (`s-…`) and skopeo's containers dialect
/// (`c40-…`); see that directory's README.
pub const ZSTD_FIXTURES: [&str; 6] = [
    "s-lossless-small",
    "s-build-small",
    "s-lossless-empty",
    "s-lossless-mixed-c4096",
    "c40-small",
    "c40-mixed",
];

/// The path of `name` in `testdata/blobs/zstd/`.
pub fn zstd_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/blobs/zstd")
        .join(name)
}
