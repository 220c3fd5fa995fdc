//! Request coalescing: at most one upstream fetch per (key, variant) at a time, and a short
//! memory of keys whose last response could not be shared ("hit-for-miss", as Varnish calls
//! it), so requests for them stop queueing behind each other.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::fill::Fill;
use crate::policy::VariantId;

/// What a fill holds while it runs: a slot of the node's fills and one of the connection that
/// started it (kept after that client left, so a client that starts fills and goes away still
/// pays for them).
#[derive(Debug)]
pub struct FillSlot {
    _node: tokio::sync::OwnedSemaphorePermit,
    _connection: tokio::sync::OwnedSemaphorePermit,
}

impl FillSlot {
    /// A slot from the node's `node` and the connection's `connection` semaphores, waiting
    /// until `deadline` (`None` when either is still full then).
    pub async fn acquire(
        node: &Arc<tokio::sync::Semaphore>,
        connection: &Arc<tokio::sync::Semaphore>,
        patience: std::time::Duration,
    ) -> Option<Self> {
        // Nearly always free: taken without reading the clock for a deadline.
        if let Some(slot) = Self::try_acquire(node, connection) {
            return Some(slot);
        }
        let deadline = tokio::time::Instant::now() + patience;
        // The connection's first: a connection over its own cap does not hold a node slot
        // while it waits.
        let conn = tokio::time::timeout_at(deadline, connection.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        let node = tokio::time::timeout_at(deadline, node.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        Some(FillSlot {
            _node: node,
            _connection: conn,
        })
    }

    /// A slot only if one is free now (background revalidations never wait).
    pub fn try_acquire(
        node: &Arc<tokio::sync::Semaphore>,
        connection: &Arc<tokio::sync::Semaphore>,
    ) -> Option<Self> {
        let conn = connection.clone().try_acquire_owned().ok()?;
        let node = node.clone().try_acquire_owned().ok()?;
        Some(FillSlot {
            _node: node,
            _connection: conn,
        })
    }
}

/// Coalescing key: the primary cache key and the variant the request maps to.
pub type FillKey = ([u8; 32], VariantId);

/// The hasher of the tables keyed by cache keys: foldhash, seeded per table at random. The
/// keys are digests of client-chosen URLs, so a client could grind URLs into one bucket of an
/// unseeded hash; SipHash, std's default, would cost some 400 instructions per lookup, several
/// lookups per miss.
type KeyHash = foldhash::fast::RandomState;

/// The table of fills in flight.
#[derive(Default)]
pub struct FillTable {
    fills: Mutex<HashMap<FillKey, Arc<Fill>, KeyHash>>,
}

impl std::fmt::Debug for FillTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillTable")
            .field("in_flight", &self.fills.lock().len())
            .finish()
    }
}

impl FillTable {
    /// Joins the fill in flight for `key`, or registers `make()` as the new one. Returns the
    /// fill and whether the caller is its leader (and must start the fetch).
    pub fn join_or_start(
        &self,
        key: FillKey,
        make: impl FnOnce() -> Arc<Fill>,
    ) -> (Arc<Fill>, bool) {
        let mut fills = self.fills.lock();
        if let Some(f) = fills.get(&key) {
            return (f.clone(), false);
        }
        let f = make();
        fills.insert(key, f.clone());
        (f, true)
    }

    /// The fill in flight for `key`, if any.
    pub fn get(&self, key: &FillKey) -> Option<Arc<Fill>> {
        self.fills.lock().get(key).cloned()
    }

    /// Unregisters `fill` (only if it is still the one registered under `key`).
    pub fn finish(&self, key: &FillKey, fill: &Arc<Fill>) {
        let mut fills = self.fills.lock();
        if fills.get(key).is_some_and(|f| Arc::ptr_eq(f, fill)) {
            fills.remove(key);
        }
    }

    /// Fills in flight.
    pub fn len(&self) -> usize {
        self.fills.lock().len()
    }
}

