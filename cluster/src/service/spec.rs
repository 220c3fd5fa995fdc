//! The service document as operators write it: a `[[services]]` table in a node's TOML file,
//! or the JSON body of `PUT /v1/services/{name}`. Only the shape is checked here (unknown keys
//! and wrong types are refused, with the key's path); [`super::compile()`] checks the values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One site, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service's name: the `[[services]]` table's `name`, or the API path's (a `name` in
    /// the JSON document must then be the same).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Host names it answers for: exact (`www.example.com`) or `*.example.com` (any name
    /// under it, at any depth; the longest matching suffix wins).
    pub hosts: Vec<String>,
    /// The origin pool: URLs, or `{url, weight}` tables. Empty: the node's `--origin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<OriginSpec>,
    /// `round_robin` (default), `least_conn` or `consistent` (by cache key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// Active health checks of each origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// Shields for this service's misses; absent: the node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shields: Option<Vec<String>>,
    /// The certificate served for its hosts (PEM file paths in TOML, PEM text in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Compression of text responses on the way out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<CompressSpec>,
    /// Who may ask, and with which methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
    /// Requests per client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Freshness overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlSpec>,
    /// What identifies an object besides the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySpec>,
    /// Fields set on or removed from requests sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderRulesSpec>,
    /// Fields set on or removed from responses to clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderRulesSpec>,
}

/// One origin of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OriginSpec {
    /// `http://host[:port]` or `https://host[:port]`, weight 1.
    Url(String),
    /// With a weight (1..=1000).
    Weighted {
        /// The URL.
        url: String,
        /// Its share of requests relative to the others.
        #[serde(default = "one")]
        weight: u32,
    },
}

fn one() -> u32 {
    1
}

/// Active health checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// Path asked with GET (default `/`); any 2xx or 3xx is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Between two checks of one origin (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// For one check (default `2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A certificate and its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// The chain, leaf first.
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// Compression on the way out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressSpec {
    /// Media types compressed (`text/*` matches any text type). Default: text, JSON,
    /// JavaScript, XML and SVG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Smallest body compressed, in bytes (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// Encodings offered, best first: `br`, `zstd`, `gzip` (default all three).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
}

/// Access rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSpec {
    /// When set, only these ranges may ask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// These ranges may not (checked first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// When set, only these methods are allowed (others get 405).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
}

/// A rate limit per client address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// `20/s`, `600/min` or `10000/h`.
    pub per_ip: String,
    /// Requests allowed at once above the rate (default: one second's worth, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Freshness overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlSpec {
    /// Freshness of a storable response that states none (instead of the heuristic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Longest freshness any response gets here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// The cache key's rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// How the query enters the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QuerySpec>,
    /// Request fields whose values are part of the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

/// How the query enters the key: `keep`, `drop`, `sort`, `{allow = [..]}`, `{deny = [..]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuerySpec {
    /// `keep`, `drop` or `sort`.
    Word(String),
    /// Only the listed parameters, or all but them.
    Lists(QueryLists),
}

/// `{allow = [..]}` or `{deny = [..]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLists {
    /// Only these parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// All parameters but these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

/// Header rules: `remove` first, then `set` (replacing any value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRulesSpec {
    /// Field name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Field names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}
