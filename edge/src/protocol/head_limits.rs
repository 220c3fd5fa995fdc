//! The size limits of a request head, the same on every front end.
//!
//! HTTP/1.1 heads are bounded by hyper's parser as they arrive (431 past `limits.max_headers`
//! fields or `limits.max_request_head` bytes). HTTP/2 and HTTP/3 heads arrive compressed and are
//! decoded before anything of ours sees them: the decoder stops at the header-list size the node
//! advertised (`SETTINGS_MAX_HEADER_LIST_SIZE`, RFC 9113 §6.5.2), but counts no fields. This
//! check holds both limits on the decoded head, so a request the h1 listener refuses is refused
//! over h2 and h3 too, and never forwarded.

use http::{HeaderMap, Method, Uri};

/// The limits (`limits.max_headers`, `limits.max_request_head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Most field lines.
    pub max_fields: usize,
    /// Most bytes, counted as the head's HTTP/1.1 form would be.
    pub max_bytes: usize,
}

/// Bytes of a head's HTTP/1.1 form: request line and `name: value\r\n` per field.
pub fn head_size(method: &Method, uri: &Uri, headers: &HeaderMap) -> usize {
    // The target's length without formatting it (this runs on every h2 request).
    let target = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    let line = method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + fields + 2
}

/// Whether a decoded request head is within the limits (431 otherwise).
//= https://www.rfc-editor.org/rfc/rfc6585#section-5
//# The 431 status code indicates that the server is unwilling to process the request because
//# its header fields are too large.
pub fn within_head_limits(
    limits: &HeadLimits,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> bool {
    headers.len() <= limits.max_fields && head_size(method, uri, headers) <= limits.max_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(n: usize, value_len: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        for i in 0..n {
            h.append(
                http::HeaderName::from_bytes(format!("x-f{i}").as_bytes()).unwrap(),
                http::HeaderValue::from_str(&"v".repeat(value_len)).unwrap(),
            );
        }
        h
    }

    #[test]
    fn field_count_and_size_are_both_limits() {
        let l = HeadLimits {
            max_fields: 3,
            max_bytes: 200,
        };
        let uri: Uri = "/a".parse().unwrap();
        assert!(within_head_limits(&l, &Method::GET, &uri, &headers(3, 1)));
        assert!(!within_head_limits(&l, &Method::GET, &uri, &headers(4, 1)));
        assert!(!within_head_limits(
            &l,
            &Method::GET,
            &uri,
            &headers(1, 200)
        ));
        let long: Uri = format!("/{}", "a".repeat(200)).parse().unwrap();
        assert!(!within_head_limits(
            &l,
            &Method::GET,
            &long,
            &HeaderMap::new()
        ));
    }

    #[test]
    fn repeated_names_count_once_per_line() {
        let mut h = HeaderMap::new();
        for _ in 0..5 {
            h.append("cookie", http::HeaderValue::from_static("a=b"));
        }
        let l = HeadLimits {
            max_fields: 4,
            max_bytes: 10_000,
        };
        assert!(!within_head_limits(
            &l,
            &Method::GET,
            &"/".parse().unwrap(),
            &h
        ));
    }

    #[test]
    fn size_is_the_http1_form() {
        let mut h = HeaderMap::new();
        h.insert("host", http::HeaderValue::from_static("a.example"));
        // "GET /x HTTP/1.1\r\n" + "host: a.example\r\n" + "\r\n"
        assert_eq!(
            head_size(&Method::GET, &"/x".parse().unwrap(), &h),
            17 + 17 + 2
        );
    }
}
