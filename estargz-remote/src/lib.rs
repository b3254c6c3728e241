//! Lazy reads of eStargz blobs over HTTP(S) range requests.
//!
//! [`HttpBlob`] implements [`estargz_core::ReadAt`], so a
//! [`Blob`](estargz_core::Blob) opened on it reads a remote blob the
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
//!   for a sequential reader: once three reads in a row each started where
//!   the one before ended, the request size doubles at each request (up to
//!   [`HttpOptions::max_request`]), so `verify` and digests make a few
//!   large requests rather than many small ones. Two reads of adjacent
//!   ranges are not yet sequential, and get exactly what they ask for.
//! - A read that says what its reader goes on to read
//!   ([`ReadAt::read_at_hinted`], which a [`Blob`](estargz_core::Blob)'s
//!   file reads use) reads ahead no further than that: a reader of one file
//!   gets the rest of that file's bytes at once, and nothing past them; a
//!   reader walking the blob file after file gets the doubling requests,
//!   never past the end of the region it is in (the prefetch region, or
//!   the rest of the payload).
//! - Readers missing the same bytes at once wait for one request: a read
//!   whose first byte a request under way will bring waits for it, and
//!   gets its bytes, or its failure.
//! - The last responses are kept, within [`HttpOptions::cache_size`]
//!   bytes, the least recently used dropped first, and serve the reads
//!   inside them: readers taking turns on different regions do not fetch
//!   each other's bytes again.
//! - Behind a redirect, the target is remembered and asked directly (for
//!   [`HttpOptions::redirect_ttl`], or until shortly before a presigned
//!   URL says it expires), so a read costs one request, not two; a target
//!   that fails is dropped at once and the URL given asked again.
//! - [`HttpBlob::read_ranges`] fetches several ranges with one request per
//!   run of adjacent or overlapping ones; [`HttpBlob::prefetch`] fetches a
//!   range with one request and keeps it.
//!
//! Memory is bounded by the tail, [`HttpOptions::cache_size`] and the
//! requests under way (a single read larger than the cache is fetched for
//! that read alone and not kept).
//!
//! A request has a deadline for all of it, growing with its size
//! ([`HttpOptions::request_timeout`], [`HttpOptions::min_rate`]): a server
//! that trickles bytes fails rather than hangs. A request that fails for a
//! reason that says nothing about the blob (the connection reset, `503`,
//! `429`, ...) is made again after a growing wait, a few times, within a
//! time budget ([`HttpOptions::max_retries`], [`HttpOptions::retry_budget`]);
//! see [`retry`] for which failures those are.
//!
//! A `401` calls [`HttpOptions::on_unauthorized`], if set, with the
//! server's [`Challenge`], for fresh headers (an expired token need not
//! mean opening the blob again); [`HttpBlob::set_headers`] replaces them
//! at any time.
//!
//! A failed read comes out of [`ReadAt`] as an [`io::Error`] of the kind
//! [`Error::io_kind`] gives, holding the [`Error`]; through a
//! [`Blob`](estargz_core::Blob) it is an [`estargz_core::Error::Io`], not
//! corruption, and [`Error::of`] finds the request's error in it.
//!
//! Every response is checked: `206 Partial Content` with a `Content-Range`
//! for exactly the requested start, the blob size it was opened with, and
//! a body of the announced length. Redirects are followed (registries
//! redirect blob downloads to storage); an `Authorization` header is not
//! sent on to another host.
//!
//! ```no_run
//! use estargz_core::{Blob, OpenOptions};
//! use estargz_remote::{HttpBlob, HttpOptions};
//!
//! let source = HttpBlob::open("https://example.com/layer.esgz.tar.gz", &HttpOptions::default())?;
//! let blob = Blob::open(source, &OpenOptions::default())?;
//! let hostname = blob.read_file("etc/hostname")?;
//! println!("{} bytes, {} requests", hostname.len(), blob.source().requests());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod challenge;
mod flight;
mod recent;
mod redirect;
pub mod retry;

pub use challenge::{Challenge, UnauthorizedFn, UnauthorizedHook};

