use super::*;
use tiercel_cluster::urlnorm::normalize;

fn url(host: &str, pq: &str) -> NormalizedUrl {
    NormalizedUrl {
        host: host.to_string(),
        path_and_query: pq.to_string(),
    }
}

fn key(service: &str, scheme: Scheme, host: &str, pq: &str, rules: &KeyRules) -> CacheKey {
    derive_key(service, scheme, &url(host, pq), rules)
}

fn k(host: &str, pq: &str) -> CacheKey {
    key("svc", Scheme::Https, host, pq, &KeyRules::default())
}

#[test]
fn hex_round_trip() {
    let key = CacheKey([0xab; 32]);
    assert_eq!(key.to_hex(), "ab".repeat(32));
    assert_eq!(key.to_string(), key.to_hex());
    assert_eq!(CacheKey::from_hex(&key.to_hex()), Some(key));
    assert_eq!(CacheKey::from_hex(&"AB".repeat(32)), Some(key));
    let mut bytes = [0u8; 32];
    bytes[0] = 0x01;
    bytes[31] = 0xf0;
    let key = CacheKey(bytes);
    assert_eq!(&key.to_hex()[..2], "01");
    assert_eq!(&key.to_hex()[62..], "f0");
    assert_eq!(CacheKey::from_hex(&key.to_hex()), Some(key));
    for bad in [
        "",
        "ab",
        &"ab".repeat(33),
        &format!("{}g", "a".repeat(63)),
        &"é".repeat(32),
    ] {
        assert_eq!(CacheKey::from_hex(bad), None, "{bad:?}");
    }
}

#[test]
fn golden_key_is_stable() {
    // Keys name objects on disk across restarts and versions: this value must never change
    // without bumping KEY_CONTEXT deliberately.
    let got = k("example.com", "/img/a.png?v=1").to_hex();
    assert_eq!(got, GOLDEN);
}

const GOLDEN: &str = "fe5b4e0ff3137ed4516ae9ce01e52dc49909f2b2704d6d7208ecd0cd0260b62a";

#[test]
fn every_field_matters() {
    let base = k("example.com", "/a?x=1");
    let rules = KeyRules::default();
    let others = [
        key("other", Scheme::Https, "example.com", "/a?x=1", &rules),
        key("svc", Scheme::Http, "example.com", "/a?x=1", &rules),
        k("example.org", "/a?x=1"),
        k("example.com:8443", "/a?x=1"),
        k("example.com", "/b?x=1"),
        k("example.com", "/a?x=2"),
        k("example.com", "/a"),
        k("example.com", "/a/?x=1"),
    ];
    for (i, other) in others.iter().enumerate() {
        assert_ne!(base, *other, "variant {i}");
    }
    assert_eq!(base, k("example.com", "/a?x=1"));
}

#[test]
fn length_prefixes_prevent_boundary_collisions() {
    let rules = KeyRules::default();
    let pairs = [
        (
            key("ab", Scheme::Http, "c", "/", &rules),
            key("a", Scheme::Http, "bc", "/", &rules),
        ),
        (
            key("svc", Scheme::Http, "ab", "/c", &rules),
            key("svc", Scheme::Http, "ab/", "c", &rules),
        ),
        (
            key("svc", Scheme::Http, "h", "/a?b", &rules),
            key("svc", Scheme::Http, "h", "/a", &rules),
        ),
        // Scheme excluded is not the same as an empty service shifted along.
        (
            key(
                "http",
                Scheme::Https,
                "h",
                "/",
                &KeyRules {
                    include_scheme: false,
                    ..rules.clone()
                },
            ),
            key("", Scheme::Http, "h", "/", &rules),
        ),
    ];
    for (i, (a, b)) in pairs.iter().enumerate() {
        assert_ne!(a, b, "pair {i}");
    }
}

