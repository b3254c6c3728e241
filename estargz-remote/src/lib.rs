//! Lazy reads of eStargz blobs over HTTP(S) range requests.
//!
//! [`HttpBlob`] implements [`estargz_core::read::ReadAt`], so a
//! [`Blob`](estargz_core::read::Blob) opened on it reads a remote blob the
//! way it reads a local file: the footer, the TOC, then only the gzip
//! members of the files asked for.
//!
//! What it costs on the wire:
//!
//! - [`HttpBlob::open`] makes one request, for the last
//!   [`HttpOptions::tail_size`] bytes (`Range: bytes=-N`). Its
//!   `Content-Range` gives the blob size, and the bytes are kept: they hold
//!   the footer and, for most layers, the whole TOC, so opening the blob
//!   usually costs no second request.
//! - Any other read is one request for exactly the bytes asked for, except
//!   that a read starting where the previous request ended doubles the
//!   request size (up to [`HttpOptions::max_request`]), so sequential
//!   readers (`verify`, digests) make a few large requests rather than many
//!   small ones. The last response is kept to serve the reads inside it.
//!
//! Memory is bounded by the tail plus one request of at most
//! `max_request` bytes (a single larger read is fetched for that read
//! alone and not kept).
//!
//! Every response is checked: `206 Partial Content` with a `Content-Range`
//! for exactly the requested start, the blob size it was opened with, and
//! a body of the announced length. Redirects are followed (registries
//! redirect blob downloads to storage); an `Authorization` header is not
//! sent on to another host.
//!
//! ```no_run
//! use estargz_core::read::{Blob, OpenOptions};
//! use estargz_remote::{HttpBlob, HttpOptions};
//!
//! let source = HttpBlob::open("https://example.com/layer.esgz.tar.gz", &HttpOptions::default())?;
//! let blob = Blob::open(source, &OpenOptions::default())?;
//! let hostname = blob.read_file("etc/hostname")?;
//! println!("{} bytes, {} requests", hostname.len(), blob.source().requests());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

use estargz_core::read::ReadAt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::StatusCode;

/// Whether `name` is an `http://` or `https://` URL (the scheme is
/// case-insensitive), i.e. something [`HttpBlob::open`] takes.
///
/// ```
/// assert!(estargz_remote::is_url("https://registry.example/v2/x/blobs/sha256:00"));
/// assert!(!estargz_remote::is_url("layer.tar.gz"));
/// ```
pub fn is_url(name: &str) -> bool {
    let lower = |n: usize| name.get(..n).map(str::to_ascii_lowercase);
    lower(7).as_deref() == Some("http://") || lower(8).as_deref() == Some("https://")
}

/// How [`HttpBlob`] talks to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Extra request headers, e.g. `("Authorization", "Bearer …")` for a
    /// registry. `Authorization` is dropped on a redirect to another host.
    pub headers: Vec<(String, String)>,
    /// Bytes fetched from the end of the blob on open and kept. 512 KiB
    /// holds the footer and the TOC of most layers, so that opening costs
    /// one request.
    pub tail_size: u64,
    /// Largest request made to read ahead for a sequential reader, and the
    /// largest response kept for later reads.
    pub max_request: u64,
    /// Time allowed to connect (DNS, TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest wait for any one read from the connection (response headers
    /// or body): a stalled server fails rather than hangs.
    pub read_timeout: Duration,
    /// Redirects followed per request.
    pub max_redirects: u32,
    /// PEM certificates to trust for HTTPS *instead of* the bundled Mozilla
    /// roots, e.g. a private registry's CA. `None`: the Mozilla roots.
    pub ca_certs: Option<Vec<u8>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            headers: Vec::new(),
            tail_size: 512 << 10,
            max_request: 8 << 20,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            max_redirects: 10,
            ca_certs: None,
        }
    }
}

