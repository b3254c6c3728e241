//! A loopback HTTP server that misbehaves on purpose, one way per request:
//! trickles, resets the connection, answers `503`, lies about the range.
//!
//! The listener is bound to `127.0.0.1:0` and kept, so no other process can
//! take its port. Each connection gets a thread and one response
//! (`Connection: close`). Everything stops by itself: the accept loop when
//! the [`Server`] is dropped or after [`LIFETIME`], a trickle when the
//! client leaves, the server is dropped, or [`LIFETIME`] has passed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a server or any of its connections lives.
pub const LIFETIME: Duration = Duration::from_secs(90);
/// The pause between two bytes of a trickle.
pub const TRICKLE: Duration = Duration::from_millis(100);

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `206` with the requested bytes of the blob.
    Good,
    /// The good response, one byte every [`TRICKLE`].
    Trickle,
    /// The good response's headers at once, then its body one byte every
    /// [`TRICKLE`].
    TrickleBody,
    /// The good response's headers and half its body, then a TCP reset.
    ResetMidBody,
    /// This status, with these extra headers and a short body.
    Status(u16, Vec<(&'static str, String)>),
    /// A `206` whose `Content-Range` starts one byte after the one asked for.
    WrongContentRange,
}

pub struct Server {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `blob`, answering request number `n` (from 0) with `reply(n)`.
    pub fn start(blob: Vec<u8>, reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let addr = listener.local_addr().unwrap();
        // Polled, so that the loop sees `stop` without a connection coming.
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (blob, reply) = (Arc::new(blob), Arc::new(reply));
        let shared = (requests.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            let (requests, stop) = shared;
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (blob, reply) = (blob.clone(), reply.clone());
                        let (requests, stop) = (requests.clone(), stop.clone());
                        std::thread::spawn(move || {
                            let _ = answer(stream, &blob, &requests, &stop, &*reply);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            requests,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Reads one request head and answers it.
fn answer(
    mut stream: TcpStream,
    blob: &[u8],
    requests: &AtomicUsize,
    stop: &AtomicBool,
    reply: &dyn Fn(usize) -> Reply,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
        let n = stream.read(&mut buf[..1])?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let head = String::from_utf8_lossy(&head);
    let range = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Range: ")
                .or_else(|| l.strip_prefix("range: "))
        })
        .map(str::trim)
        .unwrap_or("");
    let (start, end) = requested(range, blob.len() as u64);
    let good = |first: u64| {
        let mut r = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{}/{}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            end - 1,
            blob.len(),
            end - first
        )
        .into_bytes();
        let head_len = r.len();
        r.extend_from_slice(&blob[first as usize..end as usize]);
        (r, head_len)
    };
    match reply(n) {
        Reply::Good => stream.write_all(&good(start).0),
        Reply::WrongContentRange => stream.write_all(&good(start + 1).0),
        Reply::Trickle => trickle(&mut stream, &good(start).0, stop),
        Reply::TrickleBody => {
            let (r, head_len) = good(start);
            stream.write_all(&r[..head_len])?;
            trickle(&mut stream, &r[head_len..], stop)
        }
        Reply::ResetMidBody => {
            let (r, head_len) = good(start);
            stream.write_all(&r[..head_len + (r.len() - head_len) / 2])?;
            stream.flush()?;
            // A zero linger makes close() send a reset, not an orderly FIN.
            rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO))?;
            Ok(())
        }
        Reply::Status(code, headers) => {
            let body = format!("status {code}\n");
            let mut r = format!(
                "HTTP/1.1 {code} Status\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                r += &format!("{name}: {value}\r\n");
            }
            r += "\r\n";
            r += &body;
            stream.write_all(r.as_bytes())
        }
    }
}

/// `[start, end)` of a `Range: bytes=-N` or `bytes=A-B` header.
fn requested(range: &str, size: u64) -> (u64, u64) {
    let spec = range.strip_prefix("bytes=").unwrap_or("");
    match spec.split_once('-') {
        Some(("", n)) => (size - n.parse::<u64>().unwrap_or(size).min(size), size),
        Some((a, b)) => {
            let a: u64 = a.parse().unwrap_or(0);
            let b: u64 = b.parse().unwrap_or(size - 1);
            (a.min(size), (b + 1).min(size))
        }
        None => (0, size),
    }
}

/// Writes `bytes` one at a time, [`TRICKLE`] apart, until they are all
/// sent, the client leaves, the server stops, or [`LIFETIME`] is over.
fn trickle(stream: &mut TcpStream, bytes: &[u8], stop: &AtomicBool) -> std::io::Result<()> {
    let started = Instant::now();
    for byte in bytes {
        if stop.load(Ordering::Relaxed) || started.elapsed() > LIFETIME {
            break;
        }
        stream.write_all(std::slice::from_ref(byte))?;
        std::thread::sleep(TRICKLE);
    }
    Ok(())
}
