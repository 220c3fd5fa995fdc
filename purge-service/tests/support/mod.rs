//! Test harness: real `tiercel-purge` processes on loopback, and HTTP helpers with timeouts.
//!
//! ```ignore
//! let mut c = Cluster::builder().nodes(3).start().await?;
//! let leader = c.wait_leader(Duration::from_secs(10)).await?;
//! let r = c.post(leader, "/v1/purges", r#"{"tags":["t"]}"#).await?;
//! c.kill(leader);            // kill -9
//! c.restart(leader).await?;  // same id, address and data dir
//! ```
//!
//! Every node writes its log to `<tmp>/nodeN.log`; when a test panics the tails are printed.
//! Shared by the purge-service tests and the tiercelctl/follower tests: keep it general.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use tempfile::TempDir;
use tiercel_cluster::purge::wire::{LogEvent, LogPayload, PurgeRequest};

/// Admin token every harness cluster is bootstrapped with.
pub const ADMIN: &str = "test-admin-token-0123456789";
/// Cluster secret every harness member shares (unless a test says otherwise).
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789";
/// Deadline of every single HTTP call made by the helpers.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A member proof (`x-tiercel-member`) for `method path` sent to member `to` now, made with
/// [`CLUSTER_SECRET`]: what a real member sends.
pub fn member_proof(method: &str, path: &str, to: u64) -> (&'static str, String) {
    let key = tiercel_purge::member_auth::MemberKey::new(CLUSTER_SECRET);
    let now = tiercel_purge::member_auth::now_secs();
    (
        tiercel_purge::member_auth::MEMBER_HEADER,
        key.sign(method, path, 99, to, now),
    )
}

/// Picks `n` free loopback ports (bound then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// One `tiercel-purge` process (running or not).
pub struct NodeProc {
    /// Raft id.
    pub id: u64,
    /// `127.0.0.1:port` of the API.
    pub addr: String,
    /// `127.0.0.1:port` of the member listener (the API's without `--raft-listen`).
    pub member_addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log_path: PathBuf,
    /// Whether it serves TLS.
    pub tls: bool,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl NodeProc {
    /// `http://addr` (`https://` in a TLS cluster).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `http(s)://` of the member listener.
    pub fn member_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.member_addr)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running (as far as the harness knows).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiercel-purge"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TIERCEL_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("TIERCEL_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(cmd.spawn().context("spawn tiercel-purge")?);
        Ok(())
    }

    /// The exit status, once the process has exited on its own.
    pub fn try_exit_code(&mut self) -> Option<i32> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status.code().unwrap_or(-1))
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Options of a harness cluster.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    args: Vec<String>,
    env: Vec<(String, String)>,
    admin: Option<String>,
    member_listener: bool,
    tls: Option<Pki>,
}

impl ClusterBuilder {
    /// Number of voters (3 or 5 usually).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Extra flags for every node (e.g. `--snapshot-every 20`).
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    /// Extra environment for every node.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// Bootstraps without `TIERCEL_ADMIN_TOKEN`.
    pub fn no_admin(mut self) -> Self {
        self.admin = None;
        self
    }

    /// Serves TLS with `pki`'s certificate on every listener (members dial each other over
    /// TLS, verified with its CA), and makes the harness's own calls trust that CA.
    pub fn tls(mut self, pki: Pki) -> Self {
        trust(&pki.ca);
        self.tls = Some(pki);
        self
    }

    /// Gives every member a separate member listener (`--raft-listen`) on its own port.
    pub fn member_listener(mut self) -> Self {
        self.member_listener = true;
        self
    }

