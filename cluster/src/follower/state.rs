//! What the caching engine sees of the follower: cheap, synchronous, shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use super::machine::{FollowerMachine, FollowerState, Timing};
use crate::purge::wire::ServiceRecord;
use crate::purge::{ObjectRef, PurgeVerdict};

/// The engine's hooks, called by the follower task right after an entry is applied (the rule
/// is already in the index, so the purge is in force before the hook runs).
///
/// Hooks run on the follower task: keep them short (hand heavy work such as deleting many
/// cache entries to another task), or the log stream stalls behind them.
pub trait PurgeListener: Send + Sync + 'static {
    /// A URL purge was applied: the engine deletes those entries at once (all variants).
    fn url_purged(&self, url_purge_key: &str, soft: bool);
    /// The services changed (also called at start with the persisted services, when there are
    /// any): every service, sorted by name.
    fn services_changed(&self, services: &[ServiceRecord]);
}

/// A listener that ignores everything: for nodes that only need the rule index, and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopListener;

impl PurgeListener for NoopListener {
    fn url_purged(&self, _url_purge_key: &str, _soft: bool) {}
    fn services_changed(&self, _services: &[ServiceRecord]) {}
}

/// The purge state the request path consults; shared as `Arc<PurgeState>`.
///
/// `check` takes a `parking_lot` read lock (the follower holds the write lock only while it
/// applies one event); `applied_index` and `lagging` are atomics.
#[derive(Debug)]
pub struct PurgeState {
    machine: RwLock<FollowerMachine>,
    enabled: bool,
    applied: AtomicU64,
    /// Milliseconds since `epoch` plus one when an event was last heard; 0: never.
    heard_ms: AtomicU64,
    epoch: Instant,
    max_lag_ms: u64,
}

impl PurgeState {
    /// For a node without a purge service: never purges, never lags.
    pub fn disabled() -> Arc<Self> {
        // Never driven; the values only have to be harmless.
        let timing = Timing {
            persist_interval: Duration::MAX,
            report_interval: Duration::MAX,
            report_min_gap: Duration::MAX,
            report_retry: Duration::MAX,
            backoff: super::Backoff {
                min: Duration::MAX,
                max: Duration::MAX,
            },
            max_purge_lag: Duration::MAX,
            max_rules: usize::MAX,
        };
        let machine = FollowerMachine::new(FollowerState::default(), 1, false, timing);
        Arc::new(Self::new(machine, false, Duration::MAX))
    }

    pub(crate) fn new(machine: FollowerMachine, enabled: bool, max_lag: Duration) -> Self {
        let applied = machine.state().applied;
        PurgeState {
            machine: RwLock::new(machine),
            enabled,
            applied: AtomicU64::new(applied),
            heard_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            max_lag_ms: u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The applied index: stamp stored objects with it when their fill starts. Every purge up
    /// to it is in force, so a rule is newer than an object exactly when the object may predate
    /// the purge.
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether a stored object is purged.
    pub fn check(&self, obj: &ObjectRef<'_>) -> PurgeVerdict {
        if !self.enabled {
            return PurgeVerdict::Valid;
        }
        self.machine.read().state().index.check(obj)
    }

    /// Whether nothing was heard from the purge service for longer than `max_purge_lag` (or
    /// never since start): the node may be missing purges and must revalidate before serving.
    /// Always false when disabled.
    pub fn lagging(&self) -> bool {
        if !self.enabled {
            return false;
        }
        match self.heard_ms.load(Ordering::Acquire) {
            0 => true,
            h => self.now_ms().saturating_sub(h - 1) > self.max_lag_ms,
        }
    }

    /// Time since the last event from the service (None: never heard, or disabled). For the
    /// purge-lag metric.
    pub fn since_heard(&self) -> Option<Duration> {
        match self.heard_ms.load(Ordering::Acquire) {
            0 => None,
            h => Some(Duration::from_millis(self.now_ms().saturating_sub(h - 1))),
        }
    }

    /// Whether a purge service is configured.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The applied index known to be on disk (what the node reports).
    pub fn durable_index(&self) -> u64 {
        self.machine.read().durable_index()
    }

    /// Number of distinct purge patterns held (for metrics).
    pub fn rule_count(&self) -> usize {
        self.machine.read().state().index.len()
    }

    /// Every service from the log, sorted by name.
    pub fn services(&self) -> Vec<ServiceRecord> {
        self.machine.read().services()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `f` on the machine under the write lock, then publishes the applied index and the
    /// last-heard time. Returns `f`'s result and the applied index.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut FollowerMachine) -> R) -> (R, u64) {
        let mut m = self.machine.write();
        let r = f(&mut m);
        let applied = m.state().applied;
        if let Some(t) = m.last_heard() {
            let ms = u64::try_from(t.saturating_duration_since(self.epoch).as_millis())
                .unwrap_or(u64::MAX - 1);
            self.heard_ms.store(ms + 1, Ordering::Release);
        }
        drop(m);
        self.applied.store(applied, Ordering::Release);
        (r, applied)
    }

    /// Runs `f` on the machine under the read lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&FollowerMachine) -> R) -> R {
        f(&self.machine.read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follower::Input;
    use crate::purge::wire::{LogEvent, LogPayload, PurgeRequest};

    #[test]
    fn disabled_never_purges_and_never_lags() {
        let s = PurgeState::disabled();
        let obj = ObjectRef {
            service: "",
            url: "h/a",
            host: "h",
            tags: &[],
            stored_index: 0,
        };
        assert_eq!(s.check(&obj), PurgeVerdict::Valid);
        assert!(!s.lagging());
        assert!(!s.enabled());
        assert_eq!(s.applied_index(), 0);
        assert_eq!(s.since_heard(), None);
    }

    #[test]
    fn publishes_applied_and_heard_after_updates() {
        let timing = Timing {
            persist_interval: Duration::from_millis(200),
            report_interval: Duration::from_secs(1),
            report_min_gap: Duration::from_millis(100),
            report_retry: Duration::from_millis(250),
            backoff: super::super::Backoff {
                min: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            max_purge_lag: Duration::from_secs(10),
            max_rules: 1_000,
        };
        let m = FollowerMachine::new(FollowerState::default(), 1, false, timing);
        let s = PurgeState::new(m, true, Duration::from_secs(10));
        assert!(s.lagging(), "never heard");
        let entry = Input::Log(LogEvent::Entry {
            index: 4,
            payload: LogPayload::Purge {
                id: "4".into(),
                purge: PurgeRequest {
                    hosts: vec!["h".into()],
                    ..Default::default()
                },
            },
        });
        let (_, applied) = s.update(|m| m.handle(Instant::now(), entry));
        assert_eq!(applied, 4);
        assert_eq!(s.applied_index(), 4);
        assert!(!s.lagging());
        assert!(s.since_heard().is_some_and(|d| d < Duration::from_secs(1)));
        let obj = ObjectRef {
            service: "",
            url: "h/a",
            host: "h",
            tags: &[],
            stored_index: 3,
        };
        assert_eq!(s.check(&obj), PurgeVerdict::HardPurged);
        assert_eq!(s.rule_count(), 1);
    }
}
