//! When a failed request is tried again, and how long to wait first: the
//! policy of [`HttpBlob`](crate::HttpBlob) and of `estargz-registry`'s
//! client.
//!
//! Every request [`HttpBlob`](crate::HttpBlob) makes is a `GET` of a byte
//! range: idempotent, so repeating it is safe. It is repeated only for
//! failures that say nothing about the blob: the connection reset or closed
//! before the whole body arrived, or a status saying "try later" (`408`,
//! `429`, `500`, `502`, `503`, `504`). A `404`, a `416`, a wrong
//! `Content-Range`, a refused connection or a deadline that ran out is an
//! answer, and repeating the question would only delay the error.

use std::io;
use std::time::{Duration, SystemTime};

/// Longest wait between two attempts computed by the backoff (a
/// `Retry-After` may ask for more, within the retry budget).
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Longest wait a `Retry-After` may impose on a caller without a retry
/// budget of its own; a longer one is cut to this ([`cap_retry_after`]).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether a response with this status is worth asking for again.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Whether an I/O error means the connection went away rather than that
/// the server answered something.
pub fn is_transient_io(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// The wait before retry number `retry` (0 for the first retry): `first`
/// doubled each time, at most [`MAX_BACKOFF`].
pub fn backoff(first: Duration, retry: u32) -> Duration {
    first
        .checked_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// The wait a `Retry-After` header asks for: a number of seconds or an
/// HTTP date (a date in the past means now). `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A `Retry-After` wait cut to [`MAX_RETRY_AFTER`].
pub fn cap_retry_after(wait: Duration) -> Duration {
    wait.min(MAX_RETRY_AFTER)
}

/// An HTTP date (RFC 9110 §5.6.7: the IMF-fixdate senders must use, and
/// the two obsolete formats recipients must accept), by the `httpdate`
/// crate, which hyper and reqwest use for the same header.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let at = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            at(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), at(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 23:59:59 GMT"),
            at(951_868_799)
        );
        // The obsolete formats name the same instant.
        for old in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(parse_http_date(old), at(784_111_777), "{old:?}");
        }
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT x",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(retry_after(" 120 ", now), secs(120));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now), secs(3));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), secs(0));
        assert_eq!(retry_after("-1", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let waits: Vec<_> = (0..7).map(|r| backoff(ms(500), r)).collect();
        assert_eq!(
            waits,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(8000),
                ms(8000)
            ]
        );
        assert_eq!(backoff(ms(500), 40), MAX_BACKOFF);
        assert_eq!(backoff(Duration::MAX, 1), MAX_BACKOFF);
    }

    #[test]
    fn try_later_statuses_and_the_retry_after_cap() {
        assert!(is_transient_status(503) && is_transient_status(429));
        assert!(!is_transient_status(404) && !is_transient_status(401));
        assert_eq!(cap_retry_after(Duration::from_secs(3600)), MAX_RETRY_AFTER);
        assert_eq!(
            cap_retry_after(Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }
}
