//! The pure parts of filling an object by ranges: which byte a client's range starts at, the
//! upstream's `Content-Range`, and whether a part belongs to the representation already stored.
//!
//! A part fetched later is combined with the stored ones only when it is provably the same
//! representation (RFC 9110 §14.3 and RFC 9111 §3.4): the same complete length, and a strong
//! ETag that compares strongly equal, or, without one, the same Last-Modified. A stored object
//! without either is never filled by ranges.

use http::{HeaderMap, HeaderValue, header};

use super::etag::response_etag;
use super::lists::trim_ows;
use super::preconditions::single_date;

/// A `Content-Range` of a 206 or 416.
//= https://www.rfc-editor.org/rfc/rfc9110#section-14.4
//# Content-Range       = range-unit SP
//#                       ( range-resp / unsatisfied-range )
//#
//# range-resp          = incl-range "/" ( complete-length / "*" )
//# incl-range          = first-pos "-" last-pos
//# unsatisfied-range   = "*/" complete-length
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// Bytes `first..=last` of a representation of `len` bytes (`None`: `*`, unknown).
    Bytes {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: u64,
        /// Complete length.
        len: Option<u64>,
    },
    /// `bytes */len`: nothing of a representation of `len` bytes.
    Unsatisfied {
        /// Complete length.
        len: u64,
    },
}

fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses one `Content-Range` value; anything malformed, inverted, or past the complete
/// length is `None` (RFC 9110 §14.4: such a response is invalid).
//= https://www.rfc-editor.org/rfc/rfc9110#section-14.4
//# A Content-Range field value is invalid if it contains a range-resp that has a last-pos
//# value less than its first-pos value, or a complete-length value less than or equal to its
//# last-pos value.
pub fn parse_content_range(value: &[u8]) -> Option<ContentRange> {
    let value = trim_ows(value);
    let (unit, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let rest = &rest[1..];
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (range, len) = (&rest[..slash], &rest[slash + 1..]);
    if range == b"*" {
        return Some(ContentRange::Unsatisfied { len: number(len)? });
    }
    let dash = range.iter().position(|&b| b == b'-')?;
    let first = number(&range[..dash])?;
    let last = number(&range[dash + 1..])?;
    let len = if len == b"*" {
        None
    } else {
        Some(number(len)?)
    };
    if last < first || len.is_some_and(|l| l <= last) {
        return None;
    }
    Some(ContentRange::Bytes { first, last, len })
}

/// The single `Content-Range` of a response.
pub fn response_content_range(resp: &HeaderMap) -> Option<ContentRange> {
    let mut lines = resp.get_all(header::CONTENT_RANGE).into_iter();
    match (lines.next(), lines.next()) {
        (Some(v), None) => parse_content_range(v.as_bytes()),
        _ => None,
    }
}

/// Where a client's `Range` starts, when it asks for one range from a known offset
/// (`bytes=A-` or `bytes=A-B`): the requests an object can be filled for chunk by chunk
/// without knowing its length. Suffix ranges and range lists are `None` (they need the
/// length first; the whole object is fetched for them).
pub fn single_range_start(req: &HeaderMap) -> Option<u64> {
    let mut lines = req.get_all(header::RANGE).into_iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return None;
    };
    let value = trim_ows(line.as_bytes());
    let eq = value.iter().position(|&b| b == b'=')?;
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = value[eq + 1..]
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return None;
    };
    let dash = spec.iter().position(|&b| b == b'-')?;
    let first = number(&spec[..dash])?;
    let last = &spec[dash + 1..];
    if !last.is_empty() && number(last)? < first {
        return None;
    }
    Some(first)
}

/// The response's Last-Modified when it is a strong validator: its Date at least one second
/// later (a file rewritten within the second it was served would otherwise keep its date).
//= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.2.2
//# The validator is being compared by an intermediate cache to the validator stored in its
//# cache entry for the representation, and that cache entry includes a Date value that is at
//# least one second after the Last-Modified value
fn strong_last_modified(h: &HeaderMap) -> Option<std::time::SystemTime> {
    let modified = single_date(h, &header::LAST_MODIFIED)?;
    let date = single_date(h, &header::DATE)?;
    (date.duration_since(modified).ok()?.as_secs() >= 1).then_some(modified)
}

/// The validator a part is fetched with (`If-Range`) and checked against: the stored
/// response's strong ETag, else its Last-Modified when that is strong; `None` otherwise, and
/// then it must not be filled by ranges.
pub fn part_validator(stored: &HeaderMap) -> Option<HeaderValue> {
    if let Some(tag) = response_etag(stored) {
        return (!tag.weak)
            .then(|| stored.get(header::ETAG).cloned())
            .flatten();
    }
    strong_last_modified(stored)?;
    stored.get(header::LAST_MODIFIED).cloned()
}

