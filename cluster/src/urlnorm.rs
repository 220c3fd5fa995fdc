//! URL normalisation shared by cache keys, upstream requests and purges: the one canonical form
//! of a request target.
//!
//! A purge of `https://Example.com:443/a/%7Euser/../b` must hit the object a client fetched as
//! `https://example.com/a/b`, so both sides reduce a URL to the same [`NormalizedUrl`]. And what
//! is stored under a key must be what the upstream was asked for, so the edge sends the
//! canonical target upstream, never the raw one: `/img/%2e%2e/x` is keyed, asked for and purged
//! as `/x`. (The alternative, keying on the raw target, would store one object per spelling and
//! still let a path-routing origin answer `/img/%2e%2e/x` with `/x`'s content under another key.)
//!
//! The rules, in order (RFC 3986 §6.2.2–6.2.3, plus what browsers do for `http(s)` paths):
//!
//! | input | canonical | rule |
//! |---|---|---|
//! | `Example.COM.:80` | `example.com` | host lower-cased, trailing dot and default port dropped |
//! | `/a\b` | `/a/b` | a backslash in the path is a slash (WHATWG URL, as every browser sends it) |
//! | `/%7euser/%2f` | `/~user/%2F` | escapes of unreserved characters decoded, others upper-cased |
//! | `/a%zz`, `/a"b`, `/café` | `/a%25zz`, `/a%22b`, `/caf%C3%A9` | a stray `%` and bytes a URI may not carry are encoded |
//! | `/a/./b/../c`, `/img/%2e%2e/x` | `/a/c`, `/x` | dot segments removed, after decoding (so `%2e` is a dot) |
//! | `/a//b///c` | `/a/b/c` | empty segments merged (as nginx's `merge_slashes`) |
//! | `/a?`, `/a#f` | `/a` | empty query and fragment dropped |
//!
//! `%2F` stays encoded: an encoded slash is data, not a separator. Normalising twice changes
//! nothing (property-tested). The scheme is deliberately not part of
//! [`NormalizedUrl::purge_key`]: a purge of a URL invalidates it whichever scheme served it.

use std::fmt;

/// Why a URL given by a user (a purge, a config file) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The string does not start with `http://` or `https://`.
    #[error("URL must start with http:// or https://")]
    Scheme,
    /// The authority is empty, carries userinfo, or is not a valid `host[:port]`.
    #[error("URL has no valid host")]
    Host,
    /// The port is not a number between 1 and 65535.
    #[error("URL has an invalid port")]
    Port,
    /// The URL contains whitespace or control characters.
    #[error("URL contains whitespace or control characters")]
    Characters,
}

/// A URL reduced to the parts that identify an object, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedUrl {
    /// Lower-case host without a trailing dot, with `:port` only when it is not the scheme's
    /// default; IPv6 literals keep their brackets.
    pub host: String,
    /// Path (never empty, dot segments removed, escapes canonical) plus `?query` when the query
    /// is non-empty.
    pub path_and_query: String,
}

impl NormalizedUrl {
    /// The scheme-less string purges match on: `host` followed by `path_and_query`.
    pub fn purge_key(&self) -> String {
        let mut s = String::with_capacity(self.host.len() + self.path_and_query.len());
        s.push_str(&self.host);
        s.push_str(&self.path_and_query);
        s
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        match self.path_and_query.find('?') {
            Some(i) => &self.path_and_query[..i],
            None => &self.path_and_query,
        }
    }
}

impl fmt::Display for NormalizedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.host, self.path_and_query)
    }
}

