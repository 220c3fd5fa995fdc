//! From a [`ServiceSpec`] to a [`Service`] a node can run: every value checked once, by the
//! same code for a node's TOML file and the purge-service's API, each failure naming its key.
//! Pure: PEM text in, parsed certificate out; no files, no network.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use rustls::sign::CertifiedKey;

use super::model::{
    Access, Balance, Compress, Encoding, HeaderRules, HealthCheck, HostPattern, KeyConfig, Origin,
    QueryKey, RateLimit, Service, Ttl,
};
use super::spec::{
    AccessSpec, CompressSpec, HeaderRulesSpec, HealthCheckSpec, KeySpec, OriginSpec, QuerySpec,
    RateLimitSpec, ServiceSpec, TtlSpec,
};
use crate::cidr::Cidr;
use crate::config::units::parse_duration;
use crate::urlnorm::normalize_host;

/// A service definition that cannot be used: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ServiceError {
    /// The key's path inside the document (`origins[1].url`).
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl ServiceError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ServiceError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `prefix` before its key (`services[2]`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.key = if self.key.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.key)
        };
        self
    }
}

/// Most hosts one service may name.
pub const MAX_HOSTS: usize = 1_000;
/// Most origins in one pool.
pub const MAX_ORIGINS: usize = 64;
/// Most entries in any other list (ranges, types, header rules).
pub const MAX_LIST: usize = 256;

/// Checks a service name: 1–128 of `[A-Za-z0-9._-]`, safe in a URL path segment and a
/// metric label.
pub fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::new(
            "name",
            format!("{name:?} must be 1-128 characters of A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// Parses a document (JSON from the API, or a TOML table turned into JSON) into its spec,
/// naming the key of a shape error (`origins[0].weight: invalid type ...`).
pub fn parse_spec<'de, D>(doc: D) -> Result<ServiceSpec, ServiceError>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { String::new() } else { path };
        ServiceError::new(key, e.into_inner().to_string().trim_end())
    })
}

/// Checks every value of `spec`.
pub fn compile(spec: ServiceSpec) -> Result<Service, ServiceError> {
    check_name(&spec.name)?;
    let hosts = hosts(&spec.hosts)?;
    let origins = origins(&spec.origins)?;
    let balance = match spec.balance.as_deref() {
        None | Some("round_robin") => Balance::RoundRobin,
        Some("least_conn") => Balance::LeastConn,
        Some("consistent") => Balance::Consistent,
        Some(other) => {
            return Err(ServiceError::new(
                "balance",
                format!("expected round_robin, least_conn or consistent, got {other:?}"),
            ));
        }
    };
    let health_check = spec.health_check.as_ref().map(health_check).transpose()?;
    if health_check.is_some() && origins.is_empty() {
        return Err(ServiceError::new(
            "health_check",
            "needs origins to check (the node's --origin is not checked per service)",
        ));
    }
    let shields = match &spec.shields {
        None => None,
        Some(list) => {
            too_many("shields", list.len(), MAX_ORIGINS)?;
            for (i, s) in list.iter().enumerate() {
                crate::shield_select::parse_shield(s)
                    .map_err(|e| ServiceError::new(format!("shields[{i}]"), e))?;
            }
            Some(list.clone())
        }
    };
    let tls = spec
        .tls
        .as_ref()
        .map(|t| tls(&t.cert, &t.key))
        .transpose()?;
    let compress = spec.compress.as_ref().map(compress).transpose()?;
    let access = spec
        .access
        .as_ref()
        .map(access)
        .transpose()?
        .unwrap_or_default();
    let rate_limit = spec.rate_limit.as_ref().map(rate_limit).transpose()?;
    let ttl = spec.ttl.as_ref().map(ttl).transpose()?.unwrap_or_default();
    let key = spec.key.as_ref().map(key).transpose()?.unwrap_or_default();
    let request_headers = header_rules("request_headers", spec.request_headers.as_ref())?;
    let response_headers = header_rules("response_headers", spec.response_headers.as_ref())?;
    Ok(Service {
        name: spec.name.clone(),
        hosts,
        origins,
        balance,
        health_check,
        shields,
        tls,
        compress,
        access,
        rate_limit,
        ttl,
        key,
        request_headers,
        response_headers,
        spec,
    })
}

