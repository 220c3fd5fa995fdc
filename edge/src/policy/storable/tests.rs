use super::*;
use crate::policy::testutil::{Pairs, date, headers, s};

/// Expected outcome of one row: stored with these strip fields, or not stored for a reason.
type Want = Result<&'static [&'static str], NotStorable>;

struct Row {
    name: &'static str,
    method: Method,
    req: Vec<(&'static str, String)>,
    status: u16,
    resp: Vec<(&'static str, String)>,
    want: Want,
}

fn owned(p: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    p.iter().map(|(n, v)| (*n, v.to_string())).collect()
}

/// A GET row.
fn get(
    name: &'static str,
    req: &[(&'static str, &str)],
    status: u16,
    resp: &[(&'static str, &str)],
    want: Want,
) -> Row {
    Row {
        name,
        method: Method::GET,
        req: owned(req),
        status,
        resp: owned(resp),
        want,
    }
}

fn run(rows: Vec<Row>, cfg: &PolicyConfig) {
    for r in rows {
        let req: Pairs = r.req.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let resp: Pairs = r.resp.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
        let got = match storability(&r.method, &headers(&req), status, &headers(&resp), cfg) {
            Storability::Store(p) => Ok(p.strip_fields),
            Storability::DoNotStore(why) => Err(why),
        };
        let want = r
            .want
            .map(|f| f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{}", r.name);
    }
}

use NotStorable::{
    Authorization, NoFreshnessInfo, NotReusable, Private, RequestNoStore, ResponseNoStore,
    SetCookie, Status, VaryStar,
};
const OK: Want = Ok(&[]);

#[test]
fn storability_table() {
    let d0 = date(0);
    let lm = date(-1000);
    let ma = ("cache-control", "max-age=60");
    let dt = ("date", d0.as_str());
    let mut rows = vec![
        // Method.
        Row {
            name: "HEAD",
            method: Method::HEAD,
            req: vec![],
            status: 200,
            resp: owned(&[ma]),
            want: Err(NotStorable::Method),
        },
        Row {
            name: "POST with max-age",
            method: Method::POST,
            req: vec![],
            status: 200,
            resp: owned(&[ma]),
            want: Err(NotStorable::Method),
        },
        Row {
            name: "custom method",
            method: Method::from_bytes(b"PURGE").unwrap_or(Method::PUT),
            req: vec![],
            status: 200,
            resp: owned(&[ma]),
            want: Err(NotStorable::Method),
        },
        get("GET max-age", &[], 200, &[ma], OK),
        // Status.
        get("100", &[], 100, &[ma], Err(Status)),
        get("103", &[], 103, &[ma], Err(Status)),
        get("206", &[], 206, &[ma], Err(Status)),
        get("304", &[], 304, &[ma], Err(Status)),
        get("500 with max-age", &[], 500, &[ma], OK),
        get("302 with max-age", &[], 302, &[ma], OK),
        get(
            "302 without freshness",
            &[],
            302,
            &[dt],
            Err(NoFreshnessInfo),
        ),
        get(
            "500 without freshness",
            &[],
            500,
            &[dt],
            Err(NoFreshnessInfo),
        ),
        get(
            "503 with Expires",
            &[],
            503,
            &[dt, ("expires", &date(30))],
            OK,
        ),
        get(
            "200 heuristic with LM",
            &[],
            200,
            &[dt, ("last-modified", &lm)],
            OK,
        ),
        get(
            "404 heuristic with LM",
            &[],
            404,
            &[dt, ("last-modified", &lm)],
            OK,
        ),
        get(
            "410 heuristic with LM",
            &[],
            410,
            &[dt, ("last-modified", &lm)],
            OK,
        ),
        get(
            "302 public with LM",
            &[],
            302,
            &[dt, ("cache-control", "public"), ("last-modified", &lm)],
            OK,
        ),
        // must-understand.
        get(
            "must-understand 200 ignores no-store",
            &[],
            200,
            &[("cache-control", "must-understand, no-store, max-age=60")],
            OK,
        ),
        get(
            "must-understand unknown status",
            &[],
            299,
            &[("cache-control", "must-understand, no-store, max-age=60")],
            Err(Status),
        ),
        get(
            "must-understand 599",
            &[],
            599,
            &[("cache-control", "must-understand, max-age=60")],
            Err(Status),
        ),
        get(
            "must-understand 418",
            &[],
            418,
            &[("cache-control", "must-understand, max-age=60")],
            OK,
        ),
        get(
            "must-understand 206",
            &[],
            206,
            &[("cache-control", "must-understand, max-age=60")],
            Err(Status),
        ),
        // no-store.
        get(
            "response no-store",
            &[],
            200,
            &[("cache-control", "no-store, max-age=60")],
            Err(ResponseNoStore),
        ),
        get(
            "response no-store in a second line",
            &[],
            200,
            &[ma, ("cache-control", "no-store")],
            Err(ResponseNoStore),
        ),
        get(
            "request no-store",
            &[("cache-control", "no-store")],
            200,
            &[ma],
            Err(RequestNoStore),
        ),
        get(
            "request no-store beats must-understand",
            &[("cache-control", "no-store")],
            200,
            &[("cache-control", "must-understand, max-age=60")],
            Err(RequestNoStore),
        ),
        get(
            "request no-cache still stores",
            &[("cache-control", "no-cache")],
            200,
            &[ma],
            OK,
        ),
        // private.
        get(
            "private",
            &[],
            200,
            &[("cache-control", "private, max-age=60")],
            Err(Private),
        ),
        get(
            "private=x strips x",
            &[],
            200,
            &[
                ("cache-control", "private=\"x-user\", max-age=60"),
                ("x-user", "bob"),
            ],
            Ok(&["x-user"]),
        ),
        get(
            "private=x absent field",
            &[],
            200,
            &[("cache-control", "private=\"x-user\", max-age=60")],
            OK,
        ),
        get(
            "private=\"\" is unqualified",
            &[],
            200,
            &[("cache-control", "private=\"\", max-age=60")],
            Err(Private),
        ),
        // Authorization (§3.5).
        get(
            "authorization, max-age only",
            &[("authorization", "Bearer x")],
            200,
            &[ma],
            Err(Authorization),
        ),
        get(
            "authorization, public",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "public, max-age=60")],
            OK,
        ),
        get(
            "authorization, s-maxage",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "s-maxage=60")],
            OK,
        ),
        get(
            "authorization, must-revalidate",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "must-revalidate, max-age=60")],
            OK,
        ),
        get(
            "authorization, proxy-revalidate is not enough",
            &[("authorization", "Bearer x")],
            200,
            &[("cache-control", "proxy-revalidate, max-age=60")],
            Err(Authorization),
        ),
        get(
            "authorization, public in CDN-Cache-Control",
            &[("authorization", "Bearer x")],
            200,
            &[("cdn-cache-control", "public, max-age=60")],
            OK,
        ),
        // Vary.
        get("vary star", &[], 200, &[ma, ("vary", "*")], Err(VaryStar)),
        get(
            "vary star in list",
            &[],
            200,
            &[ma, ("vary", "accept, *")],
            Err(VaryStar),
        ),
        get("vary fields", &[], 200, &[ma, ("vary", "accept")], OK),
        // Set-Cookie.
        get(
            "set-cookie refused",
            &[],
            200,
            &[ma, ("set-cookie", "a=1")],
            Err(SetCookie),
        ),
        get(
            "set-cookie private-named stripped",
            &[],
            200,
            &[
                ("cache-control", "max-age=60, private=\"set-cookie\""),
                ("set-cookie", "a=1"),
            ],
            Ok(&["set-cookie"]),
        ),
        get(
            "set-cookie no-cache-named stripped",
            &[],
            200,
            &[
                ("cache-control", "max-age=60, no-cache=\"Set-Cookie\""),
                ("set-cookie", "a=1"),
            ],
            Ok(&["set-cookie"]),
        ),
        get(
            "set-cookie refused even with public",
            &[],
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=1"),
            ],
            Err(SetCookie),
        ),
        // Hop-by-hop and proxy fields.
        get(
            "hop-by-hop stripped",
            &[],
            200,
            &[
                ma,
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic"),
                ("transfer-encoding", "chunked"),
            ],
            Ok(&[
                "connection",
                "x-hop",
                "keep-alive",
                "proxy-authenticate",
                "transfer-encoding",
            ]),
        ),
        // Explicit freshness info and reusability.
        get(
            "no cache-control 200 no LM no validator",
            &[],
            200,
            &[dt],
            Err(NotReusable),
        ),
        get(
            "no cache-control 200 with etag",
            &[],
            200,
            &[dt, ("etag", "\"a\"")],
            OK,
        ),
        get(
            "max-age=0 no validator",
            &[],
            200,
            &[("cache-control", "max-age=0")],
            Err(NotReusable),
        ),
        get(
            "max-age=0 with etag",
            &[],
            200,
            &[("cache-control", "max-age=0"), ("etag", "\"a\"")],
            OK,
        ),
        get(
            "max-age=0 with LM",
            &[],
            200,
            &[("cache-control", "max-age=0"), ("last-modified", &lm)],
            OK,
        ),
        get(
            "max-age=0 swr",
            &[],
            200,
            &[("cache-control", "max-age=0, stale-while-revalidate=30")],
            OK,
        ),
        get(
            "max-age=0 sie",
            &[],
            200,
            &[("cache-control", "max-age=0, stale-if-error=30")],
            OK,
        ),
        get(
            "max-age=0 swr must-revalidate",
            &[],
            200,
            &[(
                "cache-control",
                "max-age=0, stale-while-revalidate=30, must-revalidate",
            )],
            Err(NotReusable),
        ),
        get(
            "s-maxage=0 sie (implies proxy-revalidate)",
            &[],
            200,
            &[("cache-control", "s-maxage=0, stale-if-error=30")],
            Err(NotReusable),
        ),
        get(
            "no-cache no validator",
            &[],
            200,
            &[("cache-control", "no-cache, max-age=60")],
            Err(NotReusable),
        ),
        get(
            "no-cache with etag",
            &[],
            200,
            &[("cache-control", "no-cache"), ("etag", "\"a\"")],
            OK,
        ),
        get(
            "no-cache with sie",
            &[],
            200,
            &[("cache-control", "no-cache, stale-if-error=60")],
            OK,
        ),
        get(
            "no-cache with swr only",
            &[],
            200,
            &[("cache-control", "no-cache, stale-while-revalidate=60")],
            Err(NotReusable),
        ),
        get(
            "Expires in the past, no validator",
            &[],
            200,
            &[dt, ("expires", "0")],
            Err(NotReusable),
        ),
        get(
            "Expires in the past, etag",
            &[],
            200,
            &[dt, ("expires", "0"), ("etag", "\"a\"")],
            OK,
        ),
        get(
            "invalid max-age on 302 with validator",
            &[],
            302,
            &[("cache-control", "max-age=x"), ("etag", "\"a\"")],
            OK,
        ),
        // Targeted fields.
        get(
            "cdn max-age overrides cc no-store",
            &[],
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
            OK,
        ),
        get(
            "cdn no-store overrides cc max-age",
            &[],
            200,
            &[ma, ("cdn-cache-control", "no-store")],
            Err(ResponseNoStore),
        ),
        get(
            "cdn private",
            &[],
            200,
            &[ma, ("cdn-cache-control", "private")],
            Err(Private),
        ),
        get(
            "cdn ignores Expires",
            &[],
            302,
            &[dt, ("expires", &date(60)), ("cdn-cache-control", "none")],
            Err(NoFreshnessInfo),
        ),
        get(
            "cdn none on 200 with etag",
            &[],
            200,
            &[
                ("cache-control", "private"),
                ("cdn-cache-control", "none"),
                ("etag", "\"a\""),
            ],
            OK,
        ),
        get(
            "invalid cdn falls back to cc private",
            &[],
            200,
            &[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=60;"),
            ],
            Err(Private),
        ),
        get(
            "surrogate no-store",
            &[],
            200,
            &[ma, ("surrogate-control", "no-store")],
            Err(ResponseNoStore),
        ),
        get(
            "surrogate max-age beats cc private",
            &[],
            200,
            &[
                ("cache-control", "private"),
                ("surrogate-control", "max-age=60"),
            ],
            OK,
        ),
    ];
    rows.push(get(
        "status is checked before request no-store",
        &[("cache-control", "no-store")],
        206,
        &[],
        Err(Status),
    ));
    run(rows, &PolicyConfig::default());
}

