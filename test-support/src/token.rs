//! A token issuer for the registry's `token` auth: the Bearer flow of the
//! distribution spec as Docker Hub and most private registries run it,
//! against the real registry rather than an in-process fake.
//!
//! It answers `GET /token?service=…&scope=…` on a loopback port of its
//! own (bound to port 0, so no race), checks Basic credentials for
//! [`USER`] / [`PASSWORD`],
//! and returns a JWT granting what was asked. The JWT is RS256, signed by
//! the `openssl` command with a key whose self-signed certificate the
//! registry trusts (`rootcertbundle`) and which rides in the token's
//! `x5c` header, the way distribution verifies it.

use crate::registry::{PASSWORD, USER};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `service` and `issuer` the registry is configured with.
pub const SERVICE: &str = "estargz-test-registry";
pub const ISSUER: &str = "estargz-test-issuer";

/// One request the issuer answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Path and query as sent.
    pub target: String,
    /// The `scope` parameters, decoded.
    pub scopes: Vec<String>,
    /// Whether the Basic credentials were right (`None`: none were sent).
    pub authenticated: Option<bool>,
}

struct Shared {
    key: PathBuf,
    x5c: String,
    seen: Mutex<Vec<TokenRequest>>,
    stop: AtomicBool,
    lifetime: Duration,
}

/// The issuer, serving until dropped.
pub struct TokenIssuer {
    shared: Arc<Shared>,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenIssuer {
    /// Makes the signing key and certificate in `dir` (`token.key`,
    /// `token.pem`, the registry's `rootcertbundle`) and starts serving
    /// tokens valid for `lifetime`.
    pub(crate) fn start(dir: &Path, lifetime: Duration) -> TokenIssuer {
        let key = dir.join("token.key");
        openssl(dir, &["genrsa", "-out", "token.key", "2048"]);
        let subject = "/CN=estargz test token issuer";
        let cert = ["req", "-new", "-x509", "-key", "token.key", "-days", "2"];
        let mut args = cert.to_vec();
        args.extend(["-subj", subject, "-out", "token.pem"]);
        openssl(dir, &args);
        let der = openssl(dir, &["x509", "-in", "token.pem", "-outform", "DER"]);
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let shared = Arc::new(Shared {
            key,
            x5c: STANDARD.encode(der),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            lifetime,
        });
        let serving = Arc::clone(&shared);
        let thread = std::thread::spawn(move || serve(listener, &serving));
        TokenIssuer {
            shared,
            port,
            thread: Some(thread),
        }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    openssl_with_input(dir, args, &[])
}

fn openssl_with_input(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl (scripts/test.sh installs it): {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("openssl reads its input");
    drop(stdin);
    let out = child.wait_with_output().expect("openssl finishes");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn serve(listener: TcpListener, shared: &Shared) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(stream) = stream {
            // One at a time is enough: clients ask for a token per scope.
            let _ = answer(stream, shared);
        }
    }
}

fn answer(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let scopes = query_values(&target, "scope");
    let authenticated = authorization.map(|a| a == basic(USER, PASSWORD));
    if let Ok(mut seen) = shared.seen.lock() {
        seen.push(TokenRequest {
            target: target.clone(),
            scopes: scopes.clone(),
            authenticated,
        });
    }
    let mut stream = stream;
    if authenticated != Some(true) {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        return respond(&mut stream, "401 Unauthorized", body);
    }
    let body = serde_json::json!({
        "token": sign(shared, &scopes),
        "expires_in": shared.lifetime.as_secs(),
    })
    .to_string();
    respond(&mut stream, "200 OK", &body)
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The decoded values of `name` in `target`'s query.
fn query_values(target: &str, name: &str) -> Vec<String> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        });
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `repository:NAME:ACTIONS` scopes as the JWT's `access` claim.
fn access(scopes: &[String]) -> Vec<serde_json::Value> {
    scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let actions: Vec<&str> = actions.split(',').collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect()
}

fn sign(shared: &Shared, scopes: &[String]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [shared.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": USER,
        "aud": SERVICE,
        "iat": now,
        "nbf": now.saturating_sub(60),
        "exp": now + shared.lifetime.as_secs(),
        "jti": format!("{now}-{}", shared.seen.lock().map(|s| s.len()).unwrap_or(0)),
        "access": access(scopes),
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let dir = shared.key.parent().unwrap_or(Path::new("."));
    let key = shared.key.to_string_lossy();
    let signature = openssl_with_input(dir, &["dgst", "-sha256", "-sign", &key], signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}
