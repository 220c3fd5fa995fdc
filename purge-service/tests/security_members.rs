//! Member traffic is authenticated before anything is read: Raft RPCs, token imports and
//! forwarded writes without the cluster secret get 401 and change nothing; a member never
//! buffers an unauthenticated body; a cluster refuses to start without a secret; the member
//! listener can be separate from the API.

mod support;

use std::time::{Duration, Instant};

use http::Method;
use support::{ADMIN, CLUSTER_SECRET, Cluster, call, member_proof};
use tiercel_cluster::purge::wire::ApiError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

/// The request from the report that took over a cluster: a token import naming a secret the
/// attacker chose, as admin.
const ATTACKER_SECRET: &str = "attacker-chosen-secret-0123456789";

fn attacker_import() -> String {
    let hash = blake3::hash(ATTACKER_SECRET.as_bytes())
        .to_hex()
        .to_string();
    format!(
        r#"{{"op":"token_create","token":{{"id":"x","name":"x","scope":"admin","hash":"{hash}"}},"unless":"same_hash_exists"}}"#
    )
}

/// Sends a request head announcing `declared` body bytes, then `sent` bytes of it, and returns
/// the status line and how long the answer took. The connection stays open (the rest of the
/// body is never sent), so only a server that answers before reading the body answers at all.
async fn head_then_stall(
    addr: &str,
    path: &str,
    declared: usize,
    sent: usize,
) -> (String, Duration) {
    let s = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    );
    let started = Instant::now();
    // The body goes out on its own task: a server that does not read it may leave the
    // writes blocked, and the answer must be read meanwhile.
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return wr;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = sent;
        while left > 0 {
            let n = left.min(chunk.len());
            if wr.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            left -= n;
        }
        // Keep the write half (and the connection) open until the answer is read.
        wr
    });
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(T, rd.read(&mut buf))
        .await
        .expect("an answer before the body")
        .unwrap_or(0);
    writer.abort();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    (
        text.lines().next().unwrap_or_default().to_string(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_rpcs_without_the_secret_are_refused_before_their_body_and_change_nothing()
-> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let before: serde_json::Value = c.get(leader, "/v1/cluster").await?.json()?;
    let import = attacker_import();
    for node in 0..3 {
        for path in [
            "/raft/append",
            "/raft/vote",
            "/raft/snapshot",
            "/raft/import",
        ] {
            let me = c.nodes[node].id;
            // No proof; the secret itself (never sent by members: it must not be one); a
            // proof addressed to another member; a proof for another RPC.
            let (name, to_other) = member_proof("POST", path, me % 3 + 1);
            let other_rpc = if path == "/raft/vote" {
                "/raft/append"
            } else {
                "/raft/vote"
            };
            let (_, for_other_rpc) = member_proof("POST", other_rpc, me);
            let attempts: [&[(&str, &str)]; 4] = [
                &[],
                &[("x-tiercel-member", CLUSTER_SECRET)],
                &[(name, &to_other)],
                &[(name, &for_other_rpc)],
            ];
            for headers in attempts {
                let r = call(
                    Method::POST,
                    &format!("{}{path}", c.url(node)),
                    None,
                    Some(&import),
                    headers,
                )
                .await?;
                assert_eq!(
                    r.status,
                    401,
                    "{path} on {node} with {headers:?}: {}",
                    r.text()
                );
            }
        }
        let r = call(
            Method::GET,
            &format!("{}/raft/usage", c.url(node)),
            None,
            None,
            &[],
        )
        .await?;
        assert_eq!(r.status, 401);
    }
    // The secret the import named is no token anywhere.
    for node in 0..3 {
        let r = call(
            Method::GET,
            &format!("{}/v1/cluster", c.url(node)),
            Some(ATTACKER_SECRET),
            None,
            &[],
        )
        .await?;
        assert_eq!(r.status, 401, "node {node}: {}", r.text());
    }
    // Even from a member, an import is only what a member may propose for itself: an admin
    // token whose id does not derive from its hash is refused.
    let (name, proof) = member_proof("POST", "/raft/import", c.nodes[leader].id);
    let r = call(
        Method::POST,
        &format!("{}/raft/import", c.url(leader)),
        None,
        Some(&import),
        &[(name, &proof)],
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json::<ApiError>()?.error,
        "an imported token's id must derive from its hash"
    );
    let after: serde_json::Value = c.get(leader, "/v1/cluster").await?.json()?;
    assert_eq!(before["members"], after["members"]);
    assert_eq!(before["term"], after["term"], "no vote was forced");

    // A 63 MiB body without a proof is refused from its head: the 401 arrives while 62 of
    // its 63 MiB were never sent, so nothing of it was waited for, let alone buffered.
    let addr = &c.nodes[leader].addr;
    for _ in 0..20 {
        let (status, took) = head_then_stall(addr, "/raft/append", 63 << 20, 1 << 20).await;
        assert!(status.starts_with("HTTP/1.1 401"), "{status}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    // The cluster, whose members prove themselves, works throughout.
    let r = c
        .post((leader + 1) % 3, "/v1/purges", r#"{"all":true}"#)
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_an_unauthenticated_write_itself_before_its_body() -> anyhow::Result<()>
{
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    let addr = &c.nodes[follower].addr;
    // No token: the follower answers at once (before 1 MiB of body, before forwarding).
    let (status, took) = head_then_stall(addr, "/v1/purges", 1 << 20, 1024).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A forwarded-by header from a client (no cluster secret) changes nothing.
    let r = call(
        Method::POST,
        &format!("{}/v1/purges", c.url(follower)),
        Some(ADMIN),
        Some(r#"{"all":true}"#),
        &[("x-tiercel-forwarded-by", "1")],
    )
    .await?;
    assert_eq!(
        r.status,
        200,
        "forwarded to the leader as usual: {}",
        r.text()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_member_listener_keeps_raft_off_the_api() -> anyhow::Result<()> {
    let c = Cluster::builder().member_listener().start().await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    // The API does not serve member RPCs, whatever the caller holds.
    let (name, proof) = member_proof("POST", "/raft/vote", c.nodes[follower].id);
    let r = call(
        Method::POST,
        &format!("{}/raft/vote", c.url(follower)),
        None,
        Some("{}"),
        &[(name, &proof)],
    )
    .await?;
    assert_eq!(r.status, 404, "{}", r.text());
    // The member listener serves members only (health aside).
    let member = c.nodes[follower].member_url();
    let r = call(
        Method::GET,
        &format!("{member}/v1/cluster"),
        Some(ADMIN),
        None,
        &[],
    )
    .await?;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = call(Method::GET, &format!("{member}/healthz"), None, None, &[]).await?;
    assert_eq!(r.status, 200);
    // Writes on a follower reach the leader through the member listeners.
    let r = c.post(follower, "/v1/purges", r#"{"tags":["t"]}"#).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let members: serde_json::Value = c.get(follower, "/v1/cluster").await?.json()?;
    let addrs: Vec<&str> = members["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["addr"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        addrs.contains(&c.nodes[leader].member_addr.as_str()),
        "members are known by their member address: {addrs:?}"
    );
    Ok(())
}
