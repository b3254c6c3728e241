//! `level-probe <TAR> --extra-seconds S [--level N] [--higher N,N] [--chunk-size B]`
//!
//! How much smaller could the blob get if `S` more seconds of compression
//! were spent on it? `benches/compare.sh` asks this for the `--level 9` size
//! target: the CPU target leaves a budget of extra seconds, and the question
//! is whether any way of spending them reaches the size target.
//!
//! It plans the members `convert` would make ([`members::plan`]) and
//! compresses every one, on one thread, at the base level (`--level`,
//! default 9) and at each higher level (`--higher`, default `10,11`), timing
//! each compression. Choosing, member by member, which level to compress at
//! within the budget is a multiple-choice knapsack; this prints the optimum
//! of its linear relaxation ([`saving_bound`]), which no real choice can
//! beat, not even one made with hindsight. Timings are wall seconds of one
//! thread, so run it on a quiet machine.
//!
//! Prints one JSON object on stdout.
//!
//! [`members::plan`]: estargz_benches::members::plan

use estargz_core::internals::gzip_member;
use estargz_core::DEFAULT_CHUNK_SIZE;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: level-probe <TAR> --extra-seconds S [--level N] [--higher N,N,...] [--chunk-size BYTES]";

struct Args {
    tar: String,
    extra_seconds: f64,
    level: u32,
    higher: Vec<u32>,
    chunk_size: u64,
}

fn bad(name: &'static str) -> impl Fn(std::num::ParseIntError) -> String {
    move |e| format!("{name}: {e}")
}

fn parse_args() -> Result<Args, String> {
    let mut tar = None;
    let mut extra_seconds = None;
    let mut level = 9;
    let mut higher = vec![10, 11];
    let mut chunk_size = DEFAULT_CHUNK_SIZE;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--extra-seconds" => {
                let s: f64 = value(&a)?
                    .parse()
                    .map_err(|e| format!("--extra-seconds: {e}"))?;
                extra_seconds = Some(s.max(0.0));
            }
            "--level" => level = value(&a)?.parse().map_err(bad("--level"))?,
            "--higher" => {
                higher = value(&a)?
                    .split(',')
                    .map(|l| l.parse().map_err(bad("--higher")))
                    .collect::<Result<_, _>>()?
            }
            "--chunk-size" => chunk_size = value(&a)?.parse().map_err(bad("--chunk-size"))?,
            "-h" | "--help" => return Err(String::new()),
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ if tar.is_none() => tar = Some(a),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    Ok(Args {
        tar: tar.ok_or("missing <TAR>")?,
        extra_seconds: extra_seconds.ok_or("missing --extra-seconds")?,
        level,
        higher,
        chunk_size: if chunk_size == 0 {
            DEFAULT_CHUNK_SIZE
        } else {
            chunk_size
        },
    })
}

/// One way to compress a member: its output size and how long it took.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cost {
    bytes: f64,
    seconds: f64,
}

/// The most bytes that spending at most `budget` more seconds can save,
/// when each member is compressed either at its base cost (`options[i][0]`)
/// or at one of its other costs, in the linear relaxation of that choice
/// (a member may be upgraded in part).
///
/// Per member, only the upper convex hull of (extra seconds, saved bytes)
/// matters, and its segments come in falling bytes-per-second order; taking
/// all members' segments greedily by that rate, the last one in part, is
/// then the relaxation's optimum (the multiple-choice knapsack's LP bound).
fn saving_bound(options: &[Vec<Cost>], budget: f64) -> f64 {
    // (extra seconds, saved bytes) of each hull segment, over all members.
    let mut segments: Vec<(f64, f64)> = Vec::new();
    for costs in options {
        let Some(base) = costs.first() else { continue };
        let mut points: Vec<(f64, f64)> = costs[1..]
            .iter()
            .map(|c| ((c.seconds - base.seconds).max(0.0), base.bytes - c.bytes))
            .filter(|&(_, saved)| saved > 0.0)
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        // Upper hull from (0, 0), keeping only points that save more.
        let mut hull: Vec<(f64, f64)> = vec![(0.0, 0.0)];
        for p in points {
            if p.1 <= hull.last().map_or(0.0, |h| h.1) {
                continue;
            }
            while hull.len() >= 2 {
                let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
                // b lies on or under the chord a-p: drop it.
                if (b.0 - a.0) * (p.1 - a.1) >= (p.0 - a.0) * (b.1 - a.1) {
                    hull.pop();
                } else {
                    break;
                }
            }
            hull.push(p);
        }
        segments.extend(hull.windows(2).map(|w| (w[1].0 - w[0].0, w[1].1 - w[0].1)));
    }
    // Best rate first; a free saving (no extra time) has an infinite rate.
    let rate = |s: &(f64, f64)| {
        if s.0 > 0.0 {
            s.1 / s.0
        } else {
            f64::INFINITY
        }
    };
    segments.sort_by(|a, b| rate(b).total_cmp(&rate(a)));
    let (mut left, mut saved) = (budget, 0.0);
    for (seconds, bytes) in segments {
        if seconds <= left {
            left -= seconds;
            saved += bytes;
        } else {
            saved += bytes * left / seconds;
            break;
        }
    }
    saved
}

