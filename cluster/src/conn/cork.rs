//! Write coalescing for a client socket, in the kernel: the writes one poll of a connection
//! makes leave as full segments, and the rest is pushed when that poll ends.
//!
//! Why: hyper's HTTP/2 codec (the `h2` crate) keeps one DATA frame in flight and writes it
//! before it takes the next, so a 100 KiB response to a client with 16 KiB frames cost eight
//! `writev` calls, each running the TCP transmit path to the end (on loopback, the receiver's
//! side too). That was 58 % of the CPU of an h2c 100 KiB hit. TLS records, one per frame, go
//! the same way.
//!
//! How: the first write of a poll goes out as before. Before the second write of the same
//! poll the socket is corked (`TCP_CORK`): the kernel copies every write into the socket (no
//! copy here) but transmits only full segments, and holds the tail. When the connection's poll
//! returns, [`Corked`] uncorks it, which sends the tail. So nothing is held past the poll that
//! wrote it, and a response of one write per poll (HTTP/1.1, small h2 responses) costs no
//! system call more. nginx does the same with `tcp_nopush` around a response.
//!
//! Why `TCP_CORK` and not `MSG_MORE` on each write (as this did first): `MSG_MORE` holds the
//! tail only through the call that wrote it. The transmits the kernel makes on its own, when
//! an ACK opens the window, follow the socket's `TCP_NODELAY` and send a held tail at once, as
//! a small segment of its own. Four 16 KiB frames overrun one 64 KiB loopback segment by
//! 89 bytes, so an h2c 1 MiB response left with about nine 89-byte segments among its full
//! ones, each costing a whole pass through the receive path; corked, the same response takes
//! 30 % fewer segments and 11–17 % less CPU.
//!
//! Linux only; elsewhere [`cork`] hands the socket back as it is and [`Corked`] has nothing to
//! push. A push missed by a bug would cost a delay, not a hang: the kernel sends a corked tail
//! on its probe timer (max(RTO, 200 ms)).
//!
//! ```text
//!  hyper / h2 / rustls ─ write 1 ─────▶ send()                   ─▶ transmitted
//!                       ─ write 2 ─────▶ setsockopt(CORK), send() ─▶ full segments transmitted
//!                       ─ write 3..n ──▶ send()                   ─▶ full segments transmitted
//!  Corked::poll returns ──────────────▶ setsockopt(UNCORK)       ─▶ tail pushed
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpStream;

#[cfg(target_os = "linux")]
pub use linux::{Cork, CorkedIo};

/// Wraps an accepted socket for corking: the socket to serve, and the [`Cork`] to push after
/// each poll of what serves it ([`Corked`]). Without `TCP_CORK` (not Linux) the socket comes
/// back unchanged.
#[cfg(target_os = "linux")]
pub fn cork(stream: TcpStream) -> (CorkedIo, Option<Arc<Cork>>) {
    let (io, cork) = CorkedIo::new(stream);
    (io, Some(cork))
}

/// Wraps an accepted socket for corking: not on this platform.
#[cfg(not(target_os = "linux"))]
pub fn cork(stream: TcpStream) -> (TcpStream, Option<Arc<Cork>>) {
    (stream, None)
}

/// Nothing to push where the socket is not corked.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub struct Cork;

#[cfg(not(target_os = "linux"))]
impl Cork {
    /// Nothing to do.
    pub fn begin_poll(&self) {}
    /// Nothing to do.
    pub fn push(&self) {}
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::AsRawFd;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::task::{Context, Poll, ready};

    use nix::sys::socket::MsgFlags;
    use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
    use tokio::net::TcpStream;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

    /// The write side of a corked socket, shared by the [`CorkedIo`] that writes and the
    /// [`Corked`](super::Corked) future that pushes after each poll.
    #[derive(Debug)]
    pub struct Cork {
        write: OwnedWriteHalf,
        /// Writes since the current poll began: the socket is corked before the second.
        writes_this_poll: AtomicU32,
        /// The socket is corked: bytes may be held until the push uncorks it.
        held: AtomicBool,
        /// Pushes done: what shows that a poll with one write needed none.
        pushes: AtomicU32,
    }

