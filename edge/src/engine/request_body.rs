//! A client's request body on its way upstream (pass-through requests such as POST).
//!
//! Three things a client could otherwise turn against the node:
//! - a body that never starts: nothing is asked upstream until its first bytes arrived (or it
//!   ended), within `timeouts.client_body`, so headers alone cannot open origin connections;
//! - a body that stops: each later piece must also arrive within `timeouts.client_body` of
//!   the edge asking for it (the time the upstream takes over earlier pieces is not counted);
//! - a body in tiny pieces (millions of 1-byte chunks, or 1-byte h2 DATA frames): pieces are
//!   gathered into writes of about [`COALESCE_BYTES`] (or sent after [`FLUSH_AFTER`] when the
//!   client pauses), and a body whose pieces average under [`MIN_AVERAGE_PIECE`] bytes after
//!   [`PIECES_BEFORE_AVERAGE`] of them is refused (400).
//!
//! Large pieces go on in slices of at most [`MAX_PIECE`], so the upstream's progress in
//! taking the body is seen often enough to time its pauses.
//!
//! What went wrong is kept in a [`BodyFault`] the engine reads after the upstream exchange
//! failed, so the client is told 408 or 400, not 502.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::upstream::BoxError;

/// Pieces are gathered into writes of about this size.
pub const COALESCE_BYTES: usize = 16 * 1024;

/// Pieces larger than this go on in slices of this size: the upstream's progress in taking
/// the body is seen at least this often (`upstream/request_clock.rs` times the pauses between
/// pieces taken), whatever size the front end reads in (HTTP/1.1 reads stop just under
/// 64 KiB, but gathered pieces reach 80 KiB).
pub const MAX_PIECE: usize = 64 * 1024;

/// A partial write goes out when the client has sent nothing more for this long.
pub const FLUSH_AFTER: Duration = Duration::from_millis(2);

/// After this many pieces, their average size is checked.
pub const PIECES_BEFORE_AVERAGE: u64 = 1024;

/// Smallest average piece size accepted once [`PIECES_BEFORE_AVERAGE`] have arrived.
pub const MIN_AVERAGE_PIECE: u64 = 16;

/// Why a request body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// No piece arrived within `timeouts.client_body`.
    #[error("request body timed out")]
    Timeout,
    /// Pieces too small on average.
    #[error("request body sent in pieces too small")]
    TinyPieces,
    /// The client's connection failed.
    #[error("request body failed")]
    Client,
}

/// Records the first [`BodyError`] of a body, for whoever must answer the client.
#[derive(Debug, Clone, Default)]
pub struct BodyFault(Arc<AtomicU8>);

impl BodyFault {
    fn set(&self, e: BodyError) {
        let code = match e {
            BodyError::Timeout => 1,
            BodyError::TinyPieces => 2,
            BodyError::Client => 3,
        };
        let _ = self
            .0
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The error the body failed with, if it did.
    pub fn get(&self) -> Option<BodyError> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(BodyError::Timeout),
            2 => Some(BodyError::TinyPieces),
            3 => Some(BodyError::Client),
            _ => None,
        }
    }
}

/// The client's body, coalesced and timed (see the module docs).
pub struct ClientBody<B> {
    inner: Pin<Box<B>>,
    buf: BytesMut,
    /// A frame taken by [`ClientBody::started`], handed out first.
    first: Option<Frame<Bytes>>,
    /// What is left of a piece over [`MAX_PIECE`], handed out next.
    rest: Bytes,
    trailers: Option<HeaderMap>,
    inner_done: bool,
    pieces: u64,
    bytes: u64,
    timeout: Duration,
    piece_deadline: Pin<Box<Sleep>>,
    /// The wait for the client's next piece has begun (`piece_deadline` runs from then):
    /// the time the upstream takes over the pieces already handed out is not the client's.
    waiting: bool,
    flush: Option<Pin<Box<Sleep>>>,
    fault: BodyFault,
}

