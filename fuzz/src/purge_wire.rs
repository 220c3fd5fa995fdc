//! One line of the purge log stream (`GET /v1/log`, NDJSON) as a follower reads it.

use tiercel_cluster::follower::implausible_index;
use tiercel_cluster::purge::wire::{LogEvent, LogPayload, PurgeRequest};
use tiercel_cluster::purge::{ObjectRef, PurgeIndex, PurgeVerdict, rules_from_request};

/// Properties: an event read from a line is written back and read again unchanged; every
/// purge in it, even one the service would never have accepted, expands into rules a
/// follower can apply; and a rule made at index `i` invalidates an object it matches that was
/// stored before `i`, never one stored at or after it.
pub fn check(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<LogEvent>(data) else {
        return;
    };
    let written = serde_json::to_vec(&event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
    let again: LogEvent = serde_json::from_slice(&written)
        .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&written)));
    assert_eq!(again, event);
    let _ = implausible_index(&event);
    if let LogEvent::Entry { index, payload } = &event {
        let mut purges = Vec::new();
        collect(payload, &mut purges);
        let index = (*index).clamp(1, u64::MAX - 1);
        let mut idx = PurgeIndex::new();
        for req in purges {
            for rule in rules_from_request(req, index) {
                idx.apply(&rule);
            }
        }
        let tags = vec!["t".to_string()];
        for (url, host) in [("example.com/a", "example.com"), ("", "")] {
            let newer = ObjectRef {
                url,
                host,
                tags: &tags,
                service: "",
                stored_index: index,
            };
            assert_eq!(
                idx.check(&newer),
                PurgeVerdict::Valid,
                "stored at the purge"
            );
            let older = ObjectRef {
                stored_index: index - 1,
                ..newer
            };
            let _ = idx.check(&older);
        }
    }
}

fn collect<'a>(payload: &'a LogPayload, out: &mut Vec<&'a PurgeRequest>) {
    match payload {
        LogPayload::Purge { purge, .. } => out.push(purge),
        LogPayload::Batch { items } => items.iter().for_each(|p| collect(p, out)),
        LogPayload::ServicePut { .. } | LogPayload::ServiceDelete { .. } => {}
    }
}
