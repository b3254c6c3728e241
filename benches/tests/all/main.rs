//! estargz-benches' integration tests, one test binary for the crate.

mod import_layers;
