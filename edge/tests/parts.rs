//! Objects filled by ranges, chunk by chunk (1 MiB chunks), against the real demo origin with
//! `ranges=1` and a strong ETag: a cold seek asks for the one chunk it lands in, chunks are
//! coalesced, a full GET of a partly stored object asks only for what is missing, a changed
//! representation is never spliced, and what may not be stored is fetched by the client's own
//! range.

mod support;

use http::Request;
use http_body_util::{BodyExt, Full};
use support::*;
use tiercel_cluster::config::Role;
use tiercel_edge::node;
use tiercel_testbed::origin::{Origin, Spec, expected_body};

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 16 * MIB;

fn media(path: &str, extra: &str) -> String {
    format!("{path}?size={SIZE}&ranges=1&etag=v1&cc=max-age%3D600{extra}")
}

/// A plain GET through the edge whose body is left for the caller to read (or not).
async fn start_get(e: &Edge, pq: &str) -> http::Response<hyper::body::Incoming> {
    let req = Request::get(e.url(pq))
        .body(Full::<bytes::Bytes>::default())
        .unwrap();
    e.client.request(req).await.unwrap()
}

/// Waits until no fill is in flight on the edge.
async fn no_fills_in_flight(e: &Edge) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while e.node.engine.fills_in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a fetch never ended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Cold whole GETs in one request (`cache.slice_threshold = 0`), as for an upstream that
/// ignores ranges: for tests of what a whole fetch does.
fn whole_fetches(c: &mut tiercel_cluster::config::NodeConfig) {
    c.cache.slice_threshold = tiercel_cluster::config::ByteSize(0);
}

