//! Cold seeks into large objects: time to first byte of a range request at a random offset of
//! an object nobody has fetched yet, and what the origin was asked for, for a Tiercel edge and
//! for nginx with the slice module configured the same way (1 MiB slices), in one run.
//!
//! ```text
//! taskset -c 1 media-seeks --edge-bin target/release/tiercel-edge --seeks 50 --latency-ms 20
//! ```
//!
//! The demo origin runs in this process (so its request log can be read), answers ranges, and
//! waits `--latency-ms` before every answer (an emulated WAN round trip). Each seek asks for
//! 1000 bytes at a random offset of a fresh URL; bodies are checked byte for byte. The servers
//! are started pinned to core 0 (`taskset`); run this on core 1.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use tiercel_testbed::origin::{Origin, expected_range};

#[derive(Debug, Parser)]
#[command(
    name = "media-seeks",
    about = "Cold range requests: Tiercel vs nginx slice"
)]
struct Args {
    /// The tiercel-edge binary.
    #[arg(long)]
    edge_bin: String,
    /// Seeks per server.
    #[arg(long, default_value_t = 50)]
    seeks: usize,
    /// Object size in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    size: u64,
    /// Added origin latency per response, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Skip nginx.
    #[arg(long)]
    no_nginx: bool,
    /// First of the loopback ports used.
    #[arg(long, default_value_t = 18300)]
    port: u16,
}

/// One server's results.
struct Run {
    name: &'static str,
    ttfb_ms: Vec<f64>,
    total_ms: Vec<f64>,
    origin_requests: usize,
    origin_bytes: u64,
}

struct Killed(Child);

impl Drop for Killed {
    /// SIGTERM, so nginx's master takes its workers down with it (SIGKILL would orphan them).
    fn drop(&mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing listens on {addr}")
}

fn nginx_conf(dir: &std::path::Path, listen: SocketAddr, origin: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=media:64m max_size=4g inactive=1h use_temp_path=off;
    upstream origin {{ server {origin}; keepalive 32; }}
    server {{
        listen {listen};
        location / {{
            # nginx's documented recipe for caching large objects by ranges.
            slice 1m;
            proxy_cache media;
            proxy_cache_key $uri$is_args$args$slice_range;
            proxy_set_header Range $slice_range;
            proxy_cache_valid 200 206 1h;
            proxy_cache_lock on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://origin;
        }}
    }}
}}
"#
    )
}

/// Bytes the origin was asked for by the requests whose path starts with `prefix`: the range
/// when there is one, else the whole object.
fn asked(origin: &Origin, prefix: &str, size: u64) -> (usize, u64) {
    let reqs: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.uri.path().starts_with(prefix))
        .collect();
    let bytes = reqs
        .iter()
        .map(|r| {
            let range = r.headers.get("range").and_then(|v| v.to_str().ok());
            match range.and_then(|v| v.strip_prefix("bytes=")?.split_once('-')) {
                Some((a, b)) => {
                    let a: u64 = a.parse().unwrap_or(0);
                    let b: u64 = b.parse().unwrap_or(size - 1).min(size - 1);
                    b.saturating_sub(a) + 1
                }
                None => size,
            }
        })
        .sum();
    (reqs.len(), bytes)
}

async fn seeks(
    name: &'static str,
    base: SocketAddr,
    origin: &Origin,
    args: &Args,
) -> anyhow::Result<Run> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut rng = rand::rng();
    let (mut ttfb_ms, mut total_ms) = (Vec::new(), Vec::new());
    let prefix = format!("/seek-{name}/");
    for i in 0..args.seeks {
        let target = format!(
            "{prefix}{i}?size={}&ranges=1&etag=v1&cc=max-age%3D3600&delay_ms={}",
            args.size, args.latency_ms
        );
        let offset = rng.random_range(0..args.size - 1000);
        let req = http::Request::get(format!("http://{base}{target}"))
            .header("range", format!("bytes={offset}-{}", offset + 999))
            .body(Empty::new())?;
        let start = Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
            .await
            .context("no answer within 60 s")??;
        if resp.status() != 206 {
            bail!("{name}: seek {i} answered {}", resp.status());
        }
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let mut first = None;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                first.get_or_insert_with(|| start.elapsed());
                got.extend_from_slice(&data);
            }
        }
        let total = start.elapsed();
        if got != expected_range(&target, args.size, offset, 1000)[..] {
            bail!("{name}: seek {i} at {offset}: wrong bytes");
        }
        ttfb_ms.push(first.unwrap_or(total).as_secs_f64() * 1000.0);
        total_ms.push(total.as_secs_f64() * 1000.0);
    }
    let (origin_requests, origin_bytes) = asked(origin, &prefix, args.size);
    Ok(Run {
        name,
        ttfb_ms,
        total_ms,
        origin_requests,
        origin_bytes,
    })
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let origin_addr: SocketAddr = ([127, 0, 0, 1], args.port).into();
    let origin = Origin::start(origin_addr).await?;
    let dir = tempfile_dir()?;
    let mut runs = Vec::new();

    let edge_addr: SocketAddr = ([127, 0, 0, 1], args.port + 1).into();
    let edge = Killed(
        Command::new("taskset")
            .args(["-c", "0", &args.edge_bin, "--listen"])
            .arg(edge_addr.to_string())
            .args(["--origin", &format!("http://{origin_addr}")])
            .args(["--memory-cache", "512MiB", "--name", "edge"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting tiercel-edge")?,
    );
    wait_listening(edge_addr).await?;
    runs.push(seeks("tiercel", edge_addr, &origin, &args).await?);
    drop(edge);

    if !args.no_nginx {
        let nginx_addr: SocketAddr = ([127, 0, 0, 1], args.port + 2).into();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir, nginx_addr, origin_addr))?;
        let nginx = Killed(
            Command::new("taskset")
                .args(["-c", "0", "nginx", "-p"])
                .arg(&dir)
                .args(["-e", "stderr", "-c"])
                .arg(&conf)
                .spawn()
                .context("starting nginx")?,
        );
        wait_listening(nginx_addr).await?;
        runs.push(seeks("nginx", nginx_addr, &origin, &args).await?);
        drop(nginx);
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "Cold seeks: {} per server, 1000 bytes at a random offset of a fresh {} MiB object, origin latency {} ms\n",
        args.seeks,
        args.size >> 20,
        args.latency_ms
    );
    println!(
        "| server | TTFB p50 ms | TTFB p90 ms | TTFB max ms | total p50 ms | origin requests / 1000 seeks | origin MiB / 1000 seeks |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for r in &runs {
        let per = 1000.0 / args.seeks as f64;
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
            r.name,
            pct(&r.ttfb_ms, 0.5),
            pct(&r.ttfb_ms, 0.9),
            pct(&r.ttfb_ms, 1.0),
            pct(&r.total_ms, 0.5),
            r.origin_requests as f64 * per,
            r.origin_bytes as f64 * per / 1_048_576.0,
        );
    }
    if let [t, n] = &runs[..] {
        println!(
            "\nTiercel / nginx TTFB p50: {:.2}x; origin bytes: {:.2}x",
            pct(&t.ttfb_ms, 0.5) / pct(&n.ttfb_ms, 0.5),
            t.origin_bytes as f64 / n.origin_bytes.max(1) as f64
        );
    }
    origin.shutdown().await;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("media-seeks-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
