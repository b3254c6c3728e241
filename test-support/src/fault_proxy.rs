//! A fault-injecting HTTP/1.1 proxy in front of a server the tests started
//! (a registry), to interrupt a push deterministically: it forwards
//! requests until a set number of blob uploads (`PUT …/blobs/uploads/…`
//! with a `digest=`, the request that commits a blob) have gone through,
//! cuts the next one half way through its body, and from then on closes
//! every connection, as a network that went down in the middle of a push.
//! What is cut depends only on the order of requests, never on timing.
//!
//! It connects to the upstream from [`PROXY_SOURCE`] (127.0.0.2), so the
//! upstream's access log, which starts each line with the client's
//! address, tells what came through the proxy from what was sent directly,
//! however late the upstream writes a line.
//!
//! Requests are framed by `Content-Length` or chunked
//! `Transfer-Encoding`, so a connection may carry any number of them.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The address the proxy connects to its upstream from.
pub const PROXY_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Longest request head the proxy reads.
const MAX_HEAD: usize = 64 << 10;

/// The proxy, serving on a loopback port of its own until dropped.
pub struct FaultProxy {
    shared: Arc<Shared>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    allowed: usize,
    /// Blob-committing PUTs seen, the cut one included.
    uploads: AtomicUsize,
    down: AtomicBool,
    stop: AtomicBool,
    /// Every socket opened, to close them all on drop.
    sockets: Mutex<Vec<TcpStream>>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`HOST:PORT`) that lets `uploads` blob
    /// uploads through and cuts the next. Bound to port 0, so ready
    /// (and free of races) on return.
    pub fn start(upstream: &str, uploads: usize) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let shared = Arc::new(Shared {
            upstream,
            allowed: uploads,
            uploads: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
        });
        let serving = Arc::clone(&shared);
        let thread = std::thread::spawn(move || accept(&listener, &serving));
        FaultProxy {
            shared,
            port,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, where clients connect.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Blob uploads forwarded whole so far (at most the number allowed).
    pub fn uploads_passed(&self) -> usize {
        self.shared
            .uploads
            .load(Ordering::SeqCst)
            .min(self.shared.allowed)
    }

    /// Whether an upload was cut (and the proxy is down since).
    pub fn tripped(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.down.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The connections' threads end once their sockets are shut.
        if let Ok(sockets) = self.shared.sockets.lock() {
            for s in sockets.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.down.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let shared = Arc::clone(shared);
        std::thread::spawn(move || {
            let _ = serve(client, &shared);
        });
    }
}

/// `connect(2)` to `to` from `source` (std connects only from the
/// address the kernel picks).
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddrV4::new(source, 0))?;
    connect(&fd, &to)?;
    Ok(TcpStream::from(fd))
}

/// How a request's body is framed.
#[derive(Clone, Copy)]
enum Body {
    Length(u64),
    Chunked,
}

/// What the proxy does with one request.
enum Verdict {
    Forward,
    /// Forward the head and half the body (what comes of a chunked one
    /// before the first chunk), then cut.
    Cut,
    /// Send nothing more: cut.
    Close,
}

/// Relays one client connection: responses are copied back as they come;
/// requests are read one at a time and judged.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let upstream = connect_from(PROXY_SOURCE, shared.upstream)?;
    if let Ok(mut sockets) = shared.sockets.lock() {
        sockets.push(client.try_clone()?);
        sockets.push(upstream.try_clone()?);
    }
    let (mut from_upstream, mut to_client) = (upstream.try_clone()?, client.try_clone()?);
    std::thread::spawn(move || {
        let _ = io::copy(&mut from_upstream, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let cut = relay_requests(&client, &upstream, shared);
    if matches!(cut, Ok(false)) {
        // The client finished sending: let the last response through.
        let _ = upstream.shutdown(Shutdown::Write);
    } else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
    }
    cut.map(|_| ())
}

/// Forwards requests until the client stops sending (`Ok(false)`) or a
/// request is cut (`Ok(true)`).
fn relay_requests(client: &TcpStream, upstream: &TcpStream, shared: &Shared) -> io::Result<bool> {
    let mut reader = BufReader::new(client);
    let mut writer = upstream;
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(false);
        };
        let (body, verdict) = judge(&head, shared)?;
        match (verdict, body) {
            (Verdict::Close, _) | (Verdict::Cut, Body::Length(0)) => return Ok(true),
            (Verdict::Cut, Body::Length(n)) => {
                writer.write_all(&head)?;
                io::copy(&mut (&mut reader).take(n / 2), &mut writer)?;
                return Ok(true);
            }
            (Verdict::Cut, Body::Chunked) => {
                writer.write_all(&head)?;
                return Ok(true);
            }
            (Verdict::Forward, Body::Length(n)) => {
                writer.write_all(&head)?;
                if io::copy(&mut (&mut reader).take(n), &mut writer)? < n {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            (Verdict::Forward, Body::Chunked) => {
                writer.write_all(&head)?;
                forward_chunked(&mut reader, &mut writer)?;
            }
        }
    }
}

/// The next request head, up to and with its empty line; `None` when the
/// connection ends between requests.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        if (&mut *reader)
            .take((MAX_HEAD + 1 - before) as u64)
            .read_until(b'\n', &mut head)?
            == 0
        {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.len() > MAX_HEAD {
            return Err(invalid("request head too long"));
        }
        if head[before..] == *b"\r\n" && before > 0 {
            return Ok(Some(head));
        }
    }
}

/// A chunked body (RFC 9112 §7.1): chunks until the last, then the
/// trailer section, copied as they come.
fn forward_chunked(reader: &mut impl BufRead, writer: &mut impl Write) -> io::Result<()> {
    loop {
        let line = read_line(reader)?;
        writer.write_all(&line)?;
        let size = String::from_utf8_lossy(&line);
        let size = size.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(invalid)?;
        if size == 0 {
            break;
        }
        // The data and its CRLF.
        if io::copy(&mut (&mut *reader).take(size + 2), writer)? < size + 2 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    loop {
        let line = read_line(reader)?;
        writer.write_all(&line)?;
        if line == b"\r\n" {
            return Ok(());
        }
    }
}

fn read_line(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    reader.take(MAX_HEAD as u64).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line)
}

/// The framing of the request whose head is `head`, and the proxy's
/// verdict on it.
fn judge(head: &[u8], shared: &Shared) -> io::Result<(Body, Verdict)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = request.parse(head).map_err(invalid)? else {
        return Err(invalid("incomplete request head"));
    };
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let body = match (header("transfer-encoding"), header("content-length")) {
        (Some(coding), _) if coding.ends_with("chunked") => Body::Chunked,
        (Some(coding), _) => return Err(invalid(format!("transfer-encoding {coding}"))),
        (None, Some(v)) => Body::Length(v.parse::<u64>().map_err(invalid)?),
        (None, None) => Body::Length(0),
    };
    let path = request.path.unwrap_or("");
    let commits_blob = request.method == Some("PUT")
        && path.contains("/blobs/uploads/")
        && path.contains("digest=");
    let verdict = if shared.down.load(Ordering::SeqCst) {
        Verdict::Close
    } else if commits_blob && shared.uploads.fetch_add(1, Ordering::SeqCst) >= shared.allowed {
        shared.down.store(true, Ordering::SeqCst);
        Verdict::Cut
    } else {
        Verdict::Forward
    };
    Ok((body, verdict))
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
