//! Prioritized files and prefetch landmarks (spec §4.6): reorders a tar so
//! that the files a container reads first come before `.prefetch.landmark`,
//! or puts `.no.prefetch.landmark` first when there is nothing to prefetch.
//!
//! The result is a new tar stream that goes through the ordinary lossless
//! [`Converter`](crate::Converter) unchanged, so every entry keeps its exact
//! bytes (extension headers, PAX and GNU long names included). The blob as a
//! whole is **not** lossless relative to the input: entries move, earlier
//! duplicates and existing landmarks are dropped, a landmark is added and
//! the archive ends with a fresh end-of-archive.
//!
//! Moving entries needs random access to the tar, so [`reorder`] takes a
//! [`ReadAt`] source; [`spool`] and [`tar_file`] turn a stream or a gzip file
//! into one without holding the tar in memory.
//!
//! ```
//! use estargz_core::prioritize::{reorder, Landmark, PrioritizeOptions};
//! use estargz_core::{Converter, Input};
//!
//! let mut tar = tar::Builder::new(Vec::new());
//! for (name, data) in [("etc/motd", &b"hi\n"[..]), ("bin/sh", &b"#!"[..])] {
//!     let mut header = tar::Header::new_ustar();
//!     header.set_size(data.len() as u64);
//!     header.set_cksum();
//!     tar.append_data(&mut header, name, data).unwrap();
//! }
//! let tar = tar.into_inner().unwrap();
//!
//! let list = vec!["/bin/sh".to_string()];
//! let reordered = reorder(tar, Some(&list), &PrioritizeOptions::default()).unwrap();
//! let report = reordered.report().clone();
//! assert_eq!(report.landmark, Landmark::Prefetch);
//! assert_eq!(report.found, ["/bin/sh"]);
//!
//! let mut blob = Vec::new();
//! Converter::new().convert(Input::stream(reordered), &mut blob).unwrap();
//! ```

use crate::error::{Error, Result};
use crate::name::clean;
use crate::read::{RangeReader, ReadAt, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK};
use crate::tar::{Header, Item, NamePolicy, ScanLimits, Scanner, BLOCK};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};

/// TOC `digest` (and `chunkDigest`) of either landmark: SHA-256 of its one
/// data byte `0x0f`.
pub const LANDMARK_DIGEST: &str =
    "sha256:dc0e9c3658a1a3ed1ec94274d8b19925c93e1abb7ddba294923ad9bde30f8cb8";

/// The one data byte of a landmark file.
const LANDMARK_BYTE: u8 = 0x0f;

/// Which landmark the reordered tar holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landmark {
    /// `.prefetch.landmark`, after the prioritized entries: its data offset
    /// ends the prefetch range.
    Prefetch,
    /// `.no.prefetch.landmark`, first: nothing to prefetch.
    NoPrefetch,
}

impl Landmark {
    /// The landmark's entry name.
    pub fn name(self) -> &'static str {
        match self {
            Landmark::Prefetch => PREFETCH_LANDMARK,
            Landmark::NoPrefetch => NO_PREFETCH_LANDMARK,
        }
    }

    /// The landmark as tar bytes: a USTAR regular file (mode 0, ids 0,
    /// mtime 0, no prefix) holding one byte `0x0f`, padded to a block.
    pub fn tar_bytes(self) -> [u8; 2 * BLOCK] {
        let mut out = [0u8; 2 * BLOCK];
        let name = self.name().as_bytes();
        out[..name.len()].copy_from_slice(name);
        for (range, value) in [
            (100..108, "0000000\0"),
            (108..116, "0000000\0"),
            (116..124, "0000000\0"),
            (124..136, "00000000001\0"),
            (136..148, "00000000000\0"),
            (329..337, "0000000\0"),
            (337..345, "0000000\0"),
        ] {
            out[range].copy_from_slice(value.as_bytes());
        }
        out[156] = b'0';
        out[257..265].copy_from_slice(b"ustar\x0000");
        out[148..156].fill(b' ');
        let sum: u32 = out[..BLOCK].iter().map(|&b| u32::from(b)).sum();
        out[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out[BLOCK] = LANDMARK_BYTE;
        out
    }
}

