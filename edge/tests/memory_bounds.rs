//! The memory tier keeps to its size: the real `tiercel-edge` binary's resident memory while a
//! 64 MiB tier is filled past its size with small objects, 1 KiB variants and tag-heavy
//! objects, the three kinds that used to be held at several times what they were counted; and
//! the caps on tags, Vary width and variants, each said in Cache-Status.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tiercel_testbed::origin::Origin;

mod support;
use support::{Edge, EdgeProcess, Resp, h1_client, metric, send};

const TIER: u64 = 64 * 1024 * 1024;

async fn spawn_edge(origin: &str) -> EdgeProcess {
    EdgeProcess::spawn(&[], &["--origin", origin, "--memory-cache", "64MiB"]).await
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status");
    kb * 1024
}

async fn memory_tier_bytes(edge: &EdgeProcess) -> u64 {
    let client = h1_client();
    let req = Request::get(format!("http://{}/metrics", edge.admin))
        .body(Full::default())
        .unwrap();
    let text = String::from_utf8_lossy(&send(&client, req).await.body).into_owned();
    metric(&text, "tiercel_storage_memory_bytes")
        .and_then(|v| v.parse().ok())
        .expect("memory tier metric")
}

/// Whether our Cache-Status member says the response was stored.
fn stored(resp: &Resp) -> bool {
    resp.cache_status().split(';').any(|p| p.trim() == "stored")
}

/// Sends requests `from..to` made by `make`, 16 at a time; every one must be a 200 stored.
async fn run<F>(edge: &EdgeProcess, from: usize, to: usize, make: Arc<F>)
where
    F: Fn(usize) -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let listen = edge.listen.clone();
        let make = make.clone();
        workers.spawn(async move {
            let client = h1_client();
            for i in (from + w..to).step_by(16) {
                let (pq, headers) = make(i);
                let mut b = Request::get(format!("http://{listen}{pq}"));
                for (k, v) in &headers {
                    b = b.header(*k, v.as_str());
                }
                let resp: Resp = send(&client, b.body(Full::<Bytes>::default()).unwrap()).await;
                assert_eq!(resp.status, 200, "{pq}");
                assert!(stored(&resp), "{pq}: {}", resp.header("cache-status"));
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
}

/// Fills the tier with `make`'s objects until it reports itself full, then as many again
/// as half of that, so eviction has been running; returns how many objects it sent.
async fn overfill<F>(edge: &EdgeProcess, start: usize, make: F) -> usize
where
    F: Fn(usize) -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut sent = start;
    let step = 2000;
    while memory_tier_bytes(edge).await < TIER * 9 / 10 {
        run(edge, sent, sent + step, make.clone()).await;
        sent += step;
        assert!(sent - start < 2_000_000, "the tier never fills");
    }
    let filled = sent - start;
    run(edge, sent, sent + filled / 2, make).await;
    sent + filled / 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_within_one_and_a_half_tiers_for_small_objects_variants_and_tags() {
    support::init_logs();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let edge = spawn_edge(&origin.url()).await;
    let pid = edge.child.id();
    run(
        &edge,
        0,
        200,
        Arc::new(|i| (format!("/warm/{i}?size=100&cc=max-age%3D3600"), vec![])),
    )
    .await;
    let baseline = rss_bytes(pid);
    let bound = baseline + TIER * 3 / 2;

    let n = overfill(&edge, 0, |i| {
        (format!("/small/{i}?size=100&cc=max-age%3D3600"), vec![])
    })
    .await;
    let small = rss_bytes(pid);

    let n = overfill(&edge, n, |i| {
        (
            format!("/variants/{}?size=1024&vary=x-v&cc=max-age%3D3600", i / 50),
            vec![("x-v", (i % 50).to_string())],
        )
    })
    .await;
    let variants = rss_bytes(pid);

    // 200 tags of 40 bytes: within the caps, 8 KiB of keys per object.
    let tags: Vec<String> = (0..200).map(|t| format!("{t:040}")).collect();
    let tags = tags.join(",");
    overfill(&edge, n, move |i| {
        (
            format!("/tags/{i}?size=100&cc=max-age%3D3600&tags={tags}"),
            vec![],
        )
    })
    .await;
    let tagged = rss_bytes(pid);

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "baseline {:.1} MiB; after small objects {:.1}, variants {:.1}, tags {:.1}; bound {:.1}",
        mib(baseline),
        mib(small),
        mib(variants),
        mib(tagged),
        mib(bound)
    );
    // The high-water mark too: RSS stayed under the bound all along, not only at the three
    // moments measured.
    let peak = peak_rss_bytes(pid);
    for (what, rss) in [
        ("small objects", small),
        ("variants", variants),
        ("tags", tagged),
        ("peak over the whole run", peak),
    ] {
        assert!(
            rss <= bound,
            "{what}: RSS {:.1} MiB over {:.1} MiB (baseline {:.1} + 1.5 x 64 MiB tier)",
            mib(rss),
            mib(bound),
            mib(baseline)
        );
    }
    origin.shutdown().await;
}

async fn twice(e: &Edge, pq: &str, headers: &[(&str, &str)]) -> (Resp, Resp) {
    (e.get_with(pq, headers).await, e.get_with(pq, headers).await)
}

#[tokio::test]
async fn responses_over_the_tag_vary_and_variant_caps_are_served_not_stored() {
    let e = Edge::start(&[]).await;
    let cc = "cc=max-age%3D3600";

    let many: Vec<String> = (0..1001).map(|t| format!("t{t}")).collect();
    let pq = format!("/many-tags?{cc}&tags={}", many.join(","));
    let (first, second) = twice(&e, &pq, &[]).await;
    assert_eq!(first.status, 200);
    assert!(
        first.cache_status().contains("detail=too-many-tags"),
        "{}",
        first.header("cache-status")
    );
    assert!(!second.is_hit());
    assert_eq!(e.origin.hits(&pq), 2);

    let long: Vec<String> = (0..20).map(|t| format!("{t:01000}")).collect();
    let pq = format!("/long-tags?{cc}&tags={}", long.join(","));
    let (first, second) = twice(&e, &pq, &[]).await;
    assert!(first.cache_status().contains("detail=tags-too-long"));
    assert!(!second.is_hit());

    let fields: Vec<String> = (0..17).map(|f| format!("x-f{f}")).collect();
    let pq = format!("/wide-vary?{cc}&vary={}", fields.join(","));
    let (first, second) = twice(&e, &pq, &[]).await;
    assert!(first.cache_status().contains("detail=vary-too-wide"));
    assert!(!second.is_hit());

    // Within the caps, the same kinds of response are stored.
    let pq = format!("/few-tags?{cc}&tags={}", many[..1000].join(","));
    let (_, second) = twice(&e, &pq, &[]).await;
    assert!(second.is_hit(), "{}", second.header("cache-status"));

    // 100 variants of one URL are stored; the 101st is served, not stored; the stored ones
    // still hit.
    let pq = format!("/variants?{cc}&vary=x-v");
    for v in 0..100 {
        let v = v.to_string();
        let (first, second) = twice(&e, &pq, &[("x-v", &v)]).await;
        assert!(stored(&first), "variant {v}");
        assert!(second.is_hit(), "variant {v}");
    }
    let (first, second) = twice(&e, &pq, &[("x-v", "100")]).await;
    assert!(
        first.cache_status().contains("detail=too-many-variants"),
        "{}",
        first.header("cache-status")
    );
    assert!(!second.is_hit());
    assert!(e.get_with(&pq, &[("x-v", "7")]).await.is_hit());
    e.shutdown().await;
}

fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status");
    kb * 1024
}

