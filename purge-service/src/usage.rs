//! When each token was last used on this member: soft state for `GET /v1/tokens`, merged
//! across members when the list is asked for, and lost on restart (the trade for not writing
//! to the replicated log on every request).

use std::collections::HashMap;

use parking_lot::Mutex;

/// Last use per token id (ms since the epoch).
#[derive(Debug, Default)]
pub struct Usage {
    last: Mutex<HashMap<String, u64>>,
}

impl Usage {
    /// Records a use of token `id` at `now_ms`. Only authenticated tokens are recorded, so the
    /// map holds at most one entry per token that exists.
    pub fn record(&self, id: &str, now_ms: u64) {
        let mut last = self.last.lock();
        match last.get_mut(id) {
            Some(t) => *t = (*t).max(now_ms),
            None => {
                last.insert(id.to_string(), now_ms);
            }
        }
    }

    /// Every token's last use seen here.
    pub fn snapshot(&self) -> HashMap<String, u64> {
        self.last.lock().clone()
    }

    /// Keeps only the tokens `keep` says still exist.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.last.lock().retain(|id, _| keep(id));
    }
}

/// Merges `other` into `into`, keeping the later use of each token.
pub fn merge(into: &mut HashMap<String, u64>, other: HashMap<String, u64>) {
    for (id, t) in other {
        let e = into.entry(id).or_insert(t);
        *e = (*e).max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_the_latest_use_and_merges_by_maximum() {
        let u = Usage::default();
        u.record("a", 5);
        u.record("a", 3);
        u.record("b", 1);
        let mut m = u.snapshot();
        assert_eq!(m["a"], 5);
        merge(&mut m, HashMap::from([("a".into(), 9), ("c".into(), 2)]));
        assert_eq!((m["a"], m["b"], m["c"]), (9, 1, 2));
        u.retain(|id| id == "b");
        assert_eq!(u.snapshot().len(), 1);
    }
}
