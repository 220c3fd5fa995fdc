//! The wrappers that feed a connection's [`Activity`]: one around its socket (bytes read,
//! writes refused), one around each response body (the request ends when its body is dropped).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::quiet::{Activity, InFlight};

pin_project_lite::pin_project! {
    /// A client socket (plain or TLS) whose reads, and writes that find its buffer full, are
    /// reported to its [`Activity`]. Vectored writes stay vectored.
    pub struct WatchedIo<I> {
        #[pin]
        inner: I,
        activity: Arc<Activity>,
    }
}

impl<I> WatchedIo<I> {
    /// Wraps `inner`, reporting to `activity`.
    pub fn new(inner: I, activity: Arc<Activity>) -> Self {
        WatchedIo { inner, activity }
    }
}

impl<I: AsyncRead> AsyncRead for WatchedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.activity.bytes_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<I: AsyncWrite> AsyncWrite for WatchedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        report(this.activity, this.inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        report(this.activity, this.inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        report(this.activity, this.inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Tells `activity` whether the socket took the write.
fn report<T>(activity: &Activity, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
    match polled {
        Poll::Pending => activity.write_blocked(),
        Poll::Ready(_) => activity.write_went_through(),
    }
    polled
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is dropped, and
    /// tells the connection whether it waits on the client (a frame handed over, the next not
    /// asked for yet) or on its source.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: InFlight,
        waiting_on_client: bool,
    }

    impl<B> PinnedDrop for TrackedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting_on_client {
                this.in_flight.activity().body_asked_again();
            }
        }
    }
}

impl<B> TrackedBody<B> {
    /// Wraps `inner`, keeping `in_flight` alive until the body is dropped.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        TrackedBody {
            inner,
            in_flight,
            waiting_on_client: false,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let activity = this.in_flight.activity();
        if std::mem::take(this.waiting_on_client) {
            activity.body_asked_again();
        }
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            activity.body_frame_produced();
            *this.waiting_on_client = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
