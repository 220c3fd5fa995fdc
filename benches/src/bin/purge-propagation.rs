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

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tiercel_cluster::follower::{FollowerConfig, FollowerHandle, PurgeListener, start_follower};
use tiercel_cluster::purge::wire::{PurgeAccepted, ServiceRecord};
use tokio::sync::Notify;

const ADMIN: &str = "bench-admin-token-0123456789";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Three `tiercel-purge` processes; killed and their data removed on drop.
struct Cluster {
    procs: Vec<Child>,
    urls: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    let ls: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    ls.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

impl Cluster {
    async fn start(bin: &Path, http: &Http) -> Result<Cluster> {
        let dir = std::env::temp_dir().join(format!("tiercel-purge-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ports = free_ports(3)?;
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect();
        let mut c = Cluster {
            procs: Vec::new(),
            urls: ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            dir,
        };
        for (i, port) in ports.iter().enumerate() {
            let log = std::fs::File::create(c.dir.join(format!("node{}.log", i + 1)))?;
            let mut cmd = Command::new(bin);
            cmd.arg("--id")
                .arg((i + 1).to_string())
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(c.dir.join(format!("node{}", i + 1)))
                .args([
                    "--rate-limit",
                    "1000000",
                    "--rate-burst",
                    "1000000",
                    "--log",
                    "warn",
                ])
                .env("TIERCEL_CLUSTER_SECRET", "bench-cluster-secret-0123456789")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            for p in &peers {
                cmd.arg("--peer").arg(p);
            }
            if i == 0 {
                cmd.arg("--bootstrap").env("TIERCEL_ADMIN_TOKEN", ADMIN);
            }
            c.procs.push(
                cmd.spawn()
                    .with_context(|| format!("start {}", bin.display()))?,
            );
        }
        // Every node knows the admin token: the cluster is up and has applied the bootstrap.
        let deadline = Instant::now() + Duration::from_secs(20);
        for url in &c.urls {
            loop {
                let r = http
                    .call(Method::GET, &format!("{url}/v1/services"), None)
                    .await;
                if matches!(r, Ok((200, _))) {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{url} not ready: {r:?} (logs in {})",
                    c.dir.display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(c)
    }

    async fn leader(&self, http: &Http) -> Result<String> {
        for url in &self.urls {
            let (_, body) = http
                .call(Method::GET, &format!("{url}/healthz"), None)
                .await?;
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if v["state"] == "Leader" {
                return Ok(url.clone());
            }
        }
        bail!("no leader")
    }
}

struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    async fn call(&self, method: Method, url: &str, body: Option<String>) -> Result<(u16, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let fut = async {
            let resp = self.0.request(req).await?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("{url}: no answer within {CALL_TIMEOUT:?}"))?
    }

    async fn purge(&self, base: &str, url: &str) -> Result<PurgeAccepted> {
        let body = format!(r#"{{"urls":["{url}"]}}"#);
        let (status, resp) = self
            .call(Method::POST, &format!("{base}/v1/purges"), Some(body))
            .await?;
        ensure!(
            status == 200,
            "purge answered {status}: {}",
            String::from_utf8_lossy(&resp)
        );
        Ok(serde_json::from_slice(&resp)?)
    }
}

/// Stamps, per purged URL, how many followers applied it and when the last one did.
struct Tracker {
    followers: u32,
    /// Per purge key: followers that applied it, when the last did, and which one it was.
    seen: Mutex<HashMap<String, (u32, Instant, usize)>>,
    done: Notify,
}

struct Stamp(Arc<Tracker>, usize);

impl PurgeListener for Stamp {
    fn url_purged(&self, key: &str, _soft: bool) {
        let now = Instant::now();
        let mut seen = self.0.seen.lock().unwrap_or_else(|e| e.into_inner());
        let e = seen.entry(key.to_string()).or_insert((0, now, self.1));
        e.0 += 1;
        e.1 = now;
        e.2 = self.1;
        if e.0 == self.0.followers {
            self.0.done.notify_waiters();
        }
    }
    fn services_changed(&self, _services: &[ServiceRecord]) {}
}

impl Tracker {
    /// When the last follower applied `key`.
    async fn all_applied(&self, key: &str, timeout: Duration) -> Result<(Instant, usize)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some((n, at, who)) = self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(key)
                && *n == self.followers
            {
                return Ok((*at, *who));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!(
                    "{key} not applied by all {} followers within {timeout:?}",
                    self.followers
                );
            }
        }
    }
}

struct Row {
    followers: usize,
    from_ack: Histogram<u64>,
    from_send: Histogram<u64>,
}

async fn propagation(
    c: &Cluster,
    http: &Http,
    n: usize,
    purges: usize,
    verbose: bool,
) -> Result<(Row, Vec<FollowerHandle>)> {
    let tracker = Arc::new(Tracker {
        followers: u32::try_from(n)?,
        seen: Mutex::new(HashMap::new()),
        done: Notify::new(),
    });
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
    c: &Cluster,
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
    let bin = match &args.purge_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("tiercel-purge"),
    };
    ensure!(
        bin.exists(),
        "{} not found: build it first (cargo build --release -p tiercel-purge) or pass --purge-bin",
        bin.display()
    );
    let http = Arc::new(Http(Client::builder(TokioExecutor::new()).build_http()));
    let cluster = Cluster::start(&bin, &http).await?;
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
