use super::*;
use crate::policy::testutil::{Pairs, date, headers};

#[test]
fn has_validator_table() {
    let lm = date(-100);
    let cases: Vec<(&str, Pairs, bool)> = vec![
        ("none", vec![], false),
        ("strong etag", vec![("etag", "\"abc\"")], true),
        ("weak etag", vec![("etag", "W/\"abc\"")], true),
        ("empty opaque tag", vec![("etag", "\"\"")], true),
        ("unquoted etag", vec![("etag", "abc")], false),
        ("lowercase weak prefix", vec![("etag", "w/\"abc\"")], false),
        (
            "two etag lines",
            vec![("etag", "\"a\""), ("etag", "\"b\"")],
            false,
        ),
        ("etag with space", vec![("etag", "\"a b\"")], false),
        ("last-modified", vec![("last-modified", &lm)], true),
        (
            "invalid last-modified",
            vec![("last-modified", "yesterday")],
            false,
        ),
        (
            "both",
            vec![("etag", "\"a\""), ("last-modified", &lm)],
            true,
        ),
    ];
    for (name, h, want) in cases {
        assert_eq!(has_validator(&headers(&h)), want, "{name}");
    }
}

#[test]
fn conditional_request_headers_table() {
    let lm = date(-100);
    let cases: Vec<(&str, Pairs, Pairs)> = vec![
        ("nothing", vec![], vec![]),
        (
            "etag",
            vec![("etag", "\"v1\"")],
            vec![("if-none-match", "\"v1\"")],
        ),
        (
            "weak etag kept weak",
            vec![("etag", "W/\"v1\"")],
            vec![("if-none-match", "W/\"v1\"")],
        ),
        (
            "last-modified",
            vec![("last-modified", &lm)],
            vec![("if-modified-since", &lm)],
        ),
        (
            "both",
            vec![
                ("etag", "\"v1\""),
                ("last-modified", &lm),
                ("content-type", "text/plain"),
            ],
            vec![("if-none-match", "\"v1\""), ("if-modified-since", &lm)],
        ),
        ("invalid etag not sent", vec![("etag", "v1")], vec![]),
        (
            "invalid date not sent",
            vec![("last-modified", "0")],
            vec![],
        ),
    ];
    for (name, stored, want) in cases {
        assert_eq!(
            conditional_request_headers(&headers(&stored)),
            headers(&want),
            "{name}"
        );
    }
}

/// (stored headers, 304 headers) → selected?
#[test]
fn selection_table() {
    let d0 = date(0);
    let lm = date(-100);
    let lm_same_second = date(0);
    let other_lm = date(-200);
    let d10 = date(10);
    type Case<'a> = (&'a str, Pairs<'a>, Pairs<'a>, bool);
    let cases: Vec<Case> = vec![
        // Strong entity tags.
        (
            "strong = strong",
            vec![("etag", "\"a\"")],
            vec![("etag", "\"a\"")],
            true,
        ),
        (
            "strong != strong",
            vec![("etag", "\"a\"")],
            vec![("etag", "\"b\"")],
            false,
        ),
        (
            "304 strong, stored weak same tag",
            vec![("etag", "W/\"a\"")],
            vec![("etag", "\"a\"")],
            false,
        ),
        (
            "304 strong, stored none",
            vec![],
            vec![("etag", "\"a\"")],
            false,
        ),
        (
            "304 strong, stored only LM",
            vec![("last-modified", &lm)],
            vec![("etag", "\"a\"")],
            false,
        ),
        (
            "304 strong etag mismatch, strong LM match",
            vec![("etag", "\"a\""), ("date", &d0), ("last-modified", &lm)],
            vec![("etag", "\"b\""), ("date", &d0), ("last-modified", &lm)],
            true,
        ),
        // Weak entity tags.
        (
            "weak = weak",
            vec![("etag", "W/\"a\"")],
            vec![("etag", "W/\"a\"")],
            true,
        ),
        (
            "304 weak, stored strong same",
            vec![("etag", "\"a\"")],
            vec![("etag", "W/\"a\"")],
            true,
        ),
        (
            "weak != weak",
            vec![("etag", "W/\"a\"")],
            vec![("etag", "W/\"b\"")],
            false,
        ),
        (
            "304 weak, stored none",
            vec![],
            vec![("etag", "W/\"a\"")],
            false,
        ),
        // Last-Modified.
        (
            "strong LM match",
            vec![("date", &d0), ("last-modified", &lm)],
            vec![("date", &d0), ("last-modified", &lm)],
            true,
        ),
        (
            "strong LM mismatch",
            vec![("date", &d0), ("last-modified", &lm)],
            vec![("date", &d0), ("last-modified", &other_lm)],
            false,
        ),
        (
            "304 strong LM, stored LM weak (same second as its Date)",
            vec![
                ("date", &lm_same_second),
                ("last-modified", &lm_same_second),
            ],
            vec![("date", &d10), ("last-modified", &lm_same_second)],
            false,
        ),
        (
            "304 weak LM (no Date) matches",
            vec![("last-modified", &lm)],
            vec![("last-modified", &lm)],
            true,
        ),
        (
            "304 weak LM (no Date) mismatch",
            vec![("last-modified", &lm)],
            vec![("last-modified", &other_lm)],
            false,
        ),
        (
            "304 weak etag + weak LM, LM matches",
            vec![("etag", "W/\"x\""), ("last-modified", &lm)],
            vec![("etag", "W/\"y\""), ("last-modified", &lm)],
            true,
        ),
        // No validators in the 304.
        ("no validators, stored none", vec![], vec![], true),
        (
            "no validators, stored has etag",
            vec![("etag", "\"a\"")],
            vec![("date", &d0)],
            true,
        ),
        (
            "304 invalid etag counts as none",
            vec![("etag", "\"a\"")],
            vec![("etag", "garbage")],
            true,
        ),
    ];
    for (name, stored, nm, want) in cases {
        let got = freshen(&headers(&stored), &headers(&nm));
        assert_eq!(got != FreshenOutcome::NotSelected, want, "{name}");
    }
}

