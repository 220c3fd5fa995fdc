//! The demo origin over real sockets: every parameter through a real hyper client, over
//! HTTP/1.1 and h2c.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http::response::Parts;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::*;

/// Upper bound of any single network wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Proto {
    H1,
    H2,
}

const BOTH: [Proto; 2] = [Proto::H1, Proto::H2];

async fn origin() -> Origin {
    Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// Sends `req` on a fresh connection and returns the response head with its streaming body.
async fn send_streaming(
    addr: SocketAddr,
    proto: Proto,
    req: Request<Full<Bytes>>,
) -> Result<Response<Incoming>> {
    let stream = timeout(WAIT, TcpStream::connect(addr)).await??;
    let io = TokioIo::new(stream);
    let resp = match proto {
        Proto::H1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            timeout(WAIT, sender.send_request(req)).await??
        }
        Proto::H2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            timeout(WAIT, sender.send_request(req)).await??
        }
    };
    Ok(resp)
}

/// Sends `req` and reads the whole body.
async fn send(addr: SocketAddr, proto: Proto, req: Request<Full<Bytes>>) -> Result<(Parts, Bytes)> {
    let resp = send_streaming(addr, proto, req).await?;
    let (parts, body) = resp.into_parts();
    let body = timeout(WAIT, body.collect()).await??.to_bytes();
    Ok((parts, body))
}

