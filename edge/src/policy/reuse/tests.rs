use super::*;
use crate::policy::testutil::{at, headers, s};
use http::StatusCode;
use proptest::prelude::*;

use Reuse::{Fresh, StaleAccepted, StaleWhileRevalidate};
use RevalidateReason::{
    ForcedStale, RequestMaxAge, RequestMinFresh, RequestNoCache, ResponseNoCache, Stale,
};

fn reval(r: RevalidateReason) -> Reuse {
    Reuse::Revalidate(r)
}
fn fresh(ttl: u64) -> Reuse {
    Fresh { ttl: s(ttl) }
}

/// The stored response's Cache-Control, the request's Cache-Control (or Pragma), the age in
/// seconds at decision time, whether soft-purged.
struct Case {
    resp: &'static str,
    req: &'static [(&'static str, &'static str)],
    age: u64,
    forced: bool,
}

fn decide(c: &Case, cfg: &PolicyConfig) -> Reuse {
    let stored =
        StoredPolicy::from_response(StatusCode::OK, &headers(&[("cache-control", c.resp)]), cfg);
    let clock = AgeClock::new(&headers(&[]), at(0), at(0));
    let req = RequestDirectives::parse(&headers(c.req));
    reuse(&stored, &clock, &req, at(c.age as i64), c.forced, cfg)
}

/// `t!(resp, [req headers], age, forced => expected)`
macro_rules! table {
    ($cfg:expr; $( $resp:literal, [$($h:expr),*], $age:expr, $forced:expr => $want:expr; )*) => {{
        let cfg = $cfg;
        let mut n = 0;
        $(
            let c = Case { resp: $resp, req: &[$($h),*], age: $age, forced: $forced };
            assert_eq!(decide(&c, &cfg), $want, "resp {:?} req {:?} age {} forced {}", c.resp, c.req, c.age, c.forced);
            n += 1;
        )*
        n
    }};
}

const NC: (&str, &str) = ("cache-control", "no-cache");

