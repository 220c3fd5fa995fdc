//! HTTP/1.1 toward an origin, without IO: the request head as bytes, the response head parsed
//! with the framing of its body (RFC 9112 §6.3), and the chunked decoder (§7.1).
//!
//! Whatever an origin sends is checked here before a byte of it is believed: a response whose
//! framing is ambiguous (differing `Content-Length` values, `Transfer-Encoding` in HTTP/1.0)
//! is refused with [`WireError`] and the connection closed, as RFC 9112 §6.3 asks of a proxy;
//! so is a transfer coding other than `chunked` (§6.3 would read such a body to the close, but
//! a proxy cannot undo the coding and would pass the encoded bytes on as the content). Every
//! line the decoder reads is bounded, so an origin cannot make the node buffer or scan without
//! end.

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::field_names::field_name;

/// Largest response head accepted (status line and fields). nginx's default buffer is 4–8 KiB,
/// Varnish's 32 KiB; 64 KiB leaves room for the long `Set-Cookie` and `Link` fields some
/// origins send.
pub const MAX_HEAD: usize = 64 * 1024;

/// Most fields in a response head (hyper's default, used here before).
pub const MAX_FIELDS: usize = 100;

/// Most interim (1xx) responses skipped before the final one.
pub const MAX_INTERIM: usize = 16;

/// Most bytes after a chunk size on its line (whitespace and extensions, skipped, not stored).
const MAX_EXTENSIONS: usize = 4 * 1024;

/// Most bytes of trailer fields in one body; they are read and dropped (the engine neither
/// stores nor forwards trailers).
const MAX_TRAILERS: usize = 16 * 1024;

/// Most hex digits in a chunk size (leading zeros included): 16 digits hold any `u64`.
const MAX_SIZE_DIGITS: u32 = 16;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The status line or a field line is malformed.
    #[error("malformed response head: {0}")]
    Head(&'static str),
    /// The head is longer than [`MAX_HEAD`] or has more than [`MAX_FIELDS`] fields.
    #[error("response head too large")]
    HeadTooLarge,
    /// The `Content-Length` values disagree or one is not a number.
    #[error("invalid Content-Length")]
    Length,
    /// `Transfer-Encoding` names a coding other than `chunked`, or came in an HTTP/1.0
    /// response.
    #[error("unsupported Transfer-Encoding")]
    Coding,
    /// A `101 Switching Protocols` nobody asked for, or more than [`MAX_INTERIM`] 1xx heads.
    #[error("unexpected interim response {0}")]
    Interim(u16),
    /// The chunked body is malformed.
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
}

/// How the body of a response ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a response to HEAD, a 204 or a 304.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the origin closes the connection.
    UntilClose,
}

/// A final response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// The fields; their values are slices of one exact-size copy of the head.
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    pub keep_alive: bool,
    /// Bytes of the head (the buffer its field values are slices of).
    pub len: usize,
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// An interim (1xx) response, removed from the buffer.
    Interim,
    /// The final response head, removed from the buffer (the body's first bytes stay).
    Final(ResponseHead),
}

