//! Names of temporary outputs, and removal of the ones a killed run left.
//!
//! A run killed by SIGKILL or the OOM killer cannot clean up after itself,
//! so its temporary outputs carry the owner in their name:
//! `.estargz-[image-]PID-START-PIDNS-XXXXXX.partial`, where START is the
//! process's start time (clock ticks after boot, `/proc/PID/stat` field 22)
//! and PIDNS the inode of its pid namespace. Before creating its own, a run
//! removes those in the same directory whose owner is gone:
//! - same pid namespace: `/proc/PID` is absent, or belongs to a process that
//!   started at another time (the pid was reused);
//! - another or an unknown namespace (a container writing into a shared
//!   directory): a pid says nothing there, so only age counts — untouched
//!   for [`FOREIGN_AGE`].
//!
//! Only names that parse exactly are considered; anything else is left alone.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// What every temporary output's name starts with.
const PREFIX: &str = ".estargz-";
const SUFFIX: &str = ".partial";

/// A partial of a process the pid cannot tell about is removed only once
/// nothing wrote to it for this long: no conversion pauses that long.
pub const FOREIGN_AGE: Duration = Duration::from_secs(24 * 3600);

/// Who owns a temporary output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Owner {
    pid: u32,
    /// 0 when /proc cannot tell.
    start: u64,
    /// 0 when /proc cannot tell.
    pid_ns: u64,
}

fn me() -> Owner {
    static ME: OnceLock<Owner> = OnceLock::new();
    *ME.get_or_init(|| {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid).unwrap_or(0),
            pid_ns: pid_namespace().unwrap_or(0),
        }
    })
}

/// The start of this process's temporary names, `kind` being "" for a file
/// or e.g. "image-" for convert-image's directory; the caller's random part
/// and [`suffix`] follow.
pub fn prefix(kind: &str) -> String {
    let o = me();
    format!("{PREFIX}{kind}{}-{}-{}-", o.pid, o.start, o.pid_ns)
}

/// The end of every temporary name.
pub fn suffix() -> &'static str {
    SUFFIX
}

/// Field 22 of `/proc/PID/stat`, read after the command name (which may
/// hold spaces and parentheses, hence the last `)`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3 (state) onwards; the start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The inode number in `/proc/self/ns/pid` (`pid:[4026531836]`).
fn pid_namespace() -> Option<u64> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_str()?;
    text.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// The owner written into `name`, if `name` is one of ours.
fn owner_of(name: &str) -> Option<Owner> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let rest = rest.strip_prefix("image-").unwrap_or(rest);
    let mut parts = rest.split('-');
    let owner = Owner {
        pid: parts.next()?.parse().ok()?,
        start: parts.next()?.parse().ok()?,
        pid_ns: parts.next()?.parse().ok()?,
    };
    // The random part: present, and nothing after it.
    let random = parts.next()?;
    (!random.is_empty() && parts.next().is_none()).then_some(owner)
}

/// Whether the process that named a partial is certainly gone.
fn owner_is_gone(owner: Owner, age: Option<Duration>) -> bool {
    let me = me();
    if owner == me {
        return false;
    }
    if owner.pid_ns != 0 && owner.pid_ns == me.pid_ns {
        if !Path::new(&format!("/proc/{}", owner.pid)).exists() {
            return true;
        }
        // Alive under that pid: the owner only if it started when the owner did.
        return owner.start != 0 && start_time(owner.pid).is_some_and(|s| s != owner.start);
    }
    age.is_some_and(|a| a >= FOREIGN_AGE)
}

/// Removes, best effort, the temporary outputs in `dir` whose owner is
/// gone. A failure only leaves one behind: it must not stop this run.
pub fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(owner_of) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
        if !owner_is_gone(owner, age) {
            continue;
        }
        let path = entry.path();
        // convert-image's two-rename fallback (see `place`) moves DST to
        // `old` inside its partial directory for a moment: a run killed
        // there left the only copy of the old image here. Keep it for the
        // operator rather than delete the user's data.
        if meta.is_dir() && path.join("old").symlink_metadata().is_ok() {
            continue;
        }
        // `entry.metadata` does not follow a symlink: one is removed, not its target.
        let _ = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let me = me();
        assert!(me.start != 0 && me.pid_ns != 0, "{me:?}");
        for kind in ["", "image-"] {
            let name = format!("{}AbC123{}", prefix(kind), suffix());
            assert_eq!(owner_of(&name), Some(me), "{name}");
        }
        for other in [
            ".estargz-AbC123.partial",
            ".estargz-1-2-3.partial",
            ".estargz-1-2-3-x-y.partial",
            ".estargz-1-2-3-x.old",
            "estargz-1-2-3-x.partial",
        ] {
            assert_eq!(owner_of(other), None, "{other}");
        }
    }

    #[test]
    fn only_a_gone_owner_is_stale() {
        let me = me();
        let fresh = Some(Duration::ZERO);
        assert!(!owner_is_gone(me, fresh));
        // A reused pid: alive, but started at another time.
        let reused = Owner {
            start: me.start + 1,
            ..me
        };
        assert!(owner_is_gone(reused, fresh));
        let dead = Owner {
            pid: u32::MAX - 1,
            ..me
        };
        assert!(owner_is_gone(dead, fresh));
        // Another namespace: only age tells.
        let foreign = Owner {
            pid_ns: me.pid_ns + 1,
            ..dead
        };
        assert!(!owner_is_gone(foreign, fresh));
        assert!(!owner_is_gone(foreign, None));
        assert!(owner_is_gone(foreign, Some(FOREIGN_AGE)));
    }
}
