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

/// Where the pieces listen. With several edges or shields, node `i` listens on the given
/// port + `i` (each address is the first of its kind).
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Demo origin.
    pub origin: SocketAddr,
    /// First edge, HTTP/1.1 + h2c.
    pub edge: SocketAddr,
    /// First edge, TLS.
    pub edge_tls: SocketAddr,
    /// First edge's admin.
    pub admin: SocketAddr,
    /// First shield (HTTP/1.1 + h2c, for edges).
    pub shield: SocketAddr,
    /// First shield's admin.
    pub shield_admin: SocketAddr,
    /// How many edges (at least 1).
    pub edges: usize,
    /// How many shields (0: edges go straight to the origin).
    pub shields: usize,
    /// Disk tiers and state.
    pub data_dir: PathBuf,
    /// Directory holding the `tiercel-edge` and `tiercel-shield` binaries.
    pub bin_dir: PathBuf,
}

/// Node `i`'s address: the first one's port + `i`.
pub fn nth(first: SocketAddr, i: usize) -> SocketAddr {
    let port = u16::try_from(usize::from(first.port()) + i).unwrap_or(first.port());
    SocketAddr::new(first.ip(), port)
}

/// A running CDN: origin, shields, edges.
pub struct Up {
    origin: Origin,
    shields: Vec<Child>,
    edges: Vec<Child>,
}

impl std::fmt::Debug for Up {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Up")
            .field("origin", &self.origin.url())
            .field("shields", &self.shields.len())
            .field("edges", &self.edges.len())
            .finish()
    }
}

/// The directory of the running executable (where `cargo build` puts every binary).
pub fn sibling_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Starts the origin, the shields, then the edges (in front of every shield, the origin as
/// their fallback), and waits until every node is ready.
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
    if opts.edges == 0 {
        bail!("--edges must be at least 1");
    }
    let origin = Origin::start(opts.origin)
        .await
        .with_context(|| format!("demo origin cannot listen on {}", opts.origin))?;
    let mut up = Up {
        origin,
        shields: Vec::new(),
        edges: Vec::new(),
    };
    for i in 0..opts.shields {
        let name = format!("tiercel-shield-{i}");
        let name = if opts.shields == 1 {
            "tiercel-shield".to_owned()
        } else {
            name
        };
        let child = node(
            &shield_bin,
            &opts.data_dir.join(format!("shield-{i}")),
            &[
                "--listen".into(),
                nth(opts.shield, i).to_string(),
                "--admin-listen".into(),
                nth(opts.shield_admin, i).to_string(),
                "--origin".into(),
                up.origin.url(),
                "--name".into(),
                name,
            ],
        )?;
        up.shields.push(child);
    }
    // Edges start once the shields answer: their first probes would otherwise find a shield
    // down and send the first requests to the origin.
    for i in 0..opts.shields {
        wait_ready(
            &mut up.shields[i],
            nth(opts.shield_admin, i),
            "tiercel-shield",
        )
        .await?;
    }
    let shields: Vec<String> = (0..opts.shields)
        .map(|i| format!("http://{}", nth(opts.shield, i)))
        .collect();
    for i in 0..opts.edges {
        let name = if opts.edges == 1 {
            "tiercel-edge".to_owned()
        } else {
            format!("tiercel-edge-{i}")
        };
        let mut args = vec![
            "--listen".into(),
            nth(opts.edge, i).to_string(),
            "--tls-listen".into(),
            nth(opts.edge_tls, i).to_string(),
            "--admin-listen".into(),
            nth(opts.admin, i).to_string(),
            "--origin".into(),
            up.origin.url(),
            "--name".into(),
            name,
        ];
        if !shields.is_empty() {
            args.push("--shield".into());
            args.push(shields.join(","));
        }
        let child = node(&edge_bin, &opts.data_dir.join(format!("edge-{i}")), &args)?;
        up.edges.push(child);
    }
    for i in 0..opts.edges {
        wait_ready(&mut up.edges[i], nth(opts.admin, i), "tiercel-edge").await?;
    }
    Ok(up)
}

/// Waits up to 20 s for a node's `/readyz`.
async fn wait_ready(child: &mut Child, admin: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready(admin).await {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited during start-up ({status})");
        }
        if Instant::now() > deadline {
            bail!("{what} on {admin} did not become ready within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
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
    /// Stops the edges, then the shields (SIGTERM, then kill after 15 s each), then the origin.
    pub async fn down(mut self) {
        for child in self.edges.iter_mut().chain(self.shields.iter_mut()) {
            stop(child).await;
        }
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
    let mut out = String::from("Tiercel is up.\n");
    for i in 0..opts.edges {
        out.push_str(&format!(
            "  edge {i}   http://{} (h1, h2c)  https://{} (TLS, self-signed)  admin http://{}/metrics\n",
            nth(opts.edge, i),
            nth(opts.edge_tls, i),
            nth(opts.admin, i)
        ));
    }
    for i in 0..opts.shields {
        out.push_str(&format!(
            "  shield {i} http://{} (edges' upstream)  admin http://{}/metrics\n",
            nth(opts.shield, i),
            nth(opts.shield_admin, i)
        ));
    }
    out.push_str(&format!(
        "  demo origin http://{}/  (lists the query parameters it understands)\n\
         \x20 cache directories in {}\n\
         Try it twice and watch Cache-Status:\n\
         \x20 curl -s -o /dev/null -D - 'http://{}/hello?size=1024&cc=max-age%3D60'\n\
         Ctrl-C stops everything.",
        opts.origin,
        opts.data_dir.display(),
        opts.edge
    ));
    out
}
