//! The replicated state: services, tokens, purge ids and idempotency keys.
//!
//! Pure and deterministic: [`State::apply`] takes a log index and a [`Command`] and changes
//! nothing but `self`; it reads no clock (purge entries carry the leader's timestamp) and
//! never fails, so every node that applies the same log holds the same state.

pub mod audit;
pub mod events;
pub mod idempotency;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tiercel_cluster::purge::wire::{Change, PurgeAccepted, PurgeRecord, ServiceRecord, TokenScope};

use crate::types::{
    Actor, Command, CommandResponse, IdempotencyKey, PurgeItem, TokenCondition, TokenRecord,
    parse_purge_id, purge_id,
};
use audit::AuditTrail;
use idempotency::{IdempotencyLog, Remembered};

/// Purge entries whose ids `GET /v1/purges/{id}` still knows; older ones answer 404.
pub const MAX_PURGE_ENTRIES: usize = 100_000;

/// Everything the purge-service replicates besides the log itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Services by name.
    services: BTreeMap<String, ServiceRecord>,
    /// Tokens by id.
    tokens: BTreeMap<String, TokenRecord>,
    /// Revoked tokens by id: tombstones that imports respect.
    #[serde(default)]
    revoked: BTreeMap<String, Revoked>,
    /// Who purged what.
    #[serde(default)]
    audit: AuditTrail,
    /// Log index of each purge entry → number of purges in it.
    purges: BTreeMap<u64, u32>,
    /// Idempotency keys of purges.
    idempotency: IdempotencyLog,
    /// Highest leader timestamp seen (ms): a clock that never goes back across leaders.
    clock_ms: u64,
    /// Token id by secret hash, rebuilt after deserialisation.
    #[serde(skip)]
    by_hash: HashMap<String, String>,
    /// Hashes of revoked tokens, rebuilt after deserialisation.
    #[serde(skip)]
    revoked_hashes: HashSet<String>,
}

/// What remains of a revoked token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// Hash of its secret.
    pub hash: String,
    /// When it was revoked (leader clock, ms).
    pub at_ms: u64,
    /// Name of the token that revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The audit record of a change made by `by` at `ts_ms`.
pub fn change(by: &Option<Actor>, ts_ms: u64) -> Option<Change> {
    by.as_ref().map(|a| Change {
        by: a.token_name.clone(),
        at_ms: ts_ms,
    })
}

