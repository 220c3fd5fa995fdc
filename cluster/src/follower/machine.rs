//! The follower as a pure state machine: log events and completions in, actions out.
//!
//! ```text
//!            Input (with `now`)                          Action
//!  Log(Entry/Heartbeat/Reset) ──┐                 ┌──▶ UrlPurged / ServicesChanged (listener)
//!  StreamFailed { jitter } ─────┤  FollowerMachine├──▶ Connect { server, from, delay }
//!  Persisted { applied, .. } ───┤  (applied index,├──▶ Persist { applied }   (debounced)
//!  Reported { applied, ok } ────┤   rule index,   ├──▶ Report { applied_index } (coalesced)
//!  Tick ────────────────────────┘   services)     └──▶ SoftPurgedAll { snapshot_index }
//! ```
//!
//! It owns what a node must remember (the applied index, the [`PurgeIndex`], the services) and
//! the bookkeeping for persisting and reporting it; it never touches a socket, a file or the
//! clock. The runtime feeds it and carries out the actions, so every rule below is tested by
//! asserting the returned actions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use crate::purge::wire::{LogEvent, LogPayload, ServiceRecord};
use crate::purge::{PurgeIndex, PurgeTarget, rules_from_request};

/// The highest log index a follower believes. A real log grows by a few entries per purge
/// and never comes near 2^48; a heartbeat or an entry claiming more comes from a faulty or
/// hostile server, and believing it would make the node skip every real purge after it.
pub const MAX_PLAUSIBLE_INDEX: u64 = 1 << 48;

/// The index an event claims, when it is beyond [`MAX_PLAUSIBLE_INDEX`]: the stream it came
/// on must be dropped and its server treated as faulty.
pub fn implausible_index(event: &LogEvent) -> Option<u64> {
    let index = match event {
        LogEvent::Entry { index, .. } => *index,
        LogEvent::Heartbeat { commit_index } => *commit_index,
        LogEvent::Reset { snapshot_index, .. } => *snapshot_index,
    };
    (index > MAX_PLAUSIBLE_INDEX).then_some(index)
}

/// What a node remembers across restarts.
#[derive(Debug, Clone, Default)]
pub struct FollowerState {
    /// Highest log index applied (every purge up to it is in `index`).
    pub applied: u64,
    /// Every purge rule applied.
    pub index: PurgeIndex,
    /// The latest record of every service, by name.
    pub services: BTreeMap<String, ServiceRecord>,
}

/// The machine's clocks and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Least time between two persists (and between the end of a persist and the next).
    pub persist_interval: Duration,
    /// A report is sent at least this often, changed or not (liveness).
    pub report_interval: Duration,
    /// After a report, a changed index waits this long before it is sent: a burst of purges
    /// becomes one report per node instead of one per purge (each one a request the service
    /// forwards to its leader).
    pub report_min_gap: Duration,
    /// After a failed report, wait this long before sending a changed index again.
    pub report_retry: Duration,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Hearing nothing for longer than this makes the node lagging.
    pub max_purge_lag: Duration,
    /// Most distinct purge patterns held; beyond it the oldest quarter is folded into an
    /// "everything older" rule (see [`PurgeIndex::fold_oldest`](crate::purge::PurgeIndex::fold_oldest)).
    pub max_rules: usize,
}

/// Something that happened, fed to [`FollowerMachine::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A line of the log stream, decoded.
    Log(LogEvent),
    /// The stream could not be opened, failed, timed out or ended.
    StreamFailed {
        /// A random number in [0, 1) for the backoff jitter.
        jitter: f64,
    },
    /// A [`Action::Persist`] finished.
    Persisted {
        /// The applied index that was written.
        applied: u64,
        /// Whether it is durable.
        ok: bool,
        /// How long the write took (slow disks or huge indexes persist less often).
        took: Duration,
    },
    /// A [`Action::Report`] finished.
    Reported {
        /// The index that was sent.
        applied: u64,
        /// Whether the service accepted it.
        ok: bool,
    },
    /// The engine holds no object stored before `below`: forget the rules that can only match
    /// such objects (see [`PurgeIndex::prune_below`]).
    Prune {
        /// The oldest stored index still in the cache.
        below: u64,
    },
    /// Time passed ([`FollowerMachine::next_wakeup`] was reached).
    Tick,
}

