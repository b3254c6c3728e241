//! A tiny in-process registry for what the real one will not do: issue
//! Bearer challenges and tokens (distribution's token auth needs a JWT
//! issuer with its own keys), expire tokens on demand, and serve blobs
//! whose bytes are wrong or cut short.
//!
//! One thread accepts; each connection is answered once and closed.
//!
//! - `GET /token?service=…&scope=…`: `401` unless `Authorization` is Basic
//!   for [`super::registry::USER`] / [`super::registry::PASSWORD`] (or
//!   anonymous tokens are allowed); else `{"token":"tok-N"}`.
//! - `/v2/…` without a valid `Bearer tok-N`: `401` with a Bearer
//!   challenge.
//! - `GET /v2/REPO/blobs/DIGEST`: the blob registered with [`Fake::blob`],
//!   with its announced length; else `404 BLOB_UNKNOWN`.
//!   A token is valid for the number of requests set by
//!   [`Fake::set_uses_per_token`] (100 unless set).
//! - `GET /v2/REPO/manifests/…`: `404 MANIFEST_UNKNOWN`.
//! - Any path given to [`Fake::fail`]: that status, that many times.

use base64::Engine;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    issued: u32,
    /// Remaining uses by token.
    tokens: HashMap<String, u32>,
    /// Failures still to answer (status, count), by path.
    failures: HashMap<String, (u16, u32)>,
    /// Bytes served and length announced, by path.
    blobs: HashMap<String, (Vec<u8>, usize)>,
}

pub struct Fake {
    port: u16,
    state: Arc<Mutex<State>>,
    uses_per_token: Arc<Mutex<u32>>,
}

impl Fake {
    pub fn start(anonymous_tokens: bool) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let uses = Arc::new(Mutex::new(100));
        let (s, u) = (state.clone(), uses.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (s, u) = (s.clone(), u.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, port, &s, &u, anonymous_tokens);
                });
            }
        });
        Fake {
            port,
            state,
            uses_per_token: uses,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Serves `body` at `/v2/REPO/blobs/DIGEST`, announcing `announced`
    /// bytes (more than the body: the connection closes early).
    pub fn blob(&self, repo: &str, digest: &str, body: &[u8], announced: usize) {
        self.state.lock().unwrap().blobs.insert(
            format!("/v2/{repo}/blobs/{digest}"),
            (body.to_vec(), announced),
        );
    }

    /// How many requests a token issued from now on is good for.
    pub fn set_uses_per_token(&self, n: u32) {
        *self.uses_per_token.lock().unwrap() = n;
    }

    /// Answers the next `count` requests for `path` with `status` and
    /// `Retry-After: 0`.
    pub fn fail(&self, path: &str, status: u16, count: u32) {
        self.state
            .lock()
            .unwrap()
            .failures
            .insert(path.to_string(), (status, count));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Every token issued so far stops working.
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
    announced: usize,
) -> std::io::Result<()> {
    let mut head =
        format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {announced}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// Answers with `body`, announcing its true length.
fn respond_whole(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    respond(stream, status, headers, body, body.len())
}

fn error_json(code: &str) -> Vec<u8> {
    format!(r#"{{"errors":[{{"code":"{code}","message":"{code} here","detail":null}}]}}"#)
        .into_bytes()
}

/// The request line and the `Authorization` header; the rest is skipped.
fn read_request(stream: &TcpStream) -> std::io::Result<Seen> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    Ok(Seen {
        method,
        target,
        authorization,
    })
}

/// A new token if `authorization` earns one, registered with its uses.
fn issue_token(
    st: &mut State,
    uses: &Mutex<u32>,
    authorization: Option<&str>,
    anonymous_tokens: bool,
) -> Option<String> {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            super::registry::USER,
            super::registry::PASSWORD
        ))
    );
    let allowed =
        authorization == Some(basic.as_str()) || (anonymous_tokens && authorization.is_none());
    if !allowed {
        return None;
    }
    st.issued += 1;
    let token = format!("tok-{}", st.issued);
    let n = *uses.lock().unwrap();
    st.tokens.insert(token.clone(), n);
    Some(token)
}

/// Whether `authorization` carries a token with uses left; spends one.
fn spend_token(st: &mut State, authorization: Option<&str>) -> bool {
    let token = authorization.and_then(|a| a.strip_prefix("Bearer "));
    match token.and_then(|t| st.tokens.get_mut(t)) {
        Some(left) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    }
}

fn serve(
    mut stream: TcpStream,
    port: u16,
    state: &Mutex<State>,
    uses: &Mutex<u32>,
    anonymous_tokens: bool,
) -> std::io::Result<()> {
    // A TLS handshake (the client's https probe): hang up, as a plain
    // HTTP server that answers garbage at once would.
    let mut first = [0u8; 1];
    if stream.peek(&mut first)? == 0 || first[0] == 0x16 {
        return Ok(());
    }
    let request = read_request(&stream)?;
    let target = request.target.clone();
    let authorization = request.authorization.clone();
    let mut st = state.lock().unwrap();
    st.seen.push(request);
    if target.starts_with("/token") {
        let token = issue_token(&mut st, uses, authorization.as_deref(), anonymous_tokens);
        drop(st);
        let Some(token) = token else {
            let body = error_json("UNAUTHORIZED");
            return respond_whole(&mut stream, "401 Unauthorized", &[], &body);
        };
        let body = format!(r#"{{"token":"{token}","expires_in":300}}"#).into_bytes();
        return respond_whole(&mut stream, "200 OK", &[], &body);
    }
    if !spend_token(&mut st, authorization.as_deref()) {
        drop(st);
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake registry",scope="repository:x:pull""#
        );
        let body = error_json("UNAUTHORIZED");
        let headers = [("WWW-Authenticate", challenge)];
        return respond_whole(&mut stream, "401 Unauthorized", &headers, &body);
    }
    if let Some((status, left)) = st.failures.get_mut(&target).filter(|(_, n)| *n > 0) {
        *left -= 1;
        let status = format!("{status} Try Later");
        drop(st);
        let retry = [("Retry-After", "0".to_string())];
        return respond(&mut stream, &status, &retry, b"", 0);
    }
    let blob = st.blobs.get(&target).cloned();
    drop(st);
    match blob {
        Some((body, announced)) => respond(&mut stream, "200 OK", &[], &body, announced),
        None if target.contains("/manifests/") => {
            let body = error_json("MANIFEST_UNKNOWN");
            respond_whole(&mut stream, "404 Not Found", &[], &body)
        }
        None => {
            let body = error_json("BLOB_UNKNOWN");
            respond_whole(&mut stream, "404 Not Found", &[], &body)
        }
    }
}
