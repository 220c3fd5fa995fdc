//! The bytes the demo origin serves, and the streaming body that serves them.
//!
//! A body is the first `size` bytes of an endless byte stream determined by a *seed*: the path,
//! the `version` query parameter and, for `vary` responses, the request's header values. The
//! stream is built from one pseudo-random block of [`BLOCK`] bytes (blake3 XOF of the seed): block
//! `k` is that pattern with its first 8 bytes XORed with `k`, so a body never repeats with a
//! period a cache could hide a misplaced chunk in, while generating it costs one memcpy per block
//! and nothing is allocated for the whole body. Tests recompute the same bytes with
//! [`expected_body`] / [`expected_variant_body`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Length of the pseudo-random pattern a body is built from (and the default frame size).
pub(crate) const BLOCK: usize = 64 * 1024;

/// The deterministic byte stream of one (path, version, variant).
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    /// The first `min(BLOCK, body size)` bytes of the stream: block 0 exactly.
    block: Bytes,
}

impl Pattern {
    /// The pattern for `path` (without query), `version` and the variant value (`None` when the
    /// response does not vary), long enough to serve `size` bytes.
    pub(crate) fn new(path: &str, version: Option<&str>, variant: Option<&str>, size: u64) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("tiercel demo origin body v1");
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        match version {
            Some(v) => hasher.update(b"\x01").update(v.as_bytes()),
            None => hasher.update(b"\x00"),
        };
        hasher.update(b"\0");
        match variant {
            Some(v) => hasher.update(b"\x01").update(v.as_bytes()),
            None => hasher.update(b"\x00"),
        };
        let len = usize::try_from(size).map_or(BLOCK, |s| s.min(BLOCK));
        let mut block = vec![0u8; len];
        hasher.finalize_xof().fill(&mut block);
        Self {
            block: Bytes::from(block),
        }
    }

    /// Bytes `[offset, offset + len)` of the stream. Zero-copy inside block 0; otherwise one
    /// allocation of `len` bytes.
    ///
    /// The caller keeps `offset + len` within the size the pattern was made for.
    pub(crate) fn slice(&self, offset: u64, len: usize) -> Bytes {
        let block_len = self.block.len() as u64;
        if len == 0 || block_len == 0 {
            return Bytes::new();
        }
        let end = offset + len as u64;
        if end <= block_len {
            // Inside block 0, which is the pattern itself.
            return self.block.slice(offset as usize..end as usize);
        }
        let mut out = BytesMut::with_capacity(len);
        let mut pos = offset;
        while pos < end {
            let block_index = pos / block_len;
            let in_block = (pos % block_len) as usize;
            let take = ((block_len as usize) - in_block).min((end - pos) as usize);
            let start = out.len();
            out.extend_from_slice(&self.block[in_block..in_block + take]);
            // Mark the block: XOR its first 8 bytes with the block index.
            let marker = block_index.to_le_bytes();
            for (i, m) in marker.iter().enumerate() {
                if (in_block..in_block + take).contains(&i) {
                    out[start + i - in_block] ^= m;
                }
            }
            pos += take as u64;
        }
        out.freeze()
    }
}

/// The body the origin serves for `target` with `size=size`, when the response does not vary.
///
/// `target` is a path, optionally with a query (`/a/b?version=2&cc=...`): only the path and the
/// `version` parameter matter, so a test may pass exactly what it requested. The bytes differ per
/// path and per `version`; a smaller size is a prefix of a larger one, and a Range response is
/// the corresponding slice.
pub fn expected_body(target: &str, size: usize) -> Bytes {
    let (path, version) = split_target(target);
    Pattern::new(path, version.as_deref(), None, size as u64).slice(0, size)
}

/// Bytes `offset..offset + len` of [`expected_body`]`(target, size)`, without making the rest (a
/// seek into a 1 GiB object checks 1000 bytes, not a gigabyte).
pub fn expected_range(target: &str, size: u64, offset: u64, len: usize) -> Bytes {
    let (path, version) = split_target(target);
    Pattern::new(path, version.as_deref(), None, size).slice(offset, len)
}

