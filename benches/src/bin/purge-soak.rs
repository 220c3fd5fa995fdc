//! `purge-soak`: the purge-service under a long, hostile load, to show that nothing grows
//! without bound and purges keep arriving while members die.
//!
//! ```text
//!  3 × tiercel-purge ◀── a purge every 1/--rate s (to any live member, failing over)
//!    ▲   ▲   ▲      ◀── kill -9 one member every --kill-every, restart it 2 s later
//!    │   │   │      ◀── --slow readers of /v1/log taking 1 KiB/s; --silent TCP connections
//!    └───┴───┴── GET /v1/log ── --followers in-process followers (tiercel_cluster::follower)
//!  sampler: VmRSS and open descriptors of every member, every second
//! ```
//!
//! Propagation of each purge is measured from the moment it was committed (the POST answered)
//! to the moment the last follower applied it. A purge not applied by every follower within
//! 30 s counts as late. Prints one Markdown summary; exits 1 when a purge was late or lost.
//!
//! `cargo build --release -p tiercel-purge -p tiercel-benches`, then
//! `target/release/purge-soak --duration 10m`. Not run in CI (it takes minutes by design).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tiercel_benches::duration::parse_duration;
use tiercel_benches::purge_cluster::{
    ADMIN, Http, PurgeCluster, Stamp, Tracker, purge_bin, rss_and_fds,
};
use tiercel_cluster::follower::{FollowerConfig, start_follower};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A long run of purges, member failures and hostile clients against a real cluster.
#[derive(Debug, Parser)]
struct Args {
    /// The `tiercel-purge` binary (default: next to this one).
    #[arg(long)]
    purge_bin: Option<std::path::PathBuf>,
    /// How long to run.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// In-process followers.
    #[arg(long, default_value_t = 100)]
    followers: usize,
    /// Purges per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Kill one member this often (round robin), restarting it 2 s later.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    kill_every: Duration,
    /// Log readers that take 1 KiB a second.
    #[arg(long, default_value_t = 8)]
    slow: usize,
    /// TCP connections that never send a byte (reopened when closed).
    #[arg(long, default_value_t = 200)]
    silent: usize,
}

/// Peak and last samples of one member.
#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    rss_kib: u64,
    fds: usize,
}