/// Compresses `data` at `level` into `out`, reused so that only the first
/// calls pay for growing it (as a converter worker's buffers would be warm).
fn compress(level: u32, data: &[u8], out: &mut Vec<u8>) -> Result<Cost, String> {
    out.clear();
    let start = Instant::now();
    gzip_member(level, data, out).map_err(|e| e.to_string())?;
    Ok(Cost {
        bytes: out.len() as f64,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn run(args: Args) -> Result<String, String> {
    let members = estargz_benches::members::plan(&args.tar, args.chunk_size)?;
    let levels: Vec<u32> = std::iter::once(args.level)
        .chain(args.higher.iter().copied())
        .collect();
    // Level by level: the converter's workers keep one compressor, for one
    // level, and building one (megabytes of match-finder tables for the
    // higher levels) per member would be timed too.
    let mut out = Vec::new();
    let mut options: Vec<Vec<Cost>> = vec![Vec::with_capacity(levels.len()); members.len()];
    for &level in &levels {
        compress(level, b"warm-up", &mut out)?;
        for (m, costs) in members.iter().zip(&mut options) {
            costs.push(compress(level, m, &mut out)?);
        }
    }
    let totals: Vec<String> = levels
        .iter()
        .enumerate()
        .map(|(i, level)| {
            let bytes: f64 = options.iter().map(|o| o[i].bytes).sum();
            let seconds: f64 = options.iter().map(|o| o[i].seconds).sum();
            format!("{{\"level\":{level},\"output_bytes\":{bytes},\"seconds\":{seconds:.3}}}")
        })
        .collect();
    let input_bytes: usize = members.iter().map(|m| m.len()).sum();
    Ok(format!(
        concat!(
            "{{\"tar\":{:?},\"chunk_size\":{},\"members\":{},\"input_bytes\":{},",
            "\"levels\":[{}],\"extra_seconds\":{:.3},\"saving_bound_bytes\":{:.0}}}"
        ),
        args.tar,
        args.chunk_size,
        members.len(),
        input_bytes,
        totals.join(","),
        args.extra_seconds,
        saving_bound(&options, args.extra_seconds),
    ))
}

fn main() -> ExitCode {
    estargz_benches::tool::main("level-probe", USAGE, parse_args, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(bytes: f64, seconds: f64) -> Cost {
        Cost { bytes, seconds }
    }

    #[test]
    fn takes_the_best_rates_first_and_the_last_in_part() {
        // Member a saves 100 B for 1 s (100 B/s), b saves 30 B for 1 s.
        let options = vec![
            vec![cost(1000.0, 1.0), cost(900.0, 2.0)],
            vec![cost(500.0, 1.0), cost(470.0, 2.0)],
        ];
        assert_eq!(saving_bound(&options, 0.0), 0.0);
        assert_eq!(saving_bound(&options, 0.5), 50.0);
        assert_eq!(saving_bound(&options, 1.0), 100.0);
        assert_eq!(saving_bound(&options, 1.5), 115.0);
        assert_eq!(saving_bound(&options, 10.0), 130.0);
    }

    #[test]
    fn a_level_under_the_hull_is_skipped_and_the_best_level_counts_once() {
        // Level 10 saves 10 B for 1 s (under the chord to level 11, which
        // saves 40 B for 2 s), so the hull goes straight to level 11, and a
        // member is never counted at two levels.
        let options = vec![vec![cost(100.0, 1.0), cost(90.0, 2.0), cost(60.0, 3.0)]];
        assert_eq!(saving_bound(&options, 1.0), 20.0);
        assert_eq!(saving_bound(&options, 5.0), 40.0);
    }

    #[test]
    fn a_level_above_the_chord_stays_on_the_hull() {
        // Level 10: 30 B for 1 s; level 11: 40 B for 2 s in all.
        let options = vec![vec![cost(100.0, 1.0), cost(70.0, 2.0), cost(60.0, 3.0)]];
        assert_eq!(saving_bound(&options, 1.0), 30.0);
        assert_eq!(saving_bound(&options, 1.5), 35.0);
        assert_eq!(saving_bound(&options, 2.0), 40.0);
    }

    #[test]
    fn free_savings_come_first_and_losses_never_count() {
        // Measured faster and smaller (timing noise): free. Larger: useless.
        let options = vec![
            vec![cost(100.0, 2.0), cost(95.0, 1.9)],
            vec![cost(100.0, 1.0), cost(120.0, 1.5)],
            vec![cost(100.0, 1.0), cost(50.0, 11.0)],
        ];
        assert_eq!(saving_bound(&options, 0.0), 5.0);
        assert_eq!(saving_bound(&options, 1.0), 10.0);
        assert_eq!(saving_bound(&options, 100.0), 55.0);
    }
}
