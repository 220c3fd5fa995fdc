use super::*;
use http::HeaderValue;
use std::net::{Ipv4Addr, Ipv6Addr};

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

fn names(h: &HeaderMap) -> Vec<String> {
    let mut n: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
    n.sort();
    n
}

fn all(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// Input fields, and the field names left after stripping.
type StripCase = (Vec<(&'static str, &'static str)>, Vec<&'static str>);

#[test]
fn hop_by_hop_fields_are_removed() {
    let cases: Vec<StripCase> = vec![
        (
            vec![("connection", "close"), ("x-foo", "1"), ("x-bar", "2")],
            vec!["x-bar", "x-foo"],
        ),
        (
            vec![
                ("connection", "close, x-foo"),
                ("x-foo", "1"),
                ("x-bar", "2"),
            ],
            vec!["x-bar"],
        ),
        (
            vec![
                ("connection", "X-Foo"),
                ("connection", "x-bar"),
                ("x-foo", "1"),
                ("x-bar", "2"),
            ],
            vec![],
        ),
        (
            vec![
                ("connection", " , x-foo ,, "),
                ("x-foo", "1"),
                ("x-foo", "2"),
                ("accept", "*/*"),
            ],
            vec!["accept"],
        ),
        (
            vec![
                ("connection", "keep-alive, upgrade"),
                ("keep-alive", "timeout=5"),
                ("upgrade", "h2c"),
            ],
            vec![],
        ),
        (
            vec![
                ("proxy-connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "websocket"),
                ("trailer", "x-checksum"),
                ("content-type", "text/plain"),
            ],
            vec!["content-type"],
        ),
        // Not hop-by-hop for a gateway: relayed.
        (
            vec![
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("proxy-authenticate", "Basic"),
            ],
            vec!["proxy-authenticate", "proxy-authorization"],
        ),
        // End-to-end fields stay.
        (
            vec![
                ("cache-control", "max-age=1"),
                ("via", "1.1 a"),
                ("cdn-loop", "x"),
            ],
            vec!["cache-control", "cdn-loop", "via"],
        ),
        // Invalid option names are ignored, not fatal.
        (
            vec![
                ("connection", "bad name, x-ok"),
                ("x-ok", "1"),
                ("x-keep", "1"),
            ],
            vec!["x-keep"],
        ),
        (vec![], vec![]),
    ];
    for (input, want) in cases {
        let mut h = headers(&input);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), want, "input {input:?}");
    }
}

fn ctx(peer: IpAddr, scheme: Scheme, version: Version) -> ClientContext {
    ClientContext {
        peer,
        scheme,
        version,
    }
}

const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 60));

#[test]
fn forwarding_headers_on_a_fresh_request() {
    let mut h = HeaderMap::new();
    add_forwarding_headers(
        &mut h,
        &ctx(V4, Scheme::Https, Version::HTTP_11),
        "example.com",
        &HopIdentity::new("tiercel", "edge-1"),
    );
    assert_eq!(all(&h, "x-forwarded-for"), ["192.0.2.60"]);
    assert_eq!(all(&h, "x-forwarded-proto"), ["https"]);
    assert_eq!(
        all(&h, "forwarded"),
        ["for=192.0.2.60;proto=https;host=example.com"]
    );
    assert_eq!(all(&h, "via"), ["1.1 edge-1"]);
    assert_eq!(h.len(), 4);
}

