//! Cache directives: which field governs this cache (RFC 9213), and what it says (RFC 9111
//! §5.2, RFC 5861, RFC 8246, Edge Architecture 1.0 for Surrogate-Control).
//!
//! Parsing is total: every input yields directives, malformed parts are ignored or, for the
//! freshness directives, turned into "stale" exactly as RFC 9111 §4.2.1 encourages.

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderMap, HeaderName, header};

use super::config::{PolicyConfig, SURROGATE_CONTROL};
use super::sf::{self, BareItem, Member};
use super::syntax::{
    field_name_list, find_unquoted, is_ows, is_tchar, list_elements, list_items,
    parse_delta_seconds, parse_quoted_string, trim_ows,
};

/// The scope of a directive that may name header fields (`no-cache`, `private`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FieldScope {
    /// The directive is not present.
    #[default]
    Absent,
    /// Unqualified: applies to the whole response.
    All,
    /// Qualified: applies only to these fields (lower-case).
    Fields(Vec<String>),
}

impl FieldScope {
    /// Merges another occurrence of the same directive: unqualified wins, field lists unite.
    fn merge(&mut self, other: FieldScope) {
        match (&mut *self, other) {
            (_, FieldScope::Absent) | (FieldScope::All, _) => {}
            (_, FieldScope::All) => *self = FieldScope::All,
            (FieldScope::Absent, f @ FieldScope::Fields(_)) => *self = f,
            (FieldScope::Fields(have), FieldScope::Fields(more)) => {
                for f in more {
                    if !have.contains(&f) {
                        have.push(f);
                    }
                }
            }
        }
    }
}

/// The response directives that govern this (shared) cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// `max-age`. An invalid or conflicting value is `Some(0)` (see `invalid_freshness`).
    pub max_age: Option<Duration>,
    /// `s-maxage`. An invalid or conflicting value is `Some(0)`.
    pub s_maxage: Option<Duration>,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`, unqualified or with field names.
    pub no_cache: FieldScope,
    /// `private`, unqualified or with field names.
    pub private: FieldScope,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `immutable` (RFC 8246).
    pub immutable: bool,
    /// `stale-while-revalidate` (RFC 5861 §3); invalid or conflicting values are dropped.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error` (RFC 5861 §4); invalid or conflicting values are dropped.
    pub stale_if_error: Option<Duration>,
    /// A `max-age` or `s-maxage` was invalid, had no argument, or occurred twice with different
    /// values; it then counts as 0 so the response is stale.
    pub invalid_freshness: bool,
}

/// Which field the directives came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectiveSource {
    /// A targeted field (RFC 9213); Cache-Control and Expires are ignored for this cache.
    Targeted(HeaderName),
    /// Cache-Control (possibly absent).
    CacheControl,
}

/// One directive as written: lower-case name, argument (unquoted), and whether the element
/// was syntactically broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawDirective {
    /// Borrowed for the directives this cache knows (no allocation per directive).
    pub name: Cow<'static, str>,
    pub value: Option<Vec<u8>>,
    pub malformed: bool,
}

