use super::*;
use http::HeaderName;

use RangeOutcome::{Full, Unsatisfiable as Unsat};

fn p(start: u64, end: u64) -> RangeOutcome {
    RangeOutcome::Partial { start, end }
}

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in fields {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

fn range(value: &str, len: u64) -> RangeOutcome {
    evaluate_range(
        &Method::GET,
        &headers(&[("range", value)]),
        &HeaderMap::new(),
        len,
    )
}

#[test]
fn range_forms() {
    let many_small = format!(
        "bytes={}",
        (0..100)
            .map(|i| format!("{i}-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let many_dead = format!(
        "bytes={}",
        (0..100)
            .map(|i| format!("{}-", 2000 + i))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let one_live_among_dead = format!("{many_dead}, 10-19");
    let cases: Vec<(&str, u64, RangeOutcome)> = vec![
        // int-range
        ("bytes=0-99", 1000, p(0, 99)),
        ("bytes=0-0", 1000, p(0, 0)),
        ("bytes=999-999", 1000, p(999, 999)),
        ("bytes=500-", 1000, p(500, 999)),
        ("bytes=0-", 1000, p(0, 999)),
        ("bytes=0-", 1, p(0, 0)),
        ("bytes=5-", 5, Unsat),
        ("bytes=4-", 5, p(4, 4)),
        ("bytes=1000-1000", 1000, Unsat),
        ("bytes=1000-", 1000, Unsat),
        ("bytes=0-999999", 1000, p(0, 999)),
        ("bytes=900-5000", 1000, p(900, 999)),
        ("bytes=00-09", 1000, p(0, 9)),
        // last < first is invalid: the field is ignored
        ("bytes=10-9", 1000, Full),
        ("bytes=010-9", 1000, Full),
        ("bytes=10-010", 1000, p(10, 10)),
        // suffix-range
        ("bytes=-500", 1000, p(500, 999)),
        ("bytes=-1", 1000, p(999, 999)),
        ("bytes=-1000", 1000, p(0, 999)),
        ("bytes=-5000", 1000, p(0, 999)),
        ("bytes=-0", 1000, Unsat),
        ("bytes=-000", 1000, Unsat),
        // zero-length representation
        ("bytes=0-", 0, Unsat),
        ("bytes=0-0", 0, Unsat),
        ("bytes=-1", 0, Full),
        ("bytes=-0", 0, Unsat),
        // overflowing numbers saturate rather than fail
        ("bytes=99999999999999999999999-", 1000, Unsat),
        ("bytes=0-99999999999999999999999", 1000, p(0, 999)),
        ("bytes=-99999999999999999999999", 1000, p(0, 999)),
        ("bytes=18446744073709551615-", u64::MAX, Unsat),
        (
            "bytes=18446744073709551614-",
            u64::MAX,
            p(u64::MAX - 1, u64::MAX - 1),
        ),
        (
            "bytes=99999999999999999999999-99999999999999999999998",
            1000,
            Full,
        ),
        (
            "bytes=99999999999999999999998-99999999999999999999999",
            1000,
            Unsat,
        ),
        // case-insensitive unit, unknown unit ignored
        ("BYTES=0-1", 1000, p(0, 1)),
        ("Bytes=0-1", 1000, p(0, 1)),
        ("items=0-1", 1000, Full),
        ("bytes 0-1", 1000, Full),
        ("=0-1", 1000, Full),
        // whitespace: OWS around list elements is accepted, inside a spec it is not
        ("bytes= 0-1", 1000, p(0, 1)),
        ("bytes=0-1 ", 1000, p(0, 1)),
        (
            "bytes=0-1 , 5-6",
            1000,
            RangeOutcome::Multi(vec![(0, 1), (5, 6)]),
        ),
        ("bytes =0-1", 1000, Full),
        ("bytes=0 -1", 1000, Full),
        ("bytes=0- 1", 1000, Full),
        ("bytes=- 1", 1000, Full),
        // syntax errors: the field is ignored
        ("bytes=", 1000, Full),
        ("bytes=,", 1000, Full),
        ("bytes=-", 1000, Full),
        ("bytes=a-b", 1000, Full),
        ("bytes=1", 1000, Full),
        ("bytes=1-2-3", 1000, Full),
        ("bytes=--1", 1000, Full),
        ("bytes=+1-2", 1000, Full),
        ("bytes=0x10-0x20", 1000, Full),
        ("bytes=0-1,x", 1000, Full),
        ("bytes=0-1;q=1", 1000, Full),
        ("", 1000, Full),
        // several ranges: ascending and apart → multipart; overlapping or out of order → 200
        (
            "bytes=0-1,5-6",
            1000,
            RangeOutcome::Multi(vec![(0, 1), (5, 6)]),
        ),
        (
            "bytes=0-1,2-3",
            1000,
            RangeOutcome::Multi(vec![(0, 1), (2, 3)]),
        ),
        (
            "bytes=0-1,-5",
            1000,
            RangeOutcome::Multi(vec![(0, 1), (995, 999)]),
        ),
        ("bytes=0-1,0-1", 1000, Full),
        ("bytes=0-5,3-9", 1000, Full),
        ("bytes=5-6,0-1", 1000, Full),
        ("bytes=0-1,1-", 1000, Full),
        ("bytes=0-1,2000-3000", 1000, p(0, 1)),
        ("bytes=2000-3000, -5", 1000, p(995, 999)),
        ("bytes=2000-,3000-", 1000, Unsat),
        ("bytes=,,0-1,,", 1000, p(0, 1)),
        ("bytes=-0,0-1", 1000, p(0, 1)),
        (&many_small, 1000, Full),
        (&many_dead, 1000, Unsat),
        (&one_live_among_dead, 1000, p(10, 19)),
    ];
    assert!(cases.len() >= 60);
    for (value, len, want) in cases {
        assert_eq!(range(value, len), want, "Range: {value:?} len {len}");
    }
}

#[test]
fn only_get_and_one_line() {
    let req = headers(&[("range", "bytes=0-1")]);
    let none = HeaderMap::new();
    for m in [Method::HEAD, Method::POST, Method::PUT, Method::OPTIONS] {
        assert_eq!(evaluate_range(&m, &req, &none, 100), Full, "{m}");
    }
    assert_eq!(evaluate_range(&Method::GET, &none, &none, 100), Full);
    let two = headers(&[("range", "bytes=0-1"), ("range", "bytes=2-3")]);
    assert_eq!(evaluate_range(&Method::GET, &two, &none, 100), Full);
}

const LM: &str = "Sun, 02 Jan 2022 00:00:00 GMT";
const LM_PLUS_1: &str = "Sun, 02 Jan 2022 00:00:01 GMT";
const OTHER: &str = "Sat, 01 Jan 2022 00:00:00 GMT";

#[test]
fn if_range() {
    let strong: &[(&str, &str)] = &[
        ("etag", "\"v1\""),
        ("last-modified", LM),
        ("date", LM_PLUS_1),
    ];
    let weak_etag: &[(&str, &str)] = &[("etag", "W/\"v1\"")];
    let lm_not_strong: &[(&str, &str)] = &[("last-modified", LM), ("date", LM)];
    let lm_no_date: &[(&str, &str)] = &[("last-modified", LM)];
    type Fields = &'static [(&'static str, &'static str)];
    let cases: Vec<(Fields, &[&str], RangeOutcome)> = vec![
        (strong, &["\"v1\""], p(0, 9)),
        (strong, &["\"v2\""], Full),
        (strong, &["W/\"v1\""], Full),
        (weak_etag, &["\"v1\""], Full),
        (weak_etag, &["W/\"v1\""], Full),
        (strong, &[LM], p(0, 9)),
        (strong, &[OTHER], Full),
        (strong, &[LM_PLUS_1], Full),
        (lm_not_strong, &[LM], Full),
        (lm_no_date, &[LM], Full),
        (&[], &[LM], Full),
        (&[], &["\"v1\""], Full),
        (strong, &["garbage"], Full),
        (strong, &[""], Full),
        (strong, &["\"v1"], Full),
        (strong, &["\"v1\"", "\"v1\""], Full),
        (strong, &[" \"v1\" "], p(0, 9)),
        (strong, &["Sunday, 02-Jan-22 00:00:00 GMT"], p(0, 9)),
    ];
    for (resp, if_range, want) in cases {
        let mut req = headers(&[("range", "bytes=0-9")]);
        for v in if_range {
            req.append(header::IF_RANGE, HeaderValue::from_str(v).unwrap());
        }
        let got = evaluate_range(&Method::GET, &req, &headers(resp), 100);
        assert_eq!(got, want, "If-Range {if_range:?} against {resp:?}");
    }
    // If-Range without Range is ignored, and a failing If-Range never yields 416.
    let req = headers(&[("if-range", "\"v2\"")]);
    assert_eq!(
        evaluate_range(&Method::GET, &req, &headers(strong), 100),
        Full
    );
    let req = headers(&[("range", "bytes=500-"), ("if-range", "\"v2\"")]);
    assert_eq!(
        evaluate_range(&Method::GET, &req, &headers(strong), 100),
        Full
    );
    let req = headers(&[("range", "bytes=500-"), ("if-range", "\"v1\"")]);
    assert_eq!(
        evaluate_range(&Method::GET, &req, &headers(strong), 100),
        Unsat
    );
}

#[test]
fn content_range_values() {
    assert_eq!(content_range(0, 99, 1000), "bytes 0-99/1000");
    assert_eq!(content_range(0, 0, 1), "bytes 0-0/1");
    assert_eq!(
        content_range(u64::MAX - 1, u64::MAX - 1, u64::MAX),
        "bytes 18446744073709551614-18446744073709551614/18446744073709551615"
    );
    assert_eq!(unsatisfied_range(1000), "bytes */1000");
    assert_eq!(unsatisfied_range(0), "bytes */0");
}

#[test]
fn decimal_comparison() {
    assert_eq!(compare_decimal(b"10", b"9"), Ordering::Greater);
    assert_eq!(compare_decimal(b"009", b"9"), Ordering::Equal);
    assert_eq!(compare_decimal(b"0", b"000"), Ordering::Equal);
    assert_eq!(compare_decimal(b"123", b"124"), Ordering::Less);
    assert_eq!(
        compare_decimal(b"99999999999999999999999", b"99999999999999999999998"),
        Ordering::Greater
    );
}

proptest::proptest! {
    #[test]
    fn never_panics_and_partial_is_in_bounds(
        value in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
        len in proptest::prop_oneof![0u64..20, proptest::num::u64::ANY],
    ) {
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            let mut req = HeaderMap::new();
            req.insert(header::RANGE, v);
            if let RangeOutcome::Partial { start, end } =
                evaluate_range(&Method::GET, &req, &HeaderMap::new(), len)
            {
                proptest::prop_assert!(start <= end && end < len);
            }
        }
    }

    #[test]
    fn structured_ranges_never_panic(
        specs in proptest::collection::vec("-?[0-9]{0,22}-?[0-9]{0,22}", 0..8),
        len in 0u64..10_000,
    ) {
        let value = format!("bytes={}", specs.join(","));
        if let RangeOutcome::Partial { start, end } = range(&value, len) {
            proptest::prop_assert!(start <= end && end < len);
        }
    }

    #[test]
    fn single_int_range_matches_model(a in 0u64..2000, b in 0u64..2000, len in 0u64..1500) {
        let got = range(&format!("bytes={a}-{b}"), len);
        let want = if b < a {
            Full
        } else if a >= len {
            Unsat
        } else {
            p(a, b.min(len - 1))
        };
        proptest::prop_assert_eq!(got, want);
    }
}
