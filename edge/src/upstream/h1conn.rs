//! One HTTP/1.1 connection to an origin, driven by the task that asks: it writes the request,
//! reads the response head, and its body ([`H1Body`]) reads the rest and hands the connection
//! back to its pool once the last byte is in.
//!
//! hyper's client gave every connection a task of its own, and every request crossed to it and
//! back over channels: for a 1 KiB miss that was a fifth of the node's instructions. Here no
//! task and no channel stand between the fill and its socket; the wire format is `h1wire`'s.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_util::io::poll_read_buf;
use tower_service::Service;

use super::h1pool::H1Pool;
use super::h1send::{Early, Ended, Sent};
use super::h1wire::{
    BodyLength, Chunk, ChunkedDecoder, Framing, MAX_INTERIM, Parsed, RequestFraming,
    encode_request, parse_response,
};
use super::h2conn::Connector;
use super::{UpstreamBody, UpstreamError};

/// The transport of a connection (TCP, or TLS over it).
pub(super) type Io = TokioIo<<Connector as Service<http::Uri>>::Response>;

/// Room for a connection's first read (a head, a small body).
pub(super) const READ_FIRST: usize = 8 * 1024;

/// Most room asked for one read. Reads grow to it while each uses half its room or more, as
/// hyper's do: one read then takes everything the socket holds. That matters beyond the
/// system calls saved: when the host's TCP memory runs short, the kernel accepts a segment
/// only into a nearly empty receive queue, and a reader that leaves segments queued sees
/// the rest dropped and retransmitted after timeouts (measured: 0.5 MB/s with 64 KiB reads
/// behind 1000 stalled clients, against hundreds of MB/s with reads that grow).
const READ_MAX: usize = 512 * 1024;

/// A kept-alive connection between exchanges.
pub(super) struct Conn {
    pub(super) io: Io,
    /// Read but not yet consumed; empty between exchanges.
    pub(super) buf: BytesMut,
    /// When it last went idle.
    pub last_used: Instant,
    /// Room the next read asks for (grows while reads fill it, see [`READ_MAX`]).
    read_size: usize,
    /// The last read was small: one more and the read size halves.
    shrink_next: bool,
}

/// An exchange that got no response.
pub(super) struct Failed {
    pub error: UpstreamError,
    /// No byte of a response arrived: the connection broke (or was found closed) under the
    /// request, which another connection may carry again.
    pub unanswered: bool,
}

impl Failed {
    fn unanswered(error: UpstreamError) -> Self {
        Failed {
            error,
            unanswered: true,
        }
    }

    fn answered(error: UpstreamError) -> Self {
        Failed {
            error,
            unanswered: false,
        }
    }
}

impl Conn {
    /// Boxed: a TLS connection's state is large, and the connection moves between the pool,
    /// the exchange and the body.
    pub fn new(io: Io) -> Box<Self> {
        Box::new(Conn {
            io,
            buf: BytesMut::new(),
            last_used: Instant::now(),
            read_size: READ_FIRST,
            shrink_next: false,
        })
    }

