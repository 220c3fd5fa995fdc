//! Membership through the API (a 4th node joins after compaction, by snapshot, and leaves),
//! writes sent to followers, and 503 + Retry-After without a leader.

mod support;

use std::time::{Duration, Instant};

use http::Method;
use support::{Cluster, purges};
use tiercel_cluster::purge::wire::{ClusterInfo, LogEvent, PurgeAccepted, ServiceRecord};

const T: Duration = Duration::from_secs(10);

fn ids(info: &ClusterInfo) -> Vec<(u64, bool)> {
    info.members.iter().map(|m| (m.id, m.voter)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_by_snapshot_as_voter_and_leaves() -> anyhow::Result<()> {
    let mut c = Cluster::builder()
        .arg("--snapshot-every")
        .arg("10")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    // Writes to a follower are forwarded to the leader.
    let r = c
        .admin_call(
            follower,
            Method::PUT,
            "/v1/services/s1",
            Some(r#"{"hosts":["s1.example"]}"#),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let s1: ServiceRecord = r.json()?;
    let mut last = 0;
    for n in 0..25 {
        let a: PurgeAccepted = c
            .post(
                follower,
                "/v1/purges",
                &format!(r#"{{"hosts":["h{n}.example"]}}"#),
            )
            .await?
            .json()?;
        last = a.index;
    }
    let extra = c.spawn_extra().await?;
    // First as a learner, then promoted to voter.
    let body = format!(
        r#"{{"id":4,"addr":"{}","voter":false}}"#,
        c.nodes[extra].addr
    );
    let r = c.post(follower, "/v1/cluster/members", &body).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let info: ClusterInfo = r.json()?;
    assert_eq!(ids(&info), [(1, true), (2, true), (3, true), (4, false)]);
    let body = format!(r#"{{"id":4,"addr":"{}"}}"#, c.nodes[extra].addr);
    let r = c.post(follower, "/v1/cluster/members", &body).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let info: ClusterInfo = r.json()?;
    assert_eq!(ids(&info), [(1, true), (2, true), (3, true), (4, true)]);
    // The new member learnt the compacted past from a snapshot: its log starts with a reset.
    let events = c.log_until(extra, 1, last, T).await?;
    match events.first() {
        Some(LogEvent::Reset {
            services,
            snapshot_index,
        }) => {
            assert_eq!(services, &vec![s1.clone()]);
            assert!(*snapshot_index >= 10);
        }
        other => panic!("expected a reset first, got {other:?}"),
    }
    // It applies new purges like everyone else.
    let a: PurgeAccepted = c
        .post(leader, "/v1/purges", r#"{"tags":["after-join"]}"#)
        .await?
        .json()?;
    let tail = purges(&c.log_until(extra, a.index, a.index, T).await?);
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].2.tags, ["after-join"]);
    let seen: ClusterInfo = c.get(extra, "/v1/cluster").await?.json()?;
    assert_eq!(seen.node_id, 4);
    assert_eq!(seen.members.len(), 4);
    assert!(seen.leader_id.is_some());
    assert!(
        seen.last_applied >= a.index && seen.commit_index >= a.index,
        "{seen:?}"
    );
    // The same id at another address moves the member (a new host, or its member traffic
    // moved to --raft-listen); unknown ids are 404.
    let r = c
        .post(
            leader,
            "/v1/cluster/members",
            r#"{"id":4,"addr":"127.0.0.1:1"}"#,
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let moved: ClusterInfo = r.json()?;
    let four = moved
        .members
        .iter()
        .find(|m| m.id == 4)
        .map(|m| m.addr.as_str());
    assert_eq!(four, Some("127.0.0.1:1"));
    let r = c
        .admin_call(leader, Method::DELETE, "/v1/cluster/members/4", None)
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let info: ClusterInfo = r.json()?;
    assert_eq!(ids(&info), [(1, true), (2, true), (3, true)]);
    let r = c
        .admin_call(leader, Method::DELETE, "/v1/cluster/members/4", None)
        .await?;
    assert_eq!(r.status, 404);
    let r = c
        .admin_call(leader, Method::DELETE, "/v1/cluster/members/x", None)
        .await?;
    assert_eq!(r.status, 400);
    // The cluster still commits with three.
    let r = c.post(follower, "/v1/purges", r#"{"all":true}"#).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_leader_writes_get_503_and_retry_after() -> anyhow::Result<()> {
    let mut c = Cluster::builder()
        .arg("--leader-wait")
        .arg("500ms")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let survivor = (leader + 1) % 3;
    c.kill(leader);
    c.kill((leader + 2) % 3);
    // Give the survivor time to notice: it either proxies to a dead leader or finds none.
    let t0 = Instant::now();
    let r = c.post(survivor, "/v1/purges", r#"{"tags":["x"]}"#).await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        t0.elapsed()
    );
    // Reads served locally still work.
    let r = c.get(survivor, "/v1/services").await?;
    assert_eq!(r.status, 200);
    // After the election timeout the survivor knows there is no leader.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = c.post(survivor, "/v1/purges", r#"{"tags":["x"]}"#).await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    // Once it knows it has no leader (a candidate), it sends its followers no heartbeat.
    let deadline = Instant::now() + T;
    loop {
        let h: serde_json::Value = c.get(survivor, "/healthz").await?.json()?;
        if h["leader_id"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still follows a dead leader: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = c
        .log_until(survivor, 0, 0, Duration::from_millis(1500))
        .await
        .expect_err("no heartbeat without a quorum");
    assert!(err.to_string().contains("no heartbeat"), "{err}");
    // Back in a quorum, heartbeats resume.
    c.restart(leader).await?;
    c.wait_leader(T).await?;
    c.log_until(survivor, 0, 0, T).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_a_quorum_stops_heartbeats() -> anyhow::Result<()> {
    let mut c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let info: ClusterInfo = c.get(leader, "/v1/cluster").await?.json()?;
    c.log_until(leader, 0, info.last_applied, T).await?;
    c.kill((leader + 1) % 3);
    c.kill((leader + 2) % 3);
    // The quorum acknowledgement ages past the maximum election timeout (2 × 500 ms)…
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // …and the old leader, still believing it leads, no longer vouches for its log.
    let err = c
        .log_until(leader, 0, 0, Duration::from_millis(1500))
        .await
        .expect_err("no heartbeat without a quorum");
    assert!(err.to_string().contains("no heartbeat"), "{err}");
    c.restart((leader + 1) % 3).await?;
    c.wait_leader(T).await?;
    c.log_until(leader, 0, 0, T).await?;
    Ok(())
}
