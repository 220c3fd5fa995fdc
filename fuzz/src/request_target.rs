//! Request targets and authorities through URL normalisation into cache keys.

use tiercel_cluster::urlnorm::{Scheme, normalize};
use tiercel_edge::key::{KeyRules, QueryRule, derive_key};

/// Properties, for any target hyper accepts as a path and query: the canonical target is one
/// hyper accepts too; normalising it again changes nothing (so the key of what is asked
/// upstream is the key of the request, under every query rule); the canonical host is a valid
/// `Host` value.
pub fn check(data: &[u8]) {
    let (authority, target) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"example.com"[..], data),
    };
    let (Ok(authority), Ok(target)) = (std::str::from_utf8(authority), std::str::from_utf8(target))
    else {
        return;
    };
    if http::uri::PathAndQuery::try_from(target).is_err() {
        return;
    }
    for scheme in [Scheme::Http, Scheme::Https] {
        let Ok(asked) = normalize(scheme, authority, target) else {
            continue;
        };
        assert!(
            http::uri::PathAndQuery::try_from(asked.path_and_query.as_str()).is_ok(),
            "{:?}",
            asked.path_and_query
        );
        assert!(
            http::HeaderValue::from_str(&asked.host).is_ok(),
            "{:?}",
            asked.host
        );
        let again = normalize(scheme, &asked.host, &asked.path_and_query)
            .unwrap_or_else(|e| panic!("{asked:?} does not normalise again: {e}"));
        assert_eq!(again, asked);
        for query in [QueryRule::Keep, QueryRule::Sort, QueryRule::Ignore] {
            let rules = KeyRules {
                query,
                ..KeyRules::default()
            };
            assert_eq!(
                derive_key("svc", scheme, &asked, &rules),
                derive_key("svc", scheme, &again, &rules)
            );
        }
    }
}
