//! `bare-codec <TAR> [--level N] [--chunk-size B] [--threads N]`
//!
//! The "bare codec on the same members" baseline for `benches/compare.sh`.
//!
//! It plans exactly the gzip members `estargz convert` would make from TAR
//! (the same `Scanner` and `Planner`, default name policy and scan
//! limits), keeps them all in memory, and only then times compressing every
//! member with [`gzip_member`] in parallel on a rayon pool sized as the
//! converter sizes its own (`--threads N`, else rayon's default: every core
//! or `RAYON_NUM_THREADS`). Each member gets an output buffer allocated as the
//! converter allocates it. Nothing else is timed: no tar scanning, no
//! SHA-256 (chunk digests, diffID, blob digest), no TOC, no output I/O.
//!
//! CPU time is the process's user + system time read from `/proc/self/stat`
//! (fields 14 and 15, all threads of the process, dead or alive) right before
//! and right after the compression phase; the difference is the CPU spent
//! compressing, in clock ticks (`getconf CLK_TCK`, 100 on Linux, so 10 ms
//! resolution). The pool's threads are started and warmed up before the
//! first reading, and the main thread only waits during the phase, so the
//! difference is the workers' compression work (plus the page faults of their
//! output buffers, which the converter pays too).
//!
//! Prints one JSON object on stdout.

use estargz_core::internals::gzip_member;
use estargz_core::{DEFAULT_CHUNK_SIZE, DEFAULT_LEVEL};
use rayon::prelude::*;
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    tar: String,
    level: u32,
    chunk_size: u64,
    threads: Option<usize>,
}

const USAGE: &str = "usage: bare-codec <TAR> [--level N] [--chunk-size BYTES] [--threads N]";

fn parse_args() -> Result<Args, String> {
    let mut tar = None;
    let mut level = DEFAULT_LEVEL;
    let mut chunk_size = DEFAULT_CHUNK_SIZE;
    let mut threads = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--level" => {
                level = value("--level")?
                    .parse()
                    .map_err(|e| format!("--level: {e}"))?
            }
            "--chunk-size" => {
                chunk_size = value("--chunk-size")?
                    .parse()
                    .map_err(|e| format!("--chunk-size: {e}"))?
            }
            "--threads" => {
                let n: usize = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?;
                threads = (n > 0).then_some(n);
            }
            "-h" | "--help" => return Err(String::new()),
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ if tar.is_none() => tar = Some(a),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    if chunk_size == 0 {
        chunk_size = DEFAULT_CHUNK_SIZE;
    }
    Ok(Args {
        tar: tar.ok_or("missing <TAR>")?,
        level,
        chunk_size,
        threads,
    })
}

/// Clock ticks per second for `/proc/self/stat` times.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User and system CPU time of the whole process so far, in clock ticks.
fn process_cpu_ticks() -> Result<(u64, u64), String> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').ok_or("malformed /proc/self/stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, stime field 15.
    let field = |n: usize| -> Result<u64, String> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/self/stat has no field {n}"))
    };
    Ok((field(14)?, field(15)?))
}

fn run(args: Args) -> Result<String, String> {
    // Untimed: plan every member, exactly as `convert` would.
    let members = estargz_benches::members::plan(&args.tar, args.chunk_size)?;
    let input_bytes: u64 = members.iter().map(|m| m.len() as u64).sum();

    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        builder = builder.num_threads(n);
    }
    let pool = builder.build().map_err(|e| format!("thread pool: {e}"))?;
    let threads = pool.current_num_threads();
    // Start every worker and give each its compressor for this level.
    pool.broadcast(|_| {
        let mut out = Vec::new();
        gzip_member(args.level, b"warm-up", &mut out).map_err(|e| e.to_string())
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let ticks = clock_ticks();

    // Timed: compression only.
    let (u0, s0) = process_cpu_ticks()?;
    let wall = Instant::now();
    let compressed: Vec<Vec<u8>> = pool.install(|| {
        members
            .par_iter()
            .map(|data| {
                let mut out = Vec::new();
                gzip_member(args.level, data, &mut out).map(|()| out)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())
    })?;
    let wall = wall.elapsed().as_secs_f64();
    let (u1, s1) = process_cpu_ticks()?;

    let output_bytes: u64 = compressed.iter().map(|c| c.len() as u64).sum();
    let user = (u1 - u0) as f64 / ticks;
    let sys = (s1 - s0) as f64 / ticks;
    Ok(format!(
        concat!(
            "{{\"tar\":{:?},\"level\":{},\"chunk_size\":{},\"threads\":{},",
            "\"members\":{},\"input_bytes\":{},\"output_bytes\":{},",
            "\"cpu_seconds\":{:.3},\"user_seconds\":{:.3},\"sys_seconds\":{:.3},",
            "\"wall_seconds\":{:.3},\"cpu_clock\":\"/proc/self/stat utime+stime\"}}"
        ),
        args.tar,
        args.level,
        args.chunk_size,
        threads,
        members.len(),
        input_bytes,
        output_bytes,
        user + sys,
        user,
        sys,
        wall,
    ))
}

fn main() -> ExitCode {
    estargz_benches::tool::main("bare-codec", USAGE, parse_args, run)
}
