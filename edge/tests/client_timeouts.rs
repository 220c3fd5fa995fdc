//! Client-side timeouts on real sockets: an idle keep-alive connection lives for
//! `timeouts.client_idle` (not the shorter header timeout), a request head that starts and
//! stalls is cut at `timeouts.client_header`, an idle h2 connection is closed with GOAWAY, and a
//! request in flight is never cut by either.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(1500);

async fn edge() -> Edge {
    Edge::start_cfg(&["--admin-listen", "127.0.0.1:0"], |c| {
        c.timeouts.client_header = HEADER;
        c.timeouts.client_idle = IDLE;
    })
    .await
}

/// How long until the server closes `s` (reading and discarding anything it sends).
async fn time_to_close(s: &mut TcpStream) -> Duration {
    read_until_closed(s).await.0
}

/// Reads `s` until the server closes it: how long that took and how many bytes came first.
async fn read_until_closed(s: &mut TcpStream) -> (Duration, usize) {
    let started = Instant::now();
    let mut got = 0;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), got),
            Ok(Ok(n)) => got += n,
            Err(_) => {
                panic!("the server did not close the connection within {WAIT:?} ({got} bytes read)")
            }
        }
    }
}

/// An h2c connection with `stream_window` as the initial stream window, its driver spawned.
async fn h2_connect(
    e: &Edge,
    stream_window: u32,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(e.addr()).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(stream_window)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2c handshake");
    let driver = tokio::spawn(connection);
    (client.ready().await.expect("h2 ready"), driver)
}

/// Asserts that a close came no earlier than `timeout` (less a little clock slack) and before
/// `latest`.
fn assert_closed_within(what: &str, closed_after: Duration, timeout: Duration, latest: Duration) {
    assert!(
        closed_after >= timeout - Duration::from_millis(100) && closed_after < latest,
        "{what}: closed after {closed_after:?}, timeout {timeout:?}, latest {latest:?}"
    );
}