use estargz_core::{ReadAt, ReadHint};
use flight::{Flight, Flights, Outcome, Shared};
use recent::{request_len, Recent, Window};
use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};
use ureq::http::StatusCode;
use ureq::ResponseExt;

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
    /// Largest request made to read ahead for a sequential reader.
    pub max_request: u64,
    /// Bytes of recent responses kept to serve later reads (the least
    /// recently used dropped first), so that readers taking turns do not
    /// fetch each other's bytes again. A response larger than this is not
    /// kept.
    pub cache_size: u64,
    /// Longest time a redirect target (the URL a request ended at) is
    /// asked directly, skipping the redirect; a presigned URL that says it
    /// expires sooner is used until shortly before then. A target that
    /// fails is dropped at once. `Duration::ZERO`: every request goes to
    /// the URL given.
    pub redirect_ttl: Duration,
    /// Called on `401 Unauthorized` with the server's challenge, for fresh
    /// headers (an expired token); see [`UnauthorizedHook`].
    pub on_unauthorized: Option<UnauthorizedHook>,
    /// Time allowed to connect (DNS, TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest wait for any one read from the connection (response headers
    /// or body): a stalled server fails rather than hangs.
    pub read_timeout: Duration,
    /// Time allowed for a whole request (connecting, redirects, headers
    /// and body) on top of the time its bytes take at
    /// [`min_rate`](Self::min_rate): a request for `N` bytes fails once
    /// `request_timeout + N / min_rate` has passed, however the server
    /// paces its bytes.
    pub request_timeout: Duration,
    /// Slowest transfer accepted, in bytes per second (see
    /// [`request_timeout`](Self::request_timeout)). 0 is taken as 1.
    pub min_rate: u64,
    /// Retries of a request that failed transiently (see [`retry`]); 0 for
    /// none.
    pub max_retries: u32,
    /// The wait before the first retry; it doubles for each retry, up to
    /// [`retry::MAX_BACKOFF`]. A `Retry-After` from the server asks for
    /// longer.
    pub retry_backoff: Duration,
    /// No retry is started later than this after the first attempt of a
    /// request, nor for a `Retry-After` that would wait past it. A request
    /// with its retries therefore takes at most this plus one deadline.
    pub retry_budget: Duration,
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
            cache_size: 16 << 20,
            redirect_ttl: Duration::from_secs(300),
            on_unauthorized: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            // 30 s for the exchange plus 1 s per 128 KiB (about 1 Mbit/s):
            // 34 s for the tail, 94 s for a largest read-ahead request.
            request_timeout: Duration::from_secs(30),
            min_rate: 128 << 10,
            // Waits of 0.5, 1, 2 and 4 s: a server restarting or shedding
            // load for a few seconds is ridden out.
            max_retries: 4,
            retry_backoff: Duration::from_millis(500),
            retry_budget: Duration::from_secs(60),
            max_redirects: 10,
            ca_certs: None,
        }
    }
}

/// Why a request failed. Each message names the URL and the byte range
/// requested.
///
/// [`Transport`](Error::Transport), [`Body`](Error::Body),
/// [`Timeout`](Error::Timeout) and [`GaveUp`](Error::GaveUp) are about the
/// network or the server; [`BadResponse`](Error::BadResponse) and
/// [`RangesNotSupported`](Error::RangesNotSupported) about what the server
/// says the blob is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No response: connection, TLS, DNS, too many redirects.
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
    #[error("GET {url} ({range}): HTTP {status}{}{}", reason_suffix(*.status),
        .challenge.as_ref().map(|c| format!(" (WWW-Authenticate: {c})")).unwrap_or_default())]
    Status {
        /// The URL (without credentials).
        url: String,
        /// The `Range` header sent.
        range: String,
        /// The status code, e.g. 404: callers tell "not found" from
        /// "forbidden" from "retry later" by it.
        status: u16,
        /// For a `401`: what the server asked for.
        challenge: Option<Box<Challenge>>,
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
    /// The request was not complete by its deadline (see
    /// [`HttpOptions::request_timeout`]), or one read waited longer than
    /// [`HttpOptions::read_timeout`].
    #[error("GET {url} ({range}): timed out: {what} within {:.1} s", .after.as_secs_f64())]
    Timeout {
        /// The URL (without credentials).
        url: String,
        /// The `Range` header sent.
        range: String,
        /// The time allowed.
        after: Duration,
        /// What did not happen in time, e.g. "no complete response".
        what: &'static str,
    },
    /// A request that failed transiently each time it was made: the last
    /// failure, how many attempts were made, and why no more.
    #[error("{last} (gave up after {attempts} attempt{}: {why})", if *.attempts == 1 { "" } else { "s" })]
    GaveUp {
        /// Requests made.
        attempts: u32,
        /// The last failure; it names the URL and the range.
        last: Box<Error>,
        /// Why it was not tried again.
        why: String,
    },
    /// [`HttpOptions::ca_certs`] holds no certificate, or a malformed one.
    #[error("CA certificates: {reason}")]
    BadCaCerts {
        /// Why.
        reason: String,
    },
    /// A range asked for lies past the end of the blob.
    #[error("{url}: bytes [{start}, {end}) are past the end of the blob ({size} bytes)")]
    OutOfRange {
        /// The URL (without credentials).
        url: String,
        /// The range asked for.
        start: u64,
        /// Its end.
        end: u64,
        /// The blob size.
        size: u64,
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

impl Error {
    /// The [`io::ErrorKind`] this failure has when it comes out of
    /// [`ReadAt`] (inside an [`io::Error`], then an
    /// [`estargz_core::Error::Io`]): `NotFound` for `404`/`410`,
    /// `PermissionDenied` for `401`/`403`, `TimedOut`, the connection's
    /// own kind (`ConnectionRefused`, `ConnectionReset`, ...),
    /// `InvalidData` for a response that does not describe the blob,
    /// `Unsupported` when ranges are not served.
    pub fn io_kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Error::Transport { cause, .. } => match cause.downcast_ref::<ureq::Error>() {
                Some(ureq::Error::Io(e)) => e.kind(),
                Some(ureq::Error::HostNotFound) => K::NotFound,
                _ => K::Other,
            },
            Error::Status { status, .. } => match status {
                404 | 410 => K::NotFound,
                401 | 403 => K::PermissionDenied,
                416 => K::InvalidInput,
                _ => K::Other,
            },
            Error::RangesNotSupported { .. } => K::Unsupported,
            Error::BadResponse { .. } => K::InvalidData,
            Error::Body { cause, .. } => cause.kind(),
            Error::Timeout { .. } => K::TimedOut,
            Error::GaveUp { last, .. } => last.io_kind(),
            Error::OutOfRange { .. } => K::UnexpectedEof,
            Error::BadCaCerts { .. } | Error::BadHeader { .. } => K::InvalidInput,
        }
    }

    /// The request failure behind a failed read of a
    /// [`Blob`](estargz_core::Blob) reading through an [`HttpBlob`]:
    /// kept, not turned into text, on its way through
    /// [`estargz_core::Error::io_error`].
    ///
    /// ```no_run
    /// use estargz_core::{Blob, ErrorKind, OpenOptions};
    /// use estargz_remote::{Error, HttpBlob, HttpOptions};
    ///
    /// let source = HttpBlob::open("https://example.com/layer.esgz.tar.gz", &HttpOptions::default())?;
    /// let blob = Blob::open(source, &OpenOptions::default())?;
    /// match blob.read_file("etc/hostname") {
    ///     Err(e) if e.kind() == ErrorKind::Io => match Error::of(&e) {
    ///         Some(Error::Status { status: 404, .. }) => eprintln!("the blob is gone"),
    ///         _ => eprintln!("try again later: {e}"),
    ///     },
    ///     Err(e) => eprintln!("the blob is bad: {e}"),
    ///     Ok(data) => println!("{} bytes", data.len()),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn of(e: &estargz_core::Error) -> Option<&Error> {
        // The request's error sits in the io::Error the read returned,
        // which readers of the payload may have wrapped once more.
        let mut io = e.io_error()?;
        for _ in 0..4 {
            let inner = io.get_ref()?;
            if let Some(found) = inner.downcast_ref::<Error>() {
                return Some(found);
            }
            // A failure of a request other readers waited for too.
            if let Some(Shared(found)) = inner.downcast_ref::<Shared>() {
                return Some(found);
            }
            io = inner.source()?.downcast_ref::<io::Error>()?;
        }
        None
    }
}

