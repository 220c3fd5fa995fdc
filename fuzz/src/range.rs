//! `Range` and `If-Range` against a representation of any length.

use http::{HeaderMap, HeaderValue, Method, header};
use tiercel_edge::protocol::range::MAX_PARTS;
use tiercel_edge::protocol::{RangeOutcome, content_range, evaluate_range, unsatisfied_range};

use crate::input::{headers, take, uint};

/// Properties: a partial answer lies inside the representation (`start <= end < len`); a
/// multipart one has 2 to `MAX_PARTS` such ranges, ascending and apart; without
/// a `Range` field, or for a method other than GET, the answer is the whole representation; a
/// 416 only answers a request that had a `Range`; the `Content-Range` values are well formed.
pub fn check(data: &[u8]) {
    let (len_bytes, rest) = take(data, 8);
    let len = uint(len_bytes);
    let req = headers(rest, &[header::RANGE, header::IF_RANGE]);
    let mut resp = HeaderMap::new();
    resp.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
    resp.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
    );
    resp.insert(
        header::DATE,
        HeaderValue::from_static("Sun, 06 Nov 1994 08:50:37 GMT"),
    );
    match evaluate_range(&Method::GET, &req, &resp, len) {
        RangeOutcome::Full => {}
        RangeOutcome::Partial { start, end } => {
            assert!(req.contains_key(header::RANGE));
            assert!(start <= end && end < len, "{start}-{end} of {len}");
            let v = content_range(start, end, len);
            assert_eq!(
                v.to_str().ok(),
                Some(format!("bytes {start}-{end}/{len}").as_str())
            );
        }
        RangeOutcome::Multi(ranges) => {
            assert!(req.contains_key(header::RANGE));
            assert!((2..=MAX_PARTS).contains(&ranges.len()), "{ranges:?}");
            assert!(
                ranges.iter().all(|&(s, e)| s <= e && e < len),
                "{ranges:?} of {len}"
            );
            assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "{ranges:?}");
        }
        RangeOutcome::Unsatisfiable => {
            assert!(req.contains_key(header::RANGE));
            let _ = unsatisfied_range(len);
        }
    }
    if !req.contains_key(header::RANGE) {
        assert_eq!(
            evaluate_range(&Method::GET, &req, &resp, len),
            RangeOutcome::Full
        );
    }
    assert_eq!(
        evaluate_range(&Method::HEAD, &req, &resp, len),
        RangeOutcome::Full
    );
}
