//! Purges reaching real edges: a REAL 3-node `tiercel-purge` cluster, edges that follow its log
//! (`--purge-service`), a real origin that counts requests. Every purge kind takes effect on the
//! edge (the next request goes to the origin again); soft purges serve stale only while
//! revalidating or when the origin fails; `tiercelctl purge --wait` returns once the edge applied.
//! Services put with `tiercelctl` route a running edge's requests within 2 s.

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use clap::Parser;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{ADMIN, Cluster};
use tiercel_cluster::config::{NodeArgs, NodeConfig, Role};
use tiercel_cluster::purge::wire::PurgeAccepted;
use tiercel_edge::node::{self, RunningNode};
use tiercel_testbed::origin::{Origin, Spec};

const T: Duration = Duration::from_secs(15);

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

struct Edge {
    node: RunningNode,
}

struct Got {
    status: u16,
    cache_status: String,
    body: Bytes,
}

impl Got {
    fn hit(&self) -> bool {
        self.cache_status
            .rsplit(", ")
            .next()
            .unwrap_or("")
            .split(';')
            .any(|p| p.trim() == "hit")
    }
}

impl Edge {
    async fn start(
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
    async fn start_as(
        cluster: &Cluster,
        role: Role,
        upstream: &[&str],
        name: &str,
        state: Option<&std::path::Path>,
    ) -> Result<Edge> {
        Edge::start_tweaked(cluster, role, upstream, name, state, |_| {}).await
    }

    /// Like [`Edge::start_as`], with a last word on the loaded configuration.
    async fn start_tweaked(
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
    async fn wait_following(&self) -> Result<()> {
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

    async fn get(&self, host: &str, pq: &str) -> Result<Got> {
        self.get_with(host, pq, &[]).await
    }

    /// A GET with extra header fields.
    async fn get_with(&self, host: &str, pq: &str, fields: &[(&str, &str)]) -> Result<Got> {
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
    async fn applied(&self, index: u64) -> Result<()> {
        let f = self.node.follower.as_ref().context("follower")?;
        f.wait_applied(index, T)
            .await
            .map_err(|e| anyhow!("edge did not apply {index}: {e}"))?;
        Ok(())
    }
}

async fn purge(c: &Cluster, body: &str) -> Result<PurgeAccepted> {
    let r = c.post(0, "/v1/purges", body).await?;
    anyhow::ensure!(
        r.status == 200 || r.status == 201 || r.status == 202,
        "purge answered {}: {}",
        r.status,
        r.text()
    );
    r.json()
}

/// Fetches until cached: a miss then a hit, one origin request.
async fn warm(e: &Edge, o: &Origin, host: &str, pq: &str) -> Result<()> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_purge_kind_takes_effect_on_the_edge() -> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let o = Origin::start("127.0.0.1:0".parse()?).await?;
    let e = Edge::start(&c, &o, "edge-kinds", None).await?;
    let a = "cdn-a.example";
    let b = "cdn-b.example";

    // url: every variant of one URL, nothing else.
    let u1 = "/p/url?cc=max-age%3D600";
    let u2 = "/p/other?cc=max-age%3D600";
    warm(&e, &o, a, u1).await?;
    warm(&e, &o, a, u2).await?;
    let p = purge(&c, &format!(r#"{{"urls":["http://{a}{u1}"]}}"#)).await?;
    e.applied(p.index).await?;
    assert!(!e.get(a, u1).await?.hit(), "url purge refetches");
    assert!(e.get(a, u2).await?.hit(), "other URLs stay");
    assert_eq!(o.hits(u1), 2);

    // url, spelled otherwise: a purge names the canonical URL whatever spelling stored it,
    // and an odd spelling in the purge names it too (one normalisation for keys and purges).
    let odd = "/n/%7euser/./a/../x?cc=max-age%3D600";
    let canonical = "/n/~user/x?cc=max-age%3D600";
    e.get(a, odd).await?;
    assert!(
        e.get(a, canonical).await?.hit(),
        "one object for both spellings"
    );
    let p = purge(&c, &format!(r#"{{"urls":["http://{a}{canonical}"]}}"#)).await?;
    e.applied(p.index).await?;
    assert!(!e.get(a, odd).await?.hit(), "purged by its canonical URL");
    assert!(e.get(a, canonical).await?.hit());
    let p = purge(
        &c,
        &format!(r#"{{"urls":["http://{a}/n/%2e%2e/n/%7Euser//x?cc=max-age%3D600"]}}"#),
    )
    .await?;
    e.applied(p.index).await?;
    assert!(
        !e.get(a, canonical).await?.hit(),
        "purged by an odd spelling"
    );
    assert_eq!(o.hits(canonical), 3);

    // prefix: everything under a path.
    let s1 = "/static/x.css?cc=max-age%3D600";
    let s2 = "/static/img/y.png?cc=max-age%3D600";
    let n1 = "/dynamic/z?cc=max-age%3D600";
    for pq in [s1, s2, n1] {
        warm(&e, &o, a, pq).await?;
    }
    let p = purge(&c, &format!(r#"{{"prefixes":["https://{a}/static/"]}}"#)).await?;
    e.applied(p.index).await?;
    assert!(!e.get(a, s1).await?.hit());
    assert!(!e.get(a, s2).await?.hit());
    assert!(e.get(a, n1).await?.hit(), "outside the prefix");

    // tag: from Surrogate-Key and from Cache-Tag.
    let t1 = "/t/one?cc=max-age%3D600&tags=product-7%20shared";
    let t2 = "/t/two?cc=max-age%3D600&h=Cache-Tag:product-9,shared";
    let t3 = "/t/three?cc=max-age%3D600&tags=product-9";
    for pq in [t1, t2, t3] {
        warm(&e, &o, a, pq).await?;
    }
    let p = purge(&c, r#"{"tags":["shared"]}"#).await?;
    e.applied(p.index).await?;
    assert!(!e.get(a, t1).await?.hit(), "Surrogate-Key tag");
    assert!(!e.get(a, t2).await?.hit(), "Cache-Tag tag");
    assert!(e.get(a, t3).await?.hit(), "untagged object stays");

    // host: one host's objects, not another's.
    let h = "/h/page?cc=max-age%3D600";
    warm(&e, &o, a, h).await?;
    let hb = "/h/page-b?cc=max-age%3D600";
    warm(&e, &o, b, hb).await?;
    let p = purge(&c, &format!(r#"{{"hosts":["{a}"]}}"#)).await?;
    e.applied(p.index).await?;
    assert!(!e.get(a, h).await?.hit());
    assert!(e.get(b, hb).await?.hit(), "other host stays");

    // all.
    let p = purge(&c, r#"{"all":true}"#).await?;
    e.applied(p.index).await?;
    assert!(!e.get(b, hb).await?.hit());
    assert!(!e.get(a, n1).await?.hit());
    assert_eq!(o.hits(hb), 2);

    // Purging happened by rules, never by a scan, and objects stored after a purge are valid.
    assert!(e.get(b, hb).await?.hit(), "stored after the purge: valid");

    // What an operator sees in /metrics: the applied index, the patterns held, not lagging.
    let text = e.node.metrics_text();
    let gauge = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert!(
        gauge("tiercel_purge_applied_index") >= Some(p.index as f64),
        "{text}"
    );
    // Two urls (the odd spelling is the canonical URL's pattern again), prefix, tag, host,
    // and the `all` mark.
    assert_eq!(gauge("tiercel_purge_rules"), Some(6.0), "{text}");
    assert_eq!(gauge("tiercel_purge_lagging"), Some(0.0), "{text}");
    assert!(
        gauge("tiercel_purge_log_silence_seconds").is_some_and(|s| s < 5.0),
        "{text}"
    );
    e.node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_reaches_both_tiers() -> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let o = Origin::start("127.0.0.1:0".parse()?).await?;
    let origin_url = o.url();
    let shield = Edge::start_as(
        &c,
        Role::Shield,
        &["--origin", &origin_url],
        "shield-p",
        None,
    )
    .await?;
    let shield_url = format!("http://{}", shield.node.listen.context("shield listens")?);
    let edge = Edge::start_as(&c, Role::Edge, &["--shield", &shield_url], "edge-p", None).await?;
    let a = "cdn-a.example";
    let pq = "/tiers/x?cc=max-age%3D600&tags=both";
    warm(&edge, &o, a, pq).await?;
    let p = purge(&c, r#"{"tags":["both"]}"#).await?;
    edge.applied(p.index).await?;
    shield.applied(p.index).await?;
    // Both tiers dropped it: the edge misses, and so does the shield behind it.
    let after = edge.get(a, pq).await?;
    assert_eq!(after.status, 200);
    assert!(!after.hit());
    assert!(
        !after.cache_status.starts_with("shield-p; hit"),
        "{}",
        after.cache_status
    );
    assert_eq!(o.hits(pq), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_purge_revalidates_and_serves_stale_only_on_error() -> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let o = Origin::start("127.0.0.1:0".parse()?).await?;
    let e = Edge::start(&c, &o, "edge-soft", None).await?;
    let host = "soft.example";
    let pq = "/s/doc?cc=max-age%3D600&etag=v1&size=4000";
    warm(&e, &o, host, pq).await?;

    let p = purge(
        &c,
        &format!(r#"{{"urls":["http://{host}{pq}"],"soft":true}}"#),
    )
    .await?;
    e.applied(p.index).await?;
    let r = e.get(host, pq).await?;
    assert_eq!(r.status, 200);
    assert_eq!(
        o.conditional_hits(pq),
        1,
        "a soft purge revalidates instead of refetching"
    );
    assert!(r.cache_status.contains("fwd=stale"), "{}", r.cache_status);
    assert!(e.get(host, pq).await?.hit(), "validated again: fresh");

    // Soft purge while the origin is down: the stale copy is served instead of an error.
    let p = purge(
        &c,
        &format!(r#"{{"urls":["http://{host}{pq}"],"soft":true}}"#),
    )
    .await?;
    e.applied(p.index).await?;
    o.set("/s/doc", Spec::new().with("fail", "close"));
    let r = e.get(host, pq).await?;
    assert_eq!(r.status, 200, "stale on error after a soft purge");
    assert!(
        r.cache_status.contains("stale-if-error"),
        "{}",
        r.cache_status
    );
    assert_eq!(r.body.len(), 4000);

    // A hard purge while the origin is down: nothing stale to serve.
    let p = purge(&c, &format!(r#"{{"urls":["http://{host}{pq}"]}}"#)).await?;
    e.applied(p.index).await?;
    assert_eq!(e.get(host, pq).await?.status, 502);
    e.node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiercelctl_wait_returns_once_every_edge_applied_and_state_survives_restart() -> Result<()>
{
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let o = Origin::start("127.0.0.1:0".parse()?).await?;
    let state = tempfile::tempdir()?;
    let e1 = Edge::start(&c, &o, "edge-w1", Some(state.path())).await?;
    let e2 = Edge::start(&c, &o, "edge-w2", None).await?;
    let host = "wait.example";
    let pq = "/w/obj?cc=max-age%3D600";
    warm(&e1, &o, host, pq).await?;
    warm(&e2, &o, host, pq).await?;

    let url = format!("http://{host}{pq}");
    let out = Command::new(env!("CARGO_BIN_EXE_tiercelctl"))
        .args([
            "--server",
            &c.url(1),
            "--token",
            ADMIN,
            "purge",
            "--url",
            &url,
            "--wait",
            "--wait-timeout",
            "20s",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "tiercelctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --wait returned: both edges have applied it, with no extra waiting here.
    assert!(!e1.get(host, pq).await?.hit());
    assert!(!e2.get(host, pq).await?.hit());
    assert_eq!(o.hits(pq), 4);

    // A restarted edge still knows the purge (its state is on disk), so an object stored before
    // the purge can never come back; and it catches up with purges made while it was down.
    let before_restart = e1
        .node
        .purge_state
        .as_ref()
        .map(|s| s.applied_index())
        .unwrap_or(0);
    e1.node.shutdown().await;
    let p = purge(&c, r#"{"tags":["nothing-cached"]}"#).await?;
    let e1 = Edge::start(&c, &o, "edge-w1", Some(state.path())).await?;
    assert!(
        e1.node
            .purge_state
            .as_ref()
            .map(|s| s.applied_index())
            .unwrap_or(0)
            >= before_restart
    );
    e1.applied(p.index).await?;
    e1.node.shutdown().await;
    e2.node.shutdown().await;
    Ok(())
}

/// A purge log the edge has not heard from lately says nothing about any object: a partly
/// stored one is neither served unchecked nor dropped; the client's request is forwarded as
/// it came, and the object stays for when the log is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_purge_log_lags_a_partly_stored_object_is_forwarded_not_dropped() -> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let mut c = Cluster::builder().start().await?;
    let o = Origin::start("127.0.0.1:0".parse()?).await?;
    let e = Edge::start_tweaked(
        &c,
        Role::Edge,
        &["--origin", &o.url()],
        "edge-lag",
        None,
        |cfg| cfg.cache.max_purge_lag = Duration::from_millis(1500),
    )
    .await?;
    // With stale-while-revalidate: a lag makes that decision, not a revalidation.
    let pq = "/lag/film?size=16777216&ranges=1&etag=v1&cc=max-age%3D600%2C%20stale-while-revalidate%3D600";
    let seek = |r: &'static str| async {
        let got = e.get_with("cdn-a.example", pq, &[("range", r)]).await?;
        anyhow::Ok((got.status, got.cache_status, got.body))
    };
    let ranges_asked = || o.ranges_asked("/lag/film");
    // A cold seek stores the chunk it lands in; the same bytes again are a hit.
    let (status, _, body) = seek("bytes=100-199").await?;
    assert_eq!((status, body.len()), (206, 100));
    let (_, cs, _) = seek("bytes=100-199").await?;
    assert!(cs.contains("hit"), "{cs}");
    assert_eq!(ranges_asked(), ["bytes=0-1048575"]);

    // The purge-service goes silent: past `cache.max_purge_lag` the edge lags.
    for i in 0..c.nodes.len() {
        c.kill(i);
    }
    let state = e.node.purge_state.clone().context("follower running")?;
    let deadline = tokio::time::Instant::now() + T;
    while !state.lagging() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never lagged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The client's own range goes upstream (not a refill of the object's chunk), twice: the
    // object was not dropped and refilled by the first.
    for _ in 0..2 {
        let (status, cs, body) = seek("bytes=100-199").await?;
        assert_eq!((status, body.len()), (206, 100), "{cs}");
        assert!(!cs.contains("hit"), "{cs}");
    }
    assert_eq!(
        ranges_asked(),
        ["bytes=0-1048575", "bytes=100-199", "bytes=100-199"]
    );
    e.node.shutdown().await;
    Ok(())
}

/// Runs the real `tiercelctl` against the cluster with the admin token.
fn tiercelctl(c: &Cluster, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_tiercelctl"))
        .args(["--server", &c.url(0), "--token", ADMIN])
        .args(args)
        .output()?)
}

type Live = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// GETs a fresh URL of `live.test` (never a hit) over `conn`; the path and query asked.
async fn ask_live(conn: &mut Live, n: &mut u32) -> Result<String> {
    *n += 1;
    let pq = format!("/live/{n}?size=10");
    let req = Request::get(&pq)
        .header("host", "live.test")
        .body(Full::<Bytes>::default())?;
    let resp = tokio::time::timeout(T, conn.send_request(req)).await??;
    anyhow::ensure!(resp.status() == 200, "{pq}: {}", resp.status());
    tokio::time::timeout(T, resp.into_body().collect()).await??;
    Ok(pq)
}

/// Asks over `conn` until `origin` answers: within 2 s of the change.
async fn until_answered_by(conn: &mut Live, n: &mut u32, origin: &Origin) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let pq = ask_live(conn, n).await?;
        if origin.hits(&pq) == 1 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(2),
            "not applied within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `tiercelctl services put NAME --file FILE`, which must succeed.
fn put_ok(c: &Cluster, name: &str, file: &std::path::Path) -> Result<()> {
    let out = tiercelctl(
        c,
        &[
            "services",
            "put",
            name,
            "--file",
            &file.display().to_string(),
        ],
    )?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_changed_through_tiercelctl_applies_on_a_running_edge_over_a_held_connection()
-> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let (default, a, b) = (
        Origin::start("127.0.0.1:0".parse()?).await?,
        Origin::start("127.0.0.1:0".parse()?).await?,
        Origin::start("127.0.0.1:0".parse()?).await?,
    );
    let e = Edge::start(&c, &default, "edge-svc", None).await?;
    // One connection, held open across every change.
    let tcp = tokio::net::TcpStream::connect(e.node.listen.context("listening")?).await?;
    let (mut conn, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(driver);
    let mut n = 0u32;
    let pq = ask_live(&mut conn, &mut n).await?;
    assert_eq!(default.hits(&pq), 1, "no service yet: the node's origin");

    // Created from a TOML file, as a node's [[services]] table is written.
    let dir = tempfile::tempdir()?;
    let toml = dir.path().join("live.toml");
    std::fs::write(
        &toml,
        format!("hosts = [\"live.test\"]\norigins = [\"{}\"]\n", a.url()),
    )?;
    put_ok(&c, "live", &toml)?;
    until_answered_by(&mut conn, &mut n, &a).await?;
    // Changed in JSON: the pool moves to the other origin.
    let json = dir.path().join("live.json");
    std::fs::write(
        &json,
        format!(r#"{{"hosts":["live.test"],"origins":["{}"]}}"#, b.url()),
    )?;
    put_ok(&c, "live", &json)?;
    until_answered_by(&mut conn, &mut n, &b).await?;
    // A bad definition is refused before it is sent, naming the key, and changes nothing.
    std::fs::write(
        &json,
        r#"{"hosts":["live.test"],"origins":[{"url":"http://o","weight":0}]}"#,
    )?;
    let out = tiercelctl(
        &c,
        &[
            "services",
            "put",
            "live",
            "--file",
            &json.display().to_string(),
        ],
    )?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("origins[0].weight: must be between 1 and 1000, got 0"),
        "{err}"
    );
    // Sent anyway (past the CLI), the service refuses it the same way; a host taken by another
    // service is a conflict.
    let r = support::call(
        http::Method::PUT,
        &format!("{}/v1/services/live", c.url(0)),
        Some(ADMIN),
        Some(r#"{"hosts":["live.test"],"balance":"random"}"#),
        &[],
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("balance: expected round_robin"),
        "{}",
        r.text()
    );
    let r = support::call(
        http::Method::PUT,
        &format!("{}/v1/services/thief", c.url(0)),
        Some(ADMIN),
        Some(r#"{"hosts":["live.test"]}"#),
        &[],
    )
    .await?;
    assert_eq!(r.status, 409, "{}", r.text());
    let pq = ask_live(&mut conn, &mut n).await?;
    assert_eq!(b.hits(&pq), 1, "still the last good definition");
    // Deleted: back to the node's origin.
    let out = tiercelctl(&c, &["services", "delete", "live"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until_answered_by(&mut conn, &mut n, &default).await?;
    e.node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_to_one_service_purges_only_its_objects_and_reads_only_its_config()
-> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let o = Origin::start("127.0.0.1:0".parse()?).await?;
    let pair = rcgen::generate_simple_self_signed(vec!["a.test".to_string()])?;
    let tls = serde_json::json!({"cert": pair.cert.pem(), "key": pair.signing_key.serialize_pem()});
    for (name, host) in [("site-a", "a.test"), ("site-b", "b.test")] {
        let out = {
            let dir = tempfile::tempdir()?;
            let f = dir.path().join("s.json");
            let mut doc = serde_json::json!({"hosts": [host], "origins": [o.url()]});
            if name == "site-a" {
                doc["tls"] = tls.clone();
            }
            std::fs::write(&f, doc.to_string())?;
            tiercelctl(
                &c,
                &["services", "put", name, "--file", &f.display().to_string()],
            )?
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let e = Edge::start(&c, &o, "edge-tenant", None).await?;
    let deadline = tokio::time::Instant::now() + T;
    while e.node.engine.sites().services.len() < 2 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "services never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The same path and the same tag on both sites.
    let pq = "/t?tags=shared&cc=max-age%3D600";
    for host in ["a.test", "b.test"] {
        warm(&e, &o, host, pq).await?;
    }
    let out = tiercelctl(
        &c,
        &[
            "--json",
            "tokens",
            "create",
            "--name",
            "ci-a",
            "--scope",
            "purge",
            "--service",
            "site-a",
        ],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let token = created["token"].as_str().context("token")?.to_owned();
    c.wait_token_everywhere(&token, T).await?;
    let as_a = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tiercelctl"))
            .args(["--server", &c.url(0), "--token", &token])
            .args(args)
            .output()
    };
    // An admin's purge of another site is not in this token's audit trail.
    let out = tiercelctl(&c, &["purge", "--service", "site-b", "--tag", "other"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another service, or none named: 403, nothing purged.
    for args in [
        &["purge", "--service", "site-b", "--tag", "shared"][..],
        &["purge", "--tag", "shared"][..],
        &["services", "get", "site-b"][..],
    ] {
        let out = as_a(args)?;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("403") || err.contains("may not") || err.contains("limited"),
            "{args:?}: {err}"
        );
    }
    let out = as_a(&["--json", "services", "list"])?;
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "site-a");
    // It reads the definition, never the private key.
    assert_eq!(listed[0]["doc"]["tls"]["key"], "(redacted)");
    assert_eq!(listed[0]["doc"]["tls"]["cert"], tls["cert"]);
    // Its own service's tag, and even b's host named under its own service: only a's object
    // goes.
    let out = as_a(&[
        "purge",
        "--service",
        "site-a",
        "--tag",
        "shared",
        "--host",
        "b.test",
        "--wait",
        "--wait-timeout",
        "20s",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!e.get("a.test", pq).await?.hit(), "site-a's object purged");
    let out = as_a(&["--json", "purges", "list"])?;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let purges = list.as_array().context("a list of purges")?;
    assert_eq!(purges.len(), 1, "{list}");
    assert_eq!(purges[0]["purge"]["service"], "site-a");
    assert!(
        e.get("b.test", pq).await?.hit(),
        "site-b's object untouched"
    );
    e.node.shutdown().await;
    Ok(())
}
