//! No client can turn the edge's own sockets against the other clients: request bodies start
//! before anything goes upstream, passes share the fills' upstream cap, one connection limit
//! spans every listener and makes room by closing idle keep-alive connections, an address can
//! be capped, chunked bodies in tiny pieces are coalesced or refused, HTTP/2 heads are held to
//! the same limits as HTTP/1.1 ones, and a TLS handshake spends the first head's time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use support::{Edge, WAIT, metric, raw, raw_status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn metrics(e: &Edge) -> String {
    let admin = e.node.admin_listen.expect("--admin-listen");
    let req = Request::get(format!("http://{admin}/metrics"))
        .body(http_body_util::Full::default())
        .unwrap();
    String::from_utf8_lossy(&support::send(&e.client, req).await.body).into_owned()
}

fn counter(text: &str, name: &str) -> u64 {
    metric(text, name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_streams_whose_bodies_never_start_open_no_upstream_connection() {
    let e = Edge::start_cfg(&[], |c| {
        c.timeouts.client_body = Duration::from_secs(1);
    })
    .await;
    let mut client = support::h2_connect(e.addr()).await;
    let authority = e.addr().to_string();
    let mut waiting = Vec::new();
    for i in 0..256 {
        let req = Request::post(format!("http://{authority}/upload/{i}"))
            .body(())
            .unwrap();
        client = client.ready().await.expect("stream slot");
        // Headers only: the body never starts.
        let (resp, body) = client.send_request(req, false).expect("stream opens");
        waiting.push((resp, body));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        e.origin.connections_accepted(),
        0,
        "heads alone opened origin connections"
    );
    // A stream whose body starts goes through.
    let (resp, mut body) = waiting.pop().unwrap();
    body.send_data(Bytes::from_static(b"hello"), true).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(e.origin.hits_prefix("/upload/"), 1);
    // The others are answered 408 once timeouts.client_body has passed, and never reached
    // the origin.
    let started = Instant::now();
    for (resp, _body) in waiting.drain(..10) {
        let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(e.origin.hits_prefix("/upload/"), 1);
    // Meanwhile other clients are served.
    assert_eq!(e.get("/calm?size=10").await.status, 200);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_share_the_upstream_cap_and_get_503_over_it() {
    let e = Edge::start_cfg(&[], |c| {
        c.limits.max_fills = 2;
        c.timeouts.fill_queue = Duration::from_millis(200);
    })
    .await;
    let e = Arc::new(e);
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..4 {
        let e = e.clone();
        posts.spawn(async move {
            let pq = format!("/slow-post/{i}?delay_ms=1500");
            e.request(Method::POST, &pq, &[], b"x").await
        });
    }
    let mut statuses = Vec::new();
    while let Some(r) = posts.join_next().await {
        let r = r.unwrap();
        if r.status == 503 {
            assert_eq!(r.header("retry-after"), "1");
        }
        statuses.push(r.status.as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503, 503]);
    assert_eq!(e.origin.hits_prefix("/slow-post/"), 2);
    if let Ok(e) = Arc::try_unwrap(e) {
        e.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_one_connection_are_held_to_its_share() {
    let e = Edge::start_cfg(&[], |c| {
        c.limits.max_fills_per_connection = 2;
        c.timeouts.fill_queue = Duration::from_millis(200);
    })
    .await;
    // Four slow POSTs as streams of one h2 connection: two go upstream, two get 503.
    let client = support::h2_connect(e.addr()).await;
    let mut streams = Vec::new();
    for i in 0..4 {
        let req = Request::post(format!("http://{}/conn-post/{i}?delay_ms=1500", e.addr()))
            .body(())
            .unwrap();
        let mut c = client.clone().ready().await.unwrap();
        let (resp, mut body) = c.send_request(req, false).unwrap();
        body.send_data(bytes::Bytes::from_static(b"x"), true)
            .unwrap();
        streams.push(resp);
    }
    let mut statuses = Vec::new();
    for resp in streams {
        let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        statuses.push(resp.status().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503, 503]);
    assert_eq!(e.origin.hits_prefix("/conn-post/"), 2);
    // Another connection is not held to the first one's share.
    let r = e.request(Method::POST, "/conn-post/other", &[], b"x").await;
    assert_eq!(r.status, 200);
    e.shutdown().await;
}

/// A raw HTTP/1.1 origin that answers each request with how many chunks its chunked body
/// came in (or `length` for a Content-Length body).
async fn chunk_counting_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 65536];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let mut rest = buf.split_off(end + 4);
                    let mut chunks = 0u64;
                    if head.contains("transfer-encoding: chunked") {
                        loop {
                            // Chunk-size line, then that many bytes and CRLF.
                            while !rest.windows(2).any(|w| w == b"\r\n") {
                                match s.read(&mut tmp).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => rest.extend_from_slice(&tmp[..n]),
                                }
                            }
                            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
                            let size = usize::from_str_radix(
                                String::from_utf8_lossy(&rest[..nl]).trim(),
                                16,
                            )
                            .unwrap();
                            let need = nl + 2 + size + 2;
                            while rest.len() < need {
                                match s.read(&mut tmp).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => rest.extend_from_slice(&tmp[..n]),
                                }
                            }
                            rest.drain(..need);
                            if size == 0 {
                                break;
                            }
                            chunks += 1;
                        }
                    }
                    let body = format!("{chunks}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: no-store\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                    buf = rest;
                }
            });
        }
    });
    addr
}

