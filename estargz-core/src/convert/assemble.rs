//! Assembly: the compressed members written in plan order, each chunk's
//! TOC entry told its member's offset; then the TOC, checked to open as a
//! reader would, and the footer.
//!
//! For zstd:chunked (stargz dialect) the members are zstd frames and the
//! TOC JSON goes straight into a skippable frame, not into a tar: nothing
//! after the payload adds to the diffID.

use super::compress::{gzip_member, with_zstd, Compression, TocFormat};
use super::containers::ContainersPlan;
use super::plan::{Member, Planner};
use super::{ConvertOptions, ConvertReport, ExternalToc};
use crate::blob_info::BlobInfo;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::footer;
use crate::read::{Index, IndexLimits};
use crate::toc::{self, EntryType, Toc, TocEntry};
use crate::zstd_chunked::annotations::written as zstd_annotations;
use crate::zstd_chunked::footer::{
    FooterVersion, TarSplitLocation, ZstdFooter, MANIFEST_TYPE_CRFS,
};
use crate::zstd_chunked::tar_split::Crc64;
use crate::zstd_chunked::{Dialect, SKIPPABLE_HEADER};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

/// Largest TOC JSON a ustar size field can describe (11 octal digits).
const MAX_TOC_JSON: usize = 0o77777777777;

