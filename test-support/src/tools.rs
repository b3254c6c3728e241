//! Where the system tools the harnesses start are, and when they are ready.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// `$ENV` when set, else `name` on PATH, else in one of `dirs` (Debian puts
/// some daemons in sbin directories that are often not on PATH).
pub(crate) fn find_tool(env: &str, name: &str, dirs: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Polls `ready` every `pause` until it holds while `child` still runs: an
/// answer from a process that then exits came from whoever else holds the
/// port. `Err` with the exit status when `child` exits first (it could not
/// bind, say: the caller starts it again on another port). Panics after
/// 30 s, killing `child` (generous: the machine may be loaded).
pub(crate) fn poll_ready(
    child: &mut Child,
    what: &str,
    pause: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        if ready() {
            if matches!(child.try_wait(), Ok(None)) {
                return Ok(());
            }
            continue;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} was not ready within 30 s");
        }
        std::thread::sleep(pause);
    }
}
