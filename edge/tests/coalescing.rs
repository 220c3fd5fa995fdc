//! Coalescing and read-while-write: one upstream request for many clients, bytes streamed to
//! every waiting client as they arrive, and fills that survive their clients.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use support::*;
use tiercel_testbed::origin::expected_body;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_misses_make_one_origin_request() {
    let e = Edge::start(&[]).await;
    // Slow enough that every client arrives while the fill is running.
    let pq = "/co/ten?size=10485760&cc=max-age%3D300&chunk=262144&chunk_ms=20";
    let want = blake3::hash(&expected_body(pq, 10 * 1024 * 1024));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let client = e.client.clone();
        let url = e.url(pq);
        tasks.push(tokio::spawn(async move {
            let r = send(
                &client,
                Request::get(url).body(Full::<Bytes>::default()).unwrap(),
            )
            .await;
            (r.status, blake3::hash(&r.body), r.body.len())
        }));
    }
    for t in tasks {
        let (status, hash, len) = t.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(len, 10 * 1024 * 1024);
        assert_eq!(hash, want, "body identical to the origin's");
    }
    assert_eq!(e.origin.hits(pq), 1, "exactly one origin request");
    assert!(
        e.node
            .engine
            .stats()
            .collapsed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 150
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_variants_make_one_origin_request_each() {
    let e = Edge::start(&[]).await;
    // Nobody knows yet that the URL varies: every request joins the first fill, and learns
    // from its response which variant it wants. Slow enough that all 300 arrive meanwhile.
    let pq = "/co/vary?vary=Accept-Language&cc=max-age%3D300&size=200000&chunk=20000&chunk_ms=30";
    let langs = ["en", "fr", "de"];
    let mut tasks = Vec::new();
    for i in 0..300 {
        let client = e.client.clone();
        let url = e.url(pq);
        let lang = langs[i % 3];
        tasks.push(tokio::spawn(async move {
            let r = send(
                &client,
                Request::get(url)
                    .header("accept-language", lang)
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
            .await;
            (lang, r.status, r.body)
        }));
    }
    for t in tasks {
        let (lang, status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{lang}");
        assert_eq!(
            body,
            tiercel_testbed::origin::expected_variant_body(pq, 200_000, lang),
            "{lang} got its own variant"
        );
    }
    let fetched = e.origin.hits(pq);
    assert!(fetched <= 4, "{fetched} origin requests for 3 variants");
    // And all three stayed stored under one Vary head: hits from now on.
    for lang in langs {
        let r = e.get_with(pq, &[("accept-language", lang)]).await;
        assert!(r.is_hit(), "{lang}: {}", r.header("cache-status"));
    }
    assert_eq!(e.origin.hits(pq), fetched);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_receive_bytes_before_the_origin_finishes() {
    let e = Edge::start(&[]).await;
    // 16 frames of 64 KiB, 100 ms apart: the origin needs about 1.5 s for the whole body.
    let pq = "/co/slow?size=1048576&cc=max-age%3D60&chunk=65536&chunk_ms=100";
    let start = Instant::now();
    let resp = tokio::time::timeout(
        WAIT,
        e.client
            .request(Request::get(e.url(pq)).body(Full::default()).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first_at = start.elapsed();
    assert!(!first.into_data().unwrap().is_empty());
    // A second client joins mid-fill and also gets early bytes (read-while-write).
    let resp2 = e
        .client
        .request(Request::get(e.url(pq)).body(Full::default()).unwrap())
        .await
        .unwrap();
    let mut body2 = resp2.into_body();
    let second_first = tokio::time::timeout(Duration::from_secs(1), body2.frame()).await;
    assert!(second_first.is_ok(), "a joining client gets bytes at once");
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let total = start.elapsed();
    assert!(
        first_at < Duration::from_millis(800),
        "first byte after {first_at:?}"
    );
    assert!(
        total >= Duration::from_millis(1400),
        "whole body after {total:?}"
    );
    assert!(!rest.is_empty());
    assert_eq!(e.origin.hits(pq), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnecting_client_does_not_abort_the_fill() {
    let e = Edge::start(&[]).await;
    let pq = "/co/abandon?size=3145728&cc=max-age%3D60&chunk=131072&chunk_ms=20";
    {
        let resp = e
            .client
            .request(Request::get(e.url(pq)).body(Full::default()).unwrap())
            .await
            .unwrap();
        let mut body = resp.into_body();
        let _ = tokio::time::timeout(WAIT, body.frame()).await.unwrap();
        // Dropped here: the client goes away after the first bytes.
    }
    // Wait for the fill to finish storing, then read it back without the origin.
    let deadline = Instant::now() + WAIT;
    while e.node.engine.fills_in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = e.get(pq).await;
    assert_eq!(r.body, expected_body(pq, 3 * 1024 * 1024));
    assert!(
        r.is_hit(),
        "stored by the abandoned fill: {}",
        r.cache_status()
    );
    assert_eq!(e.origin.hits(pq), 1);
    e.shutdown().await;
}

/// The leader runs its fetch itself until the response head is in: a leader whose client
/// leaves before that hands the fetch on, and a request that joined it is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_gone_before_the_head_still_completes_the_fill_for_its_joiner() {
    let e = Edge::start(&[]).await;
    let pq = "/co/early-leave?size=5000&cc=max-age%3D60&delay_ms=400";
    let leader = {
        let client = e.client.clone();
        let url = e.url(pq);
        tokio::spawn(async move {
            client
                .request(Request::get(url).body(Full::<Bytes>::default()).unwrap())
                .await
        })
    };
    // The leader's fetch is waiting for the origin's head; a second request joins it.
    let deadline = Instant::now() + WAIT;
    while e.node.engine.fills_in_flight() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(e.node.engine.fills_in_flight(), 1);
    let joiner = {
        let client = e.client.clone();
        let url = e.url(pq);
        tokio::spawn(async move {
            let resp = client
                .request(Request::get(url).body(Full::<Bytes>::default()).unwrap())
                .await
                .unwrap();
            let status = resp.headers()["cache-status"].to_str().unwrap().to_string();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The leader's client goes away while the origin has not answered yet.
    leader.abort();
    let (status, body) = tokio::time::timeout(WAIT, joiner).await.unwrap().unwrap();
    assert_eq!(&body[..], &expected_body(pq, 5000)[..]);
    assert!(status.contains("collapsed"), "joined the fill: {status}");
    let r = e.get(pq).await;
    assert!(
        r.is_hit(),
        "stored by the handed-on fill: {}",
        r.cache_status()
    );
    assert_eq!(e.origin.hits(pq), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mebibyte_object_streams_to_concurrent_clients() {
    let e = Edge::start(&["--memory-cache", "256MiB"]).await;
    let size = 100 * 1024 * 1024;
    let pq = "/co/big?size=104857600&cc=max-age%3D60&chunk=1048576&chunk_ms=1";
    let want = blake3::hash(&expected_body(pq, size));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = e.client.clone();
        let url = e.url(pq);
        tasks.push(tokio::spawn(async move {
            let resp = client
                .request(Request::get(url).body(Full::<Bytes>::default()).unwrap())
                .await
                .unwrap();
            let mut body = resp.into_body();
            let mut hasher = blake3::Hasher::new();
            let mut len = 0usize;
            let started = Instant::now();
            let mut first_byte = None;
            while let Some(frame) = tokio::time::timeout(WAIT, body.frame()).await.unwrap() {
                if let Ok(data) = frame.unwrap().into_data() {
                    first_byte.get_or_insert(started.elapsed());
                    len += data.len();
                    hasher.update(&data);
                }
            }
            (
                len,
                hasher.finalize(),
                first_byte.unwrap(),
                started.elapsed(),
            )
        }));
    }
    for t in tasks {
        let (len, hash, first, total) = t.await.unwrap();
        assert_eq!(len, size);
        assert_eq!(hash, want);
        assert!(
            first < total / 4,
            "streamed: first byte {first:?} of {total:?}"
        );
    }
    assert_eq!(e.origin.hits(pq), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_is_not_shareable_goes_only_to_its_requester() {
    let e = Edge::start(&[]).await;
    // Twenty users ask at once for a private response: each must get the one fetched with
    // their own credentials, never another user's through coalescing.
    let pq = "/co/private?cc=private%2C%20max-age%3D60&delay_ms=300&size=64";
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = e.client.clone();
        let url = e.url(pq);
        tasks.push(tokio::spawn(async move {
            let who = format!("Bearer user-{i}");
            let req = Request::get(url)
                .header("authorization", who.as_str())
                .body(Full::<Bytes>::default())
                .unwrap();
            let r = send(&client, req).await;
            (r.status, r.cache_status())
        }));
    }
    for t in tasks {
        let (status, cs) = t.await.unwrap();
        assert_eq!(status, 200);
        assert!(
            !cs.contains("collapsed"),
            "a private response was shared: {cs}"
        );
    }
    assert_eq!(e.origin.hits(pq), 20, "every client fetched its own");
    // And the origin saw each user's own credentials exactly once.
    let mut seen: Vec<String> = e
        .origin
        .requests()
        .iter()
        .filter(|r| r.target() == pq)
        .map(|r| {
            r.headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20);
    e.shutdown().await;
}
