//! A real containerd for the tests that pull converted images with it:
//! Debian's `containerd` (1.6) with a private configuration, its own root,
//! state and socket in a temporary directory, the CRI plugin disabled (no
//! Kubernetes), and the default `overlayfs` snapshotter. Killed by PID on
//! drop.
//!
//! Its socket lives in the instance's own directory, so nothing else can
//! answer on it; readiness is still checked on this instance: `ctr version`
//! over the socket must report the server UUID that this instance keeps
//! under its root, while the child still runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    ctr: PathBuf,
}

/// `$ESTARGZ_CONTAINERD` (the daemon; `ctr` next to it), PATH, or /usr/bin.
fn find_binaries() -> Option<(PathBuf, PathBuf)> {
    let daemon = crate::tools::find_tool("ESTARGZ_CONTAINERD", "containerd", &["/usr/bin"])?;
    let ctr = daemon.with_file_name("ctr");
    Some((daemon, ctr))
}

/// The plugins a pull does not need and which would reach outside the
/// temporary directory or fail noisily in a sandbox.
const DISABLED: [&str; 5] = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.aufs",
];

fn config(dir: &Path, proxy: Option<(&str, &Path)>) -> String {
    let d = dir.display();
    let disabled: Vec<String> = DISABLED.iter().map(|p| format!("{p:?}")).collect();
    // `opt` would install into /opt/containerd otherwise.
    format!(
        "version = 2
root = \"{d}/root\"
state = \"{d}/state\"
disabled_plugins = [{}]
[grpc]
  address = \"{d}/containerd.sock\"
[ttrpc]
  address = \"{d}/containerd.sock.ttrpc\"
[debug]
  address = \"\"
  level = \"info\"
[metrics]
  address = \"\"
[plugins.\"io.containerd.internal.v1.opt\"]
  path = \"{d}/opt\"
{}",
        disabled.join(", "),
        proxy.map_or(String::new(), |(name, socket)| format!(
            "[proxy_plugins.{name}]\n  type = \"snapshot\"\n  address = \"{}\"\n",
            socket.display()
        ))
    )
}

impl Containerd {
    /// Starts an instance, or `None` (with a message) when containerd is
    /// missing outside CI; under CI (`CI` set) that panics, as
    /// scripts/deps.sh installs it.
    pub fn start() -> Option<Containerd> {
        Containerd::start_inner(None)
    }

    /// An instance with the snapshotter serving on `socket` as the proxy
    /// snapshot plugin `name` (e.g. the stargz snapshotter:
    /// [`crate::stargz::StargzSnapshotter`]).
    pub fn start_with_snapshotter(name: &str, socket: &Path) -> Option<Containerd> {
        Containerd::start_inner(Some((name, socket)))
    }

    fn start_inner(proxy: Option<(&str, &Path)>) -> Option<Containerd> {
        let found = find_binaries();
        if !crate::registry::require("containerd", found.is_some()) {
            return None;
        }
        let (daemon, ctr) = found?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let conf = dir.path().join("config.toml");
        std::fs::write(&conf, config(dir.path(), proxy)).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new(&daemon)
            .arg("--config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", daemon.display()));
        let mut server = Containerd { child, dir, ctr };
        server.wait_ready();
        Some(server)
    }

    /// The gRPC socket (`ctr -a`).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A `ctr` command for this instance in namespace `namespace`.
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut command = Command::new(&self.ctr);
        command
            .arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(namespace)
            .stdin(Stdio::null());
        command
    }

    /// `ctr ARGS` in `namespace`, output captured.
    pub fn ctr_run(&self, namespace: &str, args: &[&str]) -> Output {
        self.ctr(namespace)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.ctr.display()))
    }

    /// The UUID the introspection service keeps under this instance's
    /// root, once it is there.
    fn uuid(&self) -> Option<String> {
        let path = self
            .dir
            .path()
            .join("root/io.containerd.grpc.v1.introspection/uuid");
        let text = std::fs::read_to_string(path).ok()?;
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// Waits until `ctr version` over the socket names this instance's
    /// UUID; panics (with the log) when the daemon exits or after 60 s
    /// (generous: the machine may be loaded).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("containerd exited with {status}:\n{}", self.log());
            }
            // The introspection service writes its UUID file when first
            // asked, so ask before reading it.
            let out = self.ctr_run("default", &["version"]);
            let text = String::from_utf8_lossy(&out.stdout);
            let answered = |uuid: &str| {
                text.lines()
                    .any(|l| l.trim().strip_prefix("UUID:").map(str::trim) == Some(uuid))
            };
            if out.status.success()
                && self.uuid().is_some_and(|uuid| answered(&uuid))
                && matches!(self.child.try_wait(), Ok(None))
            {
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("containerd did not answer within 60 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
