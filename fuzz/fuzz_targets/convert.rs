//! convert on arbitrary (tar or gzip-compressed tar) bytes, to a sink, with a
//! small chunk size, level 0 or 1 and one thread: the input as it is, and the input with
//! its tar header checksums fixed up (estargz_fuzz::fix_tar_checksums), so
//! that mutated headers get past the checksum check. Each input is also
//! converted in place (convert_in_memory), which must give the same blob or
//! the same error, and a blob the converter accepts must open (the open
//! check is on here).
#![no_main]
use estargz_core::convert;
use estargz_core::convert::convert_in_memory;
use estargz_core::read::{Blob, OpenOptions};
use estargz_fuzz::{chunk_size_for, fix_tar_checksums, level_for, small_convert_options};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fn both_ways(tar: &[u8], opts: &estargz_core::ConvertOptions) {
    let (mut streamed, mut in_place) = (Vec::new(), Vec::new());
    let a = convert(tar, &mut streamed, opts).map_err(|e| e.to_string());
    let b = convert_in_memory(Arc::new(tar.to_vec()), &mut in_place, None, opts)
        .map_err(|e| e.to_string());
    // Partial output before an error depends on timing; a blob must match.
    if a.is_ok() {
        assert!(streamed == in_place, "convert_in_memory wrote another blob");
        if let Err(e) = Blob::open(&streamed[..], &OpenOptions::default()) {
            assert!(
                matches!(e, estargz_core::Error::LimitExceeded { .. }),
                "converted, but the blob does not open: {e}"
            );
        }
    }
    assert_eq!(a, b);
}

fuzz_target!(|data: &[u8]| {
    let opts = estargz_core::ConvertOptions {
        skip_open_check: false,
        ..small_convert_options(chunk_size_for(data), level_for(data))
    };
    both_ways(data, &opts);
    if data.starts_with(&[0x1f, 0x8b]) {
        return; // gzip: the checksums are inside the compressed stream
    }
    if let Some(fixed) = fix_tar_checksums(data) {
        both_ways(&fixed, &opts);
    }
});
