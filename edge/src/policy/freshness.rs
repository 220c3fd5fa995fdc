//! Freshness lifetime (RFC 9111 §4.2.1, §4.2.2, §5.3) and the per-object policy computed from
//! it once at store time.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header};

use super::age::date_value;
use super::config::PolicyConfig;
use super::directives::{
    DirectiveSource, FieldScope, ResponseDirectives, effective_response_directives,
};
use super::syntax::{MAX_DELTA, first_str, trim_ows};

/// What the cache needs, on every hit, to decide about reuse: computed once at store time (and
/// after a 304) so the hit path parses no header.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredPolicy {
    /// §4.2.1: s-maxage > max-age > Expires − Date > heuristic (§4.2.2) > 0.
    pub freshness_lifetime: Duration,
    /// The lifetime came from the §4.2.2 heuristic.
    pub heuristic: bool,
    /// Unqualified no-cache: revalidate before every reuse (§5.2.2.4).
    pub no_cache: bool,
    /// Qualified no-cache: strip these fields when serving without revalidation.
    pub no_cache_fields: Vec<String>,
    /// must-revalidate, proxy-revalidate, or s-maxage (§5.2.2.10): never serve stale.
    pub must_revalidate: bool,
    /// RFC 5861 §3 window after expiry in which the response may be served while revalidating.
    pub stale_while_revalidate: Option<Duration>,
    /// RFC 5861 §4 window after expiry in which the response may be served on upstream error.
    pub stale_if_error: Option<Duration>,
    /// RFC 8246 immutable: the response will not change while fresh.
    pub immutable: bool,
}

//= https://www.rfc-editor.org/rfc/rfc9110#section-15.1
//# Responses with status codes that are defined as heuristically cacheable (e.g., 200, 203,
//# 204, 206, 300, 301, 308, 404, 405, 410, 414, and 501 in this specification) can be reused
//# by a cache with heuristic expiration unless otherwise indicated by the method definition or
//# explicit cache controls
/// Status codes RFC 9110 defines as heuristically cacheable.
pub const HEURISTICALLY_CACHEABLE: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Whether `status` is heuristically cacheable (RFC 9110 §15.1).
pub fn is_heuristically_cacheable(status: StatusCode) -> bool {
    HEURISTICALLY_CACHEABLE.contains(&status.as_u16())
}

impl StoredPolicy {
    /// The policy of a response as received. The response should carry a Date (see
    /// [`super::ensure_date`]); without one, an Expires yields lifetime 0 and no heuristic
    /// applies, since neither can be computed. Use [`StoredPolicy::from_response_at`] when the
    /// arrival time is at hand.
    pub fn from_response(status: StatusCode, headers: &HeaderMap, cfg: &PolicyConfig) -> Self {
        let (d, src) = effective_response_directives(headers, cfg);
        Self::from_directives(status, headers, &d, &src, None, cfg)
    }

    /// As [`StoredPolicy::from_response`], with `response_time` standing in for a missing Date
    /// (RFC 9111 §4.2.1: "using the time the message was received if it is not present").
    pub fn from_response_at(
        status: StatusCode,
        headers: &HeaderMap,
        response_time: SystemTime,
        cfg: &PolicyConfig,
    ) -> Self {
        let (d, src) = effective_response_directives(headers, cfg);
        Self::from_directives(status, headers, &d, &src, Some(response_time), cfg)
    }

    /// The policy from already-parsed directives.
    pub(crate) fn from_directives(
        status: StatusCode,
        headers: &HeaderMap,
        d: &ResponseDirectives,
        src: &DirectiveSource,
        response_time: Option<SystemTime>,
        cfg: &PolicyConfig,
    ) -> Self {
        let (freshness_lifetime, heuristic) =
            freshness_lifetime(status, headers, d, src, response_time, cfg);
        Self {
            freshness_lifetime,
            heuristic,
            no_cache: d.no_cache == FieldScope::All,
            no_cache_fields: match &d.no_cache {
                FieldScope::Fields(f) => f.clone(),
                _ => Vec::new(),
            },
            //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.8
            //# The proxy-revalidate response directive indicates that shared caches MUST NOT
            //# use a stale response when the response is stale
            //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.10
            //# The s-maxage directive incorporates the semantics of the proxy-revalidate
            //# response directive (Section 5.2.2.8) for a shared cache.
            must_revalidate: d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some(),
            stale_while_revalidate: d.stale_while_revalidate,
            stale_if_error: d.stale_if_error,
            immutable: d.immutable,
        }
    }
}

/// Whether the response carries explicit expiration information for this cache (s-maxage,
/// max-age, or, when Cache-Control governs, an Expires field, valid or not).
pub(crate) fn has_explicit_expiration(
    headers: &HeaderMap,
    d: &ResponseDirectives,
    src: &DirectiveSource,
) -> bool {
    d.s_maxage.is_some()
        || d.max_age.is_some()
        || (*src == DirectiveSource::CacheControl && headers.contains_key(header::EXPIRES))
}

