//! Which shield a key goes to: weighted rendezvous (highest random weight) hashing.
//!
//! Every edge ranks the shields for a key by a score computed from the key and the shield's
//! name alone, so every edge (any process, any version that keeps this function) picks the same
//! shield without talking to the others, and when a shield leaves only the keys it held move:
//! each of those goes to its next shield in rank, every other key keeps its first choice.
//! Failover walks the same ranking, so a key's second shield is also the same everywhere.
//!
//! The score of shield `s` for key `k` is `-weight(s) / ln(u)`, where `u` in (0, 1) comes from
//! blake3 of the shield's name and the key: the weighted form of rendezvous hashing (Resch,
//! "New Hashing Algorithms for Data Storage"), under which a shield's share of keys is its
//! weight over the sum of weights. Ranking is O(shields) per key; the tier has tens of shields,
//! not thousands.

use std::cmp::Ordering;

/// One shield as the ranking sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Stable name: its base URL, as configured on every edge.
    pub name: String,
    /// Relative share of keys (> 0).
    pub weight: f64,
    /// The name hashed once (the per-key hash continues from it).
    seed: blake3::Hasher,
}

impl Candidate {
    /// A shield named `name` (its URL) with `weight` (non-positive or non-finite counts as 1).
    pub fn new(name: impl Into<String>, weight: f64) -> Self {
        let name = name.into();
        let mut seed = blake3::Hasher::new();
        seed.update(b"tiercel/shield/v1");
        seed.update(&(name.len() as u64).to_le_bytes());
        seed.update(name.as_bytes());
        let weight = if weight.is_finite() && weight > 0.0 {
            weight
        } else {
            1.0
        };
        Candidate { name, weight, seed }
    }

    /// This shield's score for `key`: higher wins.
    pub fn score(&self, key: &[u8]) -> f64 {
        let mut h = self.seed.clone();
        h.update(key);
        let bytes = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        // 53 random bits into (0, 1), never 0 or 1, so ln(u) is finite and negative.
        let bits = u64::from_le_bytes(first) >> 11;
        let u = (bits as f64 + 0.5) / (1u64 << 53) as f64;
        -self.weight / u.ln()
    }
}

/// A configured shield: `URL` or `URL#weight=W` (W > 0, default 1). The fragment is ours: a
/// URL's fragment never travels, so it cannot mean anything else. Returns the URL without it
/// and the weight.
pub fn parse_shield(spec: &str) -> Result<(String, f64), String> {
    let (url, weight) = match spec.split_once('#') {
        None => (spec, 1.0),
        Some((url, fragment)) => {
            let w = fragment
                .strip_prefix("weight=")
                .and_then(|w| w.parse::<f64>().ok())
                .filter(|w| w.is_finite() && *w > 0.0 && *w <= 1000.0)
                .ok_or_else(|| {
                    format!("expected URL or URL#weight=W (0 < W <= 1000), got {spec:?}")
                })?;
            (url, w)
        }
    };
    Ok((url.trim_end_matches('/').to_owned(), weight))
}

/// The candidates ranked for `key`, best first: indices into `shields`. Ties (practically
/// impossible) fall to the lower index, so the order is total and the same everywhere.
pub fn rank(shields: &[Candidate], key: &[u8]) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = shields
        .iter()
        .enumerate()
        .map(|(i, s)| (s.score(key), i))
        .collect();
    scored.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    scored.into_iter().map(|(_, i)| i).collect()
}

/// The best candidate for `key` among those `usable` says yes to (healthy ones), if any.
pub fn pick(shields: &[Candidate], key: &[u8], usable: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<(f64, usize)> = None;
    for (i, s) in shields.iter().enumerate() {
        if !usable(i) {
            continue;
        }
        let score = s.score(key);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shields(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate::new(format!("http://shield-{i}.example:8081"), 1.0))
            .collect()
    }

    fn key(i: u64) -> [u8; 32] {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    #[test]
    fn balanced_within_ten_percent_over_100k_keys_for_3_to_10_shields() {
        for n in 3..=10 {
            let s = shields(n);
            let mut counts = vec![0u64; n];
            for i in 0..100_000 {
                counts[rank(&s, &key(i))[0]] += 1;
            }
            let fair = 100_000.0 / n as f64;
            for (i, c) in counts.iter().enumerate() {
                let off = (*c as f64 - fair).abs() / fair;
                assert!(
                    off <= 0.10,
                    "{n} shields: shield {i} got {c} keys ({off:.3} off)"
                );
            }
        }
    }

    #[test]
    fn shares_follow_weights() {
        let s = vec![
            Candidate::new("http://a:1", 1.0),
            Candidate::new("http://b:1", 2.0),
            Candidate::new("http://c:1", 1.0),
        ];
        let mut counts = [0u64; 3];
        for i in 0..100_000 {
            counts[pick(&s, &key(i), |_| true).unwrap()] += 1;
        }
        let ratio = counts[1] as f64 / counts[0] as f64;
        assert!((1.8..=2.2).contains(&ratio), "{counts:?}");
    }

    #[test]
    fn the_same_inputs_rank_the_same_everywhere() {
        // Pinned: a change here moves every key of every deployed CDN to another shield.
        let s = shields(4);
        let got: Vec<Vec<usize>> = (0..3).map(|i| rank(&s, &key(i))).collect();
        assert_eq!(
            got,
            vec![vec![1, 3, 2, 0], vec![1, 0, 3, 2], vec![1, 2, 3, 0]]
        );
        assert_eq!(pick(&s, &key(0), |_| true), Some(got[0][0]));
        assert_eq!(pick(&s, &key(0), |_| false), None);
    }

    #[test]
    fn shield_specs_carry_an_optional_weight() {
        assert_eq!(parse_shield("http://a:1"), Ok(("http://a:1".into(), 1.0)));
        assert_eq!(parse_shield("http://a:1/"), Ok(("http://a:1".into(), 1.0)));
        assert_eq!(
            parse_shield("http://a:1#weight=2.5"),
            Ok(("http://a:1".into(), 2.5))
        );
        for bad in [
            "http://a:1#weight=0",
            "http://a:1#weight=-1",
            "http://a:1#weight=x",
            "http://a:1#w=2",
            "http://a:1#weight=1e9",
            "http://a:1#weight=NaN",
        ] {
            assert!(parse_shield(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_weights_count_as_one() {
        for w in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Candidate::new("x", w).weight, 1.0);
        }
    }

    proptest! {
        #[test]
        fn when_a_shield_leaves_only_its_keys_move(n in 2usize..9, gone in 0usize..9, seed in any::<u64>()) {
            let gone = gone % n;
            let s = shields(n);
            for i in 0..200u64 {
                let k = key(seed.wrapping_add(i));
                let before = rank(&s, &k);
                let after = pick(&s, &k, |j| j != gone).unwrap();
                if before[0] == gone {
                    // Its keys go to their second choice, the next shield every edge agrees on.
                    prop_assert_eq!(after, before[1]);
                } else {
                    prop_assert_eq!(after, before[0]);
                }
            }
        }
    }
}
