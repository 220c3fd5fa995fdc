//! The purge-service's wire format: what CI posts, what followers stream.
//!
//! Both sides of every exchange use these types, so the purge-service, `tiercelctl` and the
//! follower inside every edge and shield cannot disagree on a field name.
//!
//! ```text
//! POST /v1/purges            PurgeRequest        -> PurgeAccepted
//! GET  /v1/purges/{id}                           -> PurgeStatus
//! GET  /v1/log?from=N        (NDJSON stream)     -> LogEvent per line
//! POST /v1/followers/report  FollowerReport      -> 204
//! GET  /v1/services                              -> [ServiceRecord]
//! GET|PUT|DELETE /v1/services/{name}  doc JSON   -> ServiceRecord   (If-Match: version)
//! GET  /v1/purges?since=MS&after=ID&limit=N     -> PurgeList (who purged what)
//! POST /v1/tokens            TokenCreate         -> TokenCreated
//! GET  /v1/tokens                                -> [TokenInfo]
//! DELETE /v1/tokens/{id}                         -> 204
//! GET  /v1/cluster                               -> ClusterInfo
//! POST /v1/cluster/members   MemberAdd           -> ClusterInfo
//! DELETE /v1/cluster/members/{id}                -> ClusterInfo
//! any error                                      -> ApiError (+ Retry-After on 429/503)
//! ```
//!
//! Scopes: `follow` for the log and reports; `purge` adds purges, services reads and cluster
//! reads; `admin` adds tokens, services writes and membership.

use serde::{Deserialize, Serialize};

/// `POST /v1/purges` body. Every list may be empty, but not all of them unless `all` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurgeRequest {
    /// Absolute URLs; each purges every variant of that URL.
    pub urls: Vec<String>,
    /// Absolute URL prefixes (`https://example.com/static/`); the scheme is ignored.
    pub prefixes: Vec<String>,
    /// Surrogate keys, as sent by the origin in `Surrogate-Key` or `Cache-Tag`.
    pub tags: Vec<String>,
    /// Host names (`example.com`, `example.com:8080`).
    pub hosts: Vec<String>,
    /// Everything.
    pub all: bool,
    /// Mark stale instead of removing: may still be served while revalidating or on error.
    pub soft: bool,
    /// Limit the purge to this service's objects (required of tokens scoped to services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// Answer to an accepted purge: it is committed to a quorum when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeAccepted {
    /// Stable id for `GET /v1/purges/{id}`; the same for a retried request with the same
    /// `Idempotency-Key`.
    pub id: String,
    /// Raft log index at which the purge was committed.
    pub index: u64,
}

/// `GET /v1/purges/{id}`: how far a purge has spread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeStatus {
    /// The purge id.
    pub id: String,
    /// Log index of the purge.
    pub index: u64,
    /// Live nodes (reported within the liveness window) whose applied index is >= `index`.
    pub nodes_applied: u32,
    /// Live nodes known to the service.
    pub nodes_live: u32,
    /// True when every live node has applied it (and at least one node is live).
    pub complete: bool,
    /// Per-node detail: the nodes that have not applied it first, at most a thousand.
    pub nodes: Vec<NodeProgress>,
    /// Nodes left out of `nodes` to keep the answer small.
    #[serde(default)]
    pub nodes_omitted: u32,
}

/// One follower's progress as last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// Node name (`--name`).
    pub name: String,
    /// Role: `edge` or `shield`.
    pub role: String,
    /// Last applied log index.
    pub applied_index: u64,
    /// Milliseconds since the node last reported.
    pub last_seen_ms: u64,
    /// Whether the node counts as live.
    pub live: bool,
}

/// `GET /v1/purges`: the audit trail of purges, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeList {
    /// The purges.
    pub purges: Vec<PurgeRecord>,
    /// A purge id: pass it as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// One purge as the audit trail remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRecord {
    /// Purge id.
    pub id: String,
    /// Log index.
    pub index: u64,
    /// When the leader accepted it (ms since the epoch).
    pub at_ms: u64,
    /// Name of the token that asked for it (absent for purges from before audit records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Id of that token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// What was purged.
    pub purge: PurgeRequest,
}

/// `POST /v1/followers/report` body, sent by followers about once a second and after applying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerReport {
    /// Node name (`--name`), unique in the cluster.
    pub node: String,
    /// `edge` or `shield`.
    pub role: String,
    /// Highest log index the node has applied.
    pub applied_index: u64,
}

/// One line of the `GET /v1/log?from=N` NDJSON stream.
///
/// The server sends every committed [`LogPayload`] with index >= `from` in index order, then a
/// `heartbeat` at least once a second while the stream is open. Log entries that carry nothing
/// for followers (membership, blanks) are not sent; a heartbeat's `commit_index` lets the
/// follower advance its applied index past them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEvent {
    /// A committed entry.
    Entry {
        /// Its log index.
        index: u64,
        /// What it says.
        payload: LogPayload,
    },
    /// Nothing new: the service is alive and has committed up to `commit_index`.
    Heartbeat {
        /// Highest committed index. Every entry for followers up to it has been sent.
        commit_index: u64,
    },
    /// `from` lies at or before a compacted snapshot: entries up to `snapshot_index` are gone.
    /// The follower must treat everything it stored before this as soft-purged, replace its
    /// services with `services`, and continue with entries after `snapshot_index`.
    Reset {
        /// Last index covered by the snapshot.
        snapshot_index: u64,
        /// Every service as of the snapshot.
        services: Vec<ServiceRecord>,
    },
}

