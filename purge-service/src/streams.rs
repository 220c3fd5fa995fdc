//! Admission of `/v1/log` streams: a cap per member and per token, so followers that connect
//! and never read (or a leaked token opening streams in a loop) cannot hold a member's memory.
//! A refused follower is told 503 and moves to another member.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    /// The member serves as many streams as it may.
    #[error("this member serves its maximum of {0} log streams; try another member")]
    Member(usize),
    /// The token holds as many streams on this member as it may.
    #[error("this token holds its maximum of {0} log streams on this member")]
    Token(usize),
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_token: HashMap<String, usize>,
}

/// Open stream counts.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    counts: Arc<Mutex<Counts>>,
    max: usize,
    max_per_token: usize,
}

/// One admitted stream; its slot is freed when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    counts: Arc<Mutex<Counts>>,
    token: String,
}

impl StreamSlots {
    /// At most `max` streams, `max_per_token` of them for any one token.
    pub fn new(max: usize, max_per_token: usize) -> Self {
        StreamSlots {
            counts: Arc::default(),
            max,
            max_per_token,
        }
    }

    /// Admits a stream for `token`, or says why not.
    pub fn admit(&self, token: &str) -> Result<StreamSlot, StreamRefused> {
        let mut c = self.counts.lock();
        if c.total >= self.max {
            return Err(StreamRefused::Member(self.max));
        }
        let mine = c.per_token.get(token).copied().unwrap_or(0);
        if mine >= self.max_per_token {
            return Err(StreamRefused::Token(self.max_per_token));
        }
        c.total += 1;
        c.per_token.insert(token.to_string(), mine + 1);
        Ok(StreamSlot {
            counts: self.counts.clone(),
            token: token.to_string(),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.counts.lock().total
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_token.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_token.remove(&self.token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_member_and_per_token_and_frees_on_drop() {
        let s = StreamSlots::new(3, 2);
        let a1 = s.admit("a").unwrap();
        let _a2 = s.admit("a").unwrap();
        assert_eq!(s.admit("a").unwrap_err(), StreamRefused::Token(2));
        let _b1 = s.admit("b").unwrap();
        assert_eq!(s.admit("c").unwrap_err(), StreamRefused::Member(3));
        drop(a1);
        assert_eq!(s.open(), 2);
        let _c1 = s.admit("c").unwrap();
        assert_eq!(s.admit("a").unwrap_err(), StreamRefused::Member(3));
    }
}