impl From<Error> for io::Error {
    /// The error in an [`io::Error`] of its [`Error::io_kind`].
    fn from(e: Error) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
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

    /// Bytes asked for (at most).
    fn len(self) -> u64 {
        match self {
            Want::Suffix(n) => n,
            Want::Range(start, end) => end - start,
        }
    }
}

/// A request that failed, and whether to make it again.
#[derive(Debug)]
struct Failure {
    error: Error,
    /// `None`: not again. `Some(after)`: again, not before `after` when the
    /// server said so (`Retry-After`).
    retry: Option<Option<Duration>>,
    /// Something changed that makes trying again at once worth it: a
    /// remembered redirect target was dropped, or fresh headers came.
    now: bool,
}

impl From<Error> for Failure {
    /// A failure that repeating the request would not mend.
    fn from(error: Error) -> Self {
        Failure {
            error,
            retry: None,
            now: false,
        }
    }
}

impl Failure {
    fn transient(error: Error, retry: Option<Option<Duration>>) -> Failure {
        Failure {
            error,
            retry,
            now: false,
        }
    }
}

/// What the headers of a good response announce.
enum Checked {
    /// `(start, len, blob size)`.
    Range(u64, u64, u64),
    /// The blob is empty (a `416` to a suffix range, saying so).
    Empty,
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

/// Checks a `206`'s `Content-Range` against `want`; returns the start,
/// length and blob size it gives.
fn check_content_range(want: Want, value: &str) -> Result<(u64, u64, u64), String> {
    let parsed =
        parse_content_range(value).ok_or_else(|| format!("malformed Content-Range {value:?}"))?;
    let Some((first, last)) = parsed.span else {
        return Err(format!("206 with Content-Range {value:?}"));
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
        return Err(format!(
            "Content-Range {value:?} is not the range requested"
        ));
    }
    Ok((first, last - first + 1, parsed.total))
}

/// The URL as shown in messages: `user:password@` removed, and the query
/// (a presigned URL's signature, say) replaced by `…`.
fn redact(url: &str) -> String {
    let url = match url.find('?') {
        Some(q) => {
            let fragment = url[q..].find('#').map_or("", |f| &url[q + f..]);
            format!("{}?…{fragment}", &url[..q])
        }
        None => url.to_string(),
    };
    let url = url.as_str();
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

/// Times a read waits for requests of others before making its own: a
/// request that failed without sharing why, or was abandoned, is made
/// again by a waiter, which others may wait for in turn.
const MAX_JOINS: u32 = 3;

/// The responses kept and the requests under way, under one lock: a
/// reader that finds its bytes in neither starts a request that others
/// then find.
struct State {
    recent: Recent,
    flights: Flights,
}

/// Bytes [`HttpBlob::fetch`] got, and whether from another reader's
/// request.
struct Got {
    window: Arc<Window>,
    joined: bool,
}

/// A request recorded as under way. Finishing it keeps its response and
/// forgets the request; dropped unfinished (its leader panicked), it tells
/// the waiters to ask on their own.
struct Landing<'a> {
    blob: &'a HttpBlob,
    flight: Arc<Flight>,
    finished: bool,
}

impl Landing<'_> {
    /// Keeps `window`, if any, among the recent responses and forgets the
    /// request, under one lock; returns the flight to land, and whether
    /// readers wait for it (none can start waiting any more).
    fn finish(mut self, window: Option<&Arc<Window>>) -> (Arc<Flight>, bool) {
        self.finished = true;
        let mut state = self.blob.state();
        if let Some(window) = window {
            state.recent.keep(window.clone());
        }
        state.flights.remove(&self.flight);
        // Waiters hold a clone each; the list's is gone, ours is the other.
        let waiters = Arc::strong_count(&self.flight) > 1;
        (self.flight.clone(), waiters)
    }
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.blob.state().flights.remove(&self.flight);
            self.flight.land(Outcome::Abandoned);
        }
    }
}

