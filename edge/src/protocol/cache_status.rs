//! The `Cache-Status` response field (RFC 9211), serialised as an RFC 8941 list member.
//!
//! Every response we serve from or through the cache says what this node did with the request,
//! after whatever the caches closer to the origin (a shield) said.

use http::HeaderValue;

use super::lists::trim_ows;
use super::{is_tchar, value_from};

/// Why the request went forward towards the origin (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FwdReason {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The request method's semantics require the request to be forwarded.
    Method,
    /// The cache did not contain any responses that matched the request URI.
    UriMiss,
    /// The cache contained a response for the URI, but the variant selected by `Vary` differed.
    VaryMiss,
    /// The cache did not contain any responses that could be used (reason unknown or mixed).
    Miss,
    /// The request's own directives (e.g. `Cache-Control: no-cache`) forced forwarding.
    Request,
    /// The stored response was stale and had to be revalidated.
    Stale,
    /// Only part of the response was stored and the rest had to be fetched.
    Partial,
}

impl FwdReason {
    /// The registered token for the `fwd` parameter.
    //= https://www.rfc-editor.org/rfc/rfc9211#section-2.2
    //# When present, indicates that the request went forward towards the origin; its value
    //# indicates why.
    pub fn as_str(self) -> &'static str {
        match self {
            FwdReason::Bypass => "bypass",
            FwdReason::Method => "method",
            FwdReason::UriMiss => "uri-miss",
            FwdReason::VaryMiss => "vary-miss",
            FwdReason::Miss => "miss",
            FwdReason::Request => "request",
            FwdReason::Stale => "stale",
            FwdReason::Partial => "partial",
        }
    }
}

/// What this cache did with one request; serialised by [`CacheStatus::to_member`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStatus<'a> {
    /// The identifier of this cache (`--name`), a token when it can be one, else a string.
    pub cache: &'a str,
    /// Served from the cache without going forward.
    pub hit: bool,
    /// Why the request went forward; ignored when `hit` is set.
    pub fwd: Option<FwdReason>,
    /// The status the next hop answered with; only written together with `fwd`.
    pub fwd_status: Option<u16>,
    /// Remaining freshness lifetime in seconds (negative when stale).
    pub ttl: Option<i64>,
    /// The response was stored; only written together with `fwd`.
    pub stored: bool,
    /// The request was collapsed with another one going forward; only written with `fwd`.
    pub collapsed: bool,
    /// A representation of the cache key (debugging only: it may reveal URLs).
    pub key: Option<&'a str>,
    /// Implementation-specific detail, written as a token when it can be one.
    pub detail: Option<&'a str>,
}

impl<'a> CacheStatus<'a> {
    /// A member for `cache` with no parameters set.
    pub fn new(cache: &'a str) -> Self {
        CacheStatus {
            cache,
            ..CacheStatus::default()
        }
    }