async fn get(s: &mut TcpStream, path: &str) -> (u16, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: cdn.example\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("request written");
    let (status, _, body) = read_h1_response(s, false).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_keep_alive_lives_for_the_idle_timeout_not_the_header_timeout() {
    let e = edge().await;
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    assert_eq!(get(&mut s, "/t/a?size=100").await.0, 200);
    // Quiet for twice the header timeout: still open, and serves the next request.
    tokio::time::sleep(HEADER * 2).await;
    assert_eq!(get(&mut s, "/t/a?size=100").await.0, 200);
    // Then quiet for good: closed after the idle timeout, not before.
    let closed_after = time_to_close(&mut s).await;
    assert_closed_within("idle h1 keep-alive", closed_after, IDLE, IDLE * 3);
    e.wait_for_metric("tiercel_client_idle_closes_total", "1")
        .await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_head_is_cut_at_the_header_timeout_fresh_or_after_keep_alive() {
    let e = edge().await;
    // A fresh connection that sends nothing.
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    let closed_after = time_to_close(&mut s).await;
    assert_closed_within("fresh silent connection", closed_after, HEADER, IDLE);

    // After a served request, half a head, then nothing.
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    assert_eq!(get(&mut s, "/t/b?size=10").await.0, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(b"GET /t/b HTTP/1.1\r\nHost: cdn")
        .await
        .unwrap();
    let closed_after = time_to_close(&mut s).await;
    assert_closed_within("stalled head", closed_after, HEADER, IDLE);
    e.wait_for_metric("tiercel_client_header_timeouts_total", "2")
        .await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_preface_with_no_request_is_cut_at_the_header_timeout() {
    let e = edge().await;
    // The h2 preface and an empty SETTINGS frame, then nothing: one deadline from accept to
    // the first request, whatever the protocol, not the idle timeout.
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let closed_after = time_to_close(&mut s).await;
    assert_closed_within("h2 preface, no request", closed_after, HEADER, IDLE);
    e.wait_for_metric("tiercel_client_header_timeouts_total", "1")
        .await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_outlasts_both_timeouts() {
    let e = edge().await;
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    // The origin answers after twice the idle timeout.
    let slow = "/t/slow?size=5000&delay_ms=3000";
    let (status, body) = get(&mut s, slow).await;
    assert_eq!(status, 200);
    assert_eq!(
        Bytes::from(body),
        tiercel_testbed::origin::expected_body(slow, 5000)
    );
    assert_eq!(e.origin.hits(slow), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2_connections_get_goaway_at_the_idle_timeout_busy_ones_do_not() {
    let e = edge().await;
    let (mut client, driver) = h2_connect(&e, 65_535).await;

    // One stream in flight for twice the idle timeout: not cut.
    let slow = "/t/h2slow?size=3000&delay_ms=3000";
    let req = http::Request::get(format!("http://{}{slow}", e.addr()))
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).expect("stream opens");
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("answer in time")
        .expect("a response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, body.data())
        .await
        .expect("body in time")
    {
        let chunk = chunk.expect("data frame");
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(
        Bytes::from(got),
        tiercel_testbed::origin::expected_body(slow, 3000)
    );

    // Now idle: the server ends the connection (GOAWAY, then close) after the idle timeout.
    let idle_from = Instant::now();
    let ended = tokio::time::timeout(WAIT, driver)
        .await
        .expect("the idle h2 connection is closed in time")
        .expect("driver task");
    let closed_after = idle_from.elapsed();
    assert!(ended.is_ok(), "a graceful close, not an error: {ended:?}");
    assert_closed_within("idle h2", closed_after, IDLE, IDLE * 3);
    e.wait_for_metric("tiercel_client_idle_closes_total", "1")
        .await;
    e.wait_for_metric("tiercel_client_connections_open", "0")
        .await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_after_the_idle_timeout() {
    let e = edge().await;
    // Far more than loopback socket buffers hold, so the edge's writes block.
    let big = "/t/big?cc=max-age%3D600&size=48000000";
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    // The Host `e.get` sends too, so both requests name the same object.
    let host = e.addr();
    s.write_all(format!("GET {big} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Not reading for well over the idle timeout.
    tokio::time::sleep(IDLE * 3).await;
    // Then everything the kernel buffered arrives, and the connection ends early.
    let (_, got) = read_until_closed(&mut s).await;
    assert!(
        got < 48_000_000,
        "the response was cut short ({got} bytes), not delivered in full"
    );
    // The fill itself went on for others: the object is cached whole.
    let r = e.get(big).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 48_000_000);
    assert_eq!(e.origin.hits(big), 1, "{}", r.header("cache-status"));
    e.wait_for_metric("tiercel_client_send_timeouts_total", "1")
        .await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_that_withholds_window_updates_is_dropped_after_the_idle_timeout() {
    let e = edge().await;
    let big = "/t/h2stall?cc=max-age%3D600&size=2000000";
    // A 16 KiB stream window that is never given back: the response stalls in flow control,
    // while the socket itself stays writable and the connection answers pings.
    let (mut client, driver) = h2_connect(&e, 16 * 1024).await;
    let req = http::Request::get(format!("http://{}{big}", e.addr()))
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).expect("stream opens");
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("head in time")
        .expect("a response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = 0;
    let stalled_from = Instant::now();
    // Read what the window allows, never releasing capacity, until the server gives up.
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(WAIT, body.data()).await {
        got += chunk.len();
    }
    let ended = tokio::time::timeout(WAIT, driver)
        .await
        .expect("the stalled h2 connection is closed in time");
    let closed_after = stalled_from.elapsed();
    assert!(got <= 16 * 1024, "no more than the window: {got}");
    assert_closed_within(
        &format!("h2 flow-control stall ({ended:?})"),
        closed_after,
        IDLE,
        IDLE * 4,
    );
    e.wait_for_metric("tiercel_client_send_timeouts_total", "1")
        .await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_connections_are_bounded_by_the_header_timeout_too() {
    let e = edge().await;
    let admin = e.node.admin_listen.expect("admin listener");
    // Silent from the start.
    let mut s = TcpStream::connect(admin).await.unwrap();
    let closed_after = time_to_close(&mut s).await;
    assert_closed_within("silent admin connection", closed_after, HEADER, IDLE);
    // Idle after a scrape.
    let mut s = TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (status, _, body) = read_h1_response(&mut s, false).await;
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));
    let closed_after = time_to_close(&mut s).await;
    assert_closed_within("idle admin connection", closed_after, HEADER, IDLE);
    e.shutdown().await;
}
