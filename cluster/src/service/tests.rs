use std::sync::Arc;
use std::time::Duration;

use super::*;

fn spec(json: serde_json::Value) -> Result<Service, ServiceError> {
    compile(parse_spec(json)?)
}

fn minimal() -> serde_json::Value {
    serde_json::json!({"name": "site-a", "hosts": ["www.example.com"]})
}

fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut doc = minimal();
    doc[key] = value;
    doc
}

fn err_of(doc: serde_json::Value) -> String {
    match spec(doc) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_full_document_compiles_to_typed_values() {
    let pair = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
    let doc = serde_json::json!({
        "name": "site-a",
        "hosts": ["WWW.Example.com", "*.cdn.example.com"],
        "origins": ["http://127.0.0.1:9000", {"url": "https://o2.example.com:8443/", "weight": 3}],
        "balance": "least_conn",
        "health_check": {"path": "/healthz", "interval": "1s", "timeout": "500ms"},
        "shields": ["http://10.0.0.1:8081#weight=2"],
        "tls": {"cert": pair.cert.pem(), "key": pair.signing_key.serialize_pem()},
        "compress": {"types": ["text/*", "Application/JSON"], "min_size": 512, "algorithms": ["gzip", "br"]},
        "access": {"allow": ["10.0.0.0/8", "::1"], "deny": ["10.1.0.0/16"], "methods": ["GET", "HEAD"]},
        "rate_limit": {"per_ip": "600/min", "burst": 20},
        "ttl": {"default": "5m", "max": "1h"},
        "key": {"query": {"allow": ["id", "v"]}, "headers": ["X-Device"]},
        "request_headers": {"set": {"x-site": "a"}, "remove": ["cookie"]},
        "response_headers": {"remove": ["server", "x-powered-by"]}
    });
    let s = spec(doc).unwrap();
    assert_eq!(
        s.hosts,
        vec![
            HostPattern::Exact("www.example.com".into()),
            HostPattern::Suffix("cdn.example.com".into())
        ]
    );
    assert_eq!(
        s.origins,
        vec![
            Origin {
                url: "http://127.0.0.1:9000".into(),
                weight: 1
            },
            Origin {
                url: "https://o2.example.com:8443".into(),
                weight: 3
            }
        ]
    );
    assert_eq!(s.balance, Balance::LeastConn);
    let hc = s.health_check.unwrap();
    assert_eq!(hc.path, "/healthz");
    assert_eq!(hc.interval, Duration::from_secs(1));
    assert_eq!(hc.timeout, Duration::from_millis(500));
    assert!(s.tls.is_some());
    let c = s.compress.unwrap();
    assert_eq!(c.algorithms, vec![Encoding::Gzip, Encoding::Br]);
    assert!(c.compresses("text/html; charset=utf-8"));
    assert!(c.compresses("application/json"));
    assert!(!c.compresses("image/png"));
    assert!(s.access.admits("10.2.3.4".parse().unwrap()));
    assert!(s.access.admits("::ffff:10.2.3.4".parse().unwrap()));
    assert!(!s.access.admits("10.1.3.4".parse().unwrap()));
    assert!(!s.access.admits("192.168.1.1".parse().unwrap()));
    assert!(s.access.allows_method(&http::Method::HEAD));
    assert!(!s.access.allows_method(&http::Method::POST));
    assert_eq!(
        s.rate_limit,
        Some(RateLimit {
            count: 600,
            period: Duration::from_secs(60),
            burst: 20
        })
    );
    assert_eq!(s.ttl.default, Some(Duration::from_secs(300)));
    assert_eq!(s.key.query, QueryKey::Allow(vec!["id".into(), "v".into()]));
    assert_eq!(s.key.headers[0].as_str(), "x-device");
    let mut h = http::HeaderMap::new();
    h.insert("cookie", "a=1".parse().unwrap());
    s.request_headers.apply(&mut h);
    assert!(!h.contains_key("cookie"));
    assert_eq!(h["x-site"], "a");
}

#[test]
fn the_same_document_parses_from_toml() {
    let text = r#"
        name = "site-b"
        hosts = ["b.example"]
        origins = [{ url = "http://127.0.0.1:9001", weight = 2 }, "http://127.0.0.1:9002"]
        rate_limit = { per_ip = "20/s" }
        [key]
        query = "sort"
    "#;
    let table: toml::Table = toml::from_str(text).unwrap();
    let s = compile(parse_spec(toml::Value::Table(table)).unwrap()).unwrap();
    assert_eq!(s.origins.len(), 2);
    assert_eq!(s.origins[0].weight, 2);
    assert_eq!(s.key.query, QueryKey::Sort);
    assert_eq!(s.rate_limit.unwrap().burst, 20);
}

#[test]
fn every_bad_value_is_refused_naming_its_key() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!({"name": "a"}), "missing field `hosts`"),
        (
            with("hosts", serde_json::json!([])),
            "hosts: at least one host",
        ),
        (with("hosts", serde_json::json!(["a b"])), "hosts[0]:"),
        (with("hosts", serde_json::json!(["a.*.com"])), "hosts[0]:"),
        (with("hosts", serde_json::json!(["a.com:80"])), "hosts[0]:"),
        (
            with("hostz", serde_json::json!([])),
            "unknown field `hostz`",
        ),
        (
            with("origins", serde_json::json!(["ftp://x"])),
            "origins[0]:",
        ),
        (
            with("origins", serde_json::json!(["http://x/path"])),
            "origins[0]:",
        ),
        (
            with(
                "origins",
                serde_json::json!([{"url": "http://x", "weight": 0}]),
            ),
            "origins[0].weight: must be between 1 and 1000",
        ),
        (
            with("balance", serde_json::json!("random")),
            "balance: expected",
        ),
        (
            with("health_check", serde_json::json!({"path": "/h"})),
            "health_check: needs origins",
        ),
        (
            with("shields", serde_json::json!(["http://s#weight=0"])),
            "shields[0]:",
        ),
        (
            with("tls", serde_json::json!({"cert": "nope", "key": "nope"})),
            "tls.cert:",
        ),
        (
            with("compress", serde_json::json!({"algorithms": ["lz4"]})),
            "compress.algorithms[0]: expected br, zstd or gzip",
        ),
        (
            with("compress", serde_json::json!({"types": ["html"]})),
            "compress.types[0]:",
        ),
        (
            with("access", serde_json::json!({"deny": ["10.0.0.0/33"]})),
            "access.deny[0]:",
        ),
        (
            with("access", serde_json::json!({"methods": ["get"]})),
            "access.methods[0]:",
        ),
        (
            with("rate_limit", serde_json::json!({"per_ip": "20/day"})),
            "rate_limit.per_ip:",
        ),
        (
            with("rate_limit", serde_json::json!({"per_ip": "0/s"})),
            "rate_limit.per_ip:",
        ),
        (
            with(
                "rate_limit",
                serde_json::json!({"per_ip": "5/s", "burst": 0}),
            ),
            "rate_limit.burst:",
        ),
        (
            with("ttl", serde_json::json!({"default": "2h", "max": "1h"})),
            "ttl.default: must not exceed ttl.max",
        ),
        (
            with("ttl", serde_json::json!({"max": "forever"})),
            "ttl.max:",
        ),
        (
            with("key", serde_json::json!({"query": "shuffle"})),
            "key.query:",
        ),
        (
            with(
                "key",
                serde_json::json!({"query": {"allow": ["a"], "deny": ["b"]}}),
            ),
            "key.query: give exactly one",
        ),
        (
            with("key", serde_json::json!({"headers": ["bad header"]})),
            "key.headers[0]:",
        ),
        (
            with("request_headers", serde_json::json!({"set": {"host": "x"}})),
            "request_headers.set.host:",
        ),
        (
            with(
                "response_headers",
                serde_json::json!({"remove": ["content-length"]}),
            ),
            "response_headers.remove[0]:",
        ),
        (
            with(
                "response_headers",
                serde_json::json!({"set": {"x-a": "a\u{1}b"}}),
            ),
            "response_headers.set.x-a:",
        ),
        (
            with(
                "origins",
                serde_json::json!([{"url": "http://x", "weight": "heavy"}]),
            ),
            "origins[0]",
        ),
        (with("name", serde_json::json!("a/b")), "name:"),
    ];
    for (doc, want) in cases {
        let got = err_of(doc.clone());
        assert!(got.contains(want), "{doc}: got {got:?}, want {want:?}");
    }
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let a = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b.example".into()]).unwrap();
    let got = err_of(with(
        "tls",
        serde_json::json!({"cert": a.cert.pem(), "key": b.signing_key.serialize_pem()}),
    ));
    assert!(got.starts_with("tls.key: does not match"), "{got}");
}

