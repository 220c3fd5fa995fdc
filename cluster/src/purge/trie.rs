//! The prefix side of the rule index: a radix tree over the bytes of purge keys.
//!
//! A lookup walks the object's purge key once and collects the marks of every stored prefix
//! along the way, so it costs O(key length) however many prefix purges exist. Edges carry byte
//! strings (a radix tree, not one node per byte) so a thousand prefixes under one host share the
//! host's bytes once. Nodes live in one arena `Vec` and refer to each other by index, which keeps
//! the tree a plain value (cheap to clone, no `Box` chains to drop recursively).

use serde::{Deserialize, Serialize};

use super::rule::PurgeVerdict;

/// The newest hard and soft purge indices recorded for one pattern (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marks {
    /// Highest index of a hard rule on this pattern.
    pub hard: u64,
    /// Highest index of a soft rule on this pattern.
    pub soft: u64,
}

impl Marks {
    /// Marks for one rule.
    pub fn new(soft: bool, index: u64) -> Self {
        if soft {
            Marks {
                hard: 0,
                soft: index,
            }
        } else {
            Marks {
                hard: index,
                soft: 0,
            }
        }
    }

    /// Keeps the newest of each kind.
    pub fn merge(&mut self, other: Marks) {
        self.hard = self.hard.max(other.hard);
        self.soft = self.soft.max(other.soft);
    }

    /// Forgets the marks at or below `index` (they can no longer be newer than any object).
    pub fn above(self, index: u64) -> Marks {
        let keep = |m: u64| if m > index { m } else { 0 };
        Marks {
            hard: keep(self.hard),
            soft: keep(self.soft),
        }
    }

    /// The marks at or below `index`: what [`Marks::above`] forgets.
    pub fn at_or_below(self, index: u64) -> Marks {
        let keep = |m: u64| if m <= index { m } else { 0 };
        Marks {
            hard: keep(self.hard),
            soft: keep(self.soft),
        }
    }

    /// The newest index of either kind.
    pub fn newest(self) -> u64 {
        self.hard.max(self.soft)
    }

    /// The verdict for an object stored at `stored_index`: a rule applies when it is newer.
    pub fn verdict(&self, stored_index: u64) -> PurgeVerdict {
        if self.hard > stored_index {
            PurgeVerdict::HardPurged
        } else if self.soft > stored_index {
            PurgeVerdict::SoftPurged
        } else {
            PurgeVerdict::Valid
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    /// The bytes on the edge into this node (empty only for the root).
    label: Box<[u8]>,
    /// Children, sorted by the first byte of their label (unique per first byte).
    children: Vec<u32>,
    /// Set when a prefix ends exactly here.
    marks: Option<Marks>,
}

/// Byte-prefix patterns with their marks.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixTrie {
    nodes: Vec<Node>,
    len: usize,
}

impl PrefixTrie {
    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.len
    }

    fn child(&self, node: usize, byte: u8) -> Result<usize, usize> {
        self.nodes[node]
            .children
            .binary_search_by_key(&byte, |&c| self.nodes[c as usize].label[0])
    }

    fn push(&mut self, label: &[u8], children: Vec<u32>, marks: Option<Marks>) -> u32 {
        self.nodes.push(Node {
            label: label.into(),
            children,
            marks,
        });
        // The arena cannot outgrow u32 in practice: each node costs far more than 4 bytes.
        u32::try_from(self.nodes.len() - 1).unwrap_or(u32::MAX)
    }

    /// Records `marks` for `prefix`, keeping the newest of what was there.
    pub fn insert(&mut self, prefix: &str, marks: Marks) {
        if self.nodes.is_empty() {
            self.push(b"", Vec::new(), None);
        }
        let mut node = 0usize;
        let mut rest = prefix.as_bytes();
        loop {
            let Some(&first) = rest.first() else {
                let slot = &mut self.nodes[node].marks;
                match slot {
                    Some(m) => m.merge(marks),
                    None => {
                        *slot = Some(marks);
                        self.len += 1;
                    }
                }
                return;
            };
            match self.child(node, first) {
                Err(pos) => {
                    let leaf = self.push(rest, Vec::new(), Some(marks));
                    self.nodes[node].children.insert(pos, leaf);
                    self.len += 1;
                    return;
                }
                Ok(pos) => {
                    let child = self.nodes[node].children[pos] as usize;
                    let label = &self.nodes[child].label;
                    let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
                    if common < label.len() {
                        // Split the edge: node -> mid (shared bytes) -> child (the remainder).
                        let head: Box<[u8]> = label[..common].into();
                        let tail: Box<[u8]> = label[common..].into();
                        let mid = self.push(&head, vec![child as u32], None);
                        self.nodes[child].label = tail;
                        self.nodes[node].children[pos] = mid;
                        node = mid as usize;
                    } else {
                        node = child;
                    }
                    rest = &rest[common..];
                }
            }
        }
    }

    /// Merges into `acc` the marks of every stored prefix of `key`.
    pub fn collect(&self, key: &str, acc: &mut Marks) {
        if self.nodes.is_empty() {
            return;
        }
        let mut node = 0usize;
        let mut rest = key.as_bytes();
        loop {
            if let Some(m) = self.nodes[node].marks {
                acc.merge(m);
            }
            let Some(&first) = rest.first() else { return };
            let Ok(pos) = self.child(node, first) else {
                return;
            };
            let child = self.nodes[node].children[pos] as usize;
            let label = &self.nodes[child].label;
            if !rest.starts_with(label) {
                return;
            }
            rest = &rest[label.len()..];
            node = child;
        }
    }