//= https://www.rfc-editor.org/rfc/rfc9111#section-5.2
//# Cache-Control   = #cache-directive
//# cache-directive = token [ "=" ( token / quoted-string ) ]
//= https://www.rfc-editor.org/rfc/rfc9111#section-5.2
//# Cache directives are identified by a token, to be compared case-insensitively, and have an
//# optional argument that can use both token and quoted-string syntax.
/// Parses one list element of Cache-Control syntax. Whitespace around `=` is tolerated (a
/// common origin mistake with an unambiguous meaning); any other trailing junk marks the
/// directive malformed. `None` when the element does not even start with a token.
pub(crate) fn parse_element(e: &[u8]) -> Option<RawDirective> {
    let name_len = e.iter().position(|&b| !is_tchar(b)).unwrap_or(e.len());
    if name_len == 0 {
        return None;
    }
    let name = directive_name(&e[..name_len]);
    let rest = trim_ows(&e[name_len..]);
    if rest.is_empty() {
        return Some(RawDirective {
            name,
            value: None,
            malformed: false,
        });
    }
    if rest[0] != b'=' {
        return Some(RawDirective {
            name,
            value: None,
            malformed: true,
        });
    }
    let arg = trim_ows(&rest[1..]);
    let (value, used) = if arg.first() == Some(&b'"') {
        match parse_quoted_string(arg) {
            Some((v, n)) => (v, n),
            None => {
                return Some(RawDirective {
                    name,
                    value: None,
                    malformed: true,
                });
            }
        }
    } else {
        let n = arg.iter().position(|&b| !is_tchar(b)).unwrap_or(arg.len());
        (arg[..n].to_vec(), n)
    };
    let malformed = (used == 0) || arg[used..].iter().any(|&b| !is_ows(b));
    Some(RawDirective {
        name,
        value: if used == 0 { None } else { Some(value) },
        malformed,
    })
}

/// A directive name, lower-cased: the names this cache acts on (and their common spellings)
/// as constants, any other one copied.
fn directive_name(token: &[u8]) -> Cow<'static, str> {
    const KNOWN: [&str; 20] = [
        "max-age",
        "s-maxage",
        "no-store",
        "no-cache",
        "private",
        "public",
        "must-revalidate",
        "proxy-revalidate",
        "must-understand",
        "no-transform",
        "immutable",
        "stale-while-revalidate",
        "stale-if-error",
        "max-stale",
        "min-fresh",
        "only-if-cached",
        "no-store-remote",
        "content",
        "pre-check",
        "post-check",
    ];
    match KNOWN
        .iter()
        .find(|k| k.as_bytes().eq_ignore_ascii_case(token))
    {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(String::from_utf8_lossy(token).to_ascii_lowercase()),
    }
}

/// All directives of a Cache-Control-syntax field, every line combined.
pub(crate) fn parse_cache_control(headers: &HeaderMap, name: &HeaderName) -> Vec<RawDirective> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| list_items(v.as_bytes()))
        .filter_map(parse_element)
        .collect()
}

//= https://www.w3.org/TR/edge-arch/#section-2.3
//# Surrogate-Control directives can be targeted at specific surrogates by appending ";" and a
//# device token to the directive.
/// Surrogate-Control: Cache-Control syntax, directives targeted at a named device (`;token`)
/// are skipped since no device token is configured, `max-age=N+M` carries a stale window of M
/// seconds (used as `stale-if-error` unless one is given), `no-store-remote` means
/// `no-store` to a CDN, which is by definition a remote surrogate, and `content` (ESI
/// capabilities) is dropped, so a field carrying only that does not govern.
fn parse_surrogate_control(headers: &HeaderMap) -> Vec<RawDirective> {
    let mut out = Vec::new();
    for e in list_elements(headers, SURROGATE_CONTROL) {
        if find_unquoted(e, b';').is_some() {
            continue;
        }
        let Some(mut d) = parse_element(e) else {
            continue;
        };
        // `content` declares ESI processing, not cache policy: a Surrogate-Control carrying
        // only that must not displace Cache-Control.
        if d.name == "content" {
            continue;
        }
        if d.name == "no-store-remote" {
            d.name = Cow::Borrowed("no-store");
        }
        if d.name == "max-age"
            && let Some(v) = &d.value
            && let Some(plus) = v.iter().position(|&b| b == b'+')
        {
            let (fresh, stale) = (v[..plus].to_vec(), v[plus + 1..].to_vec());
            out.push(RawDirective {
                name: Cow::Borrowed(SURROGATE_STALE),
                value: Some(stale),
                malformed: false,
            });
            d.value = Some(fresh);
        }
        out.push(d);
    }
    out
}

/// Internal name for the `+M` part of a Surrogate-Control `max-age=N+M`; the space makes it
/// impossible for a real directive (a token) to collide with it.
const SURROGATE_STALE: &str = "surrogate stale";

