//! The rules a loaded configuration must satisfy beyond its types, checked once at start-up so
//! a node never runs half-configured. Each failure names the key and, when known, its source.

use std::net::SocketAddr;

use super::error::ConfigError;
use super::load::{Sources, source_of};
use super::schema::{NodeConfig, defaults};
use super::units::{ByteSize, format_duration};
use crate::secret::Secret;

/// What a bad upstream URL error says.
pub(crate) const URL_EXPECTED: &str = "expected http://host[:port] or https://host[:port]";

/// Smallest `limits.max_request_head` accepted: a request line and a Host field.
const MIN_REQUEST_HEAD: ByteSize = ByteSize::kib(1);

/// Reads `purge_token_file` into `purge_token`: secrets in files stay out of `ps` and of the
/// environment of child processes.
pub(crate) fn read_secret_files(
    cfg: &mut NodeConfig,
    sources: &Sources,
) -> Result<(), ConfigError> {
    if let Some(path) = &cfg.purge_token_file {
        let secret =
            Secret::from_file(path, "purge_token_file").map_err(|e| ConfigError::Invalid {
                key: "purge_token_file".to_owned(),
                from: source_of(sources, "purge_token_file").cloned(),
                message: e.reason,
            })?;
        cfg.purge_token = Some(secret.expose().to_owned());
    }
    Ok(())
}