    /// Starts the processes, waits until a leader is elected and the admin token works.
    pub async fn start(self) -> Result<Cluster> {
        let dir = TempDir::new()?;
        let ports = free_ports(self.nodes);
        let member_ports = if self.member_listener {
            free_ports(self.nodes)
        } else {
            ports.clone()
        };
        let peers: Vec<String> = member_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = dir.path().join(format!("node{id}"));
            let mut args = vec![
                "--id".to_string(),
                id.to_string(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--rate-limit".into(),
                "100000".into(),
                "--rate-burst".into(),
                "100000".into(),
            ];
            for p in &peers {
                args.push("--peer".into());
                args.push(p.clone());
            }
            if self.member_listener {
                args.push("--raft-listen".into());
                args.push(format!("127.0.0.1:{}", member_ports[i]));
            }
            if let Some(pki) = &self.tls {
                for (flag, path) in [
                    ("--cert", &pki.cert),
                    ("--key", &pki.key),
                    ("--ca-file", &pki.ca),
                ] {
                    args.push(flag.into());
                    args.push(path.display().to_string());
                }
            }
            args.extend(self.args.iter().cloned());
            let mut env = vec![(
                "TIERCEL_CLUSTER_SECRET".to_string(),
                CLUSTER_SECRET.to_string(),
            )];
            env.extend(self.env.iter().cloned());
            if i == 0 {
                args.push("--bootstrap".into());
                if let Some(a) = &self.admin {
                    env.push(("TIERCEL_ADMIN_TOKEN".into(), a.clone()));
                }
            }
            nodes.push(NodeProc {
                id,
                addr: format!("127.0.0.1:{port}"),
                member_addr: format!("127.0.0.1:{}", member_ports[i]),
                tls: self.tls.is_some(),
                data_dir,
                log_path: dir.path().join(format!("node{id}.log")),
                args,
                env,
                child: None,
            });
        }
        let mut c = Cluster {
            nodes,
            admin: self.admin.clone().unwrap_or_default(),
            dir,
        };
        for n in &mut c.nodes {
            n.spawn()?;
        }
        c.wait_leader(Duration::from_secs(15)).await?;
        if self.admin.is_some() {
            c.wait_token_everywhere(ADMIN, Duration::from_secs(15))
                .await?;
        }
        Ok(c)
    }
}

