//! HTTP/3 against the real edge: a quinn + h3 client over real QUIC on loopback, trusting the
//! edge's self-signed certificate. The same handler as h1 and h2: hits, HEAD, ranges, a large
//! streamed body byte for byte, many streams on one connection, one origin fetch for a cold
//! object asked for over h1, h2 and h3 at once, Alt-Svc on TCP, and a graceful shutdown.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::Full;
use support::*;
use tiercel_testbed::origin::expected_body;

type H3Send = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// An HTTP/3 connection to the edge, its driver polled in its own task.
async fn h3_connect(e: &Edge) -> (H3Send, quinn::Endpoint) {
    let endpoint = h3_endpoint(e, false);
    let addr = e.node.quic_listen.expect("HTTP/3 on the TLS port");
    let conn = tokio::time::timeout(WAIT, endpoint.connect(addr, "localhost").unwrap())
        .await
        .expect("handshake in time")
        .expect("QUIC handshake");
    (h3_over(conn).await, endpoint)
}

/// A client endpoint trusting the edge's certificate. Its connections share one TLS session
/// store, so a second connection can resume the first's session (and send 0-RTT data when
/// `early_data` is set).
fn h3_endpoint(e: &Edge, early_data: bool) -> quinn::Endpoint {
    let cert = e.node.certificate.clone().expect("a TLS listener");
    let mut tls = tls_config(&cert, &[b"h3"]);
    tls.enable_early_data = early_data;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("TLS 1.3");
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// HTTP/3 over a QUIC connection, its driver polled in its own task.
async fn h3_over(conn: quinn::Connection) -> H3Send {
    let (mut driver, send) =
        tokio::time::timeout(WAIT, h3::client::new(h3_quinn::Connection::new(conn)))
            .await
            .expect("h3 set up in time")
            .expect("h3 connection");
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    send
}

/// One request over HTTP/3: the response head and the whole body.
async fn h3_request(send: &mut H3Send, req: Request<()>) -> (Response<()>, Bytes) {
    tokio::time::timeout(WAIT, async {
        let mut stream = send.send_request(req).await.expect("request sent");
        stream.finish().await.expect("request finished");
        let resp = stream.recv_response().await.expect("response head");
        let mut body = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await.expect("body data") {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        (resp, body.freeze())
    })
    .await
    .expect("answered in time")
}

fn get(e: &Edge, pq: &str, headers: &[(&str, &str)]) -> Request<()> {
    let port = e.node.tls_listen.unwrap().port();
    let mut b = Request::get(format!("https://localhost:{port}{pq}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn cache_status(resp: &Response<()>) -> String {
    resp.headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_head_and_ranges_are_served_from_one_cache() {
    let e = Edge::start(&[]).await;
    let (mut h3, _ep) = h3_connect(&e).await;
    let pq = "/h3/a?size=5000&cc=max-age%3D60";
    let full = expected_body(pq, 5000);

    let (resp, body) = h3_request(&mut h3, get(&e, pq, &[])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_3);
    assert_eq!(body, full);
    assert!(
        cache_status(&resp).contains("stored"),
        "{}",
        cache_status(&resp)
    );

    // The same object over HTTP/1.1 on the TLS port (the same https key): a hit on what
    // HTTP/3 stored.
    let cert = e.node.certificate.clone().unwrap();
    let port = e.node.tls_listen.unwrap().port();
    let r = send(
        &tls_client(&cert, false),
        Request::get(format!("https://localhost:{port}{pq}"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(e.origin.hits(pq), 1);

    let (resp, body) = h3_request(&mut h3, get(&e, pq, &[])).await;
    assert!(
        cache_status(&resp).contains("hit"),
        "{}",
        cache_status(&resp)
    );
    assert_eq!(body, full);

    let head = Request::head(format!("https://localhost:{port}{pq}"))
        .body(())
        .unwrap();
    let (resp, body) = h3_request(&mut h3, head).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "5000");
    assert!(body.is_empty());

    let (resp, body) = h3_request(&mut h3, get(&e, pq, &[("range", "bytes=100-199")])).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 100-199/5000");
    assert_eq!(body, full.slice(100..200));
    assert_eq!(e.origin.hits(pq), 1);
    // Metrics tell the protocols apart.
    let text = e.node.metrics_text();
    assert!(
        text.contains("tiercel_requests_total{protocol=\"h3\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("tiercel_requests_total{protocol=\"http/1.1\"} 1"),
        "{text}"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_streams_byte_for_byte() {
    let e = Edge::start(&[]).await;
    let (mut h3, _ep) = h3_connect(&e).await;
    // 100 MiB: a slice, then chunks fetched as the body goes.
    let size = 100 << 20;
    let pq = format!("/h3/big?size={size}&ranges=1&etag=v1&cc=max-age%3D60");
    let (resp, body) = h3_request(&mut h3, get(&e, &pq, &[])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body.len(), size);
    assert!(body == expected_body(&pq, size), "the body, byte for byte");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_streams_on_one_connection() {
    let e = Edge::start(&[]).await;
    let (h3, _ep) = h3_connect(&e).await;
    let e = Arc::new(e);
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..100 {
        let mut h3 = h3.clone();
        let e = e.clone();
        streams.spawn(async move {
            // The origin takes 1 s: every stream arrives while its object's fill is on.
            let pq = format!(
                "/h3/many/{}?size=2000&delay_ms=1000&cc=max-age%3D60",
                i % 10
            );
            let (resp, body) = h3_request(&mut h3, get(&e, &pq, &[])).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(body, expected_body(&pq, 2000));
        });
    }
    while let Some(r) = streams.join_next().await {
        r.unwrap();
    }
    // Ten objects, each fetched once however many streams asked at the same time.
    assert_eq!(e.origin.hits_prefix("/h3/many/"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_object_asked_for_over_h1_h2_and_h3_at_once_is_fetched_once() {
    let e = Edge::start(&[]).await;
    let (h3, _ep) = h3_connect(&e).await;
    let cert = e.node.certificate.clone().unwrap();
    let port = e.node.tls_listen.unwrap().port();
    // The origin takes 300 ms: every client arrives while the one fetch is in flight.
    let pq = "/h3/cold?size=100000&delay_ms=300&cc=max-age%3D60";
    let full = expected_body(pq, 100_000);
    let url = format!("https://localhost:{port}{pq}");
    let h1 = tls_client(&cert, false);
    let h2 = tls_client(&cert, true);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..9 {
        let (h1, h2, mut h3, url) = (h1.clone(), h2.clone(), h3.clone(), url.clone());
        let full = full.clone();
        let e_url = get(&e, pq, &[]);
        clients.spawn(async move {
            let body = match i % 3 {
                0 => {
                    send(&h1, Request::get(&url).body(Full::default()).unwrap())
                        .await
                        .body
                }
                1 => {
                    send(&h2, Request::get(&url).body(Full::default()).unwrap())
                        .await
                        .body
                }
                _ => h3_request(&mut h3, e_url).await.1,
            };
            assert!(body == full);
        });
    }
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    assert_eq!(e.origin.hits(pq), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_responses_over_tls_advertise_h3_and_plain_ones_do_not() {
    let e = Edge::start(&[]).await;
    let cert = e.node.certificate.clone().unwrap();
    let port = e.node.tls_listen.unwrap().port();
    assert_eq!(
        e.node.quic_listen.unwrap().port(),
        port,
        "the same port, over UDP"
    );
    let url = format!("https://localhost:{port}/alt?size=10");
    for h2 in [false, true] {
        let r = send(
            &tls_client(&cert, h2),
            Request::get(&url).body(Full::default()).unwrap(),
        )
        .await;
        assert_eq!(
            r.header("alt-svc"),
            format!("h3=\":{port}\"; ma=86400"),
            "h2: {h2}"
        );
    }
    let plain = e.get("/alt?size=10").await;
    assert!(plain.headers.get("alt-svc").is_none());
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quic_there_is_no_h3_and_no_alt_svc() {
    let e = Edge::start_cfg(&[], |c| c.quic.enabled = false).await;
    assert!(e.node.quic_listen.is_none());
    let cert = e.node.certificate.clone().unwrap();
    let port = e.node.tls_listen.unwrap().port();
    let r = send(
        &tls_client(&cert, false),
        Request::get(format!("https://localhost:{port}/alt?size=10"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert!(r.headers.get("alt-svc").is_none());
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_when_the_node_shuts_down() {
    let e = Edge::start(&[]).await;
    let (mut h3, _ep) = h3_connect(&e).await;
    let pq = "/h3/slow?size=3000&delay_ms=500&cc=max-age%3D60";
    let req = get(&e, pq, &[]);
    let in_flight = tokio::spawn(async move { h3_request(&mut h3, req).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let origin_hits = e.origin.hits(pq);
    assert_eq!(origin_hits, 1, "the request reached the origin");
    let shutdown = tokio::spawn(e.node.shutdown());
    let (resp, body) = in_flight.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body, expected_body(pq, 3000));
    tokio::time::timeout(WAIT, shutdown)
        .await
        .expect("the node stops once its requests are done")
        .unwrap();
}

/// One GET by aioquic (an independent HTTP/3 implementation, from PyPI): status, header
/// fields and body.
async fn aioquic_get(e: &Edge, pq: &str, headers: &[&str]) -> (u16, Vec<(String, String)>, Bytes) {
    let (v, body) = aioquic(e, pq, headers, &[]).await;
    let status = v["status"].as_u64().unwrap() as u16;
    let fields = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (status, fields, body)
}

/// Runs the aioquic client: its JSON report and the body it wrote.
async fn aioquic(
    e: &Edge,
    pq: &str,
    headers: &[&str],
    extra: &[&str],
) -> (serde_json::Value, Bytes) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("edge.der");
    std::fs::write(&ca, e.node.certificate.clone().unwrap()).unwrap();
    let out = dir.path().join("body");
    let addr = e.node.quic_listen.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/aioquic_get.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script)
        .arg("--ca")
        .arg(&ca)
        .arg("--out")
        .arg(&out)
        .args(["--server-name", "localhost"]);
    for h in headers {
        cmd.args(["--header", h]);
    }
    cmd.args(extra);
    cmd.arg(format!("https://{addr}{pq}"));
    let output = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("aioquic answers within 60 s")
        .expect("python3 runs (.ci/run installs aioquic)");
    assert!(
        output.status.success(),
        "aioquic failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    let body = Bytes::from(std::fs::read(&out).unwrap_or_default());
    (v, body)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_client_aioquic_gets_the_same_bytes_and_headers() {
    let e = Edge::start(&[]).await;
    let pq = "/h3/interop?size=300000&cc=max-age%3D60";
    let full = expected_body(pq, 300_000);
    let (status, fields, body) = aioquic_get(&e, pq, &[]).await;
    assert_eq!(status, 200);
    assert!(body == full, "the body, byte for byte");
    assert_eq!(field(&fields, "content-length"), "300000");
    assert!(
        field(&fields, "cache-status").contains("stored"),
        "{fields:?}"
    );
    let (status, fields, body) = aioquic_get(&e, pq, &[]).await;
    assert_eq!(status, 200);
    assert!(field(&fields, "cache-status").contains("hit"), "{fields:?}");
    assert!(body == full);
    let (status, fields, body) = aioquic_get(&e, pq, &["range:bytes=1000-1999"]).await;
    assert_eq!(status, 206);
    assert_eq!(field(&fields, "content-range"), "bytes 1000-1999/300000");
    assert_eq!(body, full.slice(1000..2000));
    assert_eq!(e.origin.hits(pq), 1);
    e.shutdown().await;
}

/// H3_MESSAGE_ERROR (RFC 9114 §8.1).
const H3_MESSAGE_ERROR: u64 = 0x10e;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_reset_with_h3_message_error_and_never_forwarded() {
    let e = Edge::start(&[]).await;
    let authority = format!("localhost:{}", e.node.tls_listen.unwrap().port());
    let auth = format!(":authority:{authority}");
    let vectors: Vec<(&str, Vec<String>, Option<&str>)> = vec![
        (
            "connection-specific field",
            vec![
                ":method:GET".into(),
                ":scheme:https".into(),
                auth.clone(),
                ":path:/h3/bad/conn".into(),
                "connection:keep-alive".into(),
            ],
            None,
        ),
        (
            "transfer-encoding",
            vec![
                ":method:GET".into(),
                ":scheme:https".into(),
                auth.clone(),
                ":path:/h3/bad/te".into(),
                "transfer-encoding:chunked".into(),
            ],
            None,
        ),
        (
            "te other than trailers",
            vec![
                ":method:GET".into(),
                ":scheme:https".into(),
                auth.clone(),
                ":path:/h3/bad/te2".into(),
                "te:gzip".into(),
            ],
            None,
        ),
        (
            "no :path",
            vec![":method:GET".into(), ":scheme:https".into(), auth.clone()],
            None,
        ),
        (
            "no :method",
            vec![
                ":scheme:https".into(),
                auth.clone(),
                ":path:/h3/bad/nomethod".into(),
            ],
            None,
        ),
        (
            "content-length longer than the DATA",
            vec![
                ":method:POST".into(),
                ":scheme:https".into(),
                auth.clone(),
                ":path:/h3/bad/short".into(),
                "content-length:10".into(),
            ],
            Some("hello"),
        ),
        (
            "content-length shorter than the DATA",
            vec![
                ":method:POST".into(),
                ":scheme:https".into(),
                auth.clone(),
                ":path:/h3/bad/long".into(),
                "content-length:2".into(),
            ],
            Some("hello"),
        ),
    ];
    for (what, fields, data) in vectors {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let mut extra = vec!["--raw"];
        if let Some(d) = data {
            extra.extend(["--data", d]);
        }
        let (v, _) = aioquic(&e, "/", &fields, &extra).await;
        assert_eq!(v["reset"].as_u64(), Some(H3_MESSAGE_ERROR), "{what}: {v}");
    }
    // The well-formed request still works on a fresh connection.
    let (status, _, _) = aioquic_get(&e, "/h3/bad/fine?size=10", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        e.origin.hits_prefix("/h3/bad/"),
        1,
        "only the well-formed one was forwarded"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_connections_at_once_each_proving_its_address_by_retry() {
    // `always`: every new client goes through a Retry round trip first (as under load).
    let e = Edge::start_cfg(&[], |c| c.quic.address_validation = "always".into()).await;
    let e = Arc::new(e);
    // The origin takes 1 s: all fifty handshakes (each with its Retry) and requests arrive
    // while the one fetch is in flight, even on a loaded CI machine.
    let pq = "/h3/fifty?size=20000&delay_ms=1000&cc=max-age%3D60";
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let e = e.clone();
        clients.spawn(async move {
            let (mut h3, _ep) = h3_connect(&e).await;
            let (resp, body) = h3_request(&mut h3, get(&e, pq, &[])).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(body, expected_body(pq, 20_000));
        });
    }
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    assert_eq!(e.origin.hits(pq), 1, "fifty connections, one fetch");
    // An independent client handles the Retry too.
    let (status, _, body) = aioquic_get(&e, pq, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, expected_body(pq, 20_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_stalled_http3_clients_are_let_go() {
    let idle = Duration::from_millis(1500);
    let e = Edge::start_cfg(&[], |c| {
        c.timeouts.client_idle = idle;
        c.timeouts.client_header = Duration::from_millis(800);
    })
    .await;
    // A connection that asks for nothing: closed after the header timeout.
    let (_quiet, ep1) = h3_connect(&e).await;
    // One that asks for 16 MiB and never reads: its response stalls on flow control and
    // the connection is dropped after the idle timeout (the client's window is ~1 MiB).
    let (mut stalled, ep2) = h3_connect(&e).await;
    let pq = "/h3/stall?size=16777216&cc=max-age%3D60";
    let mut stream = stalled.send_request(get(&e, pq, &[])).await.unwrap();
    stream.finish().await.unwrap();
    let resp = tokio::time::timeout(WAIT, stream.recv_response())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    for ep in [&ep1, &ep2] {
        tokio::time::timeout(WAIT, ep.wait_idle())
            .await
            .expect("the edge closed the connection");
    }
    let took = started.elapsed();
    assert!(
        took >= idle - Duration::from_millis(200),
        "closed after {took:?}"
    );
    let text = e.node.metrics_text();
    assert!(
        text.contains("tiercel_client_header_timeouts_total 1"),
        "{text}"
    );
    assert!(
        text.contains("tiercel_client_send_timeouts_total 1"),
        "{text}"
    );
    // The fill went on without the client: the object is stored whole.
    let deadline = std::time::Instant::now() + WAIT;
    while e.node.engine.fills_in_flight() > 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut h3, _ep) = h3_connect(&e).await;
    let (resp, body) = h3_request(&mut h3, get(&e, pq, &[])).await;
    assert!(
        cache_status(&resp).contains("hit"),
        "{}",
        cache_status(&resp)
    );
    assert_eq!(body.len(), 16 << 20);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_connections_share_the_node_connection_limit() {
    // Four places: the two TCP accept loops each keep one for their next client, so two
    // QUIC connections fill the node.
    let e = Edge::start_cfg(&[], |c| c.limits.max_connections = 4).await;
    let pq = "/h3/limit?size=100&cc=max-age%3D60";
    // Two connections, each idle after a request: the node is at its limit.
    let (mut a, _ea) = h3_connect(&e).await;
    assert_eq!(h3_request(&mut a, get(&e, pq, &[])).await.0.status(), 200);
    let (mut b, _eb) = h3_connect(&e).await;
    assert_eq!(h3_request(&mut b, get(&e, pq, &[])).await.0.status(), 200);
    // A third is served: an idle one was closed to make room.
    let (mut c, _ec) = h3_connect(&e).await;
    assert_eq!(h3_request(&mut c, get(&e, pq, &[])).await.0.status(), 200);
    let text = e.node.metrics_text();
    assert!(
        !text.contains("tiercel_client_made_room_closes_total 0"),
        "{text}"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_rtt_serves_hits_at_once_refuses_unsafe_methods_and_waits_to_go_upstream() {
    let e = Edge::start_cfg(&[], |c| c.quic.early_data = true).await;
    let endpoint = h3_endpoint(&e, true);
    let addr = e.node.quic_listen.unwrap();
    // Small: before the client's address is validated the edge may send only three times what
    // it received (RFC 9000 §8.1), and a larger answer would wait a round trip for credit.
    let hot = "/0rtt/hot?size=200&cc=max-age%3D60";
    // A first connection stores the object and leaves the client a session ticket.
    {
        let conn = tokio::time::timeout(WAIT, endpoint.connect(addr, "localhost").unwrap())
            .await
            .expect("handshake in time")
            .expect("QUIC handshake");
        let mut h3 = h3_over(conn.clone()).await;
        let (resp, _) = h3_request(&mut h3, get(&e, hot, &[])).await;
        assert_eq!(resp.status(), 200);
        conn.close(0u32.into(), b"done");
    }
    // The second resumes through a relay with a 400 ms round trip, its requests sent in
    // 0-RTT: they reach the edge 200 ms in, and the handshake completes there at 600 ms.
    const ONE_WAY: Duration = Duration::from_millis(200);
    let relay = tiercel_testbed::udp_delay::UdpDelay::start(addr, ONE_WAY)
        .await
        .unwrap();
    let connecting = endpoint.connect(relay.addr(), "localhost").unwrap();
    let (conn, accepted) = connecting
        .into_0rtt()
        .unwrap_or_else(|_| panic!("no session ticket from the first connection"));
    let started = std::time::Instant::now();
    let wall = std::time::SystemTime::now();
    let mut h3 = h3_over(conn).await;
    let port = e.node.tls_listen.unwrap().port();
    let post = Request::post(format!("https://localhost:{port}/0rtt/post"))
        .body(())
        .unwrap();
    let cold = "/0rtt/cold?size=2000&cc=max-age%3D60";
    let (mut a, mut b, mut c) = (h3.clone(), h3.clone(), h3.clone());
    let timed = |resp: (Response<()>, Bytes)| (resp, started.elapsed());
    let (hit, refused, miss) = tokio::join!(
        async { timed(h3_request(&mut a, get(&e, hot, &[])).await) },
        async { timed(h3_request(&mut b, post).await) },
        async { timed(h3_request(&mut c, get(&e, cold, &[])).await) },
    );
    assert!(
        tokio::time::timeout(WAIT, accepted).await.unwrap(),
        "the edge accepted 0-RTT"
    );

    // The stored object is served from early data, before the handshake completes.
    let ((resp, body), hit_at) = hit;
    assert_eq!(resp.status(), 200);
    assert!(
        cache_status(&resp).contains("hit"),
        "{}",
        cache_status(&resp)
    );
    assert_eq!(body, expected_body(hot, 200));
    // An unsafe method in early data may be a replay: 425, and nothing forwarded.
    let ((resp, _), _) = refused;
    assert_eq!(resp.status(), 425);
    assert_eq!(e.origin.hits("/0rtt/post"), 0);
    // A miss goes upstream only once the handshake has completed (600 ms in), never on what
    // may be a replay (it would be there at 200 ms).
    let ((resp, body), miss_at) = miss;
    assert_eq!(resp.status(), 200);
    assert_eq!(body, expected_body(cold, 2000));
    let asked = e
        .origin
        .requests()
        .into_iter()
        .find(|r| r.uri.path() == "/0rtt/cold")
        .expect("the miss was fetched");
    let asked_after = asked.received_at.duration_since(wall).unwrap_or_default();
    assert!(
        asked_after >= Duration::from_millis(500),
        "the origin was asked {asked_after:?} in, before the handshake completed"
    );
    assert!(
        miss_at >= hit_at + Duration::from_millis(250),
        "hit at {hit_at:?}, miss at {miss_at:?}: the hit waited for the handshake"
    );
    let text = e.node.metrics_text();
    assert_eq!(
        metric(&text, "tiercel_early_data_requests_total").as_deref(),
        Some("3"),
        "{text}"
    );
    assert_eq!(
        metric(&text, "tiercel_too_early_total").as_deref(),
        Some("1"),
        "{text}"
    );
    // After the handshake the same request goes through.
    let post = Request::post(format!("https://localhost:{port}/0rtt/post"))
        .body(())
        .unwrap();
    let (resp, _) = h3_request(&mut h3, post).await;
    assert_ne!(resp.status(), 425);
    assert_eq!(e.origin.hits("/0rtt/post"), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_early_data_configured_0rtt_is_declined_and_requests_still_served() {
    let e = Edge::start(&[]).await;
    let endpoint = h3_endpoint(&e, true);
    let addr = e.node.quic_listen.unwrap();
    let pq = "/0rtt/off?size=100";
    let conn = tokio::time::timeout(WAIT, endpoint.connect(addr, "localhost").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut h3 = h3_over(conn.clone()).await;
    let (resp, _) = h3_request(&mut h3, get(&e, pq, &[])).await;
    assert_eq!(resp.status(), 200);
    conn.close(0u32.into(), b"done");
    // The session resumes, but the edge gave no 0-RTT key: the client cannot send early.
    let connecting = endpoint.connect(addr, "localhost").unwrap();
    let conn = match connecting.into_0rtt() {
        Ok((conn, accepted)) => {
            assert!(!tokio::time::timeout(WAIT, accepted).await.unwrap());
            conn
        }
        Err(connecting) => tokio::time::timeout(WAIT, connecting)
            .await
            .unwrap()
            .unwrap(),
    };
    let mut h3 = h3_over(conn).await;
    let (resp, _) = h3_request(&mut h3, get(&e, pq, &[])).await;
    assert_eq!(resp.status(), 200);
    let text = e.node.metrics_text();
    assert_eq!(
        metric(&text, "tiercel_early_data_requests_total").as_deref(),
        Some("0")
    );
    e.shutdown().await;
}
