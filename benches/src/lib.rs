//! Inputs for the benchmarks: synthetic layers, and the members of a real one.
//!
//! [`synthetic_layer`] builds a tar shaped like a real container layer (a
//! directory tree, thousands of small semi-compressible files, a few large
//! files, symlinks and hardlinks), deterministically from a seed, so that
//! benchmark inputs are the same on every run and every machine without
//! shipping fixtures. [`members::plan`] gives the gzip members `convert`
//! would make from a real tar, for the codec-only measurements.

use std::io;

pub mod import;
pub mod members;
pub mod tool;

/// Smallest small-file size, in bytes.
pub const SMALL_MIN: usize = 100;
/// Largest small-file size, in bytes (just under 64 KiB).
pub const SMALL_MAX: usize = 63_600;

/// Builds a deterministic synthetic layer: an uncompressed tar with GNU
/// headers.
///
/// Shape, in archive order:
///
/// - **Directories**: a fixed skeleton (`bin`, `etc`, `usr/lib`,
///   `usr/share/doc`, `var/lib`, …) plus one "package" directory per ~20
///   small files under one of the skeleton's directories, a third of them
///   with a nested subdirectory. Parents always come before their children;
///   each directory entry is followed by its own files, as a file-system walk
///   would emit them. Modes 0755.
/// - **`small_files` small files**, spread over the directories. Sizes are
///   log-uniform between [`SMALL_MIN`] (100 B) and [`SMALL_MAX`] (~62 KiB):
///   heavily skewed towards small files (median ~2.6 KiB, mean ~10 KiB),
///   like the configuration, source, documentation and script files of a
///   real layer. Contents are semi-compressible: runs of text built from a
///   fixed vocabulary of ~100 source/config-like words, broken by runs of
///   random bytes (each file has its own share of random runs, 0–40%):
///   gzip level 9 shrinks them about 2× overall. About 1% of the files have
///   paths longer than 100 bytes (GNU long-name entries); files under
///   `bin`-like directories are 0755, others 0644; owners are `root` or
///   `app`.
/// - **`large_files` large files of `large_size` bytes** each (e.g. shared
///   libraries, data files), emitted in the middle of the archive, in
///   `usr/lib` and `opt/data`. Built from 4 KiB blocks: ~35% random
///   (incompressible), ~45% vocabulary text, ~20% tables of small integers
///   (very compressible): about 1.7× at gzip level 9.
/// - **Symlinks**: about one per 33 small files, next to a file they point to
///   with a relative target (`libx.so -> libx.so.1` style); one in five
///   sits in the parent directory instead and points down into the file's
///   directory (`x.link -> pkg/x.so.1`).
/// - **Hardlinks**: about one per 100 small files, in `usr/bin` at the end of
///   the archive, each to an earlier regular file.
/// - The two zero blocks that end a tar.
///
/// Modification times, owners and modes vary but come from the same seeded
/// xorshift generator as everything else: the same arguments always give
/// the same bytes. The tar size is roughly
/// `small_files × 11 KiB + large_files × large_size`; `(3000, 3, 5.5 MiB, _)`
/// gives ~48.5 MiB (about 3,350 TOC entries), about 1.9× smaller once
/// converted at level 9.
///
/// ```
/// let a = estargz_benches::synthetic_layer(50, 1, 100_000, 7);
/// let b = estargz_benches::synthetic_layer(50, 1, 100_000, 7);
/// assert_eq!(a, b);
/// assert_eq!(a.len() % 512, 0);
/// ```
pub fn synthetic_layer(
    small_files: usize,
    large_files: usize,
    large_size: usize,
    seed: u64,
) -> Vec<u8> {
    LayerBuilder::new(seed)
        .build(small_files, large_files, large_size)
        .expect("writing a tar into memory cannot fail")
}

/// A small, fast, deterministic generator (xorshift64*), seeded through
/// splitmix64 so that any seed, 0 included, gives a good state.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..hi` (`lo < hi`).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Words text-like contents are made of: source code, configuration,
/// documentation.
const VOCABULARY: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "that",
    "with",
    "this",
    "return",
    "static",
    "const",
    "int",
    "char",
    "void",
    "struct",
    "if",
    "else",
    "while",
    "for",
    "break",
    "continue",
    "include",
    "define",
    "import",
    "from",
    "def",
    "class",
    "self",
    "None",
    "True",
    "False",
    "null",
    "true",
    "false",
    "function",
    "var",
    "let",
    "export",
    "module",
    "require",
    "value",
    "error",
    "errors",
    "config",
    "path",
    "usr",
    "lib",
    "share",
    "bin",
    "etc",
    "data",
    "version",
    "license",
    "copyright",
    "Apache",
    "GNU",
    "General",
    "Public",
    "License",
    "Software",
    "Foundation",
    "without",
    "warranty",
    "distributed",
    "under",
    "terms",
    "see",
    "file",
    "files",
    "directory",
    "name",
    "type",
    "size",
    "default",
    "options",
    "enable",
    "disable",
    "package",
    "install",
    "build",
    "test",
    "debug",
    "release",
    "string",
    "buffer",
    "length",
    "index",
    "count",
    "0",
    "1",
    "2",
    "16",
    "255",
    "1024",
    "0x00",
    "0xff",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    "=",
    "==",
    "->",
    "::",
    "#",
    "//",
    "/*",
    "*/",
    "+",
    "-",
    "*",
    "<",
    ">",
];

