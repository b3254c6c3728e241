//! estargz-core's integration tests, one binary for the crate (one link
//! instead of one per file); each module is one area.

mod common;

/// Per-thread heap counts, for tests of what one call allocates.
#[global_allocator]
static ALLOC: common::heap::Counting = common::heap::Counting;

mod blob_corpus;
mod chunk_cache;
mod conformance;
mod disk_cache;
mod fixtures;
mod fuzz_regressions;
mod in_memory;
mod interop;
mod min_chunk_and_external_toc;
mod open_streaming;
mod prioritize;
mod read_verify;
mod roundtrip_prop;
mod short_reads;
mod trailing_and_depth;
mod tree;
mod unpack_dir;
mod unreadable_toc;
mod zstd_chunked_containers;
mod zstd_chunked_interop;
mod zstd_chunked_write;
mod zstd_read;
