//! PAX extended header records: `"<len> <key>=<value>\n"`.

/// One `(key, value)` record.
pub type Record = (Vec<u8>, Vec<u8>);

/// Splits a PAX extended header payload into `(key, value)` records,
/// validating each as Go's archive/tar does: exact lengths, a `=` in every
/// record, no NUL in keys, and none in the values of path-like keys.
pub fn parse_records(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| format!("record at payload byte {at} has no length"))?;
        let digits = &data[..sp];
        let len = std::str::from_utf8(digits)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| {
                format!(
                    "record at payload byte {at}: length {:?} is not a number",
                    lossy(digits)
                )
            })?;
        if len < sp + 3 || len > data.len() {
            return Err(format!(
                "record at payload byte {at}: length {len} does not fit the {} bytes left",
                data.len()
            ));
        }
        let (record, rest) = data.split_at(len);
        let body = &record[sp + 1..];
        if body.last() != Some(&b'\n') {
            return Err(format!(
                "record at payload byte {at} does not end with a newline"
            ));
        }
        let body = &body[..body.len() - 1];
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| format!("record at payload byte {at} has no '='"))?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        if key.is_empty() || key.contains(&0) {
            return Err(format!(
                "record at payload byte {at} has an empty key or a NUL in its key"
            ));
        }
        if matches!(key, b"path" | b"linkpath" | b"uname" | b"gname") && value.contains(&0) {
            return Err(format!("{} value contains a NUL byte", lossy(key)));
        }
        records.push((key.to_vec(), value.to_vec()));
        at += len;
        data = rest;
    }
    Ok(records)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses a PAX decimal time `[-]secs[.frac]` into whole seconds (floored)
/// and nanoseconds in `[0, 1e9)`.
pub fn parse_time(value: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(value).ok()?;
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    if !negative {
        return Some((secs, nanos));
    }
    if nanos == 0 {
        Some((secs.checked_neg()?, 0))
    } else {
        Some((secs.checked_neg()?.checked_sub(1)?, 1_000_000_000 - nanos))
    }
}

/// Parses a PAX decimal integer.
pub fn parse_int(value: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(value).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let recs = parse_records(b"30 mtime=1577934245.600000000\n12 path=a=b\n").unwrap();
        assert_eq!(
            recs[0],
            (b"mtime".to_vec(), b"1577934245.600000000".to_vec())
        );
        assert_eq!(recs[1], (b"path".to_vec(), b"a=b".to_vec()));
        for bad in [
            &b"13 path=abc\n"[..],
            b"11 path=abc",
            b"x path=abc\n",
            b"12 pathabc\n\n",
            b"12 path=a\0c\n",
            b"6 =ab\n",
            b"999 path=x\n",
            b"3 \n",
        ] {
            assert!(
                parse_records(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time(b"1577934245.6"), Some((1577934245, 600_000_000)));
        assert_eq!(parse_time(b"12"), Some((12, 0)));
        assert_eq!(parse_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_time(b"1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(parse_time(b"1.x"), None);
        assert_eq!(parse_time(b""), None);
    }
}
