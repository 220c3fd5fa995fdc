//! `Cache-Control`, `CDN-Cache-Control`, `Surrogate-Control` and the fields freshness is
//! computed from, through the whole RFC 9111 policy the engine applies to a response.

use std::time::Duration;

use http::{HeaderMap, HeaderName, Method, StatusCode, header};
use tiercel_edge::policy::{
    AgeClock, CDN_CACHE_CONTROL, DirectiveSource, PolicyConfig, RequestDirectives,
    SURROGATE_CONTROL, StoredPolicy, effective_response_directives, reuse, sf, storability,
    ttl_seconds,
};

use crate::input::{headers, now, take};

const STATUSES: [u16; 9] = [200, 203, 204, 206, 301, 404, 410, 500, 503];

/// Properties: the policy is a function of its input (same answer twice); a targeted field is
/// only the source when present and, for `CDN-Cache-Control`, a valid Dictionary (RFC 9213
/// §2.2); the TTL never grows as time passes; nothing overflows.
pub fn check(data: &[u8]) {
    let (pick, rest) = take(data, 1);
    let status = STATUSES[usize::from(pick.first().copied().unwrap_or(0)) % STATUSES.len()];
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let (req_part, resp_part) = match rest.iter().position(|&b| b == 0xff) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&[][..], rest),
    };
    let names: [HeaderName; 9] = [
        header::CACHE_CONTROL,
        CDN_CACHE_CONTROL,
        SURROGATE_CONTROL,
        header::PRAGMA,
        header::EXPIRES,
        header::AGE,
        header::DATE,
        header::LAST_MODIFIED,
        header::VARY,
    ];
    let resp = headers(resp_part, &names);
    let req = headers(req_part, &[header::CACHE_CONTROL, header::PRAGMA]);
    let cfg = PolicyConfig::default();

    let (directives, source) = effective_response_directives(&resp, &cfg);
    assert_eq!(
        effective_response_directives(&resp, &cfg),
        (directives, source.clone())
    );
    if let DirectiveSource::Targeted(name) = &source {
        assert!(resp.contains_key(name), "{name} is the source but absent");
        if *name == CDN_CACHE_CONTROL {
            assert!(
                sf::parse_dictionary(&joined(&resp, name)).is_ok(),
                "an invalid CDN-Cache-Control was used"
            );
        }
    }

    let request = RequestDirectives::parse(&req);
    let _ = storability(&Method::GET, &req, status, &resp, &cfg);
    let t0 = now();
    let stored = StoredPolicy::from_response_at(status, &resp, t0, &cfg);
    let clock = AgeClock::new(&resp, t0 - Duration::from_secs(1), t0);
    let mut last_ttl = i64::MAX;
    for later in [0u64, 1, 3600, 86_400 * 365 * 30] {
        let at = t0 + Duration::from_secs(later);
        let _ = reuse(&stored, &clock, &request, at, false, &cfg);
        let ttl = ttl_seconds(&stored, &clock, at);
        assert!(ttl <= last_ttl, "ttl grew from {last_ttl} to {ttl}");
        last_ttl = ttl;
        let _ = clock.age_header_value(at);
    }
}

fn joined(h: &HeaderMap, name: &HeaderName) -> Vec<u8> {
    h.get_all(name)
        .iter()
        .map(|v| v.as_bytes())
        .collect::<Vec<_>>()
        .join(&b", "[..])
}