#[test]
fn reuse_table() {
    let n = table! { PolicyConfig::default();
        // Plain freshness (§4.2).
        "max-age=60", [], 0, false => fresh(60);
        "max-age=60", [], 59, false => fresh(1);
        "max-age=60", [], 60, false => reval(Stale);
        "max-age=60", [], 61, false => reval(Stale);
        "max-age=0", [], 0, false => reval(Stale);
        "max-age=x", [], 0, false => reval(Stale);
        // Response no-cache (§5.2.2.4) beats everything, even freshness and max-stale.
        "max-age=60, no-cache", [], 0, false => reval(ResponseNoCache);
        "max-age=60, no-cache", [("cache-control", "max-stale")], 100, false => reval(ResponseNoCache);
        "max-age=60, no-cache, stale-while-revalidate=100", [], 70, false => reval(ResponseNoCache);
        "max-age=60, no-cache=\"set-cookie\"", [], 0, false => fresh(60);
        // Request no-cache (§5.2.1.4), Pragma (RFC 7234 §5.4).
        "max-age=60", [NC], 0, false => reval(RequestNoCache);
        "max-age=60", [("pragma", "no-cache")], 0, false => reval(RequestNoCache);
        "max-age=60", [("pragma", "no-cache"), ("cache-control", "max-stale")], 0, false => fresh(60);
        "max-age=60, stale-while-revalidate=100", [NC], 70, false => reval(RequestNoCache);
        "max-age=60, immutable", [NC], 0, false => reval(RequestNoCache);
        // Request max-age (§5.2.1.1).
        "max-age=60", [("cache-control", "max-age=0")], 0, false => reval(RequestMaxAge);
        "max-age=60", [("cache-control", "max-age=0")], 10, false => reval(RequestMaxAge);
        "max-age=60", [("cache-control", "max-age=10")], 10, false => fresh(50);
        "max-age=60", [("cache-control", "max-age=10")], 11, false => reval(RequestMaxAge);
        "max-age=60", [("cache-control", "max-age=100")], 30, false => fresh(30);
        "max-age=60", [("cache-control", "max-age=100")], 70, false => reval(Stale);
        "max-age=60", [("cache-control", "max-age=100, max-stale")], 70, false => StaleAccepted;
        "max-age=60", [("cache-control", "max-age=65, max-stale")], 70, false => reval(RequestMaxAge);
        "max-age=60, stale-while-revalidate=30", [("cache-control", "max-age=5")], 70, false => reval(RequestMaxAge);
        "max-age=60, stale-while-revalidate=30", [("cache-control", "max-age=100")], 70, false => StaleWhileRevalidate;
        // Request min-fresh (§5.2.1.3).
        "max-age=60", [("cache-control", "min-fresh=10")], 50, false => fresh(10);
        "max-age=60", [("cache-control", "min-fresh=10")], 51, false => reval(RequestMinFresh);
        "max-age=60", [("cache-control", "min-fresh=100")], 0, false => reval(RequestMinFresh);
        "max-age=60", [("cache-control", "min-fresh=1, max-stale")], 70, false => reval(Stale);
        "max-age=60, stale-while-revalidate=30", [("cache-control", "min-fresh=1")], 70, false => reval(Stale);
        // max-stale (§5.2.1.2).
        "max-age=60", [("cache-control", "max-stale")], 1_000_000, false => StaleAccepted;
        "max-age=60", [("cache-control", "max-stale=10")], 70, false => StaleAccepted;
        "max-age=60", [("cache-control", "max-stale=10")], 71, false => reval(Stale);
        "max-age=60", [("cache-control", "max-stale=10")], 30, false => fresh(30);
        "max-age=60", [("cache-control", "max-stale=x")], 70, false => reval(Stale);
        "max-age=60, must-revalidate", [("cache-control", "max-stale")], 70, false => reval(Stale);
        "max-age=60, proxy-revalidate", [("cache-control", "max-stale")], 70, false => reval(Stale);
        "s-maxage=60", [("cache-control", "max-stale")], 70, false => reval(Stale);
        "max-age=60, stale-while-revalidate=5", [("cache-control", "max-stale=100")], 90, false => StaleAccepted;
        // stale-while-revalidate (RFC 5861 §3).
        "max-age=60, stale-while-revalidate=30", [], 60, false => StaleWhileRevalidate;
        "max-age=60, stale-while-revalidate=30", [], 90, false => StaleWhileRevalidate;
        "max-age=60, stale-while-revalidate=30", [], 91, false => reval(Stale);
        "max-age=0, stale-while-revalidate=30", [], 10, false => StaleWhileRevalidate;
        "max-age=60, stale-while-revalidate=30, must-revalidate", [], 70, false => reval(Stale);
        "s-maxage=60, stale-while-revalidate=30", [], 70, false => reval(Stale);
        "max-age=60, stale-if-error=30", [], 70, false => reval(Stale);
        // Soft purge (force_stale).
        "max-age=60", [], 0, true => reval(ForcedStale);
        "max-age=60", [], 70, true => reval(Stale);
        "max-age=60", [("cache-control", "max-stale")], 0, true => reval(ForcedStale);
        "max-age=60", [("cache-control", "max-stale")], 70, true => reval(Stale);
        "max-age=60, stale-while-revalidate=30", [], 0, true => StaleWhileRevalidate;
        "max-age=60, stale-while-revalidate=30", [], 80, true => StaleWhileRevalidate;
        "max-age=60, stale-while-revalidate=30", [], 100, true => reval(Stale);
        "max-age=60, stale-while-revalidate=30, must-revalidate", [], 0, true => reval(ForcedStale);
        "max-age=60, no-cache", [], 0, true => reval(ResponseNoCache);
        "max-age=60", [NC], 0, true => reval(RequestNoCache);
        // Targeted fields reach reuse through the stored policy.
        "max-age=60, immutable", [], 10, false => fresh(50);
    };
    assert!(n >= 55, "{n} rows");
}

#[test]
fn honor_request_no_cache_off() {
    let cfg = PolicyConfig {
        honor_request_no_cache: false,
        ..Default::default()
    };
    table! { cfg;
        "max-age=60", [NC], 0, false => fresh(60);
        "max-age=60", [("pragma", "no-cache")], 0, false => fresh(60);
        "max-age=60", [("cache-control", "max-age=0")], 10, false => fresh(50);
        "max-age=60", [("cache-control", "min-fresh=100")], 10, false => fresh(50);
        "max-age=60", [NC], 70, false => reval(Stale);
        "max-age=60", [("cache-control", "no-cache, max-stale")], 70, false => StaleAccepted;
        "max-age=60, no-cache", [], 0, false => reval(ResponseNoCache);
        "max-age=60, stale-while-revalidate=30", [NC], 70, false => StaleWhileRevalidate;
    };
}

