//! Whether an upstream (a shield) is worth trying: passive marks from failed exchanges and
//! active probes, with exponential back-off, as HAProxy and nginx's `max_fails`/`fail_timeout`
//! do. Lock-free: the request path reads one atomic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// First back-off after a failure; doubled per consecutive failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_secs(1);

/// Longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long an upstream stays down after its `failures`-th consecutive failure.
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    MIN_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF)
}

/// One upstream's health.
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` until which it is down (0: up).
    down_until: AtomicU64,
    failures: AtomicU32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            epoch: Instant::now(),
            down_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
        }
    }
}

impl Health {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether it may be tried now.
    pub fn is_up(&self) -> bool {
        self.down_until.load(Relaxed) <= self.now()
    }

    /// An exchange or probe succeeded: up at once.
    pub fn succeeded(&self) {
        // Both are checked, so a failure racing this success cannot leave it down with no
        // failure counted.
        if self.failures.swap(0, Relaxed) != 0 || self.down_until.load(Relaxed) != 0 {
            self.down_until.store(0, Relaxed);
        }
    }

    /// An exchange or probe failed: down for the back-off of this many failures in a row.
    pub fn failed(&self) {
        let n = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        let until = self.now().saturating_add(backoff(n).as_millis() as u64);
        self.down_until.store(until, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_failure_takes_it_down_a_success_brings_it_back() {
        let h = Health::default();
        assert!(h.is_up());
        h.failed();
        assert!(!h.is_up());
        h.succeeded();
        assert!(h.is_up());
    }
}
