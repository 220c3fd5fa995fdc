use super::*;
use http::{HeaderName, HeaderValue};

use TargetError::*;

fn run(uri: &str, hosts: &[&[u8]], version: Version) -> Result<String, TargetError> {
    let uri: Uri = uri.parse().unwrap();
    let mut h = HeaderMap::new();
    for v in hosts {
        h.append(
            HeaderName::from_static("host"),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    request_authority(&uri, &h, version)
}

fn ok(s: &str) -> Result<String, TargetError> {
    Ok(s.to_string())
}

#[test]
fn authorities() {
    let h1 = Version::HTTP_11;
    let h10 = Version::HTTP_10;
    let h2 = Version::HTTP_2;
    let h3 = Version::HTTP_3;
    type Case = (
        &'static str,
        &'static [&'static [u8]],
        Version,
        Result<String, TargetError>,
    );
    let cases: Vec<Case> = vec![
        // HTTP/1.1 origin-form: Host required, exactly once, valid.
        ("/a", &[b"example.com"], h1, ok("example.com")),
        ("/a", &[b"Example.COM"], h1, ok("example.com")),
        ("/a", &[b"example.com."], h1, ok("example.com")),
        ("/a", &[b"example.com:8080"], h1, ok("example.com:8080")),
        ("/a", &[b"example.com:080"], h1, ok("example.com:80")),
        ("/a", &[b"example.com:80"], h1, ok("example.com:80")),
        ("/a", &[b"example.com:"], h1, ok("example.com")),
        ("/a", &[b" example.com "], h1, ok("example.com")),
        ("/a", &[b"192.0.2.1:8080"], h1, ok("192.0.2.1:8080")),
        ("/a", &[b"[::1]"], h1, ok("[::1]")),
        ("/a", &[b"[2001:DB8::1]:443"], h1, ok("[2001:db8::1]:443")),
        (
            "/a",
            &[b"xn--bcher-kva.example"],
            h1,
            ok("xn--bcher-kva.example"),
        ),
        ("/a", &[b"a%2Db.example"], h1, ok("a%2db.example")),
        ("/a", &[], h1, Err(MissingHost)),
        ("/a", &[b"a.example", b"a.example"], h1, Err(MultipleHosts)),
        ("/a", &[b"a.example", b"b.example"], h1, Err(MultipleHosts)),
        ("/a", &[b""], h1, Err(InvalidHost)),
        ("/a", &[b"exa mple.com"], h1, Err(InvalidHost)),
        ("/a", &[b"user@example.com"], h1, Err(InvalidHost)),
        ("/a", &[b"user:pw@example.com"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com/path"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com?q"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com#f"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com:0"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com:65536"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com:+80"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com:8o"], h1, Err(InvalidHost)),
        ("/a", &[b"example.com:80:80"], h1, Err(InvalidHost)),
        ("/a", &[b":80"], h1, Err(InvalidHost)),
        ("/a", &[b"."], h1, Err(InvalidHost)),
        ("/a", &[b"[::1"], h1, Err(InvalidHost)),
        ("/a", &[b"[::1]x"], h1, Err(InvalidHost)),
        ("/a", &[b"[not-v6]"], h1, Err(InvalidHost)),
        ("/a", &[b"[fe80::1%25eth0]"], h1, Err(InvalidHost)),
        ("/a", &[b"::1"], h1, Err(InvalidHost)),
        ("/a", &[b"a%zzb"], h1, Err(InvalidHost)),
        ("/a", &[b"a%2"], h1, Err(InvalidHost)),
        ("/a", &[b"caf\xc3\xa9.example"], h1, Err(InvalidHost)),
        ("/a", &[b"a\"b"], h1, Err(InvalidHost)),
        // HTTP/1.1 absolute-form: the target wins, but Host is still required and checked.
        (
            "http://target.example/a",
            &[b"other.example"],
            h1,
            ok("target.example"),
        ),
        (
            "http://Target.Example:8080/a",
            &[b"x"],
            h1,
            ok("target.example:8080"),
        ),
        (
            "https://target.example/a",
            &[b"target.example"],
            h1,
            ok("target.example"),
        ),
        ("http://target.example/a", &[], h1, Err(MissingHost)),
        (
            "http://target.example/a",
            &[b"a", b"b"],
            h1,
            Err(MultipleHosts),
        ),
        (
            "http://target.example/a",
            &[b"bad host"],
            h1,
            Err(InvalidHost),
        ),
        (
            "http://user@target.example/a",
            &[b"target.example"],
            h1,
            Err(InvalidAuthority),
        ),
        (
            "http://target.example:0/a",
            &[b"target.example"],
            h1,
            Err(InvalidAuthority),
        ),
        (
            "ftp://target.example/a",
            &[b"target.example"],
            h1,
            Err(UnsupportedScheme),
        ),
        // HTTP/1.0: Host optional.
        ("/a", &[], h10, Err(NoAuthority)),
        ("/a", &[b"example.com"], h10, ok("example.com")),
        ("http://target.example/a", &[], h10, ok("target.example")),
        ("/a", &[], Version::HTTP_09, Err(NoAuthority)),
        // HTTP/2 and HTTP/3: :authority in the URI, Host must agree when both are present.
        ("https://example.com/a", &[], h2, ok("example.com")),
        ("https://example.com/a", &[], h3, ok("example.com")),
        (
            "https://example.com/a",
            &[b"example.com"],
            h2,
            ok("example.com"),
        ),
        (
            "https://example.com/a",
            &[b"EXAMPLE.com."],
            h2,
            ok("example.com"),
        ),
        (
            "https://example.com/a",
            &[b"other.example"],
            h2,
            Err(HostMismatch),
        ),
        (
            "https://example.com/a",
            &[b"example.com:8443"],
            h3,
            Err(HostMismatch),
        ),
        (
            "https://example.com/a",
            &[b"a", b"a"],
            h2,
            Err(MultipleHosts),
        ),
        ("/a", &[b"example.com"], h2, ok("example.com")),
        ("/a", &[], h2, Err(MissingHost)),
        ("/a", &[], h3, Err(MissingHost)),
        (
            "https://[::1]:8443/a",
            &[b"[::1]:8443"],
            h2,
            ok("[::1]:8443"),
        ),
    ];
    assert!(cases.len() >= 60);
    for (uri, hosts, version, want) in cases {
        let printable: Vec<_> = hosts.iter().map(|h| String::from_utf8_lossy(h)).collect();
        assert_eq!(
            run(uri, hosts, version),
            want,
            "{uri} Host {printable:?} {version:?}"
        );
    }
}

#[test]
fn methods() {
    let cases: Vec<(Method, Result<(), TargetError>)> = vec![
        (Method::GET, Ok(())),
        (Method::HEAD, Ok(())),
        (Method::POST, Ok(())),
        (Method::PUT, Ok(())),
        (Method::DELETE, Ok(())),
        (Method::OPTIONS, Ok(())),
        (Method::PATCH, Ok(())),
        (Method::from_bytes(b"PURGE").unwrap(), Ok(())),
        (Method::from_bytes(b"get").unwrap(), Ok(())),
        (Method::CONNECT, Err(MethodNotAllowed)),
        (Method::TRACE, Err(MethodNotAllowed)),
    ];
    for (m, want) in cases {
        assert_eq!(check_method(&m), want, "{m}");
    }
}

#[test]
fn statuses() {
    assert_eq!(MethodNotAllowed.status(), StatusCode::METHOD_NOT_ALLOWED);
    for e in [
        MissingHost,
        NoAuthority,
        MultipleHosts,
        InvalidHost,
        InvalidAuthority,
        HostMismatch,
        UnsupportedScheme,
        MalformedMethod,
    ] {
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
    }
}

#[test]
fn agrees_with_urlnorm() {
    // What we return must normalise to the same cache-key host as the purge side computes.
    for (raw, scheme, want) in [
        (
            "Example.COM.:80",
            tiercel_cluster::urlnorm::Scheme::Http,
            "example.com",
        ),
        (
            "example.com:443",
            tiercel_cluster::urlnorm::Scheme::Https,
            "example.com",
        ),
        (
            "example.com:8080",
            tiercel_cluster::urlnorm::Scheme::Http,
            "example.com:8080",
        ),
        ("[::1]:80", tiercel_cluster::urlnorm::Scheme::Http, "[::1]"),
    ] {
        let authority = run("/", &[raw.as_bytes()], Version::HTTP_11).unwrap();
        let n = tiercel_cluster::urlnorm::normalize(scheme, &authority, "/").unwrap();
        assert_eq!(n.host, want, "{raw}");
    }
}

proptest::proptest! {
    #[test]
    fn never_panics(host in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
        if let Ok(v) = HeaderValue::from_bytes(&host) {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, v);
            if let Ok(a) = request_authority(&Uri::from_static("/"), &h, Version::HTTP_11) {
                // Whatever we accept is printable ASCII without whitespace or userinfo.
                proptest::prop_assert!(a.bytes().all(|b| b.is_ascii_graphic() && b != b'@'));
            }
        }
    }
}
