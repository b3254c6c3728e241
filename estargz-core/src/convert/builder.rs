//! The one way in: a [`Converter`], built once from options checked once.

use super::compress::{Compression, TocFormat};
use super::memory::{InputBytes, SharedInput};
#[cfg(doc)]
use super::DEFAULT_CHUNK_SIZE;
use super::{ConvertOptions, ConvertReport, MAX_CHUNK_SIZE};
use crate::error::{Error, Result};
use crate::tar::{NamePolicy, ScanLimits};
use std::io::{Read, Write};
use std::sync::Arc;

/// A tar to convert: a stream, or bytes held in memory as a whole.
///
/// Both give the same blob; in memory, file data is compressed and hashed
/// in place instead of being copied into member buffers (the CLI maps its
/// input file). Either may be a plain tar or a gzip-compressed one: the
/// first bytes tell.
#[non_exhaustive]
pub enum Input<'a> {
    /// Read front to back.
    Stream(Box<dyn Read + Send + 'a>),
    /// Addressable as a whole, such as a memory-mapped file.
    InMemory(SharedInput),
}

impl<'a> Input<'a> {
    /// A tar read as a stream.
    pub fn stream(reader: impl Read + Send + 'a) -> Input<'a> {
        Input::Stream(Box::new(reader))
    }

    /// A tar held in memory; see [`InputBytes`].
    pub fn in_memory(bytes: impl InputBytes + 'static) -> Input<'a> {
        Input::InMemory(Arc::new(bytes))
    }
}

impl<'a> From<&'a [u8]> for Input<'a> {
    fn from(bytes: &'a [u8]) -> Input<'a> {
        Input::stream(bytes)
    }
}

impl<'a> From<&'a Vec<u8>> for Input<'a> {
    fn from(bytes: &'a Vec<u8>) -> Input<'a> {
        Input::stream(&bytes[..])
    }
}

impl From<SharedInput> for Input<'_> {
    fn from(bytes: SharedInput) -> Self {
        Input::InMemory(bytes)
    }
}

/// Converts tars into lossless eStargz blobs, with options checked once.
///
/// Decompressing a blob up to its TOC gives back the input tar byte for
/// byte; with [`ConverterBuilder::external_toc`], the whole blob does. The
/// same input and options always give the same bytes, whatever the number
/// of threads.
///
/// ```
/// use estargz_core::{Converter, Digest};
///
/// let mut tar = tar::Builder::new(Vec::new());
/// let mut header = tar::Header::new_ustar();
/// header.set_size(5);
/// header.set_mode(0o644);
/// header.set_cksum();
/// tar.append_data(&mut header, "hello.txt", &b"hello"[..]).unwrap();
/// let tar = tar.into_inner().unwrap();
///
/// let converter = Converter::builder().level(9).chunk_size(1 << 20).build()?;
/// let mut blob = Vec::new();
/// let report = converter.convert(&tar, &mut blob)?;
/// assert_eq!(report.blob.digest, Digest::of(&blob));
/// assert_eq!(report.files, 1);
/// # Ok::<(), estargz_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converter {
    options: ConvertOptions,
}

impl Default for Converter {
    /// The defaults: level [`DEFAULT_LEVEL`](crate::DEFAULT_LEVEL), chunks
    /// of [`DEFAULT_CHUNK_SIZE`], a member per chunk, every core.
    fn default() -> Self {
        Converter {
            options: ConvertOptions::default(),
        }
    }
}

impl Converter {
    /// A converter with the default options.
    pub fn new() -> Converter {
        Converter::default()
    }

    /// Options to set before [`ConverterBuilder::build`] checks them.
    pub fn builder() -> ConverterBuilder {
        ConverterBuilder {
            options: ConvertOptions::default(),
            level: None,
        }
    }

    /// Converts `input` into a blob written to `output`.
    ///
    /// With [`ConverterBuilder::external_toc`], the TOC is not written to
    /// `output` but returned in the report's
    /// [`external_toc`](ConvertReport::external_toc).
    pub fn convert<'a, W: Write>(
        &self,
        input: impl Into<Input<'a>>,
        output: W,
    ) -> Result<ConvertReport> {
        let mut toc = Vec::new();
        let toc_out = self
            .options
            .external_toc
            .then_some(&mut toc as &mut dyn Write);
        let mut report = match input.into() {
            Input::Stream(reader) => super::convert_stream(reader, output, toc_out, &self.options),
            Input::InMemory(bytes) => {
                super::convert_in_memory(bytes, output, toc_out, &self.options)
            }
        }?;
        if let Some(external) = &mut report.external_toc {
            external.bytes = toc;
        }
        Ok(report)
    }

    /// The chunk size: the largest piece of a file's data per member.
    pub fn chunk_size(&self) -> u64 {
        self.options.chunk_size
    }

    /// How blobs are compressed.
    pub fn compression(&self) -> Compression {
        self.options.compression
    }

    /// The zstd:chunked dialect written (always [`TocFormat::Stargz`] for gzip).
    pub fn toc_format(&self) -> TocFormat {
        self.options.toc_format
    }

    /// The compression level, on the scale of [`Self::compression`].
    pub fn level(&self) -> u32 {
        self.options.level
    }

    /// Compression threads; `None` means every core.
    pub fn threads(&self) -> Option<usize> {
        self.options.threads
    }

    /// The same converter with another number of threads (`None` or
    /// `Some(0)`: every core). Threads never change the output.
    pub fn with_threads(mut self, threads: Option<usize>) -> Converter {
        self.options.threads = threads.filter(|&n| n > 0);
        self
    }
}

