//! `tiercelctl` end to end: the real binary against a real 3-node `tiercel-purge` cluster, with
//! in-process followers reporting progress. Every subcommand, exit codes (0 / 1 API / 2 usage),
//! `--wait`, and `--server` failover.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use support::{ADMIN, Cluster, call, free_ports};
use tiercel_cluster::follower::{
    FollowerConfig, FollowerHandle, NoopListener, PurgeState, start_follower,
};
use tiercel_cluster::purge::wire::{
    ClusterInfo, PurgeAccepted, PurgeStatus, ServiceRecord, TokenCreated, TokenScope,
};
use tiercel_cluster::purge::{ObjectRef, PurgeVerdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Asserts a failure with exactly one stderr line containing `needle`.
    fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:?}");
        assert!(self.stderr.starts_with("tiercelctl: error: "), "{self:?}");
        assert!(self.stderr.contains(needle), "{needle:?} in {self:?}");
    }

    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        &self.stdout
    }
}

/// Runs the real `tiercelctl` with no `TIERCEL_*` from the environment but `env`. A
/// `--token T` in `args` is passed as `TIERCEL_TOKEN` instead, as the README tells users to
/// (command lines are visible to other users); [`ctl_raw`] keeps the flag.
async fn ctl(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Out> {
    let mut kept = Vec::new();
    let mut env = env.to_vec();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (*a, it.clone().next()) {
            ("--token", Some(t)) => {
                env.push(("TIERCEL_TOKEN", t));
                it.next();
            }
            _ => kept.push(*a),
        }
    }
    ctl_raw(&kept, &env).await
}

/// Runs the real `tiercelctl` with exactly `args`, and no `TIERCEL_*` but `env`.
async fn ctl_raw(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Out> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tiercelctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TIERCEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(40), cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("tiercelctl {args:?} did not finish"))??;
    Ok(Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A raw HTTP server answering every request with `503` and counting connections.
async fn unavailable_server() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"error":"no leader known"}"#;
                let resp = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                     retry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok((url, count))
}

fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_ports(1)[0])
}

async fn followers(
    c: &Cluster,
    names: &[&str],
) -> anyhow::Result<Vec<(Arc<PurgeState>, FollowerHandle)>> {
    let mut out = Vec::new();
    for name in names {
        let servers = (0..c.nodes.len()).map(|i| c.url(i)).collect();
        let cfg = FollowerConfig {
            token: Some(ADMIN.to_string()),
            ..FollowerConfig::new(servers, *name, "edge")
        };
        out.push(start_follower(cfg, Arc::new(NoopListener)).await?);
    }
    Ok(out)
}

