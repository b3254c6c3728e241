//! The codec: one independent gzip member per planned range.
//!
//! libdeflate compresses whole buffers, which is exactly what a member is
//! (at most one chunk plus headers), and is faster than zlib at a smaller
//! size (see design.md). The gzip header and trailer are written here so
//! that they match Go's `compress/gzip` byte for byte (spec §2.1).

use crate::error::{Error, Result};
use libdeflater::{CompressionLvl, Compressor};
use std::cell::RefCell;

/// Highest accepted level: gzip's scale is 0–9; libdeflate adds 10–12,
/// slower still and smaller.
pub const MAX_LEVEL: u32 = 12;

thread_local! {
    /// One compressor per thread: allocating one per member would dominate
    /// for layers made of many tiny files.
    static COMPRESSOR: RefCell<Option<(u32, Compressor)>> = const { RefCell::new(None) };
    /// libdeflate wants room for the worst case, zeroed in safe Rust: one
    /// reused buffer per thread is zeroed (and faulted in) once, instead of
    /// a fresh worst-case buffer per member; only the bytes produced are copied out.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Appends `data` to `out` as one complete gzip member at `level`.
pub fn gzip_member(level: u32, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let xfl = match level {
        9.. => 2,
        1 => 4,
        _ => 0,
    };
    // Go's: magic, deflate, no flags, zero mtime, XFL, OS unknown.
    let header = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xff];
    COMPRESSOR.with(|cell| -> Result<()> {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let lvl = CompressionLvl::new(level as i32).map_err(|_| {
                Error::InvalidOption(format!(
                    "compression level {level} is not in 0..={MAX_LEVEL}"
                ))
            })?;
            *slot = Some((level, Compressor::new(lvl)));
        }
        let Some((_, compressor)) = slot.as_mut() else {
            return Err(Error::Compress("no compressor".into()));
        };
        let bound = compressor.deflate_compress_bound(data.len());
        SCRATCH.with(|scratch| -> Result<()> {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < bound {
                scratch.resize(bound, 0);
            }
            let n = compressor
                .deflate_compress(data, &mut scratch[..bound])
                .map_err(|e| Error::Compress(format!("{e:?}")))?;
            // Exactly: members in flight then hold no slack, and nothing is copied twice.
            // CRC-32 and size follow.
            out.reserve_exact(header.len() + n + 8);
            out.extend_from_slice(&header);
            out.extend_from_slice(&scratch[..n]);
            Ok(())
        })
    })?;
    out.extend_from_slice(&libdeflater::crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_decode_and_carry_go_header_fields() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for level in 0..=MAX_LEVEL {
            let mut out = Vec::new();
            gzip_member(level, &data, &mut out).unwrap();
            let xfl = out[8];
            assert_eq!(&out[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
            assert_eq!(
                (level, xfl, out[9]),
                (
                    level,
                    [0, 4, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2][level as usize],
                    0xff
                )
            );
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "level {level}");
        }
    }
}