/// The type RFC 9213 §2.1 infers for a directive of RFC 9111 in a targeted field: delta
/// seconds are non-negative Integers; a field-name list is a String or an Inner List of names
/// (or a Boolean for the argument-less form); the rest are Booleans.
fn well_typed(name: &str, member: &Member) -> bool {
    match name {
        "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error" => {
            matches!(member, Member::Item(BareItem::Integer(n)) if *n >= 0)
        }
        "no-cache" | "private" => match member {
            Member::Item(BareItem::Boolean(_) | BareItem::String(_)) => true,
            Member::InnerList(items) => items
                .iter()
                .all(|i| matches!(i, BareItem::String(_) | BareItem::Token(_))),
            Member::Item(_) => false,
        },
        "no-store" | "public" | "must-revalidate" | "proxy-revalidate" | "no-transform"
        | "immutable" | "must-understand" => matches!(member, Member::Item(BareItem::Boolean(_))),
        // Extensions: any type; only what this cache understands is checked.
        _ => true,
    }
}

/// Converts a targeted field's Dictionary members into directives, or `None` when a directive
/// of RFC 9111 has a value of the wrong type (`max-age="10"`): the field is then invalid as a
/// whole, and the next target (or Cache-Control) governs. Booleans false mean absent, Integers
/// become delta-seconds, Strings and Tokens are arguments, an Inner List of names is a
/// field-name list.
//= https://www.rfc-editor.org/rfc/rfc9213#section-2.1
//# Implementations SHOULD NOT consume values that violate these inferred constraints.
//= https://www.rfc-editor.org/rfc/rfc9213#section-2.1
//# the cache MUST select the first (in target list order) field with a valid, non-empty value
fn from_dictionary(dict: Vec<(String, Member)>) -> Option<Vec<RawDirective>> {
    if !dict.iter().all(|(name, member)| well_typed(name, member)) {
        return None;
    }
    let mut out = Vec::new();
    for (name, member) in dict {
        let (value, malformed) = match member {
            Member::Item(BareItem::Boolean(false)) => continue,
            Member::Item(BareItem::Boolean(true)) => (None, false),
            Member::Item(BareItem::Integer(n)) if n >= 0 => {
                (Some(n.to_string().into_bytes()), false)
            }
            Member::Item(BareItem::String(s) | BareItem::Token(s)) => (Some(s.into_bytes()), false),
            Member::InnerList(items) => {
                let mut names = Vec::new();
                let mut bad = false;
                for i in items {
                    match i {
                        BareItem::String(s) | BareItem::Token(s) => names.push(s),
                        _ => bad = true,
                    }
                }
                (Some(names.join(",").into_bytes()), bad)
            }
            Member::Item(_) => (None, true),
        };
        out.push(RawDirective {
            name: name.into(),
            value,
            malformed,
        });
    }
    Some(out)
}

/// Builds response directives from raw ones, applying the duplicate and validity rules.
fn response_from_raw(raw: &[RawDirective]) -> ResponseDirectives {
    let mut d = ResponseDirectives::default();
    let mut surrogate_stale = None;
    // Some(None) records two different values: the permission is then dropped.
    let (mut swr, mut sie) = (None, None);
    for r in raw {
        match &*r.name {
            //= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.1
            //# When there is more than one value present for a given directive (e.g., two
            //# Expires header field lines or multiple Cache-Control: max-age directives), either
            //# the first occurrence should be used or the response should be considered stale.
            //= https://www.rfc-editor.org/rfc/rfc9111#section-4.2.1
            //# Caches are encouraged to consider responses that have invalid freshness
            //# information (e.g., a max-age directive with non-integer content) to be stale.
            "max-age" => freshness_directive(&mut d.max_age, &mut d.invalid_freshness, r),
            "s-maxage" => freshness_directive(&mut d.s_maxage, &mut d.invalid_freshness, r),
            "no-store" => d.no_store = true,
            "no-cache" => d.no_cache.merge(scope(r)),
            "private" => d.private.merge(scope(r)),
            "public" => d.public = true,
            "must-revalidate" => d.must_revalidate = true,
            "proxy-revalidate" => d.proxy_revalidate = true,
            "must-understand" => d.must_understand = true,
            "no-transform" => d.no_transform = true,
            "immutable" => d.immutable = true,
            "stale-while-revalidate" => stale_directive(&mut swr, r),
            "stale-if-error" => stale_directive(&mut sie, r),
            SURROGATE_STALE => {
                surrogate_stale = r.value.as_deref().and_then(parse_delta_seconds);
            }
            //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.3
            //# A cache MUST ignore unrecognized cache directives.
            _ => {}
        }
    }
    d.stale_while_revalidate = swr.flatten();
    d.stale_if_error = match sie {
        None => surrogate_stale,
        Some(v) => v,
    };
    d
}

