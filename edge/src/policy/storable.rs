//! May this cache store a response (RFC 9111 §3, §3.1, §3.5, §5.2)?

use std::fmt;

use http::{HeaderMap, HeaderName, Method, StatusCode, header};

use super::config::PolicyConfig;
use super::directives::{
    FieldScope, RequestDirectives, ResponseDirectives, effective_response_directives,
};
use super::freshness::{StoredPolicy, has_explicit_expiration, is_heuristically_cacheable};
use super::validation::{connection_listed, has_validator, is_unstorable_field};
use super::vary::{VarySpec, vary_spec};

/// The decision about storing a response.
#[derive(Clone, Debug, PartialEq)]
pub enum Storability {
    /// Store it, as the plan says.
    Store(StorePlan),
    /// Do not store it, for this reason.
    DoNotStore(NotStorable),
}

/// How to store a storable response.
#[derive(Clone, Debug, PartialEq)]
pub struct StorePlan {
    /// The policy to store with the object.
    pub policy: StoredPolicy,
    /// The response's Vary; never `Star`.
    pub vary: VarySpec,
    /// Fields that must not be stored (private="x" §5.2.2.7, Set-Cookie named by no-cache when
    /// Set-Cookie is not stored, hop-by-hop and proxy fields §3.1), lower-case, only those present
    /// in the response. The targeted fields are KEPT in storage and stripped by the engine when
    /// serving: they are not listed.
    pub strip_fields: Vec<String>,
}

/// Why a response is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStorable {
    /// The request method is not GET (the engine stores GET responses only).
    Method,
    /// Not final, 206, 304, or not understood with must-understand.
    Status,
    /// The request said no-store.
    RequestNoStore,
    /// The response said no-store.
    ResponseNoStore,
    /// The response said private (unqualified).
    Private,
    /// The request carried Authorization and the response did not allow shared caching.
    Authorization,
    /// The response varies on `*`.
    VaryStar,
    /// Neither explicitly cacheable nor a heuristically cacheable status.
    NoFreshnessInfo,
    /// The response sets a cookie and `store_set_cookie` is off.
    SetCookie,
    /// Stored, it could never be served: no freshness (or always no-cache), no validator to
    /// revalidate with, no stale-* permission.
    NotReusable,
}

impl NotStorable {
    /// The short kebab-case reason, for Cache-Status `detail=`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::RequestNoStore => "request-no-store",
            NotStorable::ResponseNoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshnessInfo => "no-freshness-info",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::NotReusable => "not-reusable",
        }
    }
}

impl fmt::Display for NotStorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

//= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.3
//# The must-understand response directive limits caching of the response to a cache that
//# understands and conforms to the requirements for that response's status code.
/// Final status codes whose semantics and caching requirements this cache implements: every
/// final code RFC 9110 defines. 206 and 304 are understood but never stored as such.
pub fn is_understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=206 | 300..=305 | 307 | 308 | 400..=418 | 421 | 422 | 426 | 500..=505
    )
}

/// §3, §3.5 (Authorization), §5.2 directives: may this cache store `resp` as the answer to
/// `req`? The response should carry a Date (see [`super::ensure_date`]).
//= https://www.rfc-editor.org/rfc/rfc9111#section-3
//# A cache MUST NOT store a response to a request unless:
//#  *  the request method is understood by the cache;
//#  *  the response status code is final (see Section 15 of [HTTP]);
//#  *  if the response status code is 206 or 304, or the must-understand cache directive (see
//#     Section 5.2.2.3) is present: the cache understands the response status code;
//#  *  the no-store cache directive is not present in the response (see Section 5.2.2.5);
//#  *  if the cache is shared: the private response directive is either not present or allows
//#     a shared cache to store a modified response; see Section 5.2.2.7);
//#  *  if the cache is shared: the Authorization header field is not present in the request
//#     (see Section 11.6.2 of [HTTP]) or a response directive is present that explicitly
//#     allows shared caching (see Section 3.5); and
//#  *  the response contains at least one of the following:
//#     -  a public response directive (see Section 5.2.2.9);
//#     -  a private response directive, if the cache is not shared (see Section 5.2.2.7);
//#     -  an Expires header field (see Section 5.3);
//#     -  a max-age response directive (see Section 5.2.2.1);
//#     -  if the cache is shared: an s-maxage response directive (see Section 5.2.2.10);
//#     -  a cache extension that allows it to be cached (see Section 5.2.3); or
//#     -  a status code that is defined as heuristically cacheable (see Section 4.2.2).
pub fn storability(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    resp_headers: &HeaderMap,
    cfg: &PolicyConfig,
) -> Storability {
    match plan(method, req_headers, status, resp_headers, cfg) {
        Ok(p) => Storability::Store(p),
        Err(why) => Storability::DoNotStore(why),
    }
}

