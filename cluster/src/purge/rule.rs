//! Purge rules: what one log entry tells a node to invalidate, and what a stored object is
//! matched on.
//!
//! A [`PurgeRequest`] from the log is expanded once, when it is applied, into [`PurgeRule`]s
//! whose patterns are already in the form the request path compares with: URL and prefix
//! patterns are scheme-less purge keys ([`NormalizedUrl::purge_key`]) and hosts are normalised
//! with [`normalize_host`]. Matching is then plain equality (or a byte prefix) with no parsing on
//! the request path.
//!
//! [`NormalizedUrl::purge_key`]: crate::urlnorm::NormalizedUrl::purge_key

use serde::{Deserialize, Serialize};

use super::wire::PurgeRequest;
use crate::urlnorm::{normalize_host, parse_absolute};

/// What a purge rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "pattern", rename_all = "snake_case")]
pub enum PurgeTarget {
    /// Every variant of one URL, by purge key (`example.com/a?b`).
    Url(String),
    /// Every URL whose purge key starts with these bytes (`example.com/static/`). The match is
    /// on bytes, not path segments: `example.com/img` also covers `example.com/img2/x`, which is
    /// what a user typing a prefix expects and never leaves a purged object valid.
    Prefix(String),
    /// Every object carrying this surrogate key (`Surrogate-Key` / `Cache-Tag`), exactly.
    Tag(String),
    /// Every object of this normalised host (`example.com`, `example.com:8080`).
    Host(String),
    /// Everything.
    All,
}

/// One purge as recorded by a node: a target, hard or soft, and the log index that created it.
///
/// An object stored at log index `s` is invalidated by the rule when the target matches and
/// `index > s`: the rule came after the object was filled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PurgeRule {
    /// What the rule matches.
    pub target: PurgeTarget,
    /// Soft purges mark objects stale (they may be served while revalidating or on origin
    /// error); hard purges make them gone.
    pub soft: bool,
    /// Log index of the purge.
    pub index: u64,
    /// The service the purge is limited to: it then matches only that service's objects, so
    /// a tenant's purge never reaches another's (even naming its host or tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl PurgeRule {
    /// Whether the rule covers the object, by definition (the reference the index is tested
    /// against).
    pub fn matches(&self, obj: &ObjectRef<'_>) -> bool {
        self.service.as_deref().is_none_or(|s| s == obj.service) && self.target.matches(obj)
    }
}

/// What the caching engine knows about a stored object, borrowed from its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectRef<'a> {
    /// The object's URL as [`NormalizedUrl::purge_key`](crate::urlnorm::NormalizedUrl::purge_key).
    pub url: &'a str,
    /// The normalised host (as [`normalize_host`] returns it).
    pub host: &'a str,
    /// Surrogate keys of the stored response.
    pub tags: &'a [String],
    /// The service (site) it was stored for.
    pub service: &'a str,
    /// The follower's applied index when the fill of this object started.
    pub stored_index: u64,
}

/// Whether a stored object may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgeVerdict {
    /// No rule newer than the object matches it.
    Valid,
    /// Only soft rules newer than the object match: treat it as stale (revalidate; may be served
    /// under stale-if-error / while revalidating).
    SoftPurged,
    /// A hard rule newer than the object matches: it must not be served.
    HardPurged,
}

/// Expands a purge from the log into rules at `index`.
///
/// URLs and prefixes are parsed with [`parse_absolute`] and reduced to purge keys; hosts go
/// through [`normalize_host`]; tags are kept as they are (empty ones are dropped). The
/// purge-service validates every item before it reaches the log, so an item that fails here
/// means the two sides disagree: it is skipped with a warning rather than failing the whole
/// entry, because the other items of the purge must still take effect.
pub fn rules_from_request(req: &PurgeRequest, index: u64) -> Vec<PurgeRule> {
    let soft = req.soft;
    let rule = |target| PurgeRule {
        target,
        soft,
        index,
        service: req.service.clone(),
    };
    let mut rules = Vec::with_capacity(
        req.urls.len() + req.prefixes.len() + req.tags.len() + req.hosts.len() + 1,
    );
    for url in &req.urls {
        match parse_absolute(url) {
            Ok((_, n)) => rules.push(rule(PurgeTarget::Url(n.purge_key()))),
            Err(e) => tracing::warn!(index, url = %url, error = %e, "skipping purge URL"),
        }
    }
    for prefix in &req.prefixes {
        match parse_absolute(prefix) {
            Ok((_, n)) => rules.push(rule(PurgeTarget::Prefix(n.purge_key()))),
            Err(e) => tracing::warn!(index, prefix = %prefix, error = %e, "skipping purge prefix"),
        }
    }
    for tag in &req.tags {
        if tag.is_empty() {
            tracing::warn!(index, "skipping empty purge tag");
        } else {
            rules.push(rule(PurgeTarget::Tag(tag.clone())));
        }
    }
    for host in &req.hosts {
        match normalize_host(host) {
            Ok(h) => rules.push(rule(PurgeTarget::Host(h))),
            Err(e) => tracing::warn!(index, host = %host, error = %e, "skipping purge host"),
        }
    }
    if req.all {
        rules.push(rule(PurgeTarget::All));
    }
    rules
}