/// A running cluster of real processes; killed on drop.
pub struct Cluster {
    /// The members, index i has id i + 1.
    pub nodes: Vec<NodeProc>,
    /// The admin token.
    pub admin: String,
    dir: TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

impl Cluster {
    /// A 3-node cluster with an admin token, default flags.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            nodes: 3,
            args: Vec::new(),
            env: Vec::new(),
            admin: Some(ADMIN.to_string()),
            member_listener: false,
            tls: None,
        }
    }

    /// The temporary directory holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `http://addr` of node index `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Prints the last lines of every node's log.
    pub fn dump_logs(&self) {
        for n in &self.nodes {
            let text = std::fs::read_to_string(&n.log_path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "----- node {} ({}) -----\n{}",
                n.id,
                n.addr,
                tail.join("\n")
            );
        }
    }

    /// kill -9 node index `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Restarts node index `i` with its flags and data dir, and waits until it serves.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.nodes[i].kill();
        self.nodes[i].spawn()?;
        wait_healthy(&self.nodes[i].url(), Duration::from_secs(10)).await
    }

    /// Restarts node index `i` without waiting for it to be healthy.
    pub fn restart_no_wait(&mut self, i: usize) -> Result<()> {
        self.nodes[i].kill();
        self.nodes[i].spawn()
    }

    /// Starts an extra node (id = len + 1) that is not a member yet; returns its index.
    pub async fn spawn_extra(&mut self) -> Result<usize> {
        let id = self.nodes.len() as u64 + 1;
        let port = free_ports(1)[0];
        let data_dir = self.dir.path().join(format!("node{id}"));
        let args = vec![
            "--id".to_string(),
            id.to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        let mut n = NodeProc {
            id,
            addr: format!("127.0.0.1:{port}"),
            member_addr: format!("127.0.0.1:{port}"),
            tls: false,
            data_dir,
            log_path: self.dir.path().join(format!("node{id}.log")),
            args,
            env: vec![("TIERCEL_CLUSTER_SECRET".into(), CLUSTER_SECRET.into())],
            child: None,
        };
        n.spawn()?;
        wait_healthy(&n.url(), Duration::from_secs(10)).await?;
        self.nodes.push(n);
        Ok(self.nodes.len() - 1)
    }

    /// Index of the leader as reported by a running node, waiting up to `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for (i, n) in self.nodes.iter().enumerate() {
                if !n.running() {
                    continue;
                }
                if let Ok(r) = call(
                    Method::GET,
                    &format!("{}/healthz", n.url()),
                    None,
                    None,
                    &[],
                )
                .await
                    && r.status == 200
                    && let Ok(v) = r.json::<serde_json::Value>()
                    && v["state"] == "Leader"
                {
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                bail!("no leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node accepts `token` (it has applied its creation).
    pub async fn wait_token_everywhere(&self, token: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for n in self.nodes.iter().filter(|n| n.running()) {
            loop {
                let r = call(
                    Method::GET,
                    &format!("{}/v1/services", n.url()),
                    Some(token),
                    None,
                    &[],
                )
                .await;
                // Anything but 401 means the node knows the token (403: known, scope too small).
                if matches!(&r, Ok(r) if r.status != 401) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("token not accepted by {} within {timeout:?}: {r:?}", n.addr);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// A call to node `i` with the admin token.
    pub async fn admin_call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<Resp> {
        call(
            method,
            &format!("{}{path}", self.url(i)),
            Some(&self.admin),
            body,
            &[],
        )
        .await
    }

    /// `GET path` on node `i` as admin.
    pub async fn get(&self, i: usize, path: &str) -> Result<Resp> {
        self.admin_call(i, Method::GET, path, None).await
    }

    /// `POST path body` on node `i` as admin.
    pub async fn post(&self, i: usize, path: &str, body: &str) -> Result<Resp> {
        self.admin_call(i, Method::POST, path, Some(body)).await
    }

    /// Reads `/v1/log?from=` on node `i` until a heartbeat reports `commit_index >= upto`;
    /// returns every event before that heartbeat (heartbeats excluded).
    pub async fn log_until(
        &self,
        i: usize,
        from: u64,
        upto: u64,
        timeout: Duration,
    ) -> Result<Vec<LogEvent>> {
        log_until(&self.url(i), &self.admin, from, upto, timeout).await
    }
}

/// An answer, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Resp {
    /// Body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {}: body {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The CA the harness's calls trust (set by [`ClusterBuilder::tls`]).
static TRUSTED_CA: OnceLock<PathBuf> = OnceLock::new();

/// Makes every later harness call trust `ca` for `https://` URLs.
pub fn trust(ca: &Path) {
    let _ = TRUSTED_CA.set(ca.to_path_buf());
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client() -> HttpsClient {
    let tls = match TRUSTED_CA.get() {
        Some(ca) => tiercel_cluster::tls::client_config(Some(ca)),
        None => tiercel_cluster::tls::trust_nothing(),
    }
    .expect("a TLS client configuration");
    let http = hyper_util::client::legacy::connect::HttpConnector::new();
    Client::builder(TokioExecutor::new()).build(tiercel_cluster::tls::connector(http, tls))
}

/// A test CA and a certificate it signed for `localhost` and `127.0.0.1`, as PEM files.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The CA's key.
    pub ca_key: PathBuf,
    /// The CA's common name.
    pub ca_name: String,
    /// The server certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

impl Pki {
    /// Writes a fresh CA and server certificate named `name` into `dir`.
    pub fn issue(dir: &Path, name: &str) -> Result<Pki> {
        use rcgen::{CertifiedIssuer, KeyPair};
        let ca_name = format!("{name} test CA");
        let ca_params = Self::ca_params(&ca_name)?;
        let ca_key = KeyPair::generate()?;
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let pki = Pki {
            ca: dir.join(format!("{name}-ca.pem")),
            ca_key: dir.join(format!("{name}-ca-key.pem")),
            ca_name,
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&pki.ca, ca.pem())?;
        std::fs::write(&pki.ca_key, ca_key_pem)?;
        Self::leaf(&ca, &pki.cert, &pki.key)?;
        Ok(pki)
    }

    /// A new server certificate and key from the same CA, written as `name`.
    pub fn reissue(&self, dir: &Path, name: &str) -> Result<Pki> {
        let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&self.ca_key)?)?;
        let ca = rcgen::Issuer::new(Self::ca_params(&self.ca_name)?, key);
        let pki = Pki {
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
            ..self.clone()
        };
        Self::leaf(&ca, &pki.cert, &pki.key)?;
        Ok(pki)
    }

    fn ca_params(common_name: &str) -> Result<rcgen::CertificateParams> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        Ok(p)
    }

    fn leaf(ca: &rcgen::Issuer<'_, impl rcgen::SigningKey>, cert: &Path, key: &Path) -> Result<()> {
        let leaf_key = rcgen::KeyPair::generate()?;
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?
                .signed_by(&leaf_key, ca)?;
        std::fs::write(cert, leaf.pem())?;
        std::fs::write(key, leaf_key.serialize_pem())?;
        Ok(())
    }
}

/// One HTTP call with [`CALL_TIMEOUT`]. Streams (`/v1/log`) answer with their status and
/// whatever arrived in the first 200 ms.
pub async fn call(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Resp> {
    let mut b = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.unwrap_or("").to_string())))?;
    let resp = tokio::time::timeout(CALL_TIMEOUT, client().request(req))
        .await
        .map_err(|_| anyhow!("{url}: no answer within {CALL_TIMEOUT:?}"))??;
    let (parts, mut body) = resp.into_parts();
    let streaming = parts
        .headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"));
    let bytes = if streaming {
        let mut buf = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await {
            if let Ok(d) = frame.into_data() {
                buf.extend_from_slice(&d);
            }
        }
        Bytes::from(buf)
    } else {
        tokio::time::timeout(CALL_TIMEOUT, body.collect())
            .await
            .map_err(|_| anyhow!("{url}: body not complete within {CALL_TIMEOUT:?}"))??
            .to_bytes()
    };
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: bytes,
    })
}

