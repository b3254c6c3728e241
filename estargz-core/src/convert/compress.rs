//! The codec: one independent gzip member, or one zstd frame, per
//! planned range.
//!
//! libdeflate compresses whole buffers, which is exactly what a member is
//! (at most one chunk plus headers), and is faster than zlib at a smaller
//! size (see design.md). The gzip header and trailer are written here so
//! that they match Go's `compress/gzip` byte for byte (spec §2.1).

use crate::error::{Error, Result};
use crate::zstd_chunked::frame::FrameEncoder;
use libdeflater::{CompressionLvl, Compressor};
use std::cell::RefCell;

/// Highest accepted level: gzip's scale is 0–9; libdeflate adds 10–12,
/// slower still and smaller.
pub const MAX_LEVEL: u32 = 12;
/// Highest accepted zstd level.
pub const MAX_ZSTD_LEVEL: u32 = 22;

/// How a blob's members are compressed, and so which format it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// eStargz: one gzip member per planned range, the TOC tar in a gzip
    /// member, the 51-byte footer.
    #[default]
    Gzip,
    /// zstd:chunked in the stargz dialect (docs/zstd-chunked-format.md §3):
    /// one zstd frame per planned range, the TOC JSON in a skippable
    /// frame, the 40-byte footer. The whole blob decompresses to exactly
    /// the input tar, so a layer keeps its diffID.
    ZstdChunked,
}

impl Compression {
    /// The name the CLI and reports use: `gzip` or `zstd:chunked`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::ZstdChunked => "zstd:chunked",
        }
    }

    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => crate::blob_info::MEDIA_TYPE_LAYER_GZIP,
            Compression::ZstdChunked => MEDIA_TYPE_LAYER_ZSTD,
        }
    }

    /// The levels accepted.
    pub fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Compression::Gzip => 0..=MAX_LEVEL,
            Compression::ZstdChunked => 1..=MAX_ZSTD_LEVEL,
        }
    }

    /// The level used when none is given.
    pub fn default_level(self) -> u32 {
        match self {
            Compression::Gzip => super::DEFAULT_LEVEL,
            Compression::ZstdChunked => super::DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;

    /// `gzip`, or `zstd:chunked` (also `zstd-chunked`, `zstdchunked`).
    fn from_str(s: &str) -> Result<Compression> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd:chunked" | "zstd-chunked" | "zstdchunked" => Ok(Compression::ZstdChunked),
            _ => Err(Error::InvalidOption(format!(
                "unknown compression {s:?} (gzip or zstd:chunked)"
            ))),
        }
    }
}

/// Which TOC, footer and annotations a zstd:chunked blob gets: the two
/// dialects of the format (docs/zstd-chunked-format.md §3, §4, §7.2).
///
/// ```
/// use estargz_core::{Compression, Converter, TocFormat};
///
/// let converter = Converter::builder()
///     .compression(Compression::ZstdChunked)
///     .toc_format(TocFormat::Containers)
///     .build()?;
/// assert_eq!(converter.toc_format(), TocFormat::Containers);
/// // gzip has only one TOC format.
/// assert!(Converter::builder().toc_format(TocFormat::Containers).build().is_err());
/// # Ok::<(), estargz_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TocFormat {
    /// The stargz package's: the eStargz TOC JSON, the 40-byte footer,
    /// a data frame per chunk that goes on with the tar bytes after it.
    /// Read by stargz-snapshotter, the reference and podman up to 4.3
    /// (partial pulls); the default.
    #[default]
    Stargz,
    /// containers/storage's current layout (C64): its TOC keys with
    /// nanosecond times, a data frame per chunk holding only that chunk,
    /// chunks cut where containers/storage cuts them (zero runs of at
    /// least 1 KiB as `zeros` chunks, the rest by its rolling sum; the
    /// chunk size only caps them), so that they de-duplicate against
    /// podman-made layers,
    /// the tar-split stream, the 64-byte footer, and both generations of
    /// its annotation keys. For podman 5 (and, through the
    /// `io.containers.*` keys, 4.3); only zstd:chunked.
    Containers,
}

impl TocFormat {
    /// `stargz` or `containers`.
    pub fn name(self) -> &'static str {
        match self {
            TocFormat::Stargz => "stargz",
            TocFormat::Containers => "containers",
        }
    }
}

impl std::fmt::Display for TocFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TocFormat {
    type Err = Error;

    /// `stargz` or `containers`.
    fn from_str(s: &str) -> Result<TocFormat> {
        match s {
            "stargz" => Ok(TocFormat::Stargz),
            "containers" => Ok(TocFormat::Containers),
            _ => Err(Error::InvalidOption(format!(
                "unknown TOC format {s:?} (stargz or containers)"
            ))),
        }
    }
}

/// Media type of a zstd-compressed layer, zstd:chunked included.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Appends `data` to `out` compressed as `compression` says: a gzip
/// member, or a zstd frame (nothing for empty data: zstd:chunked writers
/// never emit an empty frame, spec §7.3 rule 1).
pub fn member(compression: Compression, level: u32, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    match compression {
        Compression::Gzip => gzip_member(level, data, out),
        Compression::ZstdChunked if data.is_empty() => Ok(()),
        Compression::ZstdChunked => with_zstd(level, |enc| {
            // Through the scratch buffer, as for gzip: the encoder reserves
            // the worst case, which members in flight would otherwise hold.
            ZSTD_SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                scratch.clear();
                enc.compress(data, &mut scratch)
                    .map_err(|e| Error::Compress(e.to_string()))?;
                out.reserve_exact(scratch.len());
                out.extend_from_slice(&scratch);
                Ok(())
            })
        }),
    }
}

/// Runs `f` with this thread's zstd encoder at `level`.
pub fn with_zstd<T>(level: u32, f: impl FnOnce(&mut FrameEncoder) -> Result<T>) -> Result<T> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let level = i32::try_from(level).unwrap_or(i32::MAX);
        if slot.as_ref().is_none_or(|e| e.level() != level) {
            let encoder =
                FrameEncoder::new(level).map_err(|e| Error::InvalidOption(e.to_string()))?;
            *slot = Some(encoder);
        }
        match slot.as_mut() {
            Some(encoder) => f(encoder),
            None => Err(Error::Compress("no zstd encoder".into())),
        }
    })
}

thread_local! {
    /// One compressor per thread: allocating one per member would dominate
    /// for layers made of many tiny files.
    static COMPRESSOR: RefCell<Option<(u32, Compressor)>> = const { RefCell::new(None) };
    /// libdeflate wants room for the worst case, zeroed in safe Rust: one
    /// reused buffer per thread is zeroed (and faulted in) once, instead of
    /// a fresh worst-case buffer per member; only the bytes produced are copied out.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// One zstd context per thread, for the same reason as [`COMPRESSOR`];
    /// each frame starts a new session, so reuse never changes the bytes.
    static ZSTD: RefCell<Option<FrameEncoder>> = const { RefCell::new(None) };
    /// The zstd encoder's output before its exact copy; apart from
    /// [`SCRATCH`], whose length the gzip path relies on.
    static ZSTD_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
