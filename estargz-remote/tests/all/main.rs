//! estargz-remote's integration tests, one test binary for the crate.

mod concurrent;
mod http;
mod lazy;
mod misbehaving;
mod read_ahead;

/// An eStargz layer of these files (mode 644), in this order, in chunks
/// of at most `chunk_size` bytes.
pub fn layer<N: AsRef<str>>(files: &[(N, Vec<u8>)], chunk_size: u64) -> Vec<u8> {
    let named: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_ref(), d.as_slice()))
        .collect();
    let converter = estargz_core::Converter::builder()
        .chunk_size(chunk_size)
        .build()
        .unwrap();
    let mut blob = Vec::new();
    converter
        .convert(&estargz_test_support::tar_of(&named), &mut blob)
        .unwrap();
    blob
}