/// Whether a part's response header section names the same representation as `stored`
/// (RFC 9111 §3.4: strong validators match).
//= https://www.rfc-editor.org/rfc/rfc9111#section-3.4
//# A cache MUST NOT combine partial content responses unless both the stored response and the
//# incoming response have strong validators that match
pub fn same_representation(stored: &HeaderMap, part: &HeaderMap) -> bool {
    match (response_etag(stored), response_etag(part)) {
        (Some(a), Some(b)) => return a.strong_eq(&b),
        (Some(_), None) | (None, Some(_)) => return false,
        (None, None) => {}
    }
    match (
        strong_last_modified(stored),
        single_date(part, &header::LAST_MODIFIED),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(fields: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in fields {
            m.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn content_ranges() {
        let b = |first, last, len| {
            Some(ContentRange::Bytes {
                first,
                last,
                len: Some(len),
            })
        };
        assert_eq!(parse_content_range(b"bytes 0-99/1000"), b(0, 99, 1000));
        assert_eq!(parse_content_range(b"BYTES 5-5/6"), b(5, 5, 6));
        assert_eq!(
            parse_content_range(b"bytes 0-9/*"),
            Some(ContentRange::Bytes {
                first: 0,
                last: 9,
                len: None
            })
        );
        assert_eq!(
            parse_content_range(b"bytes */42"),
            Some(ContentRange::Unsatisfied { len: 42 })
        );
        for bad in [
            &b"bytes 9-0/100"[..],
            b"bytes 0-100/100",
            b"bytes 0-99",
            b"items 0-9/10",
            b"bytes -1-9/10",
            b"bytes 0-9/1x",
            b"bytes 0-99999999999999999999/100000000000000000000",
            b"bytes */*",
            b"",
        ] {
            assert_eq!(
                parse_content_range(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            response_content_range(&h(&[
                ("content-range", "bytes 0-1/2"),
                ("content-range", "bytes 0-1/2")
            ])),
            None
        );
    }

    #[test]
    fn range_starts() {
        let start = |v: &str| single_range_start(&h(&[("range", v)]));
        assert_eq!(start("bytes=0-"), Some(0));
        assert_eq!(start("bytes=900000000-900000999"), Some(900_000_000));
        assert_eq!(start("bytes = 5-"), None, "no whitespace around '='");
        assert_eq!(start("Bytes=7-7"), Some(7));
        assert_eq!(start("bytes=7-7,"), Some(7));
        assert_eq!(start("bytes=-500"), None, "suffix");
        assert_eq!(start("bytes=0-1,5-6"), None, "a list");
        assert_eq!(start("bytes=9-1"), None, "inverted");
        assert_eq!(start("items=0-1"), None);
        assert_eq!(single_range_start(&HeaderMap::new()), None);
        assert_eq!(
            single_range_start(&h(&[("range", "bytes=0-"), ("range", "bytes=1-")])),
            None
        );
    }

    #[test]
    fn validators_for_parts() {
        let strong = h(&[
            ("etag", "\"v1\""),
            ("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"),
        ]);
        let weak = h(&[
            ("etag", "W/\"v1\""),
            ("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"),
        ]);
        let dated = h(&[
            ("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"),
            ("date", "Tue, 01 Dec 2026 00:00:01 GMT"),
        ]);
        // Served within the second it was modified: the date is not a strong validator.
        let same_second = h(&[
            ("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"),
            ("date", "Tue, 01 Dec 2026 00:00:00 GMT"),
        ]);
        assert_eq!(part_validator(&same_second), None);
        assert!(!same_representation(&same_second, &same_second));
        assert_eq!(part_validator(&strong).unwrap(), "\"v1\"");
        assert_eq!(
            part_validator(&weak),
            None,
            "a weak tag does not validate parts"
        );
        assert_eq!(
            part_validator(&dated).unwrap(),
            "Tue, 01 Dec 2026 00:00:00 GMT"
        );
        assert_eq!(part_validator(&HeaderMap::new()), None);

        assert!(same_representation(&strong, &h(&[("etag", "\"v1\"")])));
        assert!(!same_representation(&strong, &h(&[("etag", "\"v2\"")])));
        assert!(!same_representation(&strong, &h(&[("etag", "W/\"v1\"")])));
        assert!(!same_representation(&strong, &dated), "the tag went away");
        assert!(same_representation(&dated, &dated));
        assert!(!same_representation(
            &dated,
            &h(&[("last-modified", "Wed, 02 Dec 2026 00:00:00 GMT")])
        ));
        assert!(!same_representation(&HeaderMap::new(), &HeaderMap::new()));
    }
}
