use proptest::prelude::*;
use tiercel_cluster::purge::wire::{PurgeRequest, TokenScope};

use super::*;

fn token(id: &str, scope: TokenScope, secret: &str) -> TokenRecord {
    TokenRecord {
        services: Vec::new(),
        id: id.into(),
        name: format!("{id}-name"),
        scope,
        hash: crate::types::token_hash(secret),
        rate_per_sec: None,
        expires_ms: None,
        created_ms: 0,
        created_by: None,
    }
}

fn item(tag: &str, key: Option<&str>) -> PurgeItem {
    PurgeItem {
        purge: PurgeRequest {
            tags: vec![tag.into()],
            ..Default::default()
        },
        idempotency: key.map(|k| IdempotencyKey {
            token_id: "tok".into(),
            key: k.into(),
        }),
        fingerprint: None,
        by: None,
    }
}

fn accepted(resp: CommandResponse) -> Vec<(String, u64)> {
    match resp {
        CommandResponse::Purges { accepted } => {
            accepted.into_iter().map(|a| (a.id, a.index)).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn purges_get_ids_from_their_index_and_position() {
    let mut s = State::default();
    let one = s.apply(
        3,
        &Command::Purges {
            ts_ms: 10,
            items: vec![item("a", None)],
        },
    );
    assert_eq!(accepted(one), [("3".to_string(), 3)]);
    let two = s.apply(
        4,
        &Command::Purges {
            ts_ms: 11,
            items: vec![item("a", None), item("b", None)],
        },
    );
    assert_eq!(
        accepted(two),
        [("4.0".to_string(), 4), ("4.1".to_string(), 4)]
    );
    let table: &[(&str, Option<u64>)] = &[
        ("3", Some(3)),
        ("3.0", None),
        ("4", None),
        ("4.0", Some(4)),
        ("4.1", Some(4)),
        ("4.2", None),
        ("5", None),
        ("x", None),
    ];
    for &(id, want) in table {
        assert_eq!(s.purge_index(id), want, "{id}");
    }
    assert_eq!(s.purge_entries(), 2);
}

#[test]
fn an_idempotency_key_answers_with_the_first_purge() {
    let mut s = State::default();
    s.apply(
        3,
        &Command::Purges {
            ts_ms: 1,
            items: vec![item("a", Some("k1"))],
        },
    );
    let again = s.apply(
        7,
        &Command::Purges {
            ts_ms: 2,
            items: vec![item("a", Some("k1")), item("b", Some("k2"))],
        },
    );
    assert_eq!(
        accepted(again),
        [("3".to_string(), 3), ("7.1".to_string(), 7)]
    );
    let key = IdempotencyKey {
        token_id: "tok".into(),
        key: "k2".into(),
    };
    assert_eq!(s.idempotent_answer(&key).map(|a| a.answer.index), Some(7));
}

#[test]
fn idempotency_keys_expire_by_leader_time_that_never_goes_back() {
    let mut s = State::default();
    let day = idempotency::RETENTION_MS;
    s.apply(
        1,
        &Command::Purges {
            ts_ms: 1_000,
            items: vec![item("a", Some("k"))],
        },
    );
    // A new leader with a clock behind: time does not go back, the key stays.
    s.apply(
        2,
        &Command::Purges {
            ts_ms: 10,
            items: vec![],
        },
    );
    let key = IdempotencyKey {
        token_id: "tok".into(),
        key: "k".into(),
    };
    assert!(s.idempotent_answer(&key).is_some());
    s.apply(
        3,
        &Command::Purges {
            ts_ms: 1_001 + day,
            items: vec![],
        },
    );
    assert!(s.idempotent_answer(&key).is_none());
}

#[test]
fn purge_ids_are_bounded() {
    let mut s = State::default();
    for i in 1..=(MAX_PURGE_ENTRIES as u64 + 5) {
        s.apply(
            i,
            &Command::Purges {
                ts_ms: 0,
                items: vec![item("a", None)],
            },
        );
    }
    assert_eq!(s.purge_entries(), MAX_PURGE_ENTRIES);
    assert_eq!(s.purge_index("5"), None);
    assert_eq!(s.purge_index("6"), Some(6));
}

#[test]
fn services_take_the_log_index_as_version() {
    let mut s = State::default();
    let doc = serde_json::json!({"hosts": ["a.example"]});
    s.apply(
        5,
        &Command::ServicePut {
            name: "a".into(),
            doc: doc.clone(),
            ts_ms: 0,
            by: None,
        },
    );
    assert_eq!(s.service("a").map(|r| r.version), Some(5));
    s.apply(
        8,
        &Command::ServicePut {
            name: "a".into(),
            doc: doc.clone(),
            ts_ms: 0,
            by: None,
        },
    );
    assert_eq!(s.service("a").map(|r| r.version), Some(8));
    s.apply(
        9,
        &Command::ServicePut {
            name: "b".into(),
            doc,
            ts_ms: 0,
            by: None,
        },
    );
    let names: Vec<_> = s.services().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["a", "b"]);
    s.apply(
        10,
        &Command::ServiceDelete {
            name: "a".into(),
            ts_ms: 0,
            by: None,
        },
    );
    assert!(s.service("a").is_none());
    s.apply(
        11,
        &Command::ServiceDelete {
            name: "zz".into(),
            ts_ms: 0,
            by: None,
        },
    );
    assert_eq!(s.services().len(), 1);
}

#[test]
fn token_conditions_decide_imports() {
    let mut s = State::default();
    let cases: &[(TokenRecord, TokenCondition, bool)] = &[
        (
            token("p", TokenScope::Purge, "p1"),
            TokenCondition::AdminExists,
            true,
        ),
        (
            token("a", TokenScope::Admin, "a1"),
            TokenCondition::AdminExists,
            true,
        ),
        (
            token("a2", TokenScope::Admin, "a2"),
            TokenCondition::AdminExists,
            false,
        ),
        (
            token("p2", TokenScope::Purge, "p1"),
            TokenCondition::SameHashExists,
            false,
        ),
        (
            token("p3", TokenScope::Purge, "p3"),
            TokenCondition::SameHashExists,
            true,
        ),
        (
            token("f", TokenScope::Follow, "p3"),
            TokenCondition::Never,
            true,
        ),
    ];
    for (t, unless, added) in cases {
        let resp = s.apply(
            1,
            &Command::TokenCreate {
                token: t.clone(),
                unless: *unless,
            },
        );
        assert_eq!(resp, CommandResponse::Token { added: *added }, "{}", t.id);
    }
    assert_eq!(s.token_count(), 4);
    let hash = crate::types::token_hash("a1");
    assert_eq!(s.token_by_hash(&hash).map(|t| t.id.as_str()), Some("a"));
    s.apply(
        2,
        &Command::TokenDelete {
            id: "a".into(),
            ts_ms: 0,
            by: None,
        },
    );
    assert!(s.token_by_hash(&hash).is_none());
    assert!(!s.has_admin());
    assert!(s.token("p").is_some());
}

#[test]
fn a_serialised_state_rebuilds_to_the_same_answers() {
    let mut s = State::default();
    s.apply(
        1,
        &Command::TokenCreate {
            token: token("a", TokenScope::Admin, "x"),
            unless: TokenCondition::Never,
        },
    );
    s.apply(
        2,
        &Command::Purges {
            ts_ms: 5,
            items: vec![item("a", Some("k"))],
        },
    );
    let json = serde_json::to_vec(&s).unwrap();
    let mut back: State = serde_json::from_slice(&json).unwrap();
    back.rebuild();
    assert_eq!(
        back.token_by_hash(&crate::types::token_hash("x"))
            .map(|t| t.id.as_str()),
        Some("a")
    );
    let key = IdempotencyKey {
        token_id: "tok".into(),
        key: "k".into(),
    };
    assert_eq!(
        back.idempotent_answer(&key).map(|a| a.answer.id.as_str()),
        Some("2")
    );
    assert_eq!(serde_json::to_vec(&back).unwrap(), json);
}

fn arb_command() -> impl Strategy<Value = Command> {
    let purge = (
        0u64..200,
        prop::collection::vec((0u8..4, prop::option::of(0u8..6)), 0..4),
    )
        .prop_map(|(ts, items)| Command::Purges {
            ts_ms: ts * 1_000_000,
            items: items
                .into_iter()
                .map(|(t, k)| item(&t.to_string(), k.map(|k| k.to_string()).as_deref()))
                .collect(),
        });
    let put = (0u8..3).prop_map(|n| Command::ServicePut {
        name: n.to_string(),
        doc: serde_json::json!({"hosts": []}),
        ts_ms: 0,
        by: None,
    });
    let del = (0u8..3).prop_map(|n| Command::ServiceDelete {
        name: n.to_string(),
        ts_ms: 0,
        by: None,
    });
    let tok = (0u8..3, 0u8..3).prop_map(|(n, c)| Command::TokenCreate {
        token: token(&n.to_string(), TokenScope::Admin, &n.to_string()),
        unless: [
            TokenCondition::Never,
            TokenCondition::AdminExists,
            TokenCondition::SameHashExists,
        ][c as usize],
    });
    let untok = (0u8..3).prop_map(|n| Command::TokenDelete {
        id: n.to_string(),
        ts_ms: 0,
        by: None,
    });
    prop_oneof![purge, put, del, tok, untok]
}

proptest! {
    /// Two nodes applying the same log agree, and a node restored from a snapshot taken at
    /// any point agrees with one that never stopped.
    #[test]
    fn apply_is_deterministic_and_snapshots_resume(cmds in prop::collection::vec(arb_command(), 1..40), cut in 0usize..40) {
        let mut a = State::default();
        let mut b = State::default();
        let cut = cut.min(cmds.len());
        for (i, c) in cmds[..cut].iter().enumerate() {
            prop_assert_eq!(a.apply(i as u64 + 1, c), b.apply(i as u64 + 1, c));
        }
        let snap = serde_json::to_vec(&b).unwrap();
        let mut b: State = serde_json::from_slice(&snap).unwrap();
        b.rebuild();
        for (i, c) in cmds.iter().enumerate().skip(cut) {
            prop_assert_eq!(a.apply(i as u64 + 1, c), b.apply(i as u64 + 1, c));
        }
        prop_assert_eq!(serde_json::to_vec(&a).unwrap(), serde_json::to_vec(&b).unwrap());
    }
}