/// The freshness lifetime and whether it is heuristic.
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.1
//# A cache can calculate the freshness lifetime (denoted as freshness_lifetime) of a response
//# by evaluating the following rules and using the first match:
//#  *  If the cache is shared and the s-maxage response directive (Section 5.2.2.10) is
//#     present, use its value, or
//#  *  If the max-age response directive (Section 5.2.2.1) is present, use its value, or
//#  *  If the Expires response header field (Section 5.3) is present, use its value minus the
//#     value of the Date response header field (using the time the message was received if it
//#     is not present, as per Section 6.6.1 of [HTTP]), or
//#  *  Otherwise, no explicit expiration time is present in the response.  A heuristic
//#     freshness lifetime might be applicable; see Section 4.2.2.
fn freshness_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    d: &ResponseDirectives,
    src: &DirectiveSource,
    response_time: Option<SystemTime>,
    cfg: &PolicyConfig,
) -> (Duration, bool) {
    let (lifetime, heuristic) = response_lifetime(status, headers, d, src, response_time, cfg);
    // The operator's cap (a service's `ttl.max`) holds over whatever the response says.
    (
        cfg.max_ttl.map_or(lifetime, |max| lifetime.min(max)),
        heuristic,
    )
}

/// The lifetime the response itself gives (or the heuristic, or the configured default).
fn response_lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    d: &ResponseDirectives,
    src: &DirectiveSource,
    response_time: Option<SystemTime>,
    cfg: &PolicyConfig,
) -> (Duration, bool) {
    if let Some(v) = d.s_maxage {
        return (v, false);
    }
    if let Some(v) = d.max_age {
        return (v, false);
    }
    //= https://www.rfc-editor.org/rfc/rfc9213#section-2.1
    //# it MUST ignore the Cache-Control and Expires header fields in that response
    if *src == DirectiveSource::CacheControl && headers.contains_key(header::EXPIRES) {
        return (expires_lifetime(headers, response_time), false);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.2
    //# heuristics can only be used on responses without explicit freshness whose status codes
    //# are defined as heuristically cacheable (e.g., see Section 15.1 of [HTTP]) and on
    //# responses without explicit freshness that have been marked as explicitly cacheable
    //# (e.g., with a public response directive).
    if is_heuristically_cacheable(status) || d.public {
        // A service's `ttl.default` stands in for the heuristic: the operator knows its site.
        if let Some(ttl) = cfg.default_ttl {
            return (ttl, true);
        }
        return (heuristic_lifetime(headers, response_time, cfg), true);
    }
    (Duration::ZERO, false)
}

/// Expires − Date. Several different Expires values, an invalid date (including "0"), or no
/// usable Date give 0 (already expired).
//= https://www.rfc-editor.org/rfc/rfc9111#section-5.3
//# A cache recipient MUST interpret invalid date formats, especially the value "0", as
//# representing a time in the past (i.e., "already expired").
fn expires_lifetime(headers: &HeaderMap, response_time: Option<SystemTime>) -> Duration {
    let mut lines = headers.get_all(header::EXPIRES).iter();
    let Some(first) = lines.next() else {
        return Duration::ZERO;
    };
    if lines.any(|v| trim_ows(v.as_bytes()) != trim_ows(first.as_bytes())) {
        return Duration::ZERO;
    }
    let Some(expires) = std::str::from_utf8(trim_ows(first.as_bytes()))
        .ok()
        .and_then(crate::policy::http_date::parse_http_date)
    else {
        return Duration::ZERO;
    };
    let Some(date) = date_value(headers).or(response_time) else {
        return Duration::ZERO;
    };
    expires
        .duration_since(date)
        .unwrap_or(Duration::ZERO)
        .min(MAX_DELTA)
}

/// `fraction × (Date − Last-Modified)`, capped at `heuristic_max`, in whole seconds; 0 without a
/// valid Last-Modified or a Date to measure from.
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.2
//# If the response has a Last-Modified header field (Section 8.8.2 of [HTTP]), caches are
//# encouraged to use a heuristic expiration value that is no more than some fraction of the
//# interval since that time.  A typical setting of this fraction might be 10%.
fn heuristic_lifetime(
    headers: &HeaderMap,
    response_time: Option<SystemTime>,
    cfg: &PolicyConfig,
) -> Duration {
    let Some(last_modified) = first_str(headers, header::LAST_MODIFIED)
        .and_then(crate::policy::http_date::parse_http_date)
    else {
        return Duration::ZERO;
    };
    let Some(date) = date_value(headers).or(response_time) else {
        return Duration::ZERO;
    };
    let interval = date.duration_since(last_modified).unwrap_or(Duration::ZERO);
    let secs = interval.as_secs_f64() * cfg.heuristic_fraction;
    if !secs.is_finite() || secs <= 0.0 {
        return Duration::ZERO;
    }
    let cap = cfg.heuristic_max.min(MAX_DELTA).as_secs_f64();
    // Truncation to whole seconds is intended: freshness is reported in seconds.
    Duration::from_secs(secs.min(cap) as u64)
}

#[cfg(test)]
mod tests;
