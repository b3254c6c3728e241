//! `index-memory [--entries N] [--runs R] [--format gzip|zstd|zstd-containers]`
//!
//! What an opened blob keeps in memory per TOC entry (issue #20's goal is
//! at most 400 bytes). Builds a layer of `N` (default 200,000) entries
//! deterministically — nested directories, 20–60 byte paths, regular files
//! of one chunk each, symlinks, hardlinks, a few xattrs, varied owners,
//! modes and times — converts it, then opens it with `Blob::open` `R`
//! times (default 5) and reports, from a counting global allocator:
//!
//! - `retained_bytes_per_entry`: heap live after `open` minus before (the
//!   blob's own bytes, allocated before, are not counted);
//! - `peak_bytes_per_entry`: the highest heap during `open`, above before;
//! - `peak_rss_bytes_per_entry`: the kernel's view of the same, in a
//!   fresh process that only reads the blob and opens it: the resident
//!   set's high-water mark during `open` (reset through
//!   `/proc/self/clear_refs`) above the resident set before (in this
//!   process, pages the allocator kept from building the layer would be
//!   reused unseen); `retained_rss_bytes_per_entry` is the resident
//!   set's growth once `open` returned, allocator overhead included;
//! - `open_cpu_seconds`: the thread's CPU time of each `open` (from
//!   `/proc/thread-self/schedstat`), smallest and median;
//! - `after_toc_bytes_per_entry`: heap live once `Blob::toc()` has been
//!   called as well (it is parsed on first use);
//! - the path through a whole parsed TOC, which `verify` takes and `open`
//!   took before it streamed: `TocInfo::read`, `Index::build` and dropping
//!   the parsed TOC, each timed alone (medians).
//!
//! Prints one JSON object on stdout.

use estargz_core::{Blob, Compression, Converter, Index, OpenOptions, TocFormat, TocInfo};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes live and the most ever live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call goes to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// xorshift64*: the same layer on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn word(&mut self, min: usize, max: usize) -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
        let len = min + self.below((max - min + 1) as u64) as usize;
        (0..len)
            .map(|_| LETTERS[self.below(LETTERS.len() as u64) as usize] as char)
            .collect()
    }
}

fn header(kind: tar::EntryType, mode: u32, rng: &mut Rng) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    let owner = rng.below(10);
    let (id, name) = match owner {
        0 => (1000, "app"),
        1 => (33, "www-data"),
        _ => (0, "root"),
    };
    h.set_uid(id);
    h.set_gid(id);
    // Both names stay within the header's fields.
    let _ = h.set_username(name);
    let _ = h.set_groupname(name);
    h.set_mtime(1_600_000_000 + rng.below(100_000_000));
    h.set_size(0);
    h
}

/// A layer of about `entries` TOC entries: about 4% directories (2 to 5
/// deep), 1% symlinks, 0.5% hardlinks, the rest files of 0–400 bytes.
fn layer(entries: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut written = 0;
    while written < entries {
        let new_dir = dirs.is_empty() || rng.below(25) == 0;
        if new_dir {
            let parent = if dirs.is_empty() || rng.below(8) == 0 {
                String::new()
            } else {
                let p = &dirs[dirs.len() - 1 - rng.below(dirs.len().min(40) as u64) as usize];
                if p.matches('/').count() >= 4 {
                    String::new()
                } else {
                    format!("{p}/")
                }
            };
            let dir = format!("{parent}{}", rng.word(3, 10));
            let mut h = header(tar::EntryType::Directory, 0o755, &mut rng);
            tar.append_data(&mut h, format!("{dir}/"), std::io::empty())
                .expect("dir");
            dirs.push(dir);
            written += 1;
            continue;
        }
        let dir = dirs[dirs.len() - 1 - rng.below(dirs.len().min(8) as u64) as usize].clone();
        let roll = rng.below(200);
        let name = format!("{dir}/{}.{}", rng.word(6, 24), rng.word(1, 4));
        if roll < 2 && !files.is_empty() {
            let target = files[rng.below(files.len() as u64) as usize].clone();
            let mut h = header(tar::EntryType::Symlink, 0o777, &mut rng);
            tar.append_link(&mut h, &name, format!("/{target}"))
                .expect("symlink");
        } else if roll == 2 && !files.is_empty() {
            let target = files[rng.below(files.len() as u64) as usize].clone();
            let mut h = header(tar::EntryType::Link, 0o644, &mut rng);
            tar.append_link(&mut h, &name, target).expect("hardlink");
        } else {
            if roll == 3 {
                let xattr = [("SCHILY.xattr.user.origin", &b"generated"[..])];
                tar.append_pax_extensions(xattr).expect("pax");
            }
            let size = rng.below(400) as usize;
            let data: Vec<u8> = (0..size).map(|_| rng.below(64) as u8 + b' ').collect();
            let mode = if rng.below(6) == 0 { 0o755 } else { 0o644 };
            let mut h = header(tar::EntryType::Regular, mode, &mut rng);
            h.set_size(size as u64);
            tar.append_data(&mut h, &name, &data[..]).expect("file");
            files.push(name);
        }
        written += 1;
    }
    tar.into_inner().expect("tar")
}