#[test]
fn age_header_and_date_count() {
    let cfg = PolicyConfig::default();
    let stored = StoredPolicy::from_response(
        StatusCode::OK,
        &headers(&[("cache-control", "max-age=60")]),
        &cfg,
    );
    let clock = AgeClock::new(&headers(&[("age", "50")]), at(0), at(0));
    let req = RequestDirectives::default();
    assert_eq!(reuse(&stored, &clock, &req, at(5), false, &cfg), fresh(5));
    assert_eq!(
        reuse(&stored, &clock, &req, at(10), false, &cfg),
        reval(Stale)
    );
}

#[test]
fn sub_second_ttl() {
    let cfg = PolicyConfig::default();
    let stored = StoredPolicy::from_response(
        StatusCode::OK,
        &headers(&[("cache-control", "max-age=60")]),
        &cfg,
    );
    let clock = AgeClock::new(&headers(&[]), at(0), at(0));
    let now = at(59) + Duration::from_millis(500);
    let req = RequestDirectives::default();
    assert_eq!(
        reuse(&stored, &clock, &req, now, false, &cfg),
        Fresh {
            ttl: Duration::from_millis(500)
        }
    );
    assert_eq!(ttl_seconds(&stored, &clock, now), 0);
    // Request max-age compares exactly: 10.5 s is older than 10 s.
    let req = RequestDirectives::parse(&headers(&[("cache-control", "max-age=10")]));
    let now = at(10) + Duration::from_millis(500);
    assert_eq!(
        reuse(&stored, &clock, &req, now, false, &cfg),
        reval(RequestMaxAge)
    );
}

/// (response Cache-Control, request Cache-Control, age, forced) → stale-if-error allows?
#[test]
fn stale_if_error_table() {
    let cfg = PolicyConfig::default();
    let cases: &[(&str, &str, u64, bool, bool)] = &[
        ("max-age=60, stale-if-error=30", "", 70, false, true),
        ("max-age=60, stale-if-error=30", "", 90, false, true),
        ("max-age=60, stale-if-error=30", "", 91, false, false),
        ("max-age=60", "", 70, false, false),
        ("max-age=60", "stale-if-error=10", 70, false, true),
        ("max-age=60", "stale-if-error=10", 71, false, false),
        (
            "max-age=60, stale-if-error=5",
            "stale-if-error=20",
            75,
            false,
            true,
        ),
        (
            "max-age=60, stale-if-error=20",
            "stale-if-error=5",
            75,
            false,
            true,
        ),
        (
            "max-age=60, stale-if-error=30, must-revalidate",
            "",
            70,
            false,
            false,
        ),
        (
            "max-age=60, stale-if-error=30, proxy-revalidate",
            "",
            70,
            false,
            false,
        ),
        ("s-maxage=60, stale-if-error=30", "", 70, false, false),
        (
            "max-age=60, must-revalidate",
            "stale-if-error=100",
            70,
            false,
            false,
        ),
        // Still fresh: revalidation was the client's wish.
        ("max-age=60", "", 30, false, true),
        ("max-age=60, must-revalidate", "", 30, false, false),
        // Soft purge.
        ("max-age=60", "", 0, true, true),
        ("max-age=60", "", 1_000_000, true, true),
        ("max-age=60, must-revalidate", "", 0, true, false),
        // no-cache needs an explicit permission.
        ("max-age=60, no-cache", "", 0, false, false),
        ("max-age=60, no-cache", "", 0, true, false),
        (
            "max-age=60, no-cache, stale-if-error=10",
            "",
            0,
            false,
            true,
        ),
        (
            "max-age=60, no-cache, stale-if-error=10",
            "",
            70,
            false,
            true,
        ),
        (
            "max-age=60, no-cache, stale-if-error=10",
            "",
            71,
            false,
            false,
        ),
        ("no-cache", "stale-if-error=10", 5, false, true),
        ("max-age=60, no-cache", "stale-if-error=10", 0, true, true),
        // Heuristic freshness gives no permission once stale.
        ("", "", 10, false, false),
    ];
    for &(resp, req, age, forced, want) in cases {
        let stored =
            StoredPolicy::from_response(StatusCode::OK, &headers(&[("cache-control", resp)]), &cfg);
        let clock = AgeClock::new(&headers(&[]), at(0), at(0));
        let req_d = RequestDirectives::parse(&headers(&[("cache-control", req)]));
        assert_eq!(
            stale_if_error_allows(&stored, &clock, &req_d, at(age as i64), forced),
            want,
            "resp {resp:?} req {req:?} age {age} forced {forced}"
        );
    }
}

