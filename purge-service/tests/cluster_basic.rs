//! A 3-node cluster commits every purge kind and every node streams it.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Cluster, purges};
use tiercel_cluster::purge::wire::{ClusterInfo, PurgeAccepted, PurgeRequest};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_purge_kind_reaches_the_log_of_every_node() -> anyhow::Result<()> {
    // A tiny in-memory window: older entries are streamed from the log store.
    let c = Cluster::builder()
        .arg("--log-cache-entries")
        .arg("3")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    // (what is sent, what the log must say), sent alternately to the leader and a follower.
    let cases: Vec<(serde_json::Value, PurgeRequest)> = vec![
        (
            json!({"urls": ["https://Example.com:443/a/./b?x=1#f", "http://example.com/c"]}),
            PurgeRequest {
                urls: vec![
                    "https://example.com/a/b?x=1".into(),
                    "http://example.com/c".into(),
                ],
                ..Default::default()
            },
        ),
        (
            json!({"prefixes": ["https://EXAMPLE.com/static/"], "soft": true}),
            PurgeRequest {
                prefixes: vec!["https://example.com/static/".into()],
                soft: true,
                ..Default::default()
            },
        ),
        (
            json!({"tags": ["product-42", "cat:7"]}),
            PurgeRequest {
                tags: vec!["product-42".into(), "cat:7".into()],
                ..Default::default()
            },
        ),
        (
            json!({"hosts": ["Img.Example.com.", "example.com:8080"]}),
            PurgeRequest {
                hosts: vec!["img.example.com".into(), "example.com:8080".into()],
                ..Default::default()
            },
        ),
        (
            json!({"all": true}),
            PurgeRequest {
                all: true,
                ..Default::default()
            },
        ),
        (
            json!({"all": true, "soft": true}),
            PurgeRequest {
                all: true,
                soft: true,
                ..Default::default()
            },
        ),
    ];
    let mut accepted = Vec::new();
    for (n, (body, _)) in cases.iter().enumerate() {
        let target = if n % 2 == 0 { leader } else { follower };
        let r = c.post(target, "/v1/purges", &body.to_string()).await?;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let a: PurgeAccepted = r.json()?;
        assert_eq!(a.id, a.index.to_string(), "a lone purge's id is its index");
        accepted.push(a);
    }
    let last = accepted.last().map(|a| a.index).unwrap_or(0);
    for node in 0..3 {
        let events = c.log_until(node, 0, last, T).await?;
        let got = purges(&events);
        assert_eq!(got.len(), cases.len(), "node {node}: {got:?}");
        for ((id, index, purge), (a, (_, want))) in got.iter().zip(accepted.iter().zip(&cases)) {
            assert_eq!((id, *index), (&a.id, a.index), "node {node}");
            assert_eq!(purge, want, "node {node}");
        }
        // from= an index skips what precedes it.
        let tail = purges(&c.log_until(node, accepted[3].index, last, T).await?);
        let ids: Vec<&str> = tail.iter().map(|(id, _, _)| id.as_str()).collect();
        let want: Vec<&str> = accepted[3..].iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, want, "node {node}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stream_sends_heartbeats_and_new_entries_live() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 2) % 3;
    let r = support::call(
        http::Method::GET,
        &format!("{}/v1/log?from=1", c.url(follower)),
        Some(support::ADMIN),
        None,
        &[],
    )
    .await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert!(
        r.text().contains(r#"{"type":"heartbeat","commit_index":"#),
        "{}",
        r.text()
    );
    // A stream opened before the purge sees it arrive.
    let info: ClusterInfo = c.get(follower, "/v1/cluster").await?.json()?;
    let url = c.url(follower);
    let next = info.last_applied + 1;
    let reader =
        tokio::spawn(async move { support::log_until(&url, support::ADMIN, 1, next, T).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a: PurgeAccepted = c
        .post(leader, "/v1/purges", r#"{"tags":["live"]}"#)
        .await?
        .json()?;
    assert_eq!(a.index, next);
    let got = purges(&reader.await??);
    assert_eq!(
        got.last().map(|p| (p.0.clone(), p.2.tags.clone())),
        Some((a.id, vec!["live".to_string()]))
    );
    // Bad `from`.
    let r = c.get(follower, "/v1/log?from=abc").await?;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        r#"{"error":"from: \"abc\" is not a non-negative integer"}"#
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_survive_losing_two() -> anyhow::Result<()> {
    let mut c = Cluster::builder().nodes(5).start().await?;
    let leader = c.wait_leader(T).await?;
    let info: ClusterInfo = c.get(leader, "/v1/cluster").await?.json()?;
    assert_eq!(info.members.len(), 5);
    assert!(info.members.iter().all(|m| m.voter));
    c.kill(leader);
    c.kill((leader + 1) % 5);
    let survivor = (leader + 2) % 5;
    let a: PurgeAccepted = c
        .post(survivor, "/v1/purges", r#"{"tags":["three-of-five"]}"#)
        .await?
        .json()?;
    for node in [(leader + 2) % 5, (leader + 3) % 5, (leader + 4) % 5] {
        let got = purges(&c.log_until(node, a.index, a.index, T).await?);
        assert_eq!(got.len(), 1, "node {node}");
        assert_eq!(got[0].2.tags, ["three-of-five"]);
    }
    Ok(())
}
