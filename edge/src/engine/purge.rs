//! The seam between the engine and purges: what the request path asks about a stored object.

use std::time::Duration;
use tiercel_cluster::purge::ObjectRef;

/// What purges say about a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeVerdict {
    /// No purge applies.
    Valid,
    /// Soft-purged: stale; may be served while revalidating or when the upstream fails.
    Soft,
    /// Hard-purged: gone.
    Hard,
}

/// The purge state a node follows; consulted on every hit, so it must be cheap and non-blocking.
pub trait PurgeOracle: Send + Sync + 'static {
    /// Purge-log index applied so far; stamped on objects when their fill starts.
    fn applied_index(&self) -> u64;
    /// Verdict for a stored object (its scheme-less URL, host, tags, service and the index
    /// it was stored at).
    fn verdict(&self, obj: &ObjectRef<'_>) -> PurgeVerdict;
    /// Whether the node has lost touch with the purge log for longer than `max_purge_lag`:
    /// then everything is revalidated before it is served.
    fn lagging(&self) -> bool;
    /// How far the node follows the purge log, for `/metrics`; `None` without a purge-service.
    fn progress(&self) -> Option<PurgeProgress> {
        None
    }
}

/// How far a node follows the purge log: what an operator alerts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeProgress {
    /// Highest log index applied (every purge up to it is in force).
    pub applied_index: u64,
    /// Highest applied index known to be on disk (what a restart resumes from).
    pub durable_index: u64,
    /// Distinct purge patterns held.
    pub rules: usize,
    /// Time since anything was heard from the purge-service (`None`: never since start).
    pub since_heard: Option<Duration>,
    /// Whether hits are being revalidated because the log went quiet for too long.
    pub lagging: bool,
}

/// No purge-service configured: nothing is ever purged and the node never lags.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPurges;

impl PurgeOracle for NoPurges {
    fn applied_index(&self) -> u64 {
        0
    }

    fn verdict(&self, _obj: &ObjectRef<'_>) -> PurgeVerdict {
        PurgeVerdict::Valid
    }

    fn lagging(&self) -> bool {
        false
    }
}