/// max-age / s-maxage: invalid or conflicting → `Some(0)` and `invalid_freshness`.
fn freshness_directive(slot: &mut Option<Duration>, invalid: &mut bool, r: &RawDirective) {
    let parsed = if r.malformed {
        None
    } else {
        r.value.as_deref().and_then(parse_delta_seconds)
    };
    match (parsed, *slot) {
        (Some(v), None) => *slot = Some(v),
        (Some(v), Some(have)) if v == have => {}
        _ => {
            *slot = Some(Duration::ZERO);
            *invalid = true;
        }
    }
}

/// stale-while-revalidate / stale-if-error: invalid → ignored; conflicting → dropped (the most
/// restrictive reading of two different permissions is none).
fn stale_directive(slot: &mut Option<Option<Duration>>, r: &RawDirective) {
    let parsed = if r.malformed {
        None
    } else {
        r.value.as_deref().and_then(parse_delta_seconds)
    };
    let Some(v) = parsed else { return };
    match *slot {
        None => *slot = Some(Some(v)),
        Some(Some(have)) if have == v => {}
        _ => *slot = Some(None),
    }
}

/// `no-cache` / `private`: no argument → All; an argument → its field names (an argument with
/// no valid field name counts as All, the restrictive reading).
fn scope(r: &RawDirective) -> FieldScope {
    match &r.value {
        None => FieldScope::All,
        Some(v) => {
            let names = field_name_list(v);
            if names.is_empty() {
                FieldScope::All
            } else {
                FieldScope::Fields(names)
            }
        }
    }
}

/// Which field governs this cache, parsed: the first targeted field with a valid non-empty
/// value (CDN-Cache-Control is an RFC 8941 Dictionary; an invalid one is ignored), else
/// Cache-Control. When a targeted field governs, Cache-Control AND Expires are ignored for this
/// cache (RFC 9213 §2.1).
//= https://www.rfc-editor.org/rfc/rfc9213#section-2.1
//# When a cache that implements this specification receives a response with one or more of the
//# header field names on its target list, the cache MUST select the first (in target list
//# order) field with a valid, non-empty value and use its value to determine the caching
//# policy for the response, and it MUST ignore the Cache-Control and Expires header fields in
//# that response, unless no valid, non-empty value is available from the listed header fields.
pub fn effective_response_directives(
    headers: &HeaderMap,
    cfg: &PolicyConfig,
) -> (ResponseDirectives, DirectiveSource) {
    for name in &cfg.targeted_fields {
        if !headers.contains_key(name) {
            continue;
        }
        let raw = if *name == SURROGATE_CONTROL {
            parse_surrogate_control(headers)
        } else {
            //= https://www.rfc-editor.org/rfc/rfc8941#section-4.2
            //# combine all field lines in the same section (header or trailer) that have the
            //# same name into one comma-separated field value
            let joined = headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect::<Vec<_>>()
                .join(&b", "[..]);
            match sf::parse_dictionary(&joined).ok().and_then(from_dictionary) {
                Some(raw) => raw,
                None => continue,
            }
        };
        //= https://www.rfc-editor.org/rfc/rfc9213#section-2.2
        //# If a targeted field in a given response is empty, or a parsing error is encountered,
        //# that field MUST be ignored by the cache
        if raw.is_empty() {
            continue;
        }
        return (
            response_from_raw(&raw),
            DirectiveSource::Targeted(name.clone()),
        );
    }
    let raw = parse_cache_control(headers, &header::CACHE_CONTROL);
    (response_from_raw(&raw), DirectiveSource::CacheControl)
}

