//! The scanner: raw bytes plus parsed metadata for each entry.

use super::header::{Header, BLOCK};
use super::{lossy_utf8, pax};
use crate::error::{Error, Result, TarErrorKind};
use std::collections::BTreeMap;
use std::io::Read;

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Regular file (`0`, NUL, `7`).
    Regular,
    /// Directory (`5`, GNU dumpdir `D`, or a v7 name ending in `/`).
    Directory,
    /// Symbolic link (`2`).
    Symlink,
    /// Hard link (`1`).
    Hardlink,
    /// Character device (`3`).
    CharDevice,
    /// Block device (`4`).
    BlockDevice,
    /// FIFO (`6`).
    Fifo,
}

impl EntryKind {
    /// The TOC `type` of this kind of entry.
    pub fn toc_type(self) -> crate::toc::EntryType {
        use crate::toc::EntryType;
        match self {
            EntryKind::Regular => EntryType::Reg,
            EntryKind::Directory => EntryType::Dir,
            EntryKind::Symlink => EntryType::Symlink,
            EntryKind::Hardlink => EntryType::Hardlink,
            EntryKind::CharDevice => EntryType::Char,
            EntryKind::BlockDevice => EntryType::Block,
            EntryKind::Fifo => EntryType::Fifo,
        }
    }
}

/// How to treat names, link names and xattr keys that are not UTF-8.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NamePolicy {
    /// Replace each invalid byte with U+FFFD in the TOC (as the reference
    /// does, so every reader opens the blob) and warn. Tar bytes stay exact.
    #[default]
    Replace,
    /// Fail with an error naming the entry.
    Strict,
}

/// Caps on what a tar may make the scanner allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanLimits {
    /// Largest PAX extended header payload (`x` or `g`).
    pub max_pax_size: u64,
    /// Largest GNU long name or long link payload (`L`, `K`), or volume label (`V`).
    pub max_long_name: u64,
    /// Most bytes accepted after the first end-of-archive block (the second
    /// one, record padding, anything else). Real tars carry at most a record
    /// or so (10 KiB for tar's default blocking, 1 MiB at the largest
    /// blocking factors); the bytes are streamed, never held whole, but an
    /// endless zero tail would still be converted forever.
    pub max_trailing: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_pax_size: 16 << 20,
            max_long_name: 1 << 20,
            max_trailing: 16 << 20,
        }
    }
}

/// One real entry (extension headers already folded in).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Input bytes since the previous entry's data: the previous entry's
    /// padding, extension headers and their payloads, and this header.
    /// (Data the caller left unread is passed over, not kept here.)
    pub raw: Vec<u8>,
    /// Offset of `raw[0]` in the input.
    pub raw_offset: u64,
    /// Offset of this entry's own header block.
    pub header_offset: u64,
    /// Raw name bytes (PAX `path` > GNU `L` > ustar prefix/name).
    pub raw_name: Vec<u8>,
    /// Name as text (see [`NamePolicy`]).
    pub name: String,
    /// Kind of file.
    pub kind: EntryKind,
    /// Bytes of data that follow the header.
    pub size: u64,
    /// Mode field, raw.
    pub mode: i64,
    /// Owner id.
    pub uid: i64,
    /// Group id.
    pub gid: i64,
    /// Owner name.
    pub user_name: String,
    /// Group name.
    pub group_name: String,
    /// Modification time: whole seconds (floored) and nanoseconds.
    pub mtime: (i64, u32),
    /// Access time, when the tar has one (PAX `atime`, GNU or star header).
    pub atime: Option<(i64, u32)>,
    /// Change time, when the tar has one (PAX `ctime`, GNU or star header).
    pub ctime: Option<(i64, u32)>,
    /// Link target (symlinks and hard links).
    pub link_name: String,
    /// Device major.
    pub dev_major: i64,
    /// Device minor.
    pub dev_minor: i64,
    /// `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Non-fatal findings (non-UTF-8 names replaced, …).
    pub warnings: Vec<String>,
}

