//! Dates: commits are dated in seconds since 1970 (UTC); the command line reads and prints
//! RFC 3339.

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `2026-11-28 14:00:00 UTC`.
pub fn format(seconds: f64) -> String {
    let secs = seconds.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Reads `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.frac]]` with `Z` or `±HH:MM` (UTC when absent),
/// or seconds since 1970.
pub fn parse(text: &str) -> Option<f64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<f64>() {
        return n.is_finite().then_some(n);
    }
    let num =
        |s: &str| -> Option<i64> { (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())? };
    let (date, time) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut parts = date.split('-');
    let (y, m, d) = (num(parts.next()?)?, num(parts.next()?)?, num(parts.next()?)?);
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut seconds = (days_from_civil(y, m, d) * 86_400) as f64;
    if let Some(time) = time {
        let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let (c, o) = time.split_at(i);
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':')?;
            (c, sign * (num(oh)? * 3600 + num(om)? * 60))
        } else {
            (time, 0)
        };
        let mut hms = clock.split(':');
        let h = num(hms.next()?)?;
        let mi = num(hms.next()?)?;
        let s: f64 = match hms.next() {
            Some(s) => s.parse().ok().filter(|s: &f64| (0.0..61.0).contains(s))?,
            None => 0.0,
        };
        if hms.next().is_some() || h > 23 || mi > 59 {
            return None;
        }
        seconds += (h * 3600 + mi * 60 - offset) as f64 + s;
    }
    Some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates() {
        assert_eq!(parse("1970-01-01"), Some(0.0));
        assert_eq!(parse("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(parse("2000-03-01T01:00:00+01:00"), Some(951_868_800.0));
        assert_eq!(parse("1234.5"), Some(1234.5));
        assert_eq!(format(951_868_800.0), "2000-03-01 00:00:00 UTC");
        assert_eq!(format(1_795_874_400.0), "2026-11-28 14:00:00 UTC");
        for bad in ["", "2026-13-01", "2026-01-01T25:00", "yesterday", "2026-01-01T10:00+1"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
