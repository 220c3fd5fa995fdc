//! HTTP-dates (RFC 9110 §5.6.7) in `Date`, `Expires`, `Last-Modified` and the conditionals.

use tiercel_edge::policy::http_date::parse_http_date_at;

use crate::input::now;

/// Properties: a date we read is written back as IMF-fixdate and read again as the same
/// instant; every IMF-fixdate or asctime date `httpdate` accepts, we accept as the same
/// instant (rfc850 is left out: its two-digit year is read relative to the clock, on purpose).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let at = now();
    let ours = parse_http_date_at(text, at);
    if let Some(t) = ours
        && let Ok(since) = t.duration_since(std::time::UNIX_EPOCH)
        && since.as_secs() < 253_402_300_800
    {
        let written = httpdate::fmt_http_date(t);
        assert_eq!(parse_http_date_at(&written, at), Some(t), "{written}");
    }
    // Only what can be a field value: `httpdate` also trims form feeds and the like, which
    // hyper never lets into a header.
    let field_value = text.bytes().all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t');
    if field_value
        && let Ok(t) = httpdate::parse_http_date(text)
        && !text.contains('-')
    {
        assert_eq!(ours, Some(t), "{text:?}");
    }
}