/// What [`Scanner::next_item`] yields.
#[derive(Debug)]
pub enum Item {
    /// A real entry; its `size` data bytes follow (read them with
    /// [`Scanner::read_data`], or leave them: the next call passes over them).
    Entry(Box<Entry>),
    /// The end of the entries: the bytes since the last entry's data (its
    /// padding, any global headers, and the first end-of-archive block;
    /// empty when the tar simply stops after its last entry). Whatever follows that block is trailing
    /// data, read piece by piece with [`Scanner::read_trailing`] (or
    /// [`Scanner::skip_trailing`]), or left unread.
    End {
        /// The bytes.
        raw: Vec<u8>,
        /// Their offset in the input.
        offset: u64,
    },
}

/// Extension records collected before an entry's own header.
#[derive(Default)]
struct Extensions {
    pax: BTreeMap<Vec<u8>, Vec<u8>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    any: bool,
}

/// Walks a tar stream, header by header, keeping every byte.
pub struct Scanner<R> {
    input: R,
    pos: u64,
    data_left: u64,
    pad_left: u64,
    current: Option<String>,
    globals: BTreeMap<Vec<u8>, Vec<u8>>,
    names: NamePolicy,
    limits: ScanLimits,
    finished: bool,
    /// Where the trailing data starts, once the end-of-archive block is read.
    trailing_from: Option<u64>,
    /// Offset and name of the first PAX global header, if any.
    first_global: Option<(u64, String)>,
}

