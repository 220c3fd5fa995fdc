//! Error answers of the API: 400 (several bad bodies), 404, 405, 413, and idempotent retries.

mod support;

use std::time::Duration;

use http::Method;
use support::{ADMIN, Cluster, call, purges};
use tiercel_cluster::purge::wire::{ApiError, PurgeAccepted};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_errors() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    // (body, status, exact error line or prefix)
    let cases: &[(&str, u16, &str)] = &[
        ("", 400, "request body is empty; expected JSON"),
        (
            "{",
            400,
            "invalid JSON body: EOF while parsing an object at line 1 column 1",
        ),
        (
            r#"{"url":["https://a/"]}"#,
            400,
            "invalid JSON body: unknown field `url`, expected one of",
        ),
        (
            r#"{"urls":"https://a/"}"#,
            400,
            "invalid JSON body: invalid type: string \"https://a/\", expected a sequence",
        ),
        (
            "{}",
            400,
            "nothing to purge: give urls, prefixes, tags or hosts, or set all",
        ),
        (
            r#"{"urls":["https://a/","http://b/","ftp://c/"]}"#,
            400,
            "urls[2]: URL must start with http:// or https://",
        ),
        (
            r#"{"prefixes":["https:///x"]}"#,
            400,
            "prefixes[0]: URL has no valid host",
        ),
        (
            r#"{"tags":["ok","not ok"]}"#,
            400,
            "tags[1]: tag contains whitespace or control characters",
        ),
        (r#"{"tags":[""]}"#, 400, "tags[0]: tag is empty"),
        (
            r#"{"hosts":["a b"]}"#,
            400,
            "hosts[0]: URL has no valid host",
        ),
        (
            r#"{"hosts":["a:0"]}"#,
            400,
            "hosts[0]: URL has an invalid port",
        ),
    ];
    for &(body, status, want) in cases {
        for node in [leader, follower] {
            let r = c.post(node, "/v1/purges", body).await?;
            assert_eq!(r.status, status, "{body}: {}", r.text());
            let e: ApiError = r.json()?;
            assert!(
                e.error.starts_with(want),
                "{body}: got {:?}, want {want:?}",
                e.error
            );
            assert!(!e.error.contains('\n'));
        }
    }
    // 413: too many targets, an item too long, a body over 1 MiB.
    let many: Vec<String> = (0..1001).map(|i| format!("\"t{i}\"")).collect();
    let r = c
        .post(
            leader,
            "/v1/purges",
            &format!(r#"{{"tags":[{}]}}"#, many.join(",")),
        )
        .await?;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(
        r.json::<ApiError>()?.error,
        "a purge names at most 1000 targets, this one names 1001"
    );
    let long = format!(r#"{{"urls":["https://a/{}"]}}"#, "x".repeat(5000));
    let r = c.post(leader, "/v1/purges", &long).await?;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.json::<ApiError>()?.error,
        "urls[0]: longer than 4096 bytes"
    );
    let huge = format!(r#"{{"tags":["{}"]}}"#, "x".repeat(1024 * 1024 + 1));
    for node in [leader, follower] {
        let r = c.post(node, "/v1/purges", &huge).await?;
        assert_eq!(r.status, 413, "node {node}");
        assert_eq!(
            r.json::<ApiError>()?.error,
            "request body larger than 1048576 bytes"
        );
    }
    // 404 and 405.
    let r = c.get(follower, "/v1/nope").await?;
    assert_eq!(
        (r.status, r.json::<ApiError>()?.error.as_str()),
        (404, "no route for /v1/nope")
    );
    for path in ["/v1/purges/999999", "/v1/purges/1.x", "/v1/services/none"] {
        let r = c.get(follower, path).await?;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = c
        .admin_call(follower, Method::DELETE, "/v1/tokens/tok_nope", None)
        .await?;
    assert_eq!(r.status, 404);
    let r = c.get(leader, "/v1/purges").await?;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = c
        .admin_call(leader, Method::PATCH, "/v1/services/x", Some("{}"))
        .await?;
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, PUT, DELETE"))
    );
    // Bad path parameters and headers.
    let r = c
        .admin_call(
            leader,
            Method::PUT,
            "/v1/services/a%20b",
            Some(r#"{"hosts":[]}"#),
        )
        .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    let url = format!("{}/v1/purges", c.url(leader));
    let r = call(
        Method::POST,
        &url,
        Some(ADMIN),
        Some(r#"{"all":true}"#),
        &[("idempotency-key", "has space")],
    )
    .await?;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json::<ApiError>()?.error,
        "Idempotency-Key: must be 1-255 visible ASCII characters"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_commits_once() -> anyhow::Result<()> {
    let c = Cluster::builder().start().await?;
    let leader = c.wait_leader(T).await?;
    let body = r#"{"tags":["once"]}"#;
    let post = |node: usize, key: &'static str, token: String| {
        let url = format!("{}/v1/purges", c.url(node));
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
    let first: PurgeAccepted = post(leader, "k1", ADMIN.into()).await?.json()?;
    // Retries on every node, also concurrently, answer the same and commit nothing.
    let mut retries = tokio::task::JoinSet::new();
    for i in 0..6 {
        let url = format!("{}/v1/purges", c.url(i % 3));
        retries.spawn(async move {
            call(
                Method::POST,
                &url,
                Some(ADMIN),
                Some(body),
                &[("idempotency-key", "k1")],
            )
            .await
        });
    }
    while let Some(r) = retries.join_next().await {
        let r = r??;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json::<PurgeAccepted>()?, first);
    }
    // Another key, or the same key from another token, is another purge.
    let second: PurgeAccepted = post(leader, "k2", ADMIN.into()).await?.json()?;
    assert_ne!(second.index, first.index);
    let other: tiercel_cluster::purge::wire::TokenCreated = c
        .post(leader, "/v1/tokens", r#"{"name":"other","scope":"purge"}"#)
        .await?
        .json()?;
    c.wait_token_everywhere(&other.token, T).await?;
    let third: PurgeAccepted = post(leader, "k1", other.token.clone()).await?.json()?;
    assert_ne!(third.index, first.index);
    let events = c.log_until((leader + 1) % 3, 0, third.index, T).await?;
    let got: Vec<(String, u64)> = purges(&events).into_iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(
        got,
        [
            (first.id, first.index),
            (second.id, second.index),
            (third.id, third.index)
        ]
    );
    Ok(())
}
