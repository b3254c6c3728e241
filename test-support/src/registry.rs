//! A real registry for the tests (the registry client's and
//! convert-image's): Debian's `docker-registry` (CNCF distribution 2.8) on
//! a free loopback port, with its configuration, storage and log in a
//! temporary directory. Killed on drop.
//!
//! The port is picked by binding port 0 and released before the registry
//! binds it (distribution cannot listen on port 0 and report the port),
//! so someone else may take it in between. Readiness is therefore checked
//! on this instance only: every response carries an `X-Estargz-Instance`
//! header unique to it, and the registry is up when `GET /v2/` answers
//! (200, or 401 with auth) with that header and the child still runs. A
//! registry that cannot bind exits, and is started again on another port.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::token::{TokenIssuer, ISSUER, SERVICE};

/// The user and password of the htpasswd instance.
pub const USER: &str = "tester";
pub const PASSWORD: &str = "pa55-w0rd-!";

pub struct RegistryServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    issuer: Option<TokenIssuer>,
}

/// How an instance authenticates clients.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Anonymous,
    Htpasswd,
    /// Bearer tokens from a [`TokenIssuer`] the harness starts, valid for
    /// this many seconds.
    Token(u64),
}

/// `$ESTARGZ_DOCKER_REGISTRY`, `docker-registry` on PATH, or /usr/bin's.
fn find_registry() -> Option<PathBuf> {
    crate::tools::find_tool("ESTARGZ_DOCKER_REGISTRY", "docker-registry", &["/usr/bin"])
}

/// `None` (with a loud message) when `what` is missing and CI is unset; a
/// panic under CI, where scripts/test.sh installs it.
pub fn require(what: &str, found: bool) -> bool {
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} not found (CI is set): scripts/test.sh installs it");
    }
    eprintln!("\n*** SKIPPING registry test: {what} not found (apt-get install docker-registry apache2-utils) ***\n");
    false
}

