//! estargz-remote's integration tests, one test binary for the crate.

mod http;
mod lazy;
mod misbehaving;
