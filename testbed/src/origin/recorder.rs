//! What the demo origin received: per-target counters and the most recent requests, for tests to
//! assert how many requests reached the origin and what a cache forwarded.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version, header};
use parking_lot::Mutex;

/// How many requests the recorder keeps for [`Origin::requests`](super::Origin::requests): the
/// most recent ones, so a long benchmark does not grow the origin without bound.
pub const MAX_RECORDED: usize = 10_000;

/// Distinct targets a counter generation holds before it becomes the previous one. A miss
/// benchmark asks for a new URL every request: one map of every target ever seen grew without
/// bound and stalled the origin for every rehash of millions of entries (a p99 spike for
/// whichever server was being measured). With two generations, a target's count is exact as
/// long as no more than `COUNTED_TARGETS` other distinct targets were asked for between two of
/// its requests; after a longer gap it starts again from one.
pub const COUNTED_TARGETS: usize = 1 << 16;

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request method.
    pub method: Method,
    /// The request target as received (origin-form in HTTP/1.1; HTTP/2 adds scheme and
    /// authority).
    pub uri: Uri,
    /// HTTP/1.1 or HTTP/2.
    pub version: Version,
    /// The request headers, as received.
    pub headers: HeaderMap,
    /// The request body (empty for GET and HEAD).
    pub body: Bytes,
    /// The client's address.
    pub peer: SocketAddr,
    /// When the origin received the request head.
    pub received_at: SystemTime,
}

impl RecordedRequest {
    /// The path and query, the key of the hit counters.
    pub fn target(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }

    /// Whether the request carried `If-None-Match` or `If-Modified-Since`.
    pub fn is_conditional(&self) -> bool {
        self.headers.contains_key(header::IF_NONE_MATCH)
            || self.headers.contains_key(header::IF_MODIFIED_SINCE)
    }
}

/// Per-target counters in two generations: `current` takes every bump (carrying over a
/// target's count from `previous`), and when it is full it replaces `previous`, whose targets
/// nobody asked for in `COUNTED_TARGETS` distinct targets are forgotten.
#[derive(Default)]
struct Counts {
    current: TargetMap,
    previous: TargetMap,
}

/// foldhash rather than SipHash: the counters hash every request's target three times, and
/// the origin is on the benchmarks' load core.
type TargetMap = HashMap<String, u64, foldhash::fast::RandomState>;

impl Counts {
    /// Adds one to `target`'s count and returns the new count. A generation this retires comes
    /// back in `retired`, for the caller to drop once it no longer holds the lock (freeing 65 536
    /// strings takes a millisecond or two).
    fn bump(&mut self, target: String, retired: &mut Option<TargetMap>) -> u64 {
        if let Some(n) = self.current.get_mut(&target) {
            *n += 1;
            return *n;
        }
        let n = self.previous.remove(&target).unwrap_or(0) + 1;
        if self.current.len() >= COUNTED_TARGETS {
            let full = std::mem::replace(
                &mut self.current,
                TargetMap::with_capacity_and_hasher(COUNTED_TARGETS, Default::default()),
            );
            *retired = Some(std::mem::replace(&mut self.previous, full));
        }
        self.current.insert(target, n);
        n
    }

    fn get(&self, target: &str) -> u64 {
        self.current
            .get(target)
            .or_else(|| self.previous.get(target))
            .copied()
            .unwrap_or(0)
    }

    fn prefix_sum(&self, prefix: &str) -> u64 {
        self.current
            .iter()
            .chain(&self.previous)
            .filter(|(target, _)| target.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Default)]
struct Inner {
    hits: Counts,
    conditional: Counts,
    total: u64,
    recent: VecDeque<RecordedRequest>,
}

/// Counters and recent requests, shared by every connection.
#[derive(Default)]
pub(crate) struct Recorder {
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Records `req` and returns the hit count of its target, this request included.
    pub(crate) fn record(&self, req: RecordedRequest) -> u64 {
        let target = req.target().to_owned();
        let conditional = req.is_conditional();
        let (mut retired, mut retired_conditional) = (None, None);
        let mut inner = self.inner.lock();
        inner.total += 1;
        if conditional {
            inner
                .conditional
                .bump(target.clone(), &mut retired_conditional);
        }
        let hits = inner.hits.bump(target, &mut retired);
        if inner.recent.len() == MAX_RECORDED {
            inner.recent.pop_front();
        }
        inner.recent.push_back(req);
        drop(inner);
        drop((retired, retired_conditional));
        hits
    }

