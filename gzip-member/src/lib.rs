//! Decode the gzip member at the front of a buffer with libdeflate, and say
//! where it ended.
//!
//! An eStargz blob is a run of gzip members. Reading it back (verify,
//! unpack) means decoding member after member, and for that a decoder must
//! say how many input bytes each member used: that is where the next one
//! starts. libdeflate decodes whole buffers about twice as fast as
//! streaming zlib-rs (931 vs 446 MB/s in `docs/design.md`), and its C API
//! reports the input it used, but the `libdeflater` crate's safe wrapper
//! drops that count. This crate calls libdeflate's
//! `libdeflate_gzip_decompress_ex` itself, through `libdeflate-sys`.
//!
//! [`MemberDecoder::decode`] decodes exactly one member (RFC 1952: header,
//! deflate data, CRC-32 and length, both checked) from the start of
//! `input` into `out`, and ignores whatever follows the member. A member
//! whose output does not fit in `out` gives
//! [`DecodeError::InsufficientSpace`]; the caller picks the bound, so
//! memory stays bounded on any input.
//!
//! ```
//! use gzip_member::MemberDecoder;
//! use std::io::Write;
//!
//! let gzip = |data: &[u8]| {
//!     let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
//!     e.write_all(data).unwrap();
//!     e.finish().unwrap()
//! };
//! let blob = [gzip(b"first member"), gzip(b"second")].concat();
//!
//! let mut decoder = MemberDecoder::new();
//! let mut out = vec![0u8; 1024];
//! let first = decoder.decode(&blob, &mut out).unwrap();
//! assert_eq!(&out[..first.produced], b"first member");
//! let second = decoder.decode(&blob[first.consumed..], &mut out).unwrap();
//! assert_eq!(&out[..second.produced], b"second");
//! assert_eq!(first.consumed + second.consumed, blob.len());
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::ptr::NonNull;

/// What decoding one member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes the member took: the next member starts there.
    pub consumed: usize,
    /// Bytes written to the front of `out`.
    pub produced: usize,
}

/// Why a member could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a valid gzip member: bad header, bad deflate data, CRC or length
    /// mismatch, or input that ends inside the member.
    BadData,
    /// The member decodes to more than `out` holds.
    InsufficientSpace,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::BadData => "invalid or truncated gzip member",
            DecodeError::InsufficientSpace => "gzip member larger than the output buffer",
        })
    }
}

impl std::error::Error for DecodeError {}

/// A libdeflate decompressor (about 10 KB of tables), reused member after
/// member. One per thread: it is `Send`, not `Sync`.
#[derive(Debug)]
pub struct MemberDecoder {
    raw: NonNull<libdeflate_sys::libdeflate_decompressor>,
}

impl Default for MemberDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MemberDecoder {
    /// A new decoder.
    ///
    /// # Panics
    ///
    /// Only if the allocator cannot provide libdeflate's few kilobytes,
    /// as a `Vec` would.
    pub fn new() -> MemberDecoder {
        let raw = ffi::alloc();
        MemberDecoder {
            raw: NonNull::new(raw).expect("libdeflate could not allocate a decompressor"),
        }
    }

    /// Decodes the gzip member at the start of `input` into `out`.
    ///
    /// Bytes after the member are not looked at. The CRC-32 and length in
    /// the member's trailer are checked; any error leaves `out` with
    /// unspecified content.
    pub fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Decoded, DecodeError> {
        ffi::gzip_decompress_ex(self.raw, input, out)
    }
}

impl Drop for MemberDecoder {
    fn drop(&mut self) {
        ffi::free(self.raw);
    }
}

// SAFETY: a libdeflate decompressor is plain heap memory that only calls
// through `&mut self` touch; nothing ties it to the thread that made it.
#[allow(unsafe_code)]
unsafe impl Send for MemberDecoder {}

/// The three calls into libdeflate, each with the conditions that make it sound.
#[allow(unsafe_code)]
mod ffi {
    use super::{DecodeError, Decoded};
    use libdeflate_sys::{
        libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
        libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE,
        libdeflate_result_LIBDEFLATE_SUCCESS,
    };
    use std::ptr::NonNull;

    pub(super) fn alloc() -> *mut libdeflate_decompressor {
        // SAFETY: no arguments; returns a new decompressor or null.
        unsafe { libdeflate_alloc_decompressor() }
    }

    pub(super) fn free(raw: NonNull<libdeflate_decompressor>) {
        // SAFETY: `raw` came from `alloc` and is freed once, by the owner's Drop.
        unsafe { libdeflate_free_decompressor(raw.as_ptr()) }
    }

    pub(super) fn gzip_decompress_ex(
        raw: NonNull<libdeflate_decompressor>,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<Decoded, DecodeError> {
        let (mut consumed, mut produced) = (0usize, 0usize);
        // SAFETY: `raw` is a live decompressor, used by one caller at a time
        // (`&mut MemberDecoder`). libdeflate reads at most `input.len()` bytes
        // from `input` and writes at most `out.len()` bytes to `out`, both
        // valid for those lengths for the duration of the call, and writes
        // the two counts through pointers to locals.
        let result = unsafe {
            libdeflate_gzip_decompress_ex(
                raw.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut consumed,
                &mut produced,
            )
        };
        #[allow(non_upper_case_globals)]
        match result {
            libdeflate_result_LIBDEFLATE_SUCCESS
                if consumed <= input.len() && produced <= out.len() =>
            {
                Ok(Decoded { consumed, produced })
            }
            libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Err(DecodeError::InsufficientSpace),
            // BAD_DATA, and anything a future libdeflate might add.
            _ => Err(DecodeError::BadData),
        }
    }
}

#[cfg(test)]
mod tests;
