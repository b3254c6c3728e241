//! footer::parse on arbitrary bytes: the whole input as the tail of a blob of
//! that size, the last FOOTER_SIZE bytes as readers pass them, and a blob size
//! taken from the first 8 bytes with the rest as the tail.
#![no_main]
use estargz_core::internals::footer;
use libfuzzer_sys::fuzz_target;

fn check(tail: &[u8], size: u64) {
    if let Ok(f) = footer::parse(tail, size) {
        let _ = f.payload_end(size);
        let _ = f.kind.size();
    }
}

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    check(data, len);
    check(&data[data.len().saturating_sub(footer::FOOTER_SIZE)..], len);
    if data.len() >= 8 {
        let size = u64::from_le_bytes(data[..8].try_into().unwrap());
        check(&data[8..], size);
    }
});
