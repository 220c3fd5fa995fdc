//! Follower progress as reported to the leader, and purge status computed from it.
//!
//! Soft state kept by the leader only: followers report about once a second, so a new leader
//! knows every live node again within the liveness window. Pure: `now` is an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tiercel_cluster::purge::wire::{FollowerReport, NodeProgress, PurgeStatus};

/// Nodes silent this many liveness windows are dropped from the table.
const FORGET_AFTER_WINDOWS: u32 = 60;

#[derive(Debug, Clone)]
struct Seen {
    role: String,
    applied_index: u64,
    at: Instant,
}

/// Last report per follower node.
#[derive(Debug)]
pub struct Reports {
    nodes: HashMap<String, Seen>,
    window: Duration,
}

impl Reports {
    /// A node counts as live when it reported within `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            nodes: HashMap::new(),
            window,
        }
    }

    /// Records a report received at `now`. An applied index never goes back for a node that
    /// stays live (reports may arrive out of order through different purge-service nodes);
    /// a node back after a silence is taken at its word (it may have been reset).
    pub fn record(&mut self, report: FollowerReport, now: Instant) {
        let forget = self.window * FORGET_AFTER_WINDOWS;
        self.nodes
            .retain(|_, s| now.saturating_duration_since(s.at) < forget);
        let applied_index = match self.nodes.get(&report.node) {
            Some(prev) if now.saturating_duration_since(prev.at) <= self.window => {
                prev.applied_index.max(report.applied_index)
            }
            _ => report.applied_index,
        };
        self.nodes.insert(
            report.node,
            Seen {
                role: report.role,
                applied_index,
                at: now,
            },
        );
    }

    /// How far the purge `id` at `index` has spread, as of `now`.
    pub fn status(&self, id: &str, index: u64, now: Instant) -> PurgeStatus {
        let mut nodes: Vec<NodeProgress> = self
            .nodes
            .iter()
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
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let live = nodes.iter().filter(|n| n.live).count();
        let applied = nodes
            .iter()
            .filter(|n| n.live && n.applied_index >= index)
            .count();
        PurgeStatus {
            id: id.to_string(),
            index,
            nodes_applied: u32::try_from(applied).unwrap_or(u32::MAX),
            nodes_live: u32::try_from(live).unwrap_or(u32::MAX),
            complete: live > 0 && applied == live,
            nodes,
        }
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

    #[test]
    fn status_counts_live_nodes_that_applied() {
        let t0 = Instant::now();
        let mut r = Reports::new(Duration::from_secs(5));
        r.record(report("a", 10), t0);
        r.record(report("b", 7), t0 + Duration::from_secs(1));
        r.record(report("c", 50), t0 - Duration::from_secs(1));
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
        let s = r.status("x", 5, now);
        let names: Vec<_> = s
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.live, n.last_seen_ms))
            .collect();
        assert_eq!(
            names,
            [("a", true, 4_500), ("b", true, 3_500), ("c", false, 5_500)]
        );
    }

    #[test]
    fn nobody_live_is_never_complete() {
        let r = Reports::new(Duration::from_secs(5));
        let s = r.status("1", 1, Instant::now());
        assert_eq!((s.nodes_applied, s.nodes_live, s.complete), (0, 0, false));
        assert!(s.nodes.is_empty());
    }

    #[test]
    fn applied_index_does_not_go_back_while_live_but_does_after_silence() {
        let t0 = Instant::now();
        let mut r = Reports::new(Duration::from_secs(5));
        r.record(report("a", 10), t0);
        r.record(report("a", 8), t0 + Duration::from_secs(1));
        assert_eq!(
            r.status("x", 10, t0 + Duration::from_secs(1)).nodes_applied,
            1
        );
        r.record(report("a", 3), t0 + Duration::from_secs(20));
        assert_eq!(
            r.status("x", 3, t0 + Duration::from_secs(20)).nodes[0].applied_index,
            3
        );
    }

    #[test]
    fn long_silent_nodes_are_forgotten() {
        let t0 = Instant::now();
        let mut r = Reports::new(Duration::from_secs(1));
        r.record(report("old", 1), t0);
        r.record(report("new", 1), t0 + Duration::from_secs(61));
        assert_eq!(
            r.status("x", 1, t0 + Duration::from_secs(61)).nodes.len(),
            1
        );
    }
}
