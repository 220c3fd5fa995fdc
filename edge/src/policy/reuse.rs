//! May a stored response answer this request (RFC 9111 §4, §4.2.4, §5.2.1, RFC 5861)? Runs on
//! every hit: plain arithmetic over values computed at store time, no header parsing.
//!
//! The decision, in order:
//!
//! ```text
//! response no-cache ───────────────────────────▶ Revalidate(ResponseNoCache)
//! request no-cache ────────────────────────────▶ Revalidate(RequestNoCache)
//! age > request max-age (or max-age=0) ────────▶ Revalidate(RequestMaxAge)
//! fresh, but less than min-fresh left ─────────▶ Revalidate(RequestMinFresh)
//! fresh (and not soft-purged) ─────────────────▶ Fresh { ttl }
//! ── stale from here ──
//! must-revalidate / proxy-revalidate / s-maxage ▶ Revalidate(Stale | ForcedStale)
//! min-fresh asked ─────────────────────────────▶ Revalidate(Stale)
//! within request max-stale (not soft-purged) ──▶ StaleAccepted
//! within stale-while-revalidate ───────────────▶ StaleWhileRevalidate
//! otherwise ───────────────────────────────────▶ Revalidate(Stale | ForcedStale)
//! ```

use std::time::{Duration, SystemTime};

use super::age::AgeClock;
use super::config::PolicyConfig;
use super::directives::{MaxStale, RequestDirectives};
use super::freshness::StoredPolicy;

/// What to do with a stored response for this request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it (minus `no_cache_fields`); `ttl` is the freshness left.
    Fresh {
        /// Remaining freshness lifetime.
        ttl: Duration,
    },
    /// Stale, but the request's max-stale accepts it (§4.2.4; never with must_revalidate).
    StaleAccepted,
    /// Stale within stale-while-revalidate: serve it and revalidate in the background
    /// (RFC 5861 §3).
    StaleWhileRevalidate,
    /// Send a conditional request upstream before serving (§4.3).
    Revalidate(RevalidateReason),
}

/// Why a stored response must be revalidated before it is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevalidateReason {
    /// Its freshness lifetime is over.
    Stale,
    /// The stored response said no-cache (unqualified).
    ResponseNoCache,
    /// The request said no-cache (or Pragma: no-cache).
    RequestNoCache,
    /// The response is older than the request's max-age.
    RequestMaxAge,
    /// The response has less freshness left than the request's min-fresh.
    RequestMinFresh,
    /// The object was soft-purged.
    ForcedStale,
}

impl RevalidateReason {
    /// A short kebab-case name, for logs and Cache-Status `detail=`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevalidateReason::Stale => "stale",
            RevalidateReason::ResponseNoCache => "response-no-cache",
            RevalidateReason::RequestNoCache => "request-no-cache",
            RevalidateReason::RequestMaxAge => "request-max-age",
            RevalidateReason::RequestMinFresh => "request-min-fresh",
            RevalidateReason::ForcedStale => "soft-purged",
        }
    }
}

