//! How long a redirect target is worth going to directly.
//!
//! Registries redirect blob downloads to storage with a presigned URL that
//! expires. Its query says when: `X-Amz-Date` + `X-Amz-Expires` (S3),
//! `X-Goog-Date` + `X-Goog-Expires` (GCS v4), `Expires` (a Unix time:
//! CloudFront, GCS v2). A target is used until a little before that, and
//! never longer than the configured time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Margin before a presigned URL's expiry: a request started just before
/// it would fail on the way.
const MARGIN: Duration = Duration::from_secs(10);

/// How long `url` may be used from `now`, at most `ttl`.
pub(crate) fn lifetime(url: &str, ttl: Duration, now: SystemTime) -> Duration {
    let Some(query) = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(q))
    else {
        return ttl;
    };
    let param = |name: &str| {
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case(name).then_some(v)
        })
    };
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut expires_at: Option<u64> = None;
    for (date, expires) in [
        ("X-Amz-Date", "X-Amz-Expires"),
        ("X-Goog-Date", "X-Goog-Expires"),
    ] {
        if let Some(secs) = param(expires).and_then(|v| v.parse::<u64>().ok()) {
            // Without a signing date, count from now: the date is earlier.
            let signed = param(date).and_then(parse_basic_date).unwrap_or(now_secs);
            expires_at = Some(signed.saturating_add(secs));
        }
    }
    if let Some(at) = param("Expires").and_then(|v| v.parse::<u64>().ok()) {
        expires_at = Some(expires_at.map_or(at, |e| e.min(at)));
    }
    match expires_at {
        Some(at) => Duration::from_secs(at.saturating_sub(now_secs))
            .saturating_sub(MARGIN)
            .min(ttl),
        None => ttl,
    }
}

/// `YYYYMMDDTHHMMSSZ` (ISO 8601 basic, as AWS signs) as Unix seconds.
fn parse_basic_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        s.get(from..to)
            .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))?
            .parse()
            .ok()
    };
    let (y, m, d) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
    let (hh, mm, ss) = (num(9, 11)?, num(11, 13)?, num(13, 15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d)? * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days from 1970-01-01 to the given date (proleptic Gregorian; H.
/// Hinnant's `days_from_civil`); `None` before 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_expire_when_they_say() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ttl = Duration::from_secs(300);
        let secs = Duration::from_secs;
        assert_eq!(lifetime("https://s/b", ttl, now), ttl);
        assert_eq!(lifetime("https://s/b?x=1", ttl, now), ttl);
        // 2023-11-14T22:13:20Z is 1_700_000_000.
        assert_eq!(parse_basic_date("20231114T221320Z"), Some(1_700_000_000));
        assert_eq!(parse_basic_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_basic_date("2023-11-14T22:13:20Z"), None);
        let s3 = "https://s/b?X-Amz-Date=20231114T221220Z&X-Amz-Expires=120&X-Amz-Signature=x";
        assert_eq!(lifetime(s3, ttl, now), secs(60 - 10));
        let long = "https://s/b?X-Amz-Date=20231114T221320Z&X-Amz-Expires=3600";
        assert_eq!(lifetime(long, ttl, now), ttl);
        let expired = "https://s/b?X-Goog-Date=20231114T200000Z&X-Goog-Expires=60";
        assert_eq!(lifetime(expired, ttl, now), Duration::ZERO);
        assert_eq!(
            lifetime("https://s/b?Expires=1700000100", ttl, now),
            secs(90)
        );
        assert_eq!(lifetime("https://s/b?X-Amz-Expires=30", ttl, now), secs(20));
    }
}
