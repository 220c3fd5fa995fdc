//! Follower progress as reported to the leader, and purge status computed from it.
//!
//! Soft state kept by the leader only: followers report about once a second, so a new leader
//! knows every live node again within the liveness window. Pure: `now` is an argument.
//!
//! A `follow` token is held by every edge, so one that leaks must not be able to make
//! `tiercelctl purge --wait` lie or the leader run out of memory:
//! - an applied index is clamped to what the leader has committed (a report of `u64::MAX`
//!   cannot complete a purge nobody applied);
//! - a node name belongs to the token that reports it while that node is live (a silent
//!   node's name, or one whose token was revoked, may be taken over: rotating a token must
//!   not lock edges out), and one token may report for at most `max_per_token` names;
//! - one node's reports closer together than [`MIN_INTERVAL`] are refused;
//! - recording is O(1); silent nodes are swept by a timer ([`sweep`]), not on every report;
//! - a status lists at most [`MAX_LISTED`] nodes, those that have not applied first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiercel_cluster::purge::wire::{FollowerReport, NodeProgress, PurgeStatus};
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// Nodes silent this many liveness windows are dropped from the table.
pub const FORGET_AFTER_WINDOWS: u32 = 60;
/// Least time between two accepted reports of one node (followers send at most one per
/// 100 ms).
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);
/// Most nodes listed in one status answer.
pub const MAX_LISTED: usize = 1000;

#[derive(Debug, Clone)]
struct Seen {
    role: String,
    token: String,
    applied_index: u64,
    at: Instant,
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportRefused {
    /// The token already reports for as many nodes as it may.
    #[error("this token already reports for {0} nodes, its maximum")]
    TooManyNodes(usize),
    /// Another token reports for this node name.
    #[error("node {0:?} is reported by another token")]
    NameTaken(String),
    /// The node reported moments ago.
    #[error("node {0:?} reports too often")]
    TooOften(String),
}

/// Last report per follower node.
#[derive(Debug)]
pub struct Reports {
    nodes: HashMap<String, Seen>,
    per_token: HashMap<String, usize>,
    window: Duration,
    max_per_token: usize,
}

impl Reports {
    /// A node counts as live when it reported within `window`; one token reports for at most
    /// `max_per_token` nodes.
    pub fn new(window: Duration, max_per_token: usize) -> Self {
        Self {
            nodes: HashMap::new(),
            per_token: HashMap::new(),
            window,
            max_per_token,
        }
    }

    /// Records a report sent with `token` and received at `now`, when the leader has committed
    /// up to `committed`. An applied index never goes back for a node that stays live (reports
    /// may arrive out of order through different members); a node back after a silence is
    /// taken at its word (it may have been reset).
    pub fn record(
        &mut self,
        token: &str,
        report: FollowerReport,
        committed: u64,
        now: Instant,
    ) -> Result<(), ReportRefused> {
        let reported = report.applied_index.min(committed);
        let prev = self.nodes.get(&report.node);
        let live = prev.is_some_and(|p| now.saturating_duration_since(p.at) <= self.window);
        let applied_index = match prev {
            Some(prev) if prev.token != token && live => {
                return Err(ReportRefused::NameTaken(report.node));
            }
            Some(prev) if prev.token == token => {
                if now.saturating_duration_since(prev.at) < MIN_INTERVAL {
                    return Err(ReportRefused::TooOften(report.node));
                }
                if live {
                    prev.applied_index.max(reported)
                } else {
                    reported
                }
            }
            // A new name, or a silent one another token now reports for.
            _ => {
                let count = self.per_token.get(token).copied().unwrap_or(0);
                if count >= self.max_per_token {
                    return Err(ReportRefused::TooManyNodes(self.max_per_token));
                }
                if let Some(old) = prev.map(|p| p.token.clone()) {
                    self.release(&old);
                }
                *self.per_token.entry(token.to_string()).or_insert(0) += 1;
                reported
            }
        };
        self.nodes.insert(
            report.node,
            Seen {
                role: report.role,
                token: token.to_string(),
                applied_index,
                at: now,
            },
        );
        Ok(())
    }

    fn release(&mut self, token: &str) {
        if let Some(n) = self.per_token.get_mut(token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_token.remove(token);
            }
        }
    }

