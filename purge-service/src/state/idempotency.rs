//! Idempotency keys of `POST /v1/purges`, kept in the replicated state with bounded retention.
//!
//! Retention is measured by the leader timestamp carried in each purge entry, never by a local
//! clock: every node expires the same keys at the same log index, so the state machine stays
//! deterministic and snapshots agree byte for byte.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use tiercel_cluster::purge::wire::PurgeAccepted;

use crate::types::IdempotencyKey;

/// Keys kept at most; the oldest go first.
pub const MAX_KEYS: usize = 100_000;
/// How long a key is kept, by leader timestamps.
pub const RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// What a key was first used for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    ts_ms: u64,
    key: IdempotencyKey,
    /// The answer given the first time.
    pub answer: PurgeAccepted,
    /// Fingerprint of the purge sent the first time (absent for keys from before it was
    /// recorded: any purge then counts as the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl Remembered {
    /// Whether a request with `fingerprint` is a retry of the first one.
    pub fn same_request(&self, fingerprint: &str) -> bool {
        self.fingerprint.as_deref().is_none_or(|f| f == fingerprint)
    }
}

/// Keys in insertion order plus an index by key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdempotencyLog {
    order: VecDeque<Remembered>,
    #[serde(skip)]
    by_key: HashMap<IdempotencyKey, Remembered>,
}

impl IdempotencyLog {
    /// What `key` was first used for, if still retained.
    pub fn get(&self, key: &IdempotencyKey) -> Option<&Remembered> {
        self.by_key.get(key)
    }

    /// Remembers `key` unless it is already known; returns the answer that stands.
    pub fn remember(
        &mut self,
        ts_ms: u64,
        key: &IdempotencyKey,
        fingerprint: Option<&str>,
        answer: PurgeAccepted,
    ) -> PurgeAccepted {
        if let Some(first) = self.by_key.get(key) {
            return first.answer.clone();
        }
        let r = Remembered {
            ts_ms,
            key: key.clone(),
            answer: answer.clone(),
            fingerprint: fingerprint.map(str::to_owned),
        };
        self.by_key.insert(key.clone(), r.clone());
        self.order.push_back(r);
        answer
    }

    /// Forgets keys older than [`RETENTION_MS`] before `now_ms` and beyond [`MAX_KEYS`].
    pub fn expire(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(RETENTION_MS);
        while let Some(front) = self.order.front() {
            if front.ts_ms >= horizon && self.order.len() <= MAX_KEYS {
                break;
            }
            if let Some(gone) = self.order.pop_front() {
                self.by_key.remove(&gone.key);
            }
        }
    }

    /// Number of keys retained.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no key is retained.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Rebuilds the index after deserialisation.
    pub fn rebuild(&mut self) {
        self.by_key = self
            .order
            .iter()
            .map(|r| (r.key.clone(), r.clone()))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey {
            token_id: "t".into(),
            key: k.into(),
        }
    }

    fn ans(index: u64) -> PurgeAccepted {
        PurgeAccepted {
            id: index.to_string(),
            index,
        }
    }

    #[test]
    fn first_answer_stands() {
        let mut log = IdempotencyLog::default();
        assert_eq!(log.remember(1, &key("a"), Some("f"), ans(5)), ans(5));
        assert_eq!(log.remember(2, &key("a"), Some("g"), ans(9)), ans(5));
        assert_eq!(log.get(&key("a")).map(|r| &r.answer), Some(&ans(5)));
        assert!(log.get(&key("a")).unwrap().same_request("f"));
        assert!(!log.get(&key("a")).unwrap().same_request("g"));
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn keys_are_scoped_by_token() {
        let mut log = IdempotencyLog::default();
        log.remember(1, &key("a"), Some("f"), ans(5));
        let other = IdempotencyKey {
            token_id: "u".into(),
            key: "a".into(),
        };
        assert_eq!(log.get(&other), None);
    }

    #[test]
    fn expiry_uses_the_given_time() {
        let mut log = IdempotencyLog::default();
        log.remember(1_000, &key("old"), None, ans(1));
        log.remember(1_000 + RETENTION_MS, &key("new"), None, ans(2));
        log.expire(1_000 + RETENTION_MS);
        assert_eq!(log.len(), 2, "exactly at the horizon is kept");
        log.expire(1_001 + RETENTION_MS);
        assert_eq!(log.get(&key("old")), None);
        assert_eq!(log.get(&key("new")).map(|r| &r.answer), Some(&ans(2)));
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn count_is_bounded() {
        let mut log = IdempotencyLog::default();
        for i in 0..(MAX_KEYS as u64 + 10) {
            log.remember(5, &key(&i.to_string()), None, ans(i));
        }
        log.expire(5);
        assert_eq!(log.len(), MAX_KEYS);
        assert_eq!(log.get(&key("9")), None);
        assert_eq!(log.get(&key("10")).map(|r| &r.answer), Some(&ans(10)));
    }

    #[test]
    fn rebuild_restores_the_index() {
        let mut log = IdempotencyLog::default();
        log.remember(1, &key("a"), None, ans(3));
        let json = serde_json::to_string(&log).unwrap();
        let mut back: IdempotencyLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back.get(&key("a")), None);
        back.rebuild();
        assert_eq!(back.get(&key("a")).map(|r| &r.answer), Some(&ans(3)));
    }
}
