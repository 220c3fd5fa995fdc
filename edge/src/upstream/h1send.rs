//! Sending a request body to an origin over HTTP/1.1 while watching for its answer.
//!
//! An origin that refuses an upload (a 413, a 401, a redirect) often answers as soon as it
//! has read the head, and then stops reading without closing. A sender that only writes waits
//! on a full socket until a timeout, and turns the origin's answer into a 504.
//! So the socket is read between writes, and a final response that refuses the body ends the
//! sending (RFC 9112 §9.5); an early 2xx is kept while the rest of the body goes out, for an
//! origin that answers at once and reads on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::Body;
use tokio::io::AsyncWrite;

use super::UpstreamBody;
use super::h1conn::{Conn, READ_FIRST};
use super::h1wire::{MAX_INTERIM, Parsed, RequestFraming, ResponseHead, WireError, parse_response};

/// How the sending of a request ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// Every byte went out and was flushed: the connection is between messages.
    Whole,
    /// The sending stopped: the origin refused the body, sent too many interim responses, or
    /// bytes that are no response.
    Stopped,
    /// A write (or the flush) failed.
    WriteFailed(io::Error),
    /// The body failed: the client's broke off, or it did not match its declared length.
    BodyFailed(io::Error),
}

/// What the origin said while the body went out (kept whatever the ending: an origin that
/// answered 200 and then closed still answered).
#[derive(Default)]
pub(super) struct Early {
    /// The final response head.
    pub head: Option<ResponseHead>,
    /// Interim (1xx) responses read.
    pub interim: usize,
    /// Bytes that are no response (its head is gone from the buffer: the exchange fails with
    /// this, and reads nothing more).
    pub malformed: Option<WireError>,
}

/// How the sending of a request ended, and what the origin said meanwhile.
pub(super) struct Sent {
    pub ended: Ended,
    pub early: Early,
}

//= https://www.rfc-editor.org/rfc/rfc9112#section-9.5
//# A client sending a message body SHOULD monitor the network connection for an error
//# response while it is transmitting the request.  If the client sees a response that
//# indicates the server does not wish to receive the message body and is closing the
//# connection, the client SHOULD immediately cease transmitting the body and close its side
//# of the connection.
/// Whether an early final response ends the sending: an error or a redirect does not want
/// the body (curl judges alike). A 2xx does, even one after which the origin closes: the rest
/// goes out, and the connection is not reused.
fn refuses_body(head: &ResponseHead) -> bool {
    head.status.as_u16() >= 300
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
struct Watch {
    /// Still reading for an answer (not once a final head is in, or the origin closed).
    reading: bool,
    early: Early,
}

impl Conn {
    /// Writes `body` as `framing` says, and flushes, while reading what the origin answers
    /// meanwhile. Ends early when the origin refused the body, or a write or the body failed
    /// (each leaves the request unfinished, and the connection is not reused).
    pub(super) async fn send_body(
        &mut self,
        body: UpstreamBody,
        framing: RequestFraming,
        head_request: bool,
    ) -> Sent {
        let mut framer = Framer { framing, sent: 0 };
        let mut body = Some(body);
        let mut out = Bytes::new();
        let mut watch = Watch {
            reading: true,
            early: Early::default(),
        };
        std::future::poll_fn(|cx| {
            let ended = loop {
                let all_out = body.is_none() && !out.has_remaining();
                if all_out {
                    // All written; the flush (a TLS record held back) is watched too.
                    match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => break Ended::Whole,
                        Poll::Ready(Err(e)) => break Ended::WriteFailed(e),
                        Poll::Pending => {}
                    }
                }
                if watch.reading && self.poll_answer(cx, head_request, &mut watch) {
                    break Ended::Stopped;
                }
                if all_out {
                    return Poll::Pending;
                }
                if out.has_remaining() {
                    match Pin::new(&mut self.io).poll_write(cx, &out) {
                        Poll::Ready(Ok(0)) => {
                            break Ended::WriteFailed(io::ErrorKind::WriteZero.into());
                        }
                        Poll::Ready(Ok(n)) => out.advance(n),
                        Poll::Ready(Err(e)) => break Ended::WriteFailed(e),
                        Poll::Pending => return Poll::Pending,
                    }
                    continue;
                }
                let Some(b) = body.as_mut() else {
                    continue; // nothing left to write either: the first branch ends it
                };
                let framed = match Pin::new(b).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) if !data.is_empty() => framer.frame(data),
                        _ => continue, // trailers are not sent
                    },
                    Poll::Ready(Some(Err(e))) => Err(io::Error::other(e)),
                    Poll::Ready(None) => {
                        body = None;
                        framer.end()
                    }
                    // The client has sent no more yet: what the transport holds goes out
                    // meanwhile (TLS may keep a record back from a full socket).
                    Poll::Pending => match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Err(e)) => break Ended::WriteFailed(e),
                        _ => return Poll::Pending,
                    },
                };
                match framed {
                    Ok(bytes) => out = bytes,
                    Err(e) => break Ended::BodyFailed(e),
                }
            };
            Poll::Ready(Sent {
                ended,
                early: std::mem::take(&mut watch.early),
            })
        })
        .await
    }

    /// Reads what the origin has sent so far; true when the sending is to stop (a final
    /// response that refuses the body, too many interim ones, or bytes that are no response).
    /// Reads go into a small room ([`READ_FIRST`]): an upload may last long, and a kept
    /// connection's grown read size would be held for all of it.
    fn poll_answer(&mut self, cx: &mut Context<'_>, head_request: bool, w: &mut Watch) -> bool {
        loop {
            match self.poll_read_into(cx, READ_FIRST) {
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
                        w.early.interim += 1;
                        if w.early.interim > MAX_INTERIM {
                            return true;
                        }
                    }
                    Ok(Parsed::Final(head)) => {
                        let refused = refuses_body(&head);
                        w.early.head = Some(head);
                        w.reading = false;
                        return refused;
                    }
                    Err(e) => {
                        w.early.malformed = Some(e);
                        return true;
                    }
                }
            }
        }
    }
}