#[test]
fn scheme_can_be_shared() {
    let shared = KeyRules {
        include_scheme: false,
        ..KeyRules::default()
    };
    assert_eq!(
        key("svc", Scheme::Http, "h", "/a", &shared),
        key("svc", Scheme::Https, "h", "/a", &shared)
    );
    let split = KeyRules::default();
    assert!(split.include_scheme);
    assert_ne!(
        key("svc", Scheme::Http, "h", "/a", &split),
        key("svc", Scheme::Https, "h", "/a", &split)
    );
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn query_rules() {
    let cases: Vec<(&str, QueryRule, &str)> = vec![
        ("b=2&a=1", QueryRule::Keep, "b=2&a=1"),
        ("", QueryRule::Keep, ""),
        ("b=2&a=1", QueryRule::Ignore, ""),
        ("b=2&a=1", QueryRule::Sort, "a=1&b=2"),
        ("a=2&a=1", QueryRule::Sort, "a=1&a=2"),
        ("b&a=1&&", QueryRule::Sort, "a=1&b"),
        ("", QueryRule::Sort, ""),
        ("&&", QueryRule::Sort, ""),
        (
            "a=1&utm_source=x&b=2",
            QueryRule::Deny(names(&["utm_source"])),
            "a=1&b=2",
        ),
        ("utm_source=x", QueryRule::Deny(names(&["utm_source"])), ""),
        ("a=1&b=2", QueryRule::Deny(vec![]), "a=1&b=2"),
        (
            "id=1&x=2&id=3",
            QueryRule::Allow(names(&["id"])),
            "id=1&id=3",
        ),
        ("x=2", QueryRule::Allow(names(&["id"])), ""),
        ("a=1&b=2", QueryRule::Allow(vec![]), ""),
        ("flag&x=1", QueryRule::Allow(names(&["flag"])), "flag"),
        ("ID=1&id=2", QueryRule::Allow(names(&["id"])), "id=2"),
        ("idx=1&id=2", QueryRule::Allow(names(&["id"])), "id=2"),
        ("a=b=c&d", QueryRule::Allow(names(&["a"])), "a=b=c"),
        ("~id=1&x=2", QueryRule::Allow(names(&["%7Eid"])), "~id=1"),
        (
            "a%2Fb=1&x=2",
            QueryRule::Allow(names(&["a%2fb"])),
            "a%2Fb=1",
        ),
        ("a=1&&b=2", QueryRule::Deny(names(&["x"])), "a=1&b=2"),
    ];
    for (query, rule, want) in cases {
        assert_eq!(apply_query_rule(query, &rule), want, "{query:?} {rule:?}");
    }
}

#[test]
fn query_rules_in_keys() {
    let n = |pq: &str| normalize(Scheme::Https, "example.com", pq).unwrap();
    let d = |pq: &str, rules: &KeyRules| derive_key("svc", Scheme::Https, &n(pq), rules);
    let ignore = KeyRules {
        query: QueryRule::Ignore,
        ..KeyRules::default()
    };
    assert_eq!(d("/a?x=1", &ignore), d("/a", &ignore));
    assert_eq!(d("/a?x=1", &ignore), d("/a", &KeyRules::default()));
    let sort = KeyRules {
        query: QueryRule::Sort,
        ..KeyRules::default()
    };
    assert_eq!(d("/a?b=2&a=1", &sort), d("/a?a=1&b=2", &sort));
    assert_ne!(
        d("/a?b=2&a=1", &KeyRules::default()),
        d("/a?a=1&b=2", &KeyRules::default())
    );
    let deny = KeyRules {
        query: QueryRule::Deny(names(&["utm_source"])),
        ..KeyRules::default()
    };
    assert_eq!(d("/a?utm_source=mail", &deny), d("/a", &deny));
    assert_eq!(d("/a?x=1&utm_source=mail", &deny), d("/a?x=1", &deny));
    // Normalisation happens before the key: escapes and dot segments do not split objects.
    assert_eq!(
        d("/%7Ea/./b?x=%7e", &KeyRules::default()),
        d("/~a/b?x=~", &KeyRules::default())
    );
}

proptest::proptest! {
    #[test]
    fn split_points_never_collide(s in "[a-z]{2,12}", cut in 1usize..11) {
        let cut = cut.min(s.len() - 1);
        let (a, b) = s.split_at(cut);
        let rules = KeyRules::default();
        let one = key(a, Scheme::Http, b, "/", &rules);
        let two = key(&s, Scheme::Http, "", "/", &rules);
        proptest::prop_assert_ne!(one, two);
    }

    #[test]
    fn any_query_rule_is_total(q in "[a-z0-9=&%~]{0,30}", names in proptest::collection::vec("[a-z%0-9]{0,5}", 0..4)) {
        for rule in [
            QueryRule::Keep,
            QueryRule::Ignore,
            QueryRule::Sort,
            QueryRule::Allow(names.clone()),
            QueryRule::Deny(names.clone()),
        ] {
            let out = apply_query_rule(&q, &rule);
            proptest::prop_assert!(out.len() <= q.len());
        }
    }
}

proptest::proptest! {
    /// The integrity rule as a property: for any target a client can send (anything `http`
    /// parses as a path and query), the key derived from the request equals the key derived
    /// from the canonical target the engine sends upstream, under every query rule; and that
    /// canonical target is itself a valid request target.
    #[test]
    fn the_key_of_a_request_is_the_key_of_what_is_asked_upstream(
        raw in "/[a-zA-Z0-9/.%\\\\?#:@!$&'()*+,;=_~-]{0,40}",
        host in "[a-zA-Z0-9.-]{1,12}(:[0-9]{1,4})?",
    ) {
        proptest::prop_assume!(http::uri::PathAndQuery::try_from(raw.as_str()).is_ok());
        let Ok(asked) = normalize(Scheme::Https, &host, &raw) else {
            return Ok(());
        };
        let sent = http::uri::PathAndQuery::try_from(asked.path_and_query.as_str());
        proptest::prop_assert!(sent.is_ok(), "{}", asked.path_and_query);
        let upstream = normalize(Scheme::Https, &asked.host, &asked.path_and_query).unwrap();
        for rules in [
            KeyRules::default(),
            KeyRules {
                query: QueryRule::Sort,
                ..KeyRules::default()
            },
            KeyRules {
                query: QueryRule::Ignore,
                ..KeyRules::default()
            },
        ] {
            proptest::prop_assert_eq!(
                derive_key("svc", Scheme::Https, &asked, &rules),
                derive_key("svc", Scheme::Https, &upstream, &rules)
            );
        }
    }
}

/// Keys are stored on disk and shared between nodes: the derivation is a contract. A key is
/// blake3 in derive-key mode over each field as a little-endian u64 length and its bytes.
#[test]
fn a_key_is_the_hash_of_its_length_prefixed_fields() {
    let reference = |fields: [&str; 5]| {
        let mut h = blake3::Hasher::new_derive_key("tiercel 2026-01 cache key v1");
        for f in fields {
            h.update(&(f.len() as u64).to_le_bytes());
            h.update(f.as_bytes());
        }
        CacheKey(*h.finalize().as_bytes())
    };
    let long = format!("/{}", "p".repeat(5000));
    for (service, host, path, query) in [
        ("svc", "example.com", "/a", "x=1"),
        ("", "h", "/", ""),
        ("svc", "example.com:8080", long.as_str(), "q"),
    ] {
        let pq = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        let rules = KeyRules::default();
        let scheme = if rules.include_scheme { "https" } else { "" };
        assert_eq!(
            key(service, Scheme::Https, host, &pq, &rules),
            reference([service, scheme, host, path, query]),
            "{service} {host} {pq}"
        );
    }
}
