//! kill -9 the leader during a stream of 1000 purges: every acknowledged purge is in the log of
//! every node exactly once, before and after the killed node comes back.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use parking_lot::Mutex;
use support::{ADMIN, Cluster, call, purges};
use tiercel_cluster::purge::wire::PurgeAccepted;

const TOTAL: usize = 1000;
const WORKERS: usize = 16;

/// Sends purge `n` until a node acknowledges it, moving to the next node on any failure, with
/// the same Idempotency-Key every time.
async fn send_until_acked(urls: &[String], n: usize) -> anyhow::Result<PurgeAccepted> {
    let body = format!(r#"{{"urls":["https://example.com/p/{n}"]}}"#);
    let key = format!("failover-{n}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    loop {
        let url = &urls[(n + attempt) % urls.len()];
        let r = call(
            Method::POST,
            &format!("{url}/v1/purges"),
            Some(ADMIN),
            Some(&body),
            &[("idempotency-key", &key)],
        )
        .await;
        match r {
            Ok(r) if r.status == 200 => return r.json(),
            Ok(r) if r.status < 500 => anyhow::bail!("purge {n}: {} {}", r.status, r.text()),
            _ if Instant::now() > deadline => anyhow::bail!("purge {n} never acknowledged"),
            other => {
                if attempt == 0 {
                    eprintln!(
                        "purge {n}: retrying after {:?}",
                        other.map(|r| (r.status, r.text()))
                    );
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_mid_stream_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let mut c = Cluster::builder().start().await?;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    let urls: Vec<String> = (0..3).map(|i| c.url(i)).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<BTreeMap<usize, PurgeAccepted>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (urls, next, acked) = (urls.clone(), next.clone(), acked.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= TOTAL {
                    return anyhow::Ok(());
                }
                let a = send_until_acked(&urls, n).await?;
                acked.lock().insert(n, a);
            }
        }));
    }
    let t0 = Instant::now();
    while acked.lock().len() < 300 {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "too slow before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.kill(leader);
    for w in workers {
        w.await??;
    }
    let acked = acked.lock().clone();
    eprintln!("{TOTAL} purges acknowledged in {:?}", t0.elapsed());
    assert_eq!(acked.len(), TOTAL);
    let last = acked.values().map(|a| a.index).max().unwrap_or(0);
    let check = |node: usize, events: &[tiercel_cluster::purge::wire::LogEvent]| {
        let mut by_url: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, _, p) in purges(events) {
            for u in p.urls {
                by_url.entry(u).or_default().push(id.clone());
            }
        }
        for (n, a) in &acked {
            let url = format!("https://example.com/p/{n}");
            assert_eq!(
                by_url.get(&url),
                Some(&vec![a.id.clone()]),
                "node {node}: purge {n} acked as {a:?}"
            );
        }
        assert_eq!(
            by_url.len(),
            TOTAL,
            "node {node}: no purge the clients did not send"
        );
    };
    for node in (0..3).filter(|i| *i != leader) {
        let events = c.log_until(node, 0, last, Duration::from_secs(15)).await?;
        check(node, &events);
    }
    c.restart(leader).await?;
    let events = c
        .log_until(leader, 0, last, Duration::from_secs(15))
        .await?;
    check(leader, &events);
    Ok(())
}
