//! What an HTTP/1.1 request head said about its framing before hyper tidied it up.
//!
//! hyper applies RFC 9112 §6.1 to a request that carries both `Content-Length` and
//! `Transfer-Encoding`: it drops the length, lets the coding win and closes the connection
//! after the response. That is safe, but it hides the conflict from the handler, which then
//! forwards the request; and it silently merges two equal `Content-Length` lines. A CDN should
//! refuse both outright (the request is either broken or an attempt at smuggling), so the
//! connection's reads are scanned here while a head arrives on an idle connection, and a
//! request whose raw head had such a conflict is marked ([`AmbiguousFraming`]) for the handler.
//!
//! Only the first head after the connection went idle is scanned: a head pipelined behind a
//! request still in flight arrives mixed with that request's body. For such a head hyper's own
//! rule (the coding wins, the connection closes after) still prevents any desynchronisation.

/// Put in a request's extensions when its raw head carried both `Content-Length` and
/// `Transfer-Encoding`, or `Content-Length` more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousFraming;

/// Longest head scanned; longer ones are refused by hyper anyway (431).
pub const MAX_SCANNED_HEAD: usize = 64 * 1024;

/// The framing fields of a complete raw head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeadFraming {
    /// `Content-Length` field lines.
    pub content_lengths: usize,
    /// Whether a `Transfer-Encoding` line is present.
    pub transfer_encoding: bool,
}

impl HeadFraming {
    /// Whether the head's framing is ambiguous.
    pub fn ambiguous(&self) -> bool {
        self.content_lengths > 1 || (self.content_lengths > 0 && self.transfer_encoding)
    }
}

/// Where the head in `buf` ends (the index after its blank line), if it is complete. Bare LF
/// line ends count, as hyper accepts them.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = leading_empty_lines(buf);
    while let Some(nl) = memchr::memchr(b'\n', &buf[i..]) {
        let at = i + nl;
        let rest = &buf[at + 1..];
        if rest.starts_with(b"\n") {
            return Some(at + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        i = at + 1;
    }
    None
}

/// Reads the framing fields of a complete head (request line, field lines, blank line).
/// Bytes that do not start with an HTTP/1 request line (a scan that began in the middle of a
/// stream) say nothing.
pub fn framing_of(head: &[u8]) -> HeadFraming {
    let head = &head[leading_empty_lines(head)..];
    let mut out = HeadFraming::default();
    if !starts_with_request_line(head) {
        return out;
    }
    let mut ends = memchr::memchr_iter(b'\n', head);
    let Some(first) = ends.next() else {
        return out;
    };
    let mut start = first + 1;
    for end in ends.chain(std::iter::once(head.len())) {
        let line = &head[start..end];
        start = end + 1;
        // Only the two names below matter, and both start with one of these.
        if !matches!(line.first(), Some(b'c' | b'C' | b't' | b'T')) {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = &line[..colon];
        if name.eq_ignore_ascii_case(b"content-length") {
            out.content_lengths += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            out.transfer_encoding = true;
        }
    }
    out
}

/// How many bytes of empty lines come before the request line: RFC 9112 §2.2 lets a server
/// ignore them, and hyper (httparse) skips any number, so the scanner must too or a head behind
/// a CRLF would escape it.
//= https://www.rfc-editor.org/rfc/rfc9112#section-2.2
//# In the interest of robustness, a server that is expecting to receive and parse a
//# request-line SHOULD ignore at least one empty line (CRLF) received prior to the
//# request-line.
fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match &buf[i..] {
            [b'\r', b'\n', ..] => i += 2,
            [b'\n', ..] => i += 1,
            _ => return i,
        }
    }
}

/// `method SP target SP HTTP/1.x`, the method any token (RFC 9110 §9.1: extension methods
/// are tokens too, and hyper accepts them).
fn starts_with_request_line(head: &[u8]) -> bool {
    let line = &head[..memchr::memchr(b'\n', head).unwrap_or(head.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    !method.is_empty()
        && method.iter().all(|&b| is_tchar(b))
        && !target.is_empty()
        && version.starts_with(b"HTTP/1.")
        && parts.next().is_none()
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_end_at_their_blank_line_either_way() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nBODY"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(head_end(b""), None);
        // Empty lines before the request line are skipped, as hyper skips them.
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Some(22));
        assert_eq!(head_end(b"\n\r\n"), None);
    }

    #[test]
    fn framing_conflicts_are_found_in_any_case_and_order() {
        let table: &[(&[u8], usize, bool, bool)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                1,
                false,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                0,
                true,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\ncontent-length: 5\r\nTRANSFER-ENCODING: chunked\r\n\r\n",
                1,
                true,
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                1,
                true,
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                2,
                false,
                true,
            ),
            (
                b"POST / HTTP/1.1\nContent-Length: 5\nContent-Length: 5\n\n",
                2,
                false,
                true,
            ),
            // Empty lines before the request line do not hide the head.
            (
                b"\r\n\nPOST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                1,
                true,
                true,
            ),
            // Any token is a method, as far as hyper is concerned.
            (
                b"M-SEARCH * HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                1,
                true,
                true,
            ),
            // A value that mentions the name is not the field.
            (
                b"GET / HTTP/1.1\r\nX-A: content-length: 5\r\n\r\n",
                0,
                false,
                false,
            ),
            // Bytes from the middle of a stream (a body) are no head.
            (
                b"ontent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                0,
                false,
                false,
            ),
            (
                b"hello\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                0,
                false,
                false,
            ),
        ];
        for (head, lengths, coding, ambiguous) in table {
            let f = framing_of(head);
            assert_eq!(
                (f.content_lengths, f.transfer_encoding, f.ambiguous()),
                (*lengths, *coding, *ambiguous),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    /// The framing scan as first written, line by line: the fast scan must agree with it.
    fn framing_reference(head: &[u8]) -> (usize, bool) {
        let head = &head[leading_empty_lines(head)..];
        if !starts_with_request_line(head) {
            return (0, false);
        }
        let (mut lengths, mut coding) = (0, false);
        for line in head.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = &line[..colon];
            lengths += usize::from(name.eq_ignore_ascii_case(b"content-length"));
            coding |= name.eq_ignore_ascii_case(b"transfer-encoding");
        }
        (lengths, coding)
    }

    proptest::proptest! {
        #[test]
        fn the_fast_framing_scan_agrees_with_the_line_by_line_one(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("(?i)(content-length|transfer-encoding|te|cl|x-a): ?[0-9a-z:]{0,6}").unwrap(),
                    proptest::string::string_regex("[ -~]{0,12}").unwrap(),
                ],
                0..8,
            ),
            crlf in proptest::bool::ANY,
            blank_first in 0usize..3,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut head = eol.repeat(blank_first);
            head.push_str("POST / HTTP/1.1");
            for l in &lines {
                head.push_str(eol);
                head.push_str(l);
            }
            head.push_str(eol);
            head.push_str(eol);
            let f = framing_of(head.as_bytes());
            proptest::prop_assert_eq!(
                (f.content_lengths, f.transfer_encoding),
                framing_reference(head.as_bytes())
            );
        }
    }
}
