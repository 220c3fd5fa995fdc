//! An edge (or shield) that follows a real purge-service cluster, for the tests that watch
//! what the log does to a running node (`edge_purge.rs`, `edge_services.rs`).
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use clap::Parser;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tiercel_cluster::config::{NodeArgs, NodeConfig, Role};
use tiercel_edge::node::{self, RunningNode};
use tiercel_testbed::origin::Origin;

use super::support::{ADMIN, Cluster};

/// The longest any wait of these tests takes.
pub const T: Duration = Duration::from_secs(15);

#[derive(Parser)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

pub struct Edge {
    pub node: RunningNode,
}

pub struct Got {
    pub status: u16,
    pub cache_status: String,
    pub body: Bytes,
}

impl Got {
    pub fn hit(&self) -> bool {
        self.cache_status
            .rsplit(", ")
            .next()
            .unwrap_or("")
            .split(';')
            .any(|p| p.trim() == "hit")
    }
}

impl Edge {
    pub async fn start(
        cluster: &Cluster,
        origin: &Origin,
        name: &str,
        state: Option<&std::path::Path>,
    ) -> Result<Edge> {
        Edge::start_as(
            cluster,
            Role::Edge,
            &["--origin", &origin.url()],
            name,
            state,
        )
        .await
    }

    /// A node of `role` with `upstream` flags (`--origin URL` or `--shield URL`).
    pub async fn start_as(
        cluster: &Cluster,
        role: Role,
        upstream: &[&str],
        name: &str,
        state: Option<&std::path::Path>,
    ) -> Result<Edge> {
        Edge::start_tweaked(cluster, role, upstream, name, state, |_| {}).await
    }

    /// Like [`Edge::start_as`], with a last word on the loaded configuration.
    pub async fn start_tweaked(
        cluster: &Cluster,
        role: Role,
        upstream: &[&str],
        name: &str,
        state: Option<&std::path::Path>,
        tweak: impl FnOnce(&mut NodeConfig),
    ) -> Result<Edge> {
        let servers: Vec<String> = (0..cluster.nodes.len()).map(|i| cluster.url(i)).collect();
        let mut argv = vec![
            "tiercel-node".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--name".into(),
            name.into(),
            "--purge-token".into(),
            ADMIN.into(),
        ];
        argv.extend(upstream.iter().map(|s| s.to_string()));
        for s in servers {
            argv.push("--purge-service".into());
            argv.push(s);
        }
        if let Some(dir) = state {
            argv.push("--state-dir".into());
            argv.push(dir.display().to_string());
        }
        let args = Args::try_parse_from(argv)?;
        let mut cfg = NodeConfig::load(role, &args.node, std::iter::empty())?;
        tweak(&mut cfg);
        let node = node::start(role, &cfg).await?;
        let e = Edge { node };
        e.wait_following().await?;
        Ok(e)
    }

    /// Until the follower has heard the service (before that, every hit is revalidated).
    pub async fn wait_following(&self) -> Result<()> {
        let state = self.node.purge_state.clone().context("follower running")?;
        let deadline = tokio::time::Instant::now() + T;
        while state.lagging() {
            if tokio::time::Instant::now() > deadline {
                return Err(anyhow!("edge never heard the purge service"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub async fn get(&self, host: &str, pq: &str) -> Result<Got> {
        self.get_with(host, pq, &[]).await
    }

    /// A GET with extra header fields.
    pub async fn get_with(&self, host: &str, pq: &str, fields: &[(&str, &str)]) -> Result<Got> {
        let addr = self.node.listen.context("listening")?;
        let mut req = Request::get(format!("http://{addr}{pq}")).header("host", host);
        for (name, value) in fields {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::<Bytes>::default())?;
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let resp = tokio::time::timeout(T, client.request(req)).await??;
        let status = resp.status().as_u16();
        let cache_status = resp
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = tokio::time::timeout(T, resp.into_body().collect())
            .await??
            .to_bytes();
        Ok(Got {
            status,
            cache_status,
            body,
        })
    }

    /// Waits until the edge applied log index `index`.
    pub async fn applied(&self, index: u64) -> Result<()> {
        let f = self.node.follower.as_ref().context("follower")?;
        f.wait_applied(index, T)
            .await
            .map_err(|e| anyhow!("edge did not apply {index}: {e}"))?;
        Ok(())
    }
}

/// Fetches until cached: a miss then a hit, one origin request.
pub async fn warm(e: &Edge, o: &Origin, host: &str, pq: &str) -> Result<()> {
    let before = o.hits(pq);
    e.get(host, pq).await?;
    let hit = e.get(host, pq).await?;
    anyhow::ensure!(hit.hit(), "{pq} not cached: {}", hit.cache_status);
    anyhow::ensure!(
        o.hits(pq) == before + 1,
        "{pq}: {} origin hits",
        o.hits(pq) - before
    );
    Ok(())
}
