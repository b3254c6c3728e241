//! End-to-end tests of the `estargz` binary, one test binary for the crate
//! (one link instead of one per file); each module is one area.

mod common;

mod cli;
mod cli_layouts;
mod cli_output;
mod cli_read;
mod cli_remote;
mod cli_unpack_dir;
mod cli_zstd_convert;
mod convert_image;
mod convert_image_cache;
mod convert_image_lazy;
mod convert_image_registry;
mod mount;
mod prioritize;
mod runtime_pulls;
mod trailing_and_depth;
mod zstd_read;
mod zstd_remote;