/// The body the origin serves for `target` when the response has `vary=H`.
///
/// `header_value` is the request's value of header `H` (`""` when the request lacks it); with
/// `vary=A,B` it is the values of `A` and `B` joined by `","` in that order (an absent header
/// contributes `""`). Each distinct value gets its own bytes, and they differ from
/// [`expected_body`]'s, so a cache that serves the wrong variant is caught by a byte comparison.
pub fn expected_variant_body(target: &str, size: usize, header_value: &str) -> Bytes {
    let (path, version) = split_target(target);
    Pattern::new(path, version.as_deref(), Some(header_value), size as u64).slice(0, size)
}

/// Splits `/path?query` into the path and the decoded `version` parameter.
fn split_target(target: &str) -> (&str, Option<String>) {
    match target.split_once('?') {
        None => (target, None),
        Some((path, query)) => {
            let version = super::spec::parse_query(query)
                .into_iter()
                .rev()
                .find(|(k, _)| k == "version")
                .map(|(_, v)| v);
            (path, version)
        }
    }
}

/// How a failing body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// All bytes, then the end of the stream.
    Complete,
    /// Stop at the given offset (relative to the start of the body), give the transport a moment
    /// to flush what was sent, then fail: hyper closes an HTTP/1.1 connection and resets an
    /// HTTP/2 stream.
    FailAt(u64),
}

/// How long a cut-off body waits, after its last bytes, before failing (so they are flushed).
const FLUSH_GRACE: Duration = Duration::from_millis(30);

/// The error a deliberately truncated body yields.
#[derive(Debug, thiserror::Error)]
#[error("demo origin: body deliberately cut off (fail=midbody)")]
pub(crate) struct CutOff;

/// A streaming response body: frames of `frame` bytes from `pattern`, optionally paused between
/// frames (`chunk_ms`), never holding more than one frame in memory.
pub(crate) struct DemoBody {
    pattern: Pattern,
    /// Next stream offset to send.
    pos: u64,
    /// Stream offset after the last byte to send.
    end: u64,
    frame: usize,
    pause: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Where to cut off (absolute stream offset), for `fail=midbody`.
    cut_at: Option<u64>,
    /// Whether the flush pause before a deliberate failure has begun.
    grace_started: bool,
    /// Whether the length is announced (false for `nolen=1`: chunked in HTTP/1.1).
    announce_len: bool,
    failed: bool,
}

impl DemoBody {
    /// A body sending stream bytes `[start, end)` of `pattern`.
    pub(crate) fn new(
        pattern: Pattern,
        start: u64,
        end: u64,
        frame: usize,
        pause: Option<Duration>,
        body_end: BodyEnd,
        announce_len: bool,
    ) -> Self {
        let cut_at = match body_end {
            BodyEnd::Complete => None,
            BodyEnd::FailAt(rel) => Some(start + rel.min(end - start)),
        };
        Self {
            pattern,
            pos: start,
            end,
            frame: frame.max(1),
            pause: pause.filter(|p| !p.is_zero()),
            sleep: None,
            cut_at,
            grace_started: false,
            announce_len,
            failed: false,
        }
    }

    /// An empty body (HEAD, 304, fail paths).
    pub(crate) fn empty() -> Self {
        Self::new(
            Pattern {
                block: Bytes::new(),
            },
            0,
            0,
            1,
            None,
            BodyEnd::Complete,
            true,
        )
    }

    /// A body of exactly `bytes` (index page, error texts).
    pub(crate) fn fixed(bytes: Bytes) -> Self {
        let len = bytes.len();
        Self::new(
            Pattern { block: bytes },
            0,
            len as u64,
            len.max(1),
            None,
            BodyEnd::Complete,
            true,
        )
    }

    fn stop(&self) -> u64 {
        self.cut_at.unwrap_or(self.end)
    }
}