fn service(name: &str, hosts: &[&str]) -> Arc<Service> {
    Arc::new(spec(serde_json::json!({"name": name, "hosts": hosts})).unwrap())
}

#[test]
fn routing_prefers_exact_names_then_the_longest_suffix() {
    let services = [
        service("apex", &["example.com"]),
        service("wild", &["*.example.com"]),
        service("deep", &["*.img.example.com"]),
        service("www", &["www.example.com"]),
    ];
    let table = RoutingTable::build(services.iter().map(|s| (s.as_ref(), s.name.clone()))).unwrap();
    let route = |h: &str| table.route(h).cloned();
    assert_eq!(route("example.com").as_deref(), Some("apex"));
    assert_eq!(route("www.example.com").as_deref(), Some("www"));
    assert_eq!(route("a.example.com").as_deref(), Some("wild"));
    assert_eq!(route("a.b.example.com").as_deref(), Some("wild"));
    assert_eq!(route("x.img.example.com").as_deref(), Some("deep"));
    // The suffix itself is not matched by its wildcard.
    assert_eq!(route("img.example.com").as_deref(), Some("wild"));
    assert_eq!(route("example.org"), None);
    assert_eq!(route("notexample.com"), None);
    assert_eq!(route("com"), None);
}

#[test]
fn a_host_claimed_by_two_services_is_a_conflict_naming_both() {
    let services = [
        service("a", &["x.example", "*.y.example"]),
        service("b", &["*.y.example"]),
    ];
    let e = check_hosts(&services).unwrap_err();
    assert_eq!(e.host, "*.y.example");
    assert_eq!((e.first.as_str(), e.second.as_str()), ("a", "b"));
    assert!(check_hosts(&services[..1]).is_ok());
}

#[test]
fn ten_thousand_services_route_each_host_to_its_own() {
    let services: Vec<Arc<Service>> = (0..10_000)
        .map(|i| {
            service(
                &format!("s{i}"),
                &[&format!("h{i}.example"), &format!("*.w{i}.example")],
            )
        })
        .collect();
    let table = RoutingTable::build(services.iter().map(|s| (s.as_ref(), s.name.clone()))).unwrap();
    assert_eq!(table.len(), 20_000);
    for i in (0..10_000).step_by(997) {
        assert_eq!(
            table.route(&format!("h{i}.example")).unwrap(),
            &format!("s{i}")
        );
        assert_eq!(
            table.route(&format!("a.w{i}.example")).unwrap(),
            &format!("s{i}")
        );
    }
}
