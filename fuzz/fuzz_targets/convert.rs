//! convert on arbitrary (tar or gzip-compressed tar) bytes, to a sink, with a
//! small chunk size, level 0 or 1 and one thread: the input as it is, and the input with
//! its tar header checksums fixed up (estargz_fuzz::fix_tar_checksums), so
//! that mutated headers get past the checksum check. Each input is also
//! converted in place (`Input::InMemory`), which must give the same blob or
//! the same error, and a blob the converter accepts must open (the open
//! check is on here).
#![no_main]
use estargz_core::{Blob, Converter, Input, OpenOptions};
use estargz_fuzz::{chunk_size_for, fix_tar_checksums, level_for, small_convert_options};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fn both_ways(tar: &[u8], opts: &Converter) {
    let (mut streamed, mut in_place) = (Vec::new(), Vec::new());
    let a = opts.convert(tar, &mut streamed).map_err(|e| e.to_string());
    let b = opts
        .convert(Input::InMemory(Arc::new(tar.to_vec())), &mut in_place)
        .map_err(|e| e.to_string());
    // Partial output before an error depends on timing; a blob must match.
    if a.is_ok() {
        assert!(
            streamed == in_place,
            "the in-memory conversion wrote another blob"
        );
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
    let opts = small_convert_options(chunk_size_for(data), level_for(data))
        .skip_open_check(false)
        .build()
        .expect("valid options");
    both_ways(data, &opts);
    if data.starts_with(&[0x1f, 0x8b]) {
        return; // gzip: the checksums are inside the compressed stream
    }
    if let Some(fixed) = fix_tar_checksums(data) {
        both_ways(&fixed, &opts);
    }
});
