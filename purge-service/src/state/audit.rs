//! The audit trail of purges: who purged what, and when, kept in the replicated state so every
//! member answers `GET /v1/purges` alike, and so it survives log compaction.
//!
//! Bounded by count and by the bytes of the targets it holds, oldest first out; both bounds
//! depend only on the log, so every member keeps the same records.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tiercel_cluster::purge::wire::PurgeRecord;

use crate::types::parse_purge_id;

/// Purges remembered at most.
pub const MAX_RECORDS: usize = 10_000;
/// Bytes of targets (URLs, prefixes, tags, hosts) remembered at most.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// The purges, in log order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditTrail {
    records: VecDeque<PurgeRecord>,
    bytes: usize,
}

/// Where a record sits in log order: its entry's index and its item number in the entry.
pub fn position(r: &PurgeRecord) -> (u64, u32) {
    match parse_purge_id(&r.id) {
        Some((index, item)) => (index, item.unwrap_or(0)),
        None => (r.index, 0),
    }
}

fn weight(r: &PurgeRecord) -> usize {
    let p = &r.purge;
    [&p.urls, &p.prefixes, &p.tags, &p.hosts]
        .iter()
        .flat_map(|v| v.iter())
        .map(String::len)
        .sum::<usize>()
        + 64
}

impl AuditTrail {
    /// Appends a record (its index is at least the last one's).
    pub fn push(&mut self, record: PurgeRecord) {
        self.bytes += weight(&record);
        self.records.push_back(record);
        while self.records.len() > MAX_RECORDS || (self.bytes > MAX_BYTES && self.records.len() > 1)
        {
            if let Some(gone) = self.records.pop_front() {
                self.bytes -= weight(&gone);
            }
        }
    }

    /// Up to `limit` records accepted at or after `since_ms` that come after the purge id
    /// `after` (items of one log entry share its index, so the id, not the index, is the
    /// page mark), and whether more follow.
    pub fn list(
        &self,
        since_ms: u64,
        after: Option<(u64, u32)>,
        limit: usize,
    ) -> (Vec<PurgeRecord>, bool) {
        // Positions grow along the deque: skip to the first one after `after`.
        let start = match after {
            Some(mark) => self.records.partition_point(|r| position(r) <= mark),
            None => 0,
        };
        let mut matching = self.records.range(start..).filter(|r| r.at_ms >= since_ms);
        let out: Vec<PurgeRecord> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        (out, more)
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use tiercel_cluster::purge::wire::PurgeRequest;

    use super::*;

    fn rec(index: u64, at_ms: u64, tag: &str) -> PurgeRecord {
        PurgeRecord {
            id: index.to_string(),
            index,
            at_ms,
            by: Some("ci".into()),
            token_id: Some("tok_1".into()),
            purge: PurgeRequest {
                tags: vec![tag.into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn lists_by_time_and_index_with_paging() {
        let mut a = AuditTrail::default();
        for i in 1..=10 {
            a.push(rec(i, i * 100, "t"));
        }
        let (page, more) = a.list(0, None, 4);
        assert_eq!(
            page.iter().map(|r| r.index).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(more);
        let (page, more) = a.list(0, Some((4, 0)), 100);
        assert_eq!(page.len(), 6);
        assert!(!more);
        let (page, _) = a.list(750, None, 100);
        assert_eq!(page.iter().map(|r| r.index).collect::<Vec<_>>(), [8, 9, 10]);
        let (page, more) = a.list(0, Some((10, 0)), 100);
        assert!(page.is_empty() && !more);
    }

    #[test]
    fn a_page_boundary_inside_a_batch_loses_nothing() {
        let mut a = AuditTrail::default();
        for n in 0..3 {
            let mut r = rec(7, 1, "t");
            r.id = format!("7.{n}");
            a.push(r);
        }
        a.push(rec(8, 2, "t"));
        let (first, more) = a.list(0, None, 2);
        assert!(more);
        let ids = |v: &[PurgeRecord]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&first), ["7.0", "7.1"]);
        let mark = position(&first[1]);
        let (rest, more) = a.list(0, Some(mark), 10);
        assert!(!more);
        assert_eq!(ids(&rest), ["7.2", "8"]);
    }

    #[test]
    fn bounded_by_count_and_bytes_oldest_first() {
        let mut a = AuditTrail::default();
        for i in 0..(MAX_RECORDS as u64 + 5) {
            a.push(rec(i, i, "t"));
        }
        assert_eq!(a.len(), MAX_RECORDS);
        assert_eq!(a.list(0, None, 1).0[0].index, 5);
        let mut b = AuditTrail::default();
        let big = "x".repeat(MAX_BYTES / 3);
        for i in 0..5 {
            b.push(rec(i, i, &big));
        }
        assert_eq!(b.len(), 2);
        // One record over the byte bound alone is still kept.
        b.push(rec(9, 9, &"y".repeat(MAX_BYTES + 1)));
        assert_eq!(b.len(), 1);
    }
}
