//! Concurrent purges are batched into shared log entries, so committed purges per second are
//! far above one fsync round per purge.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use support::{ADMIN, Cluster, call, purge_id_counts};
use tiercel_cluster::purge::wire::PurgeAccepted;

const TOTAL: usize = 2000;
const CLIENTS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_purges_are_batched() -> anyhow::Result<()> {
    // Streams read most of these from the log store (the in-memory window is small).
    let c = Cluster::builder()
        .arg("--log-cache-entries")
        .arg("16")
        .start()
        .await?;
    let leader = c.wait_leader(Duration::from_secs(10)).await?;
    let url = format!("{}/v1/purges", c.url(leader));
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (url, next) = (url.clone(), next.clone());
        tasks.spawn(async move {
            let mut acked = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= TOTAL {
                    return anyhow::Ok(acked);
                }
                let body = format!(r#"{{"tags":["t{n}"]}}"#);
                let r = call(Method::POST, &url, Some(ADMIN), Some(&body), &[]).await?;
                anyhow::ensure!(r.status == 200, "{}", r.text());
                acked.push(r.json::<PurgeAccepted>()?);
            }
        });
    }
    let mut acked = Vec::new();
    while let Some(r) = tasks.join_next().await {
        acked.extend(r??);
    }
    let elapsed = t0.elapsed();
    let per_sec = TOTAL as f64 / elapsed.as_secs_f64();
    let entries: BTreeSet<u64> = acked.iter().map(|a| a.index).collect();
    eprintln!(
        "{TOTAL} purges from {CLIENTS} clients in {elapsed:?}: {per_sec:.0}/s in {} log entries",
        entries.len()
    );
    assert_eq!(acked.len(), TOTAL);
    assert!(
        entries.len() * 2 < TOTAL,
        "batching: {} entries for {TOTAL} purges",
        entries.len()
    );
    assert!(per_sec > 100.0, "{per_sec:.0} purges/s");
    // Ids are unique and each appears once in the log.
    let last = entries.iter().max().copied().unwrap_or(0);
    let counts = purge_id_counts(
        &c.log_until((leader + 1) % 3, 0, last, Duration::from_secs(10))
            .await?,
    );
    assert_eq!(counts.len(), TOTAL);
    assert!(counts.values().all(|n| *n == 1));
    for a in &acked {
        assert_eq!(counts.get(&a.id), Some(&1), "{a:?}");
    }
    Ok(())
}
