//! `tiercel-testbed up`: a working CDN on embedded defaults, on this machine.
//!
//! Today that is the demo origin (in this process), one `tiercel-shield` process in front of it
//! and one `tiercel-edge` process in front of the shield (the origin as its fallback), each with
//! a disk tier in the data directory. The multi-region cluster (more edges and shields, the
//! purge-service, namespaces, the latency relay) extends this command in the testbed issue.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::origin::Origin;

/// Where the pieces listen.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Demo origin.
    pub origin: SocketAddr,
    /// Edge, HTTP/1.1 + h2c.
    pub edge: SocketAddr,
    /// Edge, TLS.
    pub edge_tls: SocketAddr,
    /// Edge admin.
    pub admin: SocketAddr,
    /// Shield (HTTP/1.1 + h2c, for edges).
    pub shield: SocketAddr,
    /// Shield admin.
    pub shield_admin: SocketAddr,
    /// Disk tier and state.
    pub data_dir: PathBuf,
    /// Directory holding the `tiercel-edge` and `tiercel-shield` binaries.
    pub bin_dir: PathBuf,
}

/// A running CDN: origin, shield, edge.
pub struct Up {
    origin: Origin,
    shield: Child,
    edge: Child,
}

impl std::fmt::Debug for Up {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Up")
            .field("origin", &self.origin.url())
            .finish()
    }
}

/// The directory of the running executable: `cargo build` puts every binary there.
pub fn sibling_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Starts the origin, the shield and the edge, and waits until both nodes are ready.
pub async fn up(opts: &UpOptions) -> anyhow::Result<Up> {
    let edge_bin = opts.bin_dir.join("tiercel-edge");
    let shield_bin = opts.bin_dir.join("tiercel-shield");
    for bin in [&edge_bin, &shield_bin] {
        if !bin.exists() {
            bail!(
                "{} not found: build it first with `cargo build --release`",
                bin.display()
            );
        }
    }
    let origin = Origin::start(opts.origin)
        .await
        .with_context(|| format!("demo origin cannot listen on {}", opts.origin))?;
    let shield = node(
        &shield_bin,
        &opts.data_dir.join("shield-cache"),
        &[
            "--listen".into(),
            opts.shield.to_string(),
            "--admin-listen".into(),
            opts.shield_admin.to_string(),
            "--origin".into(),
            origin.url(),
        ],
    )?;
    // The edge starts once the shield answers: its first probe would otherwise find the
    // shield down and send the first requests to the origin.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut shield = shield;
    while !ready(opts.shield_admin).await {
        if let Some(status) = shield.try_wait()? {
            bail!("tiercel-shield exited during start-up ({status})");
        }
        if Instant::now() > deadline {
            bail!("tiercel-shield did not become ready within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let edge = node(
        &edge_bin,
        &opts.data_dir.join("edge-cache"),
        &[
            "--listen".into(),
            opts.edge.to_string(),
            "--tls-listen".into(),
            opts.edge_tls.to_string(),
            "--admin-listen".into(),
            opts.admin.to_string(),
            "--shield".into(),
            format!("http://{}", opts.shield),
            "--origin".into(),
            origin.url(),
        ],
    )?;
    let mut up = Up {
        origin,
        shield,
        edge,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if ready(opts.admin).await {
            return Ok(up);
        }
        if let Some(status) = up.edge.try_wait()? {
            bail!("tiercel-edge exited during start-up ({status})");
        }
        if Instant::now() > deadline {
            bail!("tiercel-edge did not become ready within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts one node binary with a 1 GiB disk tier in `disk` and `args`.
fn node(bin: &Path, disk: &Path, args: &[String]) -> anyhow::Result<Child> {
    std::fs::create_dir_all(disk).with_context(|| format!("creating {}", disk.display()))?;
    Command::new(bin)
        .args(args)
        .arg("--disk-cache")
        .arg(disk)
        .arg("--disk-cache-size")
        .arg("1GiB")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

impl Up {
    /// Stops the edge, then the shield (SIGTERM, then kill after 15 s each), then the origin.
    pub async fn down(mut self) {
        stop(&mut self.edge).await;
        stop(&mut self.shield).await;
        self.origin.shutdown().await;
    }
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = tiercel_cluster::signal::terminate(pid);
        if tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

async fn ready(admin: SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(out.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// What `up` prints: the endpoints and something to try.
pub fn banner(opts: &UpOptions) -> String {
    format!(
        "Tiercel is up.\n\
         \x20 edge (HTTP/1.1, h2c)   http://{edge}\n\
         \x20 edge (TLS h1/h2)       https://{tls}  (self-signed certificate)\n\
         \x20 edge admin             http://{admin}/metrics\n\
         \x20 shield (edge -> shield) http://{shield}  (admin http://{shield_admin}/metrics)\n\
         \x20 demo origin            http://{origin}/  (lists the query parameters it understands)\n\
         \x20 cache directory        {data}\n\
         Try it twice and watch Cache-Status:\n\
         \x20 curl -s -o /dev/null -D - 'http://{edge}/hello?size=1024&cc=max-age%3D60'\n\
         Ctrl-C stops everything.",
        edge = opts.edge,
        tls = opts.edge_tls,
        admin = opts.admin,
        shield = opts.shield,
        shield_admin = opts.shield_admin,
        origin = opts.origin,
        data = opts.data_dir.display(),
    )
}