/// What a committed log entry means to a follower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogPayload {
    /// A purge.
    Purge {
        /// Purge id.
        id: String,
        /// The purge as accepted (already validated by the service).
        purge: PurgeRequest,
    },
    /// A service was created or replaced.
    ServicePut {
        /// The new record.
        service: ServiceRecord,
    },
    /// A service was deleted.
    ServiceDelete {
        /// Service name.
        name: String,
        /// Version the deletion created.
        version: u64,
    },
    /// Several payloads committed together in one log entry (the leader batches concurrent
    /// purges). Applied in order; the entry's index covers all of them.
    Batch {
        /// The payloads, in order.
        items: Vec<LogPayload>,
    },
}

/// A service configuration document with its version (`/v1/services/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Service name.
    pub name: String,
    /// Monotonic version, bumped by every change; `If-Match` on PUT/DELETE compares with it.
    pub version: u64,
    /// The service document (DESIGN.md §8 schema), as JSON.
    pub doc: serde_json::Value,
    /// Who made this version and when (absent for versions from before audit records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Change>,
}

/// Who made a change, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Name of the token that made it.
    pub by: String,
    /// When the leader accepted it (ms since the epoch).
    pub at_ms: u64,
}

/// What a bearer token may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read the log and report progress: what edges and shields hold.
    Follow,
    /// Submit purges and read their status, services and cluster state: what CI holds.
    Purge,
    /// Everything, including tokens, services writes and membership.
    Admin,
}

impl TokenScope {
    /// The scope as the API and the command line write it.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Follow => "follow",
            TokenScope::Purge => "purge",
            TokenScope::Admin => "admin",
        }
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/tokens` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// A label for humans (`ci-main`).
    pub name: String,
    /// What the token may do.
    pub scope: TokenScope,
    /// Sustained requests per second allowed for this token; the service default when absent.
    #[serde(default)]
    pub rate_per_sec: Option<f64>,
    /// Seconds until it expires; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Services it is limited to (purge scope only): it may purge only these, naming one,
    /// and read only their definitions. Empty: every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// One token in `GET /v1/tokens`: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Id for `DELETE /v1/tokens/{id}`.
    pub id: String,
    /// The label.
    pub name: String,
    /// The scope.
    pub scope: TokenScope,
    /// When it was created (ms since the epoch; 0 when unknown).
    pub created_ms: u64,
    /// Name of the token that created it (absent for imports from the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When it expires (ms since the epoch), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// Whether it has expired.
    pub expired: bool,
    /// When any member that answered last saw it used (ms since the epoch), since that
    /// member started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
    /// Its own rate limit, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// Services it is limited to (purge scope only): it may purge only these, naming one,
    /// and read only their definitions. Empty: every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// Answer to `POST /v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// Id for `DELETE /v1/tokens/{id}`.
    pub id: String,
    /// The label.
    pub name: String,
    /// The scope.
    pub scope: TokenScope,
    /// The bearer secret. The service keeps only its blake3 hash.
    pub token: String,
    /// When it expires (ms since the epoch), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// Services it is limited to (purge scope only): it may purge only these, naming one,
    /// and read only their definitions. Empty: every service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The answering node.
    pub node_id: u64,
    /// Current leader, if known.
    pub leader_id: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Highest committed log index known to the answering node.
    pub commit_index: u64,
    /// Highest index applied to the answering node's state machine.
    pub last_applied: u64,
    /// Last index covered by the newest snapshot (the log before it may be compacted).
    pub snapshot_index: u64,
    /// Members of the Raft cluster.
    pub members: Vec<Member>,
}

/// A Raft member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft node id.
    pub id: u64,
    /// Address its member listener (Raft RPCs, forwarded writes) listens on (`host:port`).
    pub addr: String,
    /// Voter (true) or learner.
    pub voter: bool,
}

/// `POST /v1/cluster/members` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAdd {
    /// Raft node id of the new member.
    pub id: u64,
    /// Its `host:port`.
    pub addr: String,
    /// Make it a voter once it has caught up (default true).
    #[serde(default = "default_true")]
    pub voter: bool,
}

fn default_true() -> bool {
    true
}

/// Body of every error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// One line saying what was wrong, naming the offending field when there is one.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_events_have_a_stable_shape() {
        let e = LogEvent::Entry {
            index: 7,
            payload: LogPayload::Purge {
                id: "7".into(),
                purge: PurgeRequest {
                    tags: vec!["t1".into()],
                    ..Default::default()
                },
            },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"type":"entry","index":7,"payload":{"kind":"purge","id":"7","purge":{"urls":[],"prefixes":[],"tags":["t1"],"hosts":[],"all":false,"soft":false}}}"#
        );
        assert_eq!(serde_json::from_str::<LogEvent>(&s).unwrap(), e);
        let hb: LogEvent =
            serde_json::from_str(r#"{"type":"heartbeat","commit_index":9}"#).unwrap();
        assert_eq!(hb, LogEvent::Heartbeat { commit_index: 9 });
    }

    #[test]
    fn purge_request_rejects_unknown_fields_and_defaults_the_rest() {
        let p: PurgeRequest = serde_json::from_str(r#"{"all":true}"#).unwrap();
        assert!(p.all && p.urls.is_empty() && !p.soft);
        assert!(serde_json::from_str::<PurgeRequest>(r#"{"url":["x"]}"#).is_err());
    }
}
