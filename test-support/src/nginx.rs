//! A real HTTP server for the remote-blob tests: nginx on a free loopback
//! port, with its configuration, logs, pid and temporary files in a
//! temporary directory, serving `www/` of that directory. Killed on drop.
//!
//! Locations:
//! - `/NAME`: the file, with range requests (nginx's default).
//! - `/noranges/NAME`: the same file, ranges ignored (`max_ranges 0`: every
//!   GET is `200 OK` with the whole body).
//! - `/moved/NAME`: a `302` redirect to `/NAME`.
//! - `/private/NAME`: `401` unless `Authorization: Bearer s3cret`.
//! - `/temp/NAME`: a `307` redirect to `/stored/NAME?X-Amz-Expires=600`
//!   (a presigned URL valid ten minutes), which serves the file.
//! - `/challenge/NAME`: as `/private/NAME`, its `401` with a
//!   `WWW-Authenticate: Bearer realm="https://auth.example/token",service="test"`.
//! - `/flaky/NAME`: serves the tail (`Range: bytes=-N`), then `503` for any
//!   other request: a server failing in the middle of a read.
//! - `/slow/NAME`: the file at 256 KiB/s, so that a request is still
//!   under way while other readers arrive.
//!
//! The access log has one line per request: status, `Range` header, body
//! bytes sent, URI.
//!
//! The port is picked by the kernel and released before nginx binds it, so
//! someone else (another test's server) may take it in between. Readiness
//! is therefore checked on this instance only: `/.ready` serves a token
//! unique to it, not logged, and nginx is up when that token comes back
//! and the child is still running. An nginx that cannot bind exits, and
//! is started again on other ports.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "s3cret";

/// One request, from the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub status: u16,
    /// The `Range` header, `None` when absent.
    pub range: Option<String>,
    pub body_bytes: u64,
    pub uri: String,
}

pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
}

/// The nginx binary: `$ESTARGZ_NGINX`, `nginx` on PATH, or the usual sbin
/// directories (Debian installs it in /usr/sbin, often not on PATH).
fn find_nginx() -> Option<PathBuf> {
    let sbin = ["/usr/sbin", "/usr/local/sbin", "/sbin"];
    crate::tools::find_tool("ESTARGZ_NGINX", "nginx", &sbin)
}

fn config(dir: &Path, port: u16, tls_port: Option<u16>) -> String {
    let d = dir.display();
    let tls = match tls_port {
        Some(tls_port) => format!(
            "server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {d}/server.pem; \
             ssl_certificate_key {d}/server.key; root {d}/www; }}"
        ),
        None => String::new(),
    };
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format ranges '$status|$http_range|$body_bytes_sent|$request_uri';
    access_log {d}/access.log ranges;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location = /.ready {{
            alias {d}/ready;
            access_log off;
        }}
        location /noranges/ {{
            alias {d}/www/;
            max_ranges 0;
        }}
        location /flaky/ {{
            alias {d}/www/;
            if ($http_range !~ "^bytes=-") {{
                return 503;
            }}
        }}
        location /slow/ {{
            alias {d}/www/;
            limit_rate 256k;
        }}
        location /moved/ {{
            rewrite ^/moved/(.*)$ /$1 redirect;
        }}
        location ~ ^/temp/(.*)$ {{
            return 307 /stored/$1?X-Amz-Expires=600;
        }}
        location /stored/ {{
            alias {d}/www/;
        }}
        location /challenge/ {{
            alias {d}/www/;
            if ($http_authorization != "Bearer {TOKEN}") {{
                add_header WWW-Authenticate 'Bearer realm="https://auth.example/token",service="test"' always;
                return 401;
            }}
        }}
        location /private/ {{
            alias {d}/www/;
            if ($http_authorization != "Bearer {TOKEN}") {{
                return 401;
            }}
        }}
    }}
    {tls}
}}
"#
    )
}

/// A port for HTTP and, with `tls`, another for HTTPS, free a moment ago.
/// Both listeners are held until both are picked, so the two differ.
fn free_ports(tls: bool) -> (u16, Option<u16>) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let plain = bind();
    let secure = tls.then(bind);
    let port = |l: &TcpListener| l.local_addr().expect("a bound address").port();
    (port(&plain), secure.as_ref().map(port))
}