/// Options of [`reorder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrioritizeOptions {
    /// Record prioritized names that are not in the tar and go on, instead
    /// of failing (the reference's allow-not-found).
    pub allow_missing: bool,
    /// Names that are not UTF-8 (they match the list by their U+FFFD form).
    pub names: NamePolicy,
    /// Caps on extension headers while scanning.
    pub scan_limits: ScanLimits,
}

/// What [`reorder`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReorderReport {
    /// The landmark written.
    pub landmark: Landmark,
    /// Prioritized names found in the tar, as given.
    pub found: Vec<String>,
    /// Prioritized names not in the tar, as given (only with
    /// [`PrioritizeOptions::allow_missing`]; otherwise they are an error).
    pub missing: Vec<String>,
    /// Entries placed before `.prefetch.landmark` (parents and hardlink
    /// targets of the prioritized files included).
    pub prefetch_entries: usize,
    /// Entries kept, landmark not counted.
    pub entries: usize,
    /// Landmark entries of the input, dropped.
    pub dropped_landmarks: usize,
    /// Entries dropped because a later entry has the same cleaned name.
    pub dropped_duplicates: usize,
    /// Length of the reordered tar.
    pub tar_size: u64,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// One input entry: its cleaned name and its bytes in the source.
struct Member {
    name: String,
    /// Cleaned target, for hard links only (symlinks are not followed).
    hardlink: Option<String>,
    start: u64,
    end: u64,
}

/// A piece of the output.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Source { offset: u64, len: u64 },
    Landmark(Landmark),
    EndOfArchive,
}

impl Piece {
    fn len(self) -> u64 {
        match self {
            Piece::Source { len, .. } => len,
            Piece::Landmark(_) | Piece::EndOfArchive => 2 * BLOCK as u64,
        }
    }
}

/// The reordered tar, read straight from the source in the new order (no
/// copy is made). Returned by [`reorder`].
pub struct Reordered<S> {
    source: S,
    pieces: Vec<Piece>,
    /// Current piece and how far into it the reader is.
    at: usize,
    within: u64,
    report: ReorderReport,
}

impl<S> Reordered<S> {
    /// What was reordered, found, missed and dropped.
    pub fn report(&self) -> &ReorderReport {
        &self.report
    }

    /// Length of the reordered tar in bytes.
    pub fn len(&self) -> u64 {
        self.report.tar_size
    }

    /// Whether the reordered tar is empty (never: it holds a landmark).
    pub fn is_empty(&self) -> bool {
        self.report.tar_size == 0
    }
}

impl<S: ReadAt> Read for Reordered<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(&piece) = self.pieces.get(self.at) {
            let left = piece.len() - self.within;
            if left == 0 {
                self.at += 1;
                self.within = 0;
                continue;
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let got = match piece {
                Piece::Source { offset, .. } => {
                    let got = self.source.read_at(offset + self.within, &mut buf[..n])?;
                    if got == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the tar ended at byte {} while reordering (was it changed meanwhile?)",
                                offset + self.within
                            ),
                        ));
                    }
                    got
                }
                Piece::Landmark(which) => {
                    let bytes = which.tar_bytes();
                    let from = self.within as usize;
                    buf[..n].copy_from_slice(&bytes[from..from + n]);
                    n
                }
                Piece::EndOfArchive => {
                    buf[..n].fill(0);
                    n
                }
            };
            self.within += got as u64;
            return Ok(got);
        }
        Ok(0)
    }
}