fn too_many(key: &str, len: usize, max: usize) -> Result<(), ServiceError> {
    if len > max {
        return Err(ServiceError::new(
            key,
            format!("at most {max} entries, got {len}"),
        ));
    }
    Ok(())
}

fn hosts(list: &[String]) -> Result<Vec<HostPattern>, ServiceError> {
    if list.is_empty() {
        return Err(ServiceError::new("hosts", "at least one host is required"));
    }
    too_many("hosts", list.len(), MAX_HOSTS)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, h) in list.iter().enumerate() {
        let key = format!("hosts[{i}]");
        let (wild, bare) = match h.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, h.as_str()),
        };
        if bare.contains(['*', ':']) {
            return Err(ServiceError::new(
                key,
                format!("{h:?}: a host name without a port; a wildcard only as a leading `*.`"),
            ));
        }
        let name = normalize_host(bare).map_err(|e| ServiceError::new(&key, e.to_string()))?;
        out.push(if wild {
            HostPattern::Suffix(name)
        } else {
            HostPattern::Exact(name)
        });
    }
    Ok(out)
}

fn origins(list: &[OriginSpec]) -> Result<Vec<Origin>, ServiceError> {
    too_many("origins", list.len(), MAX_ORIGINS)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, o) in list.iter().enumerate() {
        let (url, weight, key) = match o {
            OriginSpec::Url(u) => (u, 1, format!("origins[{i}]")),
            OriginSpec::Weighted { url, weight } => (url, *weight, format!("origins[{i}].url")),
        };
        if !(1..=1000).contains(&weight) {
            return Err(ServiceError::new(
                format!("origins[{i}].weight"),
                format!("must be between 1 and 1000, got {weight}"),
            ));
        }
        let url = origin_url(url).map_err(|reason| ServiceError::new(key, reason))?;
        out.push(Origin { url, weight });
    }
    Ok(out)
}

/// `http(s)://host[:port]`, nothing after the authority but an optional `/`.
fn origin_url(url: &str) -> Result<String, String> {
    let bad = || format!("expected http://host[:port] or https://host[:port], got {url:?}");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad());
    }
    Ok(format!("{scheme}://{authority}"))
}

fn duration(key: &str, text: &str) -> Result<Duration, ServiceError> {
    parse_duration(text).ok_or_else(|| {
        ServiceError::new(
            key,
            format!("expected a duration such as 500ms, 5s, 2m or 1h, got {text:?}"),
        )
    })
}

fn health_check(h: &HealthCheckSpec) -> Result<HealthCheck, ServiceError> {
    let path = h.path.clone().unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(ServiceError::new(
            "health_check.path",
            format!("expected an origin-form path such as /healthz, got {path:?}"),
        ));
    }
    let interval = duration(
        "health_check.interval",
        h.interval.as_deref().unwrap_or("5s"),
    )?;
    let timeout = duration("health_check.timeout", h.timeout.as_deref().unwrap_or("2s"))?;
    if interval < Duration::from_millis(100) {
        return Err(ServiceError::new(
            "health_check.interval",
            "must be at least 100ms",
        ));
    }
    if timeout.is_zero() || timeout > interval {
        return Err(ServiceError::new(
            "health_check.timeout",
            "must be above zero and at most the interval",
        ));
    }
    Ok(HealthCheck {
        path,
        interval,
        timeout,
    })
}

