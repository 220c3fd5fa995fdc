//! Criterion micro-benchmarks of the pure functions every cache hit runs through: URL
//! normalisation and key derivation, the RFC 9111 reuse decision, conditional-request
//! evaluation and the `Cache-Status` member. They are small on purpose: a regression here shows
//! up in every request, and the numbers say how much of a hit's budget the policy costs.
//!
//! Run with `cargo bench -p tiercel-benches --bench hot_path`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, DATE, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tiercel_cluster::urlnorm::{Scheme, normalize};
use tiercel_edge::key::{KeyRules, QueryRule, derive_key};
use tiercel_edge::policy::{
    AgeClock, PolicyConfig, RequestDirectives, Storability, reuse, storability,
};
use tiercel_edge::protocol::{CacheStatus, append_cache_status, evaluate_preconditions};

/// A typical client request for a hot object.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("cdn.example.com"));
    h.insert(
        "user-agent",
        HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64)"),
    );
    h.insert("accept", HeaderValue::from_static("*/*"));
    h.insert("accept-encoding", HeaderValue::from_static("gzip, br"));
    h
}

/// A typical cacheable origin response, stored at `at`.
fn response_headers(at: SystemTime) -> HeaderMap {
    let mut h = HeaderMap::new();
    let date = HeaderValue::from_str(&httpdate::fmt_http_date(at))
        .unwrap_or(HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
    h.insert(DATE, date.clone());
    h.insert(LAST_MODIFIED, date);
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600, stale-while-revalidate=60"),
    );
    h.insert(ETAG, HeaderValue::from_static("\"v1-5f3a9c\""));
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("1024"));
    h.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    h
}

fn key(c: &mut Criterion) {
    let rules = KeyRules::default();
    let sorted = KeyRules {
        query: QueryRule::Sort,
        ..KeyRules::default()
    };
    let target = "/static/js/app.3f2a9c.js?v=12&lang=en";
    c.bench_function("key/normalize+derive_key", |b| {
        b.iter(|| {
            let url = normalize(
                Scheme::Https,
                black_box("cdn.example.com"),
                black_box(target),
            );
            url.map(|u| derive_key("site", Scheme::Https, &u, &rules))
        })
    });
    if let Ok(url) = normalize(Scheme::Https, "cdn.example.com", target) {
        c.bench_function("key/derive_key", |b| {
            b.iter(|| derive_key(black_box("site"), Scheme::Https, black_box(&url), &rules))
        });
        c.bench_function("key/derive_key_sorted_query", |b| {
            b.iter(|| derive_key(black_box("site"), Scheme::Https, black_box(&url), &sorted))
        });
    }
}

fn policy(c: &mut Criterion) {
    let cfg = PolicyConfig::default();
    let stored_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let req = request_headers();
    let resp = response_headers(stored_at);
    c.bench_function("policy/request_directives_parse", |b| {
        b.iter(|| RequestDirectives::parse(black_box(&req)))
    });
    c.bench_function("policy/storability", |b| {
        b.iter(|| {
            storability(
                &Method::GET,
                black_box(&req),
                StatusCode::OK,
                black_box(&resp),
                &cfg,
            )
        })
    });
    let Storability::Store(plan) = storability(&Method::GET, &req, StatusCode::OK, &resp, &cfg)
    else {
        return;
    };
    let clock = AgeClock::new(&resp, stored_at, stored_at);
    let directives = RequestDirectives::parse(&req);
    let now = stored_at + Duration::from_secs(600);
    c.bench_function("policy/reuse_fresh_hit", |b| {
        b.iter(|| {
            reuse(
                black_box(&plan.policy),
                black_box(&clock),
                black_box(&directives),
                black_box(now),
                false,
                &cfg,
            )
        })
    });
    c.bench_function("policy/age_header_value", |b| {
        b.iter(|| clock.age_header_value(black_box(now)))
    });
}

fn protocol(c: &mut Criterion) {
    let resp = response_headers(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let plain = request_headers();
    let mut conditional = request_headers();
    conditional.insert(
        IF_NONE_MATCH,
        HeaderValue::from_static("\"v0-000000\", \"v1-5f3a9c\""),
    );
    c.bench_function("protocol/evaluate_preconditions_none", |b| {
        b.iter(|| evaluate_preconditions(&Method::GET, black_box(&plain), StatusCode::OK, &resp))
    });
    c.bench_function("protocol/evaluate_preconditions_if_none_match", |b| {
        b.iter(|| {
            evaluate_preconditions(&Method::GET, black_box(&conditional), StatusCode::OK, &resp)
        })
    });
    let hit = CacheStatus {
        hit: true,
        ttl: Some(3000),
        ..CacheStatus::new("tiercel-edge")
    };
    let shield = HeaderValue::from_static("tiercel-shield; hit; ttl=3010");
    c.bench_function("protocol/cache_status_hit", |b| {
        b.iter(|| append_cache_status(None, black_box(&hit)))
    });
    c.bench_function("protocol/cache_status_after_shield", |b| {
        b.iter(|| append_cache_status(Some(black_box(&shield)), black_box(&hit)))
    });
}

criterion_group!(benches, key, policy, protocol);
criterion_main!(benches);