/// Whether the scheme is `https` (default port 443) rather than `http` (80).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The scheme as it is written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Normalises the parts of a request: `authority` from `:authority` or `Host`, and the
/// request target's path and query exactly as received.
pub fn normalize(
    scheme: Scheme,
    authority: &str,
    path_and_query: &str,
) -> Result<NormalizedUrl, UrlError> {
    let control = |s: &str| s.bytes().any(|b| b <= b' ' || b == 0x7f);
    if control(authority) {
        return Err(UrlError::Characters);
    }
    // Fast path for the common, already-canonical target: only characters a URI carries as
    // they are and escapes already in canonical form (so no control either), no dot or empty
    // segments, no fragment, no empty query. The general rules would return it unchanged
    // (property tests check that).
    if path_and_query.starts_with('/')
        && !path_and_query.ends_with('?')
        && canonical_target(path_and_query.as_bytes())
    {
        return Ok(NormalizedUrl {
            host: normalize_authority(scheme, authority)?,
            path_and_query: path_and_query.to_string(),
        });
    }
    if control(path_and_query) {
        return Err(UrlError::Characters);
    }
    let host = normalize_authority(scheme, authority)?;
    Ok(NormalizedUrl {
        host,
        path_and_query: normalize_target_general(path_and_query),
    })
}

/// The rules of the module docs on a request target.
fn normalize_target_general(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => (&path_and_query[..i], &path_and_query[i + 1..]),
        None => (path_and_query, ""),
    };
    // A fragment never reaches a server, but users paste URLs that carry one.
    let query = query.split('#').next().unwrap_or("");
    let path = path.split('#').next().unwrap_or("").replace('\\', "/");
    let mut out = normalize_segments(&normalize_escapes(&path, false));
    if !query.is_empty() {
        out.push('?');
        out.push_str(&normalize_escapes(query, true));
    }
    out
}

/// Parses and normalises an absolute `http(s)://host[:port]/path?query` URL given by a user.
pub fn parse_absolute(url: &str) -> Result<(Scheme, NormalizedUrl), UrlError> {
    let url = url.trim();
    let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
        (Scheme::Http, rest)
    } else {
        return Err(UrlError::Scheme);
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(split);
    let path_and_query = if path_and_query.starts_with('?') {
        format!("/{path_and_query}")
    } else {
        path_and_query.to_string()
    };
    Ok((scheme, normalize(scheme, authority, &path_and_query)?))
}

/// Normalises a bare host name as used by host purges and service host lists: lower case, no
/// trailing dot, default ports for either scheme dropped.
pub fn normalize_host(host: &str) -> Result<String, UrlError> {
    let h = normalize_authority(Scheme::Http, host)?;
    match h.strip_suffix(":443") {
        Some(stripped) => Ok(stripped.to_string()),
        None => Ok(h),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get`, not indexing: the prefix's length may fall inside a multi-byte character of a
    // URL a client sent.
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => s.get(prefix.len()..),
        _ => None,
    }
}

fn normalize_authority(scheme: Scheme, authority: &str) -> Result<String, UrlError> {
    if is_canonical_authority(scheme, authority) {
        return Ok(authority.to_string());
    }
    normalize_authority_general(scheme, authority)
}

/// The fast path: a lower-case name without empty labels or trailing dot, and a port, if any,
/// in canonical decimal and not the scheme's default, is already what the general rules would
/// make of it. (`host:port` is every request's Host on a non-default port.)
fn is_canonical_authority(scheme: Scheme, authority: &str) -> bool {
    let (host, port) = match memchr::memrchr(b':', authority.as_bytes()) {
        Some(i) => (&authority[..i], Some(&authority[i + 1..])),
        None => (authority, None),
    };
    let name = !host.is_empty()
        && !host.ends_with('.')
        && !host.starts_with('.')
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    name && port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && !p.starts_with('0')
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n != scheme.default_port())
    })
}

fn normalize_authority_general(scheme: Scheme, authority: &str) -> Result<String, UrlError> {
    if authority.is_empty() || authority.contains('@') {
        return Err(UrlError::Host);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or(UrlError::Host)?;
        let host = &authority[..end + 2];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::Host)?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    // A name with an empty label (`..`, `.a`, `a..b`) names no host, and would not be a fixed
    // point (`a..` loses one dot per pass).
    let valid = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // IP-literal: an IPv6 address (or IPvFuture), never a name.
        Some(literal) => {
            !literal.is_empty()
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":.-_~".contains(&b))
        }
        // reg-name or IPv4address: no `:`, `[` or `]`, which would make the port ambiguous
        // (`a:b.com:80` is host `a`, port `b.com:80` to one parser and host `a:b.com` to another).
        None => {
            !host.is_empty()
                && !host.split('.').any(str::is_empty)
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
        }
    };
    //= https://www.rfc-editor.org/rfc/rfc3986#section-3.2.2
    //# host        = IP-literal / IPv4address / reg-name
    if !valid {
        return Err(UrlError::Host);
    }
    let mut out = host.to_ascii_lowercase();
    match port {
        None | Some("") => {}
        Some(p) => {
            let n: u16 = p.parse().map_err(|_| UrlError::Port)?;
            if n == 0 {
                return Err(UrlError::Port);
            }
            if n != scheme.default_port() {
                out.push(':');
                out.push_str(&n.to_string());
            }
        }
    }
    Ok(out)
}

/// Whether a URI carries byte `b` as it is in a path: RFC 3986 `pchar` without `%`, plus `/`.
fn verbatim(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// Whether every byte of a target is one a URI carries as it is (`?` included), or part of an
/// escape in the form [`normalize_escapes`] leaves unchanged (upper-case hex, of a character
/// that is not unreserved), with no `/.` or `//` anywhere: one pass over the target.
fn canonical_target(b: &[u8]) -> bool {
    let mut i = 0;
    let mut prev = 0u8;
    while let Some(&c) = b.get(i) {
        if prev == b'/' && (c == b'.' || c == b'/') {
            return false;
        }
        prev = c;
        if c == b'%' {
            let upper = |x: u8| matches!(x, b'0'..=b'9' | b'A'..=b'F');
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(&h), Some(&l)) if upper(h) && upper(l) => {
                    let d = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                    if d.is_ascii_alphanumeric() || b"-._~".contains(&d) {
                        return false;
                    }
                }
                _ => return false,
            }
            i += 3;
            continue;
        }
        if !(verbatim(c) || c == b'?') {
            return false;
        }
        i += 1;
    }
    true
}

