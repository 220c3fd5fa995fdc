//! HTTP-date (RFC 9110 §5.6.7): the three formats a recipient must accept, for `Date`,
//! `Expires`, `Last-Modified`, `If-Modified-Since`, `If-Unmodified-Since`, `If-Range` and
//! `Retry-After`.
//!
//! ```text
//! IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
//! rfc850-date  Sunday, 06-Nov-94 08:49:37 GMT
//! asctime      Sun Nov  6 08:49:37 1994
//! ```
//!
//! Written here rather than taken from `httpdate` for two rules of §5.6.7 it does not follow:
//! a two-digit year is placed relative to the recipient's clock (not a fixed 1970 pivot), and
//! the day name is not cross-checked against the date (recipients are told to be robust, and
//! origins do send dates whose weekday is wrong; refusing them would turn a valid `Expires`
//! into "already expired").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

//= https://www.rfc-editor.org/rfc/rfc9110#section-5.6.7
//# A recipient that parses a timestamp value in an HTTP field MUST accept all three HTTP-date
//# formats.

/// Parses an HTTP-date; `None` when it is none of the three formats or names no real time.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    // The clock is read only for the obsolete two-digit year (nearly every Date is IMF-fixdate).
    let s = text.trim_matches([' ', '\t']).as_bytes();
    let parts = imf_fixdate(s)
        .or_else(|| rfc850(s, SystemTime::now()))
        .or_else(|| asctime(s))?;
    parts.to_time()
}

/// [`parse_http_date`] as seen at `now` (the clock matters only for a two-digit year).
pub fn parse_http_date_at(text: &str, now: SystemTime) -> Option<SystemTime> {
    let s = text.trim_matches([' ', '\t']).as_bytes();
    let parts = imf_fixdate(s)
        .or_else(|| rfc850(s, now))
        .or_else(|| asctime(s))?;
    parts.to_time()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

const SHORT_DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
const LONG_DAYS: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];
const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

fn month(s: &[u8]) -> Option<u32> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

