//! Validation (RFC 9111 §4.3): conditional requests for a stored response, and freshening it
//! with a 304.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, header};

use super::age::date_value;
use super::syntax::{first_str, split_list, trim_ows};

/// An entity tag split into its weakness flag and opaque-tag (quotes included).
#[derive(Clone, Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

//= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3
//# entity-tag = [ weak ] opaque-tag
//# weak       = %s"W/"
//# opaque-tag = DQUOTE *etagc DQUOTE
//# etagc      = %x21 / %x23-7E / obs-text
fn parse_etag(v: &[u8]) -> Option<EntityTag<'_>> {
    let v = trim_ows(v);
    let (weak, opaque) = match v.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let ok = opaque.len() >= 2
        && opaque[0] == b'"'
        && opaque[opaque.len() - 1] == b'"'
        && opaque[1..opaque.len() - 1]
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80);
    ok.then_some(EntityTag { weak, opaque })
}

/// The response's entity tag, when it has exactly one valid one.
fn etag_of(headers: &HeaderMap) -> Option<EntityTag<'_>> {
    let mut lines = headers.get_all(header::ETAG).iter();
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_etag(first.as_bytes())
}

fn last_modified_of(headers: &HeaderMap) -> Option<SystemTime> {
    first_str(headers, header::LAST_MODIFIED).and_then(crate::policy::http_date::parse_http_date)
}

/// Whether the stored response can be validated: it has an entity tag or a Last-Modified date.
pub fn has_validator(stored_headers: &HeaderMap) -> bool {
    etag_of(stored_headers).is_some() || last_modified_of(stored_headers).is_some()
}

/// Headers to add to the upstream request to validate the stored response (§4.3.1):
/// If-None-Match from its ETag, If-Modified-Since from its Last-Modified. The caller removes
/// any preconditions the client sent before adding these.
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.3.1
//# When generating a conditional request for validation, a cache:
//#  *  MUST send the relevant entity tags (using If-Match, If-None-Match, or If-Range) if the
//#     entity tags were provided in the stored response(s) being validated.
//#  *  SHOULD send the Last-Modified value (using If-Modified-Since) if the request is not for
//#     a subrange, a single stored response is being validated, and that response contains a
//#     Last-Modified value.
pub fn conditional_request_headers(stored_headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if etag_of(stored_headers).is_some()
        && let Some(v) = stored_headers.get(header::ETAG)
    {
        out.insert(header::IF_NONE_MATCH, v.clone());
    }
    //= https://www.rfc-editor.org/rfc/rfc9110#section-13.1.3
    //# When used for cache updates, a cache will typically use the value of the cached
    //# message's Last-Modified header field to generate the field value of If-Modified-Since.
    if last_modified_of(stored_headers).is_some()
        && let Some(v) = stored_headers.get(header::LAST_MODIFIED)
    {
        out.insert(header::IF_MODIFIED_SINCE, v.clone());
    }
    out
}

/// The result of applying a 304 to the stored response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreshenOutcome {
    /// The 304 applies: these are the stored response's updated header fields. Recompute the
    /// policy (and the age clock) from them.
    Updated(HeaderMap),
    /// The 304's validators identify a different representation: the stored response must not
    /// be updated (nor served as validated); fetch it unconditionally.
    NotSelected,
}

/// §4.3.4 (selecting the stored response by the 304's validators) + §3.2 (updating stored
/// header fields: everything in the 304 replaces, except Content-Length and fields the cache
/// must not update).
///
/// One stored response is validated at a time, so a 304 without any validator selects it even
/// when it has validators itself: the request carried only its validators, so the origin's
/// 304 can only mean it. (RFC 9111 §4.3.4 additionally asks that the stored response lack
/// validators too, a rule aimed at caches holding several responses for one URI.)
pub fn freshen(stored_headers: &HeaderMap, not_modified_headers: &HeaderMap) -> FreshenOutcome {
    if !selected(stored_headers, not_modified_headers) {
        return FreshenOutcome::NotSelected;
    }
    FreshenOutcome::Updated(update_headers(stored_headers, not_modified_headers))
}

/// Whether a Last-Modified date may serve as a strong validator: the response's Date is at
/// least one second after it (RFC 9110 §8.8.2.2).
//= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.2.2
//# The validator is being compared by an intermediate cache to the validator stored in its
//# cache entry for the representation, and that cache entry includes a Date value which is at
//# least one second after the Last-Modified value
fn last_modified_is_strong(headers: &HeaderMap, lm: SystemTime) -> bool {
    date_value(headers)
        .and_then(|d| d.duration_since(lm).ok())
        .is_some_and(|gap| gap >= Duration::from_secs(1))
}

