//! `purge-propagation`: how fast a purge reaches every node, and how many purges per second the
//! purge-service commits.
//!
//! ```text
//!  3 × tiercel-purge (real processes, loopback) ◀── POST /v1/purges (one at a time)
//!        │ GET /v1/log NDJSON
//!        ▼
//!  N in-process followers (tiercel_cluster::follower) ── listener stamps each application
//! ```
//!
//! Propagation is measured from the moment the POST is answered (the purge is committed) to the
//! moment the last of the N followers applied it, as stamped in its listener; N = 10 and 100 by
//! default, 200 purges each. Throughput is committed purges per second with many concurrent
//! submitters, which the leader batches into shared log entries.
//!
//! Build the service first in the same profile (`cargo build --release -p tiercel-purge`), then
//! `cargo run --release -p tiercel-benches --bin purge-propagation`. Exits 1 when the p99 for the
//! largest follower count misses `--target-p99-ms`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use hdrhistogram::Histogram;
use tiercel_benches::purge_cluster::{ADMIN, Http, PurgeCluster, Stamp, Tracker, purge_bin};
use tiercel_cluster::follower::{FollowerConfig, FollowerHandle, start_follower};

/// Purge propagation and throughput against a real 3-node purge-service.
#[derive(Debug, Parser)]
struct Args {
    /// The `tiercel-purge` binary (default: next to this one).
    #[arg(long)]
    purge_bin: Option<PathBuf>,
    /// Follower counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    followers: Vec<usize>,
    /// Purges measured per follower count.
    #[arg(long, default_value_t = 200)]
    purges: usize,
    /// Concurrent submitters in the throughput run.
    #[arg(long, default_value_t = 32)]
    submitters: usize,
    /// Purges in the throughput run (0: skip it).
    #[arg(long, default_value_t = 3000)]
    throughput_purges: usize,
    /// Fail when the p99 at the largest follower count is above this (milliseconds; 0: never).
    #[arg(long, default_value_t = 50.0)]
    target_p99_ms: f64,
    /// Also print, for slow purges, which node the last follower streamed from.
    #[arg(long)]
    verbose: bool,
}

struct Row {
    followers: usize,
    from_ack: Histogram<u64>,
    from_send: Histogram<u64>,
}

async fn propagation(
    c: &PurgeCluster,
    http: &Http,
    n: usize,
    purges: usize,
    verbose: bool,
) -> Result<(Row, Vec<FollowerHandle>)> {
    let tracker = Arc::new(Tracker::new(u32::try_from(n)?));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let servers = (0..3).map(|k| c.urls[(i + k) % 3].clone()).collect();
        let cfg = FollowerConfig {
            token: Some(ADMIN.to_string()),
            ..FollowerConfig::new(servers, format!("bench-{n}-{i}"), "edge")
        };
        let (_, h) = start_follower(cfg, Arc::new(Stamp(tracker.clone(), i))).await?;
        handles.push(h);
    }
    let leader = c.leader(http).await?;
    let mut row = Row {
        followers: n,
        from_ack: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        from_send: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    // Warm-up: every follower connected and caught up.
    for k in 0..5 {
        let url = format!("https://bench.example/warm/{n}/{k}");
        http.purge(&leader, &url).await?;
        tracker
            .all_applied(&url[8..], Duration::from_secs(30))
            .await?;
        // Let the first connections and reports settle.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for k in 0..purges {
        let url = format!("https://bench.example/p/{n}/{k}");
        let sent = Instant::now();
        http.purge(&leader, &url).await?;
        let acked = Instant::now();
        let (last, who) = tracker
            .all_applied(&url[8..], Duration::from_secs(10))
            .await?;
        if verbose && last.saturating_duration_since(acked) > Duration::from_millis(10) {
            let node = c.urls[who % 3].rsplit(':').next().unwrap_or("?");
            eprintln!(
                "{n} followers, purge {k}: {:?} after the answer; last follower {who} streams \
                 from :{node} (leader {leader})",
                last.saturating_duration_since(acked)
            );
        }
        let us = |from: Instant| {
            u64::try_from(last.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
        };
        row.from_ack.record(us(acked).max(1))?;
        row.from_send.record(us(sent).max(1))?;
    }
    Ok((row, handles))
}

struct Throughput {
    purges: usize,
    submitters: usize,
    elapsed: Duration,
    entries: usize,
}

async fn throughput(
    c: &PurgeCluster,
    http: Arc<Http>,
    submitters: usize,
    total: usize,
) -> Result<Throughput> {
    let leader = c.leader(&http).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..submitters {
        let (http, next, leader) = (http.clone(), next.clone(), leader.clone());
        tasks.push(tokio::spawn(async move {
            let mut indices = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    return anyhow::Ok(indices);
                }
                let a = http
                    .purge(&leader, &format!("https://bench.example/t/{k}"))
                    .await?;
                indices.push(a.index);
            }
        }));
    }
    let mut entries = BTreeSet::new();
    for t in tasks {
        entries.extend(t.await??);
    }
    Ok(Throughput {
        purges: total,
        submitters,
        elapsed: t0.elapsed(),
        entries: entries.len(),
    })
}