/// Reorders `tar` (a plain, uncompressed tar; see [`tar_file`] and [`spool`]
/// for gzip and streams) for prefetching.
///
/// With `prioritized = Some(list)`, each listed file (names are cleaned, so
/// `./x`, `/x` and `x` are the same) moves to the front in list order, after
/// its parent directories (those without an entry are skipped) and, for a
/// hard link, after its target; then comes `.prefetch.landmark` and the
/// other entries in input order. A listed name not in the tar is an error
/// ([`Error::PrioritizedNotFound`]) unless [`PrioritizeOptions::allow_missing`];
/// if no listed file is found at all, the result is as with `None`, plus a
/// warning. With `None`, `.no.prefetch.landmark` comes first.
///
/// Either way existing landmarks are dropped, and of several entries with
/// the same cleaned name only the last is kept, at its position. A PAX
/// global header is kept at the front if every one comes before the first
/// entry; one anywhere else is an error, since moving entries would change
/// which entries it applies to.
///
/// ```
/// use estargz_core::prioritize::{reorder, Landmark, PrioritizeOptions};
/// use std::io::Read;
///
/// let mut tar = tar::Builder::new(Vec::new());
/// let mut header = tar::Header::new_ustar();
/// header.set_size(0);
/// header.set_cksum();
/// tar.append_data(&mut header, "a.txt", &b""[..]).unwrap();
/// let tar = tar.into_inner().unwrap();
///
/// let mut reordered = reorder(&tar[..], None, &PrioritizeOptions::default()).unwrap();
/// assert_eq!(reordered.report().landmark, Landmark::NoPrefetch);
/// let mut out = Vec::new();
/// reordered.read_to_end(&mut out).unwrap();
/// assert!(out.starts_with(b".no.prefetch.landmark\0"));
/// assert_eq!(out.len() as u64, reordered.len());
/// ```
pub fn reorder<S: ReadAt>(
    tar: S,
    prioritized: Option<&[String]>,
    options: &PrioritizeOptions,
) -> Result<Reordered<S>> {
    let mut scan = scan(&tar, options)?;
    let mut warnings = std::mem::take(&mut scan.warnings);
    let mut sorter = Sorter::new(&scan.members, &scan.by_name);
    let (found, missing) = sorter.move_listed(prioritized.unwrap_or_default());
    if !missing.is_empty() && !options.allow_missing {
        return Err(Error::PrioritizedNotFound { names: missing });
    }
    let landmark = choose_landmark(prioritized, &found, &missing, &mut warnings);
    let pieces = layout(&scan, &sorter, landmark);
    let report = ReorderReport {
        landmark,
        found,
        missing,
        prefetch_entries: sorter.order.len(),
        entries: scan.by_name.len(),
        dropped_landmarks: scan.dropped_landmarks,
        dropped_duplicates: scan.members.len() - scan.by_name.len(),
        tar_size: pieces.iter().map(|p| p.len()).sum(),
        warnings,
    };
    Ok(Reordered {
        source: tar,
        pieces,
        at: 0,
        within: 0,
        report,
    })
}

/// `.prefetch.landmark` when a listed file was found, else
/// `.no.prefetch.landmark`. Warns when a list found nothing, and of the
/// listed names not found.
fn choose_landmark(
    prioritized: Option<&[String]>,
    found: &[String],
    missing: &[String],
    warnings: &mut Vec<String>,
) -> Landmark {
    let landmark = match prioritized {
        Some(_) if !found.is_empty() => Landmark::Prefetch,
        Some(list) => {
            warnings.push(if list.is_empty() {
                "the prioritized list is empty; writing .no.prefetch.landmark (nothing to prefetch)"
                    .to_string()
            } else {
                format!(
                    "none of the {} prioritized files is in the tar; writing \
                     .no.prefetch.landmark instead of an empty prefetch region",
                    list.len()
                )
            });
            Landmark::NoPrefetch
        }
        None => Landmark::NoPrefetch,
    };
    if !missing.is_empty() {
        warnings.push(format!(
            "{} prioritized file(s) not in the tar (skipped): {}",
            missing.len(),
            crate::error::quoted(missing)
        ));
    }
    landmark
}

