//! Token lifetimes and the audit trail: expiry, revocation everywhere within a second (open
//! log streams included), revocations that survive imports and restarts, the token list
//! without secrets, who purged what, and an `Idempotency-Key` that cannot swallow a different
//! purge.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use support::{ADMIN, Cluster, call};
use tiercel_cluster::purge::wire::{PurgeList, TokenCreated, TokenInfo};

const T: Duration = Duration::from_secs(10);

async fn create(c: &Cluster, node: usize, body: &str) -> Result<TokenCreated> {
    let r = c.post(node, "/v1/tokens", body).await?;
    anyhow::ensure!(r.status == 201, "token create: {} {}", r.status, r.text());
    r.json()
}

async fn as_token(c: &Cluster, node: usize, token: &str, path: &str) -> Result<u16> {
    Ok(call(
        Method::GET,
        &format!("{}{path}", c.url(node)),
        Some(token),
        None,
        &[],
    )
    .await?
    .status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_revocation_everywhere_and_the_token_list() -> Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    // A token that expires in a second works, then is refused everywhere as expired.
    let short = create(
        &c,
        leader,
        r#"{"name":"short-lived","scope":"purge","ttl_secs":1}"#,
    )
    .await?;
    assert!(short.expires_ms.is_some());
    c.wait_token_everywhere(&short.token, T).await?;
    assert_eq!(
        as_token(&c, leader, &short.token, "/v1/cluster").await?,
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for node in 0..3 {
        let r = call(
            Method::GET,
            &format!("{}/v1/cluster", c.url(node)),
            Some(&short.token),
            None,
            &[],
        )
        .await?;
        assert_eq!(r.status, 401, "node {node}");
        assert!(r.text().contains("expired"), "{}", r.text());
    }
    let r = c
        .post(
            leader,
            "/v1/tokens",
            r#"{"name":"x","scope":"purge","ttl_secs":0}"#,
        )
        .await?;
    assert_eq!(r.status, 400, "{}", r.text());

    // Revocation: once the leader answers 204, every member refuses the token within 1 s.
    let ci = create(&c, leader, r#"{"name":"ci-main","scope":"purge"}"#).await?;
    c.wait_token_everywhere(&ci.token, T).await?;
    for node in 0..3 {
        assert_eq!(as_token(&c, node, &ci.token, "/v1/services").await?, 200);
    }
    let r = c
        .admin_call(
            (leader + 1) % 3,
            Method::DELETE,
            &format!("/v1/tokens/{}", ci.id),
            None,
        )
        .await?;
    assert_eq!(r.status, 204, "{}", r.text());
    let revoked = Instant::now();
    for node in 0..3 {
        loop {
            if as_token(&c, node, &ci.token, "/v1/services").await? == 401 {
                break;
            }
            if revoked.elapsed() > Duration::from_secs(1) {
                bail!("node {node} still accepts the revoked token after 1 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // The list: names, scopes, expiry, creator and last use, never a secret or its hash.
    let used = create(&c, leader, r#"{"name":"edges","scope":"follow"}"#).await?;
    c.wait_token_everywhere(&used.token, T).await?;
    let follower = (leader + 2) % 3;
    assert_eq!(
        as_token(&c, follower, &used.token, "/v1/services").await?,
        403
    );
    let r = c.get(leader, "/v1/tokens").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    for secret in [used.token.as_str(), short.token.as_str(), ADMIN] {
        assert!(!r.text().contains(secret), "a secret in the list");
        let hash = blake3::hash(secret.as_bytes()).to_hex().to_string();
        assert!(!r.text().contains(&hash), "a hash in the list");
    }
    let list: Vec<TokenInfo> = r.json()?;
    let by_name = |n: &str| list.iter().find(|t| t.name == n).cloned();
    assert!(
        by_name("ci-main").is_none(),
        "revoked tokens are not listed"
    );
    let edges = by_name("edges").context("edges listed")?;
    assert_eq!(edges.created_by.as_deref(), Some("bootstrap-admin"));
    assert!(edges.expires_ms.is_none() && !edges.expired);
    // Used on another member: the leader's list knows it from that member.
    assert!(edges.last_used_ms.is_some(), "{edges:?}");
    let short_info = by_name("short-lived").context("listed")?;
    assert!(short_info.expired);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_import_stays_revoked_across_restarts() -> Result<()> {
    const FILE_SECRET: &str = "0123456789abcdef-from-file";
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("purge ci-file {FILE_SECRET}\n"))?;
    let mut c = Cluster::builder()
        .arg("--token-file")
        .arg(file.to_str().unwrap_or_default())
        .start()
        .await?;
    c.wait_token_everywhere(FILE_SECRET, T).await?;
    let leader = c.wait_leader(T).await?;
    let list: Vec<TokenInfo> = c.get(leader, "/v1/tokens").await?.json()?;
    let id = list
        .iter()
        .find(|t| t.name == "ci-file")
        .map(|t| t.id.clone())
        .context("imported")?;
    let r = c
        .admin_call(leader, Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await?;
    assert_eq!(r.status, 204);
    // Every member restarts and imports its --token-file again: the revocation stands.
    let decided = |c: &Cluster, i: usize| {
        std::fs::read_to_string(&c.nodes[i].log_path)
            .unwrap_or_default()
            .matches("token import decided")
            .count()
    };
    let before: Vec<usize> = (0..3).map(|i| decided(&c, i)).collect();
    for i in 0..3 {
        c.restart(i).await?;
    }
    let leader = c.wait_leader(T).await?;
    // Wait until every member's import was proposed and decided (skipped, as revoked).
    let deadline = Instant::now() + T;
    for (i, before) in before.iter().enumerate() {
        while decided(&c, i) <= *before {
            anyhow::ensure!(
                Instant::now() < deadline,
                "member {i} never decided its import"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(&c.nodes[i].log_path)?;
        let last = log
            .lines()
            .rfind(|l| l.contains("token import decided"))
            .unwrap_or_default();
        assert!(last.contains("added=false"), "member {i}: {last}");
    }
    let r = c.post(leader, "/v1/purges", r#"{"all":true}"#).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    for node in 0..3 {
        assert_eq!(
            as_token(&c, node, FILE_SECRET, "/v1/services").await?,
            401,
            "node {node}"
        );
    }
    Ok(())
}

/// Reads a log stream until it ends or `wait` passes; returns whether it ended and what came.
async fn read_stream(url: &str, token: &str, wait: Duration) -> Result<(bool, String)> {
    let req = Request::get(format!("{url}/v1/log?from=1"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(T, client.request(req)).await??;
    anyhow::ensure!(resp.status() == 200, "log answered {}", resp.status());
    let mut body = resp.into_body();
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) => return Ok((false, String::from_utf8_lossy(&seen).into())),
            Ok(None) | Ok(Some(Err(_))) => {
                return Ok((true, String::from_utf8_lossy(&seen).into()));
            }
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    seen.extend_from_slice(&d);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_stream_ends_when_its_token_is_revoked() -> Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let follow = create(&c, leader, r#"{"name":"edge-fleet","scope":"follow"}"#).await?;
    c.wait_token_everywhere(&follow.token, T).await?;
    let follower = (leader + 1) % 3;
    let url = c.url(follower);
    let token = follow.token.clone();
    let reader =
        tokio::spawn(async move { read_stream(&url, &token, Duration::from_secs(8)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c
        .admin_call(
            leader,
            Method::DELETE,
            &format!("/v1/tokens/{}", follow.id),
            None,
        )
        .await?;
    assert_eq!(r.status, 204);
    let revoked = Instant::now();
    // A purge after the revocation must not reach the revoked reader.
    let r = c
        .post(leader, "/v1/purges", r#"{"tags":["after-revocation"]}"#)
        .await?;
    assert_eq!(r.status, 200);
    let (ended, seen) = reader.await??;
    assert!(ended, "the stream stayed open after the revocation");
    assert!(
        revoked.elapsed() < Duration::from_secs(2),
        "{:?}",
        revoked.elapsed()
    );
    assert!(!seen.contains("after-revocation"), "{seen}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_names_who_purged_and_keys_cannot_swallow_another_purge() -> Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let ci = create(&c, leader, r#"{"name":"ci-deploy","scope":"purge"}"#).await?;
    c.wait_token_everywhere(&ci.token, T).await?;
    let follower = (leader + 1) % 3;
    let purge = |body: &'static str, key: &'static str| {
        let url = format!("{}/v1/purges", c.url(follower));
        let token = ci.token.clone();
        async move {
            call(
                Method::POST,
                &url,
                Some(&token),
                Some(body),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let first = purge(r#"{"tags":["product-1"]}"#, "deploy-1").await?;
    assert_eq!(first.status, 200, "{}", first.text());
    let retry = purge(r#"{"tags":["product-1"]}"#, "deploy-1").await?;
    assert_eq!((retry.status, retry.text()), (200, first.text()));
    // The same key for another purge: refused, not silently answered with the first id.
    let other = purge(r#"{"tags":["product-2"]}"#, "deploy-1").await?;
    assert_eq!(other.status, 422, "{}", other.text());
    assert!(other.text().contains("different purge"), "{}", other.text());
    let r = c
        .admin_call(
            leader,
            Method::POST,
            "/v1/purges",
            Some(r#"{"hosts":["example.com"]}"#),
        )
        .await?;
    assert_eq!(r.status, 200);

    // Every member tells who purged what, in order.
    for node in 0..3 {
        let deadline = Instant::now() + T;
        let list = loop {
            let list: PurgeList = c.get(node, "/v1/purges?since=0").await?.json()?;
            if list.purges.len() >= 2 || Instant::now() > deadline {
                break list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let got: Vec<(Option<&str>, Vec<&str>, Vec<&str>)> = list
            .purges
            .iter()
            .map(|p| {
                (
                    p.by.as_deref(),
                    p.purge.tags.iter().map(String::as_str).collect(),
                    p.purge.hosts.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("ci-deploy"), vec!["product-1"], vec![]),
                (Some("bootstrap-admin"), vec![], vec!["example.com"]),
            ],
            "node {node}"
        );
    }
    let list: PurgeList = c.get(leader, "/v1/purges?limit=1").await?.json()?;
    assert_eq!(list.purges.len(), 1);
    let next = list.next_after.context("a next page")?;
    let page: PurgeList = c
        .get(leader, &format!("/v1/purges?after={next}"))
        .await?
        .json()?;
    assert_eq!(page.purges.len(), 1);
    assert_eq!(page.next_after, None);
    let future = 4_000_000_000_000u64;
    let none: PurgeList = c
        .get(leader, &format!("/v1/purges?since={future}"))
        .await?
        .json()?;
    assert!(none.purges.is_empty());
    assert_eq!(c.get(leader, "/v1/purges?since=x").await?.status, 400);
    // A follow token cannot read the trail.
    let follow = create(&c, leader, r#"{"name":"f","scope":"follow"}"#).await?;
    c.wait_token_everywhere(&follow.token, T).await?;
    assert_eq!(
        as_token(&c, leader, &follow.token, "/v1/purges").await?,
        403
    );
    Ok(())
}

/// Runs the real `tiercelctl` with the admin token in `TIERCEL_TOKEN`.
async fn ctl(args: &[&str]) -> Result<(i32, String, String)> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tiercelctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TIERCEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("TIERCEL_TOKEN", ADMIN)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let o = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await??;
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiercelctl_creates_expiring_tokens_lists_them_and_lists_purges() -> Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let server = c.url(leader);
    let (code, out, err) = ctl(&[
        "--server", &server, "--json", "tokens", "create", "--name", "ci-90d", "--scope", "purge",
        "--ttl", "90d",
    ])
    .await?;
    assert_eq!(code, 0, "{err}");
    let created: TokenCreated = serde_json::from_str(&out)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let expires = created.expires_ms.context("an expiry")?;
    let ninety_days = 90 * 24 * 3600 * 1000;
    assert!(expires.abs_diff(now_ms + ninety_days) < 60_000, "{expires}");
    let (code, out, err) = ctl(&["--server", &server, "tokens", "list"]).await?;
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains("ci-90d"))
        .context("listed")?;
    assert!(line.contains("purge") && line.contains("GMT"), "{line}");
    assert!(!out.contains(&created.token), "no secret in the list");
    // A purge by that token, then the trail names it.
    let (code, _, err) = ctl(&[
        "--server",
        &server,
        "--token",
        &created.token,
        "purge",
        "--tag",
        "t1",
    ])
    .await?;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: --token on the command line"),
        "{err}"
    );
    let (code, out, err) = ctl(&["--server", &server, "purges", "list", "--since", "1h"]).await?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("by ci-90d") && out.contains("tag=t1"), "{out}");
    Ok(())
}
