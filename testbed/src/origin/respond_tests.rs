//! Table-driven tests of the response plan: (query, method, request headers, clock) → status,
//! headers and body range, without sockets.
#![allow(clippy::type_complexity)] // the case tables are tuples by design

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::super::spec::{Params, parse_query};
use super::*;

const NOW: u64 = 1_700_000_000;
const EPOCH: u64 = 1_699_999_000;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(at(secs))
}

fn run(method: Method, path: &str, query: &str, req_headers: &[(&str, &str)]) -> Plan {
    let mut headers = HeaderMap::new();
    for (k, v) in req_headers {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let params = Params::from_pairs(&parse_query(query)).unwrap();
    let view = RequestView {
        method: &method,
        path,
        headers: &headers,
    };
    plan(view, &params, at(NOW), at(EPOCH), 7)
}

fn answer_of(plan: Plan) -> Answer {
    match plan.action {
        Action::Respond(a) => a,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn get(query: &str, req_headers: &[(&str, &str)]) -> Answer {
    answer_of(run(Method::GET, "/p", query, req_headers))
}

/// The response headers as sorted (name, value) text pairs.
fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<_> = h
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    v.sort();
    v
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

fn body_range(a: &Answer) -> Option<(u64, u64)> {
    match &a.body {
        BodyPlan::Empty => None,
        BodyPlan::Stream { start, end, .. } => Some((*start, *end)),
    }
}

#[test]
fn default_answer_has_exactly_these_headers() {
    let a = get("", &[]);
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        header_list(&a.headers),
        pairs(&[
            ("date", &date(NOW)),
            ("server", "tiercel-demo-origin"),
            ("content-type", "application/octet-stream"),
            ("content-length", "1024"),
            ("x-origin-hits", "7"),
        ])
    );
    assert_eq!(body_range(&a), Some((0, 1024)));
}

#[test]
fn every_metadata_parameter_becomes_its_header() {
    let a = get(
        "size=10&cc=max-age%3D60&cdncc=max-age%3D10&sc=max-age%3D5&expires=30&etag=v1&lm=100\
         &vary=Accept-Encoding&age=3&date_offset=-20&set_cookie=1&tags=a,b&ranges=1\
         &h=X-Extra:1&h=X-Extra:2&h=Content-Type:text/plain",
        &[],
    );
    assert_eq!(
        header_list(&a.headers),
        pairs(&[
            ("date", &date(NOW - 20)),
            ("server", "tiercel-demo-origin"),
            ("content-type", "text/plain"),
            ("content-length", "10"),
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=10"),
            ("surrogate-control", "max-age=5"),
            ("expires", &date(NOW + 30)),
            ("etag", "\"v1\""),
            ("last-modified", &date(EPOCH - 100)),
            ("vary", "Accept-Encoding"),
            ("age", "3"),
            ("set-cookie", "tiercel_demo=1; Path=/; HttpOnly"),
            ("surrogate-key", "a b"),
            ("accept-ranges", "bytes"),
            ("x-extra", "1"),
            ("x-extra", "2"),
            ("x-origin-hits", "7"),
        ])
    );
    let expired = get("expires=-30", &[]);
    assert_eq!(expired.headers[header::EXPIRES], date(NOW - 30).as_str());
}

#[test]
fn status_and_length_rules() {
    // (query, method, status, content-length header, body range)
    let cases: Vec<(&str, Method, u16, Option<&str>, Option<(u64, u64)>)> = vec![
        ("size=5", Method::GET, 200, Some("5"), Some((0, 5))),
        ("size=0", Method::GET, 200, Some("0"), Some((0, 0))),
        ("size=5", Method::HEAD, 200, Some("5"), None),
        ("size=5&nolen=1", Method::GET, 200, None, Some((0, 5))),
        ("size=5&nolen=1", Method::HEAD, 200, None, None),
        (
            "size=5&status=404",
            Method::GET,
            404,
            Some("5"),
            Some((0, 5)),
        ),
        (
            "size=5&status=503",
            Method::GET,
            503,
            Some("5"),
            Some((0, 5)),
        ),
        ("size=5&status=204", Method::GET, 204, None, None),
        ("size=5&status=304", Method::GET, 304, None, None),
        ("size=5", Method::POST, 200, Some("5"), Some((0, 5))),
    ];
    for (query, method, status, len, range) in cases {
        let a = answer_of(run(method.clone(), "/p", query, &[]));
        assert_eq!(a.status.as_u16(), status, "{method} {query}");
        assert_eq!(
            a.headers
                .get(header::CONTENT_LENGTH)
                .map(|v| v.to_str().unwrap()),
            len,
            "{method} {query}"
        );
        assert_eq!(body_range(&a), range, "{method} {query}");
    }
}

#[test]
fn conditional_answers() {
    let lm = date(EPOCH - 100);
    let earlier = date(EPOCH - 101);
    // (query, method, request headers, status)
    let cases: Vec<(&str, Method, Vec<(&str, &str)>, u16)> = vec![
        (
            "etag=v1",
            Method::GET,
            vec![("if-none-match", "\"v1\"")],
            304,
        ),
        (
            "etag=v1",
            Method::GET,
            vec![("if-none-match", "W/\"v1\"")],
            304,
        ),
        (
            "etag=v1",
            Method::HEAD,
            vec![("if-none-match", "\"v1\"")],
            304,
        ),
        (
            "etag=v2",
            Method::GET,
            vec![("if-none-match", "\"v1\"")],
            200,
        ),
        (
            "etag=v1",
            Method::POST,
            vec![("if-none-match", "\"v1\"")],
            412,
        ),
        ("", Method::GET, vec![("if-none-match", "\"v1\"")], 200),
        ("lm=100", Method::GET, vec![("if-modified-since", &lm)], 304),
        (
            "lm=100",
            Method::GET,
            vec![("if-modified-since", &earlier)],
            200,
        ),
        (
            "lm=100&etag=v1",
            Method::GET,
            vec![("if-none-match", "\"x\""), ("if-modified-since", &lm)],
            200,
        ),
        // Preconditions are ignored when the answer would not be 2xx.
        (
            "etag=v1&status=404",
            Method::GET,
            vec![("if-none-match", "\"v1\"")],
            404,
        ),
        (
            "etag=v1&status=500",
            Method::GET,
            vec![("if-none-match", "\"v1\"")],
            500,
        ),
    ];
    for (query, method, headers, status) in cases {
        let a = answer_of(run(method.clone(), "/p", query, &headers));
        assert_eq!(a.status.as_u16(), status, "{method} {query} {headers:?}");
        if status == 304 || status == 412 {
            assert_eq!(body_range(&a), None);
        }
    }
}

#[test]
fn not_modified_keeps_cache_metadata_and_drops_representation_headers() {
    let a = get(
        "etag=v1&cc=max-age%3D5&cdncc=max-age%3D9&expires=5&vary=Accept&set_cookie=1&h=X-New:2&size=10",
        &[("if-none-match", "\"v1\"")],
    );
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        header_list(&a.headers),
        pairs(&[
            ("date", &date(NOW)),
            ("server", "tiercel-demo-origin"),
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=9"),
            ("expires", &date(NOW + 5)),
            ("etag", "\"v1\""),
            ("vary", "Accept"),
            // `h=` extras ride on the 304 too, so a test can see a 304 update stored fields.
            ("x-new", "2"),
            ("x-origin-hits", "7"),
        ])
    );
}

#[test]
fn range_answers() {
    let r = |v: &str| vec![("range", v.to_owned())];
    // (query, method, request headers, status, content-range, content-length, body range)
    type Case = (
        &'static str,
        Method,
        Vec<(&'static str, String)>,
        u16,
        Option<&'static str>,
        Option<&'static str>,
        Option<(u64, u64)>,
    );
    let cases: Vec<Case> = vec![
        (
            "size=100&ranges=1",
            Method::GET,
            r("bytes=10-19"),
            206,
            Some("bytes 10-19/100"),
            Some("10"),
            Some((10, 20)),
        ),
        (
            "size=100&ranges=1",
            Method::GET,
            r("bytes=-5"),
            206,
            Some("bytes 95-99/100"),
            Some("5"),
            Some((95, 100)),
        ),
        (
            "size=100&ranges=1",
            Method::GET,
            r("bytes=90-"),
            206,
            Some("bytes 90-99/100"),
            Some("10"),
            Some((90, 100)),
        ),
        (
            "size=100&ranges=1",
            Method::GET,
            r("bytes=100-"),
            416,
            Some("bytes */100"),
            Some("0"),
            None,
        ),
        (
            "size=100&ranges=1",
            Method::GET,
            r("bytes=0-1,4-5"),
            200,
            None,
            Some("100"),
            Some((0, 100)),
        ),
        (
            "size=100",
            Method::GET,
            r("bytes=10-19"),
            200,
            None,
            Some("100"),
            Some((0, 100)),
        ),
        (
            "size=100&ranges=1",
            Method::HEAD,
            r("bytes=10-19"),
            200,
            None,
            Some("100"),
            None,
        ),
        (
            "size=100&ranges=1&status=404",
            Method::GET,
            r("bytes=10-19"),
            404,
            None,
            Some("100"),
            Some((0, 100)),
        ),
        (
            "size=100&ranges=1&etag=v1",
            Method::GET,
            vec![("range", "bytes=0-9".into()), ("if-range", "\"v1\"".into())],
            206,
            Some("bytes 0-9/100"),
            Some("10"),
            Some((0, 10)),
        ),
        (
            "size=100&ranges=1&etag=v2",
            Method::GET,
            vec![("range", "bytes=0-9".into()), ("if-range", "\"v1\"".into())],
            200,
            None,
            Some("100"),
            Some((0, 100)),
        ),
    ];
    for (query, method, headers, status, crange, clen, body) in cases {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = answer_of(run(method.clone(), "/p", query, &hs));
        let label = format!("{method} {query} {headers:?}");
        assert_eq!(a.status.as_u16(), status, "{label}");
        let text = |n| a.headers.get(n).map(|v: &HeaderValue| v.to_str().unwrap());
        assert_eq!(text(header::CONTENT_RANGE), crange, "{label}");
        assert_eq!(text(header::CONTENT_LENGTH), clen, "{label}");
        assert_eq!(body_range(&a), body, "{label}");
    }
}

#[test]
fn failures_and_delays() {
    let p = run(Method::GET, "/p", "fail=close&delay_ms=5", &[]);
    assert_eq!(p.delay, Some(Duration::from_millis(5)));
    assert!(matches!(p.action, Action::Close));
    assert!(matches!(
        run(Method::GET, "/p", "fail=hang", &[]).action,
        Action::Hang
    ));
    assert_eq!(run(Method::GET, "/p", "delay_ms=0", &[]).delay, None);
    let a = get("fail=midbody&size=100", &[]);
    match a.body {
        BodyPlan::Stream { end_mode, .. } => assert_eq!(end_mode, BodyEnd::FailAt(50)),
        BodyPlan::Empty => panic!("midbody needs a body"),
    }
    let a = get("chunk=10&chunk_ms=20&size=100", &[]);
    match a.body {
        BodyPlan::Stream { frame, pause, .. } => {
            assert_eq!((frame, pause), (10, Some(Duration::from_millis(20))));
        }
        BodyPlan::Empty => panic!("expected a body"),
    }
}

#[test]
fn variant_values() {
    let cases: Vec<(&str, Vec<(&str, &str)>, Option<&str>)> = vec![
        ("", vec![("accept-encoding", "gzip")], None),
        (
            "vary=Accept-Encoding",
            vec![("accept-encoding", "gzip")],
            Some("gzip"),
        ),
        ("vary=Accept-Encoding", vec![], Some("")),
        (
            "vary=Accept-Encoding",
            vec![("accept-encoding", "gzip"), ("accept-encoding", "br")],
            Some("gzip, br"),
        ),
        (
            "vary=Accept-Encoding,%20X-A",
            vec![("x-a", "1"), ("accept-encoding", "br")],
            Some("br,1"),
        ),
        ("vary=*", vec![("x-a", "1")], Some("")),
    ];
    for (query, headers, want) in cases {
        let mut map = HeaderMap::new();
        for (k, v) in &headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let params = Params::from_pairs(&parse_query(query)).unwrap();
        let view = RequestView {
            method: &Method::GET,
            path: "/p",
            headers: &map,
        };
        assert_eq!(
            variant_value(view, &params).as_deref(),
            want,
            "{query} {headers:?}"
        );
    }
}