/// Directories every layer has, parents first.
const SKELETON: &[&str] = &[
    "bin",
    "etc",
    "etc/default",
    "lib",
    "opt",
    "opt/data",
    "usr",
    "usr/bin",
    "usr/include",
    "usr/lib",
    "usr/lib/python3",
    "usr/lib/python3/dist-packages",
    "usr/share",
    "usr/share/doc",
    "usr/share/locale",
    "var",
    "var/lib",
];

/// Skeleton directories that receive package directories.
const PACKAGE_PARENTS: &[&str] = &[
    "etc",
    "opt",
    "usr/include",
    "usr/lib",
    "usr/lib/python3/dist-packages",
    "usr/share",
    "usr/share/doc",
    "usr/share/locale",
    "var/lib",
];

const EXTENSIONS: &[&str] = &[
    "txt", "conf", "h", "c", "py", "js", "json", "md", "html", "so.1", "mo", "sh", "xml", "pyc",
    "gz",
];

/// Base of the modification times (2023-11-14).
const MTIME_BASE: u64 = 1_700_000_000;

struct Dir {
    path: String,
    executable: bool,
}

struct LayerBuilder {
    rng: XorShift,
    tar: tar::Builder<Vec<u8>>,
    /// Regular files written so far (hardlink targets).
    files: Vec<String>,
}

impl LayerBuilder {
    fn new(seed: u64) -> LayerBuilder {
        LayerBuilder {
            rng: XorShift::new(seed),
            tar: tar::Builder::new(Vec::new()),
            files: Vec::new(),
        }
    }

    fn build(
        mut self,
        small_files: usize,
        large_files: usize,
        large_size: usize,
    ) -> io::Result<Vec<u8>> {
        let dirs = self.directories(small_files);
        // How many small files each directory gets: uniformly at random.
        let mut per_dir = vec![0usize; dirs.len()];
        for _ in 0..small_files {
            per_dir[self.rng.below(dirs.len() as u64) as usize] += 1;
        }
        let mut serial = 0usize;
        for (i, dir) in dirs.iter().enumerate() {
            self.directory(&dir.path)?;
            for _ in 0..per_dir[i] {
                serial += 1;
                self.small_file(dir, serial)?;
            }
            if i == dirs.len() / 2 {
                for n in 0..large_files {
                    self.large_file(n, large_size)?;
                }
            }
        }
        self.hardlinks(small_files / 100 + 1)?;
        self.tar.into_inner()
    }

    /// The directory list, parents before children.
    fn directories(&mut self, small_files: usize) -> Vec<Dir> {
        let mut dirs: Vec<Dir> = SKELETON
            .iter()
            .map(|p| Dir {
                path: p.to_string(),
                executable: p.ends_with("bin"),
            })
            .collect();
        let packages = small_files / 20 + 1;
        let mut nested = Vec::new();
        for n in 0..packages {
            let parent = *self.rng.pick(PACKAGE_PARENTS);
            let word = self.word_ident();
            let path = format!("{parent}/{word}-{n}");
            if self.rng.chance(33) {
                let sub = self.word_ident();
                nested.push(Dir {
                    path: format!("{path}/{sub}"),
                    executable: false,
                });
            }
            dirs.push(Dir {
                path,
                executable: false,
            });
        }
        dirs.extend(nested);
        dirs
    }