#[test]
fn forwarding_headers_extend_existing_lists() {
    let mut h = headers(&[
        ("x-forwarded-for", "203.0.113.1, 198.51.100.2"),
        ("x-forwarded-for", "198.51.100.3"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=203.0.113.1;proto=https"),
        ("via", "1.0 fred, 1.1 p.example.net"),
    ]);
    add_forwarding_headers(
        &mut h,
        &ctx(V4, Scheme::Http, Version::HTTP_2),
        "example.com:8080",
        &HopIdentity::new("tiercel", "edge-1"),
    );
    assert_eq!(
        all(&h, "x-forwarded-for"),
        ["203.0.113.1, 198.51.100.2, 198.51.100.3, 192.0.2.60"]
    );
    assert_eq!(all(&h, "x-forwarded-proto"), ["http"]);
    assert_eq!(
        all(&h, "forwarded"),
        ["for=203.0.113.1;proto=https, for=192.0.2.60;proto=http;host=\"example.com:8080\""]
    );
    assert_eq!(all(&h, "via"), ["1.0 fred, 1.1 p.example.net, 2 edge-1"]);
}

#[test]
fn forwarded_ipv6_and_mapped_addresses() {
    let cases: Vec<(IpAddr, &str, &str, &str)> = vec![
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xcafe, 0, 0, 0, 0, 0x17)),
            "[2001:db8::1]:8443",
            "2001:db8:cafe::17",
            "for=\"[2001:db8:cafe::17]\";proto=https;host=\"[2001:db8::1]:8443\"",
        ),
        (
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            "localhost",
            "::1",
            "for=\"[::1]\";proto=https;host=localhost",
        ),
        (
            IpAddr::V6(Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped()),
            "example.com",
            "198.51.100.7",
            "for=198.51.100.7;proto=https;host=example.com",
        ),
        (V4, "", "192.0.2.60", "for=192.0.2.60;proto=https"),
        (
            V4,
            "we\"ird\\",
            "192.0.2.60",
            "for=192.0.2.60;proto=https;host=\"we\\\"ird\\\\\"",
        ),
        (
            V4,
            "bad\u{7f}host",
            "192.0.2.60",
            "for=192.0.2.60;proto=https",
        ),
    ];
    for (peer, host, xff, forwarded) in cases {
        let mut h = HeaderMap::new();
        add_forwarding_headers(
            &mut h,
            &ctx(peer, Scheme::Https, Version::HTTP_3),
            host,
            &HopIdentity::new("tiercel", "e"),
        );
        assert_eq!(all(&h, "x-forwarded-for"), [xff], "peer {peer}");
        assert_eq!(all(&h, "forwarded"), [forwarded], "peer {peer}");
        assert_eq!(all(&h, "via"), ["3 e"]);
    }
}

#[test]
fn via_entries() {
    let cases = [
        (Version::HTTP_09, "edge", "0.9 edge"),
        (Version::HTTP_10, "edge", "1.0 edge"),
        (Version::HTTP_11, "edge", "1.1 edge"),
        (Version::HTTP_2, "edge", "2 edge"),
        (Version::HTTP_3, "edge", "3 edge"),
        (Version::HTTP_11, "edge:8080", "1.1 edge:8080"),
        (Version::HTTP_11, "my edge/1", "1.1 my-edge-1"),
        (Version::HTTP_11, "", "1.1 tiercel"),
        (Version::HTTP_11, "\u{e9}", "1.1 --"),
    ];
    for (version, name, want) in cases {
        let mut h = HeaderMap::new();
        HopIdentity::new("tiercel", name).add_via(&mut h, version);
        assert_eq!(all(&h, "via"), [want], "{version:?} {name:?}");
    }
    let mut h = headers(&[("via", "1.1 shield")]);
    HopIdentity::new("tiercel", "edge").add_via(&mut h, Version::HTTP_2);
    assert_eq!(all(&h, "via"), ["1.1 shield, 2 edge"]);
}

#[test]
fn cdn_loop_counting() {
    let cases: Vec<(Vec<&str>, &str, usize)> = vec![
        (vec![], "tiercel", 0),
        (vec!["tiercel"], "tiercel", 1),
        (vec!["Tiercel"], "tiercel", 1),
        (vec!["tiercel, tiercel"], "tiercel", 2),
        (vec!["foo, tiercel; v=1", "bar", "tiercel"], "tiercel", 2),
        (vec!["tiercel;v=1;x=\"a, tiercel\""], "tiercel", 1),
        (vec!["foo; note=\"tiercel, tiercel\", bar"], "tiercel", 0),
        (vec!["tiercel-edge, tiercelx, xtiercel"], "tiercel", 0),
        (vec!["  tiercel  ;  a=b  "], "tiercel", 1),
        (vec![",,tiercel,,"], "tiercel", 1),
        (
            vec!["cdn.example.com:8080, cdn.example.com"],
            "cdn.example.com",
            1,
        ),
        (vec!["cdn.example.com:8080"], "cdn.example.com:8080", 1),
        (vec!["my-cdn"], "my cdn", 1),
    ];
    for (lines, token, want) in cases {
        let mut h = HeaderMap::new();
        for l in &lines {
            h.append(CDN_LOOP, HeaderValue::from_str(l).unwrap());
        }
        assert_eq!(cdn_loop_count(&h, token), want, "{lines:?} {token}");
    }
}

