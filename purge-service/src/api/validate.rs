//! Validation and normalisation of what clients send. Pure: values in, values or one-line
//! reasons out, naming the offending field and item.

use std::net::SocketAddr;

use tiercel_cluster::purge::wire::{MemberAdd, PurgeRequest, TokenCreate};
use tiercel_cluster::urlnorm::{normalize_host, parse_absolute};

/// Most targets one purge request may name (all lists together).
pub const MAX_TARGETS: usize = 1000;
/// Longest URL, prefix, tag or host accepted.
pub const MAX_ITEM_BYTES: usize = 4096;
/// Largest API request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest token lifetime: ten years.
pub const MAX_TTL_SECS: u64 = 10 * 366 * 24 * 3600;
/// Deepest nesting of a service document. The log stores it inside a few more levels, and
/// serde_json reads back at most 128, so anything accepted here can always be read back.
pub const MAX_DOC_DEPTH: usize = 32;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Why a request was refused: the status to answer and one line naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Malformed or inconsistent content (400).
    #[error("{0}")]
    Bad(String),
    /// More than the service accepts (413).
    #[error("{0}")]
    TooLarge(String),
}

/// Checks a purge and returns it with every URL, prefix and host in normal form.
pub fn purge(req: PurgeRequest) -> Result<PurgeRequest, Invalid> {
    let total = req.urls.len() + req.prefixes.len() + req.tags.len() + req.hosts.len();
    if total > MAX_TARGETS {
        return Err(Invalid::TooLarge(format!(
            "a purge names at most {MAX_TARGETS} targets, this one names {total}"
        )));
    }
    if total == 0 && !req.all {
        return Err(Invalid::Bad(
            "nothing to purge: give urls, prefixes, tags or hosts, or set all".into(),
        ));
    }
    let urls = absolute_urls("urls", &req.urls)?;
    let prefixes = absolute_urls("prefixes", &req.prefixes)?;
    let mut tags = Vec::with_capacity(req.tags.len());
    for (i, tag) in req.tags.iter().enumerate() {
        check_len("tags", i, tag)?;
        if tag.is_empty() {
            return Err(Invalid::Bad(format!("tags[{i}]: tag is empty")));
        }
        if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid::Bad(format!(
                "tags[{i}]: tag contains whitespace or control characters"
            )));
        }
        tags.push(tag.clone());
    }
    let mut hosts = Vec::with_capacity(req.hosts.len());
    for (i, host) in req.hosts.iter().enumerate() {
        check_len("hosts", i, host)?;
        let h = normalize_host(host).map_err(|e| Invalid::Bad(format!("hosts[{i}]: {e}")))?;
        hosts.push(h);
    }
    if let Some(name) = &req.service {
        tiercel_cluster::service::check_name(name)
            .map_err(|e| Invalid::Bad(format!("service: {}", e.reason)))?;
    }
    Ok(PurgeRequest {
        urls,
        prefixes,
        tags,
        hosts,
        all: req.all,
        soft: req.soft,
        service: req.service,
    })
}

fn check_len(field: &str, i: usize, s: &str) -> Result<(), Invalid> {
    if s.len() > MAX_ITEM_BYTES {
        return Err(Invalid::TooLarge(format!(
            "{field}[{i}]: longer than {MAX_ITEM_BYTES} bytes"
        )));
    }
    Ok(())
}

fn absolute_urls(field: &str, items: &[String]) -> Result<Vec<String>, Invalid> {
    let mut out = Vec::with_capacity(items.len());
    for (i, u) in items.iter().enumerate() {
        check_len(field, i, u)?;
        let (scheme, n) =
            parse_absolute(u).map_err(|e| Invalid::Bad(format!("{field}[{i}]: {e}")))?;
        let normal = format!("{}://{}{}", scheme.as_str(), n.host, n.path_and_query);
        // Normalising can lengthen a URL (a stray `%` becomes `%25`): the limit holds for what
        // the log keeps, so an accepted purge is accepted again as it is stored.
        check_len(field, i, &normal)?;
        out.push(normal);
    }
    Ok(out)
}

/// Checks a service name: 1–128 of `[A-Za-z0-9._-]`, so it is safe in a URL path segment.
pub fn service_name(name: &str) -> Result<(), Invalid> {
    tiercel_cluster::service::check_name(name)
        .map_err(|e| Invalid::Bad(format!("service name {}", e.reason)))
}

/// Checks a service document the way every node will run it (the same code:
/// [`tiercel_cluster::service::from_json`]), so a definition nodes would refuse never enters
/// the log. The error names the key (`origins[1].weight: ...`).
pub fn service_doc(
    name: &str,
    doc: &serde_json::Value,
) -> Result<tiercel_cluster::service::Service, Invalid> {
    if depth(doc) > MAX_DOC_DEPTH {
        return Err(Invalid::Bad(format!(
            "service document nested deeper than {MAX_DOC_DEPTH} levels"
        )));
    }
    if !doc.is_object() {
        return Err(Invalid::Bad(
            "service document must be a JSON object".into(),
        ));
    }
    tiercel_cluster::service::from_json(name, doc).map_err(|e| Invalid::Bad(e.to_string()))
}

/// How deeply `v` nests arrays and objects (a scalar is 0). Iterative: a document parsed
/// from a request is at most serde_json's 128 levels, but this must not recurse on whatever
/// it is given.
pub fn depth(v: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Array(a) => Box::new(a.iter()),
            serde_json::Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// Checks a token creation request.
pub fn token_create(req: &TokenCreate) -> Result<(), Invalid> {
    if req.name.is_empty() || req.name.len() > 128 || req.name.chars().any(char::is_control) {
        return Err(Invalid::Bad(
            "name: must be 1-128 characters without control characters".into(),
        ));
    }
    if let Some(rate) = req.rate_per_sec
        && !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0)
    {
        return Err(Invalid::Bad(
            "rate_per_sec: must be a number above 0 and at most 1000000".into(),
        ));
    }
    if !req.services.is_empty() && req.scope != tiercel_cluster::purge::wire::TokenScope::Purge {
        return Err(Invalid::Bad(
            "services: only purge tokens are limited to services".into(),
        ));
    }
    if req.services.len() > 256 {
        return Err(Invalid::Bad("services: at most 256".into()));
    }
    for (i, name) in req.services.iter().enumerate() {
        tiercel_cluster::service::check_name(name)
            .map_err(|e| Invalid::Bad(format!("services[{i}]: {}", e.reason)))?;
    }
    if let Some(ttl) = req.ttl_secs
        && !(1..=MAX_TTL_SECS).contains(&ttl)
    {
        return Err(Invalid::Bad(format!(
            "ttl_secs: must be between 1 and {MAX_TTL_SECS} (ten years)"
        )));
    }
    Ok(())
}

/// Checks a membership addition: a non-zero id and an `ip:port` or `host:port` address.
pub fn member_add(req: &MemberAdd) -> Result<(), Invalid> {
    if req.id == 0 {
        return Err(Invalid::Bad("id: must be above 0".into()));
    }
    address(&req.addr).map_err(|e| Invalid::Bad(format!("addr: {e}")))
}

/// Checks a `host:port` address.
pub fn address(addr: &str) -> Result<(), String> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    match addr.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(format!("{addr:?} is not host:port")),
    }
}

/// Checks an `Idempotency-Key` header value: 1–255 visible ASCII characters.
pub fn idempotency_key(key: &str) -> Result<(), Invalid> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Invalid::Bad(format!(
            "Idempotency-Key: must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