/// Why a request failed. Each message names the URL and the byte range
/// requested.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No response: connection, TLS, DNS, timeout, too many redirects.
    // The cause is in the message rather than a `source()`: callers that
    // print the chain (anyhow's `{:#}`) would show it twice.
    #[error("GET {url} ({range}): {cause}")]
    Transport {
        /// The URL (without credentials).
        url: String,
        /// The `Range` header sent.
        range: String,
        /// What went wrong.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A status other than the expected `206 Partial Content`.
    #[error("GET {url} ({range}): HTTP {status}")]
    Status {
        /// The URL (without credentials).
        url: String,
        /// The `Range` header sent.
        range: String,
        /// Status code and reason, e.g. `404 Not Found`.
        status: String,
    },
    /// The server sent the whole blob (`200 OK`) although a range was
    /// asked for, and the blob is too large to take whole.
    #[error(
        "GET {url} ({range}): the server does not serve range requests \
         (200 OK with the whole blob{} instead of 206 Partial Content); \
         reading a remote blob needs them",
        .length.map(|l| format!(", {l} bytes")).unwrap_or_default()
    )]
    RangesNotSupported {
        /// The URL (without credentials).
        url: String,
        /// The `Range` header sent.
        range: String,
        /// The `Content-Length` of the whole blob, when sent.
        length: Option<u64>,
    },
    /// A `206` whose headers do not describe the requested bytes.
    #[error("GET {url} ({range}): bad response: {reason}")]
    BadResponse {
        /// The URL (without credentials).
        url: String,
        /// The `Range` header sent.
        range: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The body ended early or the connection failed while reading it.
    #[error("GET {url} ({range}): reading the body: {cause}")]
    Body {
        /// The URL (without credentials).
        url: String,
        /// The `Range` header sent.
        range: String,
        /// What went wrong.
        cause: io::Error,
    },
    /// [`HttpOptions::ca_certs`] holds no certificate, or a malformed one.
    #[error("CA certificates: {reason}")]
    BadCaCerts {
        /// Why.
        reason: String,
    },
    /// A header given in [`HttpOptions::headers`] is not a valid header.
    #[error("invalid HTTP header {name:?}: {reason}")]
    BadHeader {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The byte range a request asks for.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// The last `n` bytes.
    Suffix(u64),
    /// `[start, end)`, not empty.
    Range(u64, u64),
}

impl Want {
    fn header(self) -> String {
        match self {
            Want::Suffix(n) => format!("bytes=-{n}"),
            Want::Range(start, end) => format!("bytes={start}-{}", end - 1),
        }
    }
}

/// A parsed `Content-Range: bytes FIRST-LAST/TOTAL` (or `bytes */TOTAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    /// `[first, last]`, absent for `*`.
    span: Option<(u64, u64)>,
    total: u64,
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok()?;
    let span = match span.trim() {
        "*" => None,
        s => {
            let (first, last) = s.split_once('-')?;
            let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
            if first > last || last >= total {
                return None;
            }
            Some((first, last))
        }
    };
    Some(ContentRange { span, total })
}

/// The URL as shown in messages: `user:password@` removed.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end], &url[scheme_end + at + 1..]),
        None => url.to_string(),
    }
}

/// Bytes `[start, start + data.len())` of the blob.
#[derive(Debug, Default)]
struct Window {
    start: u64,
    data: Vec<u8>,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// Copies what it holds of `[offset, ..)` into `buf`.
    fn copy_to(&self, offset: u64, buf: &mut [u8]) -> Option<usize> {
        if offset < self.start || offset >= self.end() {
            return None;
        }
        let from = (offset - self.start) as usize;
        let n = buf.len().min(self.data.len() - from);
        buf[..n].copy_from_slice(&self.data[from..from + n]);
        Some(n)
    }
}

/// What the last request fetched, for the reads that follow it.
#[derive(Debug, Default)]
struct Cache {
    /// The last response kept (at most `max_request` bytes).
    window: Window,
    /// Where the last request ended and how long it was: a read starting
    /// there is sequential and gets a larger request.
    last_end: u64,
    last_len: u64,
}

