//! Blob::open (small caps), then every regular file read whole (digests
//! checked) and at a few offsets, and the tar stream drained.
//! See estargz_fuzz::for_each_blob for how the input becomes blobs.
#![no_main]
use estargz_core::Blob;
use estargz_fuzz::{for_each_blob, small_open_options};
use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};

fuzz_target!(|data: &[u8]| {
    for_each_blob(data, |blob| {
        let Ok(b) = Blob::open(blob, &small_open_options()) else {
            return;
        };
        let _ = (b.toc_digest(), b.toc_json_len(), b.toc_slack(), b.kind());
        let _ = (b.size(), b.payload_end(), b.footer().toc_offset);
        let names: Vec<String> = b
            .index()
            .files()
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        for name in &names {
            let _ = b.read_file(name);
            if let Ok(r) = b.open_file(name) {
                let size = r.size();
                let mut buf = [0u8; 97];
                for off in [0, size / 2, size.saturating_sub(1), size, size + 1] {
                    let _ = r.read_at(off, &mut buf);
                }
            }
        }
        for (path, _) in b.index().walk() {
            let _ = b.open_file(&path).map(|r| r.size());
        }
        let _ = io::copy(&mut b.tar_stream().take(64 << 20), &mut io::sink());
    });
});
