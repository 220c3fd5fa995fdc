use proptest::prelude::*;

use super::*;

fn rule(target: PurgeTarget, soft: bool, index: u64) -> PurgeRule {
    PurgeRule {
        service: None,
        target,
        soft,
        index,
    }
}

fn url(s: &str) -> PurgeTarget {
    PurgeTarget::Url(s.into())
}
fn prefix(s: &str) -> PurgeTarget {
    PurgeTarget::Prefix(s.into())
}
fn tag(s: &str) -> PurgeTarget {
    PurgeTarget::Tag(s.into())
}
fn host(s: &str) -> PurgeTarget {
    PurgeTarget::Host(s.into())
}

/// The definition: scan every rule.
fn naive(rules: &[PurgeRule], obj: &ObjectRef<'_>) -> PurgeVerdict {
    let newer = |soft| {
        rules
            .iter()
            .any(|r| r.soft == soft && r.index > obj.stored_index && r.matches(obj))
    };
    if newer(false) {
        PurgeVerdict::HardPurged
    } else if newer(true) {
        PurgeVerdict::SoftPurged
    } else {
        PurgeVerdict::Valid
    }
}

use PurgeVerdict::{HardPurged as H, SoftPurged as S, Valid as V};

#[test]
fn every_kind_against_older_equal_and_newer_objects() {
    let tags = vec!["t1".to_string(), "t2".to_string()];
    let obj = |stored_index| ObjectRef {
        service: "",
        url: "example.com/static/app.js?v=3",
        host: "example.com",
        tags: &tags,
        stored_index,
    };
    let hits = [
        url("example.com/static/app.js?v=3"),
        prefix("example.com/static/"),
        prefix("example.com/"),
        prefix("example.com/static/app.js?v=3"),
        tag("t2"),
        host("example.com"),
        PurgeTarget::All,
    ];
    let misses = [
        url("example.com/static/app.js"),
        url("example.com/static/app.js?v=30"),
        prefix("example.com/static/app.js?v=30"),
        prefix("example.org/"),
        prefix("xample.com/"),
        tag("t"),
        tag("t3"),
        host("example.com:8080"),
        host("example.co"),
    ];
    for target in hits.iter().chain(&misses) {
        let hit = hits.contains(target);
        for soft in [false, true] {
            let mut idx = PurgeIndex::new();
            idx.apply(&rule(target.clone(), soft, 10));
            let purged = if soft { S } else { H };
            let cases = [(0, purged), (9, purged), (10, V), (11, V), (u64::MAX, V)];
            for (stored, want) in cases {
                let want = if hit { want } else { V };
                assert_eq!(
                    idx.check(&obj(stored)),
                    want,
                    "{target:?} soft={soft} stored={stored}"
                );
            }
        }
    }
}

