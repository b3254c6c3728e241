//! `estargz mount` end to end: the binary mounts a converted layer with
//! FUSE (as root, `/dev/fuse`), and the tests read the mounted tree with
//! ordinary system calls and compare it with the source tar.
//!
//! Every mount is held by a [`Mount`] guard: dropped, it unmounts (lazily,
//! so a failed assertion inside the mount cannot keep it there) and kills
//! the `estargz mount` child by its PID.

mod fixture;
mod layers;
mod local;
mod overlay;
mod remote;

use crate::common::*;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Whether these tests can mount here: root and `/dev/fuse`. As with
/// nginx, a machine without them skips the tests loudly, except in CI
/// (`CI` set), where that fails them with the reason.
pub fn fuse_available() -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        "not running as root"
    } else if !Path::new("/dev/fuse").exists() {
        "/dev/fuse is missing (modprobe fuse)"
    } else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!("cannot run the mount tests (CI is set): {why}");
    }
    eprintln!("\n*** SKIPPING mount test: {why} ***\n");
    false
}

/// Whether `dir` is a mount point now (`/proc/self/mountinfo`, field 5).
pub fn is_mounted(dir: &Path) -> bool {
    let dir = dir.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*dir))
}

/// A running `estargz mount`, its mount point and its stderr.
pub struct Mount {
    child: Child,
    dir: PathBuf,
    stderr: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Mount {
    /// Mounts `blob` (a path or URL) with the extra `args`; returns once
    /// the binary says it is mounted and the kernel lists the mount.
    pub fn start(blob: &str, args: &[&str]) -> Mount {
        Mount::start_with_env(blob, args, &[])
    }

    /// [`start`](Self::start) with extra environment variables.
    pub fn start_with_env(blob: &str, args: &[&str], env: &[(&str, &Path)]) -> Mount {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt").canonicalize_or_create();
        let stderr = tmp.path().join("stderr");
        let child = estargz(["mount"])
            .envs(env.iter().copied())
            .args(args)
            .arg(blob)
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("cannot run estargz mount");
        let mut mount = Mount {
            child,
            dir,
            stderr,
            _tmp: tmp,
        };
        mount.wait_for_stderr("mounted on");
        assert!(is_mounted(&mount.dir), "{}", mount.stderr());
        mount
    }

    /// The mount point.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `path` inside the mount.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    /// What the binary printed on stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until stderr holds `needle`; fails if the binary exits first.
    pub fn wait_for_stderr(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("estargz mount exited ({status}) before printing {needle:?}:\n{text}");
            }
            // Not a timing assertion: a bound so a broken binary fails
            // rather than hangs the suite.
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "no {needle:?} on stderr:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the binary.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Ctrl-C: the binary unmounts and exits; returns its status and stderr,
    /// having checked the mount point is left an empty, usable directory.
    pub fn stop(self) -> (ExitStatus, String) {
        self.signal(rustix::process::Signal::INT);
        self.stop_after_exit()
    }

    /// Waits until the kernel no longer lists the mount.
    pub fn wait_until_unmounted(&self) {
        let start = Instant::now();
        while is_mounted(&self.dir) {
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the binary to exit by itself; the same checks as [`stop`](Self::stop).
    pub fn stop_after_exit(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let stderr = self.stderr();
        assert!(
            !is_mounted(&self.dir),
            "still mounted after exit:\n{stderr}"
        );
        assert_eq!(dir_listing(&self.dir), Vec::<String>::new());
        fs::write(self.dir.join("probe"), b"x").unwrap();
        fs::remove_file(self.dir.join("probe")).unwrap();
        (status, stderr)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = system_umount(&self.dir);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `umount -l DIR`, through the system tool rather than the binary under test.
fn system_umount(dir: &Path) -> std::io::Result<ExitStatus> {
    std::process::Command::new("umount")
        .arg("-l")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

trait CreateDir {
    fn canonicalize_or_create(self) -> PathBuf;
}

impl CreateDir for PathBuf {
    fn canonicalize_or_create(self) -> PathBuf {
        fs::create_dir_all(&self).unwrap();
        self.canonicalize().unwrap()
    }
}

/// The whole file at `path`, or the error of the first failing read.
pub fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    fs::File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

/// Converts `tar` into `dir/name` with the extra convert `args`.
pub fn convert(dir: &Path, name: &str, tar: &[u8], args: &[&str]) -> PathBuf {
    let input = dir.join(format!("{name}.tar"));
    fs::write(&input, tar).unwrap();
    let blob = dir.join(name);
    let extra: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let out = run(convert_args(&input, &blob, &extra));
    assert_exit(&out, 0);
    blob
}