/// Decides whether the stored response may be served for this request. `force_stale`: the
/// object was soft-purged: treat it as stale whatever its age (max-stale then does not apply,
/// so the purge always leads to a revalidation; stale-while-revalidate still does).
///
/// `immutable` changes nothing here: this cache never revalidates a fresh response on its own
/// initiative, and RFC 8246 keeps client signals (no-cache, max-age) in force.
//= https://www.rfc-editor.org/rfc/rfc8246#section-2.1
//# proxies SHOULD skip conditionally revalidating fresh responses containing the immutable
//# extension unless there is a signal from the client that a validation is necessary (e.g., a
//# no-cache Cache-Control request directive).
pub fn reuse(
    stored: &StoredPolicy,
    age: &AgeClock,
    req: &RequestDirectives,
    now: SystemTime,
    force_stale: bool,
    cfg: &PolicyConfig,
) -> Reuse {
    let current_age = age.current_age(now);
    // A cap lowered since the object was stored (a service's `ttl.max`) holds at once.
    let lifetime = cfg.max_ttl.map_or(stored.freshness_lifetime, |max| {
        stored.freshness_lifetime.min(max)
    });
    let honor = cfg.honor_request_no_cache;

    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.4
    //# The no-cache response directive, in its unqualified form (without an argument),
    //# indicates that the response MUST NOT be used to satisfy any other request without
    //# forwarding it for validation and receiving a successful response
    if stored.no_cache {
        return Reuse::Revalidate(RevalidateReason::ResponseNoCache);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.4
    //# The no-cache request directive indicates that the client prefers a stored response not
    //# be used to satisfy the request without successful validation on the origin server.
    if honor && req.no_cache {
        return Reuse::Revalidate(RevalidateReason::RequestNoCache);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.1
    //# The max-age request directive indicates that the client prefers a response whose age is
    //# less than or equal to the specified number of seconds. Unless the max-stale request
    //# directive is also present, the client does not wish to receive a stale response.
    // `max-age=0` asks for revalidation: a stored response has always aged a little.
    if honor
        && let Some(max_age) = req.max_age
        && (max_age.is_zero() || current_age > max_age)
    {
        return Reuse::Revalidate(RevalidateReason::RequestMaxAge);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-4.2
    //# response_is_fresh = (freshness_lifetime > current_age)
    let fresh = lifetime > current_age;
    let min_fresh = req.min_fresh.filter(|_| honor);
    if fresh && !force_stale {
        let ttl = lifetime - current_age;
        //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.3
        //# The min-fresh request directive indicates that the client prefers a response whose
        //# freshness lifetime is no less than its current age plus the specified time in
        //# seconds.
        if min_fresh.is_some_and(|m| ttl < m) {
            return Reuse::Revalidate(RevalidateReason::RequestMinFresh);
        }
        return Reuse::Fresh { ttl };
    }

    let reason = if fresh {
        RevalidateReason::ForcedStale
    } else {
        RevalidateReason::Stale
    };
    let staleness = current_age.saturating_sub(lifetime);
    //= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.4
    //# A cache MUST NOT generate a stale response if it is prohibited by an explicit in-protocol
    //# directive (e.g., by a no-cache response directive, a must-revalidate response directive,
    //# or an applicable s-maxage or proxy-revalidate response directive; see Section 5.2.2).
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.2
    //# once the response has become stale, a cache MUST NOT reuse that response to satisfy
    //# another request until it has been successfully validated by the origin
    if stored.must_revalidate {
        return Reuse::Revalidate(reason);
    }
    // A client asking for freshness to spare does not want a stale response in any form.
    if min_fresh.is_some() {
        return Reuse::Revalidate(reason);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.2
    //# The max-stale request directive indicates that the client will accept a response that
    //# has exceeded its freshness lifetime.  If a value is present, then the client is willing
    //# to accept a response that has exceeded its freshness lifetime by no more than the
    //# specified number of seconds.
    if !force_stale {
        match req.max_stale {
            Some(MaxStale::Any) => return Reuse::StaleAccepted,
            Some(MaxStale::Limit(l)) if staleness <= l => return Reuse::StaleAccepted,
            _ => {}
        }
    }
    //= https://www.rfc-editor.org/rfc/rfc5861#section-3
    //# When present in an HTTP response, the stale-while-revalidate Cache-Control extension
    //# indicates that caches MAY serve the response in which it appears after it becomes stale,
    //# up to the indicated number of seconds.
    if stored
        .stale_while_revalidate
        .is_some_and(|swr| staleness <= swr)
    {
        return Reuse::StaleWhileRevalidate;
    }
    Reuse::Revalidate(reason)
}

/// On upstream error/5xx while revalidating: may the stale response be served? RFC 5861 §4 and
/// the request's stale-if-error; never when must_revalidate (§5.2.2.2 says: 504 instead).
/// `force_stale` (soft purge) allows it unless must_revalidate.
///
/// A response that is still fresh (its revalidation was asked by the client) may be served.
/// A no-cache response may be served only with an explicit stale-if-error permission, from the
/// response or the request: no-cache forbids stale use (§4.2.4) unless the origin or the client
/// says otherwise for exactly this case.
pub fn stale_if_error_allows(
    stored: &StoredPolicy,
    age: &AgeClock,
    req: &RequestDirectives,
    now: SystemTime,
    force_stale: bool,
) -> bool {
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.2
    //# if a cache is disconnected, the cache MUST generate an error response rather than reuse
    //# the stale response
    if stored.must_revalidate {
        return false;
    }
    let explicit = stored.stale_if_error.is_some() || req.stale_if_error.is_some();
    if stored.no_cache && !explicit {
        return false;
    }
    let current_age = age.current_age(now);
    let fresh = stored.freshness_lifetime > current_age;
    if force_stale || (fresh && !stored.no_cache) {
        return true;
    }
    //= https://www.rfc-editor.org/rfc/rfc5861#section-4
    //# The stale-if-error Cache-Control extension indicates that when an error is encountered,
    //# a cached stale response MAY be used to satisfy the request, regardless of other
    //# freshness information.
    //= https://www.rfc-editor.org/rfc/rfc5861#section-4
    //# When used as a request Cache-Control extension, its scope of application is the request
    //# it appears in
    let staleness = current_age.saturating_sub(stored.freshness_lifetime);
    let within = |w: Option<Duration>| w.is_some_and(|w| staleness <= w);
    within(stored.stale_if_error) || within(req.stale_if_error)
}

/// Remaining freshness in whole seconds (rounded down), negative once stale (RFC 9211 `ttl`).
//= https://www.rfc-editor.org/rfc/rfc9211#section-2.4
//# The value of ttl indicates the response's remaining freshness lifetime as calculated by the
//# cache, as an integer number of seconds, measured when the response is sent by the cache.
pub fn ttl_seconds(stored: &StoredPolicy, age: &AgeClock, now: SystemTime) -> i64 {
    let lifetime = i128::try_from(stored.freshness_lifetime.as_nanos()).unwrap_or(i128::MAX);
    let current = i128::try_from(age.current_age(now).as_nanos()).unwrap_or(i128::MAX);
    let secs = (lifetime - current).div_euclid(1_000_000_000);
    i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests;
