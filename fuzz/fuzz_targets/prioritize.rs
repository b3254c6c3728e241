//! prioritize::reorder on arbitrary tar bytes (as they are and with header
//! checksums fixed up), then convert of the reordered stream. The first byte
//! picks the mode; the prioritized list is made of name fields of the tar's
//! own blocks, so that names are found, shared by duplicates and hard links,
//! and missing, all in one input.
#![no_main]
use estargz_core::prioritize::{reorder, PrioritizeOptions};
use estargz_fuzz::{fix_tar_checksums, small_convert_options};
use libfuzzer_sys::fuzz_target;
use std::io::Read;

fn run(mode: u8, tar: &[u8]) {
    let list: Vec<String> = tar
        .chunks(512)
        .enumerate()
        .filter(|(i, _)| (mode >> 2) == 0 || i % usize::from(mode >> 2) == 0)
        .map(|(_, block)| {
            let field = &block[..block.len().min(100)];
            let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
            String::from_utf8_lossy(&field[..end]).into_owned()
        })
        .chain((mode & 2 != 0).then(|| "missing/name".to_string()))
        .collect();
    let options = {
        let mut o = PrioritizeOptions::default();
        o.allow_missing = mode & 1 != 0;
        o
    };
    let list = (mode & 0x80 == 0).then_some(&list[..]);
    let Ok(mut reordered) = reorder(tar, list, &options) else {
        return;
    };
    let expected = reordered.len();
    let mut out = Vec::new();
    if reordered.read_to_end(&mut out).is_ok() {
        assert_eq!(out.len() as u64, expected);
        let converter = small_convert_options(64, 0).build().expect("valid options");
        let _ = converter.convert(&out[..], std::io::sink());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, tar)) = data.split_first() else {
        return;
    };
    run(mode, tar);
    if let Some(fixed) = fix_tar_checksums(tar) {
        run(mode, &fixed);
    }
});