/// Keys whose last response was not shareable, with when that memory expires. Bounded: when
/// full, the oldest marks go first (never all at once: wiping every mark would send every
/// marked URL's requests back into coalescing queues together).
pub struct HitForMiss {
    ttl: Duration,
    max_entries: usize,
    marks: Mutex<Marks>,
}

#[derive(Default)]
struct Marks {
    until: HashMap<[u8; 32], Instant, KeyHash>,
    /// Marks in the order they were made (a key re-marked appears again, later).
    order: VecDeque<([u8; 32], Instant)>,
}

impl std::fmt::Debug for HitForMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HitForMiss")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl HitForMiss {
    /// Remembers keys for `ttl`, at most `max_entries` at once.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        HitForMiss {
            ttl,
            max_entries: max_entries.max(1),
            marks: Mutex::new(Marks::default()),
        }
    }

    /// Marks `key` as not shareable as of `now`.
    pub fn mark(&self, key: [u8; 32], now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let until = now + self.ttl;
        let mut m = self.marks.lock();
        m.until.insert(key, until);
        m.order.push_back((key, until));
        // Drop the oldest: expired ones, stale records of re-marked keys, and beyond the
        // bound the oldest live marks.
        while let Some(&(k, u)) = m.order.front() {
            let current = m.until.get(&k) == Some(&u);
            let over = m.until.len() > self.max_entries || m.order.len() > 2 * self.max_entries;
            if current && u > now && !over {
                break;
            }
            m.order.pop_front();
            if current && (u <= now || m.until.len() > self.max_entries) {
                m.until.remove(&k);
            }
        }
    }

    /// Forgets `key` (its response became storable again).
    pub fn clear(&self, key: &[u8; 32]) {
        let mut m = self.marks.lock();
        if !m.until.is_empty() {
            m.until.remove(key);
        }
    }

    /// Whether requests for `key` should skip coalescing at `now`.
    #[cfg(test)]
    pub fn is_marked(&self, key: &[u8; 32], now: Instant) -> bool {
        self.marked(key, || now)
    }

    /// Whether requests for `key` should skip coalescing now (asked on misses only). The
    /// clock is read only for a key that has a mark.
    pub fn is_marked_now(&self, key: &[u8; 32]) -> bool {
        self.marked(key, Instant::now)
    }

    fn marked(&self, key: &[u8; 32], now: impl FnOnce() -> Instant) -> bool {
        let m = self.marks.lock();
        m.until.get(key).is_some_and(|until| *until > now())
    }

    /// Marks held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.marks.lock().until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_for_miss_expires_and_is_bounded_oldest_first() {
        let h = HitForMiss::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        h.mark([1; 32], t0);
        assert!(h.is_marked(&[1; 32], t0 + Duration::from_secs(9)));
        assert!(!h.is_marked(&[1; 32], t0 + Duration::from_secs(10)));
        h.mark([2; 32], t0 + Duration::from_secs(1));
        h.mark([3; 32], t0 + Duration::from_secs(2));
        // Full: the oldest (1) went, the newer two stay.
        assert_eq!(h.len(), 2);
        let later = t0 + Duration::from_secs(3);
        assert!(!h.is_marked(&[1; 32], later));
        assert!(h.is_marked(&[2; 32], later) && h.is_marked(&[3; 32], later));
        // Re-marking a key moves it to the back: the next eviction takes 3, not 2.
        h.mark([2; 32], later);
        h.mark([4; 32], later);
        assert!(h.is_marked(&[2; 32], later) && h.is_marked(&[4; 32], later));
        assert!(!h.is_marked(&[3; 32], later));
        assert_eq!(h.len(), 2);
        h.clear(&[3; 32]);
        assert!(!h.is_marked(&[3; 32], t0));
        let off = HitForMiss::new(Duration::ZERO, 2);
        off.mark([1; 32], t0);
        assert!(!off.is_marked(&[1; 32], t0));
    }
}