/// A remote blob read with HTTP range requests; see the [crate] docs.
pub struct HttpBlob {
    agent: ureq::Agent,
    /// As given: credentials included, for the requests.
    request_url: String,
    shown_url: String,
    headers: Vec<(String, String)>,
    size: u64,
    /// The blob's last bytes, fetched on open.
    tail: Window,
    max_request: u64,
    cache: Mutex<Cache>,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl std::fmt::Debug for HttpBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the headers: they may carry credentials.
        f.debug_struct("HttpBlob")
            .field("url", &self.shown_url)
            .field("size", &self.size)
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

impl HttpBlob {
    /// Opens the blob at `url` with one request for its tail, which gives
    /// its size.
    ///
    /// A server that ignores the `Range` header is accepted only when the
    /// whole blob is no larger than [`HttpOptions::tail_size`] (it is then
    /// all kept); otherwise that is [`Error::RangesNotSupported`].
    ///
    /// ```no_run
    /// use estargz_remote::{HttpBlob, HttpOptions};
    ///
    /// let opts = HttpOptions {
    ///     headers: vec![("Authorization".into(), "Bearer TOKEN".into())],
    ///     ..HttpOptions::default()
    /// };
    /// let blob = HttpBlob::open("https://registry.example/v2/app/blobs/sha256:…", &opts)?;
    /// println!("{} bytes", blob.size());
    /// # Ok::<(), estargz_remote::Error>(())
    /// ```
    pub fn open(url: &str, opts: &HttpOptions) -> Result<HttpBlob, Error> {
        for (name, value) in &opts.headers {
            ureq::http::HeaderName::try_from(name.as_str()).map_err(|e| Error::BadHeader {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            ureq::http::HeaderValue::try_from(value.as_str()).map_err(|e| Error::BadHeader {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        }
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = &opts.ca_certs {
            let mut roots = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Error::BadCaCerts {
                            reason: e.to_string(),
                        })
                    }
                }
            }
            if roots.is_empty() {
                return Err(Error::BadCaCerts {
                    reason: "no PEM certificate found".into(),
                });
            }
            tls = tls.root_certs(roots.into());
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            // Statuses are checked here, with the URL and range in the message.
            .http_status_as_error(false)
            .max_redirects(opts.max_redirects)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.read_timeout))
            // Byte ranges of the stored blob, never a re-encoded body.
            .accept_encoding("identity")
            .user_agent(concat!("estargz/", env!("CARGO_PKG_VERSION")))
            .build();
        let mut blob = HttpBlob {
            agent: config.into(),
            request_url: url.to_string(),
            shown_url: redact(url),
            headers: opts.headers.clone(),
            size: 0,
            tail: Window::default(),
            max_request: opts.max_request.max(1),
            cache: Mutex::new(Cache::default()),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let (tail, size) = blob.get(Want::Suffix(opts.tail_size.max(1)))?;
        blob.size = size;
        blob.tail = tail;
        Ok(blob)
    }

    /// The blob size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The URL (as shown in messages: without credentials).
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    /// Requests made so far, including the one made by [`HttpBlob::open`].
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Body bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Makes one request; returns the bytes received and the blob size the
    /// server reported.
    fn get(&self, want: Want) -> Result<(Window, u64), Error> {
        let range = want.header();
        let transport = |cause: Box<dyn std::error::Error + Send + Sync>| Error::Transport {
            url: self.shown_url.clone(),
            range: range.clone(),
            cause,
        };
        let bad = |reason: String| Error::BadResponse {
            url: self.shown_url.clone(),
            range: range.clone(),
            reason,
        };
        let mut request = self.agent.get(&self.request_url).header("Range", &range);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.call().map_err(|e| transport(Box::new(e)))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("<not ASCII>").to_string())
        };
        let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        // Offsets are into the stored bytes: a re-encoded body would shift them.
        if let Some(encoding) = header("content-encoding") {
            if !encoding.trim().eq_ignore_ascii_case("identity") && status.is_success() {
                return Err(bad(format!(
                    "Content-Encoding {encoding:?} instead of the stored bytes"
                )));
            }
        }
        let (start, len, total) = match status {
            StatusCode::PARTIAL_CONTENT => {
                let value = header("content-range")
                    .ok_or_else(|| bad("206 Partial Content without a Content-Range".into()))?;
                let parsed = parse_content_range(&value)
                    .ok_or_else(|| bad(format!("malformed Content-Range {value:?}")))?;
                let Some((first, last)) = parsed.span else {
                    return Err(bad(format!("206 with Content-Range {value:?}")));
                };
                let expected_first = match want {
                    Want::Suffix(n) => parsed.total.saturating_sub(n),
                    Want::Range(start, _) => start,
                };
                let fits = match want {
                    Want::Suffix(_) => last == parsed.total - 1,
                    Want::Range(_, end) => last < end,
                };
                if first != expected_first || !fits {
                    return Err(bad(format!(
                        "Content-Range {value:?} is not the range requested"
                    )));
                }
                (first, last - first + 1, parsed.total)
            }
            // A suffix range of an empty blob cannot be satisfied.
            StatusCode::RANGE_NOT_SATISFIABLE if matches!(want, Want::Suffix(_)) => {
                match header("content-range")
                    .as_deref()
                    .and_then(parse_content_range)
                {
                    // Its body, if any, is an error page.
                    Some(ContentRange {
                        span: None,
                        total: 0,
                    }) => return Ok((Window::default(), 0)),
                    _ => return Err(self.status_error(&range, status)),
                }
            }
            StatusCode::OK => match (want, content_length) {
                // The whole blob is what was asked for anyway.
                (Want::Suffix(n), Some(length)) if length <= n => (0, length, length),
                _ => {
                    return Err(Error::RangesNotSupported {
                        url: self.shown_url.clone(),
                        range,
                        length: content_length,
                    })
                }
            },
            _ => return Err(self.status_error(&range, status)),
        };
        if let Some(length) = content_length {
            if length != len {
                return Err(bad(format!(
                    "Content-Length {length} does not match the {len} bytes of its range"
                )));
            }
        }
        if self.size != total && !matches!(want, Want::Suffix(_)) {
            return Err(bad(format!(
                "the blob is now {total} bytes; it was {} when opened",
                self.size
            )));
        }
        let body_error = |cause: io::Error| Error::Body {
            url: self.shown_url.clone(),
            range: range.clone(),
            cause,
        };
        // `len` is at most what was asked for, itself bounded by the
        // caller's buffer or the options.
        let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let (_, body) = response.into_parts();
        body.into_with_config()
            .limit(len.saturating_add(1))
            .reader()
            .take(len.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(body_error)?;
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        if data.len() as u64 != len {
            return Err(body_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} bytes received, {len} announced", data.len()),
            )));
        }
        Ok((Window { start, data }, total))
    }

    fn status_error(&self, range: &str, status: StatusCode) -> Error {
        Error::Status {
            url: self.shown_url.clone(),
            range: range.to_string(),
            status: match status.canonical_reason() {
                Some(reason) => format!("{} {reason}", status.as_u16()),
                None => status.as_u16().to_string(),
            },
        }
    }
}