/// The reordered tar as pieces: the leading global headers; the moved
/// entries, then `.prefetch.landmark` (or `.no.prefetch.landmark` first);
/// the other entries kept, in input order; a fresh end-of-archive.
fn layout(scan: &Scan, sorter: &Sorter, landmark: Landmark) -> Vec<Piece> {
    let members = &scan.members;
    let source_piece = |m: &Member| Piece::Source {
        offset: m.start,
        len: m.end - m.start,
    };
    let mut pieces = Vec::with_capacity(members.len() + 3);
    if scan.preamble > 0 {
        pieces.push(Piece::Source {
            offset: 0,
            len: scan.preamble,
        });
    }
    if landmark == Landmark::NoPrefetch {
        pieces.push(Piece::Landmark(landmark));
    }
    pieces.extend(sorter.order.iter().map(|&i| source_piece(&members[i])));
    if landmark == Landmark::Prefetch {
        pieces.push(Piece::Landmark(landmark));
    }
    // Of several entries with a name, the last is kept.
    let live = |i: &usize| scan.by_name.get(&members[*i].name) == Some(i);
    pieces.extend(
        (0..members.len())
            .filter(|i| live(i) && !sorter.picked[*i])
            .map(|i| source_piece(&members[i])),
    );
    pieces.push(Piece::EndOfArchive);
    pieces
}

/// What one pass over the tar learnt.
struct Scan {
    /// Entries in input order, landmarks excluded, duplicates included.
    members: Vec<Member>,
    /// Cleaned name → index of its last entry.
    by_name: HashMap<String, usize>,
    /// Bytes of leading PAX global headers (and GNU volume labels).
    preamble: u64,
    dropped_landmarks: usize,
    warnings: Vec<String>,
}

fn scan<S: ReadAt>(tar: &S, options: &PrioritizeOptions) -> Result<Scan> {
    let size = tar
        .size()
        .map_err(|source| Error::Read { offset: 0, source })?;
    if size == 0 {
        return Err(Error::EmptyInput);
    }
    let reader = BufReader::with_capacity(1 << 20, RangeReader::new(tar, 0, size));
    // Trailing bytes are dropped from the output (a plain end-of-archive
    // replaces them), so their length is no concern here: they are only
    // looked through, in bounded pieces, for the warning.
    let limits = ScanLimits {
        max_trailing: u64::MAX,
        ..options.scan_limits
    };
    let mut scanner = Scanner::new(reader, options.names, limits);
    let mut out = Scan {
        members: Vec::new(),
        by_name: HashMap::new(),
        preamble: 0,
        dropped_landmarks: 0,
        warnings: Vec::new(),
    };
    // Where the previous entry's bytes (data and padding included) end.
    let mut prev_end = 0u64;
    let mut prev_pad = 0u64;
    let mut first = true;
    let mut skip = Vec::new();
    while let Some(item) = scanner.next_item()? {
        let entry = match item {
            Item::Entry(entry) => entry,
            Item::End { raw, offset } => {
                check_globals(&raw, prev_pad as usize, offset, None, first)?;
                let after = raw.get(prev_pad as usize..).unwrap_or_default();
                let (trailing, nonzero) = look_through_trailing(&mut scanner)?;
                if nonzero || after.iter().any(|&b| b != 0) {
                    out.warnings.push(format!(
                        "the {} bytes after the last entry (from byte {}) are replaced by a \
                         plain end-of-archive",
                        after.len() as u64 + trailing,
                        offset + prev_pad
                    ));
                }
                break;
            }
        };
        let leading = check_globals(
            &entry.raw,
            prev_pad as usize,
            entry.raw_offset,
            Some(&entry.name),
            first,
        )?;
        let start = if first {
            out.preamble = entry.raw_offset + leading as u64;
            out.preamble
        } else {
            prev_end
        };
        first = false;
        // Entry warnings (non-UTF-8 names) are left to the conversion, which sees every entry too.
        let mut left = entry.size;
        while left > 0 {
            skip.clear();
            let n = left.min(1 << 20);
            scanner.read_data(&mut skip, n)?;
            left -= n;
        }
        prev_pad = padding(entry.size);
        prev_end = entry.header_offset + BLOCK as u64 + entry.size + prev_pad;
        let name = clean(&entry.name);
        if name == crate::toc::TOC_NAME {
            // The converter refuses it too, but only here is the offset the input's.
            return Err(Error::ExistingToc {
                entry: entry.name.clone(),
                offset: entry.header_offset,
            });
        }
        if name == PREFETCH_LANDMARK || name == NO_PREFETCH_LANDMARK {
            out.dropped_landmarks += 1;
            continue;
        }
        let hardlink =
            (entry.kind == crate::tar::EntryKind::Hardlink).then(|| clean(&entry.link_name));
        out.by_name.insert(name.clone(), out.members.len());
        out.members.push(Member {
            name,
            hardlink,
            start,
            end: prev_end,
        });
    }
    Ok(out)
}