/// Waits until `GET /healthz` answers 200.
pub async fn wait_healthy(url: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = call(Method::GET, &format!("{url}/healthz"), None, None, &[]).await
            && r.status == 200
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} not healthy within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Streams `GET {url}/v1/log?from=` until a heartbeat has `commit_index >= upto`; returns the
/// non-heartbeat events received before it. Fails after `timeout`.
pub async fn log_until(
    url: &str,
    token: &str,
    from: u64,
    upto: u64,
    timeout: Duration,
) -> Result<Vec<LogEvent>> {
    let req = Request::builder()
        .uri(format!("{url}/v1/log?from={from}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let resp = tokio::time::timeout_at(deadline, client().request(req))
        .await
        .map_err(|_| anyhow!("{url}: log stream did not start"))??;
    if resp.status() != 200 {
        bail!("{url}: log stream answered {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut pending = Vec::new();
    let mut events = Vec::new();
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(|_| anyhow!("{url}: no heartbeat with commit_index >= {upto} within {timeout:?} ({} events)", events.len()))?;
        let Some(frame) = frame else {
            bail!("{url}: log stream ended");
        };
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let ev: LogEvent = serde_json::from_slice(&line[..line.len() - 1])
                .with_context(|| format!("bad line {:?}", String::from_utf8_lossy(&line)))?;
            match ev {
                LogEvent::Heartbeat { commit_index } if commit_index >= upto => return Ok(events),
                LogEvent::Heartbeat { .. } => {}
                other => events.push(other),
            }
        }
    }
}

/// Every purge in `events` as (id, index, purge), batches flattened, in log order.
pub fn purges(events: &[LogEvent]) -> Vec<(String, u64, PurgeRequest)> {
    fn walk(index: u64, p: &LogPayload, out: &mut Vec<(String, u64, PurgeRequest)>) {
        match p {
            LogPayload::Purge { id, purge } => out.push((id.clone(), index, purge.clone())),
            LogPayload::Batch { items } => items.iter().for_each(|i| walk(index, i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for e in events {
        if let LogEvent::Entry { index, payload } = e {
            walk(*index, payload, &mut out);
        }
    }
    out
}

/// Counts of each purge id in `events`.
pub fn purge_id_counts(events: &[LogEvent]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (id, _, _) in purges(events) {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}
