//! Range requests (RFC 9110 §14) over a representation whose length is known.
//!
//! One satisfiable range is a 206 with `Content-Range`; two to [`MAX_PARTS`] of them, in
//! ascending order and not overlapping, a 206 `multipart/byteranges` (§14.6). Any other set of
//! ranges (more parts, overlapping or out of order, the request shapes §14.2 names as abuse)
//! gets the whole representation (a 200), which §14.2 allows ("A server MAY ignore the Range
//! header field"). Parsing is strict about the grammar and lenient only where the list rules
//! of §5.6.1 are (optional whitespace around and empty elements between specs).

use std::cmp::Ordering;

use http::{HeaderMap, HeaderValue, Method, header};

use super::etag::{EntityTag, response_etag};
use super::lists::trim_ows;
use super::preconditions::single_date;
use super::value_from;

/// Most parts a `multipart/byteranges` answer has; a request for more gets a 200.
//= https://www.rfc-editor.org/rfc/rfc9110#section-14.2
//# A server that supports range requests MAY ignore or reject a Range header field that
//# contains an invalid ranges-specifier (Section 14.1.1), a ranges-specifier with more than two
//# overlapping ranges, or a set of many small ranges that are not listed in ascending order,
//# since these are indications of either a broken client or a deliberate denial-of-service
//# attack (Section 17.15).
pub const MAX_PARTS: usize = 16;

/// How to answer a request given its `Range` and `If-Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole representation (200): no range, an ignored range, or several ranges.
    Full,
    /// Send bytes `start..=end` (206 with [`content_range`]); always `start <= end < len`.
    Partial {
        /// First byte, zero-based.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// Send these ranges (inclusive, ascending, not overlapping, 2 to [`MAX_PARTS`] of them)
    /// as a 206 `multipart/byteranges`.
    Multi(Vec<(u64, u64)>),
    /// No requested range overlaps the representation: 416 with [`unsatisfied_range`].
    Unsatisfiable,
}

/// Decides between 200, 206 and 416 for a request, against the response about to be served
/// (`resp`, whose validators `If-Range` is compared with) of `len` bytes.
///
/// Call it only for a 200 response, after [`super::evaluate_preconditions`] returned
/// `Proceed` (If-Range is step 5 of RFC 9110 §13.2.2); other statuses are sent as they are.
pub fn evaluate_range(
    method: &Method,
    req: &HeaderMap,
    resp: &HeaderMap,
    len: u64,
) -> RangeOutcome {
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.2
    //# A server MUST ignore a Range header field received with a request method that is
    //# unrecognized or for which range handling is not defined. For this specification, GET is
    //# the only method for which range handling is defined.
    if method != Method::GET {
        return RangeOutcome::Full;
    }
    // `Range` is a single value, not a list: a second line makes the whole field invalid.
    let mut lines = req.get_all(header::RANGE).into_iter();
    let Some(range) = lines.next() else {
        return RangeOutcome::Full;
    };
    if lines.next().is_some() {
        return RangeOutcome::Full;
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5
    //# A recipient of an If-Range header field MUST ignore the Range header field if the
    //# If-Range condition evaluates to false.
    if req.contains_key(header::IF_RANGE) && !if_range_holds(req, resp) {
        return RangeOutcome::Full;
    }
    match parse_byte_ranges(range.as_bytes(), len) {
        Parsed::Ignore => RangeOutcome::Full,
        Parsed::Satisfiable { ranges } if ranges.is_empty() => RangeOutcome::Unsatisfiable,
        //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.2
        //# If the selected representation is shorter than the specified suffix-length, the
        //# entire representation is used.
        // On an empty representation that is zero bytes, which a 206 cannot express.
        Parsed::Satisfiable { .. } if len == 0 => RangeOutcome::Full,
        Parsed::Satisfiable { ranges } if ranges.len() == 1 => RangeOutcome::Partial {
            start: ranges[0].0,
            end: ranges[0].1,
        },
        Parsed::Satisfiable { ranges }
            if ranges.len() <= MAX_PARTS && ranges.windows(2).all(|w| w[0].1 < w[1].0) =>
        {
            RangeOutcome::Multi(ranges)
        }
        Parsed::Satisfiable { .. } => RangeOutcome::Full,
    }
}

/// `Content-Range` of a 206: `bytes 0-99/1000`.
//= https://www.rfc-editor.org/rfc/rfc9110#section-14.4
//# range-resp = incl-range "/" ( complete-length / "*" )
pub fn content_range(start: u64, end: u64, len: u64) -> HeaderValue {
    value_from(format!("bytes {start}-{end}/{len}").into_bytes())
}

/// `Content-Range` of a 416: `bytes */1000`.
//= https://www.rfc-editor.org/rfc/rfc9110#section-15.5.17
//# When this status code is generated in response to a byte-range request, the sender SHOULD
//# generate a Content-Range header field specifying the current length of the selected
//# representation
pub fn unsatisfied_range(len: u64) -> HeaderValue {
    value_from(format!("bytes */{len}").into_bytes())
}

/// Whether the `If-Range` condition of `req` holds for `resp`.
fn if_range_holds(req: &HeaderMap, resp: &HeaderMap) -> bool {
    let mut lines = req.get_all(header::IF_RANGE).into_iter();
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return false;
    };
    let value = trim_ows(line.as_bytes());
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5
    //# 1. If the validator given in the If-Range header field is an entity tag, the condition
    //#    is true if it strongly matches the ETag of the selected representation.
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (EntityTag::parse(value), response_etag(resp)) {
            (Some(given), Some(current)) => given.strong_eq(&current),
            _ => false,
        };
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5
    //# 2. If the validator given in the If-Range header field is an HTTP-date, the condition
    //#    is true if and only if the Last-Modified is a strong validator and exactly matches
    //#    the validator.
    //# 3. Otherwise, the condition is false.
    let Some(given) = single_date(req, &header::IF_RANGE) else {
        return false;
    };
    let Some(modified) = single_date(resp, &header::LAST_MODIFIED) else {
        return false;
    };
    //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.2.2
    //# The validator is being compared by an intermediate cache to the validator stored in
    //# its cache entry for the representation, and that cache entry includes a Date value
    //# that is at least one second after the Last-Modified value
    let strong = single_date(resp, &header::DATE)
        .and_then(|date| date.duration_since(modified).ok())
        .is_some_and(|d| d.as_secs() >= 1);
    strong && given == modified
}