impl<R: Read> Scanner<R> {
    /// A scanner over `input`.
    pub fn new(input: R, names: NamePolicy, limits: ScanLimits) -> Self {
        Scanner {
            input,
            pos: 0,
            data_left: 0,
            pad_left: 0,
            current: None,
            globals: BTreeMap::new(),
            names,
            limits,
            finished: false,
            trailing_from: None,
            first_global: None,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Offset and name of the first PAX global header (`g`) read so far.
    /// Its records apply to the entries after it; writers that cannot
    /// carry it (the containers dialect of zstd:chunked) refuse it by this.
    pub fn first_global_header(&self) -> Option<&(u64, String)> {
        self.first_global.as_ref()
    }

    /// Data bytes of the current entry not yet read.
    pub fn data_left(&self) -> u64 {
        self.data_left
    }

    fn err(&self, offset: u64, kind: TarErrorKind) -> Error {
        Error::Tar {
            offset,
            entry: self.current.clone(),
            kind,
        }
    }

    /// Appends up to `n` input bytes to `buf`; returns how many were read
    /// (fewer only at end of input).
    fn pull(&mut self, buf: &mut Vec<u8>, n: u64) -> Result<u64> {
        let start = buf.len();
        let got = (&mut self.input)
            .take(n)
            .read_to_end(buf)
            .map_err(|source| Error::Read {
                offset: self.pos + (buf.len() - start) as u64,
                source,
            })?;
        self.pos += got as u64;
        Ok(got as u64)
    }

    fn pull_exact(&mut self, buf: &mut Vec<u8>, n: u64, what: &'static str) -> Result<()> {
        let got = self.pull(buf, n)?;
        if got < n {
            return Err(self.err(
                self.pos,
                TarErrorKind::Truncated {
                    what,
                    needed: n - got,
                },
            ));
        }
        Ok(())
    }

    /// Appends the next `n` data bytes of the current entry to `buf`.
    pub fn read_data(&mut self, buf: &mut Vec<u8>, n: u64) -> Result<()> {
        let n = n.min(self.data_left);
        self.pull_exact(buf, n, "file data")?;
        self.data_left -= n;
        Ok(())
    }

    /// Moves past the next `n` data bytes of the current entry without
    /// reading them: `skip` advances the input by up to `n` bytes and says
    /// how many it passed (fewer only at end of input). For input held in
    /// memory, whose bytes the caller takes straight from memory.
    pub fn skip_data(
        &mut self,
        n: u64,
        skip: impl FnOnce(&mut R, u64) -> std::io::Result<u64>,
    ) -> Result<()> {
        let n = n.min(self.data_left);
        let got = skip(&mut self.input, n).map_err(|source| Error::Read {
            offset: self.pos,
            source,
        })?;
        self.pos += got;
        if got < n {
            return Err(self.err(
                self.pos,
                TarErrorKind::Truncated {
                    what: "file data",
                    needed: n - got,
                },
            ));
        }
        self.data_left -= n;
        Ok(())
    }

    /// Passes over the data of the current entry that the caller left
    /// unread, through a small buffer: an entry may be gigabytes long.
    fn pass_over_data(&mut self) -> Result<()> {
        self.skip_data(self.data_left, |input, n| {
            std::io::copy(&mut input.take(n), &mut std::io::sink())
        })
    }

    /// How many trailing bytes to ask the input for when the caller wants
    /// `n`: one more than the cap allows, to tell a tail that ends exactly
    /// at the cap from one that goes on. `None` before the end-of-archive
    /// block (or when the tar had none).
    fn trailing_request(&self, n: u64) -> Option<u64> {
        let from = self.trailing_from?;
        let allowed = self.limits.max_trailing.saturating_sub(self.pos - from);
        Some(n.min(allowed.saturating_add(1)))
    }

    /// Fails once more trailing bytes were consumed than the cap allows.
    fn check_trailing(&self) -> Result<()> {
        let from = self.trailing_from.unwrap_or(self.pos);
        let limit = self.limits.max_trailing;
        if self.pos - from > limit {
            return Err(Error::Tar {
                offset: from.saturating_add(limit),
                entry: None,
                kind: TarErrorKind::TrailingTooLarge { from, limit },
            });
        }
        Ok(())
    }

    /// After [`Item::End`]: appends up to `n` trailing bytes to `buf` and
    /// says how many (0 once the input ends, or when there is no trailing
    /// data). Past [`ScanLimits::max_trailing`] bytes in all, an error.
    pub fn read_trailing(&mut self, buf: &mut Vec<u8>, n: u64) -> Result<u64> {
        let Some(want) = self.trailing_request(n) else {
            return Ok(0);
        };
        let got = self.pull(buf, want)?;
        self.check_trailing()?;
        Ok(got)
    }

    /// Like [`Scanner::read_trailing`], for input held in memory: `skip`
    /// advances the input by up to `n` bytes and says how many it passed.
    pub fn skip_trailing(
        &mut self,
        n: u64,
        skip: impl FnOnce(&mut R, u64) -> std::io::Result<u64>,
    ) -> Result<u64> {
        let Some(want) = self.trailing_request(n) else {
            return Ok(0);
        };
        let got = skip(&mut self.input, want).map_err(|source| Error::Read {
            offset: self.pos,
            source,
        })?;
        self.pos += got;
        self.check_trailing()?;
        Ok(got)
    }

    /// The next entry, or the end of the archive.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        if self.finished {
            return Ok(None);
        }
        self.pass_over_data()?;
        let raw_offset = self.pos;
        let mut raw = Vec::new();
        let pad_left = self.pad_left;
        self.pull_exact(&mut raw, pad_left, "padding after file data")?;
        self.pad_left = 0;
        self.current = None;

        let mut ext = Extensions::default();
        loop {
            let header_offset = self.pos;
            let before = raw.len();
            let got = self.pull(&mut raw, BLOCK as u64)?;
            if got == 0 && !ext.any {
                // A tar that stops after a complete entry, without end-of-archive blocks.
                self.finished = true;
                return Ok(Some(Item::End {
                    raw,
                    offset: raw_offset,
                }));
            }
            if got < BLOCK as u64 {
                let what = if ext.any {
                    "header after extension headers"
                } else {
                    "header"
                };
                return Err(self.err(
                    header_offset,
                    TarErrorKind::Truncated {
                        what,
                        needed: BLOCK as u64 - got,
                    },
                ));
            }
            let block: &[u8; BLOCK] = raw[before..].try_into().expect("pulled one block");
            let block = *block;
            let header = Header(&block);
            if header.is_zero() {
                if ext.any {
                    return Err(self.err(header_offset, TarErrorKind::DanglingExtension));
                }
                // What follows is streamed by the caller, never gathered here.
                self.trailing_from = Some(self.pos);
                self.finished = true;
                return Ok(Some(Item::End {
                    raw,
                    offset: raw_offset,
                }));
            }
            self.current = Some(header.display_name());
            header
                .verify_checksum(header_offset == 0)
                .map_err(|kind| self.err(header_offset, kind))?;
            let size = header
                .size()
                .map_err(|kind| self.err(header_offset, kind))?;
            match header.typeflag() {
                b'x' | b'g' => {
                    let records = self.pax_records(&mut raw, size, header_offset)?;
                    if header.typeflag() == b'g' {
                        if self.first_global.is_none() {
                            self.first_global = Some((header_offset, header.display_name()));
                        }
                        // Global records are defaults for what follows; the
                        // header stays in the stream and never becomes an entry.
                        apply_records(&mut self.globals, records);
                        continue;
                    }
                    apply_records(&mut ext.pax, records);
                    ext.any = true;
                }
                flag @ (b'L' | b'K') => self.long_name(&mut raw, size, flag, &mut ext)?,
                b'V' => {
                    self.volume_label(&mut raw, size, header_offset)?;
                    if ext.any {
                        return Err(self.err(header_offset, TarErrorKind::DanglingExtension));
                    }
                }
                _ => {
                    let at = Placement {
                        raw,
                        raw_offset,
                        header_offset,
                    };
                    let entry = self.entry(header, size, ext, at)?;
                    self.data_left = entry.size;
                    self.pad_left = padding(entry.size);
                    return Ok(Some(Item::Entry(Box::new(entry))));
                }
            }
        }
    }

