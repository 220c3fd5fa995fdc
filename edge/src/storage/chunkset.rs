//! Which chunks of a partly stored object are present: one bit per chunk.

use serde::{Deserialize, Serialize};

/// A fixed-size set of chunk indices (a bitmap: 128 bytes for a 1 GiB object in 1 MiB chunks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSet {
    len: u32,
    words: Vec<u64>,
}

impl ChunkSet {
    /// An empty set over chunks `0..len`.
    pub fn new(len: u32) -> Self {
        ChunkSet {
            len,
            words: vec![0; len.div_ceil(64) as usize],
        }
    }

    /// How many chunks the object has.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the object has no chunk at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Marks chunk `i` present (ignored outside `0..len`).
    pub fn insert(&mut self, i: u32) {
        if i < self.len {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    /// Whether chunk `i` is present.
    pub fn contains(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// How many chunks are present.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether every chunk is present.
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// Heap bytes held, for the memory tier's weigher.
    pub fn weight(&self) -> usize {
        self.words.capacity() * 8
    }

    /// Whether the set is well formed (a decoded one may not be): as many words as `len`
    /// needs and no bit beyond it.
    pub fn is_valid(&self) -> bool {
        self.words.len() == self.len.div_ceil(64) as usize
            && (self.len.is_multiple_of(64)
                || self.words.last().is_none_or(|w| w >> (self.len % 64) == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_in_and_out_of_range() {
        let mut s = ChunkSet::new(130);
        assert_eq!((s.len(), s.count(), s.is_full()), (130, 0, false));
        for i in [0, 63, 64, 129, 130, 5000] {
            s.insert(i);
        }
        assert!(s.contains(0) && s.contains(63) && s.contains(64) && s.contains(129));
        assert!(!s.contains(1) && !s.contains(130));
        assert_eq!(s.count(), 4);
        assert!(s.is_valid());
        for i in 0..130 {
            s.insert(i);
        }
        assert!(s.is_full());
        assert_eq!(s.weight(), 24);
        assert!(ChunkSet::new(0).is_full());
    }

    #[test]
    fn a_decoded_set_with_stray_bits_is_invalid() {
        let bad = ChunkSet {
            len: 3,
            words: vec![0b1000],
        };
        assert!(!bad.is_valid());
        let short = ChunkSet {
            len: 65,
            words: vec![0],
        };
        assert!(!short.is_valid());
    }
}