fn slice(body: &bytes::Bytes, first: u64, last: u64) -> bytes::Bytes {
    body.slice(first as usize..=last as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_seek_fetches_only_the_chunk_it_lands_in() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/seek", "");
    let full = expected_body(&pq, SIZE as usize);

    let r = e
        .get_with(&pq, &[("range", "bytes=10000000-10000999")])
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        "bytes 10000000-10000999/16777216"
    );
    assert_eq!(r.body, slice(&full, 10_000_000, 10_000_999));
    assert!(r.cache_status().contains("stored"), "{}", r.cache_status());
    assert_eq!(e.origin.ranges_asked("/p/seek"), ["bytes=9437184-10485759"]);

    // The same bytes again: from storage.
    let r = e
        .get_with(&pq, &[("range", "bytes=10000000-10000999")])
        .await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(r.body, slice(&full, 10_000_000, 10_000_999));
    assert_eq!(e.origin.hits(&pq), 1);

    // A range across into the next chunk: that chunk alone, checked against the stored ETag.
    let r = e
        .get_with(&pq, &[("range", "bytes=10485000-10486000")])
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, slice(&full, 10_485_000, 10_486_000));
    assert_eq!(
        e.origin.ranges_asked("/p/seek"),
        ["bytes=9437184-10485759", "bytes=10485760-11534335"]
    );
    let if_range: Vec<_> = e
        .origin
        .requests()
        .iter()
        .filter_map(|r| r.headers.get("if-range").cloned())
        .collect();
    assert_eq!(if_range, ["\"v1\""]);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_cold_seeks_to_one_place_make_one_upstream_request() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/crowd", "");
    let full = expected_body(&pq, SIZE as usize);
    let gets = (0..50).map(|_| e.get_with(&pq, &[("range", "bytes=5000000-5000099")]));
    for r in futures_util::future::join_all(gets).await {
        assert_eq!(r.status, 206);
        assert_eq!(r.body, slice(&full, 5_000_000, 5_000_099));
    }
    assert_eq!(e.origin.hits(&pq), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_get_of_a_partly_stored_object_asks_only_for_the_missing_chunks() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/whole", "");
    let full = expected_body(&pq, SIZE as usize);
    let r = e.get_with(&pq, &[("range", "bytes=3145728-3145827")]).await;
    assert_eq!(r.status, 206);

    let r = e.get(&pq).await;
    assert_eq!(r.status, 200);
    assert!(
        r.cache_status().contains("fwd=partial"),
        "{}",
        r.cache_status()
    );
    assert!(!r.is_hit());
    assert_eq!(r.header("content-length"), SIZE.to_string());
    assert!(r.body == full, "the whole body, byte for byte");
    let asked = e.origin.ranges_asked("/p/whole");
    assert_eq!(
        asked.len(),
        16,
        "one request per chunk, chunk 3 once: {asked:?}"
    );
    assert_eq!(
        asked
            .iter()
            .filter(|a| *a == "bytes=3145728-4194303")
            .count(),
        1
    );
    assert!(asked.iter().all(|a| a.starts_with("bytes=")), "{asked:?}");

    // Complete now: served from storage.
    let r = e.get(&pq).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert!(r.body == full);
    assert_eq!(e.origin.hits(&pq), 16);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_representation_that_changes_mid_fill_is_never_spliced() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/changing", "");
    let v1 = expected_body(&pq, SIZE as usize);
    let r = e.get_with(&pq, &[("range", "bytes=0-99")]).await;
    assert_eq!(r.body, slice(&v1, 0, 99));

    // The origin publishes another version under the same URL.
    e.origin
        .set("/p/changing", Spec::parse("etag=v2&version=2"));
    let v2 = expected_body(&format!("{pq}&version=2"), SIZE as usize);
    assert_ne!(v1.slice(..100), v2.slice(..100));

    // Chunk 0 is stored (v1); chunk 1 comes back as v2: the response stops, never mixing them.
    let req = Request::get(e.url(&pq))
        .header("range", "bytes=0-2097151")
        .body(Full::<bytes::Bytes>::default())
        .unwrap();
    let resp = e.client.request(req).await.unwrap();
    assert_eq!(resp.status(), 206);
    let body = resp.into_body().collect().await;
    assert!(body.is_err(), "a spliced body must not complete");

    // The next request fills afresh, all v2.
    let r = e.get_with(&pq, &[("range", "bytes=0-2097151")]).await;
    assert_eq!(r.status, 206);
    assert!(r.body == slice(&v2, 0, 2_097_151), "all of the new version");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_ignores_ranges_is_fetched_whole() {
    let e = Edge::start(&[]).await;
    // Smaller than `cache.abandoned_fill_max`: the whole fetch finishes after the client left.
    let size = 4 * MIB;
    let pq = format!("/p/noranges?size={size}&etag=v1&cc=max-age%3D600");
    let full = expected_body(&pq, size as usize);
    let r = e.get_with(&pq, &[("range", "bytes=100-199")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, slice(&full, 100, 199));
    assert_eq!(
        e.origin.hits(&pq),
        2,
        "the chunk asked, then the whole object"
    );
    // Served from the whole object (still arriving, or stored); a seek far ahead of a whole
    // fetch still arriving asks for its chunk first, and gets a 200 again.
    let r = e.get_with(&pq, &[("range", "bytes=3000000-3000099")]).await;
    assert_eq!(r.body, slice(&full, 3_000_000, 3_000_099));
    assert!(e.origin.hits(&pq) <= 3);
    no_fills_in_flight(&e).await;
    let before = e.origin.hits(&pq);
    let r = e.get_with(&pq, &[("range", "bytes=3000000-3000099")]).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(e.origin.hits(&pq), before, "stored whole");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_may_not_be_stored_is_fetched_by_the_clients_own_range() {
    let e = Edge::start(&[]).await;
    let path = "/p/private";
    let pq = format!("{path}?size={SIZE}&ranges=1&etag=v1&cc=private");
    let full = expected_body(&pq, SIZE as usize);
    let r = e.get_with(&pq, &[("range", "bytes=3000000-3000099")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, slice(&full, 3_000_000, 3_000_099));
    assert_eq!(
        e.origin.ranges_asked(path),
        ["bytes=2097152-3145727", "bytes=3000000-3000099"]
    );
    // Known private now: the next seek goes upstream as it is, and nothing whole is fetched.
    let r = e
        .get_with(
            &pq,
            &[("range", "bytes=7000000-7000009"), ("if-range", "\"v1\"")],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, slice(&full, 7_000_000, 7_000_009));
    let asked = e.origin.ranges_asked(path);
    assert_eq!(
        asked.last().map(String::as_str),
        Some("bytes=7000000-7000009")
    );
    assert_eq!(asked.len(), 3);
    let forwarded_if_range = e
        .origin
        .requests()
        .last()
        .unwrap()
        .headers
        .get("if-range")
        .cloned();
    assert_eq!(forwarded_if_range.unwrap(), "\"v1\"");

    // A client's no-store: its range goes upstream too.
    let pq2 = media("/p/nostore", "");
    let r = e
        .get_with(
            &pq2,
            &[("range", "bytes=10-19"), ("cache-control", "no-store")],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(e.origin.ranges_asked("/p/nostore"), ["bytes=10-19"]);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_past_the_end_is_416_with_the_length() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/short", "");
    let r = e.get_with(&pq, &[("range", "bytes=20000000-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), "bytes */16777216");
    assert!(r.body.is_empty());
    assert_eq!(e.origin.hits(&pq), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_chunks_of_a_partial_object_survive_a_restart() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cfg = disk_config(&origin.url(), dir.path(), &[]);
    let pq = media("/p/restart", "");
    let full = expected_body(&pq, SIZE as usize);
    let get = |addr: std::net::SocketAddr, range: &'static str| {
        let pq = pq.clone();
        async move {
            let req = Request::get(format!("http://{addr}{pq}"))
                .header("range", range)
                // The key holds the host: the same one across the restart's new port.
                .header("host", "cdn.example")
                .body(Full::default())
                .unwrap();
            send(&h1_client(), req).await
        }
    };
    let n = node::start(Role::Edge, &cfg).await.unwrap();
    let r = get(n.listen.unwrap(), "bytes=6000000-6000099").await;
    assert_eq!(r.body, slice(&full, 6_000_000, 6_000_099));
    n.shutdown().await;

    let n = node::start(Role::Edge, &cfg).await.unwrap();
    let r = get(n.listen.unwrap(), "bytes=6000000-6000099").await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(r.body, slice(&full, 6_000_000, 6_000_099));
    assert_eq!(origin.hits(&pq), 1);
    // Another chunk of the same object: fetched alone, and the two never mix.
    let r = get(n.listen.unwrap(), "bytes=1000-1099").await;
    assert_eq!(r.body, slice(&full, 1000, 1099));
    assert_eq!(origin.hits(&pq), 2);
    n.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_fetch_cut_short_keeps_its_complete_chunks() {
    let e = Edge::start_cfg(&[], whole_fetches).await;
    // 256 KiB every 10 ms: the client is seen gone long before the body could end.
    let pq = media("/p/abandoned", "&chunk=262144&chunk_ms=10");
    let full = expected_body(&pq, SIZE as usize);
    // A client starts the whole object and leaves: the fetch stops past
    // `cache.abandoned_fill_max` (8 MiB), keeping the chunks it completed.
    let resp = start_get(&e, &pq).await;
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);

    no_fills_in_flight(&e).await;
    let abandoned = &e.node.engine.stats().fills_abandoned;
    assert_eq!(abandoned.load(std::sync::atomic::Ordering::Relaxed), 1);
    let r = e.get_with(&pq, &[("range", "bytes=2000000-2000099")]).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(r.body, slice(&full, 2_000_000, 2_000_099));
    assert_eq!(
        e.origin.hits(&pq),
        1,
        "chunk 1 came from the abandoned fetch"
    );
    // Past what it fetched: that chunk alone, by range.
    let r = e
        .get_with(&pq, &[("range", "bytes=13000000-13000099")])
        .await;
    assert_eq!(r.body, slice(&full, 13_000_000, 13_000_099));
    assert_eq!(
        e.origin.ranges_asked("/p/abandoned"),
        ["-", "bytes=12582912-13631487"]
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_mid_fill_objects_are_served_whole_or_fetched_again_never_torn() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().to_str().unwrap().to_string();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = origin.url();
    let args = [
        "--origin",
        url.as_str(),
        "--disk-cache",
        disk.as_str(),
        "--disk-cache-size",
        "128MiB",
    ];
    let client = h1_client();
    let get = |listen: String, pq: String, range: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut b = Request::get(format!("http://{listen}{pq}")).header("host", "cdn.example");
            if let Some(r) = range {
                b = b.header("range", r);
            }
            send(&client, b.body(Full::default()).unwrap()).await
        }
    };
    // A: stored in part. B: a whole fetch in the middle of its body (256 KiB every 20 ms).
    let a = media("/p/kill-a", "");
    let b =
        format!("/p/kill-b?size={SIZE}&etag=v1&ranges=1&cc=max-age%3D600&chunk=262144&chunk_ms=20");
    let (full_a, full_b) = (
        expected_body(&a, SIZE as usize),
        expected_body(&b, SIZE as usize),
    );

    let mut edge = EdgeProcess::spawn(&[], &args).await;
    let r = get(
        edge.listen.clone(),
        a.clone(),
        Some("bytes=3200000-3200099"),
    )
    .await;
    assert_eq!(r.body, slice(&full_a, 3_200_000, 3_200_099));
    let req = Request::get(format!("http://{}{b}", edge.listen))
        .header("host", "cdn.example")
        .body(Full::<bytes::Bytes>::default())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut got = 0;
    while got < 2 * MIB as usize {
        let frame = body.frame().await.unwrap().unwrap();
        got += frame.data_ref().map_or(0, |d| d.len());
    }
    edge.child.kill().unwrap();
    edge.child.wait().unwrap();
    drop(body);

    let edge = EdgeProcess::spawn(&[], &args).await;
    let r = get(
        edge.listen.clone(),
        a.clone(),
        Some("bytes=3200000-3200099"),
    )
    .await;
    assert_eq!(r.body, slice(&full_a, 3_200_000, 3_200_099));
    let r = get(edge.listen.clone(), a.clone(), None).await;
    assert_eq!(r.status, 200);
    assert!(r.body == full_a, "A whole after the restart");
    let r = get(edge.listen.clone(), b.clone(), None).await;
    assert_eq!(r.status, 200);
    assert!(r.body == full_b, "B whole after the restart");
    let r = get(
        edge.listen.clone(),
        b.clone(),
        Some("bytes=1000000-1000099"),
    )
    .await;
    assert_eq!(r.body, slice(&full_b, 1_000_000, 1_000_099));
    drop(edge);
    origin.shutdown().await;
}

/// The parts of a `multipart/byteranges` body: (Content-Range, bytes).
fn byteranges(r: &Resp) -> Vec<(String, bytes::Bytes)> {
    let ct = r.header("content-type");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .unwrap_or_else(|| panic!("no boundary in {ct:?}"));
    let delim = format!("\r\n--{boundary}");
    let body = &r.body[..];
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        assert!(rest.starts_with(delim.as_bytes()), "a delimiter");
        rest = &rest[delim.len()..];
        if rest == b"--\r\n" {
            return out;
        }
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_string();
        let (a, b) = range
            .strip_prefix("bytes ")
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .split_once('-')
            .unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        rest = &rest[head_end..];
        out.push((range, bytes::Bytes::copy_from_slice(&rest[..n])));
        rest = &rest[n..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_ranges_are_a_multipart_answer_from_whole_and_partial_objects() {
    let e = Edge::start(&[]).await;
    // A whole stored object.
    let pq = "/p/multi?size=5000&cc=max-age%3D600&h=content-type:text/plain";
    let full = expected_body(pq, 5000);
    assert_eq!(e.get(pq).await.status, 200);
    let r = e
        .get_with(pq, &[("range", "bytes=0-9, 100-109, 4990-")])
        .await;
    assert_eq!(r.status, 206);
    assert!(r.is_hit());
    assert_eq!(r.header("content-length"), r.body.len().to_string());
    let parts = byteranges(&r);
    assert_eq!(
        parts,
        [
            ("bytes 0-9/5000".to_string(), slice(&full, 0, 9)),
            ("bytes 100-109/5000".to_string(), slice(&full, 100, 109)),
            ("bytes 4990-4999/5000".to_string(), slice(&full, 4990, 4999)),
        ]
    );
    let part_heads = r
        .body
        .windows(26)
        .filter(|w| w == b"Content-Type: text/plain\r\n")
        .count();
    assert_eq!(part_heads, 3, "each part names the representation's type");
    // Overlapping ranges: the whole representation.
    let r = e.get_with(pq, &[("range", "bytes=0-9,5-20")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, full);

    // An object stored in part: the missing chunk is fetched by range, then both parts sent.
    let big = media("/p/multi-big", "");
    let full = expected_body(&big, SIZE as usize);
    e.get_with(&big, &[("range", "bytes=0-99")]).await;
    let r = e
        .get_with(&big, &[("range", "bytes=0-99,8000000-8000099")])
        .await;
    assert_eq!(r.status, 206);
    let parts = byteranges(&r);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].1, slice(&full, 0, 99));
    assert_eq!(
        parts[1],
        (
            "bytes 8000000-8000099/16777216".to_string(),
            slice(&full, 8_000_000, 8_000_099)
        )
    );
    assert_eq!(
        e.origin.ranges_asked("/p/multi-big"),
        ["bytes=0-1048575", "bytes=7340032-8388607"]
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_far_ahead_of_a_whole_fetch_does_not_wait_for_it() {
    let e = Edge::start_cfg(&[], whole_fetches).await;
    // 256 KiB every 20 ms: the whole body takes 1.3 s.
    let pq = media("/p/ahead", "&chunk=262144&chunk_ms=20");
    let full = expected_body(&pq, SIZE as usize);
    let resp = start_get(&e, &pq).await;
    let whole = tokio::spawn(async move { resp.into_body().collect().await.map(|b| b.to_bytes()) });

    let started = std::time::Instant::now();
    let r = e
        .get_with(&pq, &[("range", "bytes=15000000-15000099")])
        .await;
    let took = started.elapsed();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, slice(&full, 15_000_000, 15_000_099));
    assert!(
        took < std::time::Duration::from_millis(900),
        "waited {took:?}"
    );
    assert_eq!(
        e.origin.ranges_asked("/p/ahead"),
        ["-", "bytes=14680064-15728639"]
    );
    assert!(
        whole.await.unwrap().unwrap() == full,
        "the whole fetch is unharmed"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_no_cache_is_forwarded_and_leaves_a_partly_stored_object_alone() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/nocache", "");
    let full = expected_body(&pq, SIZE as usize);
    e.get_with(&pq, &[("range", "bytes=100-199")]).await;
    let r = e
        .get_with(
            &pq,
            &[("range", "bytes=100-199"), ("cache-control", "no-cache")],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, slice(&full, 100, 199));
    assert_eq!(
        e.origin.ranges_asked("/p/nocache"),
        ["bytes=0-1048575", "bytes=100-199"],
        "the validated answer came from the origin, for the client's own range"
    );
    let r = e.get_with(&pq, &[("range", "bytes=100-199")]).await;
    assert!(r.is_hit(), "still stored: {}", r.cache_status());
    assert_eq!(e.origin.hits(&pq), 2);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_or_416_from_a_partly_stored_object_fetches_no_chunk() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/cond", "");
    e.get_with(&pq, &[("range", "bytes=0-9")]).await;
    // Chunk 12 is not stored; the answer needs none of it.
    let r = e
        .get_with(
            &pq,
            &[
                ("range", "bytes=13000000-13000009"),
                ("if-none-match", "\"v1\""),
            ],
        )
        .await;
    assert_eq!(r.status, 304);
    let r = e.get_with(&pq, &[("range", "bytes=99999999-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), "bytes */16777216");
    assert_eq!(e.origin.ranges_asked("/p/cond"), ["bytes=0-1048575"]);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_whole_get_asks_for_a_slice_then_the_rest_chunk_by_chunk() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/sliced", "");
    let full = expected_body(&pq, SIZE as usize);
    let r = e.get(&pq).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), SIZE.to_string());
    assert!(
        r.body == full,
        "the body is the representation, byte for byte"
    );
    // `cache.slice_threshold` (8 MiB) first, then each later 1 MiB chunk against the ETag.
    // (A chunk is fetched while the one before it is sent: they may arrive in either order.)
    let mut asked = e.origin.ranges_asked("/p/sliced");
    asked[1..].sort();
    let mut want = vec!["bytes=0-8388607".to_string()];
    want.extend((8..16).map(|i| format!("bytes={}-{}", i * MIB, (i + 1) * MIB - 1)));
    want[1..].sort();
    assert_eq!(asked, want);
    let if_range = e
        .origin
        .requests()
        .iter()
        .filter(|r| r.headers.contains_key("if-range"))
        .count();
    assert_eq!(
        if_range, 8,
        "every chunk after the slice is checked against it"
    );
    // The chunks one response fetches are one trace upstream (the client sent none).
    let traces: std::collections::HashSet<String> = e
        .origin
        .requests()
        .iter()
        .filter(|r| r.headers.contains_key("if-range"))
        .filter_map(|r| {
            r.headers
                .get("traceparent")?
                .to_str()
                .ok()
                .map(str::to_string)
        })
        .map(|t| t.split('-').nth(1).unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        traces.len(),
        1,
        "one trace id across the chunk fetches: {traces:?}"
    );

    // Complete now: a hit, nothing more asked.
    no_fills_in_flight(&e).await;
    let r = e.get(&pq).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert!(r.body == full);
    assert_eq!(e.origin.hits(&pq), 9);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_within_the_slice_and_origins_that_ignore_ranges_take_one_request() {
    let e = Edge::start(&[]).await;
    // 3 MiB: all of it in the answer to the slice, stored whole.
    let small = "/p/small?size=3145728&ranges=1&etag=v1&cc=max-age%3D600";
    let r = e.get(small).await;
    assert_eq!(r.status, 200);
    assert!(r.body == expected_body(small, 3 * MIB as usize));
    assert_eq!(e.origin.ranges_asked("/p/small"), ["bytes=0-8388607"]);
    no_fills_in_flight(&e).await;
    assert!(e.get(small).await.is_hit());

    // 16 MiB from an origin that answers 200 to a Range: streamed whole from that answer.
    let big = "/p/noranges?size=16777216&etag=v1&cc=max-age%3D600";
    let r = e.get(big).await;
    assert_eq!(r.status, 200);
    assert!(r.body == expected_body(big, SIZE as usize));
    assert_eq!(e.origin.hits(big), 1);
    no_fills_in_flight(&e).await;
    let r = e.get(big).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(e.origin.hits(big), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_private_object_costs_one_wasted_slice_then_passes_whole() {
    let e = Edge::start(&[]).await;
    let pq = format!("/p/private?size={SIZE}&ranges=1&etag=v1&cc=private");
    let full = expected_body(&pq, SIZE as usize);
    let r = e.get(&pq).await;
    assert_eq!(r.status, 200);
    assert!(r.body == full);
    // The slice may not be stored: the whole object is asked for instead, never spliced
    // from parts that are not kept.
    assert_eq!(
        e.origin.ranges_asked("/p/private"),
        ["bytes=0-8388607", "-"]
    );
    // Marked hit-for-miss: the next request goes whole at once.
    let r = e.get(&pq).await;
    assert!(r.body == full);
    assert_eq!(
        e.origin.ranges_asked("/p/private"),
        ["bytes=0-8388607", "-", "-"]
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_with_authorization_goes_upstream_as_it_came() {
    let e = Edge::start(&[]).await;
    let pq = media("/p/auth", "");
    let full = expected_body(&pq, SIZE as usize);
    let r = e
        .get_with(
            &pq,
            &[
                ("range", "bytes=3000000-3000099"),
                ("authorization", "Bearer viewer-7"),
            ],
        )
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, slice(&full, 3_000_000, 3_000_099));
    // One request, the client's own range: no aligned part first.
    assert_eq!(e.origin.ranges_asked("/p/auth"), ["bytes=3000000-3000099"]);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_whose_validator_is_withheld_from_storage_is_fetched_whole() {
    let e = Edge::start(&[]).await;
    // `private="etag"`: stored without its ETag, so no later chunk could be checked against
    // it. The slice is dropped and the object fetched whole, never stored as a slice.
    let pq = format!(
        "/p/privetag?size={SIZE}&ranges=1&etag=v1&cc=max-age%3D600%2C%20private%3D%22etag%22"
    );
    let full = expected_body(&pq, SIZE as usize);
    let r = e.get(&pq).await;
    assert_eq!(r.status, 200);
    assert!(r.body == full, "the whole body");
    assert_eq!(
        e.origin.ranges_asked("/p/privetag"),
        ["bytes=0-8388607", "-"]
    );
    no_fills_in_flight(&e).await;
    let r = e.get(&pq).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert!(r.body == full);
    e.shutdown().await;
}