/// Reads the trailing data to its end: how long it is, and whether any of
/// it is not zero.
fn look_through_trailing<R: std::io::Read>(scanner: &mut Scanner<R>) -> Result<(u64, bool)> {
    let (mut len, mut nonzero) = (0u64, false);
    let mut piece = Vec::new();
    loop {
        piece.clear();
        let got = scanner.read_trailing(&mut piece, 1 << 20)?;
        if got == 0 {
            return Ok((len, nonzero));
        }
        len += got;
        nonzero |= piece.iter().any(|&b| b != 0);
    }
}

/// Walks the extension headers in front of an entry (`raw` after the
/// previous entry's `skip` padding bytes). PAX global headers and GNU
/// volume labels may only lead the archive: returns how many bytes of them
/// lead `raw` when `leading_allowed`, and fails on any other.
fn check_globals(
    raw: &[u8],
    skip: usize,
    raw_offset: u64,
    entry: Option<&str>,
    leading_allowed: bool,
) -> Result<usize> {
    let mut pos = skip;
    // Still inside the leading run of global headers?
    let mut in_leading_run = leading_allowed;
    let mut leading_end = skip;
    // The last block of an entry's raw is its own header: not an extension.
    let headers_end = match entry {
        Some(_) => raw.len().saturating_sub(BLOCK),
        None => raw.len(),
    };
    while pos + BLOCK <= headers_end {
        let Ok(block) = <&[u8; BLOCK]>::try_from(&raw[pos..pos + BLOCK]) else {
            break;
        };
        let header = Header(block);
        if header.is_zero() {
            break;
        }
        let flag = header.typeflag();
        let global = matches!(flag, b'g' | b'V');
        if global && !in_leading_run {
            let what = if flag == b'g' {
                "a PAX global header"
            } else {
                "a GNU volume label"
            };
            return Err(Error::Reorder {
                offset: raw_offset + pos as u64,
                entry: entry.map(str::to_string),
                reason: format!(
                    "{what} after the first entry: moving entries would change which \
                     entries it applies to"
                ),
            });
        }
        in_leading_run &= global;
        // The scanner already checked these headers; a bad size just ends the walk.
        let Ok(size) = header.size() else { break };
        let Some(next) = size
            .checked_add(padding(size))
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| n.checked_add(pos + BLOCK))
        else {
            break;
        };
        pos = next;
        if in_leading_run {
            leading_end = pos.min(headers_end);
        }
    }
    Ok(leading_end - skip)
}