    /// Reads a PAX header's payload (`x` or `g`) into `raw` and parses its records.
    fn pax_records(
        &mut self,
        raw: &mut Vec<u8>,
        size: u64,
        header_offset: u64,
    ) -> Result<Vec<pax::Record>> {
        let limit = self.limits.max_pax_size;
        let payload = self.extension_payload(raw, size, limit, "PAX header")?;
        pax::parse_records(&payload)
            .map_err(|why| self.err(header_offset, TarErrorKind::BadPaxRecord(why)))
    }

    /// Reads a GNU long name (`L`) or long link (`K`) into `raw` and `ext`.
    fn long_name(
        &mut self,
        raw: &mut Vec<u8>,
        size: u64,
        flag: u8,
        ext: &mut Extensions,
    ) -> Result<()> {
        let limit = self.limits.max_long_name;
        let mut payload = self.extension_payload(raw, size, limit, "GNU long name")?;
        if let Some(nul) = payload.iter().position(|&b| b == 0) {
            payload.truncate(nul);
        }
        if flag == b'L' {
            ext.long_name = Some(payload);
        } else {
            ext.long_link = Some(payload);
        }
        ext.any = true;
        Ok(())
    }

    /// Reads a GNU volume label's payload into `raw`: kept in the stream,
    /// not a file. It is gathered with the headers, so its size is capped
    /// like a long name's (GNU tar writes none at all).
    fn volume_label(&mut self, raw: &mut Vec<u8>, size: u64, header_offset: u64) -> Result<()> {
        let limit = self.limits.max_long_name;
        if size > limit {
            let what = "GNU volume label";
            let kind = TarErrorKind::TooLarge { what, size, limit };
            return Err(self.err(header_offset, kind));
        }
        self.pull_exact(raw, size + padding(size), "volume label")
    }

    /// Reads an extension header's payload (and padding) into `raw` and
    /// returns a copy of the payload.
    fn extension_payload(
        &mut self,
        raw: &mut Vec<u8>,
        size: u64,
        limit: u64,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        if size > limit {
            return Err(self.err(
                self.pos - BLOCK as u64,
                TarErrorKind::TooLarge { what, size, limit },
            ));
        }
        let start = raw.len();
        self.pull_exact(raw, size, what)?;
        let payload = raw[start..].to_vec();
        self.pull_exact(raw, padding(size), "padding after extension header")?;
        Ok(payload)
    }

