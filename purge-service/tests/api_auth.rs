//! Tokens and scopes (401, 403), per-token rate limits (429 + Retry-After), revocation.

mod support;

use std::time::Duration;

use http::Method;
use support::{ADMIN, Cluster, call, member_proof};
use tiercel_cluster::purge::wire::{ApiError, TokenCreated, TokenScope};

const T: Duration = Duration::from_secs(10);

async fn as_token(
    c: &Cluster,
    node: usize,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<support::Resp> {
    call(
        method,
        &format!("{}{path}", c.url(node)),
        Some(token),
        body,
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_limits_and_revocation() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    // 401: no token, unknown token, wrong scheme; with WWW-Authenticate.
    for (token, header) in [
        (None, None),
        (Some("nope"), None),
        (None, Some("Basic YTpi")),
    ] {
        let headers: Vec<(&str, &str)> = header
            .map(|h| vec![("authorization", h)])
            .unwrap_or_default();
        let r = call(
            Method::POST,
            &format!("{}/v1/purges", c.url(follower)),
            token,
            Some(r#"{"all":true}"#),
            &headers,
        )
        .await?;
        assert_eq!(r.status, 401, "{token:?} {header:?}: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"tiercel\"")
        );
    }
    let r = call(
        Method::GET,
        &format!("{}/v1/log", c.url(follower)),
        None,
        None,
        &[],
    )
    .await?;
    assert_eq!(r.status, 401);
    // Creating tokens is admin only; the secret is shown once.
    let mut created = Vec::new();
    for (name, scope, rate) in [("ci", "purge", "null"), ("edge", "follow", "null")] {
        let r = c
            .post(
                follower,
                "/v1/tokens",
                &format!(r#"{{"name":"{name}","scope":"{scope}","rate_per_sec":{rate}}}"#),
            )
            .await?;
        assert_eq!(r.status, 201, "{}", r.text());
        let t: TokenCreated = r.json()?;
        assert!(t.token.starts_with("tcl_") && t.id.starts_with("tok_"));
        assert_eq!(t.name, name);
        created.push(t);
    }
    let (ci, edge) = (&created[0], &created[1]);
    assert_eq!(
        (ci.scope, edge.scope),
        (TokenScope::Purge, TokenScope::Follow)
    );
    c.wait_token_everywhere(&ci.token, T).await?;
    c.wait_token_everywhere(&edge.token, T).await?;
    // 403: too small a scope, also when forwarded.
    let forbidden: &[(&str, Method, &str, Option<&str>)] = &[
        (
            &edge.token,
            Method::POST,
            "/v1/purges",
            Some(r#"{"all":true}"#),
        ),
        (&edge.token, Method::GET, "/v1/services", None),
        (
            &ci.token,
            Method::PUT,
            "/v1/services/x",
            Some(r#"{"hosts":["auth.example"]}"#),
        ),
        (
            &ci.token,
            Method::POST,
            "/v1/tokens",
            Some(r#"{"name":"x","scope":"admin"}"#),
        ),
        (
            &ci.token,
            Method::POST,
            "/v1/cluster/members",
            Some(r#"{"id":9,"addr":"127.0.0.1:9"}"#),
        ),
    ];
    for (token, method, path, body) in forbidden {
        let r = as_token(&c, follower, token, method.clone(), path, *body).await?;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(
            r.json::<ApiError>()?.error.starts_with("token scope "),
            "{}",
            r.text()
        );
    }
    // A follow token reads the log and reports progress.
    let r = as_token(
        &c,
        follower,
        &edge.token,
        Method::GET,
        "/v1/log?from=1",
        None,
    )
    .await?;
    assert_eq!(r.status, 200);
    let r = as_token(
        &c,
        follower,
        &edge.token,
        Method::POST,
        "/v1/followers/report",
        Some(r#"{"node":"e1","role":"edge","applied_index":1}"#),
    )
    .await?;
    assert_eq!(r.status, 204, "{}", r.text());
    // 429: a token with 1 request/s has a burst of 2. The leader created it, so it knows it.
    let limited: TokenCreated = c
        .post(
            leader,
            "/v1/tokens",
            r#"{"name":"slow","scope":"purge","rate_per_sec":1}"#,
        )
        .await?
        .json()?;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let r = as_token(&c, leader, &limited.token, Method::GET, "/v1/cluster", None).await?;
        statuses.push(r.status);
        if r.status == 429 {
            retry_after = r.header("retry-after").map(str::to_string);
            assert_eq!(
                r.json::<ApiError>()?.error,
                "rate limit exceeded; retry in 1 s"
            );
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    // A write forwarded by a follower is charged where it arrived (before its body is read)
    // and again at the leader, which holds the cluster-wide limit on writes: the leader's
    // bucket is empty, so the follower relays a 429.
    let r = as_token(
        &c,
        follower,
        &limited.token,
        Method::POST,
        "/v1/purges",
        Some(r#"{"all":true}"#),
    )
    .await?;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = as_token(&c, leader, &limited.token, Method::GET, "/v1/cluster", None).await?;
    assert_eq!(r.status, 200, "the bucket refills");
    // Revocation: the token stops working; a second revoke is 404.
    let r = c
        .admin_call(
            follower,
            Method::DELETE,
            &format!("/v1/tokens/{}", ci.id),
            None,
        )
        .await?;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = as_token(&c, leader, &ci.token, Method::GET, "/v1/services", None).await?;
    assert_eq!(r.status, 401);
    let r = c
        .admin_call(
            leader,
            Method::DELETE,
            &format!("/v1/tokens/{}", ci.id),
            None,
        )
        .await?;
    assert_eq!(r.status, 404);
    // Bad token bodies.
    for body in [
        r#"{"name":"","scope":"purge"}"#,
        r#"{"name":"x","scope":"root"}"#,
        r#"{"name":"x","scope":"purge","rate_per_sec":0}"#,
    ] {
        let r = c.post(leader, "/v1/tokens", body).await?;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    // The admin token from TIERCEL_ADMIN_TOKEN works everywhere.
    for node in 0..3 {
        let r = as_token(&c, node, ADMIN, Method::GET, "/v1/cluster", None).await?;
        assert_eq!(r.status, 200);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_files_and_the_cluster_secret() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        "# imported at start\npurge ci-file 0123456789abcdef-ci\nfollow edges 0123456789abcdef-edge\n",
    )?;
    let c = Cluster::builder()
        .arg("--token-file")
        .arg(file.to_str().unwrap_or_default())
        .start()
        .await?;
    c.wait_token_everywhere("0123456789abcdef-ci", T).await?;
    c.wait_token_everywhere("0123456789abcdef-edge", T).await?;
    let r = as_token(
        &c,
        0,
        "0123456789abcdef-edge",
        Method::GET,
        "/v1/services",
        None,
    )
    .await?;
    assert_eq!(r.status, 403, "follow scope from the file");
    // /raft/* refuse callers without the secret.
    let r = call(
        Method::POST,
        &format!("{}/raft/vote", c.url(0)),
        None,
        Some("{}"),
        &[],
    )
    .await?;
    assert_eq!(r.status, 401);
    let r = call(
        Method::POST,
        &format!("{}/raft/vote", c.url(0)),
        None,
        Some("{}"),
        &[("x-tiercel-member", "wrong")],
    )
    .await?;
    assert_eq!(r.status, 401);
    // /raft/import takes conditional token imports only, even with the secret.
    let leader = c.wait_leader(T).await?;
    let unconditional = r#"{"op":"token_create","token":{"id":"tok_x","name":"x","scope":"admin","hash":"00"},"unless":"never"}"#;
    let (name, proof) = member_proof("POST", "/raft/import", c.nodes[leader].id);
    let r = call(
        Method::POST,
        &format!("{}/raft/import", c.url(leader)),
        None,
        Some(unconditional),
        &[(name, &proof)],
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json::<ApiError>()?.error,
        "only conditional token imports are accepted"
    );
    // And the cluster, which sends it, works.
    let r = c
        .post((leader + 1) % 3, "/v1/purges", r#"{"all":true}"#)
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    Ok(())
}