/// Appends the request head for `method`, `target` (origin-form) and `headers` to `out`, and
/// returns how its body (`body`) is framed. The framing is this function's alone: no
/// `Transfer-Encoding` or `Content-Length` of `headers` is copied. A single valid
/// `Content-Length` is written again when the body's length is not known otherwise, and the
/// sender holds the body to it ([`RequestFraming::Length`]); any other is dropped, so a length
/// that disagrees with the body can never reach the origin and desynchronise a kept
/// connection (a `GET` with `Content-Length: 1` and no body would leave the origin waiting
/// for a byte; `5, 5` in front of 200 bytes would smuggle 195).
pub fn encode_request(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: BodyLength,
    out: &mut Vec<u8>,
) -> RequestFraming {
    // Every part was validated when it was built (`Method`, `Uri`, `HeaderName`,
    // `HeaderValue` refuse CR, LF and NUL), so nothing here can split the head.
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == TRANSFER_ENCODING || name == CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let declared = || {
        let mut values = headers.get_all(CONTENT_LENGTH).iter();
        let first = values.next()?;
        values
            .next()
            .is_none()
            .then(|| parse_length(first.as_bytes()))
            .flatten()
    };
    let length = |out: &mut Vec<u8>, n: u64| {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    let framing = match (body, declared()) {
        (BodyLength::None, _) => {
            // RFC 9110 §8.6: a request whose method defines a body says its length, even 0.
            if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                length(out, 0);
            }
            RequestFraming::None
        }
        (BodyLength::Exact(n), _) | (BodyLength::Unknown, Some(n)) => {
            length(out, n);
            RequestFraming::Length(n)
        }
        (BodyLength::Unknown, None) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            RequestFraming::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// What is known of a request body's length before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    None,
    Exact(u64),
    Unknown,
}

/// How a request's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    None,
    /// Exactly this many bytes: a body that yields more or fewer fails the request.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Parses the response head at the start of `buf`, for a request that was HEAD when
/// `head_request`. On `Interim` and `Final`, the head's bytes are removed from `buf`.
pub fn parse_response(buf: &mut BytesMut, head_request: bool) -> Result<Parsed, WireError> {
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(WireError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::HeadTooLarge),
        Err(e) => return Err(WireError::Head(parse_error(e))),
    };
    if len > MAX_HEAD {
        return Err(WireError::HeadTooLarge);
    }
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| WireError::Head("status code"))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(WireError::Interim(code));
        }
        let _ = buf.split_to(len);
        return Ok(Parsed::Interim);
    }
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Where each field sits in the head, so that the values can be slices of its copy.
    let base = buf.as_ptr() as usize;
    let at: Vec<[usize; 4]> = resp
        .headers
        .iter()
        .map(|f| {
            let name = f.name.as_ptr() as usize - base;
            let value = f.value.as_ptr() as usize - base;
            [name, name + f.name.len(), value, value + f.value.len()]
        })
        .collect();
    // An exact-size copy: the stored object keeps these values for as long as it is cached,
    // and slices of the read buffer would keep the whole buffer (and the body in it) alive.
    let head = Bytes::copy_from_slice(&buf[..len]);
    bytes::Buf::advance(buf, len);
    let mut headers = HeaderMap::with_capacity(at.len());
    for [name, name_end, value, value_end] in at {
        let name = field_name(&head[name..name_end]).map_err(|_| WireError::Head("field name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value..value_end))
            .map_err(|_| WireError::Head("field value"))?;
        headers.append(name, value);
    }
    let (framing, framing_allows_reuse) = framing(&mut headers, status, version, head_request)?;
    let keep_alive = framing_allows_reuse && persistent(&headers, version);
    Ok(Parsed::Final(ResponseHead {
        status,
        version,
        headers,
        framing,
        keep_alive,
        len,
    }))
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::Status => "status line",
        httparse::Error::Version => "version",
        httparse::Error::HeaderName => "field name",
        httparse::Error::HeaderValue => "field value",
        httparse::Error::NewLine => "line ending",
        _ => "syntax",
    }
}

/// The framing of a final response's body (RFC 9112 §6.3), and whether it leaves the
/// connection usable afterwards. Normalises the fields it relies on: repeated equal
/// `Content-Length` values become one, and a `Content-Length` beside `Transfer-Encoding` is
/// dropped (the coding wins, and the connection closes after, as §6.3 item 3 asks).
fn framing(
    headers: &mut HeaderMap,
    status: StatusCode,
    version: Version,
    head_request: bool,
) -> Result<(Framing, bool), WireError> {
    //= https://www.rfc-editor.org/rfc/rfc9112#section-6.3
    //# Any response to a HEAD request and any response with a 1xx (Informational), 204 (No
    //# Content), or 304 (Not Modified) status code is always terminated by the first empty
    //# line after the header fields, regardless of the header fields present in the message,
    //# and thus cannot contain a message body or trailer section.
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, true));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        //= https://www.rfc-editor.org/rfc/rfc9112#section-6.1
        //# A server or client that receives an HTTP/1.0 message containing a
        //# Transfer-Encoding header field MUST treat the message as if the framing is faulty
        if version == Version::HTTP_10 {
            return Err(WireError::Coding);
        }
        // Only `chunked`, once: any other coding would reach clients still encoded.
        let mut codings = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty());
        let only_chunked = codings
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none();
        if !only_chunked {
            return Err(WireError::Coding);
        }
        let had_length = headers.remove(CONTENT_LENGTH).is_some();
        return Ok((Framing::Chunked, !had_length));
    }
    let (mut length, mut items) = (None, 0);
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(item.trim_ascii()).ok_or(WireError::Length)?;
            if length.is_some_and(|l| l != n) {
                return Err(WireError::Length);
            }
            length = Some(n);
            items += 1;
        }
    }
    match length {
        Some(n) => {
            if items > 1 {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            }
            Ok((Framing::Length(n), true))
        }
        None => Ok((Framing::UntilClose, false)),
    }
}

