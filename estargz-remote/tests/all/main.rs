//! estargz-remote's integration tests, one test binary for the crate.

mod concurrent;
mod http;
mod lazy;
mod misbehaving;
mod read_ahead;