/// A reader that asks for the log and then reads it at 1 KiB/s, reconnecting when dropped.
async fn slow_reader(url: String, stop: Arc<AtomicBool>, dropped: Arc<AtomicUsize>) {
    let addr = url.trim_start_matches("http://").to_string();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let req = format!(
            "GET /v1/log?from=1 HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN}\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 1024];
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => tokio::time::sleep(Duration::from_secs(1)).await,
                _ => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// A connection that never sends anything, reopened whenever the member closes it.
async fn silent_client(url: String, stop: Arc<AtomicBool>, cut: Arc<AtomicUsize>) {
    let addr = url.trim_start_matches("http://").to_string();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(120), s.read(&mut buf)).await;
        cut.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = purge_bin(args.purge_bin.as_deref())?;
    let http = Arc::new(Http::default());
    let cluster = Arc::new(Mutex::new(
        PurgeCluster::start(
            &bin,
            &http,
            "purge-soak",
            &["--snapshot-every", "200", "--log-write-timeout", "5s"],
        )
        .await?,
    ));
    let urls = cluster.lock().urls.clone();
    let stop = Arc::new(AtomicBool::new(false));

    // Followers.
    let tracker = Arc::new(Tracker::new(u32::try_from(args.followers)?));
    let mut followers = Vec::new();
    for i in 0..args.followers {
        let servers = (0..3).map(|k| urls[(i + k) % 3].clone()).collect();
        let cfg = FollowerConfig {
            token: Some(ADMIN.to_string()),
            ..FollowerConfig::new(servers, format!("soak-{i}"), "edge")
        };
        let (_, h) = start_follower(cfg, Arc::new(Stamp(tracker.clone(), i))).await?;
        followers.push(h);
    }

    // Hostile clients.
    let slow_dropped = Arc::new(AtomicUsize::new(0));
    let silent_cut = Arc::new(AtomicUsize::new(0));
    let mut side = Vec::new();
    for i in 0..args.slow {
        side.push(tokio::spawn(slow_reader(
            urls[i % 3].clone(),
            stop.clone(),
            slow_dropped.clone(),
        )));
    }
    for i in 0..args.silent {
        side.push(tokio::spawn(silent_client(
            urls[i % 3].clone(),
            stop.clone(),
            silent_cut.clone(),
        )));
    }

    // The sampler.
    let peaks = Arc::new(Mutex::new(vec![Peak::default(); 3]));
    let sampler = {
        let (cluster, peaks, stop) = (cluster.clone(), peaks.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for i in 0..3 {
                    let pid = cluster.lock().pid(i);
                    if let Some((rss, fds)) = pid.and_then(rss_and_fds) {
                        let mut p = peaks.lock();
                        p[i].rss_kib = p[i].rss_kib.max(rss);
                        p[i].fds = p[i].fds.max(fds);
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The killer.
    let kills = Arc::new(AtomicU64::new(0));
    let killer = {
        let (cluster, stop, kills) = (cluster.clone(), stop.clone(), kills.clone());
        let every = args.kill_every;
        tokio::spawn(async move {
            let mut victim = 0;
            loop {
                tokio::time::sleep(every).await;
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                cluster.lock().kill(victim);
                kills.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Err(e) = cluster.lock().restart(victim) {
                    eprintln!("restart of member {} failed: {e}", victim + 1);
                }
                victim = (victim + 1) % 3;
            }
        })
    };

    // The purges: one every 1/rate s, each tracked on its own task.
    let mut latency = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let late = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    let mut next = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut tracking = Vec::new();
    while started.elapsed() < args.duration {
        next += interval;
        tokio::time::sleep_until(next).await;
        let url = format!("https://soak.example/p/{sent}");
        sent += 1;
        let (http, urls, tracker, late, failed, results) = (
            http.clone(),
            urls.clone(),
            tracker.clone(),
            late.clone(),
            failed.clone(),
            results.clone(),
        );
        tracking.push(tokio::spawn(async move {
            // Any live member will do; a dead one costs a failover, as for tiercelctl.
            // One idempotency key for every attempt, as tiercelctl does: a retry of a purge
            // whose answer was lost counts once.
            let key = format!("soak-{sent}");
            let mut acked = None;
            for attempt in 0..30 {
                let base = &urls[(sent as usize + attempt) % 3];
                if http.purge_once(base, &url, Some(&key)).await.is_ok() {
                    acked = Some(Instant::now());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let Some(acked) = acked else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            match tracker
                .all_applied(&url[8..], Duration::from_secs(30))
                .await
            {
                Ok((last, _)) => {
                    let us = last.saturating_duration_since(acked).as_micros();
                    results.lock().push(u64::try_from(us).unwrap_or(u64::MAX));
                }
                Err(_) => {
                    late.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tracking {
        let _ = t.await;
    }
    stop.store(true, Ordering::Relaxed);
    killer.abort();
    let _ = sampler.await;
    for s in side {
        s.abort();
    }
    for h in followers {
        h.shutdown().await;
    }
    for us in results.lock().iter() {
        latency.record((*us).max(1))?;
    }
    {
        let mut c = cluster.lock();
        for i in 0..3 {
            c.kill(i);
        }
    }

    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "purge-soak: {:.0} s, {} followers, {} purges sent ({}/s), {} member kills, {} slow \
         readers, {} silent connections",
        started.elapsed().as_secs_f64(),
        args.followers,
        sent,
        args.rate,
        kills.load(Ordering::Relaxed),
        args.slow,
        args.silent
    );
    println!();
    println!("| member | peak RSS MiB | peak open fds |");
    println!("|---:|---:|---:|");
    for (i, p) in peaks.lock().iter().enumerate() {
        println!(
            "| {} | {:.1} | {} |",
            i + 1,
            p.rss_kib as f64 / 1024.0,
            p.fds
        );
    }
    println!();
    println!(
        "propagation (committed -> applied by all {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         {} applied everywhere, {} late (> 30 s), {} never committed",
        args.followers,
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max()),
        latency.len(),
        late.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!(
        "hostile clients: slow readers dropped {} times, silent connections cut {} times",
        slow_dropped.load(Ordering::Relaxed),
        silent_cut.load(Ordering::Relaxed)
    );
    let bad = late.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
    drop(cluster);
    if bad > 0 {
        std::process::exit(1);
    }
    Ok(())
}