    /// Forgets nodes silent for [`FORGET_AFTER_WINDOWS`] liveness windows, and those reported
    /// with a token that no longer works (`token_live` says which do).
    pub fn sweep(&mut self, now: Instant, token_live: impl Fn(&str) -> bool) {
        let forget = self.window * FORGET_AFTER_WINDOWS;
        let per_token = &mut self.per_token;
        self.nodes.retain(|_, s| {
            let keep = now.saturating_duration_since(s.at) < forget && token_live(&s.token);
            if !keep && let Some(n) = per_token.get_mut(&s.token) {
                *n = n.saturating_sub(1);
            }
            keep
        });
        self.per_token.retain(|_, n| *n > 0);
    }

    /// Nodes known.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is known.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// How far the purge `id` at `index` has spread, as of `now`.
    pub fn status(&self, id: &str, index: u64, now: Instant) -> PurgeStatus {
        let is_live = |s: &Seen| now.saturating_duration_since(s.at) <= self.window;
        let live = self.nodes.values().filter(|s| is_live(s)).count();
        let applied = self
            .nodes
            .values()
            .filter(|s| is_live(s) && s.applied_index >= index)
            .count();
        // Live nodes that have not applied it first: they are what an operator looks for.
        // Only the listed ones are sorted and copied.
        let mut all: Vec<(&String, &Seen)> = self.nodes.iter().collect();
        let order = |a: &(&String, &Seen), b: &(&String, &Seen)| {
            let rank = |s: &Seen| !(is_live(s) && s.applied_index < index);
            rank(a.1).cmp(&rank(b.1)).then_with(|| a.0.cmp(b.0))
        };
        let omitted = all.len().saturating_sub(MAX_LISTED);
        if omitted > 0 {
            all.select_nth_unstable_by(MAX_LISTED, order);
            all.truncate(MAX_LISTED);
        }
        all.sort_unstable_by(order);
        let nodes: Vec<NodeProgress> = all
            .into_iter()
            .map(|(name, s)| {
                let age = now.saturating_duration_since(s.at);
                NodeProgress {
                    name: name.clone(),
                    role: s.role.clone(),
                    applied_index: s.applied_index,
                    last_seen_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                    live: age <= self.window,
                }
            })
            .collect();
        PurgeStatus {
            id: id.to_string(),
            index,
            nodes_applied: u32::try_from(applied).unwrap_or(u32::MAX),
            nodes_live: u32::try_from(live).unwrap_or(u32::MAX),
            complete: live > 0 && applied == live,
            nodes,
            nodes_omitted: u32::try_from(omitted).unwrap_or(u32::MAX),
        }
    }
}

