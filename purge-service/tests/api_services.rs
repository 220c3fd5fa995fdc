//! Services: versions, If-Match (412), validation, and their way into the log; purge status
//! from follower reports.

mod support;

use std::time::Duration;

use http::Method;
use support::{ADMIN, Cluster, call};
use tiercel_cluster::purge::wire::{
    ApiError, LogEvent, LogPayload, PurgeAccepted, PurgeStatus, ServiceRecord,
};

const T: Duration = Duration::from_secs(10);

async fn put(
    c: &Cluster,
    node: usize,
    name: &str,
    doc: &str,
    if_match: Option<&str>,
) -> anyhow::Result<support::Resp> {
    let headers: Vec<(&str, &str)> = if_match.map(|v| vec![("if-match", v)]).unwrap_or_default();
    call(
        Method::PUT,
        &format!("{}/v1/services/{name}", c.url(node)),
        Some(ADMIN),
        Some(doc),
        &headers,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_versioned_and_guarded_by_if_match() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let f = (leader + 1) % 3;
    // If-Match: * on a missing service fails; a plain PUT creates it.
    let r = put(&c, f, "web", r#"{"hosts":["www.example"]}"#, Some("*")).await?;
    assert_eq!(r.status, 412, "{}", r.text());
    let r = put(&c, f, "web", r#"{"hosts":["www.example"]}"#, None).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let v1: ServiceRecord = r.json()?;
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", v1.version).as_str())
    );
    // Reads anywhere (after the follower applied it).
    let got = c.log_until(f, v1.version, v1.version, T).await?;
    assert!(
        matches!(&got[..], [LogEvent::Entry { payload: LogPayload::ServicePut { service }, .. }] if *service == v1),
        "{got:?}"
    );
    let r = c.get(f, "/v1/services/web").await?;
    assert_eq!(r.json::<ServiceRecord>()?, v1);
    assert_eq!(
        c.get(f, "/v1/services")
            .await?
            .json::<Vec<ServiceRecord>>()?,
        vec![v1.clone()]
    );
    // A stale If-Match is 412; the current one (bare or quoted) replaces.
    let r = put(
        &c,
        leader,
        "web",
        r#"{"hosts":["www2.example"]}"#,
        Some("1"),
    )
    .await?;
    assert_eq!(r.status, 412);
    assert_eq!(
        r.json::<ApiError>()?.error,
        format!(
            "If-Match does not match service \"web\" at version {}",
            v1.version
        )
    );
    let quoted = format!("\"{}\"", v1.version);
    let r = put(&c, f, "web", r#"{"hosts":["www2.example"]}"#, Some(&quoted)).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let v2: ServiceRecord = r.json()?;
    assert!(v2.version > v1.version);
    assert_eq!(v2.doc, serde_json::json!({"hosts": ["www2.example"]}));
    // Validation.
    let bad: &[(&str, &str, &str)] = &[
        ("web", "[]", "service document must be a JSON object"),
        ("web", "{}", "missing field `hosts`"),
        (
            "web",
            r#"{"hosts":[7]}"#,
            "hosts[0]: invalid type: integer `7`, expected a string",
        ),
        (
            "web",
            r#"{"hosts":["a.example"],"origins":[{"url":"http://o","weight":0}]}"#,
            "origins[0].weight: must be between 1 and 1000, got 0",
        ),
        (
            "web",
            "nope",
            "invalid JSON body: expected ident at line 1 column 2",
        ),
        (
            "we%2Fb",
            r#"{"hosts":[]}"#,
            "service name \"we/b\" must be 1-128 characters of A-Z a-z 0-9 . _ -",
        ),
    ];
    for (name, doc, want) in bad {
        let r = put(&c, f, name, doc, None).await?;
        assert_eq!(r.status, 400, "{doc}");
        assert_eq!(r.json::<ApiError>()?.error, *want);
    }
    let r = put(&c, f, "web", r#"{"hosts":[]}"#, Some("abc")).await?;
    assert_eq!(r.status, 400);
    // Delete: If-Match guarded; answers the last document with the deletion's version.
    let del = |v: Option<String>| {
        let url = format!("{}/v1/services/web", c.url(f));
        async move {
            let headers: Vec<(&str, &str)> = v
                .as_deref()
                .map(|v| vec![("if-match", v)])
                .unwrap_or_default();
            call(Method::DELETE, &url, Some(ADMIN), None, &headers).await
        }
    };
    assert_eq!(del(Some(v1.version.to_string())).await?.status, 412);
    let r = del(Some(v2.version.to_string())).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let gone: ServiceRecord = r.json()?;
    assert!(gone.version > v2.version);
    assert_eq!(gone.doc, v2.doc);
    assert_eq!(del(None).await?.status, 404);
    // The log tells followers the whole story, in order.
    let events = c.log_until(f, v1.version, gone.version, T).await?;
    let story: Vec<(String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            LogEvent::Entry {
                payload: LogPayload::ServicePut { service },
                ..
            } => Some(("put".to_string(), service.version)),
            LogEvent::Entry {
                payload: LogPayload::ServiceDelete { version, .. },
                ..
            } => Some(("delete".to_string(), *version)),
            _ => None,
        })
        .collect();
    assert_eq!(
        story,
        [
            ("put".to_string(), v1.version),
            ("put".to_string(), v2.version),
            ("delete".to_string(), gone.version)
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_status_counts_live_followers_that_applied_it() -> anyhow::Result<()> {
    let c = Cluster::builder()
        .arg("--live-window")
        .arg("1s")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let f = (leader + 2) % 3;
    let a: PurgeAccepted = c
        .post(f, "/v1/purges", r#"{"tags":["status"]}"#)
        .await?
        .json()?;
    let status = |c: &Cluster| {
        let url = format!("{}/v1/purges/{}", c.url(f), a.id);
        async move {
            call(Method::GET, &url, Some(ADMIN), None, &[])
                .await?
                .json::<PurgeStatus>()
        }
    };
    let s = status(&c).await?;
    assert_eq!((s.nodes_applied, s.nodes_live, s.complete), (0, 0, false));
    // Reports arrive through any node; the leader keeps them.
    let report = |node: usize, name: &str, applied: u64| {
        let url = format!("{}/v1/followers/report", c.url(node));
        let body = format!(r#"{{"node":"{name}","role":"edge","applied_index":{applied}}}"#);
        async move { call(Method::POST, &url, Some(ADMIN), Some(&body), &[]).await }
    };
    assert_eq!(report(f, "edge-a", a.index).await?.status, 204);
    assert_eq!(report(leader, "edge-b", a.index - 1).await?.status, 204);
    let s = status(&c).await?;
    assert_eq!((s.id.as_str(), s.index), (a.id.as_str(), a.index));
    assert_eq!((s.nodes_applied, s.nodes_live, s.complete), (1, 2, false));
    let names: Vec<(&str, u64, bool)> = s
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.applied_index, n.live))
        .collect();
    // Nodes that have not applied it come first.
    assert_eq!(
        names,
        [("edge-b", a.index - 1, true), ("edge-a", a.index, true)]
    );
    // One node's reports closer together than 50 ms are refused (reports.rs tests that).
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        report((leader + 1) % 3, "edge-b", a.index + 5)
            .await?
            .status,
        204
    );
    let s = status(&c).await?;
    assert_eq!((s.nodes_applied, s.nodes_live, s.complete), (2, 2, true));
    // After the liveness window nobody is live, and nothing is complete.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let s = status(&c).await?;
    assert_eq!((s.nodes_applied, s.nodes_live, s.complete), (0, 0, false));
    assert!(s.nodes.iter().all(|n| !n.live && n.last_seen_ms >= 1000));
    // Bad reports.
    let r = c
        .post(
            f,
            "/v1/followers/report",
            r#"{"node":"","role":"edge","applied_index":1}"#,
        )
        .await?;
    assert_eq!(r.status, 400);
    let r = c.post(f, "/v1/followers/report", r#"{"node":"x"}"#).await?;
    assert_eq!(r.status, 400);
    Ok(())
}
