//! Raft plumbing: openraft's configuration, the HTTP network between members, and the RPC
//! encodings both sides share.

pub mod network;
pub mod wire;

use openraft::{Config, SnapshotPolicy};

/// Timing and compaction knobs of the Raft core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTuning {
    /// Leader heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Minimum election timeout (ms); the maximum is twice this.
    pub election_timeout_ms: u64,
    /// Build a snapshot every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log before the snapshot when compacting (0: purge up to it).
    pub log_keep: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_ms: 500,
            snapshot_every: 1000,
            log_keep: 0,
        }
    }
}

/// Why the Raft configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// openraft refused the values.
    #[error("raft configuration: {0}")]
    Invalid(Box<openraft::ConfigError>),
}

/// The openraft configuration for `tuning`.
pub fn config(tuning: RaftTuning) -> Result<Config, TuningError> {
    let cfg = Config {
        cluster_name: "tiercel-purge".into(),
        heartbeat_interval: tuning.heartbeat_ms,
        election_timeout_min: tuning.election_timeout_ms,
        election_timeout_max: tuning.election_timeout_ms * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every),
        max_in_snapshot_log_to_keep: tuning.log_keep,
        purge_batch_size: 1,
        // Replication batches: big enough to catch a follower up quickly, small enough that one
        // AppendEntries stays well under a second on a slow link.
        max_payload_entries: 256,
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        install_snapshot_timeout: 5_000,
        ..Default::default()
    };
    cfg.validate()
        .map_err(|e| TuningError::Invalid(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_maps_onto_openraft() {
        let cfg = config(RaftTuning {
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            snapshot_every: 20,
            log_keep: 5,
        })
        .unwrap();
        assert_eq!(cfg.heartbeat_interval, 50);
        assert_eq!(
            (cfg.election_timeout_min, cfg.election_timeout_max),
            (300, 600)
        );
        assert_eq!(cfg.snapshot_policy, SnapshotPolicy::LogsSinceLast(20));
        assert_eq!(cfg.max_in_snapshot_log_to_keep, 5);
    }

    #[test]
    fn a_heartbeat_slower_than_elections_is_refused() {
        let bad = RaftTuning {
            heartbeat_ms: 1000,
            election_timeout_ms: 300,
            ..Default::default()
        };
        assert!(config(bad).is_err());
    }
}