/// A remote blob read with HTTP range requests; see the [crate] docs.
pub struct HttpBlob {
    agent: ureq::Agent,
    /// As given: credentials included, for the requests.
    request_url: String,
    shown_url: String,
    headers: RwLock<Vec<(String, String)>>,
    on_unauthorized: Option<UnauthorizedHook>,
    /// Where requests to `request_url` were last redirected to, and until
    /// when that target is asked directly.
    redirect: Mutex<Option<(String, Instant)>>,
    redirect_ttl: Duration,
    size: u64,
    /// The blob's last bytes, fetched on open.
    tail: Window,
    max_request: u64,
    connect_timeout: Duration,
    read_timeout: Duration,
    request_timeout: Duration,
    min_rate: u64,
    max_retries: u32,
    retry_backoff: Duration,
    retry_budget: Duration,
    state: Mutex<State>,
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
        check_headers(&opts.headers)?;
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = &opts.ca_certs {
            let roots = root_certs(pem).map_err(|reason| Error::BadCaCerts { reason })?;
            tls = tls.root_certs(roots);
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            // Statuses are checked here, with the URL and range in the message.
            .http_status_as_error(false)
            .max_redirects(opts.max_redirects)
            // To tell a redirected response, whose target is remembered.
            .save_redirect_history(true)
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
            headers: RwLock::new(opts.headers.clone()),
            on_unauthorized: opts.on_unauthorized.clone(),
            redirect: Mutex::new(None),
            redirect_ttl: opts.redirect_ttl,
            size: 0,
            tail: Window::default(),
            max_request: opts.max_request.max(1),
            connect_timeout: opts.connect_timeout,
            read_timeout: opts.read_timeout,
            request_timeout: opts.request_timeout,
            min_rate: opts.min_rate.max(1),
            max_retries: opts.max_retries,
            retry_backoff: opts.retry_backoff,
            retry_budget: opts.retry_budget,
            state: Mutex::new(State {
                recent: Recent::new(opts.cache_size),
                flights: Flights::default(),
            }),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let (tail, size) = blob.get(Want::Suffix(opts.tail_size.max(1)))?;
        blob.size = size;
        blob.tail = tail;
        Ok(blob)
    }

    /// Replaces the headers sent with every request (those of
    /// [`HttpOptions::headers`]), e.g. with a fresh token.
    ///
    /// ```no_run
    /// # let blob = estargz_remote::HttpBlob::open("https://x/b", &Default::default())?;
    /// blob.set_headers(vec![("Authorization".into(), "Bearer NEW".into())])?;
    /// # Ok::<(), estargz_remote::Error>(())
    /// ```
    pub fn set_headers(&self, headers: Vec<(String, String)>) -> Result<(), Error> {
        check_headers(&headers)?;
        *self.headers.write().unwrap_or_else(PoisonError::into_inner) = headers;
        Ok(())
    }

    /// The redirect target requests currently go to directly, if any (as
    /// shown in messages: without its query).
    pub fn redirect_target(&self) -> Option<String> {
        self.remembered().map(|url| redact(&url))
    }

