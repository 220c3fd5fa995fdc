//! The same cached object over HTTP/1.1, h2c and TLS (h2 and http/1.1 by ALPN), and the header
//! fields a proxy must add, keep and strip in both directions.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use support::*;
use tiercel_testbed::origin::expected_body;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_object_over_h1_h2c_and_tls() {
    let e = Edge::start(&[]).await;
    let pq = "/fe/a?size=5000&cc=max-age%3D60";
    let want = expected_body(pq, 5000);

    let first = e.get(pq).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.version, Version::HTTP_11);
    assert_eq!(first.body, want);
    assert!(
        first.cache_status().contains("fwd=uri-miss"),
        "{}",
        first.cache_status()
    );
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );

    let h2c = send(
        &h2c_client(),
        Request::get(e.url(pq)).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(h2c.version, Version::HTTP_2);
    assert_eq!(h2c.body, want);
    assert!(h2c.is_hit(), "{}", h2c.cache_status());

    let cert = e.node.certificate.clone().expect("self-signed certificate");
    let tls_url = format!("https://localhost:{}{pq}", e.tls_addr().port());
    let tls_h2 = send(
        &tls_client(&cert, true),
        Request::get(&tls_url).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(tls_h2.version, Version::HTTP_2);
    assert_eq!(tls_h2.body, want);
    assert!(
        !tls_h2.is_hit(),
        "https is its own cache key: {}",
        tls_h2.cache_status()
    );

    let tls_h1 = send(
        &tls_client(&cert, false),
        Request::get(&tls_url).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(tls_h1.version, Version::HTTP_11);
    assert_eq!(tls_h1.body, want);
    assert!(tls_h1.is_hit(), "{}", tls_h1.cache_status());

    // http and https are different cache keys (the scheme is part of the key): one fetch each.
    assert_eq!(
        e.origin.hits(pq),
        2,
        "one fetch per scheme, every other request a hit"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_negotiates_alpn() {
    let e = Edge::start(&[]).await;
    let cert = e.node.certificate.clone().unwrap();
    for (offer, want) in [
        (vec![&b"h2"[..], b"http/1.1"], &b"h2"[..]),
        (vec![&b"http/1.1"[..]], b"http/1.1"),
    ] {
        let cfg = tls_config(&cert, &offer);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(e.tls_addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(want));
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_and_hop_by_hop_fields() {
    let e = Edge::start(&[]).await;
    let pq = "/fe/hdr?cc=max-age%3D60&h=Connection:x-hop&h=X-Hop:secret&h=Keep-Alive:timeout%3D5";
    let r = e
        .get_with(
            pq,
            &[
                ("connection", "x-client-hop"),
                ("x-client-hop", "1"),
                ("x-forwarded-for", "203.0.113.9"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    // Response: hop-by-hop fields of the origin's connection never reach the client.
    assert_eq!(r.header("x-hop"), "");
    assert_eq!(r.header("keep-alive"), "");
    assert!(
        r.header("via").contains("tiercel-edge"),
        "via: {}",
        r.header("via")
    );
    assert!(!r.header("age").is_empty());

    let reqs = e.origin.requests();
    let seen = reqs
        .iter()
        .find(|q| q.target() == pq)
        .expect("origin saw the request");
    let h = |n: &str| {
        seen.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        h("x-client-hop"),
        "",
        "field named by Connection is not forwarded"
    );
    assert_eq!(h("x-forwarded-for"), "203.0.113.9, 127.0.0.1");
    assert!(
        h("forwarded").contains("for=127.0.0.1"),
        "forwarded: {}",
        h("forwarded")
    );
    assert!(
        h("forwarded").contains("proto=http"),
        "forwarded: {}",
        h("forwarded")
    );
    assert!(h("via").contains("tiercel-edge"), "via: {}", h("via"));
    assert!(
        h("cdn-loop").contains("tiercel"),
        "cdn-loop: {}",
        h("cdn-loop")
    );
    assert_eq!(
        h("host"),
        e.addr().to_string(),
        "Host is the canonical authority (here what the client sent)"
    );
    let tp = h("traceparent");
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "trace continues: {tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "with a new parent id: {tp}"
    );
    e.shutdown().await;
}

/// W3C Trace Context: a trace continues only from exactly one valid `traceparent`; otherwise a
/// new trace starts and the client's `tracestate` (which belongs to the trace it could not
/// continue) is not passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_continues_only_from_one_valid_traceparent() {
    let e = Edge::start(&[]).await;
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const OTHER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    type Fields = &'static [(&'static str, &'static str)];
    let cases: [(&str, Fields, bool); 4] = [
        ("one", &[("traceparent", TP), ("tracestate", "v=1")], true),
        (
            "two",
            &[
                ("traceparent", TP),
                ("traceparent", OTHER),
                ("tracestate", "v=1"),
            ],
            false,
        ),
        (
            "upper",
            &[
                (
                    "traceparent",
                    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
                ),
                ("tracestate", "v=1"),
            ],
            false,
        ),
        ("none", &[("tracestate", "v=1")], false),
    ];
    for (name, headers, continued) in cases {
        let pq = format!("/fe/trace-{name}?cc=no-store");
        assert_eq!(e.get_with(&pq, headers).await.status, 200);
        let reqs = e.origin.requests();
        let seen = reqs
            .iter()
            .find(|q| q.target() == pq)
            .expect("origin saw it");
        let tps: Vec<_> = seen.headers.get_all("traceparent").iter().collect();
        assert_eq!(tps.len(), 1, "{name}: one traceparent upstream");
        let tp = tps[0].to_str().unwrap_or("");
        assert_eq!(tp.len(), 55, "{name}: {tp}");
        assert_eq!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            continued,
            "{name}: {tp}"
        );
        let state = seen
            .headers
            .get("tracestate")
            .map(|v| v.as_bytes().to_vec());
        assert_eq!(state.is_some(), continued, "{name}: tracestate {state:?}");
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_requests_get_a_host_header_upstream() {
    let e = Edge::start(&[]).await;
    let pq = "/fe/h2host?cc=max-age%3D60";
    let r = send(
        &h2c_client(),
        Request::get(e.url(pq))
            .body(Full::<Bytes>::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let reqs = e.origin.requests();
    let seen = reqs.iter().find(|q| q.target() == pq).unwrap();
    assert_eq!(
        seen.headers.get("host").unwrap().to_str().unwrap(),
        e.addr().to_string()
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_serves_health_readiness_and_counting_metrics() {
    let e = Edge::start(&["--admin-listen", "127.0.0.1:0"]).await;
    let admin = e.node.admin_listen.expect("admin listener bound");
    let get = |path: &'static str| {
        let req = Request::get(format!("http://{admin}{path}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        send(&e.client, req)
    };
    let h = get("/healthz").await;
    assert_eq!((h.status.as_u16(), &h.body[..]), (200, &b"ok\n"[..]));
    let r = get("/readyz").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"ready\n"[..]));
    assert_eq!(get("/nope").await.status.as_u16(), 404);

    let pq = "/admin/m?size=300&cc=max-age%3D60";
    assert!(!e.get(pq).await.is_hit());
    assert!(e.get(pq).await.is_hit());
    assert!(e.get(pq).await.is_hit());
    let m = get("/metrics").await;
    assert_eq!(m.status.as_u16(), 200);
    assert_eq!(
        m.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    assert_eq!(
        metric(&text, "tiercel_cache_hits_total").as_deref(),
        Some("2")
    );
    assert_eq!(
        metric(&text, "tiercel_cache_misses_total").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&text, "tiercel_upstream_requests_total").as_deref(),
        Some("1")
    );
    assert_eq!(e.origin.hits(pq), 1);
    assert_eq!(
        metric(&text, "tiercel_fills_in_flight").as_deref(),
        Some("0")
    );
    let memory: u64 = metric(&text, "tiercel_storage_memory_bytes")
        .and_then(|v| v.parse().ok())
        .expect("memory gauge");
    assert!(memory >= 300, "{memory}");
    // The client's keep-alive connection to the edge is counted and still open.
    let count = |name| -> u64 {
        metric(&text, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(count("tiercel_client_connections_total") >= 1);
    assert!(count("tiercel_client_connections_open") >= 1);
    assert_eq!(count("tiercel_client_idle_closes_total"), 0);
    // No purge-service: no purge gauges pretending to follow one.
    assert!(!text.contains("tiercel_purge_"), "{text}");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_h1_requests_are_answered_in_order() {
    // RFC 9112 §9.3.2: requests sent back to back on one connection, in one write, get their
    // responses in the order asked — a miss, a HEAD of it, and another object.
    let e = Edge::start(&[]).await;
    let a = "/p/a?cc=max-age%3D60&size=3000";
    let b = "/p/b?cc=max-age%3D60&size=17";
    let wire = format!(
        "GET {a} HTTP/1.1\r\nHost: cdn.example\r\n\r\n\
         HEAD {a} HTTP/1.1\r\nHost: cdn.example\r\n\r\n\
         GET {b} HTTP/1.1\r\nHost: cdn.example\r\nConnection: close\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(e.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, wire.as_bytes())
        .await
        .unwrap();
    let (status, _, body) = read_h1_response(&mut s, false).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, &expected_body(a, 3000)[..])
    );
    let (status, head, body) = read_h1_response(&mut s, true).await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(
        head.to_ascii_lowercase().contains("content-length: 3000"),
        "{head}"
    );
    assert!(
        head.contains("; hit"),
        "the HEAD is answered from what the GET stored: {head}"
    );
    let (status, _, body) = read_h1_response(&mut s, false).await;
    assert_eq!((status, body.as_slice()), (200, &expected_body(b, 17)[..]));
    assert_eq!(e.origin.hits(a), 1);
    e.shutdown().await;
}

/// Over h2 a body of known length ends with its last DATA frame (END_STREAM set on it), not
/// with an empty DATA frame after it, both streamed from a fill (the origin trickles the body,
/// so the miss is served while it arrives) and from chunks in the cache.
#[tokio::test]
async fn h2_bodies_end_on_their_last_data_frame() {
    use tokio::io::AsyncWriteExt;
    let e = Edge::start(&[]).await;
    let pq = "/fe/frames?size=300000&chunk=16384&chunk_ms=2&cc=max-age%3D60";
    let want = expected_body(pq, 300_000);
    let mut s = tokio::net::TcpStream::connect(e.addr()).await.unwrap();
    // The largest windows, so flow control never holds a frame back.
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    out.extend(frame(WINDOW_UPDATE, 0, 0, &0x7fff_0000u32.to_be_bytes()));
    s.write_all(&out).await.unwrap();
    let authority = e.addr().to_string();
    for (n, stream) in [(1, 1u32), (2, 3)] {
        let fields = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", pq),
            (":authority", authority.as_str()),
        ];
        let headers = frame(HEADERS, END_HEADERS | END_STREAM, stream, &hpack(&fields));
        s.write_all(&headers).await.unwrap();
        let mut body = Vec::new();
        let mut data_frames = 0;
        loop {
            let (kind, flags, on, payload) = read_frame(&mut s).await;
            if on != stream || kind != DATA {
                assert_ne!(kind, RST_STREAM, "request {n} was reset");
                continue;
            }
            data_frames += 1;
            assert!(
                !payload.is_empty(),
                "request {n}: an empty DATA frame after {} bytes",
                body.len()
            );
            body.extend_from_slice(&payload);
            if flags & END_STREAM != 0 {
                break;
            }
        }
        assert!(body == want, "request {n}: the body differs");
        assert!(data_frames >= 19, "request {n}: {data_frames} DATA frames");
    }
    assert_eq!(e.origin.hits(pq), 1, "the second request was a hit");
    drop(s);
    e.shutdown().await;
}