fn chunked_post(pieces: usize, size: usize) -> Vec<u8> {
    let mut req =
        b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    let piece = vec![b'x'; size];
    for _ in 0..pieces {
        req.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        req.extend_from_slice(&piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_are_coalesced_and_tiny_pieces_refused() {
    let origin = chunk_counting_origin().await;
    let e = Edge::start_cfg(&[], |c| c.origin = Some(format!("http://{origin}"))).await;
    // 10 000 chunks of 20 bytes reach the origin as a handful of ~16 KiB writes.
    let out = raw(e.addr(), &chunked_post(10_000, 20)).await;
    assert_eq!(raw_status(&out), 200, "{out}");
    let chunks: u64 = out.rsplit("\r\n\r\n").next().unwrap().parse().unwrap();
    assert!(
        (13..=64).contains(&chunks),
        "{chunks} upstream chunks for 200 000 bytes"
    );
    // Pieces averaging one byte are refused once a thousand have come.
    let out = raw(e.addr(), &chunked_post(5_000, 1)).await;
    assert_eq!(raw_status(&out), 400, "{out}");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_heads_are_held_to_the_field_limit() {
    let e = Edge::start(&[]).await;
    let mut client = support::h2_connect(e.addr()).await;
    let authority = e.addr().to_string();
    let mut req = Request::get(format!("http://{authority}/many-fields"))
        .body(())
        .unwrap();
    for i in 0..1500 {
        req.headers_mut().append(
            http::HeaderName::from_bytes(format!("x-f{i}").as_bytes()).unwrap(),
            http::HeaderValue::from_static("v"),
        );
    }
    client = client.ready().await.unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // The edge's own answer: nothing was forwarded (an origin would refuse it too).
    assert_eq!(e.origin.connections_accepted(), 0);
    // At the limit (100 fields with :authority's Host counted by hyper as none) it goes through.
    let mut req = Request::get(format!("http://{authority}/some-fields"))
        .body(())
        .unwrap();
    for i in 0..90 {
        req.headers_mut().append(
            http::HeaderName::from_bytes(format!("x-f{i}").as_bytes()).unwrap(),
            http::HeaderValue::from_static("v"),
        );
    }
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(e.origin.hits_prefix("/many-fields"), 0);
    assert_eq!(e.origin.hits_prefix("/some-fields"), 1);
    // One field whose value alone is over `limits.max_request_head` (64 KiB): 431 as well.
    let mut req = Request::get(format!("http://{authority}/long-field"))
        .body(())
        .unwrap();
    req.headers_mut().insert(
        "x-long",
        http::HeaderValue::from_str(&"v".repeat(70 * 1024)).unwrap(),
    );
    client = client.ready().await.unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(e.origin.hits_prefix("/long-field"), 0);
    e.shutdown().await;
}

/// A keep-alive HTTP/1.1 connection that has completed one request.
async fn idle_keep_alive(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ka?size=10 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = support::read_h1_response(&mut s, false).await;
    assert_eq!(status, 200);
    s
}

async fn closed_soon(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_shared_limit_idle_keep_alive_connections_make_room() {
    let e = Edge::start_cfg(&["--admin-listen", "127.0.0.1:0"], |c| {
        c.limits.max_connections = 8;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(idle_keep_alive(e.addr()).await);
    }
    // The ninth client arrives on the other (TLS) listener: the limit is the node's, and an
    // idle connection is closed to answer it long before timeouts.client_idle (60 s).
    let cert = e.node.certificate.clone().unwrap();
    let tls = support::tls_client(&cert, false);
    let url = format!(
        "https://localhost:{}/new-client?size=10",
        e.tls_addr().port()
    );
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        support::send(
            &tls,
            Request::get(url)
                .body(http_body_util::Full::default())
                .unwrap(),
        ),
    )
    .await
    .expect("a new client is answered, not parked");
    assert_eq!(resp.status, 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = metrics(&e).await;
    assert!(counter(&text, "tiercel_client_made_room_closes_total") >= 1);
    // The oldest idle connection is the one that went.
    assert!(closed_soon(&mut idle[0], Duration::from_secs(2)).await);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_be_capped() {
    let e = Edge::start_cfg(&["--admin-listen", "127.0.0.1:0"], |c| {
        c.limits.max_connections_per_ip = 3;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(idle_keep_alive(e.addr()).await);
    }
    let mut fourth = TcpStream::connect(e.addr()).await.unwrap();
    assert!(closed_soon(&mut fourth, Duration::from_secs(2)).await);
    assert_eq!(
        counter(&metrics(&e).await, "tiercel_client_per_ip_refusals_total"),
        1
    );
    // Once one goes, the address may connect again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    idle_keep_alive(e.addr()).await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_spends_the_first_heads_time() {
    let e = Edge::start_cfg(&[], |c| {
        c.timeouts.client_header = Duration::from_secs(1);
    })
    .await;
    let cert = e.node.certificate.clone().unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(support::tls_config(&cert, &[b"http/1.1"])));
    let started = Instant::now();
    let tcp = TcpStream::connect(e.tls_addr()).await.unwrap();
    // A slow handshake, then silence: one deadline of 1 s from accept covers both.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("handshake in time");
    let mut b = [0u8; 64];
    let read = tokio::time::timeout(WAIT, tls.read(&mut b)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let closed_after = started.elapsed();
    assert!(
        closed_after < Duration::from_millis(1400),
        "closed after {closed_after:?}: the handshake and the head were timed one after the other"
    );
    e.shutdown().await;
}
