//! Invalidation after unsafe methods (RFC 9111 §4.4).

use http::{HeaderMap, Method, StatusCode, header};
use tiercel_cluster::urlnorm::{NormalizedUrl, Scheme, normalize, parse_absolute};

use super::syntax::first_str;

/// After an unsafe method with a non-error (2xx/3xx) response: the target URI, plus Location
/// and Content-Location when they share its origin (scheme+host+port). Relative references
/// resolve against the target. No duplicates; the target comes first.
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.4
//# A cache MUST invalidate the target URI (Section 7.1 of [HTTP]) when it receives a non-error
//# status code in response to an unsafe request method (including methods whose safety is
//# unknown).
//= https://www.rfc-editor.org/rfc/rfc9111#section-4.4
//# A cache MAY invalidate other URIs when it receives a non-error status code in response to
//# an unsafe request method (including methods whose safety is unknown). In particular, the
//# URI(s) in the Location and Content-Location response header fields (if present) are
//# candidates for invalidation; other URIs might be discovered through mechanisms not
//# specified in this document. However, a cache MUST NOT trigger an invalidation under these
//# conditions if the origin (Section 4.3.1 of [HTTP]) of the URI to be invalidated differs
//# from that of the target URI (Section 7.1 of [HTTP]).
pub fn invalidated_uris(
    method: &Method,
    status: StatusCode,
    scheme: Scheme,
    target: &NormalizedUrl,
    resp_headers: &HeaderMap,
) -> Vec<NormalizedUrl> {
    if is_safe(method) {
        return Vec::new();
    }
    //= https://www.rfc-editor.org/rfc/rfc9111#section-4.4
    //# A "non-error response" is one with a 2xx (Successful) or 3xx (Redirection) status code.
    if !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut out = vec![target.clone()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(reference) = first_str(resp_headers, name) else {
            continue;
        };
        if let Some((s, url)) = resolve(scheme, target, reference)
            && s == scheme
            && url.host == target.host
            && !out.contains(&url)
        {
            out.push(url);
        }
    }
    out
}

//= https://www.rfc-editor.org/rfc/rfc9110#section-9.2.1
//# Of the request methods defined by this specification, the GET, HEAD, OPTIONS, and TRACE
//# methods are defined to be safe.
/// Whether `method` is safe; everything else, including unknown methods, is unsafe.
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Resolves a URI reference against the target (RFC 3986 §5.2) and normalises it. `None` for
/// references that are not http(s) or do not normalise.
//= https://www.rfc-editor.org/rfc/rfc3986#section-5.2.2
//# if defined(R.scheme) then T.scheme = R.scheme; T.authority = R.authority; ...
//# else if defined(R.authority) then T.authority = R.authority; ...
//# else if (R.path == "") then T.path = Base.path; if defined(R.query) then T.query = R.query
//# else T.query = Base.query;
//# else if (R.path starts-with "/") then T.path = remove_dot_segments(R.path);
//# else T.path = merge(Base.path, R.path); T.path = remove_dot_segments(T.path);
fn resolve(
    scheme: Scheme,
    base: &NormalizedUrl,
    reference: &str,
) -> Option<(Scheme, NormalizedUrl)> {
    let reference = reference.split('#').next().unwrap_or("");
    if has_scheme(reference) {
        return parse_absolute(reference).ok();
    }
    if let Some(rest) = reference.strip_prefix("//") {
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        return normalize(scheme, authority, &path)
            .ok()
            .map(|u| (scheme, u));
    }
    let target = if reference.is_empty() {
        base.path_and_query.clone()
    } else if reference.starts_with('?') {
        format!("{}{reference}", base.path())
    } else if reference.starts_with('/') {
        reference.to_string()
    } else {
        //= https://www.rfc-editor.org/rfc/rfc3986#section-5.2.3
        //# return a string consisting of the reference's path component appended to all but
        //# the last segment of the base URI's path (i.e., excluding any characters after the
        //# right-most "/" in the base URI path
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{reference}")
    };
    normalize(scheme, &base.host, &target)
        .ok()
        .map(|u| (scheme, u))
}