fn request(
    method: Method,
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{target}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

async fn get(o: &Origin, proto: Proto, target: &str, headers: &[(&str, &str)]) -> (Parts, Bytes) {
    send(
        o.addr(),
        proto,
        request(Method::GET, o.addr(), target, headers),
    )
    .await
    .unwrap()
}

fn hdr<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn index_page_and_url() {
    let o = origin().await;
    assert_eq!(o.url(), format!("http://127.0.0.1:{}", o.addr().port()));
    for proto in BOTH {
        let (parts, body) = get(&o, proto, "/", &[]).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(
            hdr(&parts, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("<h1>Tiercel demo origin</h1>"), "{proto:?}");
        assert!(text.contains("fail=close|hang|midbody"));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn default_body_counters_and_recorded_requests() {
    let o = origin().await;
    let (p1, b1) = get(&o, Proto::H1, "/a/b?x=1", &[("x-test", "one")]).await;
    let (p2, b2) = get(&o, Proto::H2, "/a/b?x=1", &[("x-test", "two")]).await;
    for (parts, body, version, hits) in [
        (&p1, &b1, Version::HTTP_11, "1"),
        (&p2, &b2, Version::HTTP_2, "2"),
    ] {
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.version, version);
        assert_eq!(hdr(parts, "content-length"), Some("1024"));
        assert_eq!(hdr(parts, "content-type"), Some("application/octet-stream"));
        assert_eq!(hdr(parts, HITS_HEADER), Some(hits));
        assert_eq!(body, &expected_body("/a/b?x=1", 1024));
    }
    get(&o, Proto::H1, "/a/c", &[]).await;
    get(&o, Proto::H1, "/z", &[]).await;
    assert_eq!(o.hits("/a/b?x=1"), 2);
    assert_eq!(o.hits("/a/b"), 0);
    assert_eq!(o.hits_prefix("/a/"), 3);
    assert_eq!(o.total_hits(), 4);
    assert_eq!(o.conditional_hits("/a/b?x=1"), 0);
    let recorded = o.requests();
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[0].version, Version::HTTP_11);
    assert_eq!(recorded[1].version, Version::HTTP_2);
    assert_eq!(recorded[0].target(), "/a/b?x=1");
    assert_eq!(recorded[1].target(), "/a/b?x=1");
    assert_eq!(recorded[0].headers["x-test"], "one");
    assert_eq!(recorded[1].headers["x-test"], "two");
    assert_eq!(recorded[3].method, Method::GET);
    o.reset_counters();
    assert_eq!(
        (o.total_hits(), o.hits("/a/b?x=1"), o.requests().len()),
        (0, 0, 0)
    );
    let (p, _) = get(&o, Proto::H1, "/a/b?x=1", &[]).await;
    assert_eq!(hdr(&p, HITS_HEADER), Some("1"));
    o.shutdown().await;
}

#[tokio::test]
async fn header_parameters_over_both_protocols() {
    let o = origin().await;
    let target = "/h?size=10&cc=max-age%3D60%2C%20public&cdncc=max-age%3D10&sc=max-age%3D5\
                  &age=3&set_cookie=1&tags=a,b&h=X-One:1&h=X-Two:2&vary=Accept&etag=W/e&lm=100";
    for proto in BOTH {
        let (p, body) = get(&o, proto, target, &[]).await;
        assert_eq!(hdr(&p, "cache-control"), Some("max-age=60, public"));
        assert_eq!(hdr(&p, "cdn-cache-control"), Some("max-age=10"));
        assert_eq!(hdr(&p, "surrogate-control"), Some("max-age=5"));
        assert_eq!(hdr(&p, "age"), Some("3"));
        assert_eq!(
            hdr(&p, "set-cookie"),
            Some("tiercel_demo=1; Path=/; HttpOnly")
        );
        assert_eq!(hdr(&p, "surrogate-key"), Some("a b"));
        assert_eq!(hdr(&p, "x-one"), Some("1"));
        assert_eq!(hdr(&p, "x-two"), Some("2"));
        assert_eq!(hdr(&p, "vary"), Some("Accept"));
        assert_eq!(hdr(&p, "etag"), Some("W/\"e\""));
        let lm = httpdate::parse_http_date(hdr(&p, "last-modified").unwrap()).unwrap();
        assert_eq!(lm, o.shared.epoch - Duration::from_secs(100));
        assert_eq!(body, expected_variant_body("/h", 10, ""));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn dates_follow_the_clock_parameters() {
    let o = origin().await;
    for proto in BOTH {
        let before = SystemTime::now();
        let (p, _) = get(&o, proto, "/d?expires=120&date_offset=-3600", &[]).await;
        let after = SystemTime::now();
        let date = httpdate::parse_http_date(hdr(&p, "date").unwrap()).unwrap();
        let expires = httpdate::parse_http_date(hdr(&p, "expires").unwrap()).unwrap();
        let within = |t: SystemTime, lo: SystemTime, hi: SystemTime| {
            t + Duration::from_secs(1) >= lo && t <= hi
        };
        let hour = Duration::from_secs(3600);
        assert!(within(date, before - hour, after - hour), "{date:?}");
        let two_min = Duration::from_secs(120);
        assert!(
            within(expires, before + two_min, after + two_min),
            "{expires:?}"
        );
        let (p, _) = get(&o, proto, "/d?expires=-60", &[]).await;
        let expires = httpdate::parse_http_date(hdr(&p, "expires").unwrap()).unwrap();
        assert!(expires < SystemTime::now() - Duration::from_secs(58));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn etag_revalidation_gives_304_and_counts_conditionals() {
    let o = origin().await;
    let target = "/e?etag=v1&cc=max-age%3D0&size=50";
    for proto in BOTH {
        o.reset_counters();
        let (p, body) = get(&o, proto, target, &[]).await;
        assert_eq!((p.status, body.len()), (StatusCode::OK, 50));
        let (p, body) = get(&o, proto, target, &[("if-none-match", "W/\"v1\"")]).await;
        assert_eq!(p.status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(hdr(&p, "etag"), Some("\"v1\""));
        assert_eq!(hdr(&p, "cache-control"), Some("max-age=0"));
        assert_eq!(hdr(&p, "content-length"), None);
        let (p, _) = get(&o, proto, target, &[("if-none-match", "\"v0\"")]).await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!((o.hits(target), o.conditional_hits(target)), (3, 2));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn last_modified_revalidation() {
    let o = origin().await;
    let target = "/lm?lm=600";
    for proto in BOTH {
        let (p, _) = get(&o, proto, target, &[]).await;
        let lm = hdr(&p, "last-modified").unwrap().to_owned();
        let (p, body) = get(&o, proto, target, &[("if-modified-since", &lm)]).await;
        assert_eq!((p.status, body.len()), (StatusCode::NOT_MODIFIED, 0));
        let older = httpdate::fmt_http_date(
            httpdate::parse_http_date(&lm).unwrap() - Duration::from_secs(1),
        );
        let (p, body) = get(&o, proto, target, &[("if-modified-since", &older)]).await;
        assert_eq!((p.status, body.len()), (StatusCode::OK, 1024));
    }
    assert_eq!(o.conditional_hits(target), 4);
    o.shutdown().await;
}

#[tokio::test]
async fn set_overrides_a_path_at_run_time() {
    let o = origin().await;
    let target = "/s?etag=v1&size=20";
    let (p, body) = get(&o, Proto::H1, target, &[]).await;
    assert_eq!(hdr(&p, "etag"), Some("\"v1\""));
    assert_eq!(body, expected_body("/s", 20));
    o.set("/s", Spec::new().with("etag", "v2").with("version", "2"));
    for proto in BOTH {
        let (p, body) = get(&o, proto, target, &[("if-none-match", "\"v1\"")]).await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(hdr(&p, "etag"), Some("\"v2\""));
        assert_eq!(body, expected_body("/s?version=2", 20));
        assert_ne!(body, expected_body("/s", 20));
    }
    o.set("/s", Spec::parse("status=503"));
    let (p, _) = get(&o, Proto::H1, target, &[]).await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hdr(&p, "etag"), Some("\"v1\""));
    o.clear("/s");
    let (p, _) = get(&o, Proto::H1, target, &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    o.shutdown().await;
}

#[tokio::test]
async fn vary_bodies_depend_on_the_request_header() {
    let o = origin().await;
    let target = "/v?vary=Accept-Encoding&size=64";
    for proto in BOTH {
        let (_, gz) = get(&o, proto, target, &[("accept-encoding", "gzip")]).await;
        let (_, br) = get(&o, proto, target, &[("accept-encoding", "br")]).await;
        let (_, none) = get(&o, proto, target, &[]).await;
        assert_eq!(gz, expected_variant_body(target, 64, "gzip"));
        assert_eq!(br, expected_variant_body(target, 64, "br"));
        assert_eq!(none, expected_variant_body(target, 64, ""));
        assert_ne!(gz, br);
        assert_ne!(gz, expected_body(target, 64));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn status_head_and_bad_parameters() {
    let o = origin().await;
    for proto in BOTH {
        let (p, body) = get(&o, proto, "/st?status=404&size=7", &[]).await;
        assert_eq!((p.status, body.len()), (StatusCode::NOT_FOUND, 7));
        let (p, body) = get(&o, proto, "/st?status=204", &[]).await;
        assert_eq!((p.status, body.len()), (StatusCode::NO_CONTENT, 0));
        let req = request(Method::HEAD, o.addr(), "/head?size=4096", &[]);
        let (p, body) = send(o.addr(), proto, req).await.unwrap();
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(hdr(&p, "content-length"), Some("4096"));
        assert!(body.is_empty());
        let (p, body) = get(&o, proto, "/bad?size=lots", &[]).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            &body[..],
            b"bad parameter size=\"lots\": expected a byte count\n"
        );
    }
    o.shutdown().await;
}

#[tokio::test]
async fn post_bodies_are_recorded() {
    let o = origin().await;
    for proto in BOTH {
        let req = Request::post(format!("http://{}/form", o.addr()))
            .body(Full::new(Bytes::from_static(b"hello=1")))
            .unwrap();
        let (p, body) = send(o.addr(), proto, req).await.unwrap();
        assert_eq!((p.status, body.len()), (StatusCode::OK, 1024));
        let last = o.requests().pop().unwrap();
        assert_eq!(
            (last.method, &last.body[..]),
            (Method::POST, &b"hello=1"[..])
        );
    }
    o.shutdown().await;
}

#[tokio::test]
async fn delay_and_chunked_streaming() {
    let o = origin().await;
    for proto in BOTH {
        let start = Instant::now();
        let (p, _) = get(&o, proto, "/slow?delay_ms=150&size=1", &[]).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(start.elapsed() >= Duration::from_millis(150));

        let target = "/chunks?size=300&chunk=100&chunk_ms=150";
        let start = Instant::now();
        let resp = send_streaming(o.addr(), proto, request(Method::GET, o.addr(), target, &[]))
            .await
            .unwrap();
        let mut body = resp.into_body();
        let first = timeout(WAIT, body.frame()).await.unwrap().unwrap().unwrap();
        let first = first.into_data().unwrap();
        let first_at = start.elapsed();
        assert_eq!(first.len(), 100, "{proto:?}");
        assert!(
            first_at < Duration::from_millis(140),
            "{proto:?}: first bytes after {first_at:?}"
        );
        let mut all = first.to_vec();
        while let Some(frame) = timeout(WAIT, body.frame()).await.unwrap() {
            if let Ok(data) = frame.unwrap().into_data() {
                all.extend_from_slice(&data);
            }
        }
        assert!(start.elapsed() >= Duration::from_millis(300), "{proto:?}");
        assert_eq!(all, expected_body(target, 300));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn nolen_streams_without_content_length() {
    let o = origin().await;
    for proto in BOTH {
        let (p, body) = get(&o, proto, "/nolen?nolen=1&size=200000", &[]).await;
        assert_eq!(hdr(&p, "content-length"), None, "{proto:?}");
        if let Proto::H1 = proto {
            assert_eq!(hdr(&p, "transfer-encoding"), Some("chunked"));
        }
        assert_eq!(body, expected_body("/nolen", 200_000));
    }
    // On the wire: chunked framing.
    let mut s = TcpStream::connect(o.addr()).await.unwrap();
    s.write_all(b"GET /nolen?nolen=1&size=5 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(raw.contains("transfer-encoding: chunked\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n0\r\n\r\n"), "{raw}");
    o.shutdown().await;
}

#[tokio::test]
async fn ranges() {
    let o = origin().await;
    let target = "/r?size=1000&ranges=1&etag=r1";
    let full = expected_body(target, 1000);
    for proto in BOTH {
        let (p, body) = get(&o, proto, target, &[("range", "bytes=100-199")]).await;
        assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(hdr(&p, "content-range"), Some("bytes 100-199/1000"));
        assert_eq!(hdr(&p, "content-length"), Some("100"));
        assert_eq!(body, full.slice(100..200));
        let (p, body) = get(&o, proto, target, &[("range", "bytes=-10")]).await;
        assert_eq!(hdr(&p, "content-range"), Some("bytes 990-999/1000"));
        assert_eq!(body, full.slice(990..));
        let (p, body) = get(&o, proto, target, &[("range", "bytes=5000-")]).await;
        assert_eq!(p.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(hdr(&p, "content-range"), Some("bytes */1000"));
        assert!(body.is_empty());
        let (p, body) = get(
            &o,
            proto,
            target,
            &[("range", "bytes=0-9"), ("if-range", "\"old\"")],
        )
        .await;
        assert_eq!((p.status, body.len()), (StatusCode::OK, 1000));
        let (p, body) = get(&o, proto, "/r?size=1000", &[("range", "bytes=0-9")]).await;
        assert_eq!((p.status, body.len()), (StatusCode::OK, 1000));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn fail_close_drops_the_connection_unanswered() {
    let o = origin().await;
    let mut s = TcpStream::connect(o.addr()).await.unwrap();
    s.write_all(b"GET /c?fail=close HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let read = timeout(WAIT, s.read_to_end(&mut raw)).await.unwrap();
    assert!(read.is_ok() || raw.is_empty());
    assert!(raw.is_empty(), "{:?}", String::from_utf8_lossy(&raw));
    let h2 = send(
        o.addr(),
        Proto::H2,
        request(Method::GET, o.addr(), "/c?fail=close", &[]),
    )
    .await;
    assert!(h2.is_err());
    assert_eq!(o.hits("/c?fail=close"), 2);
    o.shutdown().await;
}

#[tokio::test]
async fn fail_hang_never_answers_until_shutdown() {
    let o = origin().await;
    let mut s = TcpStream::connect(o.addr()).await.unwrap();
    s.write_all(b"GET /hang?fail=hang HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let waited = timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(waited.is_err(), "the origin answered a fail=hang request");
    assert_eq!(o.hits("/hang?fail=hang"), 1);
    // Over h2 the stream hangs the same way.
    let req = request(Method::GET, o.addr(), "/hang?fail=hang", &[]);
    let h2 = timeout(Duration::from_millis(300), send(o.addr(), Proto::H2, req)).await;
    assert!(
        h2.is_err(),
        "the origin answered a fail=hang request over h2"
    );
    assert_eq!(o.hits("/hang?fail=hang"), 2);
    o.shutdown().await;
    // Shutting down closes the hanging connection.
    let n = timeout(WAIT, s.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn fail_midbody_sends_half_then_breaks() {
    let o = origin().await;
    let target = "/mid?fail=midbody&size=100000";
    for proto in BOTH {
        let resp = send_streaming(o.addr(), proto, request(Method::GET, o.addr(), target, &[]))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-length"], "100000");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let mut failed = false;
        while let Some(frame) = timeout(WAIT, body.frame()).await.unwrap() {
            match frame {
                Ok(f) => got.extend_from_slice(&f.into_data().unwrap_or_default()),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "{proto:?}: the body ended cleanly");
        assert_eq!(got.len(), 50_000, "{proto:?}");
        assert_eq!(got, expected_body(target, 50_000));
    }
    o.shutdown().await;
}

#[tokio::test]
async fn large_bodies_stream_intact() {
    let o = origin().await;
    let size = 24 * 1024 * 1024;
    let target = format!("/big?size={size}");
    for proto in BOTH {
        let (p, body) = get(&o, proto, &target, &[]).await;
        assert_eq!(hdr(&p, "content-length"), Some(size.to_string().as_str()));
        assert_eq!(body.len(), size);
        assert!(
            body == expected_body(&target, size),
            "{proto:?}: body differs"
        );
    }
    o.shutdown().await;
}

#[tokio::test]
async fn a_thousand_concurrent_connections() {
    let o = origin().await;
    let addr = o.addr();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        tasks.spawn(async move {
            let target = format!("/many/{}?delay_ms=200&size=100", i % 10);
            let proto = if i % 2 == 0 { Proto::H1 } else { Proto::H2 };
            let (p, body) = send(addr, proto, request(Method::GET, addr, &target, &[])).await?;
            if p.status != StatusCode::OK || body != expected_body(&target, 100) {
                return Err(anyhow!("bad answer for {target}: {}", p.status));
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    let start = Instant::now();
    while let Some(r) = timeout(WAIT, tasks.join_next()).await.unwrap() {
        r.unwrap().unwrap();
    }
    // All requests wait 200 ms concurrently, not one after another.
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.total_hits(), 1000);
    assert_eq!(o.hits_prefix("/many/"), 1000);
    assert_eq!(o.hits("/many/3?delay_ms=200&size=100"), 100);
    o.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let o = origin().await;
    let addr = o.addr();
    get(&o, Proto::H1, "/x", &[]).await;
    o.shutdown().await;
    let r = timeout(WAIT, TcpStream::connect(addr)).await.unwrap();
    assert!(r.is_err());
    // Dropping an origin stops it as well.
    let o2 = origin().await;
    let addr2 = o2.addr();
    drop(o2);
    tokio::task::yield_now().await;
    let r = timeout(WAIT, async {
        loop {
            if TcpStream::connect(addr2).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .context("dropped origin still accepting");
    assert!(r.is_ok());
}
