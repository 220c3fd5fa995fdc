//! Purges reaching real edges: a REAL 3-node `tiercel-purge` cluster, edges that follow its log
//! (`--purge-service`), a real origin that counts requests. Every purge kind takes effect on the
//! edge (the next request goes to the origin again); soft purges serve stale only while
//! revalidating or when the origin fails; `tiercelctl purge --wait` returns once the edge applied.

#[path = "support/edge.rs"]
mod edge;
mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use support::{ADMIN, Cluster};
use tiercel_cluster::config::Role;
use tiercel_cluster::purge::wire::PurgeAccepted;
use tiercel_testbed::origin::{Origin, Spec};

use edge::{Edge, T, warm};

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
