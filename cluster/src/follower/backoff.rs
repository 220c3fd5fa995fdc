//! Jittered exponential backoff between reconnects (pure: the randomness is an argument).

use std::time::Duration;

/// Reconnect delays: `min`, doubling per consecutive failure up to `max`, each drawn uniformly
/// from the upper half of that step so a fleet of nodes that lost the same server does not
/// reconnect in lock-step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay step after the first failure.
    pub min: Duration,
    /// Largest delay step.
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt number `failures` (1 = first failure) with `jitter` in [0, 1).
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let shift = (failures - 1).min(20);
        let step = self.min.saturating_mul(1u32 << shift).min(self.max);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Duration::try_from_secs_f64(step.as_secs_f64() * (0.5 + 0.5 * jitter)).unwrap_or(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_min_to_max_within_the_upper_half() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        let ms = |f, j| b.delay(f, j).as_millis();
        let cases = [
            (0, 0.0, 0),
            (1, 0.0, 50),
            (1, 1.0, 100),
            (2, 0.0, 100),
            (2, 0.5, 150),
            (3, 1.0, 400),
            (6, 1.0, 3200),
            (7, 1.0, 5000),
            (7, 0.0, 2500),
            (1000, 1.0, 5000),
            (1, f64::NAN, 50),
            (1, -3.0, 50),
            (1, 7.0, 100),
        ];
        for (failures, jitter, want) in cases {
            assert_eq!(
                ms(failures, jitter),
                want,
                "failures={failures} jitter={jitter}"
            );
        }
        let huge = Backoff {
            min: Duration::MAX,
            max: Duration::MAX,
        };
        assert!(huge.delay(3, 1.0) >= Duration::from_secs(u64::MAX / 2));
    }
}
