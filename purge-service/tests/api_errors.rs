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
    let r = c
        .admin_call(leader, Method::PUT, "/v1/purges", Some("{}"))
        .await?;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST, GET")));
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
            Some(r#"{"hosts":["auth.example"]}"#),
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

/// Sends `head` (and `body`) on `s`, returns the status line, the lower-cased head and the body
/// of the answer (by Content-Length).
async fn exchange(
    s: &mut tokio::net::TcpStream,
    head: &str,
    body: &[u8],
) -> anyhow::Result<(String, String, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(T, s.read(&mut chunk)).await??;
        anyhow::ensure!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(T, s.read(&mut chunk)).await??;
        anyhow::ensure!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, head, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_in_size_and_time_and_refusals_reach_the_client() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let c = Cluster::builder()
        .nodes(1)
        .arg("--body-timeout")
        .arg("300ms")
        .start()
        .await?;
    let addr = c.url(0).trim_start_matches("http://").to_owned();
    let post = |len: usize| {
        format!(
            "POST /v1/purges HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN}\r\n\
             content-type: application/json\r\ncontent-length: {len}\r\n\r\n"
        )
    };
    // A 2 MB body (limit 1 MiB) is read to its end and refused with 413, every time, and the
    // connection stays usable.
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let big = vec![b' '; 2_000_000];
    for _ in 0..3 {
        let (status, _, body) = exchange(&mut s, &post(big.len()), &big).await?;
        assert!(status.starts_with("http/1.1 413"), "{status}");
        let e: ApiError = serde_json::from_slice(&body)?;
        assert_eq!(e.error, "request body larger than 1048576 bytes");
    }
    let ok = br#"{"tags":["after-413"]}"#;
    let (status, _, _) = exchange(&mut s, &post(ok.len()), ok).await?;
    assert!(status.starts_with("http/1.1 200"), "{status}");

    // A body that stops coming: 408 after --body-timeout, with `connection: close`, then EOF.
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let started = std::time::Instant::now();
    let (status, head, body) = exchange(&mut s, &post(100), br#"{"tags":"#).await?;
    let waited = started.elapsed();
    assert!(status.starts_with("http/1.1 408"), "{status}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(
        serde_json::from_slice::<ApiError>(&body)?.error,
        "request body not received within 300 ms"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(T, s.read_to_end(&mut rest)).await??;
    assert_eq!(n, 0, "the connection closes after a 408");
    Ok(())
}