    /// This cache's list member, e.g. `tiercel-edge; fwd=uri-miss; fwd-status=200; stored`.
    ///
    /// Parameters are written in the order of RFC 9211 §2; booleans only when true (RFC 8941
    /// §4.1.1.2 writes a true Boolean parameter as its bare name).
    pub fn to_member(&self) -> String {
        let mut out = String::with_capacity(64);
        //= https://www.rfc-editor.org/rfc/rfc9211#section-2
        //# Each List member identifies the cache that inserted it, and this identifier MUST be
        //# a String or Token.
        write_token_or_string(&mut out, self.cache);
        //= https://www.rfc-editor.org/rfc/rfc9211#section-2.1
        //# When true, indicates that the request was satisfied by the cache; that is, it was
        //# not forwarded, and the response was obtained from the cache.
        // A request that was not forwarded has no forward reason, status, storing or
        // collapsing to report, so `hit` suppresses those parameters.
        if self.hit {
            out.push_str("; hit");
        } else if let Some(fwd) = self.fwd {
            out.push_str("; fwd=");
            out.push_str(fwd.as_str());
            //= https://www.rfc-editor.org/rfc/rfc9211#section-2.3
            //# Indicates which status code the next-hop server returned in response to the
            //# forwarded request.
            if let Some(status) = self.fwd_status {
                out.push_str("; fwd-status=");
                out.push_str(itoa::Buffer::new().format(status));
            }
        }
        if let Some(ttl) = self.ttl {
            out.push_str("; ttl=");
            out.push_str(itoa::Buffer::new().format(clamp_sf_integer(ttl)));
        }
        if !self.hit && self.fwd.is_some() {
            //= https://www.rfc-editor.org/rfc/rfc9211#section-2.5
            //# Indicates whether the cache stored the response; a true value indicates that
            //# it did.
            if self.stored {
                out.push_str("; stored");
            }
            //= https://www.rfc-editor.org/rfc/rfc9211#section-2.6
            //# Indicates whether this request was collapsed together with one or more other
            //# forward requests
            if self.collapsed {
                out.push_str("; collapsed");
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc9211#section-2.7
        //# Conveys a representation of the cache key used for the response.
        if let Some(key) = self.key {
            out.push_str("; key=");
            write_sf_string(&mut out, key);
        }
        //= https://www.rfc-editor.org/rfc/rfc9211#section-2.8
        //# Allows implementations to convey additional information not captured in other
        //# parameters
        if let Some(detail) = self.detail {
            out.push_str("; detail=");
            write_token_or_string(&mut out, detail);
        }
        out
    }
}

/// Keeps the upstream's `Cache-Status` and appends our member.
pub fn append_cache_status(existing: Option<&HeaderValue>, ours: &CacheStatus<'_>) -> HeaderValue {
    append_cache_status_lines(existing, ours)
}

/// Like [`append_cache_status`], for every `Cache-Status` line of the upstream response
/// (`headers.get_all(CACHE_STATUS)`), folded into one line in order.
///
/// The upstream's value is kept verbatim, even when it is not a valid structured list: it is
/// debugging information from a cache closer to the origin, and rewriting it would hide what
/// that cache said.
//= https://www.rfc-editor.org/rfc/rfc9211#section-2
//# The first member represents the cache closest to the origin server, and the last member
//# represents the cache closest to the user
//= https://www.rfc-editor.org/rfc/rfc9211#section-2
//# When adding a value to the Cache-Status header field, caches SHOULD preserve the existing
//# field value, to allow debugging of the entire chain of caches handling the request.
pub fn append_cache_status_lines<'h>(
    existing: impl IntoIterator<Item = &'h HeaderValue>,
    ours: &CacheStatus<'_>,
) -> HeaderValue {
    let mut existing = existing.into_iter().peekable();
    if existing.peek().is_none() {
        // The usual case: ours is the only member.
        return value_from(ours.to_member().into_bytes());
    }
    let mut out = Vec::new();
    for line in existing {
        let line = trim_ows(line.as_bytes());
        if !line.is_empty() {
            out.extend_from_slice(line);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(ours.to_member().as_bytes());
    value_from(out)
}

/// The largest magnitude an RFC 8941 Integer may have (15 digits).
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

//= https://www.rfc-editor.org/rfc/rfc8941#section-3.3.1
//# Integers have a range of -999,999,999,999,999 to 999,999,999,999,999 inclusive (i.e., up
//# to fifteen digits, signed), for IEEE 754 compatibility [IEEE754].
fn clamp_sf_integer(n: i64) -> i64 {
    n.clamp(-SF_INTEGER_MAX, SF_INTEGER_MAX)
}

/// RFC 8941 §3.3.4 `sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_sf_token(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(&c) if c.is_ascii_alphabetic() || c == b'*' => b[1..]
            .iter()
            .all(|&c| is_tchar(c) || c == b':' || c == b'/'),
        _ => false,
    }
}

fn write_token_or_string(out: &mut String, s: &str) {
    if is_sf_token(s) {
        out.push_str(s);
    } else {
        write_sf_string(out, s);
    }
}

/// Writes an RFC 8941 String. Characters a String cannot hold (controls, non-ASCII) become
/// `?`: the identifiers come from configuration and the key from a URL, and a lossy debug value
/// is better than dropping the whole field.
//= https://www.rfc-editor.org/rfc/rfc8941#section-3.3.3
//# sf-string = DQUOTE *chr DQUOTE
//# chr       = unescaped / escaped
//# unescaped = %x20-21 / %x23-5B / %x5D-7E
//# escaped   = "\" ( DQUOTE / "\" )
fn write_sf_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
