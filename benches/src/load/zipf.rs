//! Zipf-distributed object indices (rank `k` of `n` drawn with probability proportional to
//! `1 / k^s`): the popularity of objects behind a CDN, for tiered-cache benchmarks.

/// A Zipf distribution over `0..n`, sampled by inverting its cumulative distribution.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Over `n` objects (at least 1) with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// The index for a uniform draw `u` in `[0, 1)`: 0 is the most popular.
    pub fn sample(&self, u: f64) -> usize {
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popularity_falls_as_one_over_rank() {
        let z = Zipf::new(100_000, 1.0);
        let mut counts = vec![0u64; 4];
        let draws = 200_000;
        for i in 0..draws {
            // A low-discrepancy sequence stands in for random draws.
            let u = (i as f64 * 0.618_033_988_749_895) % 1.0;
            let k = z.sample(u);
            if k < 4 {
                counts[k] += 1;
            }
        }
        // Rank 1 is drawn twice as often as rank 2, three times as often as rank 3.
        let r2 = counts[0] as f64 / counts[1] as f64;
        let r3 = counts[0] as f64 / counts[2] as f64;
        assert!((1.9..2.1).contains(&r2), "{counts:?}");
        assert!((2.8..3.2).contains(&r3), "{counts:?}");
        assert_eq!(z.sample(0.0), 0);
        assert_eq!(z.sample(0.999_999_999), 99_999.min(z.sample(0.999_999_999)));
        assert!(z.sample(0.999_999_999) < 100_000);
    }
}
