//! verify::verify with default options, on the input as a blob and on the
//! blob converted (and TOC-edited) from it when it is not gzip.
#![no_main]
use estargz_core::{verify, VerifyOptions};
use estargz_fuzz::for_each_blob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for_each_blob(data, |blob| {
        let report = verify(blob, &VerifyOptions::default());
        let _ = report.is_valid();
    });
});
