//! HTTP semantics the engine applies around the cache: preconditions, ranges, Cache-Status,
//! forwarding headers and the request target.
//!
//! Everything here is a pure function over `http` types: no IO, no clock, no randomness (random
//! bytes and `now` are arguments). The engine calls these at fixed points of the request path:
//!
//! ```text
//! request ──▶ request_target (authority, method) ──▶ forwarding (strip hop-by-hop, XFF,
//!   Forwarded, Via, CDN-Loop, traceparent) ──▶ upstream
//! stored / fetched response ──▶ preconditions (304 / 412) ──▶ range (206 / 416)
//!   ──▶ cache_status + Via ──▶ client
//! ```
//!
//! Parsers of client input here never panic and never allocate in proportion to anything but
//! their input; malformed input is ignored or rejected exactly as the cited RFC text says.

pub mod cache_status;
pub mod etag;
pub mod forwarding;
pub mod framing;
pub mod head_limits;
pub mod preconditions;
pub mod range;
pub mod request_target;
pub mod slicing;
pub mod trace;

mod lists;

pub(crate) use lists::split_list;

pub use cache_status::{CacheStatus, FwdReason, append_cache_status, append_cache_status_lines};
pub use forwarding::{
    ClientContext, HopIdentity, add_forwarding_headers, cdn_loop_count, cdn_loop_through,
    connection_named, connection_options, decrement_max_forwards, forwarded_scheme, is_hop_by_hop,
    strip_hop_by_hop,
};
pub use framing::{FramingError, check_framing};
pub use head_limits::{HeadLimits, within_head_limits};
pub use preconditions::{Precondition, evaluate_preconditions, not_modified_headers};
pub use range::{RangeOutcome, content_range, evaluate_range, unsatisfied_range};
pub use request_target::{TargetError, check_method, request_authority};
pub use trace::{next_traceparent, propagate_trace};

use http::{HeaderMap, HeaderName, HeaderValue};

/// `Cache-Status` (RFC 9211); not among `http`'s predefined names.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// `CDN-Loop` (RFC 8586).
pub const CDN_LOOP: HeaderName = HeaderName::from_static("cdn-loop");
/// `X-Forwarded-For`, the de-facto client address list.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`, the de-facto client scheme.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context).
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `Keep-Alive` (RFC 2068 §19.7.1), connection-specific.
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection`, the pre-standard connection header some clients still send.
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Builds a header value from text this module generated itself.
///
/// Callers only pass bytes that are valid in a field value (they come from our own formatting
/// or from bytes already checked); should that invariant ever break, we send an empty value
/// rather than panic on the request path, and debug builds catch the bug.
pub(crate) fn value_from(bytes: Vec<u8>) -> HeaderValue {
    match HeaderValue::from_maybe_shared(bytes::Bytes::from(bytes)) {
        Ok(v) => v,
        Err(_) => {
            debug_assert!(false, "generated an invalid header value");
            HeaderValue::from_static("")
        }
    }
}

/// A decimal field value (`Content-Length`, `Age`). Numbers below ten are constants: `Age` is 0
/// on nearly every miss and a few seconds on a fresh hit, and `HeaderValue::from(u64)` is an
/// allocation.
pub(crate) fn decimal_value(n: u64) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(n).ok().and_then(|i| DIGITS.get(i)) {
        Some(digit) => HeaderValue::from_static(digit),
        None => HeaderValue::from(n),
    }
}

/// Sets `name` to the decimal `n`, unless it already holds exactly that one value (a stored
/// response's `Content-Length` nearly always does): no new value, no second hashing.
pub(crate) fn set_decimal(headers: &mut HeaderMap, name: HeaderName, n: u64) {
    let mut lines = headers.get_all(&name).iter();
    if let (Some(only), None) = (lines.next(), lines.next())
        && only.as_bytes() == itoa::Buffer::new().format(n).as_bytes()
    {
        return;
    }
    headers.insert(name, decimal_value(n));
}

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.6.2 `token`: one or more `tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_LENGTH;

    #[test]
    fn decimal_values_read_as_the_number() {
        for n in [0, 1, 9, 10, 42, 1024, u64::MAX] {
            assert_eq!(decimal_value(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    /// An equal single value is kept; a different one, a list or several lines are replaced
    /// by the one value.
    #[test]
    fn set_decimal_replaces_all_but_the_same_single_value() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "1024"),
            (&["1024"], "1024"),
            (&["01024"], "1024"),
            (&["1024, 1024"], "1024"),
            (&["1024", "1024"], "1024"),
            (&["7"], "1024"),
        ];
        for (lines, want) in cases {
            let mut h = HeaderMap::new();
            for l in *lines {
                h.append(CONTENT_LENGTH, HeaderValue::from_static(l));
            }
            set_decimal(&mut h, CONTENT_LENGTH, 1024);
            let got: Vec<&[u8]> = h
                .get_all(CONTENT_LENGTH)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            assert_eq!(got, vec![want.as_bytes()], "lines {lines:?}");
        }
    }
}