#[test]
fn cdn_loop_add_then_count() {
    let mut h = headers(&[("cdn-loop", "other; v=2")]);
    HopIdentity::new("tiercel", "edge-1").add_cdn_loop(&mut h);
    assert_eq!(all(&h, "cdn-loop"), ["other; v=2, tiercel; node=edge-1"]);
    assert_eq!(cdn_loop_count(&h, "tiercel"), 1);
    HopIdentity::new("tiercel", "shield:2").add_cdn_loop(&mut h);
    assert_eq!(cdn_loop_count(&h, "tiercel"), 2);
    let mut h = HeaderMap::new();
    HopIdentity::new("my cdn", "n").add_cdn_loop(&mut h);
    assert_eq!(all(&h, "cdn-loop"), ["my-cdn; node=n"]);
    assert_eq!(cdn_loop_count(&h, "my cdn"), 1);
}

#[test]
fn a_node_recognises_its_own_cdn_info() {
    let mut h = headers(&[("cdn-loop", "other; node=edge-1")]);
    assert!(
        !cdn_loop_through(&h, "tiercel", "edge-1"),
        "another CDN's node"
    );
    HopIdentity::new("tiercel", "edge-1").add_cdn_loop(&mut h);
    assert!(cdn_loop_through(&h, "tiercel", "edge-1"));
    assert!(cdn_loop_through(&h, "Tiercel", "edge-1"));
    assert!(!cdn_loop_through(&h, "tiercel", "edge-2"));
    assert!(!cdn_loop_through(&h, "tiercel", "edge"));
    let quoted = headers(&[("cdn-loop", "tiercel; v=1; node=\"s-1\"")]);
    assert!(cdn_loop_through(&quoted, "tiercel", "s-1"));
    assert!(!cdn_loop_through(
        &headers(&[("cdn-loop", "tiercel")]),
        "tiercel",
        "x"
    ));
}

#[test]
fn max_forwards() {
    let cases: Vec<(Method, Vec<&str>, bool, Vec<&str>)> = vec![
        (Method::TRACE, vec!["0"], false, vec!["0"]),
        (Method::OPTIONS, vec!["0"], false, vec!["0"]),
        (Method::OPTIONS, vec!["5"], true, vec!["4"]),
        (Method::TRACE, vec!["1"], true, vec!["0"]),
        (Method::TRACE, vec!["007"], true, vec!["6"]),
        (
            Method::TRACE,
            vec!["99999999999999999999"],
            true,
            vec!["4294967294"],
        ),
        (Method::TRACE, vec![], true, vec![]),
        (Method::TRACE, vec!["-1"], true, vec!["-1"]),
        (Method::TRACE, vec!["x"], true, vec!["x"]),
        (Method::TRACE, vec!["1", "2"], true, vec!["1", "2"]),
        (Method::GET, vec!["0"], true, vec!["0"]),
    ];
    for (method, lines, want, after) in cases {
        let mut h = HeaderMap::new();
        for l in &lines {
            h.append(header::MAX_FORWARDS, HeaderValue::from_str(l).unwrap());
        }
        assert_eq!(
            decrement_max_forwards(&method, &mut h),
            want,
            "{method} {lines:?}"
        );
        assert_eq!(all(&h, "max-forwards"), after, "{method} {lines:?}");
    }
}

#[test]
fn connection_options_are_lowercased_members() {
    let h = headers(&[("connection", "Close, Upgrade"), ("connection", "x-foo")]);
    assert_eq!(connection_options(&h), ["close", "upgrade", "x-foo"]);
    assert!(connection_options(&HeaderMap::new()).is_empty());
}

#[test]
fn addresses_are_written_as_display_writes_them() {
    let mut addresses: Vec<IpAddr> = (0..=255u8)
        .map(|o| IpAddr::V4(Ipv4Addr::new(o, 255 - o, o / 2, o.wrapping_mul(7))))
        .collect();
    addresses.extend([
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::BROADCAST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ]);
    for ip in addresses {
        let mut out = Vec::new();
        push_ip(&mut out, ip);
        assert_eq!(out, ip.to_string().as_bytes(), "{ip}");
    }
}