impl State {
    /// Applies the command of the entry at `index`.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> CommandResponse {
        match cmd {
            Command::Purges { ts_ms, items } => self.apply_purges(index, *ts_ms, items),
            Command::ServicePut {
                name,
                doc,
                ts_ms,
                by,
            } => {
                self.tick(*ts_ms);
                let record = ServiceRecord {
                    name: name.clone(),
                    version: index,
                    doc: doc.clone(),
                    changed: change(by, *ts_ms),
                };
                self.services.insert(name.clone(), record);
                CommandResponse::Done
            }
            Command::ServiceDelete { name, ts_ms, .. } => {
                self.tick(*ts_ms);
                self.services.remove(name);
                CommandResponse::Done
            }
            Command::TokenCreate { token, unless } => {
                // A revoked secret stays revoked, whatever asks to import it again.
                let revoked = self.revoked.contains_key(&token.id)
                    || self.revoked_hashes.contains(&token.hash);
                let skip = revoked
                    || match unless {
                        TokenCondition::Never => false,
                        TokenCondition::AdminExists => self.has_admin(),
                        TokenCondition::SameHashExists => self.by_hash.contains_key(&token.hash),
                    };
                if !skip {
                    if let Some(old) = self.tokens.insert(token.id.clone(), token.clone()) {
                        self.by_hash.remove(&old.hash);
                    }
                    self.by_hash.insert(token.hash.clone(), token.id.clone());
                }
                CommandResponse::Token { added: !skip }
            }
            Command::TokenDelete { id, ts_ms, by } => {
                self.tick(*ts_ms);
                if let Some(old) = self.tokens.remove(id) {
                    self.by_hash.remove(&old.hash);
                    // Revocations written before tombstones existed (no timestamp) leave none:
                    // a member that applied them then, whose snapshot holds no tombstone, and a
                    // member that replays them now must hold the same state.
                    if *ts_ms == 0 {
                        return CommandResponse::Done;
                    }
                    self.revoked_hashes.insert(old.hash.clone());
                    self.revoked.insert(
                        id.clone(),
                        Revoked {
                            hash: old.hash,
                            at_ms: *ts_ms,
                            by: by.as_ref().map(|a| a.token_name.clone()),
                        },
                    );
                }
                CommandResponse::Done
            }
        }
    }

    /// Moves the replicated clock to the leader's `ts_ms` (it never goes back).
    fn tick(&mut self, ts_ms: u64) {
        self.clock_ms = self.clock_ms.max(ts_ms);
    }

    fn apply_purges(&mut self, index: u64, ts_ms: u64, items: &[PurgeItem]) -> CommandResponse {
        self.tick(ts_ms);
        self.idempotency.expire(self.clock_ms);
        let count = items.len();
        let mut accepted = Vec::with_capacity(count);
        for (n, item) in items.iter().enumerate() {
            let mine = PurgeAccepted {
                id: purge_id(index, n, count),
                index,
            };
            self.audit.push(PurgeRecord {
                id: mine.id.clone(),
                index,
                at_ms: ts_ms,
                by: item.by.as_ref().map(|a| a.token_name.clone()),
                token_id: item.by.as_ref().map(|a| a.token_id.clone()),
                purge: item.purge.clone(),
            });
            let answer = match &item.idempotency {
                Some(key) => {
                    self.idempotency
                        .remember(self.clock_ms, key, item.fingerprint.as_deref(), mine)
                }
                None => mine,
            };
            accepted.push(answer);
        }
        if count > 0 {
            self.purges
                .insert(index, u32::try_from(count).unwrap_or(u32::MAX));
            while self.purges.len() > MAX_PURGE_ENTRIES {
                self.purges.pop_first();
            }
        }
        CommandResponse::Purges { accepted }
    }

    /// Rebuilds the derived indexes after deserialisation.
    pub fn rebuild(&mut self) {
        self.by_hash = self
            .tokens
            .values()
            .map(|t| (t.hash.clone(), t.id.clone()))
            .collect();
        self.revoked_hashes = self.revoked.values().map(|r| r.hash.clone()).collect();
        self.idempotency.rebuild();
    }

    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&ServiceRecord> {
        self.services.get(name)
    }

    /// Every service, by name.
    pub fn services(&self) -> Vec<ServiceRecord> {
        self.services.values().cloned().collect()
    }

    /// The token whose secret hashes to `hash`.
    pub fn token_by_hash(&self, hash: &str) -> Option<&TokenRecord> {
        self.by_hash.get(hash).and_then(|id| self.tokens.get(id))
    }

    /// A token by id.
    pub fn token(&self, id: &str) -> Option<&TokenRecord> {
        self.tokens.get(id)
    }

    /// Number of tokens.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Every live token (not revoked; expired ones included), by id.
    pub fn tokens(&self) -> impl Iterator<Item = &TokenRecord> {
        self.tokens.values()
    }

    /// The audit trail of purges.
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }

    /// Whether any admin token exists.
    pub fn has_admin(&self) -> bool {
        self.tokens.values().any(|t| t.scope == TokenScope::Admin)
    }

    /// The log index of a purge id this state knows.
    pub fn purge_index(&self, id: &str) -> Option<u64> {
        let (index, item) = parse_purge_id(id)?;
        let count = *self.purges.get(&index)?;
        match item {
            None if count == 1 => Some(index),
            Some(n) if count > 1 && n < count => Some(index),
            _ => None,
        }
    }

    /// Number of purge entries remembered.
    pub fn purge_entries(&self) -> usize {
        self.purges.len()
    }

    /// What was remembered of an idempotency key: the first answer and the fingerprint of
    /// the purge it was used for.
    pub fn idempotent_answer(&self, key: &IdempotencyKey) -> Option<&Remembered> {
        self.idempotency.get(key)
    }
}

#[cfg(test)]
mod tests;