    /// Fetches `range` of the blob with one request (the part not already
    /// held) and keeps it to serve later reads, when it fits
    /// [`HttpOptions::cache_size`]; returns the bytes fetched. For
    /// prefetching a region a reader will need, such as a layer's
    /// landmark region ([`Blob::prefetch`](estargz_core::Blob::prefetch)
    /// does that and also decodes it).
    ///
    /// ```no_run
    /// # let blob = estargz_remote::HttpBlob::open("https://x/b", &Default::default())?;
    /// blob.prefetch(0..(4 << 20))?;
    /// # Ok::<(), estargz_remote::Error>(())
    /// ```
    pub fn prefetch(&self, range: Range<u64>) -> Result<u64, Error> {
        self.check_range(&range)?;
        let end = range.end.min(self.tail.start);
        if range.start >= end {
            return Ok(0);
        }
        let state = self.state();
        if state.recent.holds(range.start, end) {
            return Ok(0);
        }
        let got = self.fetch(state, range.start, end)?;
        Ok(if got.joined {
            0
        } else {
            got.window.data.len() as u64
        })
    }

    /// Reads several ranges: the ones not already held are fetched with
    /// one request per run of adjacent or overlapping ranges. Returns the
    /// bytes of each range, in the order given.
    ///
    /// ```no_run
    /// # let blob = estargz_remote::HttpBlob::open("https://x/b", &Default::default())?;
    /// // Two adjacent member runs: one request.
    /// let parts = blob.read_ranges(&[1000..5000, 5000..9000])?;
    /// assert_eq!(parts[1].len(), 4000);
    /// # Ok::<(), estargz_remote::Error>(())
    /// ```
    pub fn read_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>, Error> {
        let mut missing: Vec<(u64, u64)> = Vec::new();
        {
            let state = self.state();
            for r in ranges {
                self.check_range(r)?;
                let end = r.end.min(self.tail.start);
                if r.start < end && !state.recent.holds(r.start, end) {
                    missing.push((r.start, end));
                }
            }
        }
        missing.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (start, end) in missing {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut fetched = Vec::with_capacity(merged.len());
        for (start, end) in merged {
            fetched.push(self.fetch(self.state(), start, end)?.window);
        }
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            let mut data = vec![0u8; usize::try_from(r.end.saturating_sub(r.start)).unwrap_or(0)];
            self.fill(&fetched, r.start, &mut data)?;
            out.push(data);
        }
        // Handed over: kept for later reads, no longer protected as bytes
        // a reader is about to take.
        let mut state = self.state();
        for r in ranges {
            state.recent.mark_read(r.start, r.end);
        }
        Ok(out)
    }

    /// Fills `out` with the bytes from `start` on: from `fetched`, the
    /// tail, the kept responses, or (when they were dropped meanwhile) a
    /// request.
    fn fill(&self, fetched: &[Arc<Window>], start: u64, out: &mut [u8]) -> Result<(), Error> {
        let mut done = 0;
        while done < out.len() {
            let at = start + done as u64;
            let rest = &mut out[done..];
            let held = fetched
                .iter()
                .find_map(|w| w.copy_to(at, rest))
                .or_else(|| self.tail.copy_to(at, rest))
                .or_else(|| self.state().recent.copy_to(at, rest));
            done += match held {
                Some(n) => n,
                None => {
                    let end = (at + rest.len() as u64).min(self.tail.start);
                    let got = self.fetch(self.state(), at, end.max(at + 1))?;
                    got.window
                        .copy_to(at, rest)
                        .ok_or_else(|| self.empty_response(at))?
                }
            };
        }
        Ok(())
    }

    /// An error unless `range` lies inside the blob.
    fn check_range(&self, range: &Range<u64>) -> Result<(), Error> {
        if range.end > self.size {
            return Err(Error::OutOfRange {
                url: self.shown_url.clone(),
                start: range.start,
                end: range.end,
                size: self.size,
            });
        }
        Ok(())
    }