impl ReadAt for HttpBlob {
    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        if let Some(n) = self.tail.copy_to(offset, buf) {
            return Ok(n);
        }
        // Everything from the tail's start on is already here.
        let limit = self.tail.start.min(self.size);
        let wanted = (buf.len() as u64).min(limit - offset);
        let request_len = {
            let cache = self
                .cache
                .lock()
                .map_err(|_| io::Error::other("cache lock poisoned"))?;
            if let Some(n) = cache.window.copy_to(offset, buf) {
                return Ok(n);
            }
            if offset == cache.last_end && cache.last_len > 0 {
                wanted.max(cache.last_len.saturating_mul(2).min(self.max_request))
            } else {
                wanted
            }
        }
        .min(limit - offset);
        let (window, _) = self
            .get(Want::Range(offset, offset + request_len))
            .map_err(io::Error::other)?;
        let n = window
            .copy_to(offset, buf)
            .ok_or_else(|| io::Error::other(format!("{}: empty response", self.shown_url)))?;
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| io::Error::other("cache lock poisoned"))?;
        cache.last_end = window.end();
        cache.last_len = window.data.len() as u64;
        if window.data.len() as u64 <= self.max_request {
            cache.window = window;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 0-9/10"),
            Some(ContentRange {
                span: Some((0, 9)),
                total: 10
            })
        );
        assert_eq!(
            parse_content_range("bytes */0"),
            Some(ContentRange {
                span: None,
                total: 0
            })
        );
        for bad in [
            "",
            "bytes",
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes 0-9/*",
            "items 0-9/10",
            "bytes -1-9/10",
            "bytes 0-99999999999999999999/1",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn urls() {
        assert!(is_url("HTTP://x/y"));
        assert!(is_url("https://x"));
        assert!(!is_url("ftp://x"));
        assert!(!is_url("http:/x"));
        assert!(!is_url("/tmp/http://x"));
        assert_eq!(redact("https://u:p@host/a@b"), "https://host/a@b");
        assert_eq!(redact("http://host/x?a=b@c"), "http://host/x?a=b@c");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn window_copies_only_what_it_holds() {
        let w = Window {
            start: 10,
            data: vec![1, 2, 3],
        };
        let mut buf = [0u8; 5];
        assert_eq!(w.copy_to(9, &mut buf), None);
        assert_eq!(w.copy_to(13, &mut buf), None);
        assert_eq!(w.copy_to(11, &mut buf), Some(2));
        assert_eq!(&buf[..2], &[2, 3]);
    }

    #[test]
    fn refused_header_is_an_error_before_any_request() {
        let opts = HttpOptions {
            headers: vec![("Bad Name".into(), "v".into())],
            ..HttpOptions::default()
        };
        let err = HttpBlob::open("http://127.0.0.1:9/", &opts).unwrap_err();
        assert!(matches!(err, Error::BadHeader { .. }), "{err}");
    }
}
