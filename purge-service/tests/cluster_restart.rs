//! kill -9 every node right after acknowledgements, restart them all: nothing acknowledged is
//! lost (purges, services, tokens, the log), and idempotency keys still hold.

mod support;

use std::time::Duration;

use http::Method;
use support::{Cluster, call, purges};
use tiercel_cluster::purge::wire::{PurgeAccepted, PurgeStatus, ServiceRecord, TokenCreated};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restart_after_kill_9_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    let token: TokenCreated = c
        .post(leader, "/v1/tokens", r#"{"name":"ci","scope":"purge"}"#)
        .await?
        .json()?;
    let r = c
        .admin_call(
            follower,
            Method::PUT,
            "/v1/services/shop",
            Some(r#"{"hosts":["shop.example"],"ttl":{"default":"60s"}}"#),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let shop: ServiceRecord = r.json()?;
    let mut acked = Vec::new();
    for n in 0..20 {
        let target = if n % 2 == 0 { leader } else { follower };
        let url = format!("{}/v1/purges", c.url(target));
        let body = format!(r#"{{"urls":["https://shop.example/item/{n}"]}}"#);
        let key = format!("restart-{n}");
        let r = call(
            Method::POST,
            &url,
            Some(&token.token),
            Some(&body),
            &[("idempotency-key", &key)],
        )
        .await?;
        assert_eq!(r.status, 200, "{}", r.text());
        acked.push(r.json::<PurgeAccepted>()?);
    }
    // No grace: every process dies the moment the last answer arrived.
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i).await?;
    }
    let leader = c.wait_leader(T).await?;
    let last = acked.last().map(|a| a.index).unwrap_or(0);
    for node in 0..3 {
        let events = c.log_until(node, 0, last, T).await?;
        let ids: Vec<String> = purges(&events).into_iter().map(|p| p.0).collect();
        let want: Vec<String> = acked.iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids, want, "node {node}");
        let got: ServiceRecord = c.get(node, "/v1/services/shop").await?.json()?;
        assert_eq!(got, shop, "node {node}");
    }
    // The created token still authenticates, and its idempotency keys still answer the same.
    for (n, a) in acked.iter().enumerate().step_by(7) {
        let url = format!("{}/v1/purges", c.url((leader + 2) % 3));
        let body = format!(r#"{{"urls":["https://shop.example/item/{n}"]}}"#);
        let key = format!("restart-{n}");
        let r = call(
            Method::POST,
            &url,
            Some(&token.token),
            Some(&body),
            &[("idempotency-key", &key)],
        )
        .await?;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(&r.json::<PurgeAccepted>()?, a);
        let s: PurgeStatus = call(
            Method::GET,
            &format!("{}/v1/purges/{}", c.url(follower), a.id),
            Some(&token.token),
            None,
            &[],
        )
        .await?
        .json()?;
        assert_eq!((s.id.as_str(), s.index), (a.id.as_str(), a.index));
    }
    // Nothing new was committed by the retries.
    let events = c.log_until(leader, 0, last, T).await?;
    assert_eq!(purges(&events).len(), acked.len());
    Ok(())
}
