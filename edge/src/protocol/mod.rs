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

use http::{HeaderName, HeaderValue};

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

/// RFC 9110 §5.6.2 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §5.6.2 `token`: one or more `tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}