//= https://www.rfc-editor.org/rfc/rfc3986#section-3.1
//# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
fn has_scheme(reference: &str) -> bool {
    let Some(colon) = reference.find(':') else {
        return false;
    };
    let scheme = &reference[..colon];
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::headers;

    fn url(scheme: Scheme, host: &str, pq: &str) -> NormalizedUrl {
        normalize(scheme, host, pq).unwrap_or_else(|e| panic!("{host}{pq}: {e}"))
    }

    fn render(v: &[NormalizedUrl]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn methods_and_statuses() {
        let target = url(Scheme::Https, "example.com", "/a");
        let h = headers(&[]);
        let cases: &[(&str, u16, bool)] = &[
            ("GET", 200, false),
            ("HEAD", 200, false),
            ("OPTIONS", 200, false),
            ("TRACE", 200, false),
            ("POST", 200, true),
            ("PUT", 201, true),
            ("DELETE", 204, true),
            ("PATCH", 200, true),
            ("PURGE", 200, true),
            ("POST", 303, true),
            ("POST", 399, true),
            ("POST", 100, false),
            ("POST", 400, false),
            ("POST", 404, false),
            ("POST", 500, false),
        ];
        for &(m, code, want) in cases {
            let method = Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            let got = invalidated_uris(&method, status, Scheme::Https, &target, &h);
            let want: Vec<NormalizedUrl> = if want { vec![target.clone()] } else { vec![] };
            assert_eq!(got, want, "{m} {code}");
        }
    }

    /// (Location or Content-Location value) → the extra URI invalidated, if any. Target is
    /// https://example.com/dir/page?x=1.
    #[test]
    fn location_resolution_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("https://example.com/other", Some("example.com/other")),
            ("HTTPS://EXAMPLE.COM:443/other", Some("example.com/other")),
            ("https://example.com/dir/page?x=1", None),
            ("http://example.com/other", None),
            ("https://evil.com/other", None),
            ("https://example.com:8443/other", None),
            ("https://sub.example.com/other", None),
            ("//example.com/net", Some("example.com/net")),
            ("//evil.com/net", None),
            ("/abs/path", Some("example.com/abs/path")),
            ("/abs/../x/./y", Some("example.com/x/y")),
            ("rel", Some("example.com/dir/rel")),
            ("../up", Some("example.com/up")),
            ("./same?q=2", Some("example.com/dir/same?q=2")),
            ("?q=2", Some("example.com/dir/page?q=2")),
            ("", None),
            ("#frag", None),
            ("/p#frag", Some("example.com/p")),
            ("/%7Euser", Some("example.com/~user")),
            ("mailto:a@example.com", None),
            ("ftp://example.com/x", None),
            ("/has space", None),
            ("a:b/c", None),
        ];
        let target = url(Scheme::Https, "example.com", "/dir/page?x=1");
        for &(loc, want) in cases {
            for field in ["location", "content-location"] {
                let h = headers(&[(field, loc)]);
                let got =
                    invalidated_uris(&Method::POST, StatusCode::OK, Scheme::Https, &target, &h);
                let mut expected = vec![target.to_string()];
                expected.extend(want.map(str::to_string));
                assert_eq!(render(&got), expected, "{field}: {loc:?}");
            }
        }
    }

    #[test]
    fn both_fields_deduplicated() {
        let target = url(Scheme::Http, "example.com:8080", "/items");
        let h = headers(&[
            ("location", "/items/42"),
            ("content-location", "http://example.com:8080/items/42"),
        ]);
        let got = invalidated_uris(
            &Method::POST,
            StatusCode::CREATED,
            Scheme::Http,
            &target,
            &h,
        );
        assert_eq!(
            render(&got),
            vec!["example.com:8080/items", "example.com:8080/items/42"]
        );
    }

    #[test]
    fn ipv6_target() {
        let target = url(Scheme::Http, "[::1]:9000", "/a/b");
        let h = headers(&[("location", "c")]);
        let got = invalidated_uris(&Method::PUT, StatusCode::OK, Scheme::Http, &target, &h);
        assert_eq!(render(&got), vec!["[::1]:9000/a/b", "[::1]:9000/a/c"]);
    }

    #[test]
    fn safe_methods() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&m), "{m}");
        }
        for m in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::CONNECT,
        ] {
            assert!(!is_safe(&m), "{m}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(loc in "[ -~]{0,40}") {
            let target = url(Scheme::Https, "example.com", "/a/b");
            if let Ok(v) = http::HeaderValue::from_str(&loc) {
                let mut h = HeaderMap::new();
                h.insert(header::LOCATION, v);
                let got = invalidated_uris(&Method::POST, StatusCode::OK, Scheme::Https, &target, &h);
                proptest::prop_assert!(!got.is_empty() && got[0] == target);
                proptest::prop_assert!(got.iter().all(|u| u.host == target.host));
            }
        }
    }
}