//= https://www.rfc-editor.org/rfc/rfc9111#section-4.3.4
//# *  If the new response contains one or more strong validators (see Section 8.8.1 of
//#    [HTTP]), then each of those strong validators identifies a selected representation for
//#    update. All the stored responses in the initial set with one of those same strong
//#    validators are identified for update. If none of the initial set contains at least one
//#    of the same strong validators, then the cache MUST NOT use the new response to update any
//#    stored responses.
//# *  If the new response contains no strong validators but does contain one or more weak
//#    validators, and those validators correspond to one of the initial set's stored
//#    responses, then the most recent of those matching stored responses is identified for
//#    update.
//# *  If the new response does not include any form of validator (such as where a client
//#    generates an If-Modified-Since request from a source other than the Last-Modified
//#    response header field), and there is only one stored response in the initial set, and
//#    that stored response also lacks a validator, then that stored response is identified for
//#    update.
fn selected(stored: &HeaderMap, nm: &HeaderMap) -> bool {
    let nm_etag = etag_of(nm);
    let nm_lm = last_modified_of(nm);
    let st_etag = etag_of(stored);
    let st_lm = last_modified_of(stored);

    let nm_strong_etag = nm_etag.as_ref().filter(|e| !e.weak);
    let nm_strong_lm = nm_lm.filter(|&lm| last_modified_is_strong(nm, lm));
    if nm_strong_etag.is_some() || nm_strong_lm.is_some() {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
        //# Strong comparison: two entity tags are equivalent if both are not weak and their
        //# opaque-tags match character-by-character.
        let etag_match = matches!((nm_strong_etag, &st_etag),
            (Some(n), Some(s)) if !s.weak && n.opaque == s.opaque);
        let lm_match = matches!((nm_strong_lm, st_lm),
            (Some(n), Some(s)) if n == s && last_modified_is_strong(stored, s));
        return etag_match || lm_match;
    }
    if nm_etag.is_some() || nm_lm.is_some() {
        //= https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
        //# Weak comparison: two entity tags are equivalent if their opaque-tags match
        //# character-by-character, regardless of either or both being tagged as "weak".
        let etag_match = matches!((&nm_etag, &st_etag), (Some(n), Some(s)) if n.opaque == s.opaque);
        let lm_match = matches!((nm_lm, st_lm), (Some(n), Some(s)) if n == s);
        return etag_match || lm_match;
    }
    true
}

//= https://www.rfc-editor.org/rfc/rfc9111#section-3.1
//# Header fields that are specific to the proxy that a cache uses when forwarding a request
//# MUST NOT be stored, unless the cache incorporates the identity of that proxy into the cache
//# key. Effectively, this is limited to Proxy-Authenticate (Section 11.7.1 of [HTTP]),
//# Proxy-Authentication-Info (Section 11.7.3 of [HTTP]), and Proxy-Authorization (Section
//# 11.7.2 of [HTTP]).
//= https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
//# Intermediaries MUST parse a received Connection header field before a message is forwarded
//# and, for each connection-option in this field, remove any header or trailer field(s) from
//# the message with the same name as the connection-option, and then remove the Connection
//# header field itself
/// Fields a cache never stores: hop-by-hop fields (RFC 9110 §7.6.1, which §3.1 allows removing
/// before storage) and the proxy-specific fields of §3.1.
const NOT_STORED: [HeaderName; 9] = [
    header::CONNECTION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-authentication-info"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Fields named by the Connection header of `headers`.
pub(crate) fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| split_list(v.as_bytes()))
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect()
}

/// Whether `name` is a field a cache never stores (§3.1); `connection` is what
/// [`connection_listed`] returned for the same message.
pub(crate) fn is_unstorable_field(name: &HeaderName, connection: &[HeaderName]) -> bool {
    NOT_STORED.contains(name) || connection.contains(name)
}

//= https://www.rfc-editor.org/rfc/rfc9111#section-3.2
//# the cache MUST add each header field in the provided response to the stored response,
//# replacing field values that are already present, with the following exceptions:
//#  *  Header fields excepted from storage in Section 3.1,
//#  *  Header fields that the cache's stored response depends upon, as described below,
//#  *  Header fields that are automatically processed and removed by the recipient, as
//#     described below, and
//#  *  The Content-Length header field.
//= https://www.rfc-editor.org/rfc/rfc9111#section-3.2
//# some fields are automatically processed and removed by the HTTP implementation, such as
//# the Content-Range header field; implementations MAY simply ignore such header fields when
//# updating stored responses.
/// Whether a 304's `name` field must not replace the stored one.
fn is_not_updated(name: &HeaderName, connection: &[HeaderName]) -> bool {
    *name == header::CONTENT_LENGTH
        || *name == header::CONTENT_RANGE
        || is_unstorable_field(name, connection)
}

fn update_headers(stored: &HeaderMap, nm: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    let connection = connection_listed(nm);
    for name in nm.keys() {
        if is_not_updated(name, &connection) {
            continue;
        }
        out.remove(name);
        for v in nm.get_all(name) {
            out.append(name.clone(), HeaderValue::clone(v));
        }
    }
    out
}

#[cfg(test)]
mod tests;