/// Options of a [`Converter`], checked together by [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct ConverterBuilder {
    options: ConvertOptions,
    /// `None`: the default of the compression chosen.
    level: Option<u32>,
}

impl ConverterBuilder {
    /// Compression level. gzip: 0 (stored) to 9 as in gzip, 10 to 12
    /// libdeflate's slower, smaller levels; default
    /// [`DEFAULT_LEVEL`](crate::DEFAULT_LEVEL). zstd:chunked: zstd's 1 to
    /// 22; default [`DEFAULT_ZSTD_LEVEL`](crate::DEFAULT_ZSTD_LEVEL).
    pub fn level(mut self, level: u32) -> Self {
        self.level = Some(level);
        self
    }

    /// How to compress: [`Compression::Gzip`] (eStargz, the default) or
    /// [`Compression::ZstdChunked`] (zstd:chunked, stargz dialect; the
    /// whole blob decompresses to the input tar, so the diffID is kept).
    ///
    /// ```
    /// use estargz_core::{Compression, Converter, Digest};
    ///
    /// let mut tar = tar::Builder::new(Vec::new());
    /// let mut header = tar::Header::new_ustar();
    /// header.set_size(5);
    /// header.set_cksum();
    /// tar.append_data(&mut header, "hello.txt", &b"hello"[..]).unwrap();
    /// let tar = tar.into_inner().unwrap();
    ///
    /// let converter = Converter::builder()
    ///     .compression(Compression::ZstdChunked)
    ///     .build()?;
    /// let mut blob = Vec::new();
    /// let report = converter.convert(&tar, &mut blob)?;
    /// assert_eq!(report.blob.diff_id, Digest::of(&tar));
    /// assert!(report.manifest_checksum.is_some());
    /// # Ok::<(), estargz_core::Error>(())
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.options.compression = compression;
        self
    }

    /// Which zstd:chunked dialect to write: [`TocFormat::Stargz`] (the
    /// default) or [`TocFormat::Containers`] (containers/storage's 64-byte
    /// footer layout with tar-split, for podman). Only with
    /// [`Compression::ZstdChunked`]. The containers dialect refuses what it
    /// cannot carry, naming the entry and its byte offset
    /// ([`Error::UnsupportedInDialect`]): PAX global headers, names that
    /// are not UTF-8, two entries of the same name, data on anything but a
    /// regular file.
    ///
    /// ```
    /// use estargz_core::{Compression, Converter, Digest, TocFormat};
    ///
    /// let mut tar = tar::Builder::new(Vec::new());
    /// let mut header = tar::Header::new_ustar();
    /// header.set_size(5);
    /// header.set_cksum();
    /// tar.append_data(&mut header, "hello.txt", &b"hello"[..]).unwrap();
    /// let tar = tar.into_inner().unwrap();
    ///
    /// let converter = Converter::builder()
    ///     .compression(Compression::ZstdChunked)
    ///     .toc_format(TocFormat::Containers)
    ///     .build()?;
    /// let mut blob = Vec::new();
    /// let report = converter.convert(&tar, &mut blob)?;
    /// assert_eq!(report.blob.diff_id, Digest::of(&tar));
    /// assert!(blob.ends_with(b"GNUlInUx"));
    /// let annotations = report.annotations();
    /// assert!(annotations.contains_key("io.github.containers.zstd-chunked.tarsplit-position"));
    /// # Ok::<(), estargz_core::Error>(())
    /// ```
    pub fn toc_format(mut self, format: TocFormat) -> Self {
        self.options.toc_format = format;
        self
    }

    /// Largest chunk of a file's data per member: 1 byte to
    /// [`MAX_CHUNK_SIZE`] (members are built in memory). Gzip and the
    /// stargz dialect cut files into chunks of this size; the containers
    /// dialect ([`TocFormat::Containers`]) cuts them where
    /// containers/storage does and only caps a chunk at this size.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.options.chunk_size = bytes;
        self
    }

    /// Chunks share a gzip member (at an `innerOffset`) until it holds
    /// this many uncompressed bytes; 0, the default, starts a member at
    /// every chunk. Readers older than the reference's v0.13.0 cannot read
    /// such blobs. Unlike the reference, a chunk that would take a member
    /// past this size starts the next one, so that random reads never
    /// decode more than about this much.
    pub fn min_chunk_size(mut self, bytes: u64) -> Self {
        self.options.min_chunk_size = bytes;
        self
    }

    /// Compression threads; `None` (the default) or `Some(0)` uses every
    /// core. Never changes the output.
    pub fn threads(mut self, threads: Option<usize>) -> Self {
        self.options.threads = threads;
        self
    }

    /// What to do with names that are not UTF-8.
    pub fn names(mut self, policy: NamePolicy) -> Self {
        self.options.names = policy;
        self
    }

    /// Caps on extension headers and on data after the end-of-archive block.
    pub fn scan_limits(mut self, limits: ScanLimits) -> Self {
        self.options.scan_limits = limits;
        self
    }

    /// Convert even an entry that makes readers refuse the TOC (a hardlink
    /// to a name absent from the layer, to a directory or in a cycle; a
    /// non-directory with children), which is otherwise
    /// [`Error::UnreadableEntry`]. Such a blob cannot be opened for lazy
    /// reads; it is still a valid gzip tar.
    pub fn skip_open_check(mut self, skip: bool) -> Self {
        self.options.skip_open_check = skip;
        self
    }

    /// Write the TOC apart from the blob (spec §2.4): the blob ends with
    /// the 46-byte external-TOC footer and decompresses to exactly the
    /// input tar, so a layer keeps its diffID. The TOC (the gzip member
    /// holding its tar) comes back in
    /// [`ConvertReport::external_toc`]; readers need it to open the blob
    /// ([`OpenOptions::external_toc`](crate::OpenOptions::external_toc)).
    ///
    /// ```
    /// use estargz_core::{Blob, Converter, Digest, OpenOptions};
    ///
    /// let mut tar = tar::Builder::new(Vec::new());
    /// let mut header = tar::Header::new_ustar();
    /// header.set_size(5);
    /// header.set_cksum();
    /// tar.append_data(&mut header, "hello.txt", &b"hello"[..]).unwrap();
    /// let tar = tar.into_inner().unwrap();
    ///
    /// let converter = Converter::builder().external_toc(true).build()?;
    /// let mut blob = Vec::new();
    /// let report = converter.convert(&tar, &mut blob)?;
    /// assert_eq!(report.blob.diff_id, Digest::of(&tar));
    /// let toc = report.external_toc.unwrap().bytes;
    /// let mut opts = OpenOptions::default();
    /// opts.external_toc = Some(toc);
    /// let opened = Blob::open(&blob[..], &opts)?;
    /// assert_eq!(opened.read_file("hello.txt")?, b"hello");
    /// # Ok::<(), estargz_core::Error>(())
    /// ```
    pub fn external_toc(mut self, external: bool) -> Self {
        self.options.external_toc = external;
        self
    }

    /// Checks the options together and makes the converter.
    ///
    /// [`Error::InvalidOption`] for a level outside the compression's
    /// range (gzip 0..=12, zstd 1..=22), a chunk size of 0 or above
    /// [`MAX_CHUNK_SIZE`], a minimum chunk size above [`MAX_CHUNK_SIZE`],
    /// an external TOC with zstd:chunked (not written yet), the containers
    /// TOC format with gzip, or with a minimum chunk size (its data frames
    /// hold exactly one chunk each).
    pub fn build(self) -> Result<Converter> {
        let mut o = self.options;
        o.level = self.level.unwrap_or(o.compression.default_level());
        let levels = o.compression.levels();
        if !levels.contains(&o.level) {
            return Err(Error::InvalidOption(format!(
                "{} compression level {} is not in {}..={}",
                o.compression,
                o.level,
                levels.start(),
                levels.end()
            )));
        }
        if o.external_toc && o.compression != Compression::Gzip {
            return Err(Error::InvalidOption(format!(
                "an external TOC is only written for gzip, not {}",
                o.compression
            )));
        }
        if o.toc_format == TocFormat::Containers {
            if o.compression != Compression::ZstdChunked {
                return Err(Error::InvalidOption(format!(
                    "the containers TOC format is zstd:chunked's, not {}'s",
                    o.compression
                )));
            }
            if o.min_chunk_size > 0 {
                return Err(Error::InvalidOption(
                    "the containers TOC format has no minimum chunk size: each of its data \
                     frames holds exactly one chunk"
                        .into(),
                ));
            }
        }
        if o.chunk_size == 0 || o.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidOption(format!(
                "chunk size {} is not in 1..={MAX_CHUNK_SIZE}",
                o.chunk_size
            )));
        }
        if o.min_chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidOption(format!(
                "minimum chunk size {} is larger than {MAX_CHUNK_SIZE}",
                o.min_chunk_size
            )));
        }
        o.threads = o.threads.filter(|&n| n > 0);
        Ok(Converter { options: o })
    }
}

impl Default for ConverterBuilder {
    fn default() -> Self {
        Converter::builder()
    }
}