impl PurgeTarget {
    /// Whether this target covers the object, by definition (the index answers the same
    /// question without a scan; this is the reference it is tested against).
    pub fn matches(&self, obj: &ObjectRef<'_>) -> bool {
        match self {
            PurgeTarget::Url(u) => obj.url == u,
            PurgeTarget::Prefix(p) => obj.url.starts_with(p.as_str()),
            PurgeTarget::Tag(t) => obj.tags.iter().any(|x| x == t),
            PurgeTarget::Host(h) => obj.host == h,
            PurgeTarget::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> PurgeRequest {
        PurgeRequest::default()
    }

    #[test]
    fn expands_every_kind_into_normalised_rules() {
        let r = PurgeRequest {
            service: None,
            urls: vec!["HTTPS://Example.com:443/a/../b?x=%7e".into()],
            prefixes: vec!["http://example.com/static".into()],
            tags: vec!["product-7".into()],
            hosts: vec!["Example.COM:443".into()],
            all: true,
            soft: true,
        };
        let rules = rules_from_request(&r, 42);
        let t = |target| PurgeRule {
            service: None,
            target,
            soft: true,
            index: 42,
        };
        assert_eq!(
            rules,
            vec![
                t(PurgeTarget::Url("example.com/b?x=~".into())),
                t(PurgeTarget::Prefix("example.com/static".into())),
                t(PurgeTarget::Tag("product-7".into())),
                t(PurgeTarget::Host("example.com".into())),
                t(PurgeTarget::All),
            ]
        );
    }

    #[test]
    fn invalid_items_are_skipped_and_the_rest_kept() {
        let r = PurgeRequest {
            urls: vec!["ftp://x/".into(), "http://a/1".into(), "http://u@h/".into()],
            prefixes: vec!["nope".into()],
            tags: vec![String::new(), "t".into()],
            hosts: vec!["a b".into()],
            ..req()
        };
        let rules = rules_from_request(&r, 3);
        let targets: Vec<_> = rules.iter().map(|r| r.target.clone()).collect();
        assert_eq!(
            targets,
            vec![PurgeTarget::Url("a/1".into()), PurgeTarget::Tag("t".into())]
        );
        assert!(rules.iter().all(|r| !r.soft && r.index == 3));
    }

    #[test]
    fn empty_request_gives_no_rules() {
        assert!(rules_from_request(&req(), 1).is_empty());
    }

    #[test]
    fn target_matching_by_definition() {
        let tags = vec!["a".to_string(), "b c".to_string()];
        let obj = ObjectRef {
            service: "",
            url: "example.com/img/1.png",
            host: "example.com",
            tags: &tags,
            stored_index: 0,
        };
        let cases: &[(PurgeTarget, bool)] = &[
            (PurgeTarget::Url("example.com/img/1.png".into()), true),
            (PurgeTarget::Url("example.com/img/1.pn".into()), false),
            (PurgeTarget::Prefix("example.com/img/".into()), true),
            (PurgeTarget::Prefix("example.com/im".into()), true),
            (PurgeTarget::Prefix("example.com/img/1.png".into()), true),
            (PurgeTarget::Prefix("example.com/img/1.png?".into()), false),
            (PurgeTarget::Prefix("example.co/".into()), false),
            (PurgeTarget::Tag("a".into()), true),
            (PurgeTarget::Tag("b c".into()), true),
            (PurgeTarget::Tag("b".into()), false),
            (PurgeTarget::Host("example.com".into()), true),
            (PurgeTarget::Host("example.com:8080".into()), false),
            (PurgeTarget::All, true),
        ];
        for (t, want) in cases {
            assert_eq!(t.matches(&obj), *want, "{t:?}");
        }
    }

    #[test]
    fn rules_have_a_stable_serialised_shape() {
        let r = PurgeRule {
            service: None,
            target: PurgeTarget::Prefix("h/p".into()),
            soft: false,
            index: 9,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"target":{"kind":"prefix","pattern":"h/p"},"soft":false,"index":9}"#
        );
        let all = serde_json::to_string(&PurgeTarget::All).unwrap();
        assert_eq!(all, r#"{"kind":"all"}"#);
        assert_eq!(serde_json::from_str::<PurgeRule>(&s).unwrap(), r);
    }
}
