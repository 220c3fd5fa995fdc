//! Recently applied follower events, encoded once and shared by every `/v1/log` stream.
//!
//! Without it, each open stream would read and re-encode every new entry from the log store:
//! with a hundred edges following one node, a hundred store reads per commit. The state machine
//! pushes each applied entry's NDJSON line (or a gap marker for entries followers do not see)
//! here; a stream whose cursor lies inside the window copies bytes. Pure: no IO, no clock.

use std::collections::VecDeque;

use bytes::Bytes;

/// A contiguous window of applied indexes and their encoded lines.
#[derive(Debug)]
pub struct RecentEvents {
    first: u64,
    lines: VecDeque<Option<Bytes>>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl RecentEvents {
    /// A window of at most `max_entries` entries and `max_bytes` bytes of lines.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            first: 0,
            lines: VecDeque::new(),
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// Records the line of the entry applied at `index` (`None`: nothing for followers). An
    /// index that does not follow the last one restarts the window there.
    pub fn push(&mut self, index: u64, line: Option<Bytes>) {
        if self.lines.is_empty() || self.first + self.lines.len() as u64 != index {
            self.clear();
            self.first = index;
        }
        self.bytes += line.as_ref().map_or(0, Bytes::len);
        self.lines.push_back(line);
        while self.lines.len() > self.max_entries
            || (self.bytes > self.max_bytes && self.lines.len() > 1)
        {
            if let Some(gone) = self.lines.pop_front() {
                self.bytes -= gone.as_ref().map_or(0, Bytes::len);
                self.first += 1;
            }
        }
    }

    /// Forgets everything (a snapshot was installed).
    pub fn clear(&mut self) {
        self.lines.clear();
        self.bytes = 0;
    }

    /// The lines of `from..=upto` when the window holds every one of those indexes.
    pub fn lines(&self, from: u64, upto: u64) -> Option<Vec<Bytes>> {
        let last = self.first + self.lines.len() as u64;
        if self.lines.is_empty() || from < self.first || upto >= last || from > upto {
            return None;
        }
        let start = usize::try_from(from - self.first).ok()?;
        let end = usize::try_from(upto - self.first).ok()?;
        Some(self.lines.range(start..=end).flatten().cloned().collect())
    }

    /// Entries in the window.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Option<Bytes> {
        Some(Bytes::from(s.to_string()))
    }

    #[test]
    fn serves_only_whole_ranges_inside_the_window() {
        let mut r = RecentEvents::new(4, 1000);
        r.push(5, b("a"));
        r.push(6, None);
        r.push(7, b("c"));
        let table: &[(u64, u64, Option<Vec<&str>>)] = &[
            (5, 7, Some(vec!["a", "c"])),
            (6, 7, Some(vec!["c"])),
            (6, 6, Some(vec![])),
            (4, 7, None),
            (5, 8, None),
            (8, 8, None),
            (7, 6, None),
        ];
        for (from, upto, want) in table {
            let got = r.lines(*from, *upto).map(|v| {
                v.iter()
                    .map(|x| String::from_utf8_lossy(x).into_owned())
                    .collect::<Vec<_>>()
            });
            let want = want
                .as_ref()
                .map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{from}..={upto}");
        }
    }

    #[test]
    fn the_window_is_bounded_by_count_and_bytes() {
        let mut r = RecentEvents::new(3, 1000);
        for i in 1..=5 {
            r.push(i, b("x"));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.lines(2, 5), None);
        assert_eq!(r.lines(3, 5).map(|v| v.len()), Some(3));
        let mut r = RecentEvents::new(100, 10);
        r.push(1, b("12345"));
        r.push(2, b("12345"));
        r.push(3, b("12345"));
        assert_eq!(r.len(), 2);
        // One oversized line is still kept (the newest).
        r.push(4, b("0123456789012"));
        assert_eq!(r.len(), 1);
        assert_eq!(r.lines(4, 4).map(|v| v.len()), Some(1));
    }

    #[test]
    fn a_jump_restarts_the_window() {
        let mut r = RecentEvents::new(10, 1000);
        r.push(1, b("a"));
        r.push(2, b("b"));
        r.push(10, b("j"));
        assert_eq!(r.len(), 1);
        assert_eq!(r.lines(1, 2), None);
        assert_eq!(r.lines(10, 10).map(|v| v.len()), Some(1));
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.lines(10, 10), None);
    }
}
