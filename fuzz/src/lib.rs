//! Shared helpers for the estargz-core fuzz targets.
//!
//! Random bytes rarely make a blob whose gzip members, TOC and footer agree,
//! so the blob-reading targets (`open_and_read`, `verify`, `unpack`) take
//! their input two ways, see [`for_each_blob`]:
//!
//! - the input itself is always tried as a blob (the seed blobs of
//!   `testdata/blobs/`, mutated);
//! - input not starting with the gzip magic `1f 8b` is also taken as a tar:
//!   its tar header checksums are fixed up ([`fix_tar_checksums`]), it is
//!   converted to a (valid) blob, and then, if its last byte asks for
//!   it, the blob's TOC is edited by a few structured operations read from
//!   the bytes just before it (offsets, sizes, types, names and link names
//!   changed or pointed at other entries, entries removed, duplicated or
//!   swapped) and the blob is re-assembled around the edited TOC with a
//!   correct footer. That
//!   reaches the index, chunk and unpack logic with hostile but well-formed
//!   TOCs, which a byte-level mutation of the compressed TOC almost never
//!   produces.
//!
//! [`derived_blob`] gives the exact blob a target fed to the library, so a
//! crash can be turned into a regression test on the public API
//! (`cargo run --example derive_blob -- CRASH_FILE OUT_FILE`).

use estargz_core::internals::{footer, tar_bytes};
use estargz_core::{Blob, Converter, ConverterBuilder, EntryType, IndexLimits, OpenOptions, Toc};
use std::io::Write;

/// Index caps small enough that a fuzz input cannot make the index allocate much.
pub fn small_index_limits() -> IndexLimits {
    let mut limits = IndexLimits::default();
    limits.max_entries = 4096;
    limits.max_name_len = 1024;
    limits.max_depth = 64;
    limits
}

/// [`OpenOptions`] with small caps on the TOC and the index.
pub fn small_open_options() -> OpenOptions {
    let mut options = OpenOptions::default();
    options.max_toc_compressed = 1 << 20;
    options.max_toc_json = 4 << 20;
    options.index = small_index_limits();
    options
}

/// Conversion options for fuzzing: one thread, `chunk_size` (small: many
/// chunk entries) and `level` (0, stored, for most inputs: compressing
/// thousands of tiny members is where a fuzzed conversion spends its time).
/// The open check is skipped: blobs whose TOC readers refuse (dangling or
/// cyclic hardlinks, children under files) are what the read-side targets
/// must be safe on; the convert target turns it back on.
pub fn small_convert_options(chunk_size: u64, level: u32) -> ConverterBuilder {
    Converter::builder()
        .level(level)
        .chunk_size(chunk_size)
        .threads(Some(1))
        .skip_open_check(true)
}

const OP_LEN: usize = 10;

/// Splits `data` into (tar bytes, TOC edit operations).
///
/// The low 3 bits of the last byte are the number of operations, each
/// [`OP_LEN`] bytes, just before it. 0 (as in any tar ending with zero
/// blocks) means no operations and the whole input is the tar.
pub fn split_ops(data: &[u8]) -> (&[u8], Vec<[u8; OP_LEN]>) {
    let Some(&last) = data.last() else {
        return (data, Vec::new());
    };
    let n = usize::from(last & 7);
    if n == 0 || data.len() < 1 + n * OP_LEN {
        return (data, Vec::new());
    }
    let ops_start = data.len() - 1 - n * OP_LEN;
    let ops = data[ops_start..data.len() - 1]
        .chunks_exact(OP_LEN)
        .map(|c| c.try_into().unwrap())
        .collect();
    (&data[..ops_start], ops)
}