/// The argument of a request `max-stale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxStale {
    /// No argument: any staleness is acceptable.
    Any,
    /// At most this much past the freshness lifetime.
    Limit(Duration),
}

/// Request directives (RFC 9111 §5.2.1, RFC 5861 §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `max-age`: the client wants a response no older than this.
    pub max_age: Option<Duration>,
    /// `max-stale`: the client accepts stale responses.
    pub max_stale: Option<MaxStale>,
    /// `min-fresh`: the client wants at least this much freshness left.
    pub min_fresh: Option<Duration>,
    /// `no-cache` (or `Pragma: no-cache` without Cache-Control).
    pub no_cache: bool,
    /// `no-store`: nothing of this exchange may be stored.
    pub no_store: bool,
    /// `only-if-cached`: answer from the cache or with 504.
    pub only_if_cached: bool,
    /// `stale-if-error`: the client accepts a stale response this stale when upstream fails.
    pub stale_if_error: Option<Duration>,
}

impl RequestDirectives {
    /// Parses the request's Cache-Control (all lines) and, when there is none, Pragma.
    /// Invalid arguments are ignored; a repeated directive keeps its most restrictive value.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut d = RequestDirectives::default();
        for r in parse_cache_control(headers, &header::CACHE_CONTROL) {
            let secs = if r.malformed {
                None
            } else {
                r.value.as_deref().and_then(parse_delta_seconds)
            };
            match &*r.name {
                //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.1
                //# The max-age request directive indicates that the client prefers a response
                //# whose age is less than or equal to the specified number of seconds.
                "max-age" => d.max_age = min_opt(d.max_age, secs),
                //= https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1.2
                //# If no value is assigned to max-stale, then the client will accept a stale
                //# response of any age.
                "max-stale" => {
                    let v = match (&r.value, secs) {
                        (None, _) if !r.malformed => Some(MaxStale::Any),
                        (_, Some(s)) => Some(MaxStale::Limit(s)),
                        _ => None,
                    };
                    d.max_stale = match (d.max_stale, v) {
                        (Some(MaxStale::Limit(a)), Some(MaxStale::Limit(b))) => {
                            Some(MaxStale::Limit(a.min(b)))
                        }
                        (Some(MaxStale::Limit(a)), _) | (_, Some(MaxStale::Limit(a))) => {
                            Some(MaxStale::Limit(a))
                        }
                        (have, new) => have.or(new),
                    };
                }
                "min-fresh" => d.min_fresh = max_opt(d.min_fresh, secs),
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                "only-if-cached" => d.only_if_cached = true,
                //= https://www.rfc-editor.org/rfc/rfc5861#section-4
                //# stale-if-error ... can also be used in requests
                "stale-if-error" => d.stale_if_error = min_opt(d.stale_if_error, secs),
                _ => {}
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc7234#section-5.4
        //# When the Cache-Control header field is not present in a request, caches MUST
        //# consider the no-cache request pragma-directive as having the same effect as if
        //# "Cache-Control: no-cache" were present
        if !headers.contains_key(header::CACHE_CONTROL)
            && headers
                .get_all(header::PRAGMA)
                .iter()
                .flat_map(|v| list_items(v.as_bytes()))
                .any(|e| e.eq_ignore_ascii_case(b"no-cache"))
        {
            d.no_cache = true;
        }
        d
    }
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests;