/// Sweeps the leader's report table once per liveness window, and forgets the last use of
/// tokens that no longer exist, until `stop`.
pub async fn sweep(app: Arc<App>, stop: CancellationToken) {
    let period = app.reports.lock().window.max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let state = &app.state;
        let now_ms = crate::types::unix_ms();
        app.reports.lock().sweep(Instant::now(), |id| {
            state.with(|m| m.state.token(id).is_some_and(|t| !t.expired(now_ms)))
        });
        app.usage
            .retain(|id| state.with(|m| m.state.token(id).is_some()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, applied: u64) -> FollowerReport {
        FollowerReport {
            node: node.into(),
            role: "edge".into(),
            applied_index: applied,
        }
    }

    fn table() -> Reports {
        Reports::new(Duration::from_secs(5), 100)
    }

    #[test]
    fn status_counts_live_nodes_that_applied() {
        let t0 = Instant::now();
        let mut r = table();
        r.record("t", report("a", 10), 100, t0).unwrap();
        r.record("t", report("b", 7), 100, t0 + Duration::from_secs(1))
            .unwrap();
        r.record("t", report("c", 50), 100, t0 - Duration::from_secs(1))
            .unwrap();
        let now = t0 + Duration::from_millis(4_500);
        // c reported 5.5 s ago: not live.
        let table: &[(u64, u32, u32, bool)] =
            &[(5, 2, 2, true), (8, 1, 2, false), (11, 0, 2, false)];
        for &(index, applied, live, complete) in table {
            let s = r.status("x", index, now);
            assert_eq!(
                (s.nodes_applied, s.nodes_live, s.complete),
                (applied, live, complete),
                "index {index}"
            );
        }
        // Laggards first (b has not applied 8), then by name.
        let s = r.status("x", 8, now);
        let names: Vec<_> = s
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.live, n.last_seen_ms))
            .collect();
        assert_eq!(
            names,
            [("b", true, 3_500), ("a", true, 4_500), ("c", false, 5_500)]
        );
        assert_eq!(s.nodes_omitted, 0);
    }

    #[test]
    fn nobody_live_is_never_complete() {
        let r = table();
        let s = r.status("1", 1, Instant::now());
        assert_eq!((s.nodes_applied, s.nodes_live, s.complete), (0, 0, false));
        assert!(s.nodes.is_empty());
    }

    #[test]
    fn an_index_beyond_the_commit_is_clamped() {
        let t0 = Instant::now();
        let mut r = table();
        r.record("t", report("liar", u64::MAX), 40, t0).unwrap();
        let s = r.status("x", 41, t0);
        assert!(!s.complete);
        assert_eq!(s.nodes[0].applied_index, 40);
    }

    #[test]
    fn names_belong_to_their_token_and_each_token_is_capped() {
        let t0 = Instant::now();
        let mut r = Reports::new(Duration::from_secs(5), 2);
        r.record("t", report("a", 1), 9, t0).unwrap();
        assert_eq!(
            r.record("u", report("a", 9), 9, t0 + Duration::from_secs(1)),
            Err(ReportRefused::NameTaken("a".into()))
        );
        r.record("t", report("b", 1), 9, t0).unwrap();
        assert_eq!(
            r.record("t", report("c", 1), 9, t0),
            Err(ReportRefused::TooManyNodes(2))
        );
        r.record("u", report("c", 1), 9, t0).unwrap();
        // Too often: the same node within MIN_INTERVAL.
        assert_eq!(
            r.record("t", report("a", 2), 9, t0 + Duration::from_millis(10)),
            Err(ReportRefused::TooOften("a".into()))
        );
        // A silent name may be taken over by another token (a rotated fleet token).
        let silent = t0 + Duration::from_secs(6);
        r.record("u", report("b", 4), 9, silent).unwrap();
        assert_eq!(r.status("x", 4, silent).nodes_applied, 1);
        // A revoked token's names go at the next sweep; forgotten names are free again.
        r.sweep(silent, |t| t != "t");
        assert_eq!(r.len(), 2, "a and b were t's, c and b (now) u's");
        let later = silent + Duration::from_secs(5 * 60 + 1);
        r.sweep(later, |_| true);
        assert!(r.is_empty());
        r.record("u", report("a", 1), 9, later).unwrap();
        r.record("t", report("x", 1), 9, later).unwrap();
        r.record("t", report("y", 1), 9, later).unwrap();
    }

    #[test]
    fn applied_index_does_not_go_back_while_live_but_does_after_silence() {
        let t0 = Instant::now();
        let mut r = table();
        r.record("t", report("a", 10), 99, t0).unwrap();
        r.record("t", report("a", 8), 99, t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(
            r.status("x", 10, t0 + Duration::from_secs(1)).nodes_applied,
            1
        );
        r.record("t", report("a", 3), 99, t0 + Duration::from_secs(20))
            .unwrap();
        assert_eq!(
            r.status("x", 3, t0 + Duration::from_secs(20)).nodes[0].applied_index,
            3
        );
    }

    #[test]
    fn long_status_answers_are_cut_laggards_kept() {
        let t0 = Instant::now();
        let mut r = Reports::new(Duration::from_secs(5), 10_000);
        for i in 0..(MAX_LISTED + 50) {
            r.record("t", report(&format!("n{i:05}"), 10), 99, t0)
                .unwrap();
        }
        r.record("t", report("zz-lagging", 1), 99, t0).unwrap();
        let s = r.status("x", 5, t0);
        assert_eq!(s.nodes.len(), MAX_LISTED);
        assert_eq!(s.nodes_omitted, 51);
        assert_eq!(s.nodes[0].name, "zz-lagging");
        assert_eq!(s.nodes_live, MAX_LISTED as u32 + 51);
    }
}
