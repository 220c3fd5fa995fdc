//! Log compaction: with a small snapshot interval the log is purged, `from=1` yields a `Reset`
//! first, and a full restart rebuilds the state from snapshot plus log tail. (A node that joins
//! after compaction and receives a snapshot is in `cluster_membership.rs`.)

mod support;

use std::time::{Duration, Instant};

use support::{Cluster, purges};
use tiercel_cluster::purge::wire::{ClusterInfo, LogEvent, PurgeAccepted, ServiceRecord};

const T: Duration = Duration::from_secs(10);

async fn wait_snapshot(c: &Cluster, node: usize, at_least: u64) -> anyhow::Result<u64> {
    let deadline = Instant::now() + T;
    loop {
        let info: ClusterInfo = c.get(node, "/v1/cluster").await?.json()?;
        if info.snapshot_index >= at_least {
            return Ok(info.snapshot_index);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "node {node}: no snapshot >= {at_least}: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks that `events` (read from=1) start with a Reset carrying `site`, then hold every purge
/// after the snapshot in order up to `acked`.
fn check_reset_then_tail(
    node: usize,
    events: &[LogEvent],
    site: &ServiceRecord,
    acked: &[PurgeAccepted],
) -> u64 {
    let Some(LogEvent::Reset {
        snapshot_index,
        services,
    }) = events.first()
    else {
        panic!(
            "node {node}: first event is not a reset: {:?}",
            events.first()
        );
    };
    assert_eq!(services, &vec![site.clone()], "node {node}");
    let tail: Vec<String> = purges(&events[1..]).into_iter().map(|p| p.0).collect();
    let want: Vec<String> = acked
        .iter()
        .filter(|a| a.index > *snapshot_index)
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(
        tail, want,
        "node {node}: entries after the snapshot at {snapshot_index}"
    );
    assert!(
        events[1..]
            .iter()
            .all(|e| !matches!(e, LogEvent::Reset { .. })),
        "node {node}: one reset only"
    );
    *snapshot_index
}

/// Reads from=1 until the log is compacted (the first event is a reset).
async fn read_compacted(c: &Cluster, node: usize, last: u64) -> anyhow::Result<Vec<LogEvent>> {
    let deadline = Instant::now() + T;
    loop {
        let events = c.log_until(node, 1, last, T).await?;
        if matches!(events.first(), Some(LogEvent::Reset { .. })) || Instant::now() > deadline {
            return Ok(events);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_log_answers_from_1_with_a_reset() -> anyhow::Result<()> {
    let mut c = Cluster::builder()
        .arg("--snapshot-every")
        .arg("10")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let r = c
        .admin_call(
            leader,
            http::Method::PUT,
            "/v1/services/site",
            Some(r#"{"hosts":["a.example"]}"#),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let site: ServiceRecord = r.json()?;
    let mut acked = Vec::new();
    for n in 0..30 {
        let r = c
            .post(leader, "/v1/purges", &format!(r#"{{"tags":["t{n}"]}}"#))
            .await?;
        assert_eq!(r.status, 200, "{}", r.text());
        acked.push(r.json::<PurgeAccepted>()?);
    }
    let last = acked.last().map(|a| a.index).unwrap_or(0);
    for node in 0..3 {
        wait_snapshot(&c, node, 20).await?;
        let events = read_compacted(&c, node, last).await?;
        let s = check_reset_then_tail(node, &events, &site, &acked);
        assert!(s >= 20, "node {node}: snapshot at {s}");
        // From after the snapshot there is no reset.
        let events = c.log_until(node, s + 1, last, T).await?;
        assert!(
            matches!(events.first(), Some(LogEvent::Entry { index, .. }) if *index > s),
            "{:?}",
            events.first()
        );
        // from=0 means from the beginning too.
        let events = c.log_until(node, 0, last, T).await?;
        assert!(matches!(events.first(), Some(LogEvent::Reset { .. })));
    }
    // A full restart (kill -9) rebuilds everything from snapshot + log tail.
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i).await?;
    }
    let leader = c.wait_leader(T).await?;
    for node in 0..3 {
        let events = c.log_until(node, 1, last, T).await?;
        check_reset_then_tail(node, &events, &site, &acked);
    }
    let got: ServiceRecord = c.get(leader, "/v1/services/site").await?.json()?;
    assert_eq!(got, site);
    for a in [&acked[0], &acked[29]] {
        let status = c.get(leader, &format!("/v1/purges/{}", a.id)).await?;
        assert_eq!(status.status, 200, "{}", status.text());
    }
    Ok(())
}
