//! No request, token or peer can brick, exhaust or mislead a member: documents too deep to read
//! back are refused before they enter the log; log readers that never read are bounded and
//! dropped; silent and idle connections are cut; follower reports cannot claim what nobody
//! applied, nor flood the leader with names.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{ADMIN, Cluster, call};
use tiercel_cluster::purge::wire::{PurgeAccepted, PurgeStatus, TokenCreated};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(15);

/// A service document whose `x` nests `levels` arrays (the document itself is one more).
fn nested_doc(levels: usize) -> String {
    format!(
        r#"{{"hosts":["a.example"],"x":{}1{}}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_too_deep_to_read_back_never_enter_the_log() -> Result<()> {
    let mut c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let put = |doc: String| {
        let url = format!("{}/v1/services/deep", c.url(leader));
        async move { call(Method::PUT, &url, Some(ADMIN), Some(&doc), &[]).await }
    };
    // The report's 124 levels, and the first level past the limit: refused, naming why.
    for levels in [123, 32] {
        let r = put(nested_doc(levels)).await?;
        assert_eq!(r.status, 400, "{levels}: {}", r.text());
        assert!(r.text().contains("nested deeper than 32"), "{}", r.text());
    }
    // Shallower documents are checked against the service schema (`x` is no key of it); a
    // valid one is committed and reads back after every member restarts.
    let r = put(nested_doc(31)).await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("unknown field `x`"), "{}", r.text());
    let r = put(r#"{"hosts":["a.example"],"key":{"query":{"allow":["a"]}}}"#.to_owned()).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    for i in 0..3 {
        c.restart(i).await?;
    }
    let leader = c.wait_leader(T).await?;
    for node in 0..3 {
        let h = call(
            Method::GET,
            &format!("{}/healthz", c.url(node)),
            None,
            None,
            &[],
        )
        .await?;
        assert_eq!(h.status, 200, "{}", h.text());
        assert!(h.text().contains("\"status\":\"ok\""), "{}", h.text());
    }
    let r = c.get(leader, "/v1/services/deep").await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let ready = call(
        Method::GET,
        &format!("{}/readyz", c.url(leader)),
        None,
        None,
        &[],
    )
    .await?;
    assert_eq!(ready.status, 200, "{}", ready.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_cannot_read_its_log_says_so_and_never_answers_healthy() -> Result<()> {
    let mut c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    for i in 0..6 {
        let r = c
            .post(leader, "/v1/purges", &format!(r#"{{"tags":["t{i}"]}}"#))
            .await?;
        assert_eq!(r.status, 200);
    }
    let victim = (leader + 1) % 3;
    // Let it apply everything, stop it, and damage a committed entry in the middle of its log
    // (a bad disk, a bug): on restart it cannot re-apply it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill(victim);
    {
        let db = redb::Database::open(c.nodes[victim].data_dir.join("purge.redb"))?;
        let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(table)?;
            let keys: Vec<u64> = {
                use redb::ReadableTable;
                t.iter()?
                    .map(|r| r.map(|(k, _)| k.value()))
                    .collect::<Result<_, _>>()?
            };
            let middle = keys[keys.len() / 2];
            t.insert(middle, b"{not json".as_slice())?;
        }
        txn.commit()?;
    }
    // It refuses to come up on a log it cannot read, with one line naming the damage, rather
    // than serving and answering health checks with "ok".
    c.restart_no_wait(victim)?;
    let deadline = Instant::now() + T;
    let code = loop {
        if let Some(code) = c.nodes[victim].try_exit_code() {
            break code;
        }
        let h = call(
            Method::GET,
            &format!("{}/healthz", c.url(victim)),
            None,
            None,
            &[],
        )
        .await;
        if let Ok(h) = h {
            assert_ne!(
                h.status,
                200,
                "a damaged member answered healthy: {}",
                h.text()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the damaged member neither failed nor exited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, 1);
    let log = std::fs::read_to_string(&c.nodes[victim].log_path)?;
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("tiercel-purge: raft: ") && last.contains("stored record"),
        "{last}"
    );
    // The other two keep the cluster going.
    let leader = c.wait_leader(T).await?;
    assert_ne!(leader, victim);
    let r = c.post(leader, "/v1/purges", r#"{"all":true}"#).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(())
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens `GET /v1/log?from=1` and never reads a byte; returns the socket.
async fn silent_reader(addr: &str, token: &str) -> Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!(
        "GET /v1/log?from=1 HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    Ok(s)
}

/// Reads `s` until the server closes it (true) or `wait` passes (false).
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let until = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_readers_that_never_read_are_bounded_capped_and_dropped() -> Result<()> {
    // One entry of in-memory cache: every stream reads the log from the store itself, the
    // path whose reads must be bounded (the shared cache would hide a per-stream copy).
    let c = Cluster::builder()
        .arg("--log-cache-entries")
        .arg("1")
        .arg("--log-write-timeout")
        .arg("2s")
        .arg("--max-log-streams-per-token")
        .arg("8")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let r = c
        .post(leader, "/v1/tokens", r#"{"name":"fleet","scope":"follow"}"#)
        .await?;
    let follow: TokenCreated = r.json()?;
    c.wait_token_everywhere(&follow.token, T).await?;
    // About 16 MB of log: 20 purges of 200 URLs of 4 KB.
    let long = "a".repeat(3900);
    for p in 0..20 {
        let urls: Vec<String> = (0..200)
            .map(|i| format!("\"https://example.com/{p}/{i}/{long}\""))
            .collect();
        let body = format!(r#"{{"urls":[{}]}}"#, urls.join(","));
        let r = c.post(leader, "/v1/purges", &body).await?;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let node = (leader + 1) % 3;
    let addr = c.nodes[node].addr.clone();
    let pid = c.nodes[node].pid().context("running")?;
    // Let the follower apply everything and settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut readers = Vec::new();
    for _ in 0..8 {
        readers.push(silent_reader(&addr, &follow.token).await?);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = rss_kib(pid);
    // Eight full copies of the log would be 130 MB and more; a bounded stream holds a frame
    // or two, and the kernel's socket buffers hold the rest.
    assert!(
        during < before + 48 * 1024,
        "RSS {before} KiB -> {during} KiB with 8 silent readers"
    );
    // A ninth stream for the same token is refused; the follower tries another member.
    let r = call(
        Method::GET,
        &format!("{}/v1/log?from=1", c.url(node)),
        Some(&follow.token),
        None,
        &[],
    )
    .await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    // Readers that took nothing for --log-write-timeout (2 s) are dropped: give them the
    // time, then read what the socket holds up to its end.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let started = Instant::now();
    for mut s in readers {
        assert!(
            closed_within(&mut s, Duration::from_secs(10)).await,
            "a silent reader was kept"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // And their slots are free again.
    let events = support::log_until(&c.url(node), &follow.token, 1, 1, T).await?;
    assert!(!events.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_cut_and_health_stays_reachable() -> Result<()> {
    let c = Cluster::builder()
        .arg("--max-connections")
        .arg("64")
        .arg("--client-header-timeout")
        .arg("1s")
        .arg("--client-idle-timeout")
        .arg("2s")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let node = (leader + 1) % 3;
    let addr = c.nodes[node].addr.clone();
    // Five times the connection cap, each silent.
    let mut silent = Vec::new();
    for _ in 0..320 {
        silent.push(TcpStream::connect(&addr).await?);
    }
    let started = Instant::now();
    let h = call(
        Method::GET,
        &format!("{}/healthz", c.url(node)),
        None,
        None,
        &[],
    )
    .await?;
    assert_eq!(h.status, 200);
    // The cap holds back at most one header timeout per 64 silent connections ahead.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    for mut s in silent {
        assert!(
            closed_within(&mut s, Duration::from_secs(10)).await,
            "a silent connection stayed"
        );
    }
    // An idle HTTP/2 connection is closed after --client-idle-timeout.
    let tcp = TcpStream::connect(&addr).await?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(conn);
    let req = Request::get(format!("http://{addr}/healthz")).body(Full::new(Bytes::new()))?;
    let resp = send.send_request(req).await?;
    assert_eq!(resp.status(), 200);
    drop(resp);
    let idle = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .context("the idle h2 connection stayed open")??
        .ok();
    let after = idle.elapsed();
    assert!(after >= Duration::from_millis(1500), "{after:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reports_cannot_claim_what_nobody_applied_nor_flood_names() -> Result<()> {
    let c = Cluster::builder()
        .arg("--max-followers-per-token")
        .arg("5")
        .start()
        .await?;
    let leader = c.wait_leader(T).await?;
    let fleet: TokenCreated = c
        .post(leader, "/v1/tokens", r#"{"name":"fleet","scope":"follow"}"#)
        .await?
        .json()?;
    let other: TokenCreated = c
        .post(leader, "/v1/tokens", r#"{"name":"other","scope":"follow"}"#)
        .await?
        .json()?;
    c.wait_token_everywhere(&fleet.token, T).await?;
    c.wait_token_everywhere(&other.token, T).await?;
    let report = |token: &str, node: &str, applied: u64| {
        let url = format!("{}/v1/followers/report", c.url(leader));
        let body = format!(r#"{{"node":"{node}","role":"edge","applied_index":{applied}}}"#);
        let token = token.to_string();
        async move { call(Method::POST, &url, Some(&token), Some(&body), &[]).await }
    };
    // A liar claims u64::MAX before the purge exists: clamped, so it has not applied it.
    let r = report(&fleet.token, "liar", u64::MAX).await?;
    assert_eq!(r.status, 204, "{}", r.text());
    let p: PurgeAccepted = c
        .post(leader, "/v1/purges", r#"{"all":true}"#)
        .await?
        .json()?;
    let s: PurgeStatus = c
        .get(leader, &format!("/v1/purges/{}", p.id))
        .await?
        .json()?;
    assert!(!s.complete, "{s:?}");
    assert_eq!((s.nodes_applied, s.nodes_live), (0, 1));
    // tiercelctl status names the node that has not applied it, and --wait does not say done.
    let server = c.url(leader);
    let ctl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tiercelctl"));
        cmd.arg("--server")
            .arg(&server)
            .args(args)
            .env("TIERCEL_TOKEN", ADMIN);
        async move { cmd.output().await }
    };
    let out = ctl(&["status", &p.id]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pending") && text.contains("liar"), "{text}");
    let out = ctl(&["purge", "--tag", "t", "--wait", "--wait-timeout", "1s"]).await?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A name belongs to the token that reported it first.
    tokio::time::sleep(Duration::from_millis(60)).await;
    let r = report(&other.token, "liar", p.index).await?;
    assert_eq!(r.status, 409, "{}", r.text());
    // One token reports for at most five names.
    for i in 0..4 {
        let r = report(&fleet.token, &format!("edge-{i}"), 0).await?;
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let r = report(&fleet.token, "edge-99", 0).await?;
    assert_eq!(r.status, 403, "{}", r.text());
    // Status answers stay small and list the laggards.
    let s: PurgeStatus = c
        .get(leader, &format!("/v1/purges/{}", p.id))
        .await?
        .json()?;
    assert_eq!(s.nodes.len(), 5);
    assert_eq!(s.nodes_omitted, 0);
    Ok(())
}
