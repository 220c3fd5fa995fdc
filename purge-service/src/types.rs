//! The Raft type configuration and the commands the replicated log carries.
//!
//! Every change to the replicated state is one [`Command`] in one log entry. Commands are
//! self-describing: whatever a follower (edge, shield) needs to know is in the entry itself plus
//! its log index, so `/v1/log` can be served from the log store on any node without replaying
//! the state machine. Decisions that depend on the current state (an `If-Match` version, an
//! idempotency key already used) are taken by the leader before it proposes; the state machine
//! applies commands unconditionally and deterministically.

use std::io::Cursor;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tiercel_cluster::purge::wire::{PurgeAccepted, PurgeRequest, TokenScope};

/// Raft node id (`--id`).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Tiercel's Raft types: [`Command`]s in, [`CommandResponse`]s out, members addressed by
    /// their `host:port` in a [`BasicNode`].
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of this crate.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry of this crate.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id of this crate.
pub type LogId = openraft::LogId<NodeId>;
/// Openraft's storage error, as our storage returns it.
pub type StorageError = openraft::StorageError<NodeId>;

/// One replicated change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// One or more purges batched by the leader into one entry.
    Purges {
        /// Leader wall clock (ms since the epoch) when it proposed the entry. The state machine
        /// measures idempotency-key retention with it, never with a local clock, so every node
        /// expires the same keys at the same index.
        ts_ms: u64,
        /// The purges, in order; item `n` of an entry at index `i` has the id `i.n`, or just `i`
        /// when the entry holds one item.
        items: Vec<PurgeItem>,
    },
    /// Create or replace a service document. Its version becomes the entry's log index.
    ServicePut {
        /// Service name.
        name: String,
        /// The document (already validated by the leader).
        doc: serde_json::Value,
        /// Leader wall clock (ms since the epoch) when proposed: the audit time.
        #[serde(default)]
        ts_ms: u64,
        /// Who made the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Actor>,
    },
    /// Delete a service. The deletion's version is the entry's log index.
    ServiceDelete {
        /// Service name.
        name: String,
        /// Leader wall clock (ms) when proposed.
        #[serde(default)]
        ts_ms: u64,
        /// Who made the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Actor>,
    },
    /// Add a bearer token (only its hash travels).
    TokenCreate {
        /// The token record.
        token: TokenRecord,
        /// When the token is skipped instead of added (imports from env and files).
        #[serde(default)]
        unless: TokenCondition,
    },
    /// Revoke a token. Its id and hash stay behind as a tombstone, so an import of the same
    /// secret (from `--token-file` or `TIERCEL_ADMIN_TOKEN`, at any member's restart) cannot
    /// bring it back.
    TokenDelete {
        /// Token id.
        id: String,
        /// Leader wall clock (ms) when proposed.
        #[serde(default)]
        ts_ms: u64,
        /// Who revoked it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Actor>,
    },
}

/// Who made a change: the token that authorised it, by id and by name (the name as it was
/// then, so the audit trail survives the token's revocation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Token id.
    pub token_id: String,
    /// Token name.
    pub token_name: String,
}

impl Actor {
    /// The actor of a request authorised by `token`.
    pub fn of(token: &TokenRecord) -> Actor {
        Actor {
            token_id: token.id.clone(),
            token_name: token.name.clone(),
        }
    }
}

/// A purge inside a [`Command::Purges`] entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeItem {
    /// The normalised purge.
    pub purge: PurgeRequest,
    /// `(token id, Idempotency-Key)` when the client sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyKey>,
    /// blake3 of the normalised purge, so a key reused for a different purge is recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Who asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Actor>,
}

impl PurgeItem {
    /// A purge asked for by `by`, with its fingerprint.
    pub fn new(
        purge: PurgeRequest,
        idempotency: Option<IdempotencyKey>,
        by: Option<Actor>,
    ) -> Self {
        let fingerprint = Some(purge_fingerprint(&purge));
        PurgeItem {
            purge,
            idempotency,
            fingerprint,
            by,
        }
    }
}

/// Hex blake3 of a purge's canonical JSON: equal for equal purges.
pub fn purge_fingerprint(purge: &PurgeRequest) -> String {
    let json = serde_json::to_vec(purge).unwrap_or_default();
    blake3::hash(&json).to_hex().to_string()
}

