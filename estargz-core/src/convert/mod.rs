//! The lossless tar → eStargz converter.
//!
//! Layout follows `design.md`. The data flows: the [scanner](crate::tar)
//! reads the tar entry by entry; [`plan`] decides member boundaries and
//! builds the TOC entries; [`compress`] turns each member into an
//! independent gzip member; `assemble` writes the members in order, then
//! the TOC and footer. `digests` hashes what was assembled, on its own
//! thread, and fills the digests into the TOC; `pipeline` drives it all,
//! compressing in parallel.

mod assemble;
mod builder;
mod cdc;
pub(crate) mod compress;
mod containers;
mod digests;
mod memory;
mod pipeline;
pub(crate) mod plan;

pub use builder::{Converter, ConverterBuilder, Input};
pub use compress::{Compression, TocFormat, MEDIA_TYPE_LAYER_ZSTD};
pub use memory::{InputBytes, MemberData, SharedInput};

use crate::blob_info::{layer_annotations, BlobInfo};
use crate::channel::ChannelReader;
use crate::digest::Digest;
use crate::error::Result;
use crate::tar::{sniff_gzip, NamePolicy, ScanLimits, Scanner};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::sync::mpsc::{sync_channel, SyncSender};

/// Default chunk size: 4 MiB, as the reference.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;
/// Default level: 7. libdeflate at 7 is the lowest level whose blobs are no
/// larger than the reference's at its level 9 on every layer of the
/// comparison corpus (Debian root filesystem, Python site-packages,
/// node_modules; benches/RESULTS.md) and of the held-out one (a Debian
/// toolchain, pandas and botocore, next and eslint, a `cargo vendor` tree;
/// benches/RESULTS-heldout.md), at about a seventh of its CPU time. Level 6
/// was the default until the held-out `cargo vendor` tree came out 0.3%
/// larger than the reference's; level 7 makes that tree 0.5% smaller than
/// the reference's, for 10-27% more CPU than level 6.
pub const DEFAULT_LEVEL: u32 = 7;
/// Default zstd level for [`Compression::ZstdChunked`]: 3, the lowest
/// whose blobs are no larger than the reference's zstd:chunked writer at
/// its default on the layers measured (docs/benchmarks.md, "zstd:chunked:
/// the default level"); level 2 came out up to 2.4% larger.
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;
/// Largest accepted chunk size: members are built in memory.
pub const MAX_CHUNK_SIZE: u64 = 1 << 30;

/// The options a [`Converter`] was built with, checked by
/// [`ConverterBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvertOptions {
    pub(crate) compression: Compression,
    pub(crate) toc_format: TocFormat,
    pub(crate) level: u32,
    pub(crate) chunk_size: u64,
    pub(crate) min_chunk_size: u64,
    pub(crate) threads: Option<usize>,
    pub(crate) names: NamePolicy,
    pub(crate) scan_limits: ScanLimits,
    pub(crate) skip_open_check: bool,
    pub(crate) external_toc: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            compression: Compression::Gzip,
            toc_format: TocFormat::Stargz,
            level: DEFAULT_LEVEL,
            chunk_size: DEFAULT_CHUNK_SIZE,
            min_chunk_size: 0,
            threads: None,
            names: NamePolicy::default(),
            scan_limits: ScanLimits::default(),
            skip_open_check: false,
            external_toc: false,
        }
    }
}

impl ConvertOptions {
    /// Writing the containers dialect of zstd:chunked.
    pub(crate) fn containers(&self) -> bool {
        self.toc_format == TocFormat::Containers
    }

    /// The scanner's name policy: the containers dialect cannot carry
    /// names that are not UTF-8, whatever was asked.
    fn name_policy(&self) -> NamePolicy {
        if self.containers() {
            NamePolicy::Strict
        } else {
            self.names
        }
    }

    /// `planner`, planning the dialect these options write.
    fn dialect<R: Read>(&self, planner: plan::Planner<R>) -> plan::Planner<R> {
        if self.containers() {
            planner.with_containers()
        } else {
            planner
        }
    }
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConvertReport {
    /// Digest, size, diffID and uncompressed size of the blob written.
    pub blob: BlobInfo,
    /// How the blob is compressed: eStargz or zstd:chunked.
    pub compression: Compression,
    /// zstd:chunked: which dialect was written ([`TocFormat::Stargz`]
    /// for gzip, which has only that TOC).
    pub toc_format: TocFormat,
    /// SHA-256 of the TOC JSON.
    pub toc_digest: Digest,
    /// zstd:chunked only: SHA-256 of the compressed TOC frame, the
    /// `manifest-checksum` annotation.
    pub manifest_checksum: Option<Digest>,
    /// Offset of the TOC member (0 when the TOC was written separately);
    /// for zstd:chunked, of the TOC's skippable frame.
    pub toc_offset: u64,
    /// The TOC written apart, with [`ConverterBuilder::external_toc`].
    pub external_toc: Option<ExternalToc>,
    /// Entries in the TOC (chunks included).
    pub toc_entries: usize,
    /// Regular files.
    pub files: usize,
    /// Data chunks (members holding file data).
    pub chunks: usize,
    /// Payload members (TOC and footer not counted).
    pub members: usize,
    /// Length of the input tar (decompressed, when the input was gzip).
    pub tar_size: u64,
    /// Non-fatal findings, such as non-UTF-8 names replaced in the TOC.
    pub warnings: Vec<String>,
    /// The layer annotations, when the format has more than
    /// [`layer_annotations`] gives.
    pub(crate) extra_annotations: BTreeMap<String, String>,
}

/// A TOC written to its own file (spec §2.4): the gzip member holding the
/// TOC tar, which an image ships as a layer of its `-esgztoc` companion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExternalToc {
    /// SHA-256 of the TOC file.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
    /// The file itself: the gzip member holding the TOC tar.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl ConvertReport {
    /// The layer annotations: TOC digest and uncompressed size; for
    /// zstd:chunked also the manifest checksum and position
    /// (`io.containers.zstd-chunked.*`, spec §7.2). The containers dialect
    /// gets only containers/storage's keys, in both generations
    /// (`io.github.containers.zstd-chunked.*` with the tar-split position,
    /// and `io.containers.zstd-chunked.*` for podman up to 4.3): never the
    /// stargz TOC digest, beside which containers/storage refuses them.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        if self.toc_format == TocFormat::Containers {
            return self.extra_annotations.clone();
        }
        let mut out = layer_annotations(&self.toc_digest, self.blob.uncompressed_size);
        out.extend(self.extra_annotations.clone());
        out
    }
}