    /// A vocabulary word usable in a file name.
    fn word_ident(&mut self) -> &'static str {
        loop {
            let w = *self.rng.pick(VOCABULARY);
            if w.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return w;
            }
        }
    }

    fn header(&mut self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(MTIME_BASE + self.rng.below(30_000_000));
        let (id, name) = if self.rng.chance(90) {
            (0, "root")
        } else {
            (1000, "app")
        };
        h.set_uid(id);
        h.set_gid(id);
        h.set_username(name).expect("short ASCII user name");
        h.set_groupname(name).expect("short ASCII group name");
        h
    }

    fn directory(&mut self, path: &str) -> io::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        self.tar
            .append_data(&mut h, format!("{path}/"), io::empty())
    }

    fn small_file(&mut self, dir: &Dir, serial: usize) -> io::Result<()> {
        let word = self.word_ident();
        let ext = *self.rng.pick(EXTENSIONS);
        let name = if self.rng.chance(1) {
            // A long name, as deep Python or Java trees have.
            let mut long = String::new();
            while long.len() < 110 {
                long.push_str(self.word_ident());
                long.push('_');
            }
            format!("{}/{long}{serial}.{ext}", dir.path)
        } else {
            format!("{}/{word}{serial}.{ext}", dir.path)
        };
        let size = self.small_size();
        let random_share = self.rng.below(41);
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            let run = self.rng.range(32, 1024).min(size - data.len());
            if self.rng.below(100) < random_share {
                self.random_bytes(&mut data, run);
            } else {
                self.text(&mut data, run);
            }
        }
        let mode = if dir.executable || ext == "sh" {
            0o755
        } else {
            0o644
        };
        let mut h = self.header(tar::EntryType::Regular, mode, size as u64);
        self.tar.append_data(&mut h, &name, &data[..])?;
        self.files.push(name.clone());
        // Now and then a symlink to it, as `libx.so -> libx.so.1`, or from a
        // sibling directory.
        if self.rng.chance(3) {
            let base = name.rsplit('/').next().unwrap_or(&name).to_string();
            let (link, target) = if self.rng.chance(80) {
                (format!("{}/{word}{serial}.link", dir.path), base)
            } else {
                let parent = dir.path.rsplit_once('/').map_or("", |(p, _)| p);
                let leaf = dir.path.rsplit('/').next().unwrap_or(&dir.path);
                let link = if parent.is_empty() {
                    format!("{word}{serial}.link")
                } else {
                    format!("{parent}/{word}{serial}.link")
                };
                (link, format!("{leaf}/{base}"))
            };
            let mut h = self.header(tar::EntryType::Symlink, 0o777, 0);
            self.tar.append_link(&mut h, link, target)?;
        }
        Ok(())
    }

    /// A log-uniform size in `SMALL_MIN..=SMALL_MAX`, in integers only so
    /// that it is the same on every platform: `100 × 2^(x/16)` for `x` in
    /// `0..150`, with a few percent of jitter.
    fn small_size(&mut self) -> usize {
        // 2^(i/16), × 1000.
        const FRACTION: [usize; 16] = [
            1000, 1044, 1091, 1139, 1189, 1242, 1297, 1354, 1414, 1477, 1542, 1610, 1682, 1756,
            1834, 1915,
        ];
        let x = self.rng.below(150) as usize;
        let base = (SMALL_MIN << (x / 16)) * FRACTION[x % 16] / 1000;
        let jitter = base * self.rng.below(44) as usize / 1000;
        (base + jitter).clamp(SMALL_MIN, SMALL_MAX)
    }

    fn large_file(&mut self, n: usize, size: usize) -> io::Result<()> {
        const BLOCK: usize = 4096;
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            let len = BLOCK.min(size - data.len());
            match self.rng.below(100) {
                0..=34 => self.random_bytes(&mut data, len),
                35..=79 => self.text(&mut data, len),
                _ => {
                    // A table of small, slowly growing integers.
                    let mut v = self.rng.below(1 << 16) as u32;
                    let end = data.len() + len;
                    while data.len() < end {
                        v = v.wrapping_add(self.rng.below(8) as u32);
                        let bytes = v.to_le_bytes();
                        let take = bytes.len().min(end - data.len());
                        data.extend_from_slice(&bytes[..take]);
                    }
                }
            }
        }
        let name = if n.is_multiple_of(2) {
            format!("usr/lib/libsynthetic{n}.so.1")
        } else {
            format!("opt/data/blob{n}.bin")
        };
        let mut h = self.header(tar::EntryType::Regular, 0o644, size as u64);
        self.tar.append_data(&mut h, &name, &data[..])?;
        self.files.push(name);
        Ok(())
    }

    fn hardlinks(&mut self, count: usize) -> io::Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        for n in 0..count {
            let target = self.rng.pick(&self.files).clone();
            let mut h = self.header(tar::EntryType::Link, 0o644, 0);
            self.tar
                .append_link(&mut h, format!("usr/bin/hardlink{n}"), target)?;
        }
        Ok(())
    }

    fn random_bytes(&mut self, out: &mut Vec<u8>, len: usize) {
        let start = out.len();
        out.resize(start + len, 0);
        self.rng.fill(&mut out[start..]);
    }

    /// `len` bytes of vocabulary words, separated by spaces, with line
    /// breaks and indentation now and then.
    fn text(&mut self, out: &mut Vec<u8>, len: usize) {
        let end = out.len() + len;
        while out.len() < end {
            let word = self.rng.pick(VOCABULARY).as_bytes();
            let take = word.len().min(end - out.len());
            out.extend_from_slice(&word[..take]);
            if out.len() < end {
                let sep: &[u8] = match self.rng.below(16) {
                    0 => b"\n",
                    1 => b"\n    ",
                    _ => b" ",
                };
                let take = sep.len().min(end - out.len());
                out.extend_from_slice(&sep[..take]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = synthetic_layer(200, 1, 300_000, 1);
        assert_eq!(a, synthetic_layer(200, 1, 300_000, 1));
        assert_ne!(a, synthetic_layer(200, 1, 300_000, 2));
    }

    #[test]
    fn has_every_kind_of_entry() {
        let tar = synthetic_layer(500, 2, 200_000, 3);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut counts = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            *counts
                .entry(format!("{:?}", entry.header().entry_type()))
                .or_insert(0usize) += 1;
        }
        assert_eq!(counts["Regular"], 502);
        assert!(counts["Directory"] > 20);
        assert!(counts["Symlink"] > 0);
        assert!(counts["Link"] > 0);
    }
}