/// Parses a PEM chain and key and checks that they belong together.
pub fn tls(cert: &str, key: &str) -> Result<Arc<CertifiedKey>, ServiceError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| ServiceError::new("tls.cert", format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(ServiceError::new(
            "tls.cert",
            "no certificate in the PEM text",
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| ServiceError::new("tls.key", format!("not a PEM private key: {e}")))?;
    let signing = crate::tls::provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| ServiceError::new("tls.key", e.to_string()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| {
        ServiceError::new("tls.key", format!("does not match the certificate: {e}"))
    })?;
    // A leaf that does not parse would fail every handshake: refuse it now.
    if let Some(leaf) = ck.cert.first() {
        rustls::server::ParsedCertificate::try_from(leaf)
            .map_err(|e| ServiceError::new("tls.cert", e.to_string()))?;
    }
    Ok(Arc::new(ck))
}

/// Media types compressed when a service does not say.
pub const DEFAULT_COMPRESS_TYPES: [&str; 7] = [
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/wasm",
    "image/svg+xml",
    "application/manifest+json",
];

fn compress(c: &CompressSpec) -> Result<Compress, ServiceError> {
    let types: Vec<String> = match &c.types {
        Some(t) => t.clone(),
        None => DEFAULT_COMPRESS_TYPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    too_many("compress.types", types.len(), MAX_LIST)?;
    let mut lower = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let t = t.trim().to_ascii_lowercase();
        let ok = t.split_once('/').is_some_and(|(a, b)| {
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            };
            token(a) && (b == "*" || token(b))
        });
        if !ok {
            return Err(ServiceError::new(
                format!("compress.types[{i}]"),
                format!("expected a media type such as text/html or text/*, got {t:?}"),
            ));
        }
        lower.push(t);
    }
    let algorithms = match &c.algorithms {
        None => vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip],
        Some(list) => {
            if list.is_empty() {
                return Err(ServiceError::new(
                    "compress.algorithms",
                    "at least one of br, zstd, gzip (or leave compress out)",
                ));
            }
            let mut out = Vec::new();
            for (i, a) in list.iter().enumerate() {
                let e = Encoding::from_token(a).ok_or_else(|| {
                    ServiceError::new(
                        format!("compress.algorithms[{i}]"),
                        format!("expected br, zstd or gzip, got {a:?}"),
                    )
                })?;
                if !out.contains(&e) {
                    out.push(e);
                }
            }
            out
        }
    };
    Ok(Compress {
        types: lower,
        min_size: c.min_size.unwrap_or(1024),
        algorithms,
    })
}

fn access(a: &AccessSpec) -> Result<Access, ServiceError> {
    let ranges = |key: &str, list: &[String]| -> Result<Vec<Cidr>, ServiceError> {
        too_many(key, list.len(), MAX_LIST)?;
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<Cidr>()
                    .map_err(|e| ServiceError::new(format!("{key}[{i}]"), e.to_string()))
            })
            .collect()
    };
    let allow = ranges("access.allow", &a.allow)?;
    let deny = ranges("access.deny", &a.deny)?;
    let methods = if a.methods.is_empty() {
        None
    } else {
        too_many("access.methods", a.methods.len(), MAX_LIST)?;
        let mut out = Vec::new();
        for (i, m) in a.methods.iter().enumerate() {
            let ok = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase());
            let method = Method::from_bytes(m.as_bytes())
                .ok()
                .filter(|_| ok)
                .ok_or_else(|| {
                    ServiceError::new(
                        format!("access.methods[{i}]"),
                        format!("expected an uppercase method name such as GET, got {m:?}"),
                    )
                })?;
            out.push(method);
        }
        Some(out)
    };
    Ok(Access {
        allow,
        deny,
        methods,
    })
}

