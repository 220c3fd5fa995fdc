//! What a log entry means to a follower: [`Command`] → [`LogPayload`].
//!
//! Derived from the entry alone (plus its index), so any node can serve `/v1/log` straight from
//! its log store. Entries that carry nothing for followers (blanks, membership, tokens) yield
//! `None`; the stream's heartbeats move followers past them.

use openraft::EntryPayload;
use tiercel_cluster::purge::wire::{LogEvent, LogPayload, ServiceRecord};

use crate::types::{Command, Entry, purge_id};

/// The follower payload of `cmd` committed at `index`, if it has one.
pub fn follower_payload(index: u64, cmd: &Command) -> Option<LogPayload> {
    match cmd {
        Command::Purges { items, .. } => {
            let count = items.len();
            let mut payloads: Vec<LogPayload> = items
                .iter()
                .enumerate()
                .map(|(n, item)| LogPayload::Purge {
                    id: purge_id(index, n, count),
                    purge: item.purge.clone(),
                })
                .collect();
            match count {
                0 => None,
                1 => payloads.pop(),
                _ => Some(LogPayload::Batch { items: payloads }),
            }
        }
        Command::ServicePut {
            name,
            doc,
            ts_ms,
            by,
        } => Some(LogPayload::ServicePut {
            service: ServiceRecord {
                name: name.clone(),
                version: index,
                doc: doc.clone(),
                changed: super::change(by, *ts_ms),
            },
        }),
        Command::ServiceDelete { name, .. } => Some(LogPayload::ServiceDelete {
            name: name.clone(),
            version: index,
        }),
        Command::TokenCreate { .. } | Command::TokenDelete { .. } => None,
    }
}

/// One NDJSON line (JSON plus `\n`) of the `/v1/log` stream.
pub fn encode_line(ev: &LogEvent) -> Result<bytes::Bytes, serde_json::Error> {
    let mut v = serde_json::to_vec(ev)?;
    v.push(b'\n');
    Ok(bytes::Bytes::from(v))
}

/// The `/v1/log` event of a log entry, if followers care about it.
pub fn entry_event(entry: &Entry) -> Option<LogEvent> {
    let index = entry.log_id.index;
    match &entry.payload {
        EntryPayload::Normal(cmd) => {
            follower_payload(index, cmd).map(|payload| LogEvent::Entry { index, payload })
        }
        EntryPayload::Blank | EntryPayload::Membership(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId};
    use tiercel_cluster::purge::wire::{PurgeRequest, TokenScope};

    use super::*;
    use crate::types::{IdempotencyKey, PurgeItem, TokenCondition, TokenRecord};

    fn purge(tag: &str) -> PurgeItem {
        PurgeItem {
            purge: PurgeRequest {
                tags: vec![tag.into()],
                ..Default::default()
            },
            idempotency: Some(IdempotencyKey {
                token_id: "t".into(),
                key: "k".into(),
            }),
            fingerprint: None,
            by: None,
        }
    }

    fn entry(index: u64, payload: EntryPayload<crate::types::TypeConfig>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload,
        }
    }

    #[test]
    fn a_single_purge_is_a_purge_with_the_index_as_id() {
        let cmd = Command::Purges {
            ts_ms: 1,
            items: vec![purge("a")],
        };
        let got = follower_payload(9, &cmd).unwrap();
        let want = LogPayload::Purge {
            id: "9".into(),
            purge: purge("a").purge,
        };
        assert_eq!(got, want);
    }

    #[test]
    fn several_purges_are_a_batch_with_numbered_ids() {
        let cmd = Command::Purges {
            ts_ms: 1,
            items: vec![purge("a"), purge("b")],
        };
        let LogPayload::Batch { items } = follower_payload(4, &cmd).unwrap() else {
            panic!("not a batch");
        };
        let ids: Vec<_> = items
            .iter()
            .map(|p| match p {
                LogPayload::Purge { id, .. } => id.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["4.0", "4.1"]);
        let empty = Command::Purges {
            ts_ms: 1,
            items: vec![],
        };
        assert_eq!(follower_payload(4, &empty), None);
    }

    #[test]
    fn service_versions_are_the_log_index() {
        let put = Command::ServicePut {
            name: "s".into(),
            doc: serde_json::json!({"hosts": ["a.example"]}),
            ts_ms: 0,
            by: None,
        };
        assert_eq!(
            follower_payload(12, &put),
            Some(LogPayload::ServicePut {
                service: ServiceRecord {
                    name: "s".into(),
                    version: 12,
                    changed: None,
                    doc: serde_json::json!({"hosts": ["a.example"]}),
                }
            })
        );
        let del = Command::ServiceDelete {
            name: "s".into(),
            ts_ms: 0,
            by: None,
        };
        assert_eq!(
            follower_payload(13, &del),
            Some(LogPayload::ServiceDelete {
                name: "s".into(),
                version: 13
            })
        );
    }

    #[test]
    fn tokens_blanks_and_membership_are_not_sent() {
        let token = Command::TokenCreate {
            token: TokenRecord {
                services: Vec::new(),
                id: "i".into(),
                name: "n".into(),
                scope: TokenScope::Admin,
                hash: "h".into(),
                rate_per_sec: None,
                expires_ms: None,
                created_ms: 0,
                created_by: None,
            },
            unless: TokenCondition::Never,
        };
        assert_eq!(entry_event(&entry(3, EntryPayload::Normal(token))), None);
        let revoke = Command::TokenDelete {
            id: "i".into(),
            ts_ms: 0,
            by: None,
        };
        assert_eq!(entry_event(&entry(3, EntryPayload::Normal(revoke))), None);
        assert_eq!(entry_event(&entry(1, EntryPayload::Blank)), None);
        let ev = entry_event(&entry(
            5,
            EntryPayload::Normal(Command::Purges {
                ts_ms: 0,
                items: vec![purge("x")],
            }),
        ));
        assert!(matches!(ev, Some(LogEvent::Entry { index: 5, .. })));
    }
}