    /// Folds the extension records `ext` into the entry whose own header is
    /// `header` (with `header_size` in its size field).
    fn entry(
        &mut self,
        header: Header<'_>,
        header_size: u64,
        ext: Extensions,
        at: Placement,
    ) -> Result<Entry> {
        let Extensions {
            pax,
            long_name,
            long_link,
            ..
        } = ext;
        // PAX beats GNU, which beats the header's own fields.
        let raw_name = pax
            .get(&b"path"[..])
            .cloned()
            .or(long_name)
            .unwrap_or_else(|| header.path());
        let raw_link = pax
            .get(&b"linkpath"[..])
            .cloned()
            .or(long_link)
            .unwrap_or_else(|| header.link_name());
        let display = lossy_utf8(&raw_name);
        self.current = Some(display.clone());
        let offset = at.header_offset;
        reject_sparse(header.typeflag(), &pax, &display, offset)?;

        let fields = Fields {
            header: &header,
            pax: &pax,
            globals: &self.globals,
            offset,
            entry: &display,
        };
        let kind = entry_kind(header.typeflag(), &raw_name).map_err(|k| fields.error(k))?;
        let size = fields.size(header_size)?;
        let mtime = fields.mtime()?;
        let (header_atime, header_ctime) = header.atime_ctime();
        let atime = fields.time(b"atime", header_atime);
        let ctime = fields.time(b"ctime", header_ctime);
        let mode = header.mode().map_err(|k| fields.error(k))?;
        let uid = fields.int("uid", header.uid())?;
        let gid = fields.int("gid", header.gid())?;
        let dev_major = header.dev_major().map_err(|k| fields.error(k))?;
        let dev_minor = header.dev_minor().map_err(|k| fields.error(k))?;
        let uname = fields
            .record(b"uname")
            .cloned()
            .unwrap_or_else(|| header.user_name());
        let gname = fields
            .record(b"gname")
            .cloned()
            .unwrap_or_else(|| header.group_name());

        let mut texts = Texts {
            policy: self.names,
            entry: &display,
            offset,
            warnings: Vec::new(),
        };
        let name = texts.decode(&raw_name, "name")?;
        let link_name = texts.decode(&raw_link, "link name")?;
        let user_name = texts.decode(&uname, "user name")?;
        let group_name = texts.decode(&gname, "group name")?;
        let xattrs = texts.xattrs(&pax)?;
        Ok(Entry {
            raw: at.raw,
            raw_offset: at.raw_offset,
            header_offset: offset,
            raw_name,
            name,
            kind,
            size,
            mode,
            uid,
            gid,
            user_name,
            group_name,
            mtime,
            atime,
            ctime,
            link_name,
            dev_major,
            dev_minor,
            xattrs,
            warnings: texts.warnings,
        })
    }
}

/// Where an entry's bytes sit in the input (see the fields of [`Entry`]).
struct Placement {
    raw: Vec<u8>,
    raw_offset: u64,
    header_offset: u64,
}

/// Refuses both sparse formats (see [`Error::SparseEntry`]).
fn reject_sparse(
    typeflag: u8,
    pax: &BTreeMap<Vec<u8>, Vec<u8>>,
    entry: &str,
    offset: u64,
) -> Result<()> {
    let format = if typeflag == b'S' {
        "old GNU sparse"
    } else if pax.keys().any(|k| k.starts_with(b"GNU.sparse.")) {
        "PAX GNU.sparse"
    } else {
        return Ok(());
    };
    Err(Error::SparseEntry {
        entry: entry.to_string(),
        offset,
        format,
    })
}

/// The kind of file a type flag names (a v7 regular file whose name ends in
/// `/` is a directory).
fn entry_kind(typeflag: u8, raw_name: &[u8]) -> Result<EntryKind, TarErrorKind> {
    Ok(match typeflag {
        b'0' | b'7' => EntryKind::Regular,
        0 if raw_name.ends_with(b"/") => EntryKind::Directory,
        0 => EntryKind::Regular,
        b'1' => EntryKind::Hardlink,
        b'2' => EntryKind::Symlink,
        b'3' => EntryKind::CharDevice,
        b'4' => EntryKind::BlockDevice,
        b'5' | b'D' => EntryKind::Directory,
        b'6' => EntryKind::Fifo,
        other => return Err(TarErrorKind::UnsupportedType(other as char)),
    })
}

/// An entry's own PAX records over the global ones over its header, for
/// the numeric fields; errors name the entry.
struct Fields<'a> {
    header: &'a Header<'a>,
    pax: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    globals: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    offset: u64,
    entry: &'a str,
}