/// The move-to-front of spec §4.6 step 3, without recursion (names can
/// have millions of components and hard links can form cycles).
struct Sorter<'a> {
    members: &'a [Member],
    by_name: &'a HashMap<String, usize>,
    /// Lengths of the names present: ancestors of other lengths need no lookup.
    lengths: HashSet<usize>,
    /// Names whose parents and link target are already scheduled.
    expanded: HashSet<String>,
    picked: Vec<bool>,
    order: Vec<usize>,
}

enum Task {
    Visit(String),
    Place(usize),
}

impl<'a> Sorter<'a> {
    fn new(members: &'a [Member], by_name: &'a HashMap<String, usize>) -> Sorter<'a> {
        Sorter {
            members,
            by_name,
            lengths: members.iter().map(|m| m.name.len()).collect(),
            expanded: HashSet::new(),
            picked: vec![false; members.len()],
            order: Vec::new(),
        }
    }

    /// Moves each listed file the tar holds; returns the names found and
    /// the names not found, as given.
    fn move_listed(&mut self, list: &[String]) -> (Vec<String>, Vec<String>) {
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        for given in list {
            let name = clean(given);
            if self.by_name.contains_key(&name) {
                self.move_with_dependencies(name);
                found.push(given.clone());
            } else if !name.is_empty() {
                // The root moves only if it has an entry, but naming it is
                // never an error (spec §4.6).
                missing.push(given.clone());
            }
        }
        (found, missing)
    }

    /// Moves `name`'s nearest existing ancestors (root first), then, for a
    /// hard link, its target with its ancestors, then `name` itself.
    fn move_with_dependencies(&mut self, name: String) {
        let mut stack = vec![Task::Visit(name)];
        while let Some(task) = stack.pop() {
            match task {
                Task::Place(i) => {
                    if !self.picked[i] {
                        self.picked[i] = true;
                        self.order.push(i);
                    }
                }
                Task::Visit(name) => {
                    if !self.expanded.insert(name.clone()) {
                        continue;
                    }
                    let index = self.by_name.get(&name).copied();
                    // Pushed in reverse: the parent runs first, then the target, then the entry.
                    if let Some(i) = index {
                        stack.push(Task::Place(i));
                        if let Some(target) = &self.members[i].hardlink {
                            stack.push(Task::Visit(target.clone()));
                        }
                    }
                    if let Some(parent) = self.nearest_existing_ancestor(&name) {
                        stack.push(Task::Visit(parent));
                    }
                }
            }
        }
    }

    fn nearest_existing_ancestor(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            return None;
        }
        let mut end = name.len();
        while let Some(slash) = name[..end].rfind('/') {
            let candidate = &name[..slash];
            if self.lengths.contains(&candidate.len()) && self.by_name.contains_key(candidate) {
                return Some(candidate.to_string());
            }
            end = slash;
        }
        self.by_name.contains_key("").then(String::new)
    }
}

