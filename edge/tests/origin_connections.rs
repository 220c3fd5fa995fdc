//! How a node keeps its HTTP/1.1 connections to the origin: one connection serves request
//! after request, concurrent requests reuse the connections the earlier ones opened, and an
//! origin that closes a connection between responses (as at its keep-alive timeout) costs no
//! request. The origin here is a few lines over a TCP socket, so the test sees every
//! connection it accepts and decides when each one closes.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::{config_from_flags, h1_client, send};
use tiercel_cluster::config::Role;
use tiercel_edge::node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the test origin treats a connection after its first response.
#[derive(Clone, Copy, PartialEq)]
enum AfterFirst {
    /// Keeps it alive and answers every request.
    KeepAlive,
    /// Closes it at once, without saying so (no `Connection: close`), like an origin whose
    /// keep-alive timeout just expired.
    Close,
    /// Reads the next request and closes it without an answer: the request was lost as the
    /// origin's keep-alive timeout and the request crossed.
    LoseTheNext,
}

/// An HTTP/1.1 origin answering requests with their path as a cacheable body and the number
/// of the connection they came on in `X-Conn`, after 100 ms for paths under `/slow`; after a
/// connection's first response it does what `after` says. Counts connections accepted.
async fn raw_origin(after: AfterFirst) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let conn = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                loop {
                    let Some(end) = head_end(&buf) else {
                        let mut chunk = [0u8; 4096];
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    if answered == 1 && after == AfterFirst::LoseTheNext {
                        return;
                    }
                    if path.starts_with("/slow") {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=60\r\nX-Conn: {conn}\r\n\r\n{path}",
                        path.len()
                    );
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    answered += 1;
                    if after == AfterFirst::Close {
                        let _ = tcp.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

async fn edge(origin: SocketAddr) -> node::RunningNode {
    support::init_logs();
    let url = format!("http://{origin}");
    let cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", url.as_str()]);
    node::start(Role::Edge, &cfg).await.expect("edge starts")
}

/// Asks `path` (a miss) and returns the origin connection that served it.
async fn miss(addr: SocketAddr, path: &str) -> String {
    let resp = send(
        &h1_client(),
        Request::get(format!("http://{addr}{path}"))
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status, 200, "{path}");
    assert_eq!(resp.body, path.as_bytes(), "{path}");
    resp.header("x-conn").to_string()
}

/// Asks every path at once; returns the origin connections that served them.
async fn misses_at_once(addr: SocketAddr, paths: Vec<String>) -> Vec<String> {
    let asked: Vec<_> = paths
        .into_iter()
        .map(|path| tokio::spawn(async move { miss(addr, &path).await }))
        .collect();
    let mut served = Vec::new();
    for a in asked {
        served.push(a.await.unwrap());
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_miss_after_miss() {
    let (origin, accepted) = raw_origin(AfterFirst::KeepAlive).await;
    let node = edge(origin).await;
    let addr = node.listen.unwrap();
    for i in 0..30 {
        miss(addr, &format!("/seq-{i}")).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_reuse_the_connections_earlier_ones_opened() {
    let (origin, accepted) = raw_origin(AfterFirst::KeepAlive).await;
    let node = edge(origin).await;
    let addr = node.listen.unwrap();
    // Slow misses, 16 at a time: the first round opens 16 connections, the later rounds
    // find them idle and open none.
    for round in 0..4 {
        let paths = (0..16).map(|i| format!("/slow-{round}-{i}")).collect();
        misses_at_once(addr, paths).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 16, "after round {round}");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_closing_between_responses_costs_no_request() {
    let (origin, accepted) = raw_origin(AfterFirst::Close).await;
    let node = edge(origin).await;
    let addr = node.listen.unwrap();
    for i in 0..60 {
        miss(addr, &format!("/closing-{i}")).await;
        // Most requests go out at once, racing the origin's close: some find the connection
        // closed already (a new one is opened), some go out on it as it closes (sent again on
        // a new one); every fifth waits until the close has surely arrived.
        if i % 5 == 4 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    // One connection per request either way: the origin answered each once.
    assert_eq!(accepted.load(Ordering::SeqCst), 60);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_burst_traffic_stays_on_the_warmest_connection() {
    let (origin, accepted) = raw_origin(AfterFirst::KeepAlive).await;
    let node = edge(origin).await;
    let addr = node.listen.unwrap();
    // Eight slow misses at once open eight connections.
    misses_at_once(addr, (0..8).map(|i| format!("/slow-{i}")).collect()).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 8);
    // One at a time afterwards: the most recently used idle connection takes each, so the
    // other seven stay idle and age out instead of taking turns.
    let mut used = std::collections::BTreeSet::new();
    for i in 0..12 {
        used.insert(miss(addr, &format!("/after-{i}")).await);
    }
    assert_eq!(used.len(), 1, "connections taking turns: {used:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 8);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_lost_on_a_closing_connection_goes_again_on_a_new_one() {
    let (origin, accepted) = raw_origin(AfterFirst::LoseTheNext).await;
    let node = edge(origin).await;
    let addr = node.listen.unwrap();
    // Each miss after the first goes out on the previous one's connection, which takes it
    // and closes unanswered; a GET without a body may go again, on a new connection.
    for i in 0..10 {
        let conn = miss(addr, &format!("/lost-{i}")).await;
        assert_eq!(conn, i.to_string(), "miss {i} answered on a new connection");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);
    node.shutdown().await;
}