fn rate_limit(r: &RateLimitSpec) -> Result<RateLimit, ServiceError> {
    let bad = || {
        ServiceError::new(
            "rate_limit.per_ip",
            format!(
                "expected N/s, N/min or N/h with N from 1 to 1000000, got {:?}",
                r.per_ip
            ),
        )
    };
    let (n, unit) = r.per_ip.split_once('/').ok_or_else(bad)?;
    let count: u32 = n.trim().parse().map_err(|_| bad())?;
    if !(1..=1_000_000).contains(&count) {
        return Err(bad());
    }
    let period = match unit.trim() {
        "s" | "sec" => Duration::from_secs(1),
        "m" | "min" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    let per_second = (f64::from(count) / period.as_secs_f64()).ceil();
    let burst = match r.burst {
        Some(0) => {
            return Err(ServiceError::new("rate_limit.burst", "must be at least 1"));
        }
        Some(b) if b > 1_000_000 => {
            return Err(ServiceError::new(
                "rate_limit.burst",
                "must be at most 1000000",
            ));
        }
        Some(b) => b,
        // One second's worth.
        None => (per_second as u32).max(1),
    };
    Ok(RateLimit {
        count,
        period,
        burst,
    })
}

fn ttl(t: &TtlSpec) -> Result<Ttl, ServiceError> {
    let default = t
        .default
        .as_deref()
        .map(|d| duration("ttl.default", d))
        .transpose()?;
    let max = t
        .max
        .as_deref()
        .map(|d| duration("ttl.max", d))
        .transpose()?;
    if let (Some(d), Some(m)) = (default, max)
        && d > m
    {
        return Err(ServiceError::new("ttl.default", "must not exceed ttl.max"));
    }
    Ok(Ttl { default, max })
}

fn key(k: &KeySpec) -> Result<KeyConfig, ServiceError> {
    let names = |key: &str, list: &[String]| -> Result<Vec<String>, ServiceError> {
        too_many(key, list.len(), MAX_LIST)?;
        for (i, n) in list.iter().enumerate() {
            if n.is_empty() || n.contains(['&', '=', '#']) {
                return Err(ServiceError::new(
                    format!("{key}[{i}]"),
                    format!("expected a query parameter name, got {n:?}"),
                ));
            }
        }
        Ok(list.to_vec())
    };
    let query = match &k.query {
        None => QueryKey::Keep,
        Some(QuerySpec::Word(w)) => match w.as_str() {
            "keep" => QueryKey::Keep,
            "drop" => QueryKey::Drop,
            "sort" => QueryKey::Sort,
            other => {
                return Err(ServiceError::new(
                    "key.query",
                    format!(
                        "expected keep, drop, sort, {{allow = [..]}} or {{deny = [..]}}, got {other:?}"
                    ),
                ));
            }
        },
        Some(QuerySpec::Lists(l)) => match (&l.allow, &l.deny) {
            (Some(a), None) => QueryKey::Allow(names("key.query.allow", a)?),
            (None, Some(d)) => QueryKey::Deny(names("key.query.deny", d)?),
            _ => {
                return Err(ServiceError::new(
                    "key.query",
                    "give exactly one of allow or deny",
                ));
            }
        },
    };
    too_many("key.headers", k.headers.len(), 16)?;
    let mut headers = Vec::new();
    for (i, h) in k.headers.iter().enumerate() {
        let name = HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
            ServiceError::new(
                format!("key.headers[{i}]"),
                format!("not a field name: {h:?}"),
            )
        })?;
        if !headers.contains(&name) {
            headers.push(name);
        }
    }
    Ok(KeyConfig { query, headers })
}

/// Fields a header rule may not touch: they frame the message or carry the cache's own
/// protocol, and changing them would break the exchange rather than shape it.
/// Loop detection and forwarding fields are the tiers' own: a rule removing `cdn-loop` would
/// let a service whose origin points back at the CDN loop for ever.
const PROTECTED: [&str; 15] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "keep-alive",
    "proxy-connection",
    "trailer",
    "cdn-loop",
    "via",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

fn header_rules(prefix: &str, spec: Option<&HeaderRulesSpec>) -> Result<HeaderRules, ServiceError> {
    let Some(spec) = spec else {
        return Ok(HeaderRules::default());
    };
    too_many(&format!("{prefix}.set"), spec.set.len(), MAX_LIST)?;
    too_many(&format!("{prefix}.remove"), spec.remove.len(), MAX_LIST)?;
    let name = |key: String, n: &str| -> Result<HeaderName, ServiceError> {
        let name = HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| ServiceError::new(&key, format!("not a field name: {n:?}")))?;
        if PROTECTED.contains(&name.as_str()) {
            return Err(ServiceError::new(
                key,
                format!(
                    "{n:?} frames the message or carries the tiers' own data and cannot be set or removed"
                ),
            ));
        }
        Ok(name)
    };
    let mut set = Vec::with_capacity(spec.set.len());
    for (n, v) in &spec.set {
        let key = format!("{prefix}.set.{n}");
        let header = name(key.clone(), n)?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| ServiceError::new(key, "not a valid field value (control characters?)"))?;
        set.push((header, value));
    }
    let mut remove = Vec::with_capacity(spec.remove.len());
    for (i, n) in spec.remove.iter().enumerate() {
        remove.push(name(format!("{prefix}.remove[{i}]"), n)?);
    }
    Ok(HeaderRules { set, remove })
}