/// §3.2: what a selected 304 does to the stored header fields.
#[test]
fn update_table() {
    type Case<'a> = (&'a str, Pairs<'a>, Pairs<'a>, Pairs<'a>);
    let cases: Vec<Case> = vec![
        (
            "new field added, existing replaced, others kept",
            vec![
                ("etag", "\"a\""),
                ("cache-control", "max-age=10"),
                ("content-type", "text/html"),
            ],
            vec![
                ("etag", "\"a\""),
                ("cache-control", "max-age=60"),
                ("x-new", "1"),
            ],
            vec![
                ("etag", "\"a\""),
                ("cache-control", "max-age=60"),
                ("content-type", "text/html"),
                ("x-new", "1"),
            ],
        ),
        (
            "all lines of a field replaced",
            vec![
                ("etag", "\"a\""),
                ("cache-control", "public"),
                ("cache-control", "max-age=10"),
            ],
            vec![("etag", "\"a\""), ("cache-control", "max-age=60")],
            vec![("etag", "\"a\""), ("cache-control", "max-age=60")],
        ),
        (
            "multi-line field from 304 kept whole",
            vec![("etag", "\"a\"")],
            vec![("etag", "\"a\""), ("link", "</a>"), ("link", "</b>")],
            vec![("etag", "\"a\""), ("link", "</a>"), ("link", "</b>")],
        ),
        (
            "content-length never updated",
            vec![("etag", "\"a\""), ("content-length", "100")],
            vec![("etag", "\"a\""), ("content-length", "0")],
            vec![("etag", "\"a\""), ("content-length", "100")],
        ),
        (
            "content-range and hop-by-hop ignored",
            vec![("etag", "\"a\"")],
            vec![
                ("etag", "\"a\""),
                ("content-range", "bytes 0-1/2"),
                ("transfer-encoding", "chunked"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic"),
                ("proxy-authentication-info", "x"),
            ],
            vec![("etag", "\"a\"")],
        ),
        (
            "date and expires replaced",
            vec![
                ("etag", "\"a\""),
                ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
                ("expires", "0"),
            ],
            vec![
                ("etag", "\"a\""),
                ("date", "Mon, 01 Jan 2024 01:00:00 GMT"),
                ("expires", "Mon, 01 Jan 2024 02:00:00 GMT"),
            ],
            vec![
                ("etag", "\"a\""),
                ("date", "Mon, 01 Jan 2024 01:00:00 GMT"),
                ("expires", "Mon, 01 Jan 2024 02:00:00 GMT"),
            ],
        ),
        (
            "weak-matched etag takes the 304's form",
            vec![("etag", "\"a\"")],
            vec![("etag", "W/\"a\"")],
            vec![("etag", "W/\"a\"")],
        ),
    ];
    for (name, stored, nm, want) in cases {
        match freshen(&headers(&stored), &headers(&nm)) {
            FreshenOutcome::Updated(h) => assert_eq!(h, headers(&want), "{name}"),
            FreshenOutcome::NotSelected => panic!("{name}: not selected"),
        }
    }
}

#[test]
fn unstorable_fields() {
    let h = headers(&[("connection", "close, X-Secret"), ("connection", "x-other")]);
    let conn = connection_listed(&h);
    for (name, want) in [
        ("connection", true),
        ("keep-alive", true),
        ("te", true),
        ("transfer-encoding", true),
        ("upgrade", true),
        ("proxy-connection", true),
        ("proxy-authenticate", true),
        ("proxy-authentication-info", true),
        ("proxy-authorization", true),
        ("x-secret", true),
        ("x-other", true),
        ("close", true),
        ("content-length", false),
        ("trailer", false),
        ("set-cookie", false),
        ("etag", false),
    ] {
        let n = HeaderName::from_static(name);
        assert_eq!(is_unstorable_field(&n, &conn), want, "{name}");
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(a in "[ -~]{0,30}", b in "[ -~]{0,30}") {
            let stored = headers(&[("etag", &a), ("last-modified", &b), ("date", &b)]);
            let nm = headers(&[("etag", &b), ("last-modified", &a), ("connection", &a)]);
            let _ = has_validator(&stored);
            let _ = conditional_request_headers(&stored);
            let _ = freshen(&stored, &nm);
        }

        #[test]
        fn same_strong_etag_always_selects(tag in "[!#-~]{0,20}") {
            let e = format!("\"{tag}\"");
            let stored = headers(&[("etag", &e), ("content-length", "5")]);
            let nm = headers(&[("etag", &e), ("content-length", "0")]);
            match freshen(&stored, &nm) {
                FreshenOutcome::Updated(h) => {
                    prop_assert_eq!(h.get("content-length").map(|v| v.as_bytes()), Some(&b"5"[..]));
                }
                FreshenOutcome::NotSelected => prop_assert!(false, "not selected"),
            }
        }
    }
}
