//! `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` against a response.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use tiercel_edge::protocol::{Precondition, evaluate_preconditions, not_modified_headers};

use crate::input::{headers, take};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::OPTIONS,
];
const ETAGS: [&str; 4] = ["\"v1\"", "W/\"v1\"", "\"\"", "W/\"x,y\""];

/// Properties: without any conditional field the answer is to proceed; a 304 only answers GET
/// or HEAD (RFC 9110 §13.1.2, §13.1.3), and its header section keeps only what §15.4.5 allows;
/// OPTIONS ignores every condition (§13.2.1).
pub fn check(data: &[u8]) {
    let (picks, rest) = take(data, 2);
    let method = &METHODS[usize::from(picks.first().copied().unwrap_or(0)) % METHODS.len()];
    let pick = usize::from(picks.get(1).copied().unwrap_or(0));
    let status = if pick & 0x80 == 0 {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let names: [HeaderName; 4] = [
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ];
    let req = headers(rest, &names);
    let mut resp = HeaderMap::new();
    if pick & 0x40 == 0 {
        resp.insert(
            header::ETAG,
            HeaderValue::from_static(ETAGS[pick % ETAGS.len()]),
        );
    }
    if pick & 0x20 == 0 {
        resp.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
    }
    resp.insert(
        header::DATE,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:50:37 GMT"),
    );
    resp.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));

    let outcome = evaluate_preconditions(method, &req, status, &resp);
    if req.is_empty() || *method == Method::OPTIONS {
        assert_eq!(outcome, Precondition::Proceed);
    }
    if outcome == Precondition::NotModified {
        assert!(
            *method == Method::GET || *method == Method::HEAD,
            "304 for {method}"
        );
        let h = not_modified_headers(&resp);
        assert!(!h.contains_key(header::CONTENT_TYPE));
    }
}