/// The machine's 1/5/15-minute load averages (this machine may be shared).
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = purge_bin(args.purge_bin.as_deref())?;
    let http = Arc::new(Http::default());
    let cluster = PurgeCluster::start(&bin, &http, "purge-bench", &[]).await?;
    let mut rows = Vec::new();
    let mut last_handles = Vec::new();
    for &n in &args.followers {
        for h in last_handles.drain(..) {
            FollowerHandle::shutdown(h).await;
        }
        let (row, handles) = propagation(&cluster, &http, n, args.purges, args.verbose).await?;
        rows.push(row);
        last_handles = handles;
    }
    // Throughput with the last set of followers still attached, as in production.
    let tp = if args.throughput_purges > 0 {
        Some(
            throughput(
                &cluster,
                http.clone(),
                args.submitters,
                args.throughput_purges,
            )
            .await?,
        )
    } else {
        None
    };
    for h in last_handles {
        h.shutdown().await;
    }

    println!("purge propagation: POST answered (committed) -> applied on every follower");
    println!(
        "3-node tiercel-purge cluster and in-process followers on loopback, {} purges each; \
         load average {}\n",
        args.purges,
        load_average()
    );
    println!(
        "| followers | p50 ms | p90 ms | p99 ms | max ms | from send p50 ms | from send p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let q = |h: &Histogram<u64>, p: f64| ms(h.value_at_quantile(p));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.followers,
            q(&r.from_ack, 0.5),
            q(&r.from_ack, 0.9),
            q(&r.from_ack, 0.99),
            ms(r.from_ack.max()),
            q(&r.from_send, 0.5),
            q(&r.from_send, 0.99),
        );
    }
    if let Some(t) = &tp {
        let rate = t.purges as f64 / t.elapsed.as_secs_f64();
        println!(
            "\ncommitted purges/s with batching: {:.0}/s ({} purges from {} concurrent submitters in {:.2} s; \
             {} log entries, {:.1} purges per entry)",
            rate,
            t.purges,
            t.submitters,
            t.elapsed.as_secs_f64(),
            t.entries,
            t.purges as f64 / t.entries.max(1) as f64
        );
    }
    if let Some(r) = rows.iter().max_by_key(|r| r.followers)
        && args.target_p99_ms > 0.0
    {
        let p99 = r.from_ack.value_at_quantile(0.99) as f64 / 1000.0;
        let met = p99 < args.target_p99_ms;
        println!(
            "\ntarget p99 < {} ms at {} followers: {} ({p99:.2} ms)",
            args.target_p99_ms,
            r.followers,
            if met { "met" } else { "MISSED" }
        );
        if !met {
            drop(cluster);
            std::process::exit(1);
        }
    }
    drop(cluster);
    Ok(())
}
