//! An origin's HTTP/1.1 response as the node's origin client reads it: the head parser and the
//! chunked decoder (`tiercel_edge::upstream::h1wire`).

use bytes::BytesMut;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use tiercel_edge::upstream::h1wire::{
    Chunk, ChunkedDecoder, Framing, MAX_HEAD, Parsed, WireError, parse_response,
};

use crate::input::take;

/// Properties: bytes arriving in two pieces parse as they would in one; a final head's
/// framing follows RFC 9112 §6.3 (no body for HEAD, 204, 304; a chunked body never keeps a
/// `Content-Length`; a length is the one `Content-Length` value; only a framed body keeps the
/// connection); a head is at most `MAX_HEAD` bytes; and a chunked body decodes to the same
/// bytes, end and leftover whether it arrives at once or byte by byte, never to more bytes
/// than it came in.
pub fn check(data: &[u8]) {
    let (flags, rest) = take(data, 1);
    let flag = flags.first().copied().unwrap_or(0);
    let head_request = flag & 1 == 1;
    let cut = usize::from(flag >> 1).min(rest.len());
    let whole = parse_all(rest, rest.len(), head_request);
    let pieces = parse_all(rest, cut, head_request);
    assert_eq!(
        whole, pieces,
        "the same bytes parsed differently in two pieces"
    );
    let Some(Ok((framing, status, body))) = whole else {
        return;
    };
    if head_request || status == 204 || status == 304 {
        assert_eq!(framing, Framing::Empty);
    }
    if framing == Framing::Chunked {
        let at_once = decode(&body, body.len().max(1));
        let by_byte = decode(&body, 1);
        assert_eq!(
            at_once, by_byte,
            "chunked decoding depends on how bytes arrive"
        );
        if let Ok((decoded, _, _)) = &at_once {
            assert!(decoded.len() <= body.len());
        }
    }
}

/// What the head parse came to: the final head's framing, status and the bytes after it, or
/// the error; `None` while incomplete. `cut` bytes arrive first, the rest after.
type Outcome = Option<Result<(Framing, u16, Vec<u8>), WireError>>;

fn parse_all(rest: &[u8], cut: usize, head_request: bool) -> Outcome {
    let mut buf = BytesMut::from(&rest[..cut]);
    let mut fed = cut;
    loop {
        match parse_response(&mut buf, head_request) {
            Ok(Parsed::Partial) if fed < rest.len() => {
                buf.extend_from_slice(&rest[fed..]);
                fed = rest.len();
            }
            Ok(Parsed::Partial) => return None,
            Ok(Parsed::Interim) => {}
            Ok(Parsed::Final(head)) => {
                assert!(head.len <= MAX_HEAD);
                assert!(!head.status.is_informational());
                let lengths: Vec<_> = head.headers.get_all(CONTENT_LENGTH).iter().collect();
                match head.framing {
                    Framing::Chunked => {
                        assert!(lengths.is_empty(), "a length kept beside chunked");
                        assert!(head.headers.contains_key(TRANSFER_ENCODING));
                    }
                    Framing::Length(n) => {
                        assert_eq!(lengths.len(), 1);
                        let value = lengths[0].to_str().ok();
                        assert_eq!(value.and_then(|v| v.parse::<u64>().ok()), Some(n));
                    }
                    Framing::UntilClose => assert!(!head.keep_alive),
                    Framing::Empty => {}
                }
                buf.extend_from_slice(&rest[fed..]);
                return Some(Ok((head.framing, head.status.as_u16(), buf.to_vec())));
            }
            Err(e) => return Some(Err(e)),
        }
    }
}

/// Decodes `body` fed `step` bytes at a time: the data, whether it ended, what was left.
fn decode(body: &[u8], step: usize) -> Result<(Vec<u8>, bool, Vec<u8>), WireError> {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for (i, piece) in body.chunks(step).enumerate() {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf)? {
                Chunk::Data(d) => out.extend_from_slice(&d),
                Chunk::NeedMore => break,
                Chunk::Done => {
                    let fed = ((i + 1) * step).min(body.len());
                    let mut left = buf.to_vec();
                    left.extend_from_slice(&body[fed..]);
                    return Ok((out, true, left));
                }
            }
        }
    }
    Ok((out, false, buf.to_vec()))
}