    impl Cork {
        fn stream(&self) -> &TcpStream {
            self.write.as_ref()
        }

        /// Starts a poll: its first write goes out at once.
        pub fn begin_poll(&self) {
            self.writes_this_poll.store(0, Ordering::Relaxed);
        }

        /// Ends a poll: pushes out what its writes left held. A failure means the socket is
        /// gone; the connection's next read or write reports it.
        pub fn push(&self) {
            if self.held.swap(false, Ordering::Relaxed) {
                self.pushes.fetch_add(1, Ordering::Relaxed);
                let _ = socket2::SockRef::from(self.stream()).set_tcp_cork(false);
            }
        }

        /// Whether bytes are held in the kernel waiting for [`Cork::push`].
        pub fn holds_bytes(&self) -> bool {
            self.held.load(Ordering::Relaxed)
        }

        /// How many pushes were needed so far.
        pub fn pushes(&self) -> u32 {
            self.pushes.load(Ordering::Relaxed)
        }

        fn poll_send(
            &self,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let later = self.writes_this_poll.fetch_add(1, Ordering::Relaxed) > 0;
            if later && !self.held.swap(true, Ordering::Relaxed) {
                let _ = socket2::SockRef::from(self.stream()).set_tcp_cork(true);
            }
            let stream = self.stream();
            loop {
                ready!(stream.poll_write_ready(cx))?;
                let sent = stream.try_io(Interest::WRITABLE, || {
                    nix::sys::socket::sendmsg::<()>(
                        stream.as_raw_fd(),
                        bufs,
                        &[],
                        MsgFlags::MSG_NOSIGNAL,
                        None,
                    )
                    .map_err(io::Error::from)
                });
                match sent {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    // Readiness was cleared: poll it again, which registers the waker.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
    }

    /// A TCP socket whose writes are coalesced by the kernel through a [`Cork`]. Reads go
    /// straight through.
    #[derive(Debug)]
    pub struct CorkedIo {
        read: OwnedReadHalf,
        cork: Arc<Cork>,
    }

    impl CorkedIo {
        /// Splits `stream`. The returned [`Cork`] must be pushed after every poll of the
        /// connection that uses the socket: wrap that future in [`Corked`](super::Corked).
        pub fn new(stream: TcpStream) -> (CorkedIo, Arc<Cork>) {
            let (read, write) = stream.into_split();
            let cork = Arc::new(Cork {
                write,
                writes_this_poll: AtomicU32::new(0),
                held: AtomicBool::new(false),
                pushes: AtomicU32::new(0),
            });
            (
                CorkedIo {
                    read,
                    cork: cork.clone(),
                },
                cork,
            )
        }
    }

    impl AsyncRead for CorkedIo {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.read).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CorkedIo {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.cork.poll_send(cx, &[io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.cork.poll_send(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        /// Everything written is in the kernel already; what it holds is pushed when the poll
        /// ends, which is what lets the next writes of this poll join it.
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.cork.push();
            Poll::Ready(
                nix::sys::socket::shutdown(
                    self.cork.stream().as_raw_fd(),
                    nix::sys::socket::Shutdown::Write,
                )
                .or_else(|e| match e {
                    // Already closed by the peer: nothing left to shut.
                    nix::errno::Errno::ENOTCONN => Ok(()),
                    e => Err(io::Error::from(e)),
                }),
            )
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection future whose corked writes are pushed each time it has been polled.
    pub struct Corked<F> {
        #[pin]
        inner: F,
        cork: Option<Arc<Cork>>,
    }
}

impl<F> Corked<F> {
    /// Pushes `cork` (when there is one) after every poll of `inner`.
    pub fn new(inner: F, cork: Option<Arc<Cork>>) -> Self {
        Corked { inner, cork }
    }

    /// The wrapped future.
    pub fn inner(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().inner
    }
}

impl<F: Future> Future for Corked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(cork) = this.cork {
            cork.begin_poll();
        }
        let polled = this.inner.poll(cx);
        if let Some(cork) = this.cork {
            cork.push();
        }
        polled
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
