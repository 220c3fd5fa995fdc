//! What the node makes of an origin's HTTP/1.1 bytes, and what it sends: chunked bodies with
//! extensions and trailers, interim responses, bodies delimited by the close, heads whose
//! framing is ambiguous (refused with a 502, as RFC 9112 §6.3 asks of a proxy), bodies cut
//! short (never cached), bytes after a response (the connection is not used again), and
//! request bodies framed by length or chunked (and `uploads.rs` for how they go out). The origin is a TCP socket answering each path
//! with canned bytes, so every byte is the test's choice.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use support::{config_from_flags, fill, h1_client, send};
use tiercel_cluster::config::Role;
use tiercel_edge::node;
use tokio::io::AsyncWriteExt;

/// What the origin saw: connections accepted and each request's raw bytes (head and body).
#[derive(Default)]
struct Seen {
    connections: usize,
    requests: Vec<Vec<u8>>,
}

/// A canned answer, and whether the origin closes the connection after writing it.
struct Canned {
    bytes: Vec<u8>,
    close: bool,
}

fn canned(bytes: &[u8], close: bool) -> Canned {
    Canned {
        bytes: bytes.to_vec(),
        close,
    }
}

/// An origin answering each path in `answers` with its canned bytes (404 otherwise).
async fn origin(answers: HashMap<&'static str, Canned>) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let answers = Arc::new(answers);
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            s.lock().unwrap().connections += 1;
            let (s, answers) = (s.clone(), answers.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(request) = read_request(&mut tcp, &mut buf).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&request).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let path = path.split('?').next().unwrap_or("/").to_string();
                    s.lock().unwrap().requests.push(request);
                    let (bytes, close) = match answers.get(path.as_str()) {
                        Some(c) => (c.bytes.clone(), c.close),
                        None => (
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                            false,
                        ),
                    };
                    if tcp.write_all(&bytes).await.is_err() || close {
                        let _ = tcp.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Reads one request (head, and a body framed by `content-length` or `chunked`).
async fn read_request(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(tcp, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body_end = if let Some(l) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
    {
        end + l.trim().parse::<usize>().ok()?
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            if let Some(i) = buf[end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                break end + i + 5;
            }
            if !fill(tcp, buf).await {
                return None;
            }
        }
    } else {
        end
    };
    while buf.len() < body_end {
        if !fill(tcp, buf).await {
            return None;
        }
    }
    Some(buf.drain(..body_end).collect())
}

async fn edge(origin: SocketAddr) -> node::RunningNode {
    support::init_logs();
    let url = format!("http://{origin}");
    let cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", url.as_str()]);
    node::start(Role::Edge, &cfg).await.expect("edge starts")
}

async fn get(node: &node::RunningNode, path: &str) -> support::Resp {
    let addr = node.listen.unwrap();
    send(
        &h1_client(),
        Request::get(format!("http://{addr}{path}"))
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_with_extensions_and_trailers_are_cached_whole() {
    let (addr, seen) = origin(HashMap::from([
        (
            "/chunked",
            canned(
                b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"v\"\r\nhello\r\n00006 \r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                false,
            ),
        ),
        (
            "/after",
            canned(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        ),
    ]))
    .await;
    let node = edge(addr).await;
    let first = get(&node, "/chunked").await;
    assert_eq!(
        (first.status.as_u16(), &first.body[..]),
        (200, &b"hello world"[..])
    );
    let second = get(&node, "/chunked").await;
    assert_eq!(second.body, first.body);
    assert!(second.is_hit(), "{}", second.cache_status());
    // The body ended exactly at its last chunk and trailers: the connection serves on.
    assert_eq!(get(&node, "/after").await.body, "ok");
    {
        let seen = seen.lock().unwrap();
        assert_eq!((seen.connections, seen.requests.len()), (1, 2));
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_are_skipped() {
    let (addr, seen) = origin(HashMap::from([(
        "/interim",
        canned(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nok",
            false,
        ),
    )]))
    .await;
    let node = edge(addr).await;
    let resp = get(&node, "/interim").await;
    assert_eq!((resp.status.as_u16(), &resp.body[..]), (200, &b"ok"[..]));
    assert!(get(&node, "/interim").await.is_hit());
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_a_502_and_never_cached() {
    let cases: [(&'static str, &[u8]); 6] = [
        ("/two-lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\nCache-Control: max-age=60\r\n\r\nhello!"),
        ("/length-list", b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\nCache-Control: max-age=60\r\n\r\nhello!"),
        ("/gzip-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nCache-Control: max-age=60\r\n\r\n0\r\n\r\n"),
        ("/http10-chunked", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n0\r\n\r\n"),
        ("/bad-chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ("/folded", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\nX-A: a\r\n b\r\n\r\nok"),
    ];
    let (addr, seen) = origin(cases.iter().map(|&(p, b)| (p, canned(b, false))).collect()).await;
    let node = edge(addr).await;
    let edge_addr = node.listen.unwrap();
    let ask = |path: &'static str| async move {
        let req = Request::get(format!("http://{edge_addr}{path}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let resp = h1_client().request(req).await.ok()?;
        let status = resp.status().as_u16();
        use http_body_util::BodyExt;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    for (path, _) in cases {
        // A head refused before any byte went to the client is a 502; a chunked body found
        // broken after the head went out cuts the response short instead.
        match ask(path).await {
            Some((status, body)) => {
                assert_eq!(status, 502, "{path}");
                // The node's own short error text, never the origin's bytes.
                for origin_body in ["hello!", "ok", "hello"] {
                    assert_ne!(body, origin_body, "{path}");
                }
            }
            None => assert_eq!(path, "/bad-chunk"),
        }
    }
    // Nothing was cached: each is asked again.
    let before = seen.lock().unwrap().requests.len();
    for (path, _) in cases {
        let _ = ask(path).await;
    }
    assert_eq!(seen.lock().unwrap().requests.len(), before + cases.len());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_beside_chunked_loses_and_the_connection_closes_after() {
    let (addr, seen) = origin(HashMap::from([
        (
            "/both",
            canned(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                false,
            ),
        ),
        (
            "/next",
            canned(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        ),
    ]))
    .await;
    let node = edge(addr).await;
    let resp = get(&node, "/both").await;
    assert_eq!((resp.status.as_u16(), &resp.body[..]), (200, &b"hello"[..]));
    assert_eq!(get(&node, "/next").await.body, "ok");
    assert_eq!(
        seen.lock().unwrap().connections,
        2,
        "not reused after a conflict"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_delimited_by_the_close_is_cached() {
    let (addr, seen) = origin(HashMap::from([(
        "/until-close",
        canned(
            b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\nuntil the close",
            true,
        ),
    )]))
    .await;
    let node = edge(addr).await;
    let resp = get(&node, "/until-close").await;
    assert_eq!(
        (resp.status.as_u16(), &resp.body[..]),
        (200, &b"until the close"[..])
    );
    let again = get(&node, "/until-close").await;
    assert!(again.is_hit(), "{}", again.cache_status());
    assert_eq!(again.body, "until the close");
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_is_not_cached() {
    let (addr, seen) = origin(HashMap::from([(
        "/short",
        canned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nonly ten b",
            true,
        ),
    )]))
    .await;
    let node = edge(addr).await;
    let addr_edge = node.listen.unwrap();
    for _ in 0..2 {
        // The head went out before the body broke: the client sees the response cut short.
        let client = h1_client();
        let req = Request::get(format!("http://{addr_edge}/short"))
            .body(Full::<Bytes>::default())
            .unwrap();
        // Either the head went out and the body breaks, or nothing usable arrives at all.
        if let Ok(resp) = client.request(req).await {
            use http_body_util::BodyExt;
            assert!(resp.into_body().collect().await.is_err(), "a whole body?");
        }
    }
    assert_eq!(
        seen.lock().unwrap().requests.len(),
        2,
        "the broken body was cached"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_response_retire_the_connection() {
    let (addr, seen) = origin(HashMap::from([
        (
            "/extra",
            canned(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
                false,
            ),
        ),
        (
            "/next",
            canned(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal", false),
        ),
    ]))
    .await;
    let node = edge(addr).await;
    assert_eq!(get(&node, "/extra").await.body, "ok");
    // The forged response left on the connection is never taken for the next one.
    assert_eq!(get(&node, "/next").await.body, "real");
    assert_eq!(seen.lock().unwrap().connections, 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_reach_the_origin_framed() {
    let answer = || canned(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone", false);
    let (addr, seen) = origin(HashMap::from([("/upload", answer())])).await;
    let node = edge(addr).await;
    let edge_addr = node.listen.unwrap();
    // A body of known length goes with its length.
    let resp = send(
        &h1_client(),
        Request::post(format!("http://{edge_addr}/upload"))
            .body(Full::new(Bytes::from_static(b"0123456789")))
            .unwrap(),
    )
    .await;
    assert_eq!((resp.status.as_u16(), &resp.body[..]), (200, &b"done"[..]));
    // A body of unknown length still arriving when the request goes out goes chunked.
    let frames = Box::pin(futures_util::stream::unfold(0, |i| async move {
        let piece: &'static [u8] = match i {
            0 => b"part one,",
            1 => b" part two",
            _ => return None,
        };
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Some((
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(piece))),
            i + 1,
        ))
    }));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<StreamBody<_>>();
    let resp = client
        .request(
            Request::post(format!("http://{edge_addr}/upload"))
                .body(StreamBody::new(frames))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (first, second) = {
        let seen = seen.lock().unwrap();
        let text = |i: usize| String::from_utf8_lossy(&seen.requests[i]).to_ascii_lowercase();
        (text(0), text(1))
    };
    assert!(first.contains("content-length: 10\r\n"), "{first}");
    assert!(first.ends_with("\r\n\r\n0123456789"), "{first}");
    assert!(
        second.contains("transfer-encoding: chunked\r\n"),
        "{second}"
    );
    assert!(!second.contains("content-length"), "{second}");
    let body = &second[second.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(decode_chunked(body), "part one, part two", "{second}");
    node.shutdown().await;
}

fn decode_chunked(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let line_end = s.find("\r\n").unwrap();
        let size = usize::from_str_radix(s[..line_end].split(';').next().unwrap(), 16).unwrap();
        s = &s[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.push_str(&s[..size]);
        s = &s[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_beyond_64_kib_is_a_502() {
    let mut huge = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ".to_vec();
    huge.resize(huge.len() + 70 * 1024, b'a');
    huge.extend_from_slice(b"\r\n\r\nok");
    let bytes: &'static [u8] = Box::leak(huge.into_boxed_slice());
    let (addr, _) = origin(HashMap::from([("/huge", canned(bytes, false))])).await;
    let node = edge(addr).await;
    assert_eq!(get(&node, "/huge").await.status.as_u16(), 502);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_bodyless_idempotent_request_goes_again_after_a_kept_connection_drops_it() {
    let (addr, seen) = origin(HashMap::from([
        (
            "/warm",
            canned(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
        ),
        // Read, then the connection closes without an answer.
        ("/drop", canned(b"", true)),
    ]))
    .await;
    let node = edge(addr).await;
    let edge_addr = node.listen.unwrap();
    let count = |method: &str| {
        let seen = seen.lock().unwrap();
        seen.requests
            .iter()
            .filter(|r| r.starts_with(format!("{method} /drop").as_bytes()))
            .count()
    };
    // A POST lost on a kept connection may have acted: never sent again.
    assert_eq!(get(&node, "/warm").await.body, "ok");
    let resp = send(
        &h1_client(),
        Request::post(format!("http://{edge_addr}/drop"))
            .body(Full::new(Bytes::from_static(b"once")))
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 502);
    assert_eq!(count("POST"), 1);
    // A GET lost the same way goes once more, on a new connection (dropped again there).
    assert_eq!(get(&node, "/warm").await.body, "ok");
    assert_eq!(get(&node, "/drop").await.status.as_u16(), 502);
    assert_eq!(count("GET"), 2);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_length_without_a_body_never_reaches_the_origin() {
    let (addr, seen) = origin(HashMap::from([(
        "/length",
        canned(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nok",
            false,
        ),
    )]))
    .await;
    let node = edge(addr).await;
    // A GET whose body the node reads and does not forward: the origin must not be told to
    // wait for it (it would, until the first-byte timeout, with every joined request).
    let answer = support::raw(
        node.listen.unwrap(),
        b"GET /length HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    let asked = String::from_utf8_lossy(&seen.lock().unwrap().requests[0]).to_ascii_lowercase();
    assert!(!asked.contains("content-length"), "{asked}");
    assert!(asked.ends_with("\r\n\r\n"), "{asked}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_answers_keep_the_connection_whatever_their_fields_say() {
    let (addr, seen) = origin(HashMap::from([
        (
            "/no-content",
            canned(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\n",
                false,
            ),
        ),
        (
            "/next",
            canned(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext", false),
        ),
    ]))
    .await;
    let node = edge(addr).await;
    assert_eq!(get(&node, "/no-content").await.status.as_u16(), 204);
    // The 204's `Content-Length` announced nothing to read: the next answer is read whole.
    assert_eq!(get(&node, "/next").await.body, "next");
    assert_eq!(seen.lock().unwrap().connections, 1);
    node.shutdown().await;
}