/// The result of parsing a `Range` field against a length.
enum Parsed {
    /// Not a syntactically valid `bytes` range: the field is ignored.
    Ignore,
    /// Valid; the satisfiable specs, clamped, in request order: at most [`MAX_PARTS`] + 1 of
    /// them (one more says "too many" as well as any number would).
    Satisfiable { ranges: Vec<(u64, u64)> },
}

/// Parses a `Range` value and resolves each spec against `len`.
//= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
//# ranges-specifier = range-unit "=" range-set
//# range-set        = 1#range-spec
//# range-spec       = int-range
//#                  / suffix-range
//#                  / other-range
fn parse_byte_ranges(value: &[u8], len: u64) -> Parsed {
    let value = trim_ows(value);
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return Parsed::Ignore;
    };
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1
    //# Range unit names are case-insensitive
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-14.2
        //# An origin server MUST ignore a Range header field that contains a range unit it
        //# does not understand.
        return Parsed::Ignore;
    }
    let mut ranges = Vec::new();
    let mut specs = 0usize;
    for spec in value[eq + 1..].split(|&b| b == b',') {
        let spec = trim_ows(spec);
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        let Some(resolved) = resolve_spec(spec, len) else {
            //= https://www.rfc-editor.org/rfc/rfc9110#section-14.2
            //# A server MAY ignore the Range header field.
            return Parsed::Ignore;
        };
        if let Some(r) = resolved
            && ranges.len() <= MAX_PARTS
        {
            ranges.push(r);
        }
    }
    if specs == 0 {
        return Parsed::Ignore;
    }
    Parsed::Satisfiable { ranges }
}

/// One range-spec: `None` if invalid, `Some(None)` if valid but unsatisfiable, else the
/// clamped inclusive range (on a zero-length representation a satisfiable suffix range is
/// reported as `(0, 0)`; the caller never turns that into a 206).
fn resolve_spec(spec: &[u8], len: u64) -> Option<Option<(u64, u64)>> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
        //# suffix-range = "-" suffix-length
        //# suffix-length = 1*DIGIT
        let n = digits(last)?;
        //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
        //# a suffix-range with a non-zero suffix-length.
        if n == 0 {
            return Some(None);
        }
        return Some(Some((len.saturating_sub(n), len.saturating_sub(1))));
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
    //# int-range     = first-pos "-" [ last-pos ]
    let start = digits(first)?;
    let end = if last.is_empty() {
        u64::MAX
    } else {
        let end = digits(last)?;
        //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
        //# An int-range is invalid if the last-pos value is present and less than the
        //# first-pos.
        if compare_decimal(last, first) == Ordering::Less {
            return None;
        }
        end
    };
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
    //# an int-range with a first-pos that is less than the current length of the selected
    //# representation
    if start >= len {
        return Some(None);
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-14.1.2
    //# If the last-pos value is absent, or if the value is greater than or equal to the
    //# current length of the representation data, the byte range is interpreted as the
    //# remainder of the representation
    Some(Some((start, end.min(len - 1))))
}

/// `1*DIGIT` as a number, saturating at `u64::MAX`: a position past any real length is still a
/// valid (and then unsatisfiable, or clamped) position, not a syntax error.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Compares two `1*DIGIT` strings as numbers of any size.
fn compare_decimal(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&d| d == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests;