fn plan(
    method: &Method,
    req_headers: &HeaderMap,
    status: StatusCode,
    resp_headers: &HeaderMap,
    cfg: &PolicyConfig,
) -> Result<StorePlan, NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    let code = status.as_u16();
    if code < 200 || status == StatusCode::PARTIAL_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Err(NotStorable::Status);
    }
    let (d, src) = effective_response_directives(resp_headers, cfg);
    if d.must_understand && !is_understood_status(status) {
        return Err(NotStorable::Status);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.5
    //# The no-store request directive indicates that a cache MUST NOT store any part of either
    //# this request or any response to it.
    if RequestDirectives::parse(req_headers).no_store {
        return Err(NotStorable::RequestNoStore);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.3
    //# When a cache that implements the must-understand directive receives a response that
    //# includes it, the cache SHOULD ignore the no-store directive if it understands the status
    //# code and its caching requirements.
    if d.no_store && !d.must_understand {
        return Err(NotStorable::ResponseNoStore);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.7
    //# The unqualified private response directive indicates that a shared cache MUST NOT store
    //# the response
    if d.private == FieldScope::All {
        return Err(NotStorable::Private);
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-3.5
    //# A shared cache MUST NOT use a cached response to a request with an Authorization header
    //# field (Section 11.6.2 of [HTTP]) to satisfy any subsequent request unless the response
    //# contains a Cache-Control field with a response directive (Section 5.2.2) that allows it
    //# to be stored by a shared cache, and the cache conforms to the requirements of that
    //# directive for that response.
    //= https://www.rfc-editor.org/rfc/rfc9111#section-3.5
    //# In this specification, the following response directives have such an effect:
    //# must-revalidate (Section 5.2.2.2), public (Section 5.2.2.9), and s-maxage (Section
    //# 5.2.2.10).
    if req_headers.contains_key(header::AUTHORIZATION)
        && !(d.public || d.must_revalidate || d.s_maxage.is_some())
    {
        return Err(NotStorable::Authorization);
    }
    let vary = vary_spec(resp_headers);
    if vary == VarySpec::Star {
        return Err(NotStorable::VaryStar);
    }
    let explicitly_cacheable = d.public || has_explicit_expiration(resp_headers, &d, &src);
    if !explicitly_cacheable && !is_heuristically_cacheable(status) {
        return Err(NotStorable::NoFreshnessInfo);
    }
    let strip_fields = strip_fields(resp_headers, &d, cfg)?;
    let policy = StoredPolicy::from_directives(status, resp_headers, &d, &src, None, cfg);
    if !reusable(&policy, resp_headers) {
        return Err(NotStorable::NotReusable);
    }
    Ok(StorePlan {
        policy,
        vary,
        strip_fields,
    })
}

/// Fields present in the response that must not be stored; `Err(SetCookie)` when the response
/// sets a cookie that nothing allows storing.
fn strip_fields(
    resp: &HeaderMap,
    d: &ResponseDirectives,
    cfg: &PolicyConfig,
) -> Result<Vec<String>, NotStorable> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    let named = |scope: &FieldScope, name: &str| match scope {
        FieldScope::Fields(f) => f.iter().any(|n| n == name),
        _ => false,
    };
    //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.7
    //# If a qualified private response directive is present, with one or more field names, then
    //# only the identified fields are private; a shared cache MUST NOT store them
    if let FieldScope::Fields(f) = &d.private {
        for name in f {
            if resp.contains_key(name.as_str()) {
                add(name);
            }
        }
    }
    if resp.contains_key(header::SET_COOKIE) && !cfg.store_set_cookie {
        if named(&d.private, "set-cookie") || named(&d.no_cache, "set-cookie") {
            add("set-cookie");
        } else {
            return Err(NotStorable::SetCookie);
        }
    }
    let connection = connection_listed(resp);
    for name in resp.keys() {
        if is_unstorable_field(name, &connection) {
            add(name.as_str());
        }
    }
    Ok(out)
}

/// Whether a stored copy could ever be served: fresh for a while without no-cache, or
/// revalidatable, or servable stale under a stale-* permission that must-revalidate does not
/// cancel.
fn reusable(p: &StoredPolicy, resp: &HeaderMap) -> bool {
    let fresh_use = !p.freshness_lifetime.is_zero() && !p.no_cache;
    let stale_use = !p.must_revalidate
        && (p.stale_if_error.is_some() || (p.stale_while_revalidate.is_some() && !p.no_cache));
    fresh_use || stale_use || has_validator(resp)
}

/// Field names as `HeaderName`s, skipping any that are not valid names (never the case for
/// names produced by [`storability`]).
pub fn strip_field_names(plan: &StorePlan) -> Vec<HeaderName> {
    plan.strip_fields
        .iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests;
