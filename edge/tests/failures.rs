//! Failure behaviour: unreachable or slow upstreams, malformed and oversized requests, broken
//! bodies. Never a panic, never a hang: every case ends with a status within the deadline.

mod support;

use std::time::{Duration, Instant};

use http::Request;
use http_body_util::{BodyExt, Full};
use support::*;
use tiercel_cluster::config::Role;
use tiercel_edge::node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_origin_is_502_and_timeouts_are_504() {
    init_logs();
    // Nothing listens on this port: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://127.0.0.1:{port}");
    let cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", &origin]);
    let n = node::start(Role::Edge, &cfg).await.unwrap();
    let url = format!("http://{}/x", n.listen.unwrap());
    let r = send(
        &h1_client(),
        Request::get(&url).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 502);
    assert!(
        String::from_utf8_lossy(&r.body).contains("refused"),
        "{:?}",
        r.body
    );
    assert!(
        r.cache_status().contains("fwd=uri-miss"),
        "{}",
        r.cache_status()
    );
    n.shutdown().await;

    let e = Edge::start(&["--first-byte-timeout", "1s", "--idle-timeout", "1s"]).await;
    let started = Instant::now();
    let hang = e.get("/f/hang?fail=hang").await;
    assert_eq!(hang.status, 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    let slow = e.get("/f/slow?delay_ms=3000").await;
    assert_eq!(slow.status, 504);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_breaks_is_not_stored() {
    let e = Edge::start(&["--idle-timeout", "1s"]).await;
    let pq = "/f/mid?fail=midbody&size=200000&cc=max-age%3D60";
    let resp = e
        .client
        .request(Request::get(e.url(pq)).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "headers were already on their way");
    let body = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .unwrap();
    assert!(
        body.is_err(),
        "the client sees the truncation instead of a short 200"
    );
    let again = e
        .client
        .request(Request::get(e.url(pq)).body(Full::default()).unwrap())
        .await
        .unwrap();
    drop(again);
    assert_eq!(
        e.origin.hits(pq),
        2,
        "nothing was stored from the broken body"
    );

    // A stalled body ends with an error after the idle timeout, not never.
    let stall = "/f/stall?size=300000&chunk=100000&chunk_ms=3000&cc=max-age%3D60";
    let resp = e
        .client
        .request(Request::get(e.url(stall)).body(Full::default()).unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let body = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .unwrap();
    assert!(body.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    e.shutdown().await;
}

/// `limits.max_request_head` holds exactly over HTTP/1.1, now that hyper's buffer is larger
/// than it: a head one byte past it is refused with 431 (and goes nowhere), one of exactly
/// the limit is served.
#[tokio::test]
async fn an_h1_head_past_the_configured_limit_is_refused() {
    let e = Edge::start_cfg(&[], |c| {
        c.limits.max_request_head = tiercel_cluster::config::ByteSize::kib(4);
    })
    .await;
    let head = |filler: usize| {
        format!(
            "GET /limit HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Fill: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };
    // A head of exactly the limit passes; one byte more is refused, as is a larger one.
    let fill_to = |total: usize| total - head(0).len();
    for (size, want) in [(4096, 200), (4097, 431), (6000, 431)] {
        let out = raw(e.addr(), head(fill_to(size)).as_bytes()).await;
        assert_eq!(
            raw_status(&out),
            want,
            "{size} bytes: {}",
            &out[..out.len().min(200)]
        );
    }
    assert_eq!(
        e.origin.hits("/limit"),
        1,
        "only the head under the limit went upstream"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests() {
    let e = Edge::start(&[]).await;
    let garbage = raw(e.addr(), b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(raw_status(&garbage), 400, "{garbage}");
    let bad_host = raw(e.addr(), b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n").await;
    assert_eq!(raw_status(&bad_host), 400, "{bad_host}");
    let two_hosts = raw(e.addr(), b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").await;
    assert_eq!(raw_status(&two_hosts), 400, "{two_hosts}");
    let no_host = raw(e.addr(), b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(raw_status(&no_host), 400, "{no_host}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let big = raw(e.addr(), big.as_bytes()).await;
    assert_eq!(raw_status(&big), 431, "{}", &big[..big.len().min(200)]);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let many = raw(e.addr(), many.as_bytes()).await;
    assert_eq!(raw_status(&many), 431);
    // The default `limits.max_headers` is 100 fields, Host included: 100 pass, 101 do not.
    // (OPTIONS with Max-Forwards: 0 is answered by the edge itself: the origin's own limit,
    // which the forwarding fields would push past, stays out of it.)
    for (fields, want) in [(100, 200), (101, 431)] {
        let mut head = String::from(
            "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\nMax-Forwards: 0\r\n",
        );
        for i in 3..fields {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
        head.push_str("\r\n");
        let answer = raw(e.addr(), head.as_bytes()).await;
        assert_eq!(raw_status(&answer), want, "{fields} fields: {answer}");
    }
    let connect = raw(
        e.addr(),
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&connect), 405, "{connect}");
    // A loop: the request already went through this CDN three times.
    let looped = e
        .get_with("/f/loop", &[("cdn-loop", "tiercel, tiercel, tiercel")])
        .await;
    assert_eq!(looped.status, 508);
    assert_eq!(e.origin.total_hits(), 0, "none of these reached the origin");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    // Headers that never finish: the header timeout ends the connection.
    let e = Edge::start_cfg(&[], |c| c.timeouts.client_header = Duration::from_secs(1)).await;
    let mut s = tokio::net::TcpStream::connect(e.addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "the edge closed the half-sent request within its header timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_section_over_h2_is_refused() {
    let e = Edge::start(&[]).await;
    let big = "a".repeat(100 * 1024);
    let req = Request::get(e.url("/f/h2big"))
        .header("x-big", big.as_str())
        .body(Full::default())
        .unwrap();
    let outcome = tokio::time::timeout(WAIT, h2c_client().request(req))
        .await
        .expect("no hang");
    match outcome {
        Ok(resp) => assert_eq!(resp.status(), 431),
        // h2 may also refuse the stream outright; what matters is that it is refused, quickly.
        Err(err) => assert!(!err.is_connect(), "refused, not unreachable: {err}"),
    }
    assert_eq!(e.origin.total_hits(), 0);
    e.shutdown().await;
}