/// A body read to the end without keeping it: (bytes, whether it ended cleanly).
async fn drain(resp: hyper::Response<hyper::body::Incoming>) -> (u64, bool) {
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => return (n, false),
        }
    }
    (n, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_object_streams_through_a_16_mib_tier_and_slow_readers_are_not_buffered() {
    const GIB: u64 = 1 << 30;
    const SLOW_READERS: u64 = 1000;
    // A thousand client sockets here, as many in the edge: more than a default 1024.
    tiercel_cluster::conn::raise_fd_limit();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let log_file = tempfile::NamedTempFile::new().unwrap();
    let edge = EdgeProcess::spawn_logged(
        &[],
        &["--origin", &origin.url(), "--memory-cache", "16MiB"],
        Some(log_file.as_file()),
    )
    .await;
    let log = || {
        std::fs::read_to_string(log_file.path())
            .unwrap_or_default()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    };
    // A strong validator and range support: readers that fall behind the fill (its chunks
    // evicted from the small tier) fetch what they need by range instead of being cut off.
    let pq = format!("/big/film?size={GIB}&cc=max-age%3D600&etag=v1&ranges=1");
    let client = h1_client();
    let request = || {
        Request::get(format!("http://{}{pq}", edge.listen))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    // 1000 readers that take the first bytes and then stop reading, and one that reads it all.
    let mut stalled = Vec::new();
    let mut cut = 0;
    for _ in 0..SLOW_READERS {
        let resp = client.request(request()).await.unwrap();
        let mut body = resp.into_body();
        use http_body_util::BodyExt;
        match body.frame().await {
            Some(Ok(f)) if f.is_data() => stalled.push(body),
            _ => cut += 1,
        }
    }
    assert_eq!(cut, 0, "late joiners are served, not cut off");
    let resp = client.request(request()).await.unwrap();
    let Ok((n, clean)) =
        tokio::time::timeout(std::time::Duration::from_secs(120), drain(resp)).await
    else {
        panic!(
            "1 GiB not read within 2 minutes; the edge said, last line first:\n{}",
            log()
        );
    };
    assert!(
        clean && n == GIB,
        "read {n} bytes (clean: {clean}); the edge said, last line first:\n{}",
        log()
    );
    let peak = peak_rss_bytes(edge.child.id());
    assert!(peak < 300 << 20, "peak RSS {} MiB", peak >> 20);
    // One whole fetch, plus range requests for the chunks that readers behind the fill needed
    // after the 16 MiB tier evicted them: the fast reader's 1024 at most, and the few each
    // stalled reader's connection took before its socket filled (bounded, not the object).
    let asked = origin.hits(&pq);
    assert!(
        (1..=1 + 1024 + SLOW_READERS * 4).contains(&asked),
        "{asked} origin requests"
    );
    eprintln!("peak RSS {} MiB, {asked} origin requests", peak >> 20);
    drop(stalled);
}