/// Checks every rule; the first broken one is returned.
pub(crate) fn validate(cfg: &NodeConfig, sources: &Sources) -> Result<(), ConfigError> {
    let fail = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_owned(),
        from: source_of(sources, key).cloned(),
        message,
    };

    if !valid_name(&cfg.name) {
        return Err(fail(
            "name",
            format!(
                "expected 1 to 64 letters, digits, '.', '_', '-' or ':', got {:?}",
                cfg.name
            ),
        ));
    }

    if cfg.listen.is_none() && cfg.tls_listen.is_none() {
        return Err(fail(
            "listen",
            "nothing to serve: set listen and/or tls_listen".to_owned(),
        ));
    }
    let addrs: [(&str, Option<SocketAddr>); 3] = [
        ("listen", cfg.listen),
        ("tls_listen", cfg.tls_listen),
        ("admin_listen", cfg.admin_listen),
    ];
    for (i, (key, addr)) in addrs.iter().enumerate() {
        let Some(addr) = addr.filter(|a| a.port() != 0) else {
            continue;
        };
        if let Some((earlier, _)) = addrs[..i].iter().find(|(_, a)| *a == Some(addr)) {
            return Err(fail(key, format!("same address as {earlier} ({addr})")));
        }
    }

    const BOTH_OR_NEITHER: &str = "set both cert and key, or neither for a self-signed certificate";
    match (&cfg.cert, &cfg.key) {
        (Some(_), None) => return Err(fail("cert", format!("key is not set: {BOTH_OR_NEITHER}"))),
        (None, Some(_)) => return Err(fail("key", format!("cert is not set: {BOTH_OR_NEITHER}"))),
        _ => {}
    }

    if cfg.origin.as_deref().is_some_and(|o| !valid_base_url(o)) {
        return Err(fail("origin", URL_EXPECTED.to_owned()));
    }
    for (i, spec) in cfg.shields.iter().enumerate() {
        let url = crate::shield_select::parse_shield(spec)
            .map_err(|reason| fail(&format!("shields[{i}]"), reason))?
            .0;
        if !valid_base_url(&url) {
            return Err(fail(
                &format!("shields[{i}]"),
                format!("{URL_EXPECTED} (optionally #weight=W), got {spec:?}"),
            ));
        }
    }
    for (list, key) in [(&cfg.purge_services, "purge_services")] {
        for (i, url) in list.iter().enumerate() {
            if !valid_base_url(url) {
                return Err(fail(
                    &format!("{key}[{i}]"),
                    format!("{URL_EXPECTED}, got {url:?}"),
                ));
            }
        }
    }
    if !matches!(cfg.shield_protocol.as_str(), "h2" | "http/1.1") {
        return Err(fail(
            "shield_protocol",
            format!(
                "expected \"h2\" or \"http/1.1\", got {:?}",
                cfg.shield_protocol
            ),
        ));
    }
    if !matches!(cfg.origin_protocol.as_str(), "http/1.1" | "auto" | "h2") {
        return Err(fail(
            "origin_protocol",
            format!(
                "expected \"http/1.1\", \"auto\" or \"h2\", got {:?}",
                cfg.origin_protocol
            ),
        ));
    }
    if let Err((key, message)) = validate_origin_addresses(cfg) {
        return Err(fail(&key, message));
    }
    for (i, range) in cfg.trusted_forwarders.iter().enumerate() {
        if let Err(e) = range.parse::<crate::cidr::Cidr>() {
            return Err(fail(&format!("trusted_forwarders[{i}]"), e.to_string()));
        }
    }
    if let Some(t) = &cfg.purge_token
        && let Err(e) = Secret::new(t, "purge_token")
    {
        return Err(fail("purge_token", e.reason));
    }
    if cfg.purge_token.is_some() && cfg.purge_token_file.is_some() {
        return Err(fail(
            "purge_token_file",
            "give purge_token or purge_token_file, not both".to_owned(),
        ));
    }

    let quic = &cfg.quic;
    if !matches!(quic.congestion.as_str(), "cubic" | "new_reno" | "bbr") {
        return Err(fail(
            "quic.congestion",
            format!("must be cubic, new_reno or bbr, got {:?}", quic.congestion),
        ));
    }
    if !matches!(quic.address_validation.as_str(), "auto" | "always") {
        return Err(fail(
            "quic.address_validation",
            format!("must be auto or always, got {:?}", quic.address_validation),
        ));
    }
    if !(1200..=65527).contains(&quic.max_udp_payload) {
        return Err(fail(
            "quic.max_udp_payload",
            format!(
                "must be between 1200 and 65527, got {}",
                quic.max_udp_payload
            ),
        ));
    }
    if quic.max_concurrent_streams == 0 {
        return Err(fail(
            "quic.max_concurrent_streams",
            "must be at least 1".to_owned(),
        ));
    }
    for (key, size) in [
        ("quic.stream_receive_window", quic.stream_receive_window),
        ("quic.receive_window", quic.receive_window),
    ] {
        if size < ByteSize::kib(16) || size > ByteSize::gib(1) {
            return Err(fail(
                key,
                format!("must be between 16KiB and 1GiB, got {size}"),
            ));
        }
    }

    let chunk = cfg.cache.chunk_size;
    if chunk < defaults::MIN_CHUNK_SIZE || chunk > defaults::MAX_CHUNK_SIZE {
        return Err(fail(
            "cache.chunk_size",
            format!(
                "must be between {} and {}, got {chunk}",
                defaults::MIN_CHUNK_SIZE,
                defaults::MAX_CHUNK_SIZE
            ),
        ));
    }
    if cfg.memory_cache < chunk {
        return Err(fail(
            "memory_cache",
            format!(
                "must be at least cache.chunk_size ({chunk}), got {}",
                cfg.memory_cache
            ),
        ));
    }
    if cfg.disk_cache.is_some() && cfg.disk_cache_size < defaults::MIN_DISK_CACHE_SIZE {
        return Err(fail(
            "disk_cache_size",
            format!(
                "must be at least {} when disk_cache is set, got {}",
                defaults::MIN_DISK_CACHE_SIZE,
                cfg.disk_cache_size
            ),
        ));
    }
    let fraction = cfg.cache.heuristic_fraction;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(fail(
            "cache.heuristic_fraction",
            format!("must be between 0 and 1, got {fraction}"),
        ));
    }

    let t = &cfg.timeouts;
    for (key, value) in [
        ("timeouts.connect", t.connect),
        ("timeouts.first_byte", t.first_byte),
        ("timeouts.idle", t.idle),
        ("timeouts.client_header", t.client_header),
        ("timeouts.client_idle", t.client_idle),
        ("timeouts.client_body", t.client_body),
        ("cache.max_purge_lag", cfg.cache.max_purge_lag),
    ] {
        if value.is_zero() {
            return Err(fail(
                key,
                format!("must be more than {}", format_duration(value)),
            ));
        }
    }

    for (key, value) in [
        ("cache.max_vary_fields", cfg.cache.max_vary_fields),
        ("cache.max_variants", cfg.cache.max_variants),
    ] {
        if value == 0 {
            return Err(fail(key, "must be at least 1".to_owned()));
        }
    }
    if cfg.cache.max_variants > u32::MAX as usize {
        return Err(fail(
            "cache.max_variants",
            format!("must be at most {}", u32::MAX),
        ));
    }

    if cfg.cache.max_purge_rules == 0 {
        return Err(fail("cache.max_purge_rules", "must be at least 1".into()));
    }

    if cfg.worker_threads > defaults::MAX_WORKER_THREADS {
        return Err(fail(
            "worker_threads",
            format!(
                "must be at most {} (0 = one per core), got {}",
                defaults::MAX_WORKER_THREADS,
                cfg.worker_threads
            ),
        ));
    }

    let l = &cfg.limits;
    if l.max_request_head < MIN_REQUEST_HEAD {
        return Err(fail(
            "limits.max_request_head",
            format!(
                "must be at least {MIN_REQUEST_HEAD}, got {}",
                l.max_request_head
            ),
        ));
    }
    for (key, value) in [
        ("limits.max_headers", l.max_headers),
        ("limits.max_connections", l.max_connections),
        (
            "limits.max_fills_per_connection",
            l.max_fills_per_connection,
        ),
    ] {
        if value == 0 {
            return Err(fail(key, "must be at least 1".to_owned()));
        }
    }
    // The same checks as the purge-service's API, by the same code.
    crate::service::from_tables(&cfg.services).map_err(|e| ConfigError::Invalid {
        key: e.key,
        from: source_of(sources, "services").cloned(),
        message: e.reason,
    })?;
    Ok(())
}