    /// Keeps only marks above `index`, dropping prefixes left without any (rebuilds the tree).
    /// Returns the newest of the forgotten marks of each kind.
    pub fn retain_above(&mut self, index: u64) -> Marks {
        let mut fresh = PrefixTrie::default();
        let mut dropped = Marks::default();
        for (p, m) in self.entries() {
            dropped.merge(m.at_or_below(index));
            let m = m.above(index);
            if m != Marks::default() {
                fresh.insert(&p, m);
            }
        }
        *self = fresh;
        dropped
    }

    /// The newest index of every prefix (for choosing what to fold).
    pub fn newest_marks(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes.iter().filter_map(|n| n.marks.map(Marks::newest))
    }

    /// Every prefix with its marks, in byte order (for persistence).
    pub fn entries(&self) -> Vec<(String, Marks)> {
        let mut out = Vec::with_capacity(self.len);
        if self.nodes.is_empty() {
            return out;
        }
        // Depth-first with an explicit stack: (node, length of the key up to and including it).
        let mut key: Vec<u8> = Vec::new();
        let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
        while let Some((node, depth)) = stack.pop() {
            let n = &self.nodes[node];
            key.truncate(depth.saturating_sub(n.label.len()));
            key.extend_from_slice(&n.label);
            if let Some(m) = n.marks {
                // Keys were inserted as &str, so a whole key is valid UTF-8.
                out.push((String::from_utf8_lossy(&key).into_owned(), m));
            }
            for &c in n.children.iter().rev() {
                let c = c as usize;
                stack.push((c, key.len() + self.nodes[c].label.len()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(t: &PrefixTrie, key: &str) -> Marks {
        let mut m = Marks::default();
        t.collect(key, &mut m);
        m
    }

    #[test]
    fn collects_every_prefix_along_the_key() {
        let mut t = PrefixTrie::default();
        t.insert("example.com/", Marks::new(false, 5));
        t.insert("example.com/static/", Marks::new(true, 9));
        t.insert("example.com/st", Marks::new(false, 3));
        t.insert("example.org/", Marks::new(false, 100));
        assert_eq!(t.len(), 4);
        let cases = [
            ("example.com/static/a.css", 5, 9),
            ("example.com/stuff", 5, 0),
            ("example.com/s", 5, 0),
            ("example.com/", 5, 0),
            ("example.com", 0, 0),
            ("example.org/x", 100, 0),
            ("example.net/x", 0, 0),
            ("", 0, 0),
        ];
        for (key, hard, soft) in cases {
            assert_eq!(marks(&t, key), Marks { hard, soft }, "{key}");
        }
    }

    #[test]
    fn reinserting_keeps_the_newest_per_kind_and_does_not_grow() {
        let mut t = PrefixTrie::default();
        t.insert("a/b", Marks::new(false, 7));
        t.insert("a/b", Marks::new(false, 4));
        t.insert("a/b", Marks::new(true, 2));
        assert_eq!(t.len(), 1);
        assert_eq!(marks(&t, "a/bc"), Marks { hard: 7, soft: 2 });
    }

    #[test]
    fn splits_edges_at_every_position() {
        let mut t = PrefixTrie::default();
        let keys = ["abcdef", "abc", "abd", "a", "abcdeg", "b", "abcdef"];
        for (i, k) in keys.iter().enumerate() {
            t.insert(k, Marks::new(false, i as u64 + 1));
        }
        assert_eq!(t.len(), 6);
        assert_eq!(marks(&t, "abcdefz").hard, 7);
        assert_eq!(marks(&t, "abcdeg").hard, 5);
        assert_eq!(marks(&t, "abcde").hard, 4);
        assert_eq!(marks(&t, "abdx").hard, 4);
        assert_eq!(marks(&t, "ax").hard, 4);
        assert_eq!(marks(&t, "bb").hard, 6);
        assert_eq!(marks(&t, "c").hard, 0);
        let entries: Vec<_> = t.entries().into_iter().map(|(k, m)| (k, m.hard)).collect();
        assert_eq!(
            entries,
            vec![
                ("a".to_string(), 4),
                ("abc".to_string(), 2),
                ("abcdef".to_string(), 7),
                ("abcdeg".to_string(), 5),
                ("abd".to_string(), 3),
                ("b".to_string(), 6),
            ]
        );
    }

    #[test]
    fn multibyte_keys_split_inside_characters_still_round_trip() {
        let mut t = PrefixTrie::default();
        t.insert("h/caf\u{e9}", Marks::new(false, 1));
        t.insert("h/caf\u{e8}", Marks::new(false, 2));
        let keys: Vec<_> = t.entries().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["h/caf\u{e8}", "h/caf\u{e9}"]);
        assert_eq!(marks(&t, "h/caf\u{e9}/x").hard, 1);
    }

    #[test]
    fn verdict_compares_with_the_stored_index() {
        let m = Marks { hard: 5, soft: 8 };
        assert_eq!(m.verdict(4), PurgeVerdict::HardPurged);
        assert_eq!(m.verdict(5), PurgeVerdict::SoftPurged);
        assert_eq!(m.verdict(7), PurgeVerdict::SoftPurged);
        assert_eq!(m.verdict(8), PurgeVerdict::Valid);
        assert_eq!(Marks::default().verdict(0), PurgeVerdict::Valid);
    }
}