impl Fields<'_> {
    fn error(&self, kind: TarErrorKind) -> Error {
        Error::Tar {
            offset: self.offset,
            entry: Some(self.entry.to_string()),
            kind,
        }
    }

    fn bad_record(&self, key: &str, value: &[u8], expected: &str) -> Error {
        let value = lossy_utf8(value);
        let why = format!("{key} value {value:?} is not {expected}");
        self.error(TarErrorKind::BadPaxRecord(why))
    }

    fn record(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.pax.get(key).or_else(|| self.globals.get(key))
    }

    /// A number from the records, else `fallback` from the header.
    fn int(&self, key: &'static str, fallback: Result<i64, TarErrorKind>) -> Result<i64> {
        match self.record(key.as_bytes()) {
            Some(v) => pax::parse_int(v).ok_or_else(|| self.bad_record(key, v, "a number")),
            None => fallback.map_err(|k| self.error(k)),
        }
    }

    /// The number of data bytes after the header.
    fn size(&self, header_size: u64) -> Result<u64> {
        // Only the entry's own PAX size counts: a global size would desynchronise the stream.
        let size = match self.pax.get(&b"size"[..]) {
            Some(v) => pax::parse_int(v)
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| self.bad_record("size", v, "a size"))?,
            None => header_size,
        };
        // Header-only types carry no data whatever their size field says (Go's rule).
        Ok(match self.header.typeflag() {
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => 0,
            _ => size,
        })
    }

    /// An optional time: the PAX record `key`, else the header's seconds.
    /// A malformed record counts as absent: only the containers TOC uses
    /// these, and gzip conversions never refused such a tar.
    fn time(&self, key: &[u8], header: Option<i64>) -> Option<(i64, u32)> {
        match self.record(key) {
            Some(v) => pax::parse_time(v),
            None => header.map(|s| (s, 0)),
        }
    }

    fn mtime(&self) -> Result<(i64, u32)> {
        match self.record(b"mtime") {
            Some(v) => pax::parse_time(v).ok_or_else(|| self.bad_record("mtime", v, "a time")),
            None => Ok((self.header.mtime().map_err(|k| self.error(k))?, 0)),
        }
    }
}

/// Decodes an entry's name-like fields under the [`NamePolicy`], gathering
/// the warnings.
struct Texts<'a> {
    policy: NamePolicy,
    entry: &'a str,
    offset: u64,
    warnings: Vec<String>,
}

impl Texts<'_> {
    fn decode(&mut self, bytes: &[u8], field: &'static str) -> Result<String> {
        let (entry, offset) = (self.entry, self.offset);
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) if self.policy == NamePolicy::Strict => Err(Error::NonUtf8 {
                entry: entry.to_string(),
                offset,
                field,
            }),
            Err(_) => {
                self.warnings.push(format!(
                    "entry {entry:?} at byte {offset}: {field} is not valid UTF-8; \
                     each invalid byte is U+FFFD in the TOC (tar bytes unchanged)"
                ));
                Ok(lossy_utf8(bytes))
            }
        }
    }

    /// The `SCHILY.xattr.*` records, by name.
    fn xattrs(&mut self, pax: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<BTreeMap<String, Vec<u8>>> {
        let mut xattrs = BTreeMap::new();
        for (key, value) in pax {
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.insert(self.decode(name, "xattr key")?, value.clone());
            }
        }
        Ok(xattrs)
    }
}

/// Later records override earlier ones; an empty value deletes the key
/// (POSIX), except for xattrs, where an empty value is a value (as in the
/// reference, which reads xattrs from the raw records).
fn apply_records(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, records: Vec<pax::Record>) {
    for (key, value) in records {
        if value.is_empty() && !key.starts_with(b"SCHILY.xattr.") {
            map.remove(&key);
        } else {
            map.insert(key, value);
        }
    }
}

