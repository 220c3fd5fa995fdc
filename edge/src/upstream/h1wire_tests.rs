use super::*;
use proptest::prelude::*;

fn parse(raw: &[u8]) -> Result<Parsed, WireError> {
    parse_response(&mut BytesMut::from(raw), false)
}

fn head(raw: &[u8]) -> ResponseHead {
    match parse(raw) {
        Ok(Parsed::Final(head)) => head,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn request_head_bytes() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.com"));
    headers.append("accept", HeaderValue::from_static("a"));
    headers.append("accept", HeaderValue::from_static("b"));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    let mut out = Vec::new();
    let framing = encode_request(&Method::GET, "/a?b", &headers, BodyLength::None, &mut out);
    assert_eq!(framing, RequestFraming::None);
    assert_eq!(
        out,
        b"GET /a?b HTTP/1.1\r\nhost: example.com\r\naccept: a\r\naccept: b\r\n\r\n"
    );
}

#[test]
fn request_body_framing() {
    let frame = |method: Method, headers: &HeaderMap, body| {
        let mut out = Vec::new();
        let framing = encode_request(&method, "/", headers, body, &mut out);
        (String::from_utf8(out).unwrap(), framing)
    };
    let none = HeaderMap::new();
    assert_eq!(
        frame(Method::POST, &none, BodyLength::None),
        (
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n".into(),
            RequestFraming::None
        )
    );
    assert_eq!(
        frame(Method::DELETE, &none, BodyLength::None),
        ("DELETE / HTTP/1.1\r\n\r\n".into(), RequestFraming::None)
    );
    assert_eq!(
        frame(Method::PUT, &none, BodyLength::Exact(12)),
        (
            "PUT / HTTP/1.1\r\ncontent-length: 12\r\n\r\n".into(),
            RequestFraming::Length(12)
        )
    );
    assert_eq!(
        frame(Method::POST, &none, BodyLength::Unknown),
        (
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".into(),
            RequestFraming::Chunked
        )
    );
    let with = |value: &'static str| {
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static(value));
        h
    };
    // A valid length of the request frames a body of unknown length, and holds it to it.
    assert_eq!(
        frame(Method::POST, &with("3"), BodyLength::Unknown),
        (
            "POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n".into(),
            RequestFraming::Length(3)
        )
    );
    // The body's own length wins over the field's.
    assert_eq!(
        frame(Method::POST, &with("3"), BodyLength::Exact(4)).1,
        RequestFraming::Length(4)
    );
    // A length without a body, or one that is not a single number, never goes out.
    assert_eq!(
        frame(Method::GET, &with("1"), BodyLength::None),
        ("GET / HTTP/1.1\r\n\r\n".into(), RequestFraming::None)
    );
    assert_eq!(
        frame(Method::POST, &with("5, 5"), BodyLength::Unknown),
        (
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".into(),
            RequestFraming::Chunked
        )
    );
}

