//! HTTP/1.1 or HTTP/2 on one client connection, chosen by its first bytes (the HTTP/2
//! connection preface, RFC 9113 §3.4), each protocol configured on its own.
//!
//! Why not hyper-util's auto builder, which does the same choosing: its HTTP/1.1 side has one
//! limit, `max_buf_size`, both for reading a request head and for queueing response bytes. Kept
//! at the request-head limit (64 KiB), it made hyper write an HTTP/1.1 body one frame (one
//! 128 KiB storage segment) per system call. Eight writes for a 1 MiB response left the
//! connection waiting on the client's receive window most of the time, and the kernel paced
//! it from timers: 400 µs of CPU per response against 240 µs for the same bytes in one write.
//! hyper's own HTTP/1.1 builder keeps the two apart (`max_header_size` for heads), so here the
//! head limit is exact (431 past it, checked as the head arrives and once it is parsed; with
//! the auto builder it was never under hyper's 8 KiB minimum) and the caller sizes the queue:
//! several frames leave in one `writev`. The same limit now bounds chunked trailers too.
//!
//! Reads are capped just under 64 KiB ([`READ_CAP`]): hyper doubles its read reservation only
//! after a read that filled it, so its read buffer stays at the 64 KiB it had before, however
//! large the queue.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, Service};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::quiet::Activity;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most bytes one read hands hyper: one under 64 KiB, so that hyper's reservation, which
/// doubles after a read as large as itself, never passes 64 KiB.
pub const READ_CAP: usize = 64 * 1024 - 1;

/// How a listener's connections speak each protocol.
#[derive(Clone, Debug)]
pub struct Protocols {
    /// HTTP/1.1 (and 1.0).
    pub http1: http1::Builder,
    /// HTTP/2 (the preface decides, with or without ALPN).
    pub http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    /// Serves `io` with `service`, in whichever protocol its first bytes speak.
    /// `activity` is the connection's watchdog state, told when HTTP/2 is chosen.
    pub fn serve<I, S>(
        self: &Arc<Self>,
        io: I,
        service: S,
        activity: Arc<Activity>,
    ) -> Connection<I, S>
    where
        I: AsyncRead + AsyncWrite + Unpin,
        S: HttpService<Incoming>,
    {
        Connection {
            state: State::Sniffing {
                io: Some(io),
                service: Some(service),
                seen: [0; PREFACE.len()],
                len: 0,
            },
            protocols: self.clone(),
            activity,
        }
    }
}

/// One client connection: its first bytes, then HTTP/1.1 or HTTP/2 on them.
pub struct Connection<I, S: HttpService<Incoming>> {
    state: State<I, S>,
    protocols: Arc<Protocols>,
    activity: Arc<Activity>,
}

type H1<I, S> = Pin<Box<http1::Connection<TokioIo<Rewind<I>>, S>>>;
type H2<I, S> = Pin<Box<http2::Connection<TokioIo<Rewind<I>>, S, TokioExecutor>>>;

enum State<I, S: HttpService<Incoming>> {
    /// Reading until the bytes match the h2 preface or cannot.
    Sniffing {
        io: Option<I>,
        service: Option<S>,
        seen: [u8; PREFACE.len()],
        len: usize,
    },
    Http1(H1<I, S>),
    Http2(H2<I, S>),
    /// Closed before it chose a protocol.
    Done,
}

impl<I: AsyncRead + AsyncWrite + Unpin, S: HttpService<Incoming>> Unpin for Connection<I, S> {}

impl<I, S, B> Connection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    /// Asks the connection to finish: HTTP/1.1 after the request it is on, HTTP/2 with a
    /// GOAWAY; one whose first bytes have not yet chosen a protocol is closed.
    pub fn graceful_shutdown(&mut self) {
        match &mut self.state {
            State::Sniffing { .. } => self.state = State::Done,
            State::Http1(c) => c.as_mut().graceful_shutdown(),
            State::Http2(c) => c.as_mut().graceful_shutdown(),
            State::Done => {}
        }
    }
}

impl<I, S, B> Future for Connection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    TokioExecutor: Http2ServerConnExec<S::Future, B>,
{
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Sniffing {
                    io,
                    service,
                    seen,
                    len,
                } => {
                    let Some(stream) = io.as_mut() else {
                        return Poll::Ready(Ok(()));
                    };
                    let h2 = match ready!(sniff(stream, cx, seen, len)) {
                        Ok(h2) => h2,
                        Err(e) => {
                            this.state = State::Done;
                            return Poll::Ready(Err(e.into()));
                        }
                    };
                    let (Some(stream), Some(service)) = (io.take(), service.take()) else {
                        return Poll::Ready(Ok(()));
                    };
                    let io = TokioIo::new(Rewind {
                        pre: Bytes::copy_from_slice(&seen[..*len]),
                        inner: stream,
                    });
                    this.state = if h2 {
                        this.activity.chose_http2();
                        State::Http2(Box::pin(this.protocols.http2.serve_connection(io, service)))
                    } else {
                        State::Http1(Box::pin(this.protocols.http1.serve_connection(io, service)))
                    };
                }
                State::Http1(c) => return c.as_mut().poll(cx).map_err(Into::into),
                State::Http2(c) => return c.as_mut().poll(cx).map_err(Into::into),
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Reads into `seen` until it is the whole preface (`true`), differs from it, or the client
/// closed (`false`: HTTP/1.1, which answers or ignores whatever came).
fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
    cx: &mut Context<'_>,
    seen: &mut [u8; PREFACE.len()],
    len: &mut usize,
) -> Poll<io::Result<bool>> {
    loop {
        let mut buf = ReadBuf::new(&mut seen[*len..]);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(false));
        }
        *len += n;
        if seen[..*len] != PREFACE[..*len] {
            return Poll::Ready(Ok(false));
        }
        if *len == PREFACE.len() {
            return Poll::Ready(Ok(true));
        }
    }
}

/// The connection's socket with the bytes read while choosing the protocol put back in front,
/// and reads capped at [`READ_CAP`].
pub struct Rewind<I> {
    pre: Bytes,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre.split_to(n));
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() <= READ_CAP {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        // Only a connection whose reads filled hyper's buffer gets here (an upload): zeroing
        // the capped window is the price of not handing hyper more.
        let window = buf.initialize_unfilled_to(READ_CAP);
        let mut capped = ReadBuf::new(window);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut capped))?;
        let n = capped.filled().len();
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