/// Waits until a purge's status says every one of `live` live nodes applied it.
async fn wait_complete(c: &Cluster, id: &str, live: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + T;
    loop {
        let s: PurgeStatus = c.get(0, &format!("/v1/purges/{id}")).await?.json()?;
        if s.complete && s.nodes_live == live {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "purge {id} never complete on {live}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_purge_wait_status_failover_and_idempotency() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let fs = followers(&c, &["edge-a", "edge-b"]).await?;
    // Both followers are live before the purges below are judged.
    let warm: PurgeAccepted = c
        .post(leader, "/v1/purges", r#"{"tags":["warm"]}"#)
        .await?
        .json()?;
    wait_complete(&c, &warm.id, 2).await?;
    let (node0, node1) = (c.url(0), c.url(1));

    // The first server is dead: the second one takes the purge; --wait sees both nodes apply it.
    let dead = dead_url();
    let out = ctl(
        &[
            "--server",
            &dead,
            "--server",
            &node0,
            "--token",
            ADMIN,
            "purge",
            "--url",
            "https://example.com/ctl/x",
            "--tag",
            "t1",
            "--wait",
            "--wait-timeout",
            "15s",
        ],
        &[],
    )
    .await?;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    let words: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        (words[0], words[2], words[3], words[4]),
        ("purge", "accepted", "at", "index"),
        "{out:?}"
    );
    let (id, index): (String, u64) = (words[1].to_string(), words[5].parse()?);
    assert_eq!(lines[1], format!("purge {id} applied by 2/2 live nodes"));
    // --wait means applied: both followers already hold the rule.
    for (state, _) in &fs {
        let obj = ObjectRef {
            service: "",
            url: "example.com/ctl/x",
            host: "example.com",
            tags: &[],
            stored_index: index - 1,
        };
        assert_eq!(state.check(&obj), PurgeVerdict::HardPurged);
    }

    // status, human and JSON.
    let out = ctl(&["--server", &node1, "--token", ADMIN, "status", &id], &[]).await?;
    let first = out.ok().lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first,
        format!("purge {id} at index {index}: applied by 2/2 live nodes (complete)")
    );
    assert_eq!(out.stdout.lines().count(), 3, "one line per node: {out:?}");
    let out = ctl(
        &[
            "--server", &node1, "--token", ADMIN, "--json", "status", &id,
        ],
        &[],
    )
    .await?;
    let s: PurgeStatus = serde_json::from_str(out.ok())?;
    assert_eq!(
        (s.index, s.nodes_applied, s.nodes_live, s.complete),
        (index, 2, 2, true)
    );

    // The same Idempotency-Key twice counts once.
    let args = [
        "--server",
        &node0,
        "--token",
        ADMIN,
        "--json",
        "purge",
        "--url",
        "https://example.com/ctl/idem",
        "--idempotency-key",
        "ctl-key-1",
    ];
    let a: PurgeAccepted = serde_json::from_str(ctl(&args, &[]).await?.ok())?;
    let b: PurgeAccepted = serde_json::from_str(ctl(&args, &[]).await?.ok())?;
    assert_eq!(a, b);
    // Without a key every invocation is a new purge.
    let args = [
        "--server", &node0, "--token", ADMIN, "--json", "purge", "--tag", "fresh",
    ];
    let x: PurgeAccepted = serde_json::from_str(ctl(&args, &[]).await?.ok())?;
    let y: PurgeAccepted = serde_json::from_str(ctl(&args, &[]).await?.ok())?;
    assert_ne!(x.id, y.id);

    // Server and token from the environment; --json with --wait prints the final status.
    let out = ctl(
        &[
            "--json",
            "purge",
            "--host",
            "Example.COM",
            "--soft",
            "--wait",
        ],
        &[("TIERCEL_SERVER", &node1), ("TIERCEL_TOKEN", ADMIN)],
    )
    .await?;
    let s: PurgeStatus = serde_json::from_str(out.ok())?;
    assert!(s.complete && s.nodes_applied == 2, "{s:?}");

    // A server answering 503 is skipped for the next one.
    let (busy, hits) = unavailable_server().await?;
    let out = ctl(
        &[
            "--server", &busy, "--server", &node0, "--token", ADMIN, "purge", "--all", "--soft",
        ],
        &[],
    )
    .await?;
    assert!(out.ok().starts_with("purge "), "{out:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Only 503s: the service's reason is shown, exit 1.
    let out = ctl(
        &["--server", &busy, "--token", ADMIN, "purge", "--all"],
        &[],
    )
    .await?;
    out.fails(1, "503: no leader known (retry after 1 s)");

    for (_, h) in fs {
        h.shutdown().await;
    }
    Ok(())
}

#[tokio::test]
async fn ctl_usage_errors_exit_2() -> anyhow::Result<()> {
    let dead = dead_url();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--server", &dead, "purge"], "purge needs a target"),
        (
            vec!["--server", &dead, "purge", "--soft"],
            "purge needs a target",
        ),
        (vec!["purge", "--all"], "no server"),
        (
            vec!["--server", "ftp://example.com", "purge", "--all"],
            "is not an https://host:port or http://host:port URL",
        ),
        (
            vec!["--server", &dead, "--token", "a b\n", "purge", "--all"],
            "TIERCEL_TOKEN",
        ),
        (
            vec!["--server", &dead, "--token", "short", "purge", "--all"],
            "shorter than 16 characters",
        ),
        (
            vec![
                "--server",
                &dead,
                "services",
                "put",
                "s",
                "--file",
                "/nonexistent/doc.json",
            ],
            "cannot read",
        ),
    ];
    for (args, needle) in cases {
        ctl(&args, &[]).await?.fails(2, needle);
    }
    // Errors clap finds: exit 2 with its usage message.
    for args in [
        vec![
            "--server", &dead, "tokens", "create", "--name", "n", "--scope", "root",
        ],
        vec![
            "--server",
            &dead,
            "purge",
            "--all",
            "--wait-timeout",
            "soon",
        ],
        vec!["frobnicate"],
        vec![],
    ] {
        let out = ctl(&args, &[]).await?;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
    let out = ctl(&["--help"], &[]).await?;
    assert!(out.ok().contains("purge"));
    // A document that is not JSON is a usage error too.
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("doc.json");
    std::fs::write(&f, "{not json")?;
    let f = f.display().to_string();
    ctl(
        &["--server", &dead, "services", "put", "s", "--file", &f],
        &[],
    )
    .await?
    .fails(2, "is not JSON");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_api_errors_exit_1_and_4xx_never_fails_over() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let node0 = c.url(0);
    let (spare, hits) = unavailable_server().await?;
    let out = ctl(
        &[
            "--server",
            &node0,
            "--server",
            &spare,
            "--token",
            "wrong-token-0123456789",
            "purge",
            "--all",
        ],
        &[],
    )
    .await?;
    out.fails(1, "401");
    let out = ctl(
        &["--server", &node0, "--server", &spare, "purge", "--all"],
        &[],
    )
    .await?;
    out.fails(1, "401");
    let out = ctl(
        &[
            "--server", &node0, "--server", &spare, "--token", ADMIN, "purge", "--url", "ftp://x/",
        ],
        &[],
    )
    .await?;
    out.fails(1, "400: urls[0]");
    let out = ctl(
        &[
            "--server",
            &node0,
            "--server",
            &spare,
            "--token",
            ADMIN,
            "status",
            "no-such-purge",
        ],
        &[],
    )
    .await?;
    out.fails(1, "404");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a 4xx must not be retried elsewhere"
    );
    let out = ctl(
        &[
            "--server",
            &dead_url(),
            "--server",
            &dead_url(),
            "--token",
            ADMIN,
            "purge",
            "--all",
        ],
        &[],
    )
    .await?;
    out.fails(1, "no server reachable");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_services_tokens_and_cluster() -> anyhow::Result<()> {
    let mut c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let node = c.url(leader);
    let base = ["--server", node.as_str(), "--token", ADMIN];
    let run = |extra: &[&str]| {
        let args: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            ctl(&refs, &[]).await
        }
    };
    let dir = tempfile::tempdir()?;
    let doc1 = dir.path().join("v1.json");
    std::fs::write(
        &doc1,
        r#"{"hosts":["shop.example"],"origins":["http://127.0.0.1:9000"]}"#,
    )?;
    let doc2 = dir.path().join("v2.json");
    std::fs::write(&doc2, r#"{"hosts":["shop.example","www.shop.example"]}"#)?;
    let (doc1, doc2) = (doc1.display().to_string(), doc2.display().to_string());

    // services put / get / list / conditional put and delete.
    let out = run(&["--json", "services", "put", "shop", "--file", &doc1]).await?;
    let v1: ServiceRecord = serde_json::from_str(out.ok())?;
    assert_eq!(v1.doc["origins"][0], "http://127.0.0.1:9000");
    let out = run(&["services", "get", "shop"]).await?;
    assert!(
        out.ok()
            .starts_with(&format!("service shop version {}\n{{", v1.version)),
        "{out:?}"
    );
    let out = run(&["--json", "services", "get", "shop"]).await?;
    assert_eq!(serde_json::from_str::<ServiceRecord>(out.ok())?, v1);
    let out = run(&["services", "list"]).await?;
    assert_eq!(out.ok(), format!("shop\tv{}\tshop.example\n", v1.version));
    let wrong = (v1.version + 100).to_string();
    run(&[
        "services",
        "put",
        "shop",
        "--file",
        &doc2,
        "--if-match",
        &wrong,
    ])
    .await?
    .fails(1, "412");
    let v1s = v1.version.to_string();
    let out = run(&[
        "services",
        "put",
        "shop",
        "--file",
        &doc2,
        "--if-match",
        &v1s,
    ])
    .await?;
    let line = out.ok().trim_end().to_string();
    let v2: u64 = line.rsplit(' ').next().unwrap_or_default().parse()?;
    assert_eq!(line, format!("service shop is now version {v2}"));
    assert!(v2 > v1.version);
    run(&["services", "delete", "shop", "--if-match", &v1s])
        .await?
        .fails(1, "412");
    let out = run(&["services", "delete", "shop"]).await?;
    assert!(out.ok().starts_with("service shop deleted"), "{out:?}");
    run(&["services", "get", "shop"]).await?.fails(1, "404");
    assert_eq!(
        run(&["--json", "services", "list"]).await?.ok().trim(),
        "[]"
    );

    // tokens: a purge-scoped token purges; a follow-scoped one may not; a revoked one is gone.
    let out = run(&[
        "--json", "tokens", "create", "--name", "ci", "--scope", "purge",
    ])
    .await?;
    let ci: TokenCreated = serde_json::from_str(out.ok())?;
    assert_eq!((ci.name.as_str(), ci.scope), ("ci", TokenScope::Purge));
    c.wait_token_everywhere(&ci.token, T).await?;
    let out = ctl(
        &[
            "--server", &node, "--token", &ci.token, "purge", "--tag", "by-ci",
        ],
        &[],
    )
    .await?;
    assert!(out.ok().starts_with("purge "), "{out:?}");
    let out = run(&[
        "tokens", "create", "--name", "edge", "--scope", "follow", "--rate", "50",
    ])
    .await?;
    let text = out.ok().to_string();
    assert!(text.contains("(edge, scope follow)"), "{text}");
    let secret = text.lines().last().unwrap_or_default().to_string();
    c.wait_token_everywhere(&secret, T).await?;
    ctl(
        &["--server", &node, "--token", &secret, "purge", "--all"],
        &[],
    )
    .await?
    .fails(1, "403");
    let out = run(&["tokens", "revoke", &ci.id]).await?;
    assert_eq!(out.ok(), format!("token {} revoked\n", ci.id));
    ctl(
        &["--server", &node, "--token", &ci.token, "purge", "--all"],
        &[],
    )
    .await?
    .fails(1, "401");
    run(&["tokens", "revoke", &ci.id]).await?.fails(1, "404");

    // cluster: show, then add and remove a fourth member.
    let out = run(&["cluster"]).await?;
    let text = out.ok().to_string();
    let head = text.lines().next().unwrap_or_default();
    assert!(
        head.starts_with("node ") && head.contains(&format!(" leader {} ", leader + 1)),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.ends_with(" leader")).count(),
        1,
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");
    let info: ClusterInfo = serde_json::from_str(run(&["--json", "cluster"]).await?.ok())?;
    assert_eq!(info.members.len(), 3);
    assert_eq!(info.leader_id, Some(leader as u64 + 1));
    let extra = c.spawn_extra().await?;
    let (id, addr) = (c.nodes[extra].id.to_string(), c.nodes[extra].addr.clone());
    let out = run(&[
        "--json",
        "cluster",
        "add",
        "--id",
        &id,
        "--addr",
        &addr,
        "--learner",
    ])
    .await?;
    let info: ClusterInfo = serde_json::from_str(out.ok())?;
    assert!(
        info.members
            .iter()
            .any(|m| m.id.to_string() == id && !m.voter),
        "{info:?}"
    );
    let out = run(&["--json", "cluster", "remove", &id]).await?;
    let info: ClusterInfo = serde_json::from_str(out.ok())?;
    assert!(
        info.members.iter().all(|m| m.id.to_string() != id),
        "{info:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_wait_times_out_while_a_live_node_lags() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let node0 = c.url(0);
    // A node that reported (so it is live) but never applies anything.
    let r = call(
        Method::POST,
        &format!("{node0}/v1/followers/report"),
        Some(ADMIN),
        Some(r#"{"node":"stuck","role":"edge","applied_index":0}"#),
        &[],
    )
    .await?;
    assert!(r.status < 300, "{r:?}");
    let t0 = Instant::now();
    let out = ctl(
        &[
            "--server",
            &node0,
            "--token",
            ADMIN,
            "purge",
            "--all",
            "--wait",
            "--wait-timeout",
            "1s",
        ],
        &[],
    )
    .await?;
    out.fails(
        1,
        "not applied by every live node after 1s (0/1 live nodes)",
    );
    assert!(t0.elapsed() >= Duration::from_secs(1));
    Ok(())
}