#[test]
fn a_whole_head_leaves_the_body_in_the_buffer() {
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"[..]);
    let Ok(Parsed::Final(head)) = parse_response(&mut buf, false) else {
        panic!()
    };
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.framing, Framing::Length(5));
    assert!(head.keep_alive);
    assert_eq!(head.headers["x-a"], "1");
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn partial_heads_wait_and_huge_ones_fail() {
    assert!(matches!(
        parse(b"HTTP/1.1 200 OK\r\nA: b\r\n"),
        Ok(Parsed::Partial)
    ));
    assert!(matches!(parse(b""), Ok(Parsed::Partial)));
    let mut long = b"HTTP/1.1 200 OK\r\nA: ".to_vec();
    long.resize(MAX_HEAD, b'a');
    assert_eq!(parse(&long).unwrap_err(), WireError::HeadTooLarge);
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_FIELDS {
        many.extend_from_slice(format!("f{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse(&many).unwrap_err(), WireError::HeadTooLarge);
}

#[test]
fn malformed_heads_are_refused() {
    for raw in [
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: x\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: x\0y\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA : x\r\n\r\n",
    ] {
        assert!(
            matches!(parse(raw), Err(WireError::Head(_))),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn interim_responses_are_skipped_but_not_101() {
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..]);
    assert!(matches!(
        parse_response(&mut buf, false),
        Ok(Parsed::Interim)
    ));
    assert!(matches!(
        parse_response(&mut buf, false),
        Ok(Parsed::Interim)
    ));
    let Ok(Parsed::Final(head)) = parse_response(&mut buf, false) else {
        panic!()
    };
    assert_eq!(head.status, StatusCode::NO_CONTENT);
    assert!(buf.is_empty());
    assert_eq!(
        parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n").unwrap_err(),
        WireError::Interim(101)
    );
}

#[test]
fn framing_follows_rfc_9112_section_6_3() {
    let cases: &[(&[u8], bool, Framing, bool)] = &[
        // Bodyless whatever the fields say.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            true,
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.1 204 No\r\nContent-Length: 9\r\n\r\n",
            false,
            Framing::Empty,
            true,
        ),
        (
            b"HTTP/1.1 304 NM\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            Framing::Empty,
            true,
        ),
        // The coding wins over a length, and the connection closes after.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            Framing::Chunked,
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
            false,
            Framing::Chunked,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,chunked\r\n\r\n",
            false,
            Framing::Chunked,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            Framing::Length(0),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
            false,
            Framing::Length(7),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n",
            false,
            Framing::Length(7),
            true,
        ),
        // Neither: until the origin closes.
        (
            b"HTTP/1.1 200 OK\r\n\r\n",
            false,
            Framing::UntilClose,
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
            false,
            Framing::Length(1),
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive\r\n\r\n",
            false,
            Framing::Length(1),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: x, close\r\n\r\n",
            false,
            Framing::Length(1),
            false,
        ),
    ];
    for &(raw, head_request, framing, keep_alive) in cases {
        let Ok(Parsed::Final(h)) = parse_response(&mut BytesMut::from(raw), head_request) else {
            panic!("{:?}", String::from_utf8_lossy(raw))
        };
        assert_eq!(h.framing, framing, "{:?}", String::from_utf8_lossy(raw));
        assert_eq!(
            h.keep_alive,
            keep_alive,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // Repeated lengths become one; a length beside the coding is gone.
    let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n");
    assert_eq!(h.headers.get_all("content-length").iter().count(), 1);
    assert_eq!(h.headers["content-length"], "7");
    let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(!h.headers.contains_key("content-length"));
}

#[test]
fn ambiguous_framing_is_refused() {
    for (raw, error) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n"[..],
            WireError::Length,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
            WireError::Length,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: +7\r\n\r\n",
            WireError::Length,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            WireError::Length,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            WireError::Length,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            WireError::Length,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            WireError::Length,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            WireError::Coding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            WireError::Coding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
            WireError::Coding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n",
            WireError::Coding,
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            WireError::Coding,
        ),
    ] {
        assert_eq!(
            parse(raw).unwrap_err(),
            error,
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn header_values_share_one_copy_of_the_head() {
    let raw = &b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\n\r\nbody"[..];
    let mut buf = BytesMut::from(raw);
    let read = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Ok(Parsed::Final(h)) = parse_response(&mut buf, false) else {
        panic!()
    };
    let etag = h.headers["etag"].as_bytes().as_ptr() as usize;
    let length = h.headers["content-length"].as_bytes().as_ptr() as usize;
    assert!(!read.contains(&etag), "not a slice of the read buffer");
    assert!(
        length > etag && length - etag < raw.len() - 4,
        "one buffer, the head's size"
    );
    assert_eq!(&buf[..], b"body");
}

/// Decodes `input` fed in the pieces `cuts` says; returns the body, whether it ended, and what
/// was left after it.
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool, Vec<u8>), WireError> {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    points.sort_unstable();
    points.push(input.len());
    for point in points {
        buf.extend_from_slice(&input[fed..point]);
        fed = point;
        loop {
            match decoder.decode(&mut buf)? {
                Chunk::Data(d) => body.extend_from_slice(&d),
                Chunk::NeedMore => break,
                Chunk::Done => {
                    return Ok((
                        body,
                        true,
                        buf[..].iter().chain(&input[fed..]).copied().collect(),
                    ));
                }
            }
        }
    }
    Ok((body, false, buf.to_vec()))
}

#[test]
fn chunked_bodies_decode() {
    let input =
        b"5\r\nhello\r\n1;name=val;x\r\n \r\n6 ; e\r\nworld!\r\n0\r\nTrailer: t\r\n\r\nNEXT";
    let (body, done, rest) = decode_in_pieces(input, &[]).unwrap();
    assert_eq!(body, b"hello world!");
    assert!(done);
    assert_eq!(rest, b"NEXT");
    // Upper-case hex and leading zeros.
    let (body, done, _) = decode_in_pieces(b"0000A\r\n0123456789\r\n000\r\n\r\n", &[]).unwrap();
    assert_eq!((body.len(), done), (10, true));
    // Incomplete: no end yet.
    let (body, done, _) = decode_in_pieces(b"5\r\nhel", &[]).unwrap();
    assert_eq!((body, done), (b"hel".to_vec(), false));
}

#[test]
fn malformed_chunked_bodies_fail() {
    let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_EXTENSIONS + 1));
    let long_space = format!("1{}\r\nx\r\n0\r\n\r\n", " ".repeat(MAX_EXTENSIONS + 1));
    let long_trailer = format!("0\r\nT: {}\r\n\r\n", "t".repeat(MAX_TRAILERS));
    for input in [
        &b"x\r\n"[..],
        b"\r\n",
        b";ext\r\n",
        b"5\nhello\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhelloX\r\n",
        b"5 6\r\n",
        b"10000000000000000\r\n",
        b"1;a\nb\r\n",
        b"0\r\nT: x\n\r\n",
        b"0\r\n\rX",
        long_ext.as_bytes(),
        long_space.as_bytes(),
        long_trailer.as_bytes(),
    ] {
        assert!(
            matches!(decode_in_pieces(input, &[]), Err(WireError::Chunked(_))),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Sixteen digits still fit.
    assert!(decode_in_pieces(b"000000000000000A\r\n", &[]).is_ok());
    // The extension bound is per line: long bodies with extensions on every chunk decode.
    let ext = format!(";sig={}", "a".repeat(MAX_EXTENSIONS - 8));
    let body: String = (0..100).map(|_| format!("1{ext}\r\nx\r\n")).collect();
    let input = format!("{body}0\r\n\r\n");
    let (decoded, done, _) = decode_in_pieces(input.as_bytes(), &[]).unwrap();
    assert_eq!((decoded.len(), done), (100, true));
}

fn encode_chunked(body: &[u8], sizes: &[usize], ext: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().map_or(rest.len(), |&s| s.clamp(1, rest.len()));
        out.extend_from_slice(format!("{n:x}").as_bytes());
        if ext {
            out.extend_from_slice(b"; a=\"b\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

proptest! {
    /// Any chunking of any body, fed in any pieces, decodes to the body and stops exactly at
    /// its end.
    #[test]
    fn chunked_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        sizes in proptest::collection::vec(1usize..64, 1..8),
        cuts in proptest::collection::vec(0usize..800, 0..12),
        ext in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut input = encode_chunked(&body, &sizes, ext);
        input.extend_from_slice(&tail);
        let (decoded, done, rest) = decode_in_pieces(&input, &cuts).unwrap();
        prop_assert_eq!(decoded, body);
        prop_assert!(done);
        prop_assert_eq!(rest, tail);
    }

    /// Arbitrary bytes never panic the head parser or the decoder.
    #[test]
    fn arbitrary_bytes_are_handled(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut buf = BytesMut::from(&raw[..]);
        let _ = parse_response(&mut buf, false);
        let _ = decode_in_pieces(&raw, &[]);
    }
}