    fn empty_response(&self, at: u64) -> Error {
        Error::BadResponse {
            url: self.shown_url.clone(),
            range: format!("from byte {at}"),
            reason: "empty response".into(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: a panic while the
        // lock was held does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `[start, end)`: the bytes of a request under way that holds them
    /// (waited for), else fetched with one request that readers arriving
    /// meanwhile wait for. `state` is the lock under which the caller saw
    /// that no kept response holds them.
    fn fetch<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        start: u64,
        end: u64,
    ) -> Result<Got, Error> {
        for _ in 0..MAX_JOINS {
            let Some(flight) = state.flights.covering(start, end) else {
                break;
            };
            drop(state);
            if let Outcome::Fetched(window) = flight.wait() {
                return Ok(Got {
                    window,
                    joined: true,
                });
            }
            // Its failure is the leader's to report: ask on our own.
            state = self.state();
        }
        let (landing, result) = self.lead(state, start, end);
        let (flight, _) = landing.finish(result.as_ref().ok());
        flight.land(match &result {
            Ok(window) => Outcome::Fetched(window.clone()),
            Err(_) => Outcome::Failed(None),
        });
        Ok(Got {
            window: result?,
            joined: false,
        })
    }

    /// Makes the request for `[start, end)`, recorded under `state` as
    /// under way until the returned [`Landing`] is finished.
    fn lead<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        start: u64,
        end: u64,
    ) -> (Landing<'a>, Result<Arc<Window>, Error>) {
        let flight = state.flights.take_off(start, end);
        drop(state);
        let landing = Landing {
            blob: self,
            flight,
            finished: false,
        };
        let result = self
            .get(Want::Range(start, end))
            .map(|(window, _)| Arc::new(window));
        (landing, result)
    }

    /// [`ReadAt::read_at`], with what the reader goes on to read when it
    /// says: a read that misses waits for a request under way for its
    /// bytes, else makes one (reading ahead for a sequential reader, see
    /// [`request_len`]) that readers arriving meanwhile wait for, its
    /// failure included.
    fn read_hinted(
        &self,
        offset: u64,
        buf: &mut [u8],
        hint: Option<ReadHint>,
    ) -> io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        if let Some(n) = self.tail.copy_to(offset, buf) {
            return Ok(n);
        }
        // Everything from the tail's start on is already here.
        let limit = self.tail.start.min(self.size);
        let wanted = (buf.len() as u64).min(limit - offset);
        let mut state = self.state();
        let seen = state.recent.note_read(offset);
        let mut joins = 0;
        loop {
            if let Some(n) = state.recent.copy_to(offset, buf) {
                state.recent.read_done(offset, offset + n as u64, None);
                return Ok(n);
            }
            let flight = state.flights.covering(offset, offset + 1);
            let Some(flight) = flight.filter(|_| joins < MAX_JOINS) else {
                break;
            };
            joins += 1;
            drop(state);
            match flight.wait() {
                Outcome::Fetched(window) => {
                    if let Some(n) = window.copy_to(offset, buf) {
                        let end = offset + n as u64;
                        let mut state = self.state();
                        state.recent.mark_read(offset, end);
                        state.recent.read_done(offset, end, None);
                        return Ok(n);
                    }
                }
                Outcome::Failed(Some(error)) => return Err(Shared::io_error(error)),
                Outcome::Failed(None) | Outcome::Abandoned => {}
            }
            state = self.state();
        }
        let len = request_len(seen, offset, wanted, self.max_request, limit, hint);
        let (landing, result) = self.lead(state, offset, offset + len);
        let (flight, waiters) = landing.finish(result.as_ref().ok());
        let window = match result {
            Ok(window) => {
                flight.land(Outcome::Fetched(window.clone()));
                window
            }
            Err(error) if waiters => {
                let error = Arc::new(error);
                flight.land(Outcome::Failed(Some(error.clone())));
                return Err(Shared::io_error(error));
            }
            Err(error) => {
                flight.land(Outcome::Failed(None));
                return Err(error.into());
            }
        };
        let n = window
            .copy_to(offset, buf)
            .ok_or_else(|| self.empty_response(offset))?;
        let end = offset + n as u64;
        let request = window.data.len() as u64;
        let mut state = self.state();
        state.recent.mark_read(offset, end);
        state.recent.read_done(offset, end, Some(request));
        Ok(n)
    }

    /// The redirect target to ask directly, while it is valid.
    fn remembered(&self) -> Option<String> {
        let mut redirect = self.redirect.lock().unwrap_or_else(PoisonError::into_inner);
        match &*redirect {
            Some((url, until)) if Instant::now() < *until => Some(url.clone()),
            Some(_) => {
                *redirect = None;
                None
            }
            None => None,
        }
    }

    fn remember(&self, target: Option<String>) {
        let entry = target.and_then(|url| {
            let life = redirect::lifetime(&url, self.redirect_ttl, SystemTime::now());
            (!life.is_zero()).then(|| (url, Instant::now() + life))
        });
        *self.redirect.lock().unwrap_or_else(PoisonError::into_inner) = entry;
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

    /// Makes one request, and makes it again after a transient failure
    /// (see [`retry`]) within [`HttpOptions::max_retries`] and
    /// [`HttpOptions::retry_budget`]; returns the bytes received and the
    /// blob size the server reported.
    fn get(&self, want: Want) -> Result<(Window, u64), Error> {
        let started = Instant::now();
        let mut attempts = 0u32;
        // Immediate retries after a dropped redirect target or fresh
        // headers: a bound, so that a hook handing out refused headers
        // or a target failing each time cannot loop.
        let mut now_left = 2u32;
        loop {
            attempts += 1;
            let failure = match self.get_once(want) {
                Ok(got) => return Ok(got),
                Err(failure) => failure,
            };
            if failure.now && now_left > 0 {
                now_left -= 1;
                attempts -= 1;
                continue;
            }
            let Some(retry_after) = failure.retry else {
                return Err(failure.error);
            };
            let backoff = retry::backoff(self.retry_backoff, attempts - 1);
            let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
            let why = if attempts > self.max_retries {
                Some(format!("{} retries allowed", self.max_retries))
            } else if started.elapsed() + wait > self.retry_budget {
                Some(match retry_after {
                    Some(asked) if asked >= backoff => format!(
                        "the server asked to wait {} s, past the {} s retry budget",
                        asked.as_secs(),
                        self.retry_budget.as_secs_f64()
                    ),
                    _ => format!(
                        "the {} s retry budget is spent",
                        self.retry_budget.as_secs_f64()
                    ),
                })
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::GaveUp {
                    attempts,
                    last: Box::new(failure.error),
                    why,
                });
            }
            std::thread::sleep(wait);
        }
    }