/// A field of `/proc/self/status`, in bytes (`None` where there is none).
fn status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Starts a new resident-set high-water mark (`VmHWM`) from the current set.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time this thread has used, in seconds.
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// `index-memory --open-rss BLOB`: opens the blob in this fresh process
/// and prints the resident set's growth at its peak during `open` and
/// after it, in bytes.
fn open_rss(path: &str) {
    let blob = std::fs::read(path).expect("read the blob");
    let before = reset_peak_rss().then(|| status_bytes("VmRSS:")).flatten();
    let opened = Blob::open(blob, &OpenOptions::default()).expect("open");
    let growth = |field| {
        let now = status_bytes(field);
        before.zip(now).map(|(b, n)| n.saturating_sub(b))
    };
    let (peak, after) = (growth("VmHWM:"), growth("VmRSS:"));
    println!("{}", serde_json::json!([peak, after]));
    drop(opened);
}

/// [`open_rss`] of `blob` in a child process: peak and retained growth.
fn rss_of(blob: &[u8]) -> Option<(usize, usize)> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("blob");
    std::fs::write(&path, blob).ok()?;
    let out = std::process::Command::new(std::env::current_exe().ok()?)
        .arg("--open-rss")
        .arg(&path)
        .output()
        .ok()?;
    match serde_json::from_slice::<[Option<usize>; 2]>(&out.stdout).ok()? {
        [Some(peak), Some(after)] => Some((peak, after)),
        _ => None,
    }
}

/// `--entries`, `--runs` and `--format`.
fn args() -> (usize, usize, String) {
    let mut entries = 200_000usize;
    let mut runs = 5usize;
    let mut format = String::from("gzip");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        let number = value.as_deref().and_then(|v| v.parse().ok());
        match (a.as_str(), number, value) {
            ("--entries", Some(v), _) => entries = v,
            ("--runs", Some(v), _) => runs = v,
            ("--format", _, Some(f)) if ["gzip", "zstd", "zstd-containers"].contains(&&*f) => {
                format = f
            }
            _ => {
                eprintln!(
                    "usage: index-memory [--entries N] [--runs R] [--format gzip|zstd|zstd-containers]"
                );
                std::process::exit(2);
            }
        }
    }
    (entries, runs, format)
}

fn main() {
    if let [_, flag, path] = &std::env::args().collect::<Vec<_>>()[..] {
        if flag == "--open-rss" {
            return open_rss(path);
        }
    }
    let (entries, runs, format) = args();
    let tar = layer(entries);
    let mut blob = Vec::new();
    let converter = match format.as_str() {
        "gzip" => Converter::new(),
        zstd => Converter::builder()
            .compression(Compression::ZstdChunked)
            .toc_format(match zstd {
                "zstd" => TocFormat::Stargz,
                _ => TocFormat::Containers,
            })
            .build()
            .expect("converter"),
    };
    converter.convert(&tar[..], &mut blob).expect("convert");
    drop(tar);
    let mut cpu = Vec::new();
    let mut result = serde_json::Value::Null;
    for _ in 0..runs.max(1) {
        let copy = blob.clone();
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let start = thread_cpu_seconds();
        let opened = Blob::open(copy, &OpenOptions::default()).expect("open");
        cpu.push(thread_cpu_seconds() - start);
        let after = LIVE.load(Ordering::Relaxed);
        let peak = PEAK.load(Ordering::Relaxed);
        let rss = rss_of(&blob);
        let toc_entries = opened.toc().entries.len();
        let after_toc = LIVE.load(Ordering::Relaxed);
        let per = |bytes: usize| (bytes as f64 / toc_entries as f64).round();
        result = serde_json::json!({
            "toc_entries": toc_entries,
            "index_nodes": opened.index().len(),
            "blob_bytes": blob.len(),
            "toc_json_bytes": opened.toc_json_len(),
            "toc_member_bytes": opened.footer().toc_offset.map(|at| opened.size() - at),
            "retained_bytes": after - before,
            "retained_bytes_per_entry": per(after - before),
            "peak_bytes_per_entry": per(peak - before),
            "peak_rss_bytes_per_entry": rss.map(|(peak, _)| per(peak)),
            "retained_rss_bytes_per_entry": rss.map(|(_, after)| per(after)),
            "format": format,
            "after_toc_bytes_per_entry": per(after_toc - before),
        });
        drop(opened);
    }
    // The path through a whole parsed TOC (verify's): reading and parsing
    // the TOC, building the index, dropping the parsed TOC.
    let (mut parse, mut build, mut drop_toc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let t0 = thread_cpu_seconds();
        let (info, _) = TocInfo::read(&blob[..], &OpenOptions::default()).expect("TOC");
        let t1 = thread_cpu_seconds();
        let index = Index::build(&info.toc, info.payload_end, &Default::default()).expect("index");
        let t2 = thread_cpu_seconds();
        drop(info);
        let t3 = thread_cpu_seconds();
        drop(index);
        parse.push(t1 - t0);
        build.push(t2 - t1);
        drop_toc.push(t3 - t2);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if let Some(object) = result.as_object_mut() {
        object.insert("toc_parse_cpu_seconds_median".into(), median(parse).into());
        object.insert(
            "index_build_cpu_seconds_median".into(),
            median(build).into(),
        );
        object.insert(
            "toc_drop_cpu_seconds_median".into(),
            median(drop_toc).into(),
        );
    }
    cpu.sort_by(f64::total_cmp);
    if let Some(object) = result.as_object_mut() {
        object.insert("open_cpu_seconds_min".into(), cpu[0].into());
        object.insert("open_cpu_seconds_median".into(), cpu[cpu.len() / 2].into());
    }
    println!("{}", serde_json::to_string_pretty(&result).expect("json"));
}
