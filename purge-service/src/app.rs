//! What every request handler shares on one node: the Raft handle, the applied state, the log
//! store, soft state (follower reports, rate limits) and the leader's write helpers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use parking_lot::Mutex;

use crate::batcher::Batcher;
use crate::client::HttpClient;
use crate::member_auth::MemberKey;
use crate::ratelimit::RateLimiter;
use crate::reports::Reports;
use crate::store::{LogStore, StateReader};
use crate::streams::StreamSlots;
use crate::types::{Command, CommandResponse, IdempotencyKey, NodeId, Raft};
use crate::usage::Usage;

/// Why a write through Raft did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader (the request should go to the leader).
    #[error("not the leader")]
    NotLeader,
    /// The cluster cannot commit right now (no quorum, shutting down, timed out).
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The change was refused (e.g. an invalid membership change).
    #[error("{0}")]
    Refused(String),
}

impl WriteError {
    /// Maps an openraft write error.
    pub fn from_raft(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => WriteError::NotLeader,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                WriteError::Refused(c.to_string())
            }
            RaftError::Fatal(f) => WriteError::Unavailable(f.to_string()),
        }
    }
}

/// Who leads, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderView {
    /// This node.
    Me,
    /// Another member, at this address.
    Other {
        /// Its id.
        id: NodeId,
        /// Its `host:port`.
        addr: String,
    },
    /// Nobody (election in progress, or this node is not a member yet).
    Unknown,
}

/// API settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// How long a request waits for a leader before answering 503.
    pub leader_wait: Duration,
    /// Deadline of a write (commit) and of a proxied request.
    pub write_timeout: Duration,
    /// Deadline for receiving a request body.
    pub body_timeout: Duration,
    /// The key members prove themselves with ([`crate::member_auth`]). Without a cluster
    /// secret there is none, and no request is a member's.
    pub member_key: Option<MemberKey>,
    /// Addresses of the peers given on the command line, for before membership is known.
    pub peers: BTreeMap<NodeId, String>,
    /// How recently a leader must have heard from a quorum to call itself current (the
    /// maximum election timeout: after that another leader may exist).
    pub quorum_fresh: Duration,
    /// A `/v1/log` reader that takes no bytes for this long is dropped.
    pub log_write_timeout: Duration,
}

/// Shared per-node context.
pub struct App {
    /// This node's id.
    pub id: NodeId,
    /// The Raft handle.
    pub raft: Raft,
    /// The applied state.
    pub state: StateReader,
    /// The log, for `/v1/log`.
    pub log: LogStore,
    /// Client for peers.
    pub client: HttpClient,
    /// Purge batching on the leader.
    pub batcher: Batcher,
    /// Follower reports (meaningful on the leader).
    pub reports: Mutex<Reports>,
    /// Per-token rate limits of the API.
    pub limiter: Mutex<RateLimiter>,
    /// Per-token rate limits of the follower protocol.
    pub follow_limiter: Mutex<RateLimiter>,
    /// When each token was last used here.
    pub usage: Usage,
    /// Open `/v1/log` streams.
    pub streams: StreamSlots,
    /// Serialises read-check-write sequences (service If-Match, membership).
    pub write_lock: tokio::sync::Mutex<()>,
    /// One lock per idempotency key in flight, so concurrent retries commit once.
    pub idempotency_locks: Mutex<HashMap<IdempotencyKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Settings.
    pub settings: ApiSettings,
}

impl App {
    /// The leader as currently known.
    pub fn leader_now(&self) -> LeaderView {
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            Some(id) if id == self.id && m.state == ServerState::Leader => LeaderView::Me,
            Some(id) if id == self.id => LeaderView::Unknown,
            Some(id) => {
                let addr = m
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .map(|n| n.addr.clone())
                    .or_else(|| self.settings.peers.get(&id).cloned());
                match addr {
                    Some(addr) => LeaderView::Other { id, addr },
                    None => LeaderView::Unknown,
                }
            }
            None => LeaderView::Unknown,
        }
    }

    /// Whether this node is in touch with a quorum: a leader acknowledged by a quorum within
    /// [`ApiSettings::quorum_fresh`], or a follower that knows its leader (it stops knowing
    /// one an election timeout after the leader falls silent).
    ///
    /// `/v1/log` heartbeats are sent only then. A node cut off from the majority stops them,
    /// so its followers notice the silence, move to another server and, failing that, count
    /// as lagging: a partition cannot make them serve purged content indefinitely (DESIGN §4).
    pub fn in_quorum(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        match m.state {
            ServerState::Leader => m
                .millis_since_quorum_ack
                .is_some_and(|ms| u128::from(ms) <= self.settings.quorum_fresh.as_millis()),
            ServerState::Follower | ServerState::Learner => m.current_leader.is_some(),
            ServerState::Candidate | ServerState::Shutdown => false,
        }
    }

    /// Waits up to the configured time for a leader to be known.
    pub async fn wait_leader(&self) -> LeaderView {
        let deadline = tokio::time::Instant::now() + self.settings.leader_wait;
        self.wait_leader_until(None, deadline).await
    }

    /// Waits until `deadline` for a leader other than `not` (a member found unreachable) to
    /// be known; [`LeaderView::Unknown`] if none is.
    pub async fn wait_leader_until(
        &self,
        not: Option<NodeId>,
        deadline: tokio::time::Instant,
    ) -> LeaderView {
        let mut metrics = self.raft.metrics();
        loop {
            match self.leader_now() {
                LeaderView::Other { id, .. } if Some(id) == not => {}
                LeaderView::Unknown => {}
                view => return view,
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                _ => return LeaderView::Unknown,
            }
        }
    }

    /// Proposes `cmd` and waits until it is committed and applied here.
    pub async fn write(&self, cmd: Command) -> Result<(u64, CommandResponse), WriteError> {
        match tokio::time::timeout(self.settings.write_timeout, self.raft.client_write(cmd)).await {
            Ok(Ok(resp)) => Ok((resp.log_id.index, resp.data)),
            Ok(Err(e)) => Err(WriteError::from_raft(e)),
            Err(_) => Err(WriteError::Unavailable("commit timed out".into())),
        }
    }

    /// Waits until this leader has applied everything committed before now (a read barrier),
    /// so checks against the state (If-Match, idempotency keys) see every earlier write.
    pub async fn linearize(&self) -> Result<(), WriteError> {
        match tokio::time::timeout(self.settings.write_timeout, self.raft.ensure_linearizable())
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(_))) => Err(WriteError::NotLeader),
            Ok(Err(RaftError::Fatal(f))) => Err(WriteError::Unavailable(f.to_string())),
            Err(_) => Err(WriteError::Unavailable(
                "no quorum confirmed leadership in time".into(),
            )),
        }
    }

    /// The lock for one idempotency key (created on demand; dropped when unused).
    pub fn idempotency_lock(&self, key: &IdempotencyKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.idempotency_locks.lock();
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(key.clone()).or_default().clone()
    }
}