    /// Whether the origin has neither closed the connection nor sent anything out of turn
    /// since the last response. Costs no system call unless the socket became readable.
    pub fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = tokio::io::ReadBuf::new(&mut probe);
        // Ready means closed, failed, or a byte nobody asked for: not usable either way (and
        // the connection is dropped, so the byte is not lost to anyone).
        tokio::io::AsyncRead::poll_read(Pin::new(&mut self.io), &mut cx, &mut probe).is_pending()
    }

    /// Sends the request whose head is `head` (and `body`, framed as the head says), then
    /// reads up to the final response head. The body of the response keeps the connection and
    /// gives it to `home` when it is over, if the exchange left it reusable.
    pub async fn exchange(
        mut self: Box<Self>,
        head: &[u8],
        body: Option<(UpstreamBody, RequestFraming)>,
        head_request: bool,
        home: &Arc<H1Pool>,
    ) -> Result<Response<H1Body>, Failed> {
        let Sent { ended, early } = match self.io.write_all(head).await {
            Err(e) => Sent {
                ended: Ended::WriteFailed(e),
                early: Early::default(),
            },
            Ok(()) => match body {
                Some((body, framing)) => self.send_body(body, framing, head_request).await,
                None => Sent {
                    ended: match self.io.flush().await {
                        Ok(()) => Ended::Whole,
                        Err(e) => Ended::WriteFailed(e),
                    },
                    early: Early::default(),
                },
            },
        };
        if let Some(e) = early.malformed {
            return Err(Failed::answered(UpstreamError::Protocol(e.to_string())));
        }
        // A request cut short (by a failed write, or an origin that refused the body) leaves
        // the connection mid-message: never reused.
        let whole_request = matches!(ended, Ended::Whole);
        match ended {
            // An answer to a body that broke off is no answer to the client's request (the
            // engine tells the client why its body failed).
            Ended::BodyFailed(e) => {
                return Err(Failed::answered(UpstreamError::Protocol(format!(
                    "the request body failed: {e}"
                ))));
            }
            Ended::WriteFailed(e)
                // The origin may have answered before it stopped reading (a 413 to an upload).
                if early.head.is_none()
                    && early.interim == 0
                    && self.buf.is_empty()
                    && !self.readable_now() =>
            {
                return Err(Failed::unanswered(UpstreamError::Protocol(format!(
                    "sending the request: {e}"
                ))));
            }
            _ => {}
        }
        // Bytes of an answer that came while the body was going out: an origin that answered
        // before it had the body may never read it, so a refusal among them retires the
        // connection even when the last write went through. (A head already parsed here is
        // a 2xx: a refusal would have stopped the sending.)
        let answered_early = !self.buf.is_empty();
        let mut interim = early.interim;
        let head = match early.head {
            Some(head) => head,
            None => loop {
                if interim > MAX_INTERIM {
                    return Err(Failed::answered(protocol("too many interim responses")));
                }
                match parse_response(&mut self.buf, head_request) {
                    Ok(Parsed::Final(head)) => break head,
                    Ok(Parsed::Interim) => {
                        interim += 1;
                        continue;
                    }
                    Ok(Parsed::Partial) => {}
                    Err(e) => {
                        return Err(Failed::answered(UpstreamError::Protocol(e.to_string())));
                    }
                }
                // Nothing of a response yet: the request may go again elsewhere.
                let unanswered = self.buf.is_empty() && interim == 0;
                let error = match self.read().await {
                    Ok(0) => protocol("the connection closed before a response"),
                    Ok(_) => continue,
                    Err(e) => UpstreamError::Protocol(format!("reading the response: {e}")),
                };
                return Err(Failed { error, unanswered });
            },
        };
        let reusable =
            head.keep_alive && whole_request && !(answered_early && head.status.as_u16() >= 300);
        let state = match head.framing {
            Framing::Empty | Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => BodyState::UntilClose,
        };
        let mut resp = Response::new(H1Body {
            conn: Some(self),
            state,
            home: reusable.then(|| home.clone()),
            head_len: head.len,
        });
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        resp.body_mut().end_if_done();
        Ok(resp)
    }

    /// Gives back the read buffer before the connection goes idle (its room may be the tail
    /// of a [`READ_MAX`] block, which it alone would keep alive: 256 idle connections could
    /// hold 128 MiB doing nothing). The read size stays: the next response's first read takes
    /// what the socket holds, not just the head.
    fn trim_for_idle(&mut self) {
        self.buf = BytesMut::new();
    }

    /// Reads once; 0 at the end of the stream.
    async fn read(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // Always the whole read size: a read with less room than a segment leaves the rest
        // queued, which under TCP memory pressure costs the next segments (see READ_MAX).
        if self.buf.capacity() - self.buf.len() < self.read_size {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = ready!(poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf))?;
        // Grows while reads use half the room or more; shrinks after two small reads in a row
        // (one is the tail of every body), as hyper's reads do.
        if n >= room / 2 {
            self.read_size = (self.read_size * 2).min(READ_MAX);
            self.shrink_next = false;
        } else if n < self.read_size / 8 {
            if self.shrink_next {
                self.read_size = (self.read_size / 2).max(READ_FIRST);
            }
            self.shrink_next = !self.shrink_next;
        }
        Poll::Ready(Ok(n))
    }

    /// Reads once into the buffer, with room for at least `room` bytes, leaving the read size
    /// as it is.
    pub(super) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
    ) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < room {
            self.buf.reserve(room);
        }
        poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Whether a response may already wait in the socket after a failed write.
    fn readable_now(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(self.poll_read(&mut cx), Poll::Ready(Ok(n)) if n > 0)
    }
}