    /// The time a request for `len` bytes has: see
    /// [`HttpOptions::request_timeout`].
    fn deadline(&self, len: u64) -> Duration {
        let for_bytes = Duration::from_secs_f64(len as f64 / self.min_rate as f64);
        self.request_timeout.saturating_add(for_bytes)
    }

    /// Makes one request: to the remembered redirect target if there is
    /// one (dropped when it fails), else to the URL given, where a `401`
    /// asks the hook for fresh headers.
    fn get_once(&self, want: Want) -> Result<(Window, u64), Failure> {
        let range = want.header();
        let deadline = self.deadline(want.len());
        let target = self.remembered();
        let url = target.as_deref().unwrap_or(&self.request_url);
        let mut request = self
            .agent
            .get(url)
            .config()
            // One budget for connecting, redirects, headers and body.
            .timeout_global(Some(deadline))
            .build()
            .header("Range", &range);
        let headers = self
            .headers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (name, value) in &headers {
            // As when ureq follows the redirect itself: credentials for
            // the registry are not for the storage it sends us to.
            if target.is_some() && name.eq_ignore_ascii_case("authorization") {
                continue;
            }
            request = request.header(name, value);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = request
            .call()
            .map_err(|e| self.ureq_failure(e, &range, deadline, false))
            .and_then(|response| {
                if target.is_none() {
                    let redirected = response.get_redirect_history().is_some_and(|h| h.len() > 1);
                    let final_url = response.get_uri().to_string();
                    if redirected && response.status() == StatusCode::PARTIAL_CONTENT {
                        self.remember(Some(final_url));
                    }
                }
                self.receive(want, &range, deadline, response)
            });
        result.map_err(|mut failure| {
            if target.is_some() {
                self.remember(None);
                failure.now = true;
            } else if let Error::Status {
                challenge: Some(challenge),
                ..
            } = &failure.error
            {
                failure.now = self.refresh_headers(challenge);
            }
            failure
        })
    }

    /// Asks the hook for headers answering `challenge`; whether it gave
    /// some (valid ones), now in use.
    fn refresh_headers(&self, challenge: &Challenge) -> bool {
        let Some(hook) = &self.on_unauthorized else {
            return false;
        };
        match (hook.0)(challenge) {
            Some(headers) => self.set_headers(headers).is_ok(),
            None => false,
        }
    }

    /// Checks a response and reads its body.
    fn receive(
        &self,
        want: Want,
        range: &str,
        deadline: Duration,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<(Window, u64), Failure> {
        let range = range.to_string();
        let (start, len, total) = match self.check_response(want, &range, &response)? {
            Checked::Range(start, len, total) => (start, len, total),
            Checked::Empty => return Ok((Window::default(), 0)),
        };
        let body_failure = |cause: io::Error| {
            // ureq reports its own errors (a deadline) wrapped in io::Error.
            if cause.get_ref().is_some_and(|e| e.is::<ureq::Error>()) {
                return self.ureq_failure(ureq::Error::from(cause), &range, deadline, true);
            }
            let retry = retry::is_transient_io(&cause).then_some(None);
            Failure::transient(
                Error::Body {
                    url: self.shown_url.clone(),
                    range: range.clone(),
                    cause,
                },
                retry,
            )
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
            .map_err(body_failure)?;
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        if data.len() as u64 != len {
            // Fewer bytes: the connection closed early, worth retrying.
            // More: the server is wrong about its own body, which is not.
            let kind = if (data.len() as u64) < len {
                io::ErrorKind::UnexpectedEof
            } else {
                io::ErrorKind::InvalidData
            };
            return Err(body_failure(io::Error::new(
                kind,
                format!("{} bytes received, {len} announced", data.len()),
            )));
        }
        Ok((Window { start, data }, total))
    }

    /// A failure reported by ureq, while waiting for the response or
    /// (`in_body`) while reading its body.
    fn ureq_failure(
        &self,
        e: ureq::Error,
        range: &str,
        deadline: Duration,
        in_body: bool,
    ) -> Failure {
        let (url, range) = (self.shown_url.clone(), range.to_string());
        match e {
            ureq::Error::Timeout(which) => {
                let (what, after) = match which {
                    ureq::Timeout::PerRead => ("no byte received", self.read_timeout),
                    ureq::Timeout::Connect => ("not connected", self.connect_timeout),
                    _ => ("no complete response", deadline),
                };
                Error::Timeout {
                    url,
                    range,
                    after,
                    what,
                }
                .into()
            }
            ureq::Error::Io(cause) if in_body => {
                let retry = retry::is_transient_io(&cause).then_some(None);
                Failure::transient(Error::Body { url, range, cause }, retry)
            }
            e => {
                let retry =
                    matches!(&e, ureq::Error::Io(io) if retry::is_transient_io(io)).then_some(None);
                Failure::transient(
                    Error::Transport {
                        url,
                        range,
                        cause: Box::new(e),
                    },
                    retry,
                )
            }
        }
    }

    /// Checks the status and headers of a response to `want`.
    fn check_response(
        &self,
        want: Want,
        range: &str,
        response: &ureq::http::Response<ureq::Body>,
    ) -> Result<Checked, Failure> {
        let bad = |reason: String| Error::BadResponse {
            url: self.shown_url.clone(),
            range: range.to_string(),
            reason,
        };
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
                ))
                .into());
            }
        }
        let (start, len, total) = match status {
            StatusCode::PARTIAL_CONTENT => {
                let value = header("content-range")
                    .ok_or_else(|| bad("206 Partial Content without a Content-Range".into()))?;
                check_content_range(want, &value).map_err(bad)?
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
                    }) => return Ok(Checked::Empty),
                    _ => return Err(self.status_error(range, status).into()),
                }
            }
            StatusCode::OK => match (want, content_length) {
                // The whole blob is what was asked for anyway.
                (Want::Suffix(n), Some(length)) if length <= n => (0, length, length),
                _ => {
                    return Err(Error::RangesNotSupported {
                        url: self.shown_url.clone(),
                        range: range.to_string(),
                        length: content_length,
                    }
                    .into())
                }
            },
            _ => {
                let mut error = self.status_error(range, status);
                if let Error::Status { challenge, .. } = &mut error {
                    if status == StatusCode::UNAUTHORIZED {
                        let values = response.headers().get_all("www-authenticate");
                        *challenge = Some(Box::new(Challenge::new(
                            self.shown_url.clone(),
                            values
                                .iter()
                                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                                .collect(),
                        )));
                    }
                }
                let retry = retry::is_transient_status(status.as_u16()).then(|| {
                    header("retry-after").and_then(|v| retry::retry_after(&v, SystemTime::now()))
                });
                return Err(Failure::transient(error, retry));
            }
        };
        if let Some(length) = content_length {
            if length != len {
                return Err(bad(format!(
                    "Content-Length {length} does not match the {len} bytes of its range"
                ))
                .into());
            }
        }
        if self.size != total && !matches!(want, Want::Suffix(_)) {
            return Err(bad(format!(
                "the blob is now {total} bytes; it was {} when opened",
                self.size
            ))
            .into());
        }
        Ok(Checked::Range(start, len, total))
    }

    fn status_error(&self, range: &str, status: StatusCode) -> Error {
        Error::Status {
            url: self.shown_url.clone(),
            range: range.to_string(),
            status: status.as_u16(),
            challenge: None,
        }
    }
}