/// Zero bytes after `size` data bytes up to the next block boundary.
pub fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block with the given name, type and size (ustar unless `magic` says otherwise).
    fn header(name: &[u8], typeflag: u8, size: u64, magic: &[u8; 8]) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000001\0");
        h[116..124].copy_from_slice(b"0000002\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000017\0");
        h[156] = typeflag;
        h[257..265].copy_from_slice(magic);
        h[265..270].copy_from_slice(b"user\0");
        seal(&mut h);
        h
    }

    fn seal(h: &mut [u8; BLOCK]) {
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    const USTAR: &[u8; 8] = b"ustar\x0000";
    const GNU: &[u8; 8] = b"ustar  \0";
    const V7: &[u8; 8] = &[0; 8];

    fn with_data(mut out: Vec<u8>, data: &[u8]) -> Vec<u8> {
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    fn pax(records: &str, typeflag: u8) -> Vec<u8> {
        with_data(
            header(b"pax", typeflag, records.len() as u64, USTAR).to_vec(),
            records.as_bytes(),
        )
    }

    fn entries(tar: &[u8]) -> Result<Vec<Entry>> {
        let mut s = Scanner::new(tar, NamePolicy::Replace, ScanLimits::default());
        let mut out = Vec::new();
        while let Some(item) = s.next_item()? {
            match item {
                Item::Entry(e) => {
                    let mut data = Vec::new();
                    s.read_data(&mut data, e.size)?;
                    out.push(*e);
                }
                Item::End { .. } => break,
            }
        }
        Ok(out)
    }

    #[test]
    fn star_prefix_and_v7_directories() {
        let mut star = header(b"name", b'0', 0, USTAR);
        star[345..351].copy_from_slice(b"prefix");
        star[508..512].copy_from_slice(b"tar\0");
        seal(&mut star);
        let v7 = header(b"olddir/", 0, 0, V7);
        let mut tar = star.to_vec();
        tar.extend_from_slice(&v7);
        let e = entries(&tar).unwrap();
        assert_eq!(e[0].name, "prefix/name");
        assert_eq!(
            (e[1].kind, e[1].user_name.as_str()),
            (EntryKind::Directory, "")
        );
        assert_eq!(e[0].user_name, "user");
    }

    #[test]
    fn extension_precedence_and_globals() {
        let mut tar = pax("16 uname=global\n12 uid=4242\n", b'g');
        tar.extend(with_data(
            header(b"././@LongLink", b'L', 9, GNU).to_vec(),
            b"gnu-long\0",
        ));
        tar.extend(pax("14 path=paxed\n", b'x'));
        tar.extend_from_slice(&header(b"short", b'0', 0, USTAR));
        tar.extend(with_data(
            header(b"././@LongLink", b'L', 9, GNU).to_vec(),
            b"gnu-only\0",
        ));
        tar.extend_from_slice(&header(b"short2", b'0', 0, GNU));
        let e = entries(&tar).unwrap();
        assert_eq!(e.len(), 2, "global and extension headers are not entries");
        assert_eq!(
            (e[0].name.as_str(), e[0].uid, e[0].user_name.as_str()),
            ("paxed", 4242, "global")
        );
        assert_eq!((e[1].name.as_str(), e[1].uid), ("gnu-only", 4242));
        assert_eq!(e[0].gid, 2);
    }

    #[test]
    fn header_only_types_carry_no_data_but_dumpdirs_do() {
        let mut tar = header(b"link", b'2', 700, USTAR).to_vec();
        tar.extend(with_data(
            header(b"dump/", b'D', 5, GNU).to_vec(),
            b"Yabc\0",
        ));
        tar.extend_from_slice(&header(b"after", b'0', 0, USTAR));
        let e = entries(&tar).unwrap();
        assert_eq!((e[0].kind, e[0].size), (EntryKind::Symlink, 0));
        assert_eq!((e[1].kind, e[1].size), (EntryKind::Directory, 5));
        assert_eq!(e[2].name, "after");
    }

    #[test]
    fn trailing_bytes_stream_after_the_first_zero_block() {
        let mut tar = header(b"a", b'0', 0, USTAR).to_vec();
        tar.extend_from_slice(&[0u8; BLOCK]);
        tar.extend_from_slice(b"garbage after a lone zero block");
        let mut s = Scanner::new(&tar[..], NamePolicy::Replace, ScanLimits::default());
        assert!(matches!(s.next_item().unwrap(), Some(Item::Entry(_))));
        match s.next_item().unwrap() {
            Some(Item::End { raw, offset }) => {
                assert_eq!(offset, BLOCK as u64);
                assert_eq!(raw, &tar[BLOCK..2 * BLOCK], "only the zero block");
            }
            other => panic!("{other:?}"),
        }
        let mut rest = Vec::new();
        while s.read_trailing(&mut rest, 5).unwrap() > 0 {}
        assert_eq!(rest, &tar[2 * BLOCK..]);
        assert!(s.next_item().unwrap().is_none());
    }

    /// Reads every trailing byte, `piece` at a time.
    fn trailing(tar: &[u8], limits: ScanLimits, piece: u64) -> Result<Vec<u8>> {
        let mut s = Scanner::new(tar, NamePolicy::Replace, limits);
        while let Some(Item::Entry(_)) = s.next_item()? {}
        let mut rest = Vec::new();
        while s.read_trailing(&mut rest, piece)? > 0 {}
        Ok(rest)
    }

    #[test]
    fn trailing_data_is_capped() {
        let mut tar = header(b"a", b'0', 0, USTAR).to_vec();
        tar.extend_from_slice(&[0u8; 3 * BLOCK]);
        let limits = |max_trailing| ScanLimits {
            max_trailing,
            ..ScanLimits::default()
        };
        // Exactly at the cap is fine, whatever the piece size.
        for piece in [1, 100, 2 * BLOCK as u64, u64::MAX] {
            let rest = trailing(&tar, limits(2 * BLOCK as u64), piece).unwrap();
            assert_eq!(rest.len(), 2 * BLOCK);
        }
        for piece in [1, 100, u64::MAX] {
            let err = trailing(&tar, limits(2 * BLOCK as u64 - 1), piece).unwrap_err();
            match &err {
                Error::Tar {
                    offset,
                    kind: TarErrorKind::TrailingTooLarge { from, limit },
                    ..
                } => {
                    assert_eq!((*from, *limit), (2 * BLOCK as u64, 2 * BLOCK as u64 - 1));
                    assert_eq!(*offset, 4 * BLOCK as u64 - 1, "where the cap was passed");
                }
                other => panic!("{other}"),
            }
        }
        // Data left unread is passed over, not gathered into the next raw.
        let mut big = header(b"big", b'0', 3 * BLOCK as u64, USTAR).to_vec();
        big.extend_from_slice(&[7u8; 3 * BLOCK]);
        big.extend_from_slice(&header(b"next", b'0', 0, USTAR));
        let mut s = Scanner::new(&big[..], NamePolicy::Replace, ScanLimits::default());
        assert!(matches!(s.next_item().unwrap(), Some(Item::Entry(_))));
        match s.next_item().unwrap() {
            Some(Item::Entry(e)) => {
                assert_eq!((e.raw.len(), e.raw_offset), (BLOCK, 4 * BLOCK as u64))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_what_cannot_be_represented() {
        let mut dangling = pax("14 path=paxed\n", b'x');
        dangling.extend_from_slice(&[0u8; 1024]);
        let err = entries(&dangling).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Tar {
                    kind: TarErrorKind::DanglingExtension,
                    ..
                }
            ),
            "{err}"
        );
        let err = entries(&header(b"weird", b'Z', 0, USTAR)).unwrap_err();
        assert!(
            err.to_string().contains("unsupported entry type 'Z'"),
            "{err}"
        );
        let err = entries(&header(b"sparse", b'S', 0, GNU)).unwrap_err();
        assert!(matches!(err, Error::SparseEntry { .. }), "{err}");
        let mut big = pax("14 path=paxed\n", b'x');
        big[124..136].copy_from_slice(format!("{:011o}\0", 1u64 << 30).as_bytes());
        seal((&mut big[..BLOCK]).try_into().unwrap());
        let err = entries(&big).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        // A volume label is held with the headers: its size is capped too.
        let label = header(b"label", b'V', 1 << 30, GNU);
        let err = entries(&label).unwrap_err();
        assert!(
            err.to_string()
                .contains("GNU volume label of 1073741824 bytes exceeds"),
            "{err}"
        );
        let bad_name = header(b"bad\xffname", b'0', 0, USTAR);
        let mut strict = Scanner::new(&bad_name[..], NamePolicy::Strict, ScanLimits::default());
        assert!(matches!(strict.next_item(), Err(Error::NonUtf8 { .. })));
    }
}
