//! A stored body chunk, held as small segments so that what a client connection keeps of it
//! is small.
//!
//! A response body is handed to the connection as `Bytes`, and a `Bytes` keeps its whole
//! allocation alive. Were a 1 MiB chunk one allocation, a client that stops reading would keep
//! the whole chunk alive in its connection's write buffer, and once the memory tier evicted
//! it, outside the tier's budget: a thousand stalled clients, a thousand private chunks.
//! Segments of [`SEGMENT`] bytes bound that to a segment or two per connection, without
//! copying anything on the way out.
//!
//! Readers keep no chunk between polls for the same reason, only a [`WeakChunk`]: while the
//! memory tier holds the chunk the next frame comes from it at the cost of an atomic; once the
//! tier has let it go the reader looks it up again (a chunk read back from disk is promoted to
//! memory) or fetches it, rather than keep it alive itself.

use std::sync::{Arc, Weak};

use bytes::Bytes;

/// Size of every segment but a chunk's last. The most a client connection can pin of a chunk
/// through one body frame. Smaller costs writes where a frame is written alone: with hyper's
/// HTTP/1.1 queue at 64 KiB a 1 MiB body took 8 writes, at 64 KiB segments 16, and 1 MiB hits
/// ran about 20 % slower on loopback. The queue now holds four segments
/// (`H1_WRITE_QUEUE` in `server/listener.rs`).
pub const SEGMENT: usize = 128 * 1024;

/// A body chunk: segments of [`SEGMENT`] bytes, the last one possibly shorter.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    segments: Arc<[Bytes]>,
    len: usize,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunk({} bytes)", self.len)
    }
}

impl Chunk {
    /// The chunk made of `pieces`, copied into segments (the pieces are typically slices of a
    /// connection's read buffer, which a stored chunk must not keep alive).
    pub fn copy_from_pieces<'a, I>(pieces: I) -> Chunk
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let pieces = pieces.into_iter();
        // Every segment allocated at its exact size: the tier counts a chunk by its length.
        let mut b = ChunkBuilder::with_len(pieces.clone().map(<[u8]>::len).sum());
        for p in pieces {
            b.extend(p);
        }
        b.finish()
    }

    /// The chunk holding a copy of `data`.
    pub fn copy_from_slice(data: &[u8]) -> Chunk {
        Chunk::copy_from_pieces([data])
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// Up to `max` bytes from `offset`, never past the end of the segment `offset` is in: a
    /// slice, not a copy. Empty at or past the end.
    pub fn frame(&self, offset: usize, max: usize) -> Bytes {
        let Some(seg) = self.segments.get(offset / SEGMENT) else {
            return Bytes::new();
        };
        let at = (offset % SEGMENT).min(seg.len());
        let n = (seg.len() - at).min(max);
        seg.slice(at..at + n)
    }

    /// A claim on this chunk, chunk `index` of its body, that does not keep it alive.
    pub fn downgrade(&self, index: u32) -> WeakChunk {
        WeakChunk {
            index,
            segments: Arc::downgrade(&self.segments),
            len: self.len,
        }
    }
}

/// A reader's claim on chunk `index` of its body that does not keep it alive: upgraded while
/// storage (or anyone else) still holds the chunk, so a reader walking a chunk frame by frame
/// looks it up once, not once per frame, and still pins nothing the tier has let go.
#[derive(Clone, Debug)]
pub struct WeakChunk {
    index: u32,
    segments: Weak<[Bytes]>,
    len: usize,
}

impl WeakChunk {
    /// The chunk, if it is chunk `index` and something still holds it.
    pub fn upgrade(&self, index: u32) -> Option<Chunk> {
        if index != self.index {
            return None;
        }
        Some(Chunk {
            segments: self.segments.upgrade()?,
            len: self.len,
        })
    }
}

/// Builds a [`Chunk`] from bytes as they come, each segment allocated at its exact size when
/// the total is known up front.
#[derive(Default)]
pub struct ChunkBuilder {
    done: Vec<Bytes>,
    current: Vec<u8>,
    len: usize,
    /// Bytes still expected, if known (sizes the segments' allocations).
    expect: Option<usize>,
}