/// Waits until `child` answers `/.ready` on `port` with `token`, and is
/// still running after; an error when it exits first (it could not bind,
/// say: it is started again on other ports). Panics after 30 s (generous:
/// the machine may be loaded).
pub fn wait_ready(child: &mut Child, port: u16, token: &str, dir: &Path) -> Result<(), String> {
    let what = format!("nginx (its readiness token on 127.0.0.1:{port})");
    let ready = || probe(port).is_some_and(|body| body == token.as_bytes());
    crate::tools::poll_ready(child, &what, Duration::from_millis(20), ready).map_err(|status| {
        let mut stderr = String::new();
        if let Some(mut s) = child.stderr.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut stderr);
        }
        let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
        format!("nginx exited with {status}: {stderr}{log}")
    })
}

/// The body of `GET /.ready` on `port` when the answer is `200`; `None`
/// when nothing answers that, in time (another process may hold the port).
fn probe(port: u16) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(1);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream
        .write_all(b"GET /.ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = Vec::new();
    stream.take(64 << 10).read_to_end(&mut response).ok()?;
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    response
        .starts_with(b"HTTP/1.1 200 ")
        .then(|| response.split_off(head_end + 4))
}

impl Nginx {
    /// Starts nginx, or returns `None` (with a loud message) when it is not
    /// installed and `CI` is unset. In CI a missing nginx fails the test:
    /// `scripts/test.sh` installs it.
    pub fn start() -> Option<Nginx> {
        Nginx::start_inner(false)
    }

    /// [`Nginx::start`], also serving `www/` over HTTPS (see
    /// [`Nginx::https_url`]) with a certificate signed by [`Nginx::ca`].
    pub fn start_with_tls() -> Option<Nginx> {
        Nginx::start_inner(true)
    }

    fn start_inner(tls: bool) -> Option<Nginx> {
        let Some(binary) = find_nginx() else {
            if std::env::var_os("CI").is_some() {
                panic!("nginx not found (CI is set): scripts/test.sh installs it; or set ESTARGZ_NGINX");
            }
            eprintln!(
                "\n*** SKIPPING remote-blob test: nginx not found (apt-get install nginx, or set ESTARGZ_NGINX) ***\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        if tls {
            crate::certs::make_certificates(dir.path());
        }
        // Unique to this instance: the directory is, and the time tells
        // apart two instances that happen to reuse a directory name.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!("{} {} {nanos}\n", dir.path().display(), std::process::id());
        std::fs::write(dir.path().join("ready"), &token).unwrap();
        let mut last_error = String::new();
        for _ in 0..5 {
            let (port, tls_port) = free_ports(tls);
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), port, tls_port)).unwrap();
            let mut child = Command::new(&binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            match wait_ready(&mut child, port, &token, dir.path()) {
                Ok(()) => {
                    return Some(Nginx {
                        child,
                        dir,
                        port,
                        tls_port,
                    })
                }
                Err(e) => last_error = e,
            }
        }
        panic!("cannot start nginx: {last_error}");
    }

    /// The directory served.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// Puts `bytes` at `www/name`.
    pub fn serve(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.www().join(name), bytes).unwrap();
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// `https://127.0.0.1:TLS_PORT/PATH` (after [`Nginx::start_with_tls`]).
    pub fn https_url(&self, path: &str) -> String {
        let port = self.tls_port.expect("started with start_with_tls");
        format!("https://127.0.0.1:{port}/{}", path.trim_start_matches('/'))
    }

    /// The CA certificate (PEM file) of the HTTPS server.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Every request logged so far. nginx logs a request after sending the
    /// response, so a client may exit a moment before its last request is
    /// written: wait until the log stops growing.
    pub fn requests(&self) -> Vec<Request> {
        let path = self.dir.path().join("access.log");
        let read = || std::fs::read_to_string(&path).unwrap_or_default();
        let mut text = read();
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(25));
            let again = read();
            if again == text {
                break;
            }
            text = again;
        }
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.splitn(4, '|').collect();
                assert_eq!(f.len(), 4, "access log line {line:?}");
                Request {
                    status: f[0].parse().unwrap(),
                    range: (f[1] != "-").then(|| f[1].to_string()),
                    body_bytes: f[2].parse().unwrap(),
                    uri: f[3].to_string(),
                }
            })
            .collect()
    }

    /// The requests logged while `f` ran.
    pub fn requests_during<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<Request>) {
        let before = self.requests().len();
        let value = f();
        let mut all = self.requests();
        (value, all.split_off(before.min(all.len())))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
