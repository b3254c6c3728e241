//! Which failures are worth a second try, and how long to wait first.
//!
//! A request is repeated only when its failure says nothing about what was
//! asked: the connection reset or closed early, or a status meaning "try
//! later" (`408`, `429`, `500`, `502`, `503`, `504`). Everything else is an
//! answer. Requests whose body is a caller's stream are never repeated:
//! the stream cannot be rewound.

use std::io;
use std::time::{Duration, SystemTime};

/// Longest wait computed by the backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Longest wait a `Retry-After` may ask for; a longer one is cut to this,
/// so one request never hangs for the server's convenience.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

pub(crate) fn is_transient_io(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// `first` doubled `retry` times, at most [`MAX_BACKOFF`].
pub(crate) fn backoff(first: Duration, retry: u32) -> Duration {
    first
        .checked_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

pub(crate) fn cap_retry_after(wait: Duration) -> Duration {
    wait.min(MAX_RETRY_AFTER)
}

/// A `Retry-After` value: seconds or an HTTP date (past means now).
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(250), 0), ms(250));
        assert_eq!(backoff(ms(250), 2), ms(1000));
        assert_eq!(backoff(ms(250), 60), MAX_BACKOFF);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after("later", now), None);
        assert_eq!(cap_retry_after(Duration::from_secs(3600)), MAX_RETRY_AFTER);
        assert!(is_transient_status(503) && !is_transient_status(404));
    }
}
