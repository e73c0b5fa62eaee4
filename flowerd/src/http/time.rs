//! Calendar arithmetic for the API: RFC 3339 timestamps in, HTTP dates out.
//!
//! Proleptic Gregorian calendar, UTC. RFC 3339 carries its own offset, so no
//! time zone database is needed.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both fit: 1..=31 and 1..=12.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `n` ASCII digits at `at`, as a number.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Parses an RFC 3339 date-time into Unix milliseconds (fractions beyond
/// milliseconds are truncated; dates before 1970 are refused).
///
/// A space where the offset sign belongs is read as `+`: in a query string
/// an unencoded `+` arrives as a space.
///
/// RFC 3339 §5.6:
///
/// ```text
/// date-fullyear   = 4DIGIT
/// date-month      = 2DIGIT  ; 01-12
/// date-mday       = 2DIGIT  ; 01-28, 01-29, 01-30, 01-31 based on
///                           ; month/year
/// time-hour       = 2DIGIT  ; 00-23
/// time-minute     = 2DIGIT  ; 00-59
/// time-second     = 2DIGIT  ; 00-58, 00-59, 00-60 based on leap second
///                           ; rules
/// time-secfrac    = "." 1*DIGIT
/// time-numoffset  = ("+" / "-") time-hour ":" time-minute
/// time-offset     = "Z" / time-numoffset
/// partial-time    = time-hour ":" time-minute ":" time-second
///                   [time-secfrac]
/// full-date       = date-fullyear "-" date-month "-" date-mday
/// full-time       = partial-time time-offset
/// date-time       = full-date "T" full-time
/// ```
///
/// and "NOTE: Per \[ABNF\] and ISO8601, the "T" and "Z" characters in this
/// syntax may alternatively be lower case "t" or "z" respectively. [...]
/// Applications using this syntax may choose, for the sake of readability,
/// to specify a full-date and full-time separated by (say) a space
/// character."
pub(crate) fn parse_rfc3339(s: &str) -> Result<u64, &'static str> {
    const SHAPE: &str = "expected YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)";
    let b = s.as_bytes();
    let num = |at, n| digits(b, at, n).ok_or(SHAPE);
    let byte = |at: usize| b.get(at).copied().unwrap_or(0);
    if byte(4) != b'-' || byte(7) != b'-' || byte(13) != b':' || byte(16) != b':' {
        return Err(SHAPE);
    }
    if !matches!(byte(10), b'T' | b't' | b' ') {
        return Err(SHAPE);
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let year = i64::from(year);
    if !(1..=12).contains(&month) {
        return Err("month must be 01-12");
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err("no such day in that month");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time out of range");
    }
    let mut at = 19;
    let mut millis = 0u64;
    if byte(at) == b'.' {
        at += 1;
        let start = at;
        while byte(at).is_ascii_digit() {
            if at - start < 3 {
                millis = millis * 10 + u64::from(byte(at) - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err("expected digits after '.'");
        }
        for _ in (at - start)..3 {
            millis *= 10;
        }
    }
    let offset_secs: i64 = match byte(at) {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-' | b' ') if at + 6 == b.len() && byte(at + 3) == b':' => {
            let (oh, om) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            let o = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return Err(SHAPE),
    };
    // A leap second is the last second of its minute, for our purposes.
    let second = second.min(59);
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    let secs = u64::try_from(secs).map_err(|_| "before 1970-01-01T00:00:00Z")?;
    Ok(secs * 1000 + millis)
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Dates past year 292 277 026 596 do not occur.
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000, -1, 0, 1, 59, 60, 10_956, 19_783, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{z}");
        }
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2024-03-01T12:00:00Z"), Ok(1_709_294_400_000));
        assert_eq!(
            parse_rfc3339("2024-03-01T13:00:00.25+01:00"),
            Ok(1_709_294_400_250)
        );
        assert_eq!(
            parse_rfc3339("2024-03-01t11:30:00.123456-00:30"),
            Ok(1_709_294_400_123)
        );
        assert_eq!(
            parse_rfc3339("2024-03-01 13:00:00 01:00"),
            Ok(1_709_294_400_000),
            "'+' decoded as a space"
        );
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2016-12-31T23:59:59Z")
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn rejects_malformed_rfc3339() {
        for bad in [
            "",
            "2024-03-01",
            "2024-03-01T12:00:00",
            "2024-03-01T12:00Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T12:60:00Z",
            "2024-03-01T12:00:00.Z",
            "2024-03-01T12:00:00+1:00",
            "2024-03-01T12:00:00+24:00",
            "2024-03-01T12:00:00ZZ",
            "1969-12-31T23:59:59Z",
            "２024-03-01T12:00:00Z",
            "2024-03-01T12:00:00+01:00:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
    }
}
