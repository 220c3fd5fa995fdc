//! Sending a request body to an origin over HTTP/1.1 while watching for its answer.
//!
//! An origin that refuses an upload (a 413, a 401, a redirect) often answers as soon as it
//! has read the head, and then stops reading without closing. A sender that only writes waits
//! on a full socket until its first-byte timeout, and turns the origin's answer into a 504.
//! So the socket is read between writes, and a final response that refuses the body ends the
//! sending (RFC 9112 §9.5); an early 2xx is kept while the rest of the body goes out, for an
//! origin that answers at once and reads on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::Body;
use tokio::io::AsyncWrite;

use super::UpstreamBody;
use super::h1conn::Conn;
use super::h1wire::{MAX_INTERIM, Parsed, RequestFraming, ResponseHead, parse_response};

/// How the body's sending ended, short of a write error.
pub(super) struct Sent {
    /// Every byte of the body went out: the connection is still between messages.
    pub whole: bool,
    /// The final response head, when it came while the body was going out.
    pub head: Option<ResponseHead>,
    /// Interim (1xx) responses read while sending.
    pub interim: usize,
}

//= https://www.rfc-editor.org/rfc/rfc9112#section-9.5
//# A client sending a message body SHOULD monitor the network connection for an error
//# response while it is transmitting the request.  If the client sees a response that
//# indicates the server does not wish to receive the message body and is closing the
//# connection, the client SHOULD immediately cease transmitting the body and close its side
//# of the connection.
/// Whether an early final response ends the sending: an error or a redirect (which does not
/// want the body, as curl also judges), or any answer after which the origin closes.
fn refuses_body(head: &ResponseHead) -> bool {
    head.status.as_u16() >= 300 || !head.keep_alive
}

/// The bytes of a request body as its head framed it: each frame a chunk, or exactly the
/// length declared (a body that yields more stops before the excess, one that ends short
/// fails: the origin must never read a byte of the next request as this one's).
struct Framer {
    framing: RequestFraming,
    sent: u64,
}

impl Framer {
    /// The bytes that carry `data`.
    fn frame(&mut self, data: Bytes) -> io::Result<Bytes> {
        match self.framing {
            RequestFraming::Chunked => {
                // One write per chunk: size line, data and CRLF in one buffer.
                let mut chunk = Vec::with_capacity(data.len() + 20);
                chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                Ok(chunk.into())
            }
            RequestFraming::Length(n) => {
                self.sent += data.len() as u64;
                if self.sent > n {
                    return Err(io::Error::other(
                        "request body longer than its Content-Length",
                    ));
                }
                Ok(data)
            }
            RequestFraming::None => Err(io::Error::other("request body where none was framed")),
        }
    }

    /// The bytes that end the body.
    fn end(&self) -> io::Result<Bytes> {
        match self.framing {
            RequestFraming::Chunked => Ok(Bytes::from_static(b"0\r\n\r\n")),
            RequestFraming::Length(n) if self.sent < n => Err(io::Error::other(
                "request body shorter than its Content-Length",
            )),
            _ => Ok(Bytes::new()),
        }
    }
}

/// What the socket said while the body went out.
#[derive(Default)]
struct Watch {
    /// Still reading for an answer (not once a final head is in, or the origin closed).
    reading: bool,
    head: Option<ResponseHead>,
    interim: usize,
}

impl Conn {
    /// Writes `body` as `framing` says while reading what the origin answers meanwhile.
    /// Returns early, with `whole` false, when the origin refused the body; an error when a
    /// write failed or the body did (either leaves the request unfinished, and the
    /// connection is not reused).
    pub(super) async fn send_body(
        &mut self,
        body: UpstreamBody,
        framing: RequestFraming,
        head_request: bool,
    ) -> io::Result<Sent> {
        let mut framer = Framer { framing, sent: 0 };
        let mut body = Some(body);
        let mut out = Bytes::new();
        let mut watch = Watch {
            reading: true,
            ..Watch::default()
        };
        std::future::poll_fn(|cx| {
            loop {
                if watch.reading && self.poll_answer(cx, head_request, &mut watch) {
                    return Poll::Ready(Ok(Sent {
                        whole: false,
                        head: watch.head.take(),
                        interim: watch.interim,
                    }));
                }
                if out.has_remaining() {
                    let n = ready!(Pin::new(&mut self.io).poll_write(cx, &out))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    out.advance(n);
                    continue;
                }
                let Some(b) = body.as_mut() else {
                    return Poll::Ready(Ok(Sent {
                        whole: true,
                        head: watch.head.take(),
                        interim: watch.interim,
                    }));
                };
                out = match ready!(Pin::new(b).poll_frame(cx)) {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if !data.is_empty() => framer.frame(data)?,
                        _ => continue, // trailers are not sent
                    },
                    Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                    None => {
                        body = None;
                        framer.end()?
                    }
                };
            }
        })
        .await
    }

    /// Reads what the origin has sent so far; true when the sending is to stop (a final
    /// response that refuses the body, too many interim ones, or bytes that are no response:
    /// the exchange then reads the answer, or the error, from the buffer).
    fn poll_answer(&mut self, cx: &mut Context<'_>, head_request: bool, w: &mut Watch) -> bool {
        loop {
            match self.poll_read(cx) {
                Poll::Ready(Ok(n)) if n > 0 => {}
                // Closed or failed: the writes will tell.
                Poll::Ready(_) => {
                    w.reading = false;
                    return false;
                }
                // Nothing yet: the task wakes when something comes.
                Poll::Pending => return false,
            }
            loop {
                match parse_response(&mut self.buf, head_request) {
                    Ok(Parsed::Partial) => break,
                    Ok(Parsed::Interim) => {
                        w.interim += 1;
                        if w.interim > MAX_INTERIM {
                            return true;
                        }
                    }
                    Ok(Parsed::Final(head)) => {
                        let refused = refuses_body(&head);
                        w.head = Some(head);
                        w.reading = false;
                        return refused;
                    }
                    Err(_) => return true,
                }
            }
        }
    }
}