/// `1*DIGIT` as a `u64`, `None` for anything else (signs, spaces, overflow).
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Whether the origin keeps the connection open after this response (RFC 9112 §9.3).
fn persistent(headers: &HeaderMap, version: Version) -> bool {
    let says = |token: &[u8]| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    if version == Version::HTTP_10 {
        says(b"keep-alive") && !says(b"close")
    } else {
        !says(b"close")
    }
}

/// Decodes a chunked body as its bytes arrive.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes after the size on the current size line.
    extensions: usize,
    trailers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk size: its value and the digits read.
    Size(u64, u32),
    /// After the size, whitespace before `;` or CR.
    SizeSpace(u64),
    /// In a chunk extension (skipped up to CR).
    Extension(u64),
    /// CR read after a size line: LF next.
    SizeLf(u64),
    /// In a chunk's data: bytes left.
    Data(u64),
    /// After a chunk's data: CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer line.
    TrailerLine,
    /// CR read at the end of a trailer line, or of the final line.
    TrailerLf,
    FinalLf,
    Done,
}

/// What the decoder found in the bytes given so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes.
    Data(Bytes),
    /// Nothing more until more bytes arrive.
    NeedMore,
    /// The body is over; the bytes after it are left in the buffer.
    Done,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size(0, 0),
            extensions: 0,
            trailers: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Consumes framing bytes from `buf` up to the next body bytes (returned without a copy),
    /// the end of the body, or the end of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, WireError> {
        let mut used = 0;
        let result = loop {
            if let State::Data(left) = self.state {
                let _ = buf.split_to(used);
                used = 0;
                if buf.is_empty() {
                    break Ok(Chunk::NeedMore);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let data = buf.split_to(n).freeze();
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                break Ok(Chunk::Data(data));
            }
            if self.state == State::Done {
                break Ok(Chunk::Done);
            }
            let Some(&b) = buf.get(used) else {
                break Ok(Chunk::NeedMore);
            };
            used += 1;
            self.state = match self.step(b) {
                Ok(next) => next,
                Err(e) => break Err(e),
            };
        };
        let _ = buf.split_to(used);
        result
    }

    /// The state after framing byte `b`.
    fn step(&mut self, b: u8) -> Result<State, WireError> {
        let bad = |what| Err(WireError::Chunked(what));
        // Bytes after a chunk size (spaces, extensions) are bounded per size line.
        if matches!(self.state, State::SizeSpace(_) | State::Extension(_)) {
            self.extensions += 1;
            if self.extensions > MAX_EXTENSIONS {
                return bad("chunk extensions too long");
            }
        }
        Ok(match self.state {
            State::Size(value, digits) => match hex(b) {
                Some(d) if digits < MAX_SIZE_DIGITS => State::Size(value << 4 | d, digits + 1),
                Some(_) => return bad("chunk size too long"),
                None if digits == 0 => return bad("chunk size"),
                None => {
                    self.extensions = 0;
                    match b {
                        b' ' | b'\t' => State::SizeSpace(value),
                        b';' => State::Extension(value),
                        b'\r' => State::SizeLf(value),
                        _ => return bad("chunk size"),
                    }
                }
            },
            State::SizeSpace(value) => match b {
                b' ' | b'\t' => State::SizeSpace(value),
                b';' => State::Extension(value),
                b'\r' => State::SizeLf(value),
                _ => return bad("chunk size"),
            },
            State::Extension(value) => match b {
                b'\r' => State::SizeLf(value),
                b'\n' => return bad("bare LF"),
                _ => State::Extension(value),
            },
            State::SizeLf(value) => match (b, value) {
                (b'\n', 0) => State::TrailerStart,
                (b'\n', n) => State::Data(n),
                _ => return bad("line ending"),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return bad("chunk longer than its size"),
            },
            State::DataLf => match b {
                b'\n' => State::Size(0, 0),
                _ => return bad("line ending"),
            },
            State::TrailerStart | State::TrailerLine => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return bad("trailers too long");
                }
                match (b, self.state) {
                    (b'\r', State::TrailerStart) => State::FinalLf,
                    (b'\r', _) => State::TrailerLf,
                    (b'\n', _) => return bad("bare LF"),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLf => match b {
                b'\n' => State::TrailerStart,
                _ => return bad("line ending"),
            },
            State::FinalLf => match b {
                b'\n' => State::Done,
                _ => return bad("line ending"),
            },
            // `decode` takes data and the end itself and never steps from them.
            state @ (State::Data(_) | State::Done) => state,
        })
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

#[cfg(test)]
#[path = "h1wire_tests.rs"]
mod tests;