#[test]
fn hard_wins_over_soft_only_while_newer_than_the_object() {
    // (rules as (soft, index) on one URL, stored index, verdict)
    type Case = (&'static [(bool, u64)], u64, PurgeVerdict);
    let cases: &[Case] = &[
        (&[], 0, V),
        (&[(false, 5)], 4, H),
        (&[(false, 5)], 5, V),
        (&[(true, 5)], 4, S),
        (&[(false, 5), (true, 8)], 4, H),
        (&[(false, 5), (true, 8)], 5, S),
        (&[(false, 5), (true, 8)], 7, S),
        (&[(false, 5), (true, 8)], 8, V),
        (&[(true, 8), (false, 5)], 6, S),
        (&[(true, 3), (false, 9)], 4, H),
        (&[(false, 9), (false, 2)], 5, H),
        (&[(true, 9), (true, 2)], 5, S),
        (&[(false, 0)], 0, V),
    ];
    for (rules, stored, want) in cases {
        let mut idx = PurgeIndex::new();
        for (soft, index) in *rules {
            idx.apply(&rule(url("h/a"), *soft, *index));
        }
        let obj = ObjectRef {
            service: "",
            url: "h/a",
            host: "h",
            tags: &[],
            stored_index: *stored,
        };
        assert_eq!(idx.check(&obj), *want, "{rules:?} stored={stored}");
    }
}

#[test]
fn reset_soft_all_soft_purges_older_objects_but_keeps_hard_rules() {
    let mut idx = PurgeIndex::new();
    idx.apply(&rule(url("h/a"), false, 4));
    idx.reset_soft_all(10);
    let obj = |url, stored_index| ObjectRef {
        service: "",
        url,
        host: "h",
        tags: &[],
        stored_index,
    };
    assert_eq!(idx.check(&obj("h/a", 3)), H);
    assert_eq!(idx.check(&obj("h/a", 4)), S);
    assert_eq!(idx.check(&obj("h/b", 9)), S);
    assert_eq!(idx.check(&obj("h/b", 10)), V);
    // An older reset does not move the mark back.
    idx.reset_soft_all(6);
    assert_eq!(idx.check(&obj("h/b", 9)), S);
}

#[test]
fn pruning_keeps_the_newer_kind_of_a_pattern() {
    let mut idx = PurgeIndex::new();
    idx.apply(&rule(url("h/a"), false, 3));
    idx.apply(&rule(url("h/a"), true, 8));
    idx.apply(&rule(prefix("h/"), false, 5));
    idx.apply(&rule(tag("t"), true, 2));
    idx.apply(&rule(PurgeTarget::All, false, 4));
    assert_eq!(idx.len(), 4);
    idx.prune_below(5);
    assert_eq!(idx.len(), 1, "only h/a's soft mark at 8 survives");
    let obj = ObjectRef {
        service: "",
        url: "h/a",
        host: "h",
        tags: &[],
        stored_index: 5,
    };
    assert_eq!(idx.check(&obj), S);
    idx.prune_below(8);
    assert!(idx.is_empty());
}

#[test]
fn len_counts_distinct_patterns() {
    let mut idx = PurgeIndex::new();
    assert_eq!(idx.len(), 0);
    assert!(idx.is_empty());
    let rules = [
        rule(url("h/a"), false, 1),
        rule(url("h/a"), true, 2),
        rule(url("h/b"), false, 3),
        rule(prefix("h/a"), false, 4),
        rule(prefix("h/a"), false, 5),
        rule(prefix("h/"), false, 6),
        rule(tag("h/a"), false, 7),
        rule(host("h"), true, 8),
        rule(PurgeTarget::All, false, 9),
        rule(PurgeTarget::All, true, 10),
    ];
    for r in &rules {
        idx.apply(r);
    }
    assert_eq!(idx.len(), 7);
    assert!(!idx.is_empty());
}

#[test]
fn serialises_deterministically_and_round_trips() {
    let mut a = PurgeIndex::new();
    let mut b = PurgeIndex::new();
    let rules = [
        rule(url("h/b"), false, 3),
        rule(url("h/a"), true, 2),
        rule(prefix("h/x"), false, 5),
        rule(prefix("h/"), true, 6),
        rule(tag("z"), false, 7),
        rule(tag("a"), false, 8),
        rule(host("h"), true, 9),
    ];
    for r in &rules {
        a.apply(r);
    }
    for r in rules.iter().rev() {
        b.apply(r);
    }
    a.reset_soft_all(1);
    b.reset_soft_all(1);
    let sa = serde_json::to_string(&a).unwrap();
    assert_eq!(sa, serde_json::to_string(&b).unwrap());
    assert_eq!(
        sa,
        concat!(
            r#"{"urls":[["h/a",{"hard":0,"soft":2}],["h/b",{"hard":3,"soft":0}]],"#,
            r#""prefixes":[["h/",{"hard":0,"soft":6}],["h/x",{"hard":5,"soft":0}]],"#,
            r#""tags":[["a",{"hard":8,"soft":0}],["z",{"hard":7,"soft":0}]],"#,
            r#""hosts":[["h",{"hard":0,"soft":9}]],"all":{"hard":0,"soft":1}}"#
        )
    );
    let back: PurgeIndex = serde_json::from_str(&sa).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), sa);
    assert_eq!(back.len(), a.len());
    // Missing keys default (older files stay readable).
    let empty: PurgeIndex = serde_json::from_str("{}").unwrap();
    assert!(empty.is_empty());
}

fn target_strategy() -> impl Strategy<Value = PurgeTarget> {
    // A tiny alphabet so rules and objects collide often.
    let key = "[hg]/[ab]{0,3}";
    prop_oneof![
        key.prop_map(PurgeTarget::Url),
        "[hg]{0,1}(/[ab]{0,3})?".prop_map(PurgeTarget::Prefix),
        "[xyz]".prop_map(PurgeTarget::Tag),
        "[hg]".prop_map(PurgeTarget::Host),
        Just(PurgeTarget::All),
    ]
}

fn rule_strategy() -> impl Strategy<Value = PurgeRule> {
    (
        target_strategy(),
        any::<bool>(),
        0u64..20,
        proptest::option::of("s[12]"),
    )
        .prop_map(|(target, soft, index, service)| PurgeRule {
            service,
            target,
            soft,
            index,
        })
}

fn object_strategy() -> impl Strategy<Value = (String, Vec<String>, u64, String)> {
    (
        "[hg]/[ab]{0,4}",
        proptest::collection::vec("[xyz]", 0..3),
        0u64..22,
        "s[12]",
    )
}

