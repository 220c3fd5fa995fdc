//! One connection limit for every listener of a node, an optional cap per client address, and
//! room made for new clients at the limit by closing the longest-idle keep-alive connections
//! first (nginx does the same with its "reusable" connections), so a new client is answered
//! rather than parked in the kernel's backlog for as long as idle clients linger.
//!
//! ```text
//! accept loop ── permit() ──▶ free permit ──▶ admit(peer) ──▶ Admitted (released on drop)
//!                  │ few left                   └ over the per-address cap: refused
//!                  └─▶ reclaim(): the oldest idle keep-alive connections are asked to close
//! ```
//!
//! The registry is touched when a connection opens and closes, never per request; choosing
//! whom to close reads each connection's [`Activity`] (atomics) only when the limit is near.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::quiet::Activity;

/// How often, at most, the registry is scanned for idle connections to close.
const RECLAIM_EVERY: Duration = Duration::from_millis(50);

/// The node-wide connection limit (see the module docs).
#[derive(Debug)]
pub struct ConnLimiter {
    permits: Arc<Semaphore>,
    max: usize,
    per_ip: usize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    live: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    last_reclaim: Mutex<Option<Instant>>,
}

/// A connection counted by the limiter; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    limiter: Arc<ConnLimiter>,
    id: u64,
    ip: Option<IpAddr>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.limiter.live.lock().remove(&self.id);
        if let Some(ip) = self.ip {
            let mut by_ip = self.limiter.by_ip.lock();
            if let Some(n) = by_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
    }
}

impl ConnLimiter {
    /// At most `max` connections at once (at least 1), and `per_ip` from one address (`0`: no
    /// cap).
    pub fn new(max: usize, per_ip: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(ConnLimiter {
            permits: Arc::new(Semaphore::new(max)),
            max,
            per_ip,
            by_ip: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            last_reclaim: Mutex::new(None),
        })
    }

    /// Free places below which idle connections are closed to make room: 1/64 of the limit,
    /// at least one.
    fn headroom(&self) -> usize {
        (self.max / 64).max(1)
    }

    /// Connections counted now.
    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Waits for a free place. Near the limit, the longest-idle connections are asked to
    /// close, and again while the wait lasts (connections in flight may turn idle). Returns
    /// `None` only if the limiter was closed.
    pub async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            if self.permits.available_permits() <= self.headroom() {
                self.reclaim();
            }
            tokio::select! {
                p = self.permits.clone().acquire_owned() => return p.ok(),
                () = tokio::time::sleep(RECLAIM_EVERY) => {}
            }
        }
    }

    /// Counts an accepted connection from `peer`, or refuses it (`None`) when that address
    /// already holds its cap. `activity` is what the reclaimer looks at.
    pub fn admit(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        peer: IpAddr,
        activity: Arc<Activity>,
    ) -> Option<Admitted> {
        let ip = if self.per_ip > 0 {
            let peer = address_group(peer);
            let mut by_ip = self.by_ip.lock();
            let n = by_ip.entry(peer).or_insert(0);
            if *n >= self.per_ip {
                return None;
            }
            *n += 1;
            Some(peer)
        } else {
            None
        };
        let id = self.next_id.fetch_add(1, Relaxed);
        self.live.lock().insert(id, activity);
        Some(Admitted {
            limiter: self.clone(),
            id,
            ip,
            _permit: permit,
        })
    }

    /// Asks the longest-idle keep-alive connections to close (as many as the headroom), at
    /// most once per [`RECLAIM_EVERY`].
    fn reclaim(&self) {
        {
            let mut last = self.last_reclaim.lock();
            if last.is_some_and(|t| t.elapsed() < RECLAIM_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let mut idle: Vec<(Instant, Arc<Activity>)> = self
            .live
            .lock()
            .values()
            .filter_map(|a| a.idle_since().map(|t| (t, a.clone())))
            .collect();
        let n = self.headroom().min(idle.len());
        if n == 0 {
            return;
        }
        if n < idle.len() {
            idle.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        }
        for (_, activity) in idle.into_iter().take(n) {
            activity.ask_to_close();
        }
    }
}

/// What the per-address cap counts: an IPv4 address (also when mapped into IPv6), or an IPv6
/// /64, the smallest block one subscriber is usually given.
fn address_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn per_address_cap_counts_and_releases() {
        let l = ConnLimiter::new(10, 2);
        let a = Activity::new();
        let one = l
            .admit(l.permit().await.unwrap(), ip(1), a.clone())
            .unwrap();
        let _two = l
            .admit(l.permit().await.unwrap(), ip(1), a.clone())
            .unwrap();
        assert!(
            l.admit(l.permit().await.unwrap(), ip(1), a.clone())
                .is_none()
        );
        let _other = l
            .admit(l.permit().await.unwrap(), ip(2), a.clone())
            .unwrap();
        assert_eq!(l.open(), 3);
        drop(one);
        assert!(
            l.admit(l.permit().await.unwrap(), ip(1), a.clone())
                .is_some()
        );
    }

    #[tokio::test]
    async fn at_the_limit_the_oldest_idle_connection_is_asked_to_close() {
        let l = ConnLimiter::new(3, 0);
        let busy = Activity::new();
        let _in_flight = busy.request_started();
        let old = Activity::new();
        let _done = old.request_started();
        drop(_done);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let young = Activity::new();
        drop(young.request_started());
        let _a = l.admit(l.permit().await.unwrap(), ip(1), busy.clone());
        let _b = l.admit(l.permit().await.unwrap(), ip(1), old.clone());
        let _c = l.admit(l.permit().await.unwrap(), ip(1), young.clone());
        // Full: the next permit waits, and meanwhile asks the oldest idle one to close.
        let waiting = tokio::time::timeout(Duration::from_millis(100), l.permit()).await;
        assert!(waiting.is_err());
        assert!(old.close_asked_now());
        assert!(!young.close_asked_now());
        assert!(!busy.close_asked_now());
    }

    #[test]
    fn addresses_are_grouped_as_subscribers_get_them() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(address_group("::ffff:10.0.0.1".parse().unwrap()), v4);
        assert_eq!(
            address_group("2001:db8:1:2:aaaa::1".parse().unwrap()),
            address_group("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            address_group("2001:db8:1:2::1".parse().unwrap()),
            address_group("2001:db8:1:3::1".parse().unwrap())
        );
    }

    #[test]
    fn a_fresh_connection_is_not_idle() {
        assert!(Activity::new().idle_since().is_none());
    }
}
