//! A checked service as nodes run it: every value typed and validated by
//! [`compile()`](super::compile()), so the request path never parses configuration.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use rustls::sign::CertifiedKey;

use super::spec::ServiceSpec;
use crate::cidr::Cidr;

/// A host a service answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// This name exactly.
    Exact(String),
    /// Any name ending in `.` + this suffix.
    Suffix(String),
}

/// One origin of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `scheme://host[:port]`.
    pub url: String,
    /// Relative share (1..=1000).
    pub weight: u32,
}

/// How requests spread over a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// In turn, by weight.
    #[default]
    RoundRobin,
    /// The origin with the fewest requests in flight relative to its weight.
    LeastConn,
    /// By cache key (weighted rendezvous hashing): an object always goes to the same origin.
    Consistent,
}

/// Active health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path asked with GET.
    pub path: String,
    /// Between two checks.
    pub interval: Duration,
    /// For one check.
    pub timeout: Duration,
}

/// A content coding the edge can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Brotli (RFC 7932).
    Br,
    /// Zstandard (RFC 8878).
    Zstd,
    /// gzip (RFC 1952).
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// From a token.
    pub fn from_token(t: &str) -> Option<Encoding> {
        match t {
            "br" => Some(Encoding::Br),
            "zstd" => Some(Encoding::Zstd),
            "gzip" => Some(Encoding::Gzip),
            _ => None,
        }
    }
}

/// Compression on the way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// Media types (`type/subtype`, or `type/*`), lowercase.
    pub types: Vec<String>,
    /// Smallest body compressed.
    pub min_size: u64,
    /// Encodings offered, best first.
    pub algorithms: Vec<Encoding>,
}

impl Compress {
    /// Whether a response of this `Content-Type` is compressed.
    pub fn compresses(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(main) => essence.split_once('/').is_some_and(|(m, _)| m == main),
            None => *t == essence,
        })
    }
}

/// Who may ask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// When non-empty, only these ranges.
    pub allow: Vec<Cidr>,
    /// Never these (checked first).
    pub deny: Vec<Cidr>,
    /// When set, only these methods.
    pub methods: Option<Vec<Method>>,
}

impl Access {
    /// Whether a client at `ip` may ask.
    pub fn admits(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }

    /// Whether `method` is allowed.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }
}

/// Requests per client address: one every `every` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per `period`.
    pub count: u32,
    /// The period `count` is over.
    pub period: Duration,
    /// Requests allowed at once.
    pub burst: u32,
}

/// Freshness overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ttl {
    /// Freshness for storable responses that state none.
    pub default: Option<Duration>,
    /// Cap on any freshness.
    pub max: Option<Duration>,
}

/// How the query enters the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum QueryKey {
    /// As received (normalised).
    #[default]
    Keep,
    /// Not at all.
    Drop,
    /// Parameters sorted.
    Sort,
    /// Only these parameters.
    Allow(Vec<String>),
    /// All but these.
    Deny(Vec<String>),
}

/// What identifies an object besides the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyConfig {
    /// The query rule.
    pub query: QueryKey,
    /// Request fields in the key, lowercase.
    pub headers: Vec<HeaderName>,
}

/// Header rules: remove, then set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Fields set (replacing).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Fields removed.
    pub remove: Vec<HeaderName>,
}

impl HeaderRules {
    /// Applies the rules to `h`.
    pub fn apply(&self, h: &mut http::HeaderMap) {
        for name in &self.remove {
            h.remove(name);
        }
        for (name, value) in &self.set {
            h.insert(name.clone(), value.clone());
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// A checked service, ready to route to.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its name (part of every cache key of its objects).
    pub name: String,
    /// Hosts it answers for.
    pub hosts: Vec<HostPattern>,
    /// Its origin pool; empty: the node's `--origin`.
    pub origins: Vec<Origin>,
    /// How the pool is used.
    pub balance: Balance,
    /// Active checks of the pool.
    pub health_check: Option<HealthCheck>,
    /// Shields for its misses; `None`: the node's.
    pub shields: Option<Vec<String>>,
    /// Its certificate.
    pub tls: Option<Arc<CertifiedKey>>,
    /// Compression.
    pub compress: Option<Compress>,
    /// Access rules.
    pub access: Access,
    /// Rate limit per client address.
    pub rate_limit: Option<RateLimit>,
    /// Freshness overrides.
    pub ttl: Ttl,
    /// Key rules.
    pub key: KeyConfig,
    /// Rules for requests sent upstream.
    pub request_headers: HeaderRules,
    /// Rules for responses sent to clients.
    pub response_headers: HeaderRules,
    /// The document it was compiled from.
    pub spec: ServiceSpec,
}
