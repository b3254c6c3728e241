//! convert on arbitrary (tar or gzip-compressed tar) bytes, to a sink, with a
//! small chunk size, level 0 or 1 and one thread: the input as it is, and the input with
//! its tar header checksums fixed up (estargz_fuzz::fix_tar_checksums), so
//! that mutated headers get past the checksum check.
#![no_main]
use estargz_core::convert;
use estargz_fuzz::{chunk_size_for, fix_tar_checksums, level_for, small_convert_options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = small_convert_options(chunk_size_for(data), level_for(data));
    let _ = convert(data, std::io::sink(), &opts);
    if data.starts_with(&[0x1f, 0x8b]) {
        return; // gzip: the checksums are inside the compressed stream
    }
    if let Some(fixed) = fix_tar_checksums(data) {
        let _ = convert(&fixed[..], std::io::sink(), &opts);
    }
});