fn pick<'a>(list: &'a [&'a str], v: i64) -> &'a str {
    list[(v.unsigned_abs() % list.len() as u64) as usize]
}

/// Applies one structured edit to the TOC.
pub fn apply_op(toc: &mut Toc, op: &[u8; OP_LEN]) {
    let len = toc.entries.len();
    if len == 0 {
        if op[1] & 1 == 1 {
            toc.version = i64::from(op[2] as i8);
        }
        return;
    }
    let i = usize::from(op[0]) % len;
    let v = i64::from_le_bytes(op[2..10].try_into().unwrap());
    let j = (v.unsigned_abs() % len as u64) as usize;
    match op[1] % 18 {
        0 => toc.entries[i].offset = v,
        1 => toc.entries[i].size = v,
        2 => toc.entries[i].chunk_offset = v,
        3 => toc.entries[i].chunk_size = v,
        4 => toc.entries[i].inner_offset = v,
        5 => {
            toc.entries[i].kind = match v.unsigned_abs() % 10 {
                0 => EntryType::Dir,
                1 => EntryType::Reg,
                2 => EntryType::Symlink,
                3 => EntryType::Hardlink,
                4 => EntryType::Char,
                5 => EntryType::Block,
                6 => EntryType::Fifo,
                7 => EntryType::Chunk,
                8 => EntryType::Other("whatever".into()),
                _ => EntryType::Other(String::new()),
            }
        }
        6 => toc.entries[i].name = toc.entries[j].name.clone(),
        7 => toc.entries[i].link_name = toc.entries[j].name.clone(),
        8 => {
            let suffix = pick(
                &[
                    "/..",
                    "/../..",
                    "/",
                    "/.",
                    "../x",
                    "//",
                    "/a/../../b",
                    "",
                    "\u{fffd}",
                    "/.wh..wh..opq",
                    "/.wh.x",
                    "/stargz.index.json",
                ],
                v,
            );
            let prefix = if v < 0 { "/" } else { "" };
            toc.entries[i].name = format!("{prefix}{}{suffix}", toc.entries[i].name);
        }
        9 => {
            toc.entries[i].link_name = pick(
                &[
                    "..",
                    "/",
                    "../../etc",
                    "/etc/passwd",
                    "",
                    ".",
                    "./",
                    "a/../../..",
                    ".prefetch.landmark",
                    "stargz.index.json",
                ],
                v,
            )
            .to_string()
        }
        10 => toc.entries[i].digest = toc.entries[j].digest.clone(),
        11 => toc.entries[i].chunk_digest = toc.entries[j].chunk_digest.clone(),
        12 => {
            toc.entries.remove(i);
        }
        13 => {
            let e = toc.entries[i].clone();
            toc.entries.insert(j, e);
        }
        14 => toc.entries.swap(i, j),
        15 => toc.entries[i].mode = v,
        16 => toc.entries[i].offset = toc.entries[j].offset + i64::from(op[2] as i8),
        _ => {
            toc.entries[i].dev_major = v;
            toc.entries[i].dev_minor = v >> 32;
            toc.entries[i].uid = i64::from(op[2] as i8);
            toc.entries[i].gid = i64::from(op[3] as i8);
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// `payload` (gzip members), then a TOC member holding `json`, then the footer.
pub fn assemble(payload: &[u8], json: &[u8]) -> Vec<u8> {
    let mut blob = payload.to_vec();
    blob.extend_from_slice(&gzip(&tar_bytes(json)));
    blob.extend_from_slice(&footer::encode(payload.len() as u64));
    blob
}

/// The tar in `tar` converted to a blob, with `ops` applied to its TOC.
/// `None` when the tar does not convert (or the fresh blob does not open).
pub fn blob_from_tar(tar: &[u8], ops: &[[u8; OP_LEN]], opts: &Converter) -> Option<Vec<u8>> {
    let mut blob = Vec::new();
    let report = opts.convert(tar, &mut blob).ok()?;
    if ops.is_empty() {
        return Some(blob);
    }
    let opened = Blob::open(&blob[..], &OpenOptions::default()).ok()?;
    let mut toc = opened.toc().clone();
    drop(opened);
    for op in ops {
        apply_op(&mut toc, op);
    }
    let payload = &blob[..report.toc_offset as usize];
    Some(assemble(payload, &toc.to_json()))
}

/// `data` with the checksum of every tar header recomputed, headers found by
/// walking blocks as a tar reader does (header, then its data rounded up to
/// 512 bytes; zero blocks skipped). Mutations of a header almost always break
/// its checksum, so without this a fuzzer rarely gets past the first header.
/// Returns `None` when nothing changed.
pub fn fix_tar_checksums(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while pos + 512 <= out.len() {
        let h = &mut out[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            pos += 512;
            continue;
        }
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let size = if h[124] & 0x80 != 0 {
            h[125..136].iter().fold(0u64, |a, &b| {
                a.saturating_mul(256).saturating_add(u64::from(b))
            })
        } else {
            let field = std::str::from_utf8(&h[124..136]).unwrap_or("");
            u64::from_str_radix(field.trim_matches(|c| c == ' ' || c == '\0'), 8).unwrap_or(0)
        };
        let skip = size.div_ceil(512).saturating_mul(512);
        if skip > (out.len() - pos) as u64 {
            break;
        }
        pos += 512 + skip as usize;
    }
    (out != data).then_some(out)
}

/// Chunk size for a tar-mode input: small, derived from the input length
/// so that inputs differ in how their files are split.
pub fn chunk_size_for(data: &[u8]) -> u64 {
    [64u64, 100, 4096, 1 << 16][data.len() % 4]
}

/// Compression level for a tar-mode input: 1 for a quarter of the inputs,
/// 0 (stored) for the rest.
pub fn level_for(data: &[u8]) -> u32 {
    u32::from((data.len() / 4) % 4 == 0)
}

/// The blob converted (and TOC-edited) from `data` when `data` is not gzip;
/// `None` for gzip input or a tar that does not convert.
pub fn derived_blob(data: &[u8]) -> Option<Vec<u8>> {
    if data.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let (tar, ops) = split_ops(data);
    let fixed = fix_tar_checksums(tar);
    let opts = small_convert_options(chunk_size_for(data), level_for(data))
        .build()
        .expect("fuzzing options are valid");
    blob_from_tar(fixed.as_deref().unwrap_or(tar), &ops, &opts)
}

/// Calls `f` on every blob a blob-reading target feeds to the library for
/// `data`: `data` itself, then [`derived_blob`] if there is one.
pub fn for_each_blob(data: &[u8], mut f: impl FnMut(&[u8])) {
    f(data);
    if let Some(blob) = derived_blob(data) {
        f(&blob);
    }
}
