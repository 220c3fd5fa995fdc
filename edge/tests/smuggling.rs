//! Request smuggling, over raw sockets (a client library would refuse to send these): every
//! ambiguous or malformed framing is refused with 400 and the connection closed, and nothing
//! of it reaches the origin; an h2 request with a connection-specific field or a
//! `content-length` that its DATA frames contradict is reset.

mod support;

use std::time::Duration;

use support::{
    DATA, END_HEADERS, END_STREAM, Edge, GOAWAY, HEADERS, RST_STREAM, SETTINGS, WAIT, frame, hpack,
    raw_status, read_frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` on a fresh connection and reads until the edge closes it; fails if it does
/// not close within the wait (a refused request must not leave the connection open for more).
async fn until_closed(e: &Edge, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection stayed open after: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn ambiguous_h1_framing_is_refused_and_nothing_reaches_the_origin() {
    let e = Edge::start(&[]).await;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "Content-Length then Transfer-Encoding",
            format!(
                "POST /smug/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "Transfer-Encoding then Content-Length",
            format!(
                "POST /smug/2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 47\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "both, behind empty lines before the request line",
            format!(
                "\r\n\r\nPOST /smug/15 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two equal Content-Length lines",
            "POST /smug/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
                .to_string(),
        ),
        (
            "two different Content-Length lines",
            "POST /smug/4 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
                .to_string(),
        ),
        (
            "a list-valued Content-Length",
            "POST /smug/5 HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello".to_string(),
        ),
        (
            "a Content-Length with a sign",
            "POST /smug/6 HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello".to_string(),
        ),
        (
            "chunked twice",
            "POST /smug/7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_string(),
        ),
        (
            "chunked not last",
            "POST /smug/8 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
                .to_string(),
        ),
        (
            "an unknown coding",
            "POST /smug/9 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
                .to_string(),
        ),
        (
            "Transfer-Encoding in HTTP/1.0",
            "POST /smug/10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_string(),
        ),
        (
            "obs-fold",
            "GET /smug/11 HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n".to_string(),
        ),
        (
            "whitespace before the colon",
            "POST /smug/12 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
                .to_string(),
        ),
        (
            "NUL in a value",
            "GET /smug/13 HTTP/1.1\r\nHost: x\r\nX-A: b\0c\r\n\r\n".to_string(),
        ),
        (
            "a control byte in a value",
            "GET /smug/14 HTTP/1.1\r\nHost: x\r\nX-A: b\x01c\r\n\r\n".to_string(),
        ),
    ];
    for (name, bytes) in cases {
        let out = until_closed(&e, bytes.as_bytes()).await;
        assert_eq!(raw_status(&out), 400, "{name}: {out}");
        assert_eq!(
            out.matches("HTTP/1.1 ").count(),
            1,
            "{name}: one answer: {out}"
        );
    }
    assert_eq!(
        e.origin.total_hits(),
        0,
        "nothing reached the origin: {:?}",
        e.origin
            .requests()
            .iter()
            .map(|r| r.target().to_string())
            .collect::<Vec<_>>()
    );
    e.shutdown().await;
}

#[tokio::test]
async fn bare_lf_line_ends_make_one_request_read_the_same_way() {
    // RFC 9112 §2.2 lets a recipient accept a bare LF; hyper does, and the head scanner agrees
    // with it, so both see one request. The origin gets it re-framed with CRLF.
    let e = Edge::start(&[]).await;
    let out = until_closed(
        &e,
        b"GET /bare?cc=max-age%3D60 HTTP/1.1\nHost: x\nConnection: close\n\n",
    )
    .await;
    assert_eq!(raw_status(&out), 200, "{out}");
    let seen = e.origin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target(), "/bare?cc=max-age%3D60");
    // A bare-LF head with both framing fields is refused like any other.
    let out = until_closed(
        &e,
        b"POST /bare2 HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\n\n",
    )
    .await;
    assert_eq!(raw_status(&out), 400, "{out}");
    assert_eq!(e.origin.total_hits(), 1);
    e.shutdown().await;
}

const PROTOCOL_ERROR: u32 = 0x1;

/// Sends an h2 connection preface, empty SETTINGS and `frames`, then reads frames until stream
/// 1 is reset or answered, or the connection goes away; returns the error code of a
/// RST_STREAM on stream 1 or of a GOAWAY, or `None` if it was answered.
async fn h2_exchange(e: &Edge, frames: &[Vec<u8>]) -> Option<u32> {
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for f in frames {
        out.extend_from_slice(f);
    }
    s.write_all(&out).await.unwrap();
    loop {
        let (kind, _, stream, payload) = read_frame(&mut s).await;
        match kind {
            RST_STREAM if stream == 1 => {
                return Some(u32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]));
            }
            GOAWAY => {
                return Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            HEADERS if stream == 1 => return None,
            _ => {}
        }
    }
}

#[tokio::test]
async fn malformed_h2_requests_are_reset_and_never_forwarded() {
    let e = Edge::start(&[]).await;
    let authority = e.addr().to_string();
    let base = |path: &'static str, method: &'static str| {
        vec![
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority.as_str()),
        ]
    };
    // A well-formed request is answered (the harness itself works).
    let ok = hpack(&base("/h2/ok", "GET"));
    let answered = h2_exchange(&e, &[frame(HEADERS, END_HEADERS | END_STREAM, 1, &ok)]).await;
    assert_eq!(answered, None);
    assert_eq!(e.origin.total_hits(), 1);
    // Connection-specific fields (RFC 9113 §8.2.2) make the request malformed.
    for (name, value) in [
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("keep-alive", "timeout=5"),
        ("upgrade", "websocket"),
        ("proxy-connection", "keep-alive"),
        ("te", "gzip"),
    ] {
        let mut fields = base("/h2/conn", "GET");
        fields.push((name, value));
        let code = h2_exchange(
            &e,
            &[frame(HEADERS, END_HEADERS | END_STREAM, 1, &hpack(&fields))],
        )
        .await;
        assert_eq!(code, Some(PROTOCOL_ERROR), "{name}: {value}");
    }
    // A content-length its DATA frames contradict, short or long (RFC 9113 §8.1.1).
    for (path, length) in [("/h2/short", "10"), ("/h2/long", "2")] {
        let mut fields = base(path, "POST");
        fields.push(("content-length", length));
        let code = h2_exchange(
            &e,
            &[
                frame(HEADERS, END_HEADERS, 1, &hpack(&fields)),
                frame(DATA, END_STREAM, 1, b"hello"),
            ],
        )
        .await;
        assert_eq!(code, Some(PROTOCOL_ERROR), "{path}");
    }
    // None of them reached the origin at all: the body is checked against its length before
    // anything goes upstream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for r in e.origin.requests() {
        assert!(
            r.target() == "/h2/ok",
            "{} {} reached the origin with {:?}",
            r.method,
            r.target(),
            r.body
        );
    }
    e.shutdown().await;
}