/// A node name: it goes into `Cache-Status` (RFC 9211 cache identifier) and `Via`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// `http://host[:port]` or `https://host[:port]`, optionally with a trailing `/`; host is a
/// DNS name, an IPv4 address or a bracketed IPv6 address; no user info, path, query or fragment.
/// `origin_addresses`: each an IP or socket address, and only for an origin named by host name
/// (an IP literal is connected to as is); a port, when given, agrees with the URL's.
/// Errs with the key at fault and why.
fn validate_origin_addresses(cfg: &NodeConfig) -> Result<(), (String, String)> {
    let fail = |key: &str, message: String| (key.to_owned(), message);
    if cfg.origin_addresses.is_empty() {
        return Ok(());
    }
    let Some(origin) = cfg.origin.as_deref() else {
        return Err(fail(
            "origin_addresses",
            "set without an origin to reach".to_owned(),
        ));
    };
    let uri: Option<http::Uri> = origin.parse().ok();
    let host = uri.as_ref().and_then(|u| u.host()).unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Err(fail(
            "origin_addresses",
            format!("the origin {origin:?} is an address already; name it by host name"),
        ));
    }
    let url_port = uri.as_ref().and_then(|u| u.port_u16());
    for (i, spec) in cfg.origin_addresses.iter().enumerate() {
        let key = format!("origin_addresses[{i}]");
        let Some(addr) = origin_address(spec) else {
            return Err(fail(&key, format!("expected IP or IP:PORT, got {spec:?}")));
        };
        if let Some(p) = url_port
            && addr.port() != 0
            && addr.port() != p
        {
            return Err(fail(
                &key,
                format!("port {} disagrees with the origin's port {p}", addr.port()),
            ));
        }
    }
    Ok(())
}

/// An `origin_addresses` entry as a socket address, port 0 when it names none (the origin
/// URL's port, or its scheme's, then applies).
pub fn origin_address(spec: &str) -> Option<SocketAddr> {
    spec.parse::<SocketAddr>().ok().or_else(|| {
        spec.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 0))
    })
}

pub(crate) fn valid_base_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return false;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return false;
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => (inside, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (inside, Some(port)),
                None => return false,
            },
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let host_ok = authority.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }));
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let cases = [
            ("http://127.0.0.1:9000", true),
            ("https://origin.example.com", true),
            ("http://origin.example.com/", true),
            ("http://localhost:1", true),
            ("http://[::1]:8080", true),
            ("http://[::1]", true),
            ("http://my_host:80", true),
            ("https://a-b.c:65535", true),
            ("ftp://x", false),
            ("http://", false),
            ("http:///", false),
            ("127.0.0.1:9000", false),
            ("http://host:0", false),
            ("http://host:65536", false),
            ("http://host:", false),
            ("http://host:+80", false),
            ("http://host/path", false),
            ("http://host?q=1", false),
            ("http://host#f", false),
            ("http://user@host", false),
            ("http://ho st", false),
            ("http://a..b", false),
            ("http://[::1", false),
            ("http://[zz]:80", false),
            ("http://[::1]x", false),
            ("HTTP://host", false),
        ];
        for (url, ok) in cases {
            assert_eq!(valid_base_url(url), ok, "{url}");
        }
    }

    #[test]
    fn names() {
        for (name, ok) in [
            ("tiercel-edge", true),
            ("edge.fra_1:a", true),
            ("", false),
            ("a b", false),
            ("é", false),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
        ] {
            assert_eq!(valid_name(name), ok, "{name}");
        }
    }
}