/// Something the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open the log stream on `servers[server]` from index `from`, after `delay`.
    Connect {
        /// Index into the configured servers.
        server: usize,
        /// The `from` query parameter (applied + 1).
        from: u64,
        /// Wait this long first.
        delay: Duration,
    },
    /// A URL purge was applied: tell the engine to delete every variant now.
    UrlPurged {
        /// The URL's purge key.
        key: String,
        /// Whether the purge was soft.
        soft: bool,
    },
    /// The services changed: every service, sorted by name.
    ServicesChanged(Vec<ServiceRecord>),
    /// The log before `snapshot_index` was compacted away: everything stored before it is now
    /// soft-purged (already done in the index; for logs and metrics).
    SoftPurgedAll {
        /// The snapshot's last index.
        snapshot_index: u64,
    },
    /// The index outgrew `max_rules`: every rule at or below `at_or_below` was folded into an
    /// "everything stored before it" rule (already done in the index; for logs and metrics).
    RulesFolded {
        /// The newest folded rule's index.
        at_or_below: u64,
        /// Patterns left in the index.
        kept: usize,
    },
    /// Write the state as it is right now (applied index `applied`) to disk.
    Persist {
        /// The applied index being written.
        applied: u64,
    },
    /// Send `POST /v1/followers/report` with this index.
    Report {
        /// The index to report.
        applied_index: u64,
    },
}

#[derive(Debug, Clone)]
struct PersistTrack {
    durable: u64,
    dirty: bool,
    in_flight: bool,
    not_before: Option<Instant>,
}

#[derive(Debug, Clone, Default)]
struct ReportTrack {
    last_value: Option<u64>,
    last_at: Option<Instant>,
    in_flight: bool,
    failed: bool,
}

/// The follower's decisions. See the module docs.
#[derive(Debug, Clone)]
pub struct FollowerMachine {
    state: FollowerState,
    timing: Timing,
    servers: usize,
    server: usize,
    failures: u32,
    last_heard: Option<Instant>,
    persist: Option<PersistTrack>,
    report: ReportTrack,
}

impl FollowerMachine {
    /// A machine resuming from `state` (loaded from disk, or default). `persistent` says
    /// whether there is a state directory: without one, reports need not wait for the disk.
    pub fn new(state: FollowerState, servers: usize, persistent: bool, timing: Timing) -> Self {
        let persist = persistent.then_some(PersistTrack {
            durable: state.applied,
            dirty: false,
            in_flight: false,
            not_before: None,
        });
        FollowerMachine {
            state,
            timing,
            servers: servers.max(1),
            server: 0,
            failures: 0,
            last_heard: None,
            persist,
            report: ReportTrack::default(),
        }
    }