fn protocol(what: &str) -> UpstreamError {
    UpstreamError::Protocol(what.to_string())
}

/// What a request's body is, for the head's framing.
pub(super) fn body_length(body: &UpstreamBody) -> BodyLength {
    if body.is_end_stream() {
        return BodyLength::None;
    }
    match body.size_hint().exact() {
        Some(n) => BodyLength::Exact(n),
        None => BodyLength::Unknown,
    }
}

/// The request head of `req` as bytes, and its body with the framing the head declared.
pub(super) fn encode(
    req: Request<UpstreamBody>,
) -> (Vec<u8>, Option<(UpstreamBody, RequestFraming)>) {
    let (parts, body) = req.into_parts();
    let length = body_length(&body);
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut head = Vec::with_capacity(512);
    let framing = encode_request(&parts.method, target, &parts.headers, length, &mut head);
    let body = (framing != RequestFraming::None).then_some((body, framing));
    (head, body)
}

enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// A response body read straight from its connection.
pub struct H1Body {
    /// `None` once the body is over (the connection went back to the pool, or was closed).
    conn: Option<Box<Conn>>,
    state: BodyState,
    /// Where the connection goes once the body is over; `None` when it is not to be reused.
    home: Option<Arc<H1Pool>>,
    /// Bytes of the head the response's field values are slices of.
    head_len: usize,
}

impl H1Body {
    /// The length of the one buffer the head's field values are slices of (an exact copy of
    /// the head, status line and fields dropped since included).
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// Once the body is over: the connection goes back to its pool, if nothing was left
    /// unread after the body.
    fn end_if_done(&mut self) {
        if !matches!(self.state, BodyState::Done) {
            return;
        }
        if let Some(mut conn) = self.conn.take()
            && conn.buf.is_empty()
            && let Some(home) = self.home.take()
        {
            conn.trim_for_idle();
            home.put_back(conn);
        }
    }

    fn fail(&mut self, error: UpstreamError) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        self.conn = None;
        self.state = BodyState::Done;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // Take what the buffer holds; else what the connection closing now would mean
            // (`None`: the end of a body delimited by the close).
            let cut_short = match &mut this.state {
                BodyState::Done => {
                    this.end_if_done();
                    return Poll::Ready(None);
                }
                BodyState::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            this.state = BodyState::Done;
                            this.end_if_done();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Some("the connection closed before the body's end")
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Chunk::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Chunk::Done) => {
                        this.state = BodyState::Done;
                        continue;
                    }
                    Ok(Chunk::NeedMore) => {
                        Some("the connection closed before the chunked body's end")
                    }
                    Err(e) => return this.fail(UpstreamError::Protocol(e.to_string())),
                },
                BodyState::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    None
                }
            };
            match ready!(conn.poll_read(cx)) {
                Ok(0) => match cut_short {
                    Some(what) => return this.fail(protocol(what)),
                    None => {
                        this.conn = None;
                        this.state = BodyState::Done;
                        return Poll::Ready(None);
                    }
                },
                Ok(_) => {}
                Err(e) => return this.fail(reading(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.state, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

fn reading(e: io::Error) -> UpstreamError {
    UpstreamError::Protocol(format!("reading the response body: {e}"))
}