impl<B> ClientBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// Wraps `inner`; every piece must arrive within `timeout` of the last (or of now).
    pub fn new(inner: B, timeout: Duration) -> Self {
        ClientBody {
            inner: Box::pin(inner),
            buf: BytesMut::new(),
            first: None,
            rest: Bytes::new(),
            trailers: None,
            inner_done: false,
            pieces: 0,
            bytes: 0,
            timeout,
            piece_deadline: Box::pin(tokio::time::sleep(timeout)),
            // The first piece is awaited from the start.
            waiting: true,
            flush: None,
            fault: BodyFault::default(),
        }
    }

    /// Where a failure is recorded.
    pub fn fault(&self) -> BodyFault {
        self.fault.clone()
    }

    /// Waits until the body has started (its first write is ready) or ended.
    pub async fn started(&mut self) -> Result<(), BodyError> {
        if self.first.is_some() || Body::is_end_stream(self) {
            return Ok(());
        }
        let mut this = Pin::new(self);
        match std::future::poll_fn(|cx| this.as_mut().poll_frame(cx)).await {
            Some(Ok(frame)) => {
                this.first = Some(frame);
                Ok(())
            }
            Some(Err(_)) => Err(this.fault.get().unwrap_or(BodyError::Client)),
            None => {
                this.inner_done = true;
                Ok(())
            }
        }
    }

    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.fault.set(e);
        self.inner_done = true;
        self.buf.clear();
        Poll::Ready(Some(Err(Box::new(e))))
    }

    fn take_buf(&mut self) -> Frame<Bytes> {
        self.flush = None;
        Frame::data(self.buf.split().freeze())
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let mut piece = if this.rest.is_empty() {
            match this.poll_piece(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return other,
            }
        } else {
            std::mem::take(&mut this.rest)
        };
        if piece.len() > MAX_PIECE {
            this.rest = piece.split_off(MAX_PIECE);
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        let inner_over = self.inner_done || self.inner.is_end_stream();
        inner_over
            && self.buf.is_empty()
            && self.first.is_none()
            && self.rest.is_empty()
            && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.buf.len() as u64
            + self.rest.len() as u64
            + self
                .first
                .as_ref()
                .and_then(|f| f.data_ref())
                .map_or(0, |d| d.len() as u64);
        if self.inner_done {
            return SizeHint::with_exact(held);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

impl<B> ClientBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// The next piece as the client sent it (large ones whole, small ones gathered), or the
    /// body's end, trailers or failure.
    fn poll_piece(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self;
        loop {
            if this.inner_done {
                if !this.buf.is_empty() {
                    return Poll::Ready(Some(Ok(this.take_buf())));
                }
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.waiting = false;
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                this.trailers = Some(t);
                            }
                            continue;
                        }
                    };
                    this.pieces += 1;
                    this.bytes += data.len() as u64;
                    if this.pieces >= PIECES_BEFORE_AVERAGE
                        && this.bytes < this.pieces * MIN_AVERAGE_PIECE
                    {
                        return this.fail(BodyError::TinyPieces);
                    }
                    if this.buf.is_empty() && data.len() >= COALESCE_BYTES {
                        // Large pieces go on as they are: no copy.
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    this.buf.extend_from_slice(&data);
                    if this.buf.len() >= COALESCE_BYTES {
                        return Poll::Ready(Some(Ok(this.take_buf())));
                    }
                }
                Poll::Ready(Some(Err(_))) => return this.fail(BodyError::Client),
                Poll::Ready(None) => this.inner_done = true,
                Poll::Pending => {
                    if !this.waiting {
                        this.waiting = true;
                        let deadline = tokio::time::Instant::now() + this.timeout;
                        this.piece_deadline.as_mut().reset(deadline);
                    }
                    if !this.buf.is_empty() {
                        let flush = this
                            .flush
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_AFTER)));
                        if flush.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Some(Ok(this.take_buf())));
                        }
                    }
                    if this.piece_deadline.as_mut().poll(cx).is_ready() {
                        return this.fail(BodyError::Timeout);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn pieces(sizes: Vec<usize>) -> impl Body<Data = Bytes, Error = BoxError> {
        let frames = sizes
            .into_iter()
            .map(|n| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; n]))));
        StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn writes(body: impl Body<Data = Bytes, Error = BoxError>) -> Result<Vec<usize>, ()> {
        let mut b = std::pin::pin!(ClientBody::new(body, Duration::from_secs(5)));
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => out.push(f.into_data().map(|d| d.len()).unwrap_or(0)),
                Err(_) => return Err(()),
            }
        }
        Ok(out)
    }

    #[tokio::test]
    async fn small_pieces_are_gathered_large_ones_pass() {
        let w = writes(pieces(vec![100; 400])).await.unwrap();
        assert_eq!(w.iter().sum::<usize>(), 40_000);
        assert_eq!(w, vec![16_400, 16_400, 7_200]);
        let w = writes(pieces(vec![20_000, 10, 30_000])).await.unwrap();
        assert_eq!(w, vec![20_000, 30_010]);
    }

    #[tokio::test]
    async fn large_pieces_go_on_in_parts_of_at_most_64_kib_in_order() {
        let w = writes(pieces(vec![200 * 1024, 20_000])).await.unwrap();
        assert_eq!(w, vec![65_536, 65_536, 65_536, 8_192, 20_000]);
        // The piece taken to see the body start comes first, then the rest of it.
        let bytes: Vec<u8> = (0..150 * 1024).map(|i| (i % 251) as u8).collect();
        let frames = vec![Ok::<_, BoxError>(Frame::data(Bytes::from(bytes.clone())))];
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let mut b = ClientBody::new(body, Duration::from_secs(5));
        b.started().await.unwrap();
        assert_eq!(b.size_hint().exact(), None);
        let mut b = std::pin::pin!(b);
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(f) = b.frame().await {
            let d = f.unwrap().into_data().unwrap();
            sizes.push(d.len());
            got.extend_from_slice(&d);
        }
        assert_eq!(sizes, vec![65_536, 65_536, 22_528]);
        assert_eq!(got, bytes);
        assert!(b.is_end_stream());
    }

    #[tokio::test]
    async fn tiny_pieces_are_refused_once_counted() {
        assert!(writes(pieces(vec![1; 2000])).await.is_err());
        // Under the count, or at the average, they pass.
        assert!(writes(pieces(vec![1; 1000])).await.is_ok());
        assert!(writes(pieces(vec![16; 5000])).await.is_ok());
    }

    #[tokio::test]
    async fn a_body_that_never_starts_times_out() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let body = StreamBody::new(tokio_stream_from(rx));
        let mut b = ClientBody::new(body, Duration::from_millis(100));
        assert_eq!(b.started().await, Err(BodyError::Timeout));
        assert_eq!(b.fault().get(), Some(BodyError::Timeout));
    }

    #[tokio::test]
    async fn a_paused_client_gets_its_bytes_flushed() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let body = StreamBody::new(tokio_stream_from(rx));
        let mut b = ClientBody::new(body, Duration::from_secs(3));
        tx.send(Ok(Frame::data(Bytes::from_static(b"hello"))))
            .await
            .unwrap();
        b.started().await.unwrap();
        let mut b = std::pin::pin!(b);
        let first = b.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"hello");
        drop(tx);
        assert!(b.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_upstreams_time_over_a_piece_is_not_the_clients() {
        // The client sends a piece, then the next 1.5 s later; the upstream took 1.2 s over
        // the first, so the edge waited on the client only 0.3 s: within the 1 s timeout.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let body = StreamBody::new(tokio_stream_from(rx));
        let mut b = std::pin::pin!(ClientBody::new(body, Duration::from_secs(1)));
        tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; COALESCE_BYTES]))))
            .await
            .unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let _ = tx
                .send(Ok(Frame::data(Bytes::from(vec![b'y'; COALESCE_BYTES]))))
                .await;
            // Then nothing, with the connection open.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        assert_eq!(
            b.frame().await.unwrap().unwrap().into_data().unwrap()[0],
            b'x'
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let next = b.frame().await.unwrap();
        assert_eq!(next.unwrap().into_data().unwrap()[0], b'y');
        // A client that then stops is cut off a second after the edge began to wait.
        assert!(b.frame().await.unwrap().is_err());
        assert_eq!(b.fault().get(), Some(BodyError::Timeout));
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
