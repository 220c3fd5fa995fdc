use super::*;
use crate::policy::testutil::{at, date, headers, s};

/// One row: status, response headers (with `$D(n)` for `date(n)`), then the expected
/// (freshness_lifetime secs, heuristic).
struct Row {
    name: &'static str,
    status: u16,
    headers: Vec<(&'static str, String)>,
    lifetime: u64,
    heuristic: bool,
}

fn row(
    name: &'static str,
    status: u16,
    h: &[(&'static str, &str)],
    lifetime: u64,
    heuristic: bool,
) -> Row {
    Row {
        name,
        status,
        headers: h.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        lifetime,
        heuristic,
    }
}

fn run(rows: Vec<Row>, response_time: Option<SystemTime>) {
    let cfg = PolicyConfig::default();
    for r in rows {
        let pairs: Vec<(&str, &str)> = r.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let h = headers(&pairs);
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
        let p = match response_time {
            Some(t) => StoredPolicy::from_response_at(status, &h, t, &cfg),
            None => StoredPolicy::from_response(status, &h, &cfg),
        };
        assert_eq!(
            (p.freshness_lifetime, p.heuristic),
            (s(r.lifetime), r.heuristic),
            "{}",
            r.name
        );
    }
}

#[test]
fn lifetime_precedence_table() {
    let d0 = date(0);
    let e60 = date(60);
    let lm = date(-10_000);
    run(
        vec![
            row(
                "nothing, 200: heuristic without LM",
                200,
                &[("date", &d0)],
                0,
                true,
            ),
            row("nothing, 302: none", 302, &[("date", &d0)], 0, false),
            row(
                "max-age",
                200,
                &[("cache-control", "max-age=30")],
                30,
                false,
            ),
            row(
                "s-maxage beats max-age",
                200,
                &[("cache-control", "max-age=30, s-maxage=90")],
                90,
                false,
            ),
            row(
                "s-maxage beats Expires",
                200,
                &[
                    ("cache-control", "s-maxage=5"),
                    ("date", &d0),
                    ("expires", &e60),
                ],
                5,
                false,
            ),
            row(
                "max-age beats Expires",
                200,
                &[
                    ("cache-control", "max-age=5"),
                    ("date", &d0),
                    ("expires", &e60),
                ],
                5,
                false,
            ),
            row(
                "max-age=0 beats Expires",
                200,
                &[
                    ("cache-control", "max-age=0"),
                    ("date", &d0),
                    ("expires", &e60),
                ],
                0,
                false,
            ),
            row(
                "invalid max-age beats Expires",
                200,
                &[
                    ("cache-control", "max-age=x"),
                    ("date", &d0),
                    ("expires", &e60),
                ],
                0,
                false,
            ),
            row(
                "Expires - Date",
                200,
                &[("date", &d0), ("expires", &e60)],
                60,
                false,
            ),
            row(
                "Expires on 302",
                302,
                &[("date", &d0), ("expires", &e60)],
                60,
                false,
            ),
            row(
                "Expires before Date",
                200,
                &[("date", &d0), ("expires", &date(-60))],
                0,
                false,
            ),
            row(
                "Expires equal to Date",
                200,
                &[("date", &d0), ("expires", &d0)],
                0,
                false,
            ),
            row(
                "Expires 0",
                200,
                &[("date", &d0), ("expires", "0"), ("last-modified", &lm)],
                0,
                false,
            ),
            row(
                "Expires invalid, no heuristic",
                200,
                &[("date", &d0), ("expires", "soon"), ("last-modified", &lm)],
                0,
                false,
            ),
            row(
                "Expires empty",
                200,
                &[("date", &d0), ("expires", "")],
                0,
                false,
            ),
            row(
                "Expires repeated equal",
                200,
                &[("date", &d0), ("expires", &e60), ("expires", &e60)],
                60,
                false,
            ),
            row(
                "Expires repeated different",
                200,
                &[("date", &d0), ("expires", &e60), ("expires", &date(120))],
                0,
                false,
            ),
            row(
                "Expires rfc850 format",
                200,
                &[("date", &d0), ("expires", "Monday, 01-Jan-24 00:01:00 GMT")],
                60,
                false,
            ),
            row(
                "Expires asctime format",
                200,
                &[("date", &d0), ("expires", "Mon Jan  1 00:02:00 2024")],
                120,
                false,
            ),
            row(
                "Expires far future saturates",
                200,
                &[("date", &d0), ("expires", "Fri, 31 Dec 9999 23:59:59 GMT")],
                1 << 31,
                false,
            ),
            row(
                "Expires without Date, no response_time",
                200,
                &[("expires", &e60)],
                0,
                false,
            ),
            row(
                "heuristic 10% of LM age",
                200,
                &[("date", &d0), ("last-modified", &lm)],
                1_000,
                true,
            ),
            row(
                "heuristic from Date and Last-Modified in rfc850 format",
                200,
                &[
                    ("date", "Monday, 01-Jan-24 00:00:00 GMT"),
                    ("last-modified", "Sunday, 31-Dec-23 21:13:20 GMT"),
                ],
                1_000,
                true,
            ),
            row(
                "heuristic from Date and Last-Modified in asctime format",
                200,
                &[
                    ("date", "Mon Jan  1 00:00:00 2024"),
                    ("last-modified", "Sun Dec 31 21:13:20 2023"),
                ],
                1_000,
                true,
            ),
            row(
                "heuristic on 404",
                404,
                &[("date", &d0), ("last-modified", &lm)],
                1_000,
                true,
            ),
            row(
                "heuristic on 501",
                501,
                &[("date", &d0), ("last-modified", &lm)],
                1_000,
                true,
            ),
            row(
                "no heuristic on 302",
                302,
                &[("date", &d0), ("last-modified", &lm)],
                0,
                false,
            ),
            row(
                "no heuristic on 500",
                500,
                &[("date", &d0), ("last-modified", &lm)],
                0,
                false,
            ),
            row(
                "public enables heuristic on 302",
                302,
                &[
                    ("cache-control", "public"),
                    ("date", &d0),
                    ("last-modified", &lm),
                ],
                1_000,
                true,
            ),
            row(
                "heuristic capped at 24h",
                200,
                &[("date", &d0), ("last-modified", &date(-100 * 86_400))],
                86_400,
                true,
            ),
            row(
                "heuristic truncates",
                200,
                &[("date", &d0), ("last-modified", &date(-15))],
                1,
                true,
            ),
            row(
                "LM after Date",
                200,
                &[("date", &d0), ("last-modified", &date(100))],
                0,
                true,
            ),
            row(
                "LM invalid",
                200,
                &[("date", &d0), ("last-modified", "never")],
                0,
                true,
            ),
            row(
                "LM without Date, no response_time",
                200,
                &[("last-modified", &lm)],
                0,
                true,
            ),
            row(
                "no-cache keeps lifetime",
                200,
                &[("cache-control", "no-cache, max-age=60")],
                60,
                false,
            ),
            row(
                "immutable alone is not freshness",
                200,
                &[("cache-control", "immutable"), ("date", &d0)],
                0,
                true,
            ),
            // Targeted fields: Expires and Cache-Control are ignored.
            row(
                "cdn max-age beats cc",
                200,
                &[
                    ("cache-control", "max-age=5"),
                    ("cdn-cache-control", "max-age=500"),
                ],
                500,
                false,
            ),
            row(
                "cdn ignores Expires",
                200,
                &[
                    ("cdn-cache-control", "public"),
                    ("date", &d0),
                    ("expires", &e60),
                    ("last-modified", &lm),
                ],
                1_000,
                true,
            ),
            row(
                "cdn s-maxage",
                200,
                &[("cdn-cache-control", "s-maxage=7, max-age=3")],
                7,
                false,
            ),
            row(
                "cdn none on 200: heuristic",
                200,
                &[
                    ("cache-control", "max-age=99"),
                    ("cdn-cache-control", "none"),
                    ("date", &d0),
                    ("last-modified", &lm),
                ],
                1_000,
                true,
            ),
            row(
                "cdn none on 302: no lifetime",
                302,
                &[
                    ("cache-control", "max-age=99"),
                    ("cdn-cache-control", "none"),
                ],
                0,
                false,
            ),
            row(
                "surrogate max-age",
                200,
                &[
                    ("cache-control", "no-cache"),
                    ("surrogate-control", "max-age=77"),
                ],
                77,
                false,
            ),
        ],
        None,
    );
}

#[test]
fn response_time_stands_in_for_date() {
    run(
        vec![
            row(
                "Expires - response_time",
                200,
                &[("expires", &date(90))],
                60,
                false,
            ),
            row(
                "Date wins over response_time",
                200,
                &[("date", &date(0)), ("expires", &date(90))],
                90,
                false,
            ),
            row(
                "invalid Date: response_time",
                200,
                &[("date", "bad"), ("expires", &date(90))],
                60,
                false,
            ),
            row(
                "heuristic from response_time",
                200,
                &[("last-modified", &date(-9_970))],
                1_000,
                true,
            ),
        ],
        Some(at(30)),
    );
}

#[test]
fn policy_fields_table() {
    let cfg = PolicyConfig::default();
    let base = StoredPolicy {
        freshness_lifetime: s(60),
        heuristic: false,
        no_cache: false,
        no_cache_fields: vec![],
        must_revalidate: false,
        stale_while_revalidate: None,
        stale_if_error: None,
        immutable: false,
    };
    let cases: Vec<(&str, StoredPolicy)> = vec![
        ("max-age=60", base.clone()),
        (
            "max-age=60, no-cache",
            StoredPolicy {
                no_cache: true,
                ..base.clone()
            },
        ),
        (
            "max-age=60, no-cache=\"Set-Cookie, x-a\"",
            StoredPolicy {
                no_cache_fields: vec!["set-cookie".into(), "x-a".into()],
                ..base.clone()
            },
        ),
        (
            "max-age=60, must-revalidate",
            StoredPolicy {
                must_revalidate: true,
                ..base.clone()
            },
        ),
        (
            "max-age=60, proxy-revalidate",
            StoredPolicy {
                must_revalidate: true,
                ..base.clone()
            },
        ),
        (
            "s-maxage=60",
            StoredPolicy {
                must_revalidate: true,
                ..base.clone()
            },
        ),
        (
            "max-age=60, stale-while-revalidate=10, stale-if-error=20",
            StoredPolicy {
                stale_while_revalidate: Some(s(10)),
                stale_if_error: Some(s(20)),
                ..base.clone()
            },
        ),
        (
            "max-age=60, immutable",
            StoredPolicy {
                immutable: true,
                ..base.clone()
            },
        ),
    ];
    for (cc, want) in cases {
        let h = headers(&[("cache-control", cc)]);
        assert_eq!(
            StoredPolicy::from_response(StatusCode::OK, &h, &cfg),
            want,
            "{cc}"
        );
    }
}

#[test]
fn heuristic_fraction_is_configurable() {
    let h = headers(&[("date", &date(0)), ("last-modified", &date(-1_000))]);
    let lifetime = |fraction: f64, max: u64| {
        let cfg = PolicyConfig {
            heuristic_fraction: fraction,
            heuristic_max: s(max),
            ..Default::default()
        };
        StoredPolicy::from_response(StatusCode::OK, &h, &cfg).freshness_lifetime
    };
    assert_eq!(lifetime(0.5, 86_400), s(500));
    assert_eq!(lifetime(0.0, 86_400), s(0));
    assert_eq!(lifetime(1.0, 86_400), s(1_000));
    assert_eq!(lifetime(1.0, 300), s(300));
    assert_eq!(lifetime(f64::NAN, 300), s(0));
    assert_eq!(lifetime(-1.0, 300), s(0));
}

#[test]
fn a_services_ttl_replaces_the_heuristic_and_caps_every_lifetime() {
    let cfg = |default: Option<u64>, max: Option<u64>| PolicyConfig {
        default_ttl: default.map(s),
        max_ttl: max.map(s),
        ..Default::default()
    };
    let lifetime = |h: &[(&str, &str)], status: StatusCode, c: &PolicyConfig| {
        StoredPolicy::from_response(status, &headers(h), c).freshness_lifetime
    };
    let lm = [("date", date(0)), ("last-modified", date(-1_000))];
    let lm: Vec<(&str, &str)> = lm.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // No explicit freshness: the default instead of 10% of the Last-Modified age.
    assert_eq!(lifetime(&lm, StatusCode::OK, &cfg(None, None)), s(100));
    assert_eq!(lifetime(&lm, StatusCode::OK, &cfg(Some(600), None)), s(600));
    assert_eq!(lifetime(&[], StatusCode::OK, &cfg(Some(600), None)), s(600));
    // ... only where a heuristic is allowed at all.
    assert_eq!(
        lifetime(&[], StatusCode::FOUND, &cfg(Some(600), None)),
        s(0)
    );
    // Explicit freshness is kept, but never above the cap.
    let max_age = [("cache-control", "max-age=86400")];
    assert_eq!(
        lifetime(&max_age, StatusCode::OK, &cfg(Some(600), None)),
        s(86_400)
    );
    assert_eq!(
        lifetime(&max_age, StatusCode::OK, &cfg(None, Some(3_600))),
        s(3_600)
    );
    let short = [("cache-control", "s-maxage=10")];
    assert_eq!(
        lifetime(&short, StatusCode::OK, &cfg(None, Some(3_600))),
        s(10)
    );
    assert_eq!(
        lifetime(&[], StatusCode::OK, &cfg(Some(600), Some(60))),
        s(60)
    );
}

#[test]
fn heuristically_cacheable_statuses() {
    for code in 100..600u16 {
        let Ok(status) = StatusCode::from_u16(code) else {
            continue;
        };
        let want = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501].contains(&code);
        assert_eq!(is_heuristically_cacheable(status), want, "{code}");
    }
}

#[test]
fn serde_roundtrip() {
    let h = headers(&[(
        "cache-control",
        "max-age=60, no-cache=\"a\", stale-if-error=5",
    )]);
    let p = StoredPolicy::from_response(StatusCode::OK, &h, &PolicyConfig::default());
    let json = serde_json::to_string(&p).unwrap_or_default();
    let back: StoredPolicy = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(back, p);
}