    pub(crate) fn hits(&self, target: &str) -> u64 {
        self.inner.lock().hits.get(target)
    }

    pub(crate) fn hits_prefix(&self, prefix: &str) -> u64 {
        self.inner.lock().hits.prefix_sum(prefix)
    }

    pub(crate) fn total(&self) -> u64 {
        self.inner.lock().total
    }

    pub(crate) fn conditional_hits(&self, target: &str) -> u64 {
        self.inner.lock().conditional.get(target)
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().recent.iter().cloned().collect()
    }

    pub(crate) fn reset(&self) {
        *self.inner.lock() = Inner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, conditional: bool) -> RecordedRequest {
        let mut headers = HeaderMap::new();
        if conditional {
            headers.insert(header::IF_NONE_MATCH, "\"x\"".parse().unwrap());
        }
        RecordedRequest {
            method: Method::GET,
            uri: target.parse().unwrap(),
            version: Version::HTTP_11,
            headers,
            body: Bytes::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            received_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn counts_by_exact_target_prefix_and_condition() {
        let r = Recorder::default();
        assert_eq!(r.record(req("/a?x=1", false)), 1);
        assert_eq!(r.record(req("/a?x=1", true)), 2);
        assert_eq!(r.record(req("/a", false)), 1);
        assert_eq!(r.record(req("/ab", true)), 1);
        assert_eq!(r.record(req("http://h:1/b/c?d", false)), 1);
        assert_eq!(r.hits("/a?x=1"), 2);
        assert_eq!(r.hits("/a"), 1);
        assert_eq!(r.hits("/b/c?d"), 1);
        assert_eq!(r.hits("/nothing"), 0);
        assert_eq!(r.hits_prefix("/a"), 4);
        assert_eq!(r.hits_prefix("/a?"), 2);
        assert_eq!(r.hits_prefix("/b/"), 1);
        assert_eq!(r.total(), 5);
        assert_eq!(r.conditional_hits("/a?x=1"), 1);
        assert_eq!(r.conditional_hits("/ab"), 1);
        assert_eq!(r.conditional_hits("/a"), 0);
        assert_eq!(r.requests().len(), 5);
        assert_eq!(r.requests()[4].target(), "/b/c?d");
        r.reset();
        assert_eq!((r.total(), r.hits("/a"), r.requests().len()), (0, 0, 0));
    }

    #[test]
    fn keeps_only_the_most_recent_requests() {
        let r = Recorder::default();
        for i in 0..MAX_RECORDED + 5 {
            r.record(req(&format!("/{i}"), false));
        }
        let recent = r.requests();
        assert_eq!(recent.len(), MAX_RECORDED);
        assert_eq!(recent[0].target(), "/5");
        assert_eq!(r.total(), (MAX_RECORDED + 5) as u64);
    }

    #[test]
    fn counts_stay_bounded_and_exact_for_targets_asked_for_recently() {
        let r = Recorder::default();
        r.record(req("/old", false));
        r.record(req("/kept", true));
        r.record(req("/kept", false));
        for i in 0..COUNTED_TARGETS {
            r.record(req(&format!("/n{i}"), false));
        }
        // `/kept` moved to the previous generation; asking again carries its count over.
        assert_eq!(r.record(req("/kept", true)), 3);
        for i in 0..COUNTED_TARGETS {
            r.record(req(&format!("/m{i}"), false));
        }
        assert_eq!(r.hits("/kept"), 3);
        assert_eq!(r.conditional_hits("/kept"), 2);
        assert_eq!(
            r.hits("/old"),
            0,
            "not asked for in two generations: forgotten"
        );
        assert_eq!(r.hits("/n0"), 0);
        assert_eq!(r.hits(&format!("/m{}", COUNTED_TARGETS - 1)), 1);
        let inner = r.inner.lock();
        assert!(inner.hits.current.len() <= COUNTED_TARGETS);
        assert!(inner.hits.previous.len() <= COUNTED_TARGETS);
        drop(inner);
        assert!(r.hits_prefix("/") <= 2 * COUNTED_TARGETS as u64 + 2);
    }
}