proptest! {
    #[test]
    fn check_never_contradicts_a_linear_scan(
        rules in proptest::collection::vec(rule_strategy(), 0..40),
        resets in proptest::collection::vec(0u64..20, 0..2),
        objects in proptest::collection::vec(object_strategy(), 1..30),
    ) {
        let mut idx = PurgeIndex::new();
        let mut all_rules = rules.clone();
        for r in &rules {
            idx.apply(r);
        }
        for &s in &resets {
            idx.reset_soft_all(s);
            all_rules.push(rule(PurgeTarget::All, true, s));
        }
        let restored: PurgeIndex =
            serde_json::from_str(&serde_json::to_string(&idx).unwrap()).unwrap();
        for (url, tags, stored_index, service) in &objects {
            let obj = ObjectRef { service,
                url,
                host: &url[..1],
                tags,
                stored_index: *stored_index,
            };
            let want = naive(&all_rules, &obj);
            prop_assert_eq!(idx.check(&obj), want, "{:?}", obj);
            prop_assert_eq!(restored.check(&obj), want, "restored {:?}", obj);
        }
    }

    #[test]
    fn pruning_never_changes_a_verdict_for_objects_stored_at_or_after_the_cut(
        rules in proptest::collection::vec(rule_strategy(), 0..40),
        cut in 0u64..22,
        objects in proptest::collection::vec(object_strategy(), 1..30),
    ) {
        let mut idx = PurgeIndex::new();
        for r in &rules {
            idx.apply(r);
        }
        let mut pruned = idx.clone();
        pruned.prune_below(cut);
        let kept: Vec<_> = rules.iter().filter(|r| r.index > cut).cloned().collect();
        for (url, tags, stored_index, service) in &objects {
            let obj = ObjectRef { service, url, host: &url[..1], tags, stored_index: *stored_index };
            // Exactly the rules above the cut remain.
            prop_assert_eq!(pruned.check(&obj), naive(&kept, &obj));
            if *stored_index >= cut {
                prop_assert_eq!(pruned.check(&obj), idx.check(&obj), "{:?}", obj);
            }
        }
        let mut rebuilt = PurgeIndex::new();
        for r in &kept {
            rebuilt.apply(r);
        }
        prop_assert_eq!(pruned.len(), rebuilt.len());
        prop_assert_eq!(serde_json::to_string(&pruned).unwrap(), serde_json::to_string(&rebuilt).unwrap());
    }

    #[test]
    fn folding_only_ever_purges_more_and_keeps_newer_objects_exact(
        rules in proptest::collection::vec(rule_strategy(), 0..40),
        keep in 0usize..12,
        objects in proptest::collection::vec(object_strategy(), 1..30),
    ) {
        let strictness = |v: PurgeVerdict| match v {
            PurgeVerdict::Valid => 0,
            PurgeVerdict::SoftPurged => 1,
            PurgeVerdict::HardPurged => 2,
        };
        let mut idx = PurgeIndex::new();
        for r in &rules {
            idx.apply(r);
        }
        // A service's `all` (one per service) is never folded, so it is not counted.
        let before = idx.len() - usize::from(idx.all != Marks::default()) - idx.services.len();
        let mut folded = idx.clone();
        let cut = folded.fold_oldest(keep);
        let patterns =
            folded.len() - usize::from(folded.all != Marks::default()) - folded.services.len();
        prop_assert!(patterns <= keep, "{} patterns left, keep {}", patterns, keep);
        prop_assert_eq!(cut.is_none(), before <= keep);
        for (url, tags, stored_index, service) in &objects {
            let obj = ObjectRef { service, url, host: &url[..1], tags, stored_index: *stored_index };
            let (was, now) = (idx.check(&obj), folded.check(&obj));
            // Never less purged than before: folding must not resurrect anything.
            prop_assert!(strictness(now) >= strictness(was), "{:?}: {:?} -> {:?}", obj, was, now);
            // Objects stored after every folded rule see exactly the old verdict.
            if cut.is_none_or(|c| *stored_index >= c) {
                prop_assert_eq!(now, was, "{:?}", obj);
            }
        }
    }

    #[test]
    fn rule_order_does_not_matter(rules in proptest::collection::vec(rule_strategy(), 0..30)) {
        let mut fwd = PurgeIndex::new();
        let mut rev = PurgeIndex::new();
        for r in &rules {
            fwd.apply(r);
        }
        for r in rules.iter().rev() {
            rev.apply(r);
        }
        prop_assert_eq!(serde_json::to_string(&fwd).unwrap(), serde_json::to_string(&rev).unwrap());
    }
}

#[test]
fn folding_a_tenants_rules_never_purges_another_services_objects() {
    let mut idx = PurgeIndex::new();
    for i in 0..100u64 {
        idx.apply(&PurgeRule {
            target: PurgeTarget::Url(format!("h/{i}")),
            soft: false,
            index: i + 1,
            service: Some("s1".into()),
        });
    }
    assert!(idx.fold_oldest(10).is_some());
    let tags = Vec::new();
    let obj = |service, url| ObjectRef {
        url,
        host: "h",
        tags: &tags,
        service,
        stored_index: 0,
    };
    // s2's object at a folded URL: untouched.
    assert_eq!(idx.check(&obj("s2", "h/3")), V);
    assert_eq!(idx.check(&obj("s2", "h/other")), V);
    // s1's objects: folded rules over-invalidate, never under.
    assert_eq!(idx.check(&obj("s1", "h/3")), H);
    assert_eq!(idx.check(&obj("s1", "h/other")), H);
    // Pruned away entirely, nothing of either remains.
    idx.prune_below(1_000);
    assert_eq!(idx.check(&obj("s1", "h/3")), V);
    assert!(idx.is_empty());
}