/// `hour ":" minute ":" second`, two digits each.
fn time_of_day(s: &[u8]) -> Option<(u32, u32, u32)> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    Some((digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(s: &[u8]) -> Option<Parts> {
    if s.len() != 29 || !SHORT_DAYS.contains(&&s[0..3]) || &s[3..5] != b", " {
        return None;
    }
    let rest = &s[5..];
    if rest[2] != b' ' || rest[6] != b' ' || rest[11] != b' ' || &rest[20..] != b" GMT" {
        return None;
    }
    let (hour, minute, second) = time_of_day(&rest[12..20])?;
    Some(Parts {
        day: digits(&rest[0..2])?,
        month: month(&rest[3..6])?,
        year: i64::from(digits(&rest[7..11])?),
        hour,
        minute,
        second,
    })
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn rfc850(s: &[u8], now: SystemTime) -> Option<Parts> {
    let comma = s.iter().position(|&b| b == b',')?;
    if !LONG_DAYS.contains(&&s[..comma]) {
        return None;
    }
    let rest = s.get(comma..)?;
    // ", " date2 SP time SP "GMT"
    if rest.len() != 24 || &rest[0..2] != b", " || &rest[20..] != b" GMT" {
        return None;
    }
    let date = &rest[2..11];
    if date[2] != b'-' || date[6] != b'-' || rest[11] != b' ' {
        return None;
    }
    let (hour, minute, second) = time_of_day(&rest[12..20])?;
    let two = i64::from(digits(&date[7..9])?);
    Some(Parts {
        day: digits(&date[0..2])?,
        month: month(&date[3..6])?,
        year: full_year(two, now),
        hour,
        minute,
        second,
    })
}

//= https://www.rfc-editor.org/rfc/rfc9110#section-5.6.7
//# Recipients of a timestamp value in rfc850-date format, which uses a two-digit year, MUST
//# interpret a timestamp that appears to be more than 50 years in the future as representing
//# the most recent year in the past that had the same last two digits.
fn full_year(two: i64, now: SystemTime) -> i64 {
    let this_year = civil_year(now);
    let century = this_year - this_year.rem_euclid(100);
    let candidate = century + two;
    if candidate > this_year + 50 {
        candidate - 100
    } else if candidate + 100 <= this_year + 50 {
        candidate + 100
    } else {
        candidate
    }
}

/// `Sun Nov  6 08:49:37 1994`
fn asctime(s: &[u8]) -> Option<Parts> {
    if s.len() != 24 || !SHORT_DAYS.contains(&&s[0..3]) || s[3] != b' ' || s[7] != b' ' {
        return None;
    }
    let day = match (s[8], s[9]) {
        (b' ', d) if d.is_ascii_digit() => u32::from(d - b'0'),
        _ => digits(&s[8..10])?,
    };
    if s[10] != b' ' || s[19] != b' ' {
        return None;
    }
    let (hour, minute, second) = time_of_day(&s[11..19])?;
    Some(Parts {
        day,
        month: month(&s[4..7])?,
        year: i64::from(digits(&s[20..24])?),
        hour,
        minute,
        second,
    })
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil year of `t` (UTC).
fn civil_year(t: SystemTime) -> i64 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

impl Parts {
    fn to_time(self) -> Option<SystemTime> {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-5.6.7
        //# second       = 2DIGIT
        // 60 is a leap second (IMF allows it); it is the next minute's first second here.
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        let secs = u64::try_from(secs).ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-12-05 00:00:00 UTC.
    const NOW: u64 = 1_796_428_800;

    #[test]
    fn the_three_formats_of_rfc_9110() {
        let want = Some(at(784_111_777)); // 1994-11-06 08:49:37 UTC
        let now = at(NOW);
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT\t",
            // A wrong day name is tolerated (robustness, §5.6.7).
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Monday, 06-Nov-94 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date_at(text, now), want, "{text:?}");
        }
        assert_eq!(
            parse_http_date_at("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date_at("Sat, 29 Feb 2020 23:59:59 GMT", now),
            Some(at(1_583_020_799))
        );
    }

    #[test]
    fn two_digit_years_are_placed_relative_to_now() {
        let now = at(NOW); // in 2026
        let year = |t: &str| parse_http_date_at(t, now).map(civil_year);
        // 2076 is under 50 years ahead: it stays in the future (httpdate says 1976).
        assert_eq!(year("Friday, 06-Nov-76 08:49:37 GMT"), Some(2076));
        // 2077 is more than 50 years ahead: the most recent past 77 instead.
        assert_eq!(year("Saturday, 06-Nov-77 08:49:37 GMT"), Some(1977));
        assert_eq!(year("Sunday, 06-Nov-94 08:49:37 GMT"), Some(1994));
        assert_eq!(year("Monday, 06-Nov-26 08:49:37 GMT"), Some(2026));
        assert_eq!(year("Monday, 06-Nov-00 08:49:37 GMT"), Some(2000));
        assert_eq!(full_year(99, at(NOW)), 1999);
        assert_eq!(full_year(5, at(NOW)), 2005);
    }

    #[test]
    fn anything_else_is_no_date() {
        let now = at(NOW);
        for bad in [
            "",
            "0",
            "-1",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "sun, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sund, 06-Nov-94 08:49:37 GMT",
            "Sun Nov 06 08:49:37 94",
            "Sun Nov  6 8:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 06 Nov 1994 08:49:37 GM\u{e9}",
        ] {
            assert_eq!(parse_http_date_at(bad, now), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever bytes arrive, parsing never panics; and every time we format parses back.
        #[test]
        fn never_panics_and_round_trips(text in "\\\\PC{0,40}", secs in 0u64..4_102_444_800) {
            let _ = parse_http_date_at(&text, at(NOW));
            let t = at(secs);
            let formatted = httpdate::fmt_http_date(t);
            proptest::prop_assert_eq!(parse_http_date_at(&formatted, at(NOW)), Some(t));
        }
    }
}