/// RFC 3986 §6.2.2.1–2: upper-case hex in escapes, decode escapes of unreserved characters.
/// A `%` that does not start a valid escape becomes `%25`, so normalising twice changes nothing
/// (`%%30a` would otherwise decode to a new escape `%0a`); so is every byte a URI may not carry
/// as it is (in a query, `?` may).
fn normalize_escapes(s: &str, query: bool) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let (h, l) = (b[i + 1], b[i + 2]);
            if let (Some(hv), Some(lv)) = (hex(h), hex(l)) {
                let c = hv * 16 + lv;
                if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                    out.push(c as char);
                } else {
                    out.push('%');
                    out.push(h.to_ascii_uppercase() as char);
                    out.push(l.to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        let c = b[i];
        if verbatim(c) || (query && c == b'?') {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(c >> 4)] as char);
            out.push(HEX[usize::from(c & 0xf)] as char);
        }
        i += 1;
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §5.2.4 (dot segments) and empty segments merged, on a path made absolute. A path
/// that ends in a separator, `.` or `..` keeps its trailing slash.
fn normalize_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash = path.ends_with("/.")
        || path.ends_with("/..")
        || path.ends_with('/')
        || path == "."
        || path == "..";
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash && !out.ends_with('/') {
        out.push('/');
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        parse_absolute(url)
            .map(|(_, n)| n.purge_key())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("http://example.com", "example.com/"),
            ("HTTP://Example.COM/", "example.com/"),
            ("http://example.com:80/a", "example.com/a"),
            ("https://example.com:443/a", "example.com/a"),
            ("http://example.com:443/a", "example.com:443/a"),
            ("https://example.com:8443/a", "example.com:8443/a"),
            ("http://example.com./a", "example.com/a"),
            ("http://example.com/a/./b/../c", "example.com/a/c"),
            ("http://example.com/a/..", "example.com/"),
            ("http://example.com/../../a", "example.com/a"),
            (
                "http://example.com/%7euser/%2f%41",
                "example.com/~user/%2FA",
            ),
            ("http://example.com/a?", "example.com/a"),
            ("http://example.com/a?b=%7e&c", "example.com/a?b=~&c"),
            ("http://example.com?x=1", "example.com/?x=1"),
            ("http://example.com/a#frag", "example.com/a"),
            ("http://[::1]:8080/a", "[::1]:8080/a"),
            ("http://[::1]:80/a", "[::1]/a"),
            ("http://example.com/%zz", "example.com/%25zz"),
            ("http://example.com/%e2%82%ac", "example.com/%E2%82%AC"),
            ("http://example.com/caf\u{e9}", "example.com/caf%C3%A9"),
            // The vectors: encoded dot segments, empty segments, backslashes, case.
            ("http://example.com/img/%2e%2e/x", "example.com/x"),
            ("http://example.com/img/%2E%2e/x", "example.com/x"),
            ("http://example.com/img/.%2e/x", "example.com/x"),
            ("http://example.com/img/%2e/x", "example.com/img/x"),
            ("http://example.com/a//b///c", "example.com/a/b/c"),
            ("http://example.com//a", "example.com/a"),
            ("http://example.com/a/", "example.com/a/"),
            ("http://example.com/a//", "example.com/a/"),
            ("http://example.com/img\\..\\x", "example.com/x"),
            ("http://example.com/a%5c..%5cx", "example.com/a%5C..%5Cx"),
            ("http://example.com/a%2f..%2fx", "example.com/a%2F..%2Fx"),
            ("http://example.com/a%2fb", "example.com/a%2Fb"),
            ("http://example.com/%41%42c", "example.com/ABc"),
            ("http://example.com/a\"b<c>", "example.com/a%22b%3Cc%3E"),
            (
                "http://example.com/a?q=a\\b&r=[1]",
                "example.com/a?q=a%5Cb&r=%5B1%5D",
            ),
            ("http://example.com/a?q=/x?y", "example.com/a?q=/x?y"),
            ("http://example.com/a/..", "example.com/"),
            ("http://example.com/a/../..", "example.com/"),
            (
                "http://example.com/.well-known/x",
                "example.com/.well-known/x",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(key(input), want, "input {input}");
        }
    }

    #[test]
    fn rejects_bad_urls() {
        assert_eq!(parse_absolute("ftp://x/").unwrap_err(), UrlError::Scheme);
        assert_eq!(
            parse_absolute("example.com/a").unwrap_err(),
            UrlError::Scheme
        );
        assert_eq!(parse_absolute("http:///a").unwrap_err(), UrlError::Host);
        assert_eq!(
            parse_absolute("http://u:p@h/a").unwrap_err(),
            UrlError::Host
        );
        assert_eq!(
            parse_absolute("http://h:99999/").unwrap_err(),
            UrlError::Port
        );
        assert_eq!(parse_absolute("http://h:0/").unwrap_err(), UrlError::Port);
        assert_eq!(
            parse_absolute("http://h/a b").unwrap_err(),
            UrlError::Characters
        );
        assert_eq!(parse_absolute("http://[::1/").unwrap_err(), UrlError::Host);
        // A multi-byte character where the scheme would end (found by fuzzing: it panicked).
        assert_eq!(parse_absolute("https:/ȺʞX").unwrap_err(), UrlError::Scheme);
        assert_eq!(parse_absolute("é").unwrap_err(), UrlError::Scheme);
        for empty_label in ["http://../", "http://.a/", "http://a..b/", "http://a../"] {
            assert_eq!(
                parse_absolute(empty_label).unwrap_err(),
                UrlError::Host,
                "{empty_label}"
            );
        }
    }

    #[test]
    fn request_and_purge_agree() {
        let (_, from_purge) = parse_absolute("https://EXAMPLE.com:443/img/%7Ea.png?v=1").unwrap();
        let from_request = normalize(Scheme::Https, "example.com", "/img/~a.png?v=1").unwrap();
        assert_eq!(from_purge, from_request);
        assert_eq!(from_request.path(), "/img/~a.png");
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_host("example.com:443").unwrap(), "example.com");
        assert_eq!(
            normalize_host("example.com:8080").unwrap(),
            "example.com:8080"
        );
        assert!(normalize_host("").is_err());
        assert!(normalize_host("a b").is_err());
        // A colon, or brackets, in a name would make the port ambiguous.
        assert!(normalize_host("a:b.com:80").is_err());
        assert!(normalize_host("a]b").is_err());
        assert!(normalize_host("[]").is_err());
        assert_eq!(normalize_host("[::1]:8443").unwrap(), "[::1]:8443");
        // The `host:port` fast path keeps only what is already canonical.
        for (given, want) in [
            ("a.example:8080", Ok("a.example:8080")),
            ("a.example:80", Ok("a.example")),
            ("a.example:080", Ok("a.example")),
            ("a.example:+8080", Ok("a.example:8080")),
            ("a.example:08080", Ok("a.example:8080")),
            ("a.example:0", Err(UrlError::Port)),
            ("a.example:65536", Err(UrlError::Port)),
            ("a.example:", Ok("a.example")),
            ("A.example:8080", Ok("a.example:8080")),
            ("a..example:8080", Err(UrlError::Host)),
        ] {
            assert_eq!(normalize_host(given).as_deref(), want.as_deref(), "{given}");
        }
        assert_eq!(normalize_host("[FE80::1]").unwrap(), "[fe80::1]");
    }

    proptest::proptest! {
        /// The fast paths return exactly what the general rules return.
        #[test]
        fn fast_paths_agree_with_the_general_rules(
            path in "/[a-zA-Z0-9./_~%-]{0,30}",
            q in "[a-z0-9=&.%/]{0,10}",
            host in "[a-zA-Z0-9.-]{1,20}(:[0-9]{0,6})?",
        ) {
            let pq = if q.is_empty() { path.clone() } else { format!("{path}?{q}") };
            let fast = normalize(Scheme::Http, &host, &pq);
            let general = normalize_authority_general(Scheme::Http, &host)
                .map(|host| NormalizedUrl { host, path_and_query: normalize_target_general(&pq) });
            proptest::prop_assert_eq!(fast, general);
        }

        /// Likewise for targets full of escapes, canonical or not.
        #[test]
        fn the_fast_path_agrees_on_escapes(
            segs in proptest::collection::vec("([a-z0-9._~-]|%[0-9A-Fa-f]{2}|%[0-9A-F]|%){0,4}", 0..5),
            q in "([a-z0-9=&?]|%[0-9A-Fa-f]{2}|%){0,6}",
        ) {
            let path = format!("/{}", segs.join("/"));
            let pq = if q.is_empty() { path.clone() } else { format!("{path}?{q}") };
            let fast = normalize(Scheme::Http, "h", &pq).map(|u| u.path_and_query);
            proptest::prop_assert_eq!(fast, Ok(normalize_target_general(&pq)));
        }

        #[test]
        fn normalisation_is_idempotent(path in "/[a-zA-Z0-9%./~_-]{0,40}", q in "[a-z0-9=&%]{0,10}") {
            let pq = if q.is_empty() { path.clone() } else { format!("{path}?{q}") };
            let once = normalize(Scheme::Http, "h", &pq).unwrap();
            let twice = normalize(Scheme::Http, &once.host, &once.path_and_query).unwrap();
            proptest::prop_assert_eq!(once, twice);
        }

        /// For any target, the canonical form is a valid origin-form request target made only
        /// of characters a URI carries, and normalising it again changes nothing: the key of
        /// what is sent upstream is the key of what was asked.
        #[test]
        fn canonical_targets_are_valid_and_fixed_points(
            raw in "[/./%/\\\\?#:@!$&'()*+,;=_~\\[\\]{}|^`<>\" a-fA-F0-9\u{e9}\u{20ac}-]{0,40}"
        ) {
            let pq = format!("/{raw}");
            let Ok(once) = normalize(Scheme::Https, "example.com", &pq) else {
                return Ok(());
            };
            let target = &once.path_and_query;
            proptest::prop_assert!(target.starts_with('/'), "{target}");
            proptest::prop_assert!(
                target.bytes().all(|b| verbatim(b) || b == b'%' || b == b'?'),
                "{target}"
            );
            let path = once.path();
            proptest::prop_assert!(!path.contains("//") && !target.contains('#'), "{target}");
            proptest::prop_assert!(
                !path.split('/').any(|s| s == "." || s == ".."),
                "{target}"
            );
            let twice = normalize(Scheme::Https, &once.host, target).unwrap();
            proptest::prop_assert_eq!(&once, &twice);
        }
    }
}
