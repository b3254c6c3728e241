//! The stargz snapshotter, the runtime component that mounts eStargz and
//! zstd:chunked layers lazily over FUSE: `stargz-grpc`, a minimal daemon
//! on the snapshotter library Debian packages (v0.12), built by
//! `../shared/tools/stargz-snapshotter/build.sh` (Go; not built by
//! scripts/deps.sh: too slow for CI). Serves on a socket in its own
//! temporary directory for a [`Containerd`](crate::containerd::Containerd)
//! proxy plugin, with prefetch and background fetch off, so every byte is
//! fetched when read.
//!
//! Stopped by PID on drop: SIGTERM (it closes its filesystems), SIGKILL
//! after 10 s, then every mount left under its directory is unmounted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct StargzSnapshotter {
    child: Child,
    dir: tempfile::TempDir,
}

/// `$ESTARGZ_STARGZ_GRPC`, `stargz-grpc` on PATH, or /usr/local/bin's.
pub fn find_stargz_grpc() -> Option<PathBuf> {
    crate::tools::find_tool("ESTARGZ_STARGZ_GRPC", "stargz-grpc", &["/usr/local/bin"])
}

impl StargzSnapshotter {
    /// Starts `stargz-grpc -no-prefetch`, or `None` with a message when it
    /// is not built.
    pub fn start() -> Option<StargzSnapshotter> {
        let Some(binary) = find_stargz_grpc() else {
            eprintln!(
                "\n*** SKIPPING: stargz-grpc not found (build it with \
                 ../shared/tools/stargz-snapshotter/build.sh, or set ESTARGZ_STARGZ_GRPC) ***\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = std::fs::File::create(dir.path().join("stargz.log")).unwrap();
        let child = Command::new(&binary)
            .arg("-address")
            .arg(dir.path().join("stargz.sock"))
            .arg("-root")
            .arg(dir.path().join("root"))
            .arg("-no-prefetch")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut snapshotter = StargzSnapshotter { child, dir };
        snapshotter.wait_ready();
        Some(snapshotter)
    }

    /// The socket it serves on (in its own directory: no other process
    /// listens there).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("stargz.sock")
    }

    /// Its log so far (JSON lines, debug level).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stargz.log")).unwrap_or_default()
    }

    /// Waits until the socket accepts a connection while the child runs;
    /// panics when it exits first or after 60 s.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("stargz-grpc exited with {status}:\n{}", self.log());
            }
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
                && matches!(self.child.try_wait(), Ok(None))
            {
                return;
            }
            if Instant::now() > deadline {
                self.stop();
                panic!("stargz-grpc did not listen within 60 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        unmount_under(self.dir.path());
    }
}

/// Unmounts every mount at or below `dir`, deepest first (lazily when
/// busy), so that the directory can be removed.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| *p == prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let ok = Command::new("umount")
            .arg(&point)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", &point]).status();
        }
    }
}

impl Drop for StargzSnapshotter {
    fn drop(&mut self) {
        self.stop();
    }
}