/// Checks that each of `headers` is a valid HTTP header.
fn check_headers(headers: &[(String, String)]) -> Result<(), Error> {
    for (name, value) in headers {
        let bad = |reason: String| Error::BadHeader {
            name: name.clone(),
            reason,
        };
        ureq::http::HeaderName::try_from(name.as_str()).map_err(|e| bad(e.to_string()))?;
        ureq::http::HeaderValue::try_from(value.as_str()).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// ` Not Found` after `404`: the reason phrase, when the code has one.
fn reason_suffix(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|reason| format!(" {reason}"))
        .unwrap_or_default()
}

/// The certificates of a PEM bundle as the only roots TLS trusts (as
/// `curl --cacert`: ureq cannot add to its built-in roots); why not, when
/// the bundle is unreadable or holds no certificate.
pub fn root_certs(pem: &[u8]) -> std::result::Result<ureq::tls::RootCerts, String> {
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if roots.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&roots))
}

impl ReadAt for HttpBlob {
    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.read_hinted(offset, buf, None)
    }

    fn read_at_hinted(&self, offset: u64, buf: &mut [u8], hint: ReadHint) -> io::Result<usize> {
        self.read_hinted(offset, buf, Some(hint))
    }

    fn read_ranges(&self, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        Ok(HttpBlob::read_ranges(self, ranges)?)
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
        assert_eq!(redact("http://host/x?a=b@c"), "http://host/x?…");
        assert_eq!(
            redact("https://u@s3.example/b?X-Amz-Signature=abc#f"),
            "https://s3.example/b?…#f"
        );
        assert_eq!(redact("not a url"), "not a url");
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
