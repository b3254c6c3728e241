//! estargz-registry's integration tests, one binary for the crate; each
//! module is one area.

mod common;

mod auth_files;
mod registry;
