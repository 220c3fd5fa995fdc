//! No client can make the edge do unbounded work: fills are capped per connection and per node
//! (over the cap: a short wait, then 503 with Retry-After), a fill counts against the
//! connection that started it after that client left, a fill nobody reads stops at
//! `cache.abandoned_fill_max` and stores nothing, and an object that outgrows
//! `cache.max_object_size` without having announced its length stops being written at once.

mod support;

use std::time::Duration;

use http::Request;
use support::{Edge, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_opened_and_reset_on_one_connection_start_at_most_its_fill_cap() {
    // Slow 2 MB objects (about 2.5 s each): fills outlast the storm, as they would from a real
    // origin over a real WAN, so every slot stays taken while the client resets streams.
    let e = Edge::start(&[]).await;
    let mut client = support::h2_connect(e.addr()).await;
    let authority = e.addr().to_string();
    for batch in 0..10 {
        let mut streams = Vec::new();
        for i in 0..100 {
            let n = batch * 100 + i;
            let req = Request::get(format!(
                "http://{authority}/storm/{n}?size=2000000&chunk=16384&chunk_ms=20&cc=max-age%3D60"
            ))
            .body(())
            .unwrap();
            client = client.ready().await.expect("stream slot");
            let (resp, _) = client.send_request(req, true).expect("stream opens");
            streams.push(resp);
        }
        // Accepted by the edge (it has read and dispatched them), then reset by the client.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(streams);
    }
    // The edge fetched at most its per-connection cap, whatever the client asked for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fetched = e.origin.hits_prefix("/storm/");
    assert!(fetched <= 64, "{fetched} origin fetches for one connection");
    assert!(fetched > 0);
    // Others are served meanwhile.
    let other = tokio::time::timeout(WAIT, e.get("/calm?size=100"))
        .await
        .unwrap();
    assert_eq!(other.status, 200);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_a_request_waits_then_gets_503_with_retry_after() {
    let e = Edge::start_cfg(&[], |c| {
        c.limits.max_fills_per_connection = 2;
        c.timeouts.fill_queue = Duration::from_millis(300);
    })
    .await;
    let mut client = support::h2_connect(e.addr()).await;
    let authority = e.addr().to_string();
    let mut slow = Vec::new();
    for n in 0..2 {
        let req = Request::get(format!(
            "http://{authority}/cap/{n}?delay_ms=3000&cc=max-age%3D60"
        ))
        .body(())
        .unwrap();
        client = client.ready().await.unwrap();
        slow.push(client.send_request(req, true).unwrap().0);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let req = Request::get(format!("http://{authority}/cap/third?cc=max-age%3D60"))
        .body(())
        .unwrap();
    client = client.ready().await.unwrap();
    let started = std::time::Instant::now();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited first"
    );
    assert_eq!(e.origin.hits_prefix("/cap/third"), 0);
    // Joining a fill in flight needs no slot: the same URL as a running fill is served.
    let req = Request::get(format!(
        "http://{authority}/cap/0?delay_ms=3000&cc=max-age%3D60"
    ))
    .body(())
    .unwrap();
    client = client.ready().await.unwrap();
    let (joined, _) = client.send_request(req, true).unwrap();
    let joined = tokio::time::timeout(WAIT, joined).await.unwrap().unwrap();
    assert_eq!(joined.status(), 200);
    // Another connection has its own slots.
    let other = e.get("/cap/other?cc=max-age%3D60").await;
    assert_eq!(other.status, 200);
    drop(slow);
    let metrics = e.node.metrics_text();
    assert_eq!(
        support::metric(&metrics, "tiercel_fills_refused_total").as_deref(),
        Some("1")
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_nobody_reads_stops_at_its_budget_and_stores_nothing() {
    let e = Edge::start_cfg(&[], |c| {
        c.cache.abandoned_fill_max = tiercel_cluster::config::ByteSize::mib(1);
    })
    .await;
    // 32 MiB, slowly: the client reads the head and leaves.
    let pq = "/abandon?size=33554432&chunk=262144&chunk_ms=5&cc=max-age%3D60";
    let mut client = support::h2_connect(e.addr()).await;
    let req = Request::get(format!("http://{}{pq}", e.addr()))
        .body(())
        .unwrap();
    client = client.ready().await.unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(WAIT, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    drop(client);
    // The fill stops well before the whole object (32 MiB at 256 KiB per 5 ms is ~650 ms).
    let deadline = tokio::time::Instant::now() + WAIT;
    while support::metric(&e.node.metrics_text(), "tiercel_fills_abandoned_total").as_deref()
        != Some("1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fill was never abandoned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing partial was kept: the next request is a miss that fetches again.
    let again = e.get(pq).await;
    assert!(!again.is_hit(), "{}", again.header("cache-status"));
    assert_eq!(again.body.len(), 33_554_432);
    assert_eq!(e.origin.hits(pq), 2);
    // A client that reads to the end gets it stored as usual.
    let third = e.get(pq).await;
    assert!(third.is_hit(), "{}", third.header("cache-status"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_over_the_size_cap_without_a_length_is_not_stored_and_its_chunks_go() {
    let e = Edge::start_cfg(&["--memory-cache", "64MiB"], |c| {
        c.cache.max_object_size = tiercel_cluster::config::ByteSize::mib(1);
    })
    .await;
    let before = e.node.engine.storage().memory_usage();
    // 6 MiB with no Content-Length: only the bytes tell it is over the cap.
    let pq = "/big-unknown?size=6291456&nolen=1&cc=max-age%3D60";
    let first = e.get(pq).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body.len(), 6_291_456);
    // Not `stored` (under load the cap may already be past when its head is written, and it
    // then says `detail=not-stored`).
    assert!(
        !first
            .cache_status()
            .split(';')
            .any(|p| p.trim() == "stored"),
        "{}",
        first.cache_status()
    );
    // The chunks written before the cap was passed were deleted, not left to eviction.
    // The fill deletes them as it finishes, which may be just after the client read its last byte.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut after = e.node.engine.storage().memory_usage();
    while after >= before + 512 * 1024 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = e.node.engine.storage().memory_usage();
    }
    assert!(
        after < before + 512 * 1024,
        "memory tier grew from {before} to {after}"
    );
    let second = e.get(pq).await;
    assert!(!second.is_hit());
    assert_eq!(e.origin.hits(pq), 2);
    // Under the cap and announced: stored, and said so.
    let small = "/small-known?size=100000&cc=max-age%3D60";
    let r = e.get(small).await;
    assert!(r.cache_status().contains("stored"), "{}", r.cache_status());
    assert!(e.get(small).await.is_hit());
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_without_a_length_that_ends_mid_chunk_ends_cleanly_and_is_stored() {
    let e = Edge::start(&["--memory-cache", "64MiB"]).await;
    // 1.5 MiB and a byte with no Content-Length: the last chunk is completed short when the
    // body ends, after the client may have read up to it.
    let size = 1_572_865;
    let pq = format!("/unknown-odd?size={size}&nolen=1&cc=max-age%3D60");
    for round in 0..2 {
        let r = tokio::time::timeout(Duration::from_secs(20), e.get(&pq))
            .await
            .expect("the response ends: a reader at the end of a short last chunk must not spin");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), size, "round {round}");
        if round == 1 {
            assert!(r.is_hit(), "{}", r.cache_status());
        }
    }
    assert_eq!(e.origin.hits(&pq), 1);
    e.shutdown().await;
}