impl Body for DemoBody {
    type Data = Bytes;
    type Error = CutOff;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CutOff>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        let stop = this.stop();
        if this.pos >= stop {
            if this.cut_at.is_some() && this.pos < this.end {
                if !this.grace_started {
                    // Let hyper flush the bytes already handed over before the failure.
                    this.grace_started = true;
                    let mut sleep = Box::pin(tokio::time::sleep(FLUSH_GRACE));
                    if sleep.as_mut().poll(cx).is_pending() {
                        this.sleep = Some(sleep);
                        return Poll::Pending;
                    }
                }
                this.failed = true;
                return Poll::Ready(Some(Err(CutOff)));
            }
            return Poll::Ready(None);
        }
        let len = ((stop - this.pos) as usize).min(this.frame);
        let data = this.pattern.slice(this.pos, len);
        this.pos += len as u64;
        if let Some(pause) = this.pause.filter(|_| this.pos < stop) {
            this.sleep = Some(Box::pin(tokio::time::sleep(pause)));
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end && !self.failed
    }

    fn size_hint(&self) -> SizeHint {
        let remaining = self.end - self.pos.min(self.end);
        if self.announce_len {
            SizeHint::with_exact(remaining)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(0);
            hint
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference implementation: byte by byte.
    fn reference(pattern: &Pattern, offset: u64, len: usize) -> Vec<u8> {
        let b = &pattern.block;
        (offset..offset + len as u64)
            .map(|pos| {
                let k = pos / b.len() as u64;
                let i = (pos % b.len() as u64) as usize;
                let marker = if i < 8 { k.to_le_bytes()[i] } else { 0 };
                b[i] ^ marker
            })
            .collect()
    }

    #[test]
    fn slices_match_the_reference_across_block_boundaries() {
        let size = 3 * BLOCK as u64 + 100;
        let p = Pattern::new("/x", None, None, size);
        for (offset, len) in [
            (0u64, 0usize),
            (0, 1),
            (0, 8),
            (5, 10),
            (BLOCK as u64 - 4, 16),
            (BLOCK as u64, 8),
            (BLOCK as u64 + 3, 2),
            (1, 3 * BLOCK),
            (2 * BLOCK as u64 - 1, BLOCK + 2),
        ] {
            assert_eq!(
                p.slice(offset, len).as_ref(),
                reference(&p, offset, len).as_slice(),
                "offset {offset} len {len}"
            );
        }
    }

    #[test]
    fn blocks_differ_so_misplaced_chunks_are_detected() {
        let size = 4 * BLOCK as u64;
        let p = Pattern::new("/big", None, None, size);
        let b0 = p.slice(0, BLOCK);
        let b1 = p.slice(BLOCK as u64, BLOCK);
        let b2 = p.slice(2 * BLOCK as u64, BLOCK);
        assert_ne!(b0, b1);
        assert_ne!(b1, b2);
        assert_eq!(b0[8..], b1[8..]);
    }

    #[test]
    fn bodies_differ_per_path_version_and_variant_and_are_prefixes() {
        let a = expected_body("/a", 64);
        assert_eq!(a.len(), 64);
        assert_ne!(a, expected_body("/b", 64));
        assert_ne!(a, expected_body("/a?version=2", 64));
        assert_eq!(a, expected_body("/a?size=64&cc=x", 64));
        assert_eq!(
            expected_body("/a?version=2", 64),
            expected_body("/a?x=1&version=2", 64)
        );
        assert_eq!(&a[..10], &expected_body("/a", 10)[..]);
        let gz = expected_variant_body("/a", 64, "gzip");
        assert_ne!(gz, a);
        assert_ne!(gz, expected_variant_body("/a", 64, "br"));
        assert_ne!(expected_variant_body("/a", 64, ""), a);
        assert!(expected_body("/a", 0).is_empty());
    }

    #[test]
    fn large_bodies_keep_the_pattern_small() {
        let p = Pattern::new("/huge", None, None, 100 * 1024 * 1024);
        assert_eq!(p.block.len(), BLOCK);
        let small = Pattern::new("/tiny", None, None, 10);
        assert_eq!(small.block.len(), 10);
    }
}