/// Counts and hashes what goes to the output.
struct Output<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Output<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_unhashed(bytes)?;
        self.hasher.update(bytes);
        Ok(())
    }

    /// For payload members: the hashing thread digests them afterwards.
    fn write_unhashed(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write_all(bytes).map_err(Error::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// The in-order stage: offsets, output.
pub(super) struct Assembler<W> {
    out: Output<W>,
    /// The diffID hasher; payload bytes are hashed by the hashing thread.
    diff: sha256_lanes::Sha256,
    uncompressed: u64,
    members: usize,
    chunks: usize,
    /// Where the member holding each file's last chunk ends, by index of
    /// the file's `reg` entry (the containers TOC's `endOffset`).
    end_offsets: Vec<(usize, u64)>,
}

impl<W: Write> Assembler<W> {
    pub(super) fn new(out: W) -> Self {
        Assembler {
            out: Output {
                inner: out,
                hasher: Sha256::new(),
                written: 0,
            },
            diff: sha256_lanes::Sha256::new(),
            uncompressed: 0,
            members: 0,
            chunks: 0,
            end_offsets: Vec::new(),
        }
    }

    /// Takes back the blob and diffID hashers from the hashing thread,
    /// which had the payload, for the TOC and footer.
    pub(super) fn resume_hashing(&mut self, blob: Sha256, diff: sha256_lanes::Sha256) {
        self.out.hasher = blob;
        self.diff = diff;
    }

    /// Assembles the next member; returns its compressed bytes for the
    /// hashing thread, which also takes the chunks' digests.
    pub(super) fn member(
        &mut self,
        m: &Member,
        bytes: Vec<u8>,
        entries: &mut [toc::TocEntry],
    ) -> Result<Vec<u8>> {
        let offset = self.out.written as i64;
        for chunk in &m.chunks {
            entries[chunk.entry].offset = offset;
            entries[chunk.entry].inner_offset = chunk.range.start as i64;
            self.chunks += 1;
        }
        self.uncompressed += m.data.len() as u64;
        self.out.write_unhashed(&bytes)?;
        let end = self.out.written;
        self.end_offsets
            .extend(m.chunks.iter().filter(|c| c.last).map(|c| (c.file, end)));
        self.members += 1;
        Ok(bytes)
    }
}

/// Ends the blob, every member assembled and every digest in the planner's
/// TOC entries: the TOC (checked to open beside its encoding) and the
/// footer (see [`write_toc`]). Returns the report. `crcs`: the files'
/// CRC-64s, for the containers dialect's tar-split.
pub(super) fn finish<R, W: Write>(
    mut asm: Assembler<W>,
    planner: &mut Planner<R>,
    opts: &ConvertOptions,
    external_toc: Option<&mut dyn Write>,
    crcs: &[(usize, Crc64)],
) -> Result<ConvertReport> {
    let toc = Toc {
        version: 1,
        entries: std::mem::take(&mut planner.entries),
    };
    let containers = planner.containers.take();
    // The check needs no TOC bytes, so it runs beside their encoding.
    let (opens, encoded) = std::thread::scope(|s| {
        let check = (!opts.skip_open_check)
            .then(|| s.spawn(|| check_opens(&toc, asm.out.written, &planner.header_offsets)));
        let encoded = match containers {
            Some(c) => encode_containers(c, &toc, &asm.end_offsets, crcs, opts.level),
            None => encode_toc(&toc, opts.compression, opts.level),
        };
        let opens = check.map_or(Ok(()), |c| {
            c.join()
                .unwrap_or_else(|_| Err(Error::Compress("TOC check panicked".into())))
        });
        (opens, encoded)
    });
    opens?;
    let encoded = encoded?;
    let tar_size = asm.uncompressed;
    let toc_digest = Digest::of(&encoded.json);
    if opts.containers() {
        planner.warnings.extend(check_toc_size(&encoded)?);
    }
    let (toc_offset, external, manifest_checksum, extra_annotations) = match opts.compression {
        Compression::ZstdChunked => {
            let (offset, checksum, footer) = write_zstd_toc(&mut asm, &encoded)?;
            let dialect = match opts.toc_format {
                TocFormat::Containers => Dialect::Containers,
                TocFormat::Stargz => Dialect::Stargz,
            };
            // Both generations of the containers keys: podman up to 4.3
            // reads only the old ones, later versions only the new ones.
            let annotations = zstd_annotations(
                dialect,
                &footer,
                &checksum,
                &toc_digest,
                asm.uncompressed,
                opts.containers(),
            );
            (offset, None, Some(checksum), annotations)
        }
        Compression::Gzip => {
            let (offset, external) = write_toc(&mut asm, external_toc, &encoded)?;
            (offset, external, None, BTreeMap::new())
        }
    };
    asm.out.inner.flush().map_err(Error::Write)?;

    Ok(ConvertReport {
        blob: BlobInfo {
            digest: Digest::from_hasher(asm.out.hasher),
            size: asm.out.written,
            diff_id: Digest(asm.diff.finalize()),
            uncompressed_size: asm.uncompressed,
        },
        compression: opts.compression,
        toc_format: opts.toc_format,
        toc_digest,
        manifest_checksum,
        toc_offset,
        toc_entries: toc.entries.len(),
        files: planner.files,
        chunks: asm.chunks,
        members: asm.members,
        tar_size,
        external_toc: external,
        warnings: std::mem::take(&mut planner.warnings),
        extra_annotations,
    })
}

/// Writes the TOC member and the footer: into the blob (the TOC tar then
/// counts in the diffID), or the member to `external_toc` and only the
/// external-TOC footer into the blob. Returns the TOC's offset in the blob
/// (0 when external) and, when external, the TOC blob's digest and size.
fn write_toc<W: Write>(
    asm: &mut Assembler<W>,
    external_toc: Option<&mut dyn Write>,
    toc: &EncodedToc,
) -> Result<(u64, Option<ExternalToc>)> {
    let (toc_tar, toc_member) = (&toc.toc_tar[..], &toc.bytes[..]);
    match external_toc {
        None => {
            let toc_offset = asm.out.written;
            asm.out.write(toc_member)?;
            asm.diff.update(toc_tar);
            asm.uncompressed += toc_tar.len() as u64;
            asm.out.write(&footer::encode(toc_offset))?;
            Ok((toc_offset, None))
        }
        Some(toc_out) => {
            // The TOC never enters this blob's diffID: a lossless blob keeps the input's.
            toc_out.write_all(toc_member).map_err(Error::Write)?;
            toc_out.flush().map_err(Error::Write)?;
            asm.out.write(&footer::encode_external())?;
            let toc_blob = ExternalToc {
                bytes: Vec::new(),
                digest: Digest::of(toc_member),
                size: toc_member.len() as u64,
            };
            Ok((0, Some(toc_blob)))
        }
    }
}

/// Writes the zstd:chunked TOC's skippable frame, the tar-split's in the
/// containers dialect, and the 40- or 64-byte footer (spec §3.2, §3.3,
/// §4.2, §4.6); none adds to the diffID. Returns the TOC skippable
/// frame's offset, the manifest checksum (sha256 of the compressed TOC
/// frame) and the footer.
fn write_zstd_toc<W: Write>(
    asm: &mut Assembler<W>,
    toc: &EncodedToc,
) -> Result<(u64, Digest, ZstdFooter)> {
    let toc_offset = asm.out.written;
    let frame = toc.bytes.get(SKIPPABLE_HEADER as usize..).unwrap_or(&[]);
    let manifest_offset = toc_offset + SKIPPABLE_HEADER;
    let tar_split = toc.tar_split.as_ref().map(|(bytes, uncompressed)| {
        let offset = manifest_offset + frame.len() as u64 + SKIPPABLE_HEADER;
        TarSplitLocation {
            offset,
            compressed: bytes.len() as u64 - SKIPPABLE_HEADER,
            uncompressed: *uncompressed,
        }
    });
    let footer = ZstdFooter {
        version: match tar_split {
            Some(_) => FooterVersion::V64,
            None => FooterVersion::V40,
        },
        manifest_offset,
        toc_compressed: frame.len() as u64,
        toc_uncompressed: toc.json.len() as u64,
        manifest_type: MANIFEST_TYPE_CRFS,
        tar_split,
        warnings: Vec::new(),
    };
    asm.out.write(&toc.bytes)?;
    if let Some((bytes, _)) = &toc.tar_split {
        asm.out.write(bytes)?;
    }
    asm.out.write(&footer.encode())?;
    Ok((toc_offset, Digest::of(frame), footer))
}

/// A TOC ready to write.
struct EncodedToc {
    /// The JSON, whose digest is the TOC digest.
    json: Vec<u8>,
    /// gzip: the tar holding the JSON (it counts in the diffID); zstd: empty.
    toc_tar: Vec<u8>,
    /// gzip: that tar as a gzip member; zstd: the JSON as one frame in a
    /// skippable frame.
    bytes: Vec<u8>,
    /// Containers dialect: the tar-split stream as one frame in a
    /// skippable frame, and the stream's length.
    tar_split: Option<(Vec<u8>, u64)>,
}

/// Above this, containers/storage up to v1.57 refuses a TOC (`manifest
/// too big`): a warning.
const CONTAINERS_TOC_WARN: u64 = 50 << 20;
/// Above this, every containers/storage refuses it (`maxTocSize`, v1.58).
const CONTAINERS_TOC_MAX: u64 = 150 << 20;

/// Spec §7.3 rule 6 for the containers dialect: warnings for a TOC that
/// older containers/storage refuses, an error for one every version does.
fn check_toc_size(toc: &EncodedToc) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let compressed = toc.bytes.len() as u64 - SKIPPABLE_HEADER;
    for (what, size) in [
        ("compressed TOC", compressed),
        ("TOC JSON", toc.json.len() as u64),
    ] {
        if size > CONTAINERS_TOC_MAX {
            return Err(Error::LimitExceeded {
                what: "containers-dialect TOC size (containers/storage's maxTocSize)",
                value: size,
                limit: CONTAINERS_TOC_MAX,
            });
        }
        if size > CONTAINERS_TOC_WARN {
            warnings.push(format!(
                "the {what} is {size} bytes: containers/storage up to v1.57 (podman up to 5.3) \
                 refuses TOCs over {CONTAINERS_TOC_WARN} bytes and pulls the whole layer"
            ));
        }
    }
    Ok(warnings)
}

/// The containers dialect's TOC and tar-split (spec §4.4, §4.5): the
/// tar-split first, since the TOC holds its digest.
fn encode_containers(
    plan: ContainersPlan,
    toc: &Toc,
    end_offsets: &[(usize, u64)],
    crcs: &[(usize, Crc64)],
    level: u32,
) -> Result<EncodedToc> {
    let (mut containers_toc, split) = plan.finish(&toc.entries, end_offsets, crcs);
    let skippable = |what: &str, bytes: &[u8]| {
        with_zstd(level, |e| {
            e.skippable(bytes)
                .map(|(b, _)| b)
                .map_err(|e| Error::Compress(format!("{what}: {e}")))
        })
    };
    let split_bytes = skippable("tar-split", &split)?;
    let split_frame = split_bytes.get(SKIPPABLE_HEADER as usize..).unwrap_or(&[]);
    containers_toc.tar_split_digest = Digest::of(split_frame).to_string();
    let json = containers_toc.to_json();
    let bytes = skippable("TOC", &json)?;
    Ok(EncodedToc {
        json,
        toc_tar: Vec::new(),
        bytes,
        tar_split: Some((split_bytes, split.len() as u64)),
    })
}

/// The TOC's JSON and what is written of it: for gzip the tar holding it
/// as a gzip member, for zstd:chunked one frame in a skippable frame.
fn encode_toc(toc: &Toc, compression: Compression, level: u32) -> Result<EncodedToc> {
    let json = toc.to_json();
    if compression == Compression::ZstdChunked {
        let (bytes, _) = with_zstd(level, |e| {
            e.skippable(&json)
                .map_err(|e| Error::Compress(format!("TOC: {e}")))
        })?;
        return Ok(EncodedToc {
            json,
            toc_tar: Vec::new(),
            bytes,
            tar_split: None,
        });
    }
    if json.len() > MAX_TOC_JSON {
        return Err(Error::InvalidOption(format!(
            "TOC JSON of {} bytes is too large for a tar entry",
            json.len()
        )));
    }
    let toc_tar = toc::tar_bytes(&json);
    let mut toc_member = Vec::with_capacity(json.len() / 4 + 1024);
    gzip_member(level, &toc_tar, &mut toc_member)?;
    Ok(EncodedToc {
        json,
        toc_tar,
        bytes: toc_member,
        tar_split: None,
    })
}

/// Fails if readers would refuse `toc`: the index a reader builds (name
/// resolution, hardlinks, parents) is built here with the same code and
/// the reader's default limits (entries, name length, path depth), so that
/// the error names the input entry and its offset instead of surfacing
/// when the blob is opened.
///
/// Only names, types and link targets decide whether an index builds, so
/// the index is built over a skeleton of the TOC with just those: no
/// chunks, digests, owner names or times to copy, which halves the cost.
fn check_opens(toc: &Toc, payload_end: u64, header_offsets: &[u64]) -> Result<()> {
    let mut skeleton = Toc {
        version: toc.version,
        entries: Vec::new(),
    };
    // Skeleton index -> TOC index.
    let mut from = Vec::new();
    for (i, e) in toc.entries.iter().enumerate() {
        if e.kind != EntryType::Chunk {
            let mut bare = TocEntry::new(e.name.clone(), e.kind.clone());
            bare.link_name.clone_from(&e.link_name);
            skeleton.entries.push(bare);
            from.push(i);
        }
    }
    // The skeleton leaves chunks out; the reader counts them.
    let limits = IndexLimits::default();
    if toc.entries.len() > limits.max_entries {
        return Err(Error::LimitExceeded {
            what: "TOC entry count (chunks included)",
            value: toc.entries.len() as u64,
            limit: limits.max_entries as u64,
        });
    }
    let skeleton_limits = IndexLimits {
        max_entries: usize::MAX,
        ..limits
    };
    match Index::build(&skeleton, payload_end, &skeleton_limits) {
        Ok(_) => Ok(()),
        Err(Error::InvalidEntry {
            index,
            entry,
            reason,
        }) => Err(Error::UnreadableEntry {
            entry,
            offset: from
                .get(index)
                .and_then(|&i| header_offsets.get(i))
                .copied()
                .unwrap_or(0),
            reason,
        }),
        Err(e) => Err(e),
    }
}
