//! The response body type every front end writes out.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::upstream::BoxError;

/// A response body: nothing, one buffer (hits on small objects: no allocation beyond the
/// `Bytes` handle), or a stream (chunked objects, fills, pass-through).
pub enum Body {
    /// No body (HEAD, 304, 412).
    Empty,
    /// The whole body at once.
    Full(Option<Bytes>),
    /// A stream; `len` is exact when known.
    Stream {
        /// The frames.
        inner: UnsyncBoxBody<Bytes, BoxError>,
        /// Exact length, if known.
        len: Option<u64>,
        /// Bytes still to come, when the length is exact and the stream cannot carry trailers:
        /// at zero the body says it has ended, so HTTP/2 marks its last DATA frame as the end
        /// of the stream instead of sending an empty one after it.
        left: Option<u64>,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Full(b) => write!(f, "Body::Full({:?} bytes)", b.as_ref().map(Bytes::len)),
            Body::Stream { len, .. } => write!(f, "Body::Stream({len:?})"),
        }
    }
}

impl Body {
    /// A body of static text.
    pub fn text(s: &'static str) -> Self {
        Body::Full(Some(Bytes::from_static(s.as_bytes())))
    }

    /// A body read from a stream of byte results. A `len` must be the exact count of bytes
    /// the stream yields: once that many have come, the body says it has ended, and the
    /// stream is not polled again (so nothing may wait for it to yield `None`).
    pub fn from_stream<S, E>(stream: S, len: Option<u64>) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let frames =
            futures_util::StreamExt::map(stream, |r| r.map(Frame::data).map_err(Into::into));
        Body::Stream {
            inner: http_body_util::StreamBody::new(frames).boxed_unsync(),
            len,
            left: len,
        }
    }

    /// Wraps any body.
    pub fn from_body<B>(body: B, len: Option<u64>) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body::Stream {
            inner: body.map_err(Into::into).boxed_unsync(),
            len,
            left: None,
        }
    }
}

/// A body that keeps `guard` alive until it is dropped (the upstream slot of a pass-through
/// lasts as long as its response streams).
struct Holding<G> {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    _guard: G,
}

impl<G: Unpin> http_body::Body for Holding<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Body {
    /// This body, holding `guard` until it is over (or dropped).
    pub fn holding<G: Send + Unpin + 'static>(self, guard: G) -> Body {
        match self {
            Body::Stream { inner, len, left } => Body::Stream {
                inner: Holding {
                    inner,
                    _guard: guard,
                }
                .boxed_unsync(),
                len,
                left,
            },
            other => other,
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream { inner, left, .. } => {
                let polled = Pin::new(inner).poll_frame(cx);
                if let (Poll::Ready(Some(Ok(frame))), Some(left)) = (&polled, left.as_mut()) {
                    let n = frame.data_ref().map_or(0, Bytes::len) as u64;
                    debug_assert!(n <= *left, "a stream longer than its length");
                    *left = left.saturating_sub(n);
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Full(b) => b.is_none(),
            Body::Stream { inner, left, .. } => *left == Some(0) || inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream { inner, len, .. } => {
                len.map_or_else(|| inner.size_hint(), SizeHint::with_exact)
            }
        }
    }
}