#[test]
fn ttl_seconds_table() {
    let cfg = PolicyConfig::default();
    let stored = StoredPolicy::from_response(
        StatusCode::OK,
        &headers(&[("cache-control", "max-age=60")]),
        &cfg,
    );
    let clock = AgeClock::new(&headers(&[]), at(0), at(0));
    for (now_ms, want) in [
        (0i64, 60i64),
        (1, 59),
        (999, 59),
        (1000, 59),
        (59_999, 0),
        (60_000, 0),
        (60_001, -1),
        (61_000, -1),
        (61_001, -2),
        (3_600_000, -3540),
    ] {
        let now = at(0) + Duration::from_millis(now_ms as u64);
        assert_eq!(ttl_seconds(&stored, &clock, now), want, "{now_ms} ms");
    }
}

#[test]
fn reasons_render() {
    for (r, text) in [
        (Stale, "stale"),
        (ResponseNoCache, "response-no-cache"),
        (RequestNoCache, "request-no-cache"),
        (RequestMaxAge, "request-max-age"),
        (RequestMinFresh, "request-min-fresh"),
        (ForcedStale, "soft-purged"),
    ] {
        assert_eq!(r.as_str(), text);
    }
}

fn policy() -> impl Strategy<Value = StoredPolicy> {
    (
        0u64..1000,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0u64..1000),
        proptest::option::of(0u64..1000),
    )
        .prop_map(|(l, nc, mr, swr, sie)| StoredPolicy {
            freshness_lifetime: s(l),
            heuristic: false,
            no_cache: nc,
            no_cache_fields: vec![],
            must_revalidate: mr,
            stale_while_revalidate: swr.map(s),
            stale_if_error: sie.map(s),
            immutable: false,
        })
}

fn request() -> impl Strategy<Value = RequestDirectives> {
    (
        proptest::option::of(0u64..1000),
        proptest::option::of(proptest::option::of(0u64..1000)),
        proptest::option::of(0u64..1000),
        any::<bool>(),
    )
        .prop_map(|(ma, ms, mf, nc)| RequestDirectives {
            max_age: ma.map(s),
            max_stale: ms.map(|v| v.map_or(MaxStale::Any, |v| MaxStale::Limit(s(v)))),
            min_fresh: mf.map(s),
            no_cache: nc,
            ..Default::default()
        })
}

proptest! {
    /// Invariants that must hold for every combination.
    #[test]
    fn invariants(p in policy(), r in request(), age in 0u64..3000, forced in any::<bool>()) {
        let cfg = PolicyConfig::default();
        let clock = AgeClock::new(&headers(&[]), at(0), at(0));
        let now = at(age as i64);
        let d = reuse(&p, &clock, &r, now, forced, &cfg);
        let stale = p.freshness_lifetime <= s(age) || forced;
        match d {
            Fresh { ttl } => {
                prop_assert!(!stale && !p.no_cache && !r.no_cache);
                prop_assert_eq!(ttl, p.freshness_lifetime - s(age));
            }
            StaleAccepted => {
                prop_assert!(stale && !p.must_revalidate && !p.no_cache && !forced && r.max_stale.is_some());
            }
            StaleWhileRevalidate => {
                prop_assert!(stale && !p.must_revalidate && !p.no_cache && !r.no_cache && p.stale_while_revalidate.is_some());
            }
            Reuse::Revalidate(_) => {}
        }
        if p.must_revalidate && stale {
            prop_assert!(!stale_if_error_allows(&p, &clock, &r, now, forced));
            prop_assert!(matches!(d, Reuse::Revalidate(_)));
        }
        prop_assert_eq!(ttl_seconds(&p, &clock, now), p.freshness_lifetime.as_secs() as i64 - age as i64);
    }
}