/// An `Idempotency-Key` scoped to the token that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey {
    /// Id of the token that sent the request.
    pub token_id: String,
    /// The header's value.
    pub key: String,
}

/// A bearer token as the replicated state keeps it: the secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Id for `DELETE /v1/tokens/{id}`.
    pub id: String,
    /// Label for humans.
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// Hex blake3 hash of the secret.
    pub hash: String,
    /// Sustained requests per second; the node default when absent.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// When it stops working (ms since the epoch); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// When it was created (leader clock, ms since the epoch; 0 for tokens from before this
    /// was recorded).
    #[serde(default)]
    pub created_ms: u64,
    /// Name of the token that created it (`None` for imports from the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Services it is limited to (purge scope only): it may purge only these, naming one,
    /// and read only their definitions. Empty: every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

impl TokenRecord {
    /// Whether the token has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }

    /// Whether it may act on (purge, read) the service `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == name)
    }
}

/// When a [`Command::TokenCreate`] is skipped, so imports replayed at every start add nothing
/// twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCondition {
    /// Always add it (`POST /v1/tokens`).
    #[default]
    Never,
    /// Skip when any admin token exists (`TIERCEL_ADMIN_TOKEN`).
    AdminExists,
    /// Skip when a token with the same hash exists (`--token-file`).
    SameHashExists,
}

/// What applying a [`Command`] produced, returned to the proposer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandResponse {
    /// Nothing to report (blank and membership entries, deletions).
    Done,
    /// One answer per purge item, in order. A retry whose idempotency key was already used
    /// gets the first answer.
    Purges {
        /// The answers.
        accepted: Vec<PurgeAccepted>,
    },
    /// Whether a token was added or skipped by its condition.
    Token {
        /// True when added.
        added: bool,
    },
}

/// This machine's wall clock in milliseconds since the epoch (0 if it is before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Hex blake3 of a bearer secret: what the replicated state keys tokens by.
pub fn token_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// The purge id of item `n` of `count` in the entry at `index`.
pub fn purge_id(index: u64, n: usize, count: usize) -> String {
    if count == 1 {
        index.to_string()
    } else {
        format!("{index}.{n}")
    }
}

/// Parses a purge id into `(index, Some(item))` for `i.n` or `(index, None)` for `i`.
pub fn parse_purge_id(id: &str) -> Option<(u64, Option<u32>)> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match id.split_once('.') {
        None if digits(id) => Some((id.parse().ok()?, None)),
        Some((i, n)) if digits(i) && digits(n) => Some((i.parse().ok()?, Some(n.parse().ok()?))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_ids_round_trip() {
        let cases: &[(u64, usize, usize, &str)] = &[
            (7, 0, 1, "7"),
            (7, 0, 2, "7.0"),
            (7, 1, 2, "7.1"),
            (123456, 999, 1000, "123456.999"),
        ];
        for &(index, n, count, want) in cases {
            let id = purge_id(index, n, count);
            assert_eq!(id, want);
            let parsed = parse_purge_id(&id).unwrap();
            let item = if count == 1 { None } else { Some(n as u32) };
            assert_eq!(parsed, (index, item));
        }
    }

    #[test]
    fn bad_purge_ids_are_rejected() {
        for bad in [
            "",
            ".",
            "7.",
            ".1",
            "a",
            "7.x",
            "-1",
            "1.2.3",
            " 7",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_purge_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn token_hash_is_blake3_hex() {
        assert_eq!(
            token_hash("s3cret"),
            blake3::hash(b"s3cret").to_hex().to_string()
        );
        assert_eq!(token_hash("a").len(), 64);
    }

    #[test]
    fn commands_serialise_with_an_op_tag() {
        let c = Command::TokenDelete {
            id: "t1".into(),
            ts_ms: 5,
            by: None,
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(s, r#"{"op":"token_delete","id":"t1","ts_ms":5}"#);
        // Entries written before the audit fields existed still decode.
        let old: Command = serde_json::from_str(r#"{"op":"token_delete","id":"t1"}"#).unwrap();
        assert!(matches!(
            old,
            Command::TokenDelete {
                ts_ms: 0,
                by: None,
                ..
            }
        ));
        assert_eq!(serde_json::from_str::<Command>(&s).unwrap(), c);
    }
}