    /// First actions: hand the loaded services to the engine and connect to the first server.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.state.services.is_empty() {
            out.push(Action::ServicesChanged(self.services()));
        }
        out.push(Action::Connect {
            server: self.server,
            from: self.state.applied.saturating_add(1),
            delay: Duration::ZERO,
        });
        self.poll(now, &mut out);
        out
    }

    /// Feeds one input and returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Log(event) => {
                self.last_heard = Some(now);
                self.failures = 0;
                self.on_event(event, &mut out);
                self.enforce_rule_cap(&mut out);
            }
            Input::StreamFailed { jitter } => {
                self.failures = self.failures.saturating_add(1);
                self.server = (self.server + 1) % self.servers;
                out.push(Action::Connect {
                    server: self.server,
                    from: self.state.applied.saturating_add(1),
                    delay: self.timing.backoff.delay(self.failures, jitter),
                });
            }
            Input::Persisted { applied, ok, took } => {
                if let Some(p) = &mut self.persist {
                    p.in_flight = false;
                    if ok {
                        p.durable = p.durable.max(applied);
                    } else {
                        p.dirty = true;
                    }
                    let wait = self.timing.persist_interval.max(took.saturating_mul(4));
                    p.not_before = Some(now.checked_add(wait).unwrap_or(now));
                }
            }
            Input::Reported { applied, ok } => {
                self.report.in_flight = false;
                if ok {
                    self.report.last_value = Some(applied);
                    self.report.failed = false;
                } else {
                    self.report.failed = true;
                }
            }
            Input::Prune { below } => {
                let before = self.state.index.len();
                // Rules above the applied index do not exist; clamping keeps that obvious.
                self.state.index.prune_below(below.min(self.state.applied));
                if self.state.index.len() != before {
                    self.mark_dirty();
                }
            }
            Input::Tick => {}
        }
        self.poll(now, &mut out);
        out
    }

    /// Folds the oldest quarter of the patterns when there are more than `max_rules`, so a node
    /// that applies purges for months holds a bounded index (and state file).
    fn enforce_rule_cap(&mut self, out: &mut Vec<Action>) {
        let cap = self.timing.max_rules.max(1);
        if self.state.index.len() <= cap {
            return;
        }
        if let Some(at_or_below) = self.state.index.fold_oldest(cap - cap / 4) {
            out.push(Action::RulesFolded {
                at_or_below,
                kept: self.state.index.len(),
            });
            self.mark_dirty();
        }
    }

    fn on_event(&mut self, event: LogEvent, out: &mut Vec<Action>) {
        // The stream reader refuses these before they get here; the machine never trusts one.
        if implausible_index(&event).is_some() {
            return;
        }
        match event {
            LogEvent::Entry { index, payload } => {
                // An index is applied exactly once: a reconnect may replay what we have.
                if index <= self.state.applied {
                    return;
                }
                let mut services_changed = false;
                self.apply_payload(index, &payload, &mut services_changed, out);
                self.state.applied = index;
                if services_changed {
                    out.push(Action::ServicesChanged(self.services()));
                }
                self.mark_dirty();
            }
            LogEvent::Heartbeat { commit_index } => {
                // The server has sent every follower entry up to `commit_index` on this stream,
                // in order, so what is left up to it carries nothing for us.
                if commit_index > self.state.applied {
                    self.state.applied = commit_index;
                    self.mark_dirty();
                }
            }
            LogEvent::Reset {
                snapshot_index,
                services,
            } => {
                if snapshot_index <= self.state.applied {
                    return;
                }
                self.state.index.reset_soft_all(snapshot_index);
                self.state.services = services.into_iter().map(|s| (s.name.clone(), s)).collect();
                self.state.applied = snapshot_index;
                out.push(Action::SoftPurgedAll { snapshot_index });
                out.push(Action::ServicesChanged(self.services()));
                self.mark_dirty();
            }
        }
    }

    fn apply_payload(
        &mut self,
        index: u64,
        payload: &LogPayload,
        services_changed: &mut bool,
        out: &mut Vec<Action>,
    ) {
        match payload {
            LogPayload::Purge { purge, .. } => {
                for rule in rules_from_request(purge, index) {
                    self.state.index.apply(&rule);
                    // A purge limited to a service leaves the entries to the rule (checked on
                    // the next lookup, against the service that stored them): deleting by URL
                    // here could reach another service's entry for the same URL.
                    if let (PurgeTarget::Url(key), None) = (rule.target, &rule.service) {
                        out.push(Action::UrlPurged {
                            key,
                            soft: rule.soft,
                        });
                    }
                }
            }
            LogPayload::ServicePut { service } => {
                self.state
                    .services
                    .insert(service.name.clone(), service.clone());
                *services_changed = true;
            }
            LogPayload::ServiceDelete { name, .. } => {
                *services_changed |= self.state.services.remove(name).is_some();
            }
            LogPayload::Batch { items } => {
                for item in items {
                    self.apply_payload(index, item, services_changed, out);
                }
            }
        }
    }

    fn mark_dirty(&mut self) {
        if let Some(p) = &mut self.persist {
            p.dirty = true;
        }
    }

    /// The index reports may claim: with a state directory, only what is on disk, so a node
    /// that crashes never has to take back a purge it said it applied.
    fn reportable(&self) -> u64 {
        match &self.persist {
            Some(p) => p.durable,
            None => self.state.applied,
        }
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Action>) {
        let applied = self.state.applied;
        if let Some(p) = &mut self.persist
            && p.dirty
            && !p.in_flight
            && p.not_before.is_none_or(|t| now >= t)
        {
            p.dirty = false;
            p.in_flight = true;
            out.push(Action::Persist { applied });
        }
        if self.report_due(now) {
            let applied_index = self.reportable();
            self.report.in_flight = true;
            self.report.last_at = Some(now);
            out.push(Action::Report { applied_index });
        }
    }

    fn report_due(&self, now: Instant) -> bool {
        let r = &self.report;
        if r.in_flight {
            return false;
        }
        let Some(last_at) = r.last_at else {
            return true;
        };
        let changed = r.last_value != Some(self.reportable());
        (changed && reached(now, last_at, self.report_gap()))
            || reached(now, last_at, self.timing.report_interval)
    }

    fn report_gap(&self) -> Duration {
        if self.report.failed {
            self.timing.report_retry
        } else {
            self.timing.report_min_gap
        }
    }

    /// When to feed [`Input::Tick`] next (None: only inputs can make progress).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(p) = &self.persist
            && p.dirty
            && !p.in_flight
            && let Some(t) = p.not_before
        {
            consider(t);
        }
        let r = &self.report;
        if !r.in_flight
            && let Some(last_at) = r.last_at
        {
            if let Some(t) = last_at.checked_add(self.timing.report_interval) {
                consider(t);
            }
            if r.last_value != Some(self.reportable())
                && let Some(t) = last_at.checked_add(self.report_gap())
            {
                consider(t);
            }
        }
        next
    }

    /// Whether nothing was heard from the service for longer than `max_purge_lag` (or never).
    pub fn lagging(&self, now: Instant) -> bool {
        self.last_heard
            .is_none_or(|t| now.saturating_duration_since(t) > self.timing.max_purge_lag)
    }

    /// When the last event arrived.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// What the node remembers.
    pub fn state(&self) -> &FollowerState {
        &self.state
    }

    /// The applied index known to be on disk (the applied index without a state directory).
    pub fn durable_index(&self) -> u64 {
        self.reportable()
    }

    /// Every service, sorted by name.
    pub fn services(&self) -> Vec<ServiceRecord> {
        self.state.services.values().cloned().collect()
    }
}

/// Whether `d` has passed since `since` (never, when the sum overflows).
fn reached(now: Instant, since: Instant, d: Duration) -> bool {
    since.checked_add(d).is_some_and(|t| now >= t)
}

#[cfg(test)]
mod tests;