/// Zero bytes after `size` data bytes up to the next block boundary.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Parses a prioritized-files list: one path per line, or per line an
/// NDJSON record `{"path": "..."}` as `ctr-remote` writes (other keys are
/// ignored). Each line is detected on its own; blank lines are skipped and
/// a trailing `\r` is dropped. Paths are kept as given (cleaning happens
/// when matching).
///
/// ```
/// use estargz_core::prioritize::parse_list;
/// let list = parse_list("/bin/sh\n{\"path\":\"/etc/passwd\",\"ops\":1}\n\nusr/lib\r\n").unwrap();
/// assert_eq!(list, ["/bin/sh", "/etc/passwd", "usr/lib"]);
/// ```
pub fn parse_list(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if line.trim_start().starts_with('{') {
            let bad = |reason: String| Error::PrioritizedList {
                line: number + 1,
                reason,
            };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(format!("not a JSON record: {e}")))?;
            let path = value
                .get("path")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad("JSON record without a string \"path\"".to_string()))?;
            out.push(path.to_string());
        } else {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// Copies a tar stream (plain or gzip, detected from its first bytes) into
/// an anonymous temporary file, decompressed, so that [`reorder`] can read
/// it at random without holding it in memory.
pub fn spool<R: Read>(input: R) -> Result<File> {
    let dir = std::env::temp_dir();
    let file = tempfile::tempfile_in(&dir).map_err(|source| Error::Spool {
        dir: dir.clone(),
        source,
    })?;
    spool_into(input, file, &dir)
}

/// [`spool`] into `file`, a temporary file in `dir`.
fn spool_into<R: Read>(input: R, mut file: File, dir: &std::path::Path) -> Result<File> {
    let spool_err = |source| Error::Spool {
        dir: dir.to_path_buf(),
        source,
    };
    let (is_gzip, input) = crate::tar::sniff_gzip(input)?;
    let mut writer = io::BufWriter::with_capacity(1 << 20, &mut file);
    let copied = if is_gzip {
        let decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, input));
        copy(decoder, &mut writer)
    } else {
        copy(input, &mut writer)
    };
    // `copy` reports its writes as the output's; here they are the spool's.
    copied.map_err(|e| match e {
        Error::Write(source) => spool_err(source),
        e => e,
    })?;
    writer.flush().map_err(spool_err)?;
    drop(writer);
    Ok(file)
}

/// The tar held by `file`, ready for [`reorder`]: the file itself when it
/// is a plain tar, else (gzip) a temporary decompressed copy ([`spool`]).
pub fn tar_file(file: File) -> Result<File> {
    let mut magic = [0u8; 3];
    let got = ReadAt::read_at(&file, 0, &mut magic)
        .map_err(|source| Error::Read { offset: 0, source })?;
    if got == 3 && magic == [0x1f, 0x8b, 0x08] {
        spool(RangeReader::new(
            &file,
            0,
            file.size()
                .map_err(|source| Error::Read { offset: 0, source })?,
        ))
    } else {
        Ok(file)
    }
}

/// `io::copy` with the crate's errors: read failures carry the offset
/// reached in the (decompressed) stream.
fn copy<R: Read, W: Write>(mut from: R, to: &mut W) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Read {
                    offset: total,
                    source,
                })
            }
        };
        to.write_all(&buf[..n]).map_err(Error::Write)?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    #[test]
    fn a_full_spool_says_it_is_the_spool() {
        // /dev/full: every write fails with ENOSPC, as a full $TMPDIR would.
        let full = File::options().write(true).open("/dev/full").unwrap();
        let dir = std::path::Path::new("/spool/dir");
        let err = spool_into(&vec![0u8; 3 << 20][..], full, dir).unwrap_err();
        assert!(matches!(err, Error::Spool { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("temporary spool in /spool/dir ($TMPDIR)"),
            "{text}"
        );
        assert!(!text.contains("writing output"), "{text}");
    }

    #[test]
    fn landmark_bytes_are_a_valid_header_with_the_known_digest() {
        for which in [Landmark::Prefetch, Landmark::NoPrefetch] {
            let bytes = which.tar_bytes();
            let block: &[u8; BLOCK] = bytes[..BLOCK].try_into().unwrap();
            let header = Header(block);
            header.verify_checksum(true).unwrap();
            assert_eq!(header.size(), Ok(1));
            assert_eq!(header.path(), which.name().as_bytes());
            assert_eq!(
                Digest::of(&bytes[BLOCK..BLOCK + 1]).to_string(),
                LANDMARK_DIGEST
            );
        }
    }

    #[test]
    fn parses_lists_line_by_line() {
        assert_eq!(
            parse_list("a\n  {\"path\": \"b c\"}\n\n d \n").unwrap(),
            ["a", "b c", " d "]
        );
        let err = parse_list("ok\n{\"path\": 3}\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse_list("{not json").is_err());
        assert!(parse_list("").unwrap().is_empty());
    }
}
