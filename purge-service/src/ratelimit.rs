//! Per-token rate limits: a token bucket per token id, in memory on each node.
//!
//! Pure: the caller passes `now`. Limits are soft state (a restart refills every bucket), which
//! is the usual trade for not replicating a counter on every request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Buckets idle this long are forgotten (they would be full again anyway).
const IDLE_FORGET: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by token id.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: HashMap<String, Bucket>,
    default_rate: f64,
    default_burst: f64,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// Limits tokens without their own rate to `rate` per second with bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            buckets: HashMap::new(),
            default_rate: rate,
            default_burst: burst.max(1.0),
            last_sweep: None,
        }
    }

    /// Takes one request from `key`'s bucket. `rate` is the token's own rate (its burst is twice
    /// that, at least 1). On refusal, returns the whole seconds to wait (at least 1), as
    /// `Retry-After` wants them.
    pub fn check(&mut self, key: &str, rate: Option<f64>, now: Instant) -> Result<(), u64> {
        self.sweep(now);
        let (rate, burst) = match rate {
            Some(r) => (r, (r * 2.0).max(1.0)),
            None => (self.default_rate, self.default_burst),
        };
        let bucket = self.buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if rate <= 0.0 {
            return Err(u64::MAX);
        }
        let wait = (1.0 - bucket.tokens) / rate;
        Err((wait.ceil() as u64).max(1))
    }

    fn sweep(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) > IDLE_FORGET);
        if due {
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last) < IDLE_FORGET);
            self.last_sweep = Some(now);
        }
    }

    /// Buckets currently tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(2.0, 3.0);
        for i in 0..3 {
            assert_eq!(rl.check("a", None, t0), Ok(()), "request {i}");
        }
        assert_eq!(rl.check("a", None, t0), Err(1));
        // Half a second at 2/s refills one.
        assert_eq!(rl.check("a", None, t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(rl.check("a", None, t0 + Duration::from_millis(500)), Err(1));
    }

    #[test]
    fn tokens_are_independent_and_may_carry_their_own_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(100.0, 200.0);
        // rate 0.25/s: burst 1, then a wait of 4 s.
        assert_eq!(rl.check("slow", Some(0.25), t0), Ok(()));
        assert_eq!(rl.check("slow", Some(0.25), t0), Err(4));
        assert_eq!(rl.check("other", None, t0), Ok(()));
        assert_eq!(
            rl.check("slow", Some(0.25), t0 + Duration::from_secs(4)),
            Ok(())
        );
    }

    #[test]
    fn the_bucket_never_exceeds_its_burst() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10.0, 5.0);
        assert_eq!(rl.check("a", None, t0), Ok(()));
        let later = t0 + Duration::from_secs(100);
        let allowed = (0..20)
            .filter(|_| rl.check("a", None, later).is_ok())
            .count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn idle_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(1.0, 1.0);
        rl.check("a", None, t0).unwrap();
        rl.check("b", None, t0 + IDLE_FORGET * 2).unwrap();
        assert_eq!(rl.len(), 1);
    }
}
