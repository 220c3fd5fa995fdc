//! Cache keys: which stored object a request refers to.
//!
//! A key is a blake3 hash over the service, the scheme (unless a service shares objects across
//! http and https), and the normalised URL with the service's query rule applied. The `Vary`
//! of the stored response then selects the variant under that key (see `policy`).
//!
//! Every field is length-prefixed, so no two different field tuples hash the same input:
//! `("ab", "c")` and `("a", "bc")` are different keys. The hash is keyed by a versioned
//! context string, so a change to this layout can never read objects stored under the old one.

use blake3::hazmat::HasherExt;
use std::borrow::Cow;
use std::fmt;

use tiercel_cluster::urlnorm::{NormalizedUrl, Scheme};

/// The blake3 key of a stored object (before `Vary` picks a variant).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex, 64 characters: for logs, `Cache-Status; key=`, and admin APIs.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// Parses the output of [`CacheKey::to_hex`] (either case); `None` for anything else.
    pub fn from_hex(s: &str) -> Option<CacheKey> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            let hi = char::from(b[2 * i]).to_digit(16)?;
            let lo = char::from(b[2 * i + 1]).to_digit(16)?;
            *o = u8::try_from(hi << 4 | lo).ok()?;
        }
        Some(CacheKey(out))
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What part of the query string identifies an object.
///
/// Parameter names are compared exactly (query names are case-sensitive) against the
/// normalised query, in which escapes of unreserved characters are decoded and other escapes
/// are upper-case; names given here are normalised the same way before comparing.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum QueryRule {
    /// The query as received (normalised).
    #[default]
    Keep,
    /// No query at all: `/a?x=1` and `/a` are one object.
    Ignore,
    /// Parameters sorted by the whole `name=value` pair, empty ones dropped:
    /// `?b=2&a=1` and `?a=1&b=2` are one object.
    Sort,
    /// Only these parameters, in their original order.
    Allow(Vec<String>),
    /// All parameters but these (e.g. `utm_source`), in their original order.
    Deny(Vec<String>),
}

/// A service's cache-key configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRules {
    /// How the query string enters the key.
    pub query: QueryRule,
    /// Whether http and https are different objects (default true: an origin may well
    /// serve different content, e.g. a redirect to https on plain http).
    pub include_scheme: bool,
}

impl Default for KeyRules {
    fn default() -> Self {
        KeyRules {
            query: QueryRule::Keep,
            include_scheme: true,
        }
    }
}

/// The blake3 context that keys the hash; bump the version when the layout below changes.
const KEY_CONTEXT: &str = "tiercel 2026-01 cache key v1";

/// Derives the key of `url` (already normalised by `urlnorm::normalize`) for `service`.
///
/// Fields, each as a little-endian u64 length and the bytes: service, scheme (`""` when not
/// included, so the field count never changes), host, path, query after the rule (`""` when
/// none).
pub fn derive_key(
    service: &str,
    scheme: Scheme,
    url: &NormalizedUrl,
    rules: &KeyRules,
) -> CacheKey {
    let path = url.path();
    let query = url
        .path_and_query
        .get(path.len()..)
        .and_then(|q| q.strip_prefix('?'))
        .unwrap_or("");
    let query = apply_query_rule(query, &rules.query);
    let scheme = if rules.include_scheme {
        scheme.as_str()
    } else {
        ""
    };
    // Deriving the context key is a hash of its own: done once. (A hasher cloned from a
    // prepared one copies its 1.7 KiB subtree stack.)
    static CONTEXT_KEY: std::sync::LazyLock<blake3::hazmat::ContextKey> =
        std::sync::LazyLock::new(|| blake3::hazmat::hash_derive_key_context(KEY_CONTEXT));
    let fields = [service, scheme, url.host.as_str(), path, &query];
    // One update over the fields laid end to end (the same bytes, so the same key): ten small
    // updates cost blake3 more than the copy. On the stack when they fit (nearly every URL).
    const ON_STACK: usize = 512;
    let len: usize = fields.iter().map(|f| 8 + f.len()).sum();
    let mut stack = [0u8; ON_STACK];
    let mut heap = Vec::new();
    let input: &mut [u8] = if len <= ON_STACK {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for field in fields {
        input[at..at + 8].copy_from_slice(&(field.len() as u64).to_le_bytes());
        input[at + 8..at + 8 + field.len()].copy_from_slice(field.as_bytes());
        at += 8 + field.len();
    }
    let mut hasher = blake3::Hasher::new_from_context_key(&CONTEXT_KEY);
    hasher.update(input);
    CacheKey(*hasher.finalize().as_bytes())
}

/// The query string after `rule` (without the `?`); borrowed when the rule keeps it whole.
pub fn apply_query_rule<'q>(query: &'q str, rule: &QueryRule) -> Cow<'q, str> {
    match rule {
        QueryRule::Keep => Cow::Borrowed(query),
        QueryRule::Ignore => Cow::Borrowed(""),
        QueryRule::Sort => {
            let mut pairs: Vec<&str> = params(query).collect();
            pairs.sort_unstable();
            Cow::Owned(pairs.join("&"))
        }
        QueryRule::Allow(names) => Cow::Owned(filter(query, names, true)),
        QueryRule::Deny(names) => Cow::Owned(filter(query, names, false)),
    }
}

/// Non-empty `&`-separated parameters.
fn params(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter(|p| !p.is_empty())
}

fn filter(query: &str, names: &[String], keep_listed: bool) -> String {
    let names: Vec<String> = names.iter().map(|n| normalize_name(n)).collect();
    params(query)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or(pair);
            names.iter().any(|n| n == name) == keep_listed
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Normalises a configured parameter name the way `urlnorm` normalises a query, so
/// `%7Eid` in a config matches `~id` in a request.
fn normalize_name(name: &str) -> String {
    if !name.contains('%') {
        return name.to_string();
    }
    match tiercel_cluster::urlnorm::normalize(Scheme::Http, "h", &format!("/?{name}")) {
        Ok(n) => n
            .path_and_query
            .strip_prefix("/?")
            .unwrap_or(name)
            .to_string(),
        Err(_) => name.to_string(),
    }
}

#[cfg(test)]
mod tests;
