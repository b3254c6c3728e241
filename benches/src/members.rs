//! The gzip members `estargz convert` would make from a tar, for the
//! codec-only measurements (`bare-codec`, `level-probe`).

use estargz_core::internals::MemberData;
use estargz_core::internals::Planner;
use estargz_core::internals::Scanner;
use estargz_core::{NamePolicy, ScanLimits};
use std::io::BufReader;

/// Plans every member of the tar at `path` exactly as `convert` would (the
/// same [`Scanner`] and [`Planner`], default name policy and scan limits)
/// and returns their uncompressed bytes, in blob order.
///
/// ```no_run
/// let members = estargz_benches::members::plan("layer.tar", 4 << 20)?;
/// let total: usize = members.iter().map(|m| m.len()).sum();
/// # Ok::<(), String>(())
/// ```
pub fn plan(path: &str, chunk_size: u64) -> Result<Vec<MemberData>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let scanner = Scanner::new(
        BufReader::with_capacity(1 << 20, file),
        NamePolicy::default(),
        ScanLimits::default(),
    );
    let mut planner = Planner::new(scanner, chunk_size);
    let mut members = Vec::new();
    while let Some(m) = planner.next_member().map_err(|e| format!("{path}: {e}"))? {
        members.push(m.data);
    }
    Ok(members)
}