impl ChunkBuilder {
    /// A builder for a chunk of `len` bytes.
    pub fn with_len(len: usize) -> Self {
        ChunkBuilder {
            expect: Some(len),
            ..ChunkBuilder::default()
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was added yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`.
    pub fn extend(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.current.capacity() == 0 {
                let want = self.expect.map_or(SEGMENT, |e| e.saturating_sub(self.len));
                self.current = Vec::with_capacity(want.clamp(1, SEGMENT));
            }
            let room = SEGMENT - self.current.len();
            let n = room.min(data.len());
            self.current.extend_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.current.len() == SEGMENT {
                self.done
                    .push(Bytes::from(std::mem::take(&mut self.current)));
            }
        }
    }

    /// The chunk.
    pub fn finish(mut self) -> Chunk {
        if !self.current.is_empty() {
            self.done.push(Bytes::from(self.current));
        }
        Chunk {
            segments: self.done.into(),
            len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contiguous(c: &Chunk) -> Vec<u8> {
        c.segments()
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn segments_are_full_but_the_last_and_hold_the_bytes_in_order() {
        for n in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT + 17,
            16 * SEGMENT,
        ] {
            let data = pattern(n);
            // Fed in awkward pieces, crossing segment edges.
            let pieces: Vec<&[u8]> = data.chunks(SEGMENT / 3 + 5).collect();
            let c = Chunk::copy_from_pieces(pieces);
            assert_eq!(c.len(), n);
            assert_eq!(c.segments().len(), n.div_ceil(SEGMENT));
            if let Some((last, full)) = c.segments().split_last() {
                assert!(full.iter().all(|s| s.len() == SEGMENT));
                assert!(!last.is_empty() && last.len() <= SEGMENT);
            }
            assert_eq!(&contiguous(&c)[..], &data[..]);
        }
    }

    #[test]
    fn frames_stay_within_a_segment_and_walk_the_whole_chunk() {
        let data = pattern(2 * SEGMENT + 100);
        let c = Chunk::copy_from_slice(&data);
        for max in [1, 1000, SEGMENT, usize::MAX] {
            let mut out = Vec::new();
            let mut at = 0;
            loop {
                let f = c.frame(at, max);
                if f.is_empty() {
                    break;
                }
                assert!(f.len() <= max.min(SEGMENT));
                assert_eq!(at / SEGMENT, (at + f.len() - 1) / SEGMENT, "one segment");
                at += f.len();
                out.extend_from_slice(&f);
            }
            assert_eq!(out, data);
        }
        assert!(c.frame(data.len(), 10).is_empty());
        assert!(c.frame(usize::MAX, 10).is_empty());
    }

    #[test]
    fn a_weak_claim_lasts_as_long_as_someone_holds_the_chunk() {
        let c = Chunk::copy_from_slice(&pattern(SEGMENT * 2));
        let w = c.downgrade(3);
        let frame = c.frame(0, 10);
        assert_eq!(w.upgrade(3).as_ref(), Some(&c));
        assert!(w.upgrade(4).is_none(), "another chunk's claim");
        drop(c);
        assert!(w.upgrade(3).is_none(), "a frame does not keep the chunk");
        assert_eq!(&frame[..], &pattern(10)[..]);
    }

    #[test]
    fn segments_are_allocated_at_their_exact_size() {
        let data = pattern(SEGMENT + 10);
        let c = Chunk::copy_from_pieces(data.chunks(7));
        // The bytes of the last segment sit in a 10-byte allocation: a `Bytes` made from a
        // `Vec` with spare capacity would report it through `try_into_mut`.
        let seg = c.segments()[1].clone();
        drop(c);
        let owned = seg.try_into_mut().expect("the only handle");
        assert_eq!(owned.capacity(), 10);
    }

    #[test]
    fn a_builder_told_the_length_allocates_no_more_than_it() {
        let mut b = ChunkBuilder::with_len(SEGMENT + 10);
        b.extend(&pattern(SEGMENT + 10));
        let c = b.finish();
        assert_eq!(c.segments()[1].len(), 10);
        assert_eq!(c.len(), SEGMENT + 10);
    }
}