/// The report as `estargz convert --json` prints it: the blob's fields at
/// the top level, `toc_offset` null when the TOC went to its own file (there
/// is no offset of it in the blob then), `entries` for the TOC entries, the
/// layer annotations; the member count is left out. zstd:chunked reports
/// add `compression`, `toc_format` and `manifest_checksum`.
impl serde::Serialize for ConvertReport {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        ReportFields {
            blob: &self.blob,
            // gzip reports keep the keys they had before zstd:chunked.
            compression: (self.compression != Compression::Gzip).then(|| self.compression.name()),
            toc_format: (self.compression != Compression::Gzip).then(|| self.toc_format.name()),
            toc_digest: &self.toc_digest,
            manifest_checksum: self.manifest_checksum.as_ref(),
            toc_offset: self.external_toc.is_none().then_some(self.toc_offset),
            external_toc: self.external_toc.as_ref(),
            annotations: self.annotations(),
            tar_size: self.tar_size,
            entries: self.toc_entries,
            files: self.files,
            chunks: self.chunks,
            warnings: &self.warnings,
        }
        .serialize(serializer)
    }
}

/// The serialized form of a [`ConvertReport`].
#[derive(serde::Serialize)]
struct ReportFields<'a> {
    #[serde(flatten)]
    blob: &'a BlobInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    compression: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    toc_format: Option<&'static str>,
    toc_digest: &'a Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest_checksum: Option<&'a Digest>,
    toc_offset: Option<u64>,
    external_toc: Option<&'a ExternalToc>,
    annotations: BTreeMap<String, String>,
    tar_size: u64,
    entries: usize,
    files: usize,
    chunks: usize,
    warnings: &'a [String],
}

/// Converts a tar stream (plain or gzip-compressed, detected from its
/// first bytes); see [`Converter::convert`].
pub(super) fn convert_stream<R: Read + Send, W: Write>(
    input: R,
    output: W,
    external_toc: Option<&mut dyn Write>,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    let (is_gzip, input) = sniff_gzip(input)?;
    if is_gzip {
        // Decoding gets its own thread: inline, it stalled planning, and so
        // the whole pipeline, for as long as each read took to decode.
        std::thread::scope(|s| {
            let (buffers, received) = sync_channel(DECODED_IN_FLIGHT);
            let decoder = s.spawn(move || decode_gzip(input, buffers));
            let result = run(
                BufReader::with_capacity(64 << 10, ChannelReader::new(received)),
                output,
                external_toc,
                options,
            );
            // The reader is gone, so the decoder stops at its next buffer. A
            // panic there already showed as a truncated stream.
            let _ = decoder.join();
            result
        })
    } else {
        run(
            BufReader::with_capacity(1 << 20, input),
            output,
            external_toc,
            options,
        )
    }
}

/// Decoded buffers queued between the decoding thread and the planner: with
/// [`DECODED_BUFFER`] bytes each, memory stays flat and decoding can run
/// ahead of a planner busy with a large member.
const DECODED_IN_FLIGHT: usize = 4;
const DECODED_BUFFER: usize = 1 << 20;

/// Decodes a gzip stream into `out` until its end, an error, or the
/// [`ChannelReader`] hanging up.
fn decode_gzip<R: Read>(input: R, out: SyncSender<std::io::Result<Vec<u8>>>) {
    let mut decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, input));
    loop {
        let mut buf = Vec::with_capacity(DECODED_BUFFER);
        match (&mut decoder)
            .take(DECODED_BUFFER as u64)
            .read_to_end(&mut buf)
        {
            Ok(0) => return,
            Ok(_) => {
                if out.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        }
    }
}

fn run<R: Read + Send, W: Write>(
    tar: R,
    output: W,
    external_toc: Option<&mut dyn Write>,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    let scanner = Scanner::new(tar, options.name_policy(), options.scan_limits);
    let planner =
        plan::Planner::new(scanner, options.chunk_size).with_min_chunk_size(options.min_chunk_size);
    pipeline::run(options.dialect(planner), options, output, external_toc)
}

/// Converts a tar held in memory as a whole, typically a memory-mapped
/// file: file data is compressed and hashed in place instead of being
/// copied into member buffers. The output is byte for byte what
/// [`convert_stream`] makes of the same bytes. A gzip-compressed input is
/// decoded as a stream.
pub(super) fn convert_in_memory<W: Write>(
    input: SharedInput,
    output: W,
    toc: Option<&mut dyn Write>,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    if sniff_gzip(input.bytes())?.0 {
        return convert_stream(input.bytes(), output, toc, options);
    }
    let planner = plan::Planner::in_memory(
        input,
        options.name_policy(),
        options.scan_limits,
        options.chunk_size,
    )
    .with_min_chunk_size(options.min_chunk_size);
    pipeline::run(options.dialect(planner), options, output, toc)
}
