//! Conditional requests (RFC 9110 §13) evaluated against the response the cache is about to
//! serve: a stored response on a hit, or the response just fetched on a miss.
//!
//! Tiercel is a gateway: towards its clients it is the origin server (RFC 9110 §3.7, "acts as
//! an origin server for the outbound connection"), so it evaluates every precondition in the
//! order of §13.2.2, including `If-Match` and `If-Unmodified-Since`, which a plain forward cache
//! would leave to the origin (RFC 9111 §4.3.2). `If-Range` is evaluated with the range itself,
//! in [`super::range`].

use std::time::SystemTime;

use http::{HeaderMap, HeaderName, Method, StatusCode, header};

use super::CACHE_STATUS;
use super::etag::{Comparison, list_matches, response_etag};
use super::lists::trim_ows;

/// What to do with a request after its preconditions were evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition failed: serve the response (perhaps as a range).
    Proceed,
    /// Send a 304 built with [`not_modified_headers`].
    NotModified,
    /// Send a 412 (Precondition Failed).
    PreconditionFailed,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` of
/// `req` against a response with `status` and header section `resp`.
///
/// Malformed conditions are ignored or fail exactly as RFC 9110 says for each field: an
/// unparsable date is ignored, an unparsable entity-tag list matches nothing.
pub fn evaluate_preconditions(
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
) -> Precondition {
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.1
    //# a server MUST ignore the conditional request header fields defined by this
    //# specification when received with a request method that does not involve the selection
    //# or modification of a selected representation, such as CONNECT, OPTIONS, or TRACE.
    if method == Method::CONNECT || method == Method::OPTIONS || method == Method::TRACE {
        return Precondition::Proceed;
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.1
    //# A server MUST ignore all received preconditions if its response to the same request
    //# without those conditions, prior to processing the request content, would have been a
    //# status code other than a 2xx (Successful) or 412 (Precondition Failed).
    if !status.is_success() && status != StatusCode::PRECONDITION_FAILED {
        return Precondition::Proceed;
    }
    // Most requests carry no precondition: answer before parsing the response's validators.
    let conditional = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ];
    if !conditional.iter().any(|name| req.contains_key(name)) {
        return Precondition::Proceed;
    }
    let get_or_head = method == Method::GET || method == Method::HEAD;
    let current = response_etag(resp);

    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.2
    //# 1. When recipient is the origin server and If-Match is present, evaluate the If-Match
    //#    precondition:
    //#    *  if true, continue to step 3
    //#    *  if false, respond 412 (Precondition Failed) unless it can be determined that the
    //#       state-changing request has already succeeded (see Section 13.1.1)
    match list_matches(req, &header::IF_MATCH, current.as_ref(), Comparison::Strong) {
        Some(false) => return Precondition::PreconditionFailed,
        Some(true) => {}
        None => {
            //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.2
            //# 2. When recipient is the origin server, If-Match is not present, and
            //#    If-Unmodified-Since is present, evaluate the If-Unmodified-Since precondition:
            //#    *  if true, continue to step 3
            //#    *  if false, respond 412 (Precondition Failed) unless it can be determined that
            //#       the state-changing request has already succeeded (see Section 13.1.4)
            if let (Some(since), Some(modified)) = (
                request_date(req, &header::IF_UNMODIFIED_SINCE),
                single_date(resp, &header::LAST_MODIFIED),
            ) {
                //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.4
                //# 1. If the selected representation's last modification date is earlier than
                //#    or equal to the date provided in the field value, the condition is true.
                //# 2. Otherwise, the condition is false.
                if modified > since {
                    return Precondition::PreconditionFailed;
                }
            }
        }
    }

    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.2
    //# 3. When If-None-Match is present, evaluate the If-None-Match precondition:
    //#    *  if true, continue to step 5
    //#    *  if false for GET/HEAD, respond 304 (Not Modified)
    //#    *  if false for other methods, respond 412 (Precondition Failed)
    match list_matches(
        req,
        &header::IF_NONE_MATCH,
        current.as_ref(),
        Comparison::Weak,
    ) {
        // A match makes the If-None-Match condition false.
        Some(true) if get_or_head => return Precondition::NotModified,
        Some(true) => return Precondition::PreconditionFailed,
        Some(false) => return Precondition::Proceed,
        None => {}
    }

    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.2.2
    //# 4. When the method is GET or HEAD, If-None-Match is not present, and If-Modified-Since
    //#    is present, evaluate the If-Modified-Since precondition:
    //#    *  if true, continue to step 5
    //#    *  if false, respond 304 (Not Modified)
    if get_or_head && let Some(since) = request_date(req, &header::IF_MODIFIED_SINCE) {
        //= https://www.rfc-editor.org/rfc/rfc9111#section-4.3.2
        //# If a request contains an If-Modified-Since header field and the Last-Modified
        //# header field is not present in a stored response, a cache SHOULD use the stored
        //# response's Date field value (or, if no Date field is present, the time that the
        //# stored response was received) to evaluate the conditional.
        let modified =
            single_date(resp, &header::LAST_MODIFIED).or_else(|| single_date(resp, &header::DATE));
        //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.3
        //# 1. If the selected representation's last modification date is earlier or equal to
        //#    the date provided in the field value, the condition is false.
        if modified.is_some_and(|m| m <= since) {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// A date precondition from the request, or `None` when it must be ignored.
//= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.3
//# A recipient MUST ignore the If-Modified-Since header field if the received field value is
//# not a valid HTTP-date, the field value has more than one member, or if the request method
//# is neither GET nor HEAD.
//= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.4
//# A recipient MUST ignore the If-Unmodified-Since header field if the received field value
//# is not a valid HTTP-date (including when the field value appears to be a list of dates).
fn request_date(req: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    single_date(req, name)
}

/// The HTTP-date of a field with exactly one line; several lines or an invalid date → `None`.
/// All three formats recipients must accept (RFC 9110 §5.6.7) are read.
pub(crate) fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut lines = headers.get_all(name).into_iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    let text = std::str::from_utf8(trim_ows(first.as_bytes())).ok()?;
    crate::policy::http_date::parse_http_date(text)
}

/// The header section of a 304 generated from a stored 200.
///
/// Keeps the fields §15.4.5 requires, `Last-Modified` (useful to recipients that validate by
/// date), and the fields describing the path of this response rather than the representation
/// (`Age`, `Via`, `Cache-Status`), which the engine then updates exactly as for a 200. Content
/// fields (`Content-Type`, `Content-Length`, ...) and everything else are dropped.
//= https://www.rfc-editor.org/rfc/rfc9110#section-15.4.5
//# The server generating a 304 response MUST generate any of the following header fields
//# that would have been sent in a 200 (OK) response to the same request:
//# *  Content-Location, Date, ETag, and Vary
//# *  Cache-Control and Expires (see [CACHING])
//= https://www.rfc-editor.org/rfc/rfc9110#section-15.4.5
//# a sender SHOULD NOT generate representation metadata other than the above listed fields
//# unless said metadata exists for the purpose of guiding cache updates (e.g., Last-Modified
//# might be useful if the response does not have an ETag field).
pub fn not_modified_headers(full: &HeaderMap) -> HeaderMap {
    let keep = [
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::VARY,
        header::CACHE_CONTROL,
        header::EXPIRES,
        header::LAST_MODIFIED,
        header::AGE,
        header::VIA,
        CACHE_STATUS,
    ];
    let mut out = HeaderMap::new();
    for name in keep {
        for value in full.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
