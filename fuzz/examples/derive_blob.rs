//! Writes the blob a blob-reading fuzz target derived from an input (see
//! `estargz_fuzz::derived_blob`), to turn a crash into a regression test on
//! the public API:
//!
//!     cd fuzz && cargo run --example derive_blob -- CRASH_FILE OUT_FILE
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        eprintln!("usage: derive_blob CRASH_FILE OUT_FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(input).expect("read input");
    match estargz_fuzz::derived_blob(&data) {
        Some(blob) => {
            std::fs::write(output, &blob).expect("write output");
            eprintln!("{}: derived blob of {} bytes", output, blob.len());
        }
        None => eprintln!("no derived blob: the targets use the input itself as the blob"),
    }
}