#[test]
fn store_set_cookie_config() {
    let cfg = PolicyConfig {
        store_set_cookie: true,
        ..Default::default()
    };
    run(
        vec![
            get(
                "set-cookie stored",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=1")],
                OK,
            ),
            get(
                "private-named still stripped",
                &[],
                200,
                &[
                    ("cache-control", "max-age=60, private=\"set-cookie\""),
                    ("set-cookie", "a=1"),
                ],
                Ok(&["set-cookie"]),
            ),
            get(
                "no-cache-named kept (served after revalidation)",
                &[],
                200,
                &[
                    ("cache-control", "max-age=60, no-cache=\"set-cookie\""),
                    ("set-cookie", "a=1"),
                ],
                OK,
            ),
        ],
        &cfg,
    );
}

#[test]
fn plan_contents() {
    let cfg = PolicyConfig::default();
    let resp = headers(&[
        (
            "cache-control",
            "max-age=60, no-cache=\"x-a\", stale-if-error=5",
        ),
        ("vary", "Origin, accept-encoding"),
    ]);
    match storability(&Method::GET, &headers(&[]), StatusCode::OK, &resp, &cfg) {
        Storability::Store(p) => {
            assert_eq!(p.policy.freshness_lifetime, s(60));
            assert_eq!(p.policy.no_cache_fields, vec!["x-a".to_string()]);
            assert_eq!(p.policy.stale_if_error, Some(s(5)));
            assert_eq!(
                p.vary,
                VarySpec::Fields(vec!["accept-encoding".into(), "origin".into()])
            );
            assert!(p.strip_fields.is_empty());
            assert!(strip_field_names(&p).is_empty());
        }
        Storability::DoNotStore(why) => panic!("not stored: {why}"),
    }
}

#[test]
fn reasons_render_kebab_case() {
    let all = [
        (NotStorable::Method, "method"),
        (Status, "status"),
        (RequestNoStore, "request-no-store"),
        (ResponseNoStore, "no-store"),
        (Private, "private"),
        (Authorization, "authorization"),
        (VaryStar, "vary-star"),
        (NoFreshnessInfo, "no-freshness-info"),
        (SetCookie, "set-cookie"),
        (NotReusable, "not-reusable"),
    ];
    for (r, text) in all {
        assert_eq!(r.to_string(), text);
    }
}

#[test]
fn understood_statuses() {
    for (code, want) in [
        (200, true),
        (206, true),
        (299, false),
        (306, false),
        (308, true),
        (418, true),
        (419, false),
        (421, true),
        (451, false),
        (505, true),
        (599, false),
    ] {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
        assert_eq!(is_understood_status(status), want, "{code}");
    }
}
