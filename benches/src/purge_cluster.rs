//! A real 3-member `tiercel-purge` cluster on loopback for the purge benchmarks
//! (`purge-propagation`, `purge-soak`): processes that can be killed and restarted, and a
//! small HTTP client with the admin token and a deadline on every call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tiercel_cluster::follower::PurgeListener;
use tiercel_cluster::purge::wire::{PurgeAccepted, ServiceRecord};
use tokio::sync::Notify;

/// The admin token of every bench cluster.
pub const ADMIN: &str = "bench-admin-token-0123456789";
/// The cluster secret of every bench cluster.
pub const CLUSTER_SECRET: &str = "bench-cluster-secret-0123456789";
/// Deadline of each call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One member: its command line, and its process while it runs.
struct Member {
    cmd: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

/// Three `tiercel-purge` processes; killed and their data removed on drop.
pub struct PurgeCluster {
    bin: PathBuf,
    members: Vec<Member>,
    /// `http://127.0.0.1:port` of each member.
    pub urls: Vec<String>,
    /// Where data directories and logs live.
    pub dir: PathBuf,
}

impl Drop for PurgeCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
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

/// The `tiercel-purge` binary: `explicit`, or the one next to the running benchmark.
pub fn purge_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    let bin = match explicit {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("tiercel-purge"),
    };
    ensure!(
        bin.exists(),
        "{} not found: build it first (cargo build --release -p tiercel-purge) or pass --purge-bin",
        bin.display()
    );
    Ok(bin)
}

impl PurgeCluster {
    /// Starts three members with `extra` flags each and waits until all know the admin token.
    pub async fn start(bin: &Path, http: &Http, name: &str, extra: &[&str]) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("tiercel-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let ports = free_ports(3)?;
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect();
        let mut members = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let mut cmd: Vec<String> = vec![
                "--id".into(),
                (i + 1).to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--data-dir".into(),
                dir.join(format!("node{}", i + 1)).display().to_string(),
                "--rate-limit".into(),
                "1000000".into(),
                "--rate-burst".into(),
                "1000000".into(),
                "--log".into(),
                "warn".into(),
            ];
            for p in &peers {
                cmd.push("--peer".into());
                cmd.push(p.clone());
            }
            cmd.extend(extra.iter().map(|s| s.to_string()));
            let mut env = vec![("TIERCEL_CLUSTER_SECRET".into(), CLUSTER_SECRET.into())];
            if i == 0 {
                cmd.push("--bootstrap".into());
                env.push(("TIERCEL_ADMIN_TOKEN".into(), ADMIN.into()));
            }
            members.push(Member {
                cmd,
                env,
                log: dir.join(format!("node{}.log", i + 1)),
                child: None,
            });
        }
        let mut c = PurgeCluster {
            bin: bin.to_path_buf(),
            members,
            urls: ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            dir,
        };
        for i in 0..3 {
            c.spawn(i)?;
        }
        // Every member knows the admin token: the cluster is up and has applied the bootstrap.
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

    fn spawn(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)?;
        let mut cmd = Command::new(&self.bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("TIERCEL_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(&m.cmd)
            .envs(m.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        m.child = Some(
            cmd.spawn()
                .with_context(|| format!("start {}", self.bin.display()))?,
        );
        Ok(())
    }

    /// `kill -9` member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again with its flags and data (after [`PurgeCluster::kill`]).
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)
    }

    /// The process id of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// The URL of the member that says it leads.
    pub async fn leader(&self, http: &Http) -> Result<String> {
        for url in &self.urls {
            let Ok((_, body)) = http
                .call(Method::GET, &format!("{url}/healthz"), None)
                .await
            else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if v["state"] == "Leader" {
                return Ok(url.clone());
            }
        }
        bail!("no leader")
    }
}

/// A client calling as admin.
pub struct Http(Client<HttpConnector, Full<Bytes>>);

impl Default for Http {
    fn default() -> Self {
        Http(Client::builder(TokioExecutor::new()).build_http())
    }
}

impl Http {
    /// One call as admin, within [`CALL_TIMEOUT`]: status and body.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes)> {
        let req = Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        self.send(req, url).await
    }

    async fn send(&self, req: Request<Full<Bytes>>, url: &str) -> Result<(u16, Bytes)> {
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

    /// Purges `url` through the member at `base`.
    pub async fn purge(&self, base: &str, url: &str) -> Result<PurgeAccepted> {
        self.purge_once(base, url, None).await
    }

    /// Purges `url` through the member at `base`; with `key` as its `Idempotency-Key`, a retry
    /// of a purge whose answer was lost counts once.
    pub async fn purge_once(
        &self,
        base: &str,
        url: &str,
        key: Option<&str>,
    ) -> Result<PurgeAccepted> {
        let body = format!(r#"{{"urls":["{url}"]}}"#);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{base}/v1/purges"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let (status, resp) = self.send(req, base).await?;
        ensure!(
            status == 200,
            "purge answered {status}: {}",
            String::from_utf8_lossy(&resp)
        );
        Ok(serde_json::from_slice(&resp)?)
    }
}

/// Resident set size (KiB) and open descriptors of a process, from `/proc`.
pub fn rss_and_fds(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// Stamps, per purged URL, how many followers applied it and when the last one did.
pub struct Tracker {
    followers: u32,
    /// Per purge key: the followers that applied it, when the last new one did, and which one
    /// it was. A follower applying the same URL again (a purge sent twice) counts once.
    seen: Mutex<HashMap<String, Applied>>,
    done: Notify,
}

struct Applied {
    by: std::collections::HashSet<usize>,
    last: Instant,
    who: usize,
}

/// The listener of follower `.1`, stamping into `.0`.
pub struct Stamp(pub Arc<Tracker>, pub usize);

impl PurgeListener for Stamp {
    fn url_purged(&self, key: &str, _soft: bool) {
        let now = Instant::now();
        let mut seen = self.0.seen.lock().unwrap_or_else(|e| e.into_inner());
        let e = seen.entry(key.to_string()).or_insert_with(|| Applied {
            by: Default::default(),
            last: now,
            who: self.1,
        });
        if e.by.insert(self.1) {
            e.last = now;
            e.who = self.1;
            if e.by.len() == self.0.followers as usize {
                self.0.done.notify_waiters();
            }
        }
    }
    fn services_changed(&self, _services: &[ServiceRecord]) {}
}

impl Tracker {
    /// Tracks `followers` followers.
    pub fn new(followers: u32) -> Self {
        Tracker {
            followers,
            seen: Mutex::new(HashMap::new()),
            done: Notify::new(),
        }
    }

    /// When the last follower applied `key`.
    pub async fn all_applied(&self, key: &str, timeout: Duration) -> Result<(Instant, usize)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(a) = self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(key)
                && a.by.len() == self.followers as usize
            {
                return Ok((a.last, a.who));
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