fn htpasswd_line() -> String {
    let out = Command::new("htpasswd")
        .args(["-Bbn", USER, PASSWORD])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run htpasswd (apache2-utils): {e}"));
    assert!(out.status.success(), "htpasswd: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string() + "\n"
}

fn config(dir: &Path, port: u16, token: &str, auth: &str, tls: bool) -> String {
    let d = dir.display();
    let tls = if tls {
        format!("  tls:\n    certificate: {d}/server.pem\n    key: {d}/server.key\n")
    } else {
        String::new()
    };
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {d}/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: {token}
  headers:
    X-Estargz-Instance: [\"{token}\"]
{tls}{auth}"
    )
}

/// The configuration's `auth` section.
fn auth_section(dir: &Path, issuer: Option<&TokenIssuer>, htpasswd: bool) -> String {
    let d = dir.display();
    match issuer {
        Some(issuer) => format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {d}/token.pem\n",
            issuer.realm()
        ),
        None if htpasswd => {
            format!("auth:\n  htpasswd:\n    realm: test-realm\n    path: {d}/htpasswd\n")
        }
        None => String::new(),
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("a bound address").port()
}

impl RegistryServer {
    /// A plain HTTP registry without authentication.
    pub fn start() -> Option<RegistryServer> {
        RegistryServer::start_inner(Auth::Anonymous, false)
    }

    /// A plain HTTP registry with `token` auth: clients are sent to a
    /// [`TokenIssuer`] (see [`RegistryServer::issuer`]) that hands out
    /// JWTs for [`USER`] / [`PASSWORD`], valid for `lifetime`.
    pub fn start_with_token(lifetime: Duration) -> Option<RegistryServer> {
        RegistryServer::start_inner(Auth::Token(lifetime.as_secs()), false)
    }

    /// The token issuer of a [`RegistryServer::start_with_token`] instance.
    pub fn issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// A plain HTTP registry with htpasswd (bcrypt) Basic auth for
    /// [`USER`] / [`PASSWORD`].
    pub fn start_with_htpasswd() -> Option<RegistryServer> {
        RegistryServer::start_inner(Auth::Htpasswd, false)
    }

    /// [`RegistryServer::start_with_htpasswd`] behind HTTPS, with a
    /// certificate for 127.0.0.1 signed by [`RegistryServer::ca`].
    pub fn start_with_htpasswd_and_tls() -> Option<RegistryServer> {
        RegistryServer::start_inner(Auth::Htpasswd, true)
    }

    /// The CA certificate (PEM) of the TLS instance.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_inner(auth: Auth, tls: bool) -> Option<RegistryServer> {
        let htpasswd = auth == Auth::Htpasswd;
        let binary = find_registry();
        if !require("docker-registry", binary.is_some()) {
            return None;
        }
        let binary = binary?;
        let htpasswd_found = Command::new("htpasswd").arg("-h").output().is_ok();
        if htpasswd && !require("htpasswd (apache2-utils)", htpasswd_found) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        if htpasswd {
            std::fs::write(dir.path().join("htpasswd"), htpasswd_line()).unwrap();
        }
        let issuer = match auth {
            Auth::Token(secs) => Some(TokenIssuer::start(dir.path(), Duration::from_secs(secs))),
            _ => None,
        };
        let auth_section = auth_section(dir.path(), issuer.as_ref(), htpasswd);
        let ca = tls.then(|| {
            crate::certs::make_certificates(dir.path());
            std::fs::read(dir.path().join("ca.pem")).unwrap()
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!("{}-{nanos}", std::process::id());
        let mut last_error = String::new();
        for _ in 0..8 {
            let port = free_port();
            let conf = dir.path().join("config.yml");
            std::fs::write(&conf, config(dir.path(), port, &token, &auth_section, tls)).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut command = Command::new(&binary);
            // It reads REGISTRY_* variables as configuration: a user's
            // REGISTRY_AUTH_FILE would be taken for its `auth` section.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            let mut child = command
                .arg("serve")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            match wait_ready(&mut child, port, &token, ca.as_deref()) {
                Ok(()) => {
                    return Some(RegistryServer {
                        child,
                        dir,
                        port,
                        issuer,
                    })
                }
                Err(e) => {
                    let log = std::fs::read_to_string(dir.path().join("registry.log"))
                        .unwrap_or_default();
                    last_error = format!("{e}\n{log}");
                    if !log.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("cannot start docker-registry: {last_error}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry stores the blob `digest` (to corrupt it).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's log so far (its access log lines included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

/// Waits until `child` answers `GET /v2/` with 200 or 401 and `token` in
/// `X-Estargz-Instance`, and still runs; an error when it exits first.
/// Panics after 30 s (generous: the machine may be loaded).
fn wait_ready(child: &mut Child, port: u16, token: &str, ca: Option<&[u8]>) -> Result<(), String> {
    let what = format!("docker-registry on 127.0.0.1:{port}");
    let ready = || match ca {
        Some(ca) => probe_tls(port, token, ca),
        None => probe(port, token),
    };
    crate::tools::poll_ready(child, &what, Duration::from_millis(25), ready)
        .map_err(|status| format!("docker-registry exited with {status}"))
}

/// Whether `GET /v2/` on `port` answers 200 or 401 with this instance's
/// header.
fn probe(port: u16, token: &str) -> bool {
    use std::io::Write;
    let timeout = Duration::from_secs(1);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.take(64 << 10).read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    let status = text.split(' ').nth(1).unwrap_or("");
    let status_ok = text.starts_with("http/1.") && (status == "200" || status == "401");
    status_ok
        && text.contains(&format!(
            "x-estargz-instance: {}",
            token.to_ascii_lowercase()
        ))
}

/// [`probe`] over HTTPS, trusting only `ca`.
fn probe_tls(port: u16, token: &str, ca: &[u8]) -> bool {
    let roots: Vec<_> = ureq::tls::parse_pem(ca)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(1)))
        .build()
        .into();
    let Ok(response) = agent.get(format!("https://127.0.0.1:{port}/v2/")).call() else {
        return false;
    };
    let status = response.status().as_u16();
    let header = response.headers().get("x-estargz-instance");
    (status == 200 || status == 401) && header.is_some_and(|h| h.as_bytes() == token.as_bytes())
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
