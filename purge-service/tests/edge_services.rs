//! Services through a real 3-node purge-service reaching a running edge: a service put with
//! `tiercelctl` routes the edge's requests within 2 s over a connection held open, and a
//! token scoped to one service purges and reads only that service.

#[path = "support/edge.rs"]
mod edge;
mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use support::{ADMIN, Cluster};
use tiercel_testbed::origin::Origin;

use edge::{Edge, T, warm};

/// Runs the real `tiercelctl` against the cluster with the admin token.
fn tiercelctl(c: &Cluster, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_tiercelctl"))
        .args(["--server", &c.url(0), "--token", ADMIN])
        .args(args)
        .output()?)
}

type Live = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// GETs a fresh URL of `live.test` (never a hit) over `conn`; the path and query asked.
async fn ask_live(conn: &mut Live, n: &mut u32) -> Result<String> {
    *n += 1;
    let pq = format!("/live/{n}?size=10");
    let req = Request::get(&pq)
        .header("host", "live.test")
        .body(Full::<Bytes>::default())?;
    let resp = tokio::time::timeout(T, conn.send_request(req)).await??;
    anyhow::ensure!(resp.status() == 200, "{pq}: {}", resp.status());
    tokio::time::timeout(T, resp.into_body().collect()).await??;
    Ok(pq)
}

/// Asks over `conn` until `origin` answers: within 2 s of the change.
async fn until_answered_by(conn: &mut Live, n: &mut u32, origin: &Origin) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let pq = ask_live(conn, n).await?;
        if origin.hits(&pq) == 1 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(2),
            "not applied within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `tiercelctl services put NAME --file FILE`, which must succeed.
fn put_ok(c: &Cluster, name: &str, file: &std::path::Path) -> Result<()> {
    let out = tiercelctl(
        c,
        &[
            "services",
            "put",
            name,
            "--file",
            &file.display().to_string(),
        ],
    )?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_changed_through_tiercelctl_applies_on_a_running_edge_over_a_held_connection()
-> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let (default, a, b) = (
        Origin::start("127.0.0.1:0".parse()?).await?,
        Origin::start("127.0.0.1:0".parse()?).await?,
        Origin::start("127.0.0.1:0".parse()?).await?,
    );
    let e = Edge::start(&c, &default, "edge-svc", None).await?;
    // One connection, held open across every change.
    let tcp = tokio::net::TcpStream::connect(e.node.listen.context("listening")?).await?;
    let (mut conn, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(driver);
    let mut n = 0u32;
    let pq = ask_live(&mut conn, &mut n).await?;
    assert_eq!(default.hits(&pq), 1, "no service yet: the node's origin");

    // Created from a TOML file, as a node's [[services]] table is written.
    let dir = tempfile::tempdir()?;
    let toml = dir.path().join("live.toml");
    std::fs::write(
        &toml,
        format!("hosts = [\"live.test\"]\norigins = [\"{}\"]\n", a.url()),
    )?;
    put_ok(&c, "live", &toml)?;
    until_answered_by(&mut conn, &mut n, &a).await?;
    // Changed in JSON: the pool moves to the other origin.
    let json = dir.path().join("live.json");
    std::fs::write(
        &json,
        format!(r#"{{"hosts":["live.test"],"origins":["{}"]}}"#, b.url()),
    )?;
    put_ok(&c, "live", &json)?;
    until_answered_by(&mut conn, &mut n, &b).await?;
    // A bad definition is refused before it is sent, naming the key, and changes nothing.
    std::fs::write(
        &json,
        r#"{"hosts":["live.test"],"origins":[{"url":"http://o","weight":0}]}"#,
    )?;
    let out = tiercelctl(
        &c,
        &[
            "services",
            "put",
            "live",
            "--file",
            &json.display().to_string(),
        ],
    )?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("origins[0].weight: must be between 1 and 1000, got 0"),
        "{err}"
    );
    // Sent anyway (past the CLI), the service refuses it the same way; a host taken by another
    // service is a conflict.
    let r = support::call(
        http::Method::PUT,
        &format!("{}/v1/services/live", c.url(0)),
        Some(ADMIN),
        Some(r#"{"hosts":["live.test"],"balance":"random"}"#),
        &[],
    )
    .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("balance: expected round_robin"),
        "{}",
        r.text()
    );
    let r = support::call(
        http::Method::PUT,
        &format!("{}/v1/services/thief", c.url(0)),
        Some(ADMIN),
        Some(r#"{"hosts":["live.test"]}"#),
        &[],
    )
    .await?;
    assert_eq!(r.status, 409, "{}", r.text());
    let pq = ask_live(&mut conn, &mut n).await?;
    assert_eq!(b.hits(&pq), 1, "still the last good definition");
    // Deleted: back to the node's origin.
    let out = tiercelctl(&c, &["services", "delete", "live"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until_answered_by(&mut conn, &mut n, &default).await?;
    e.node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_to_one_service_purges_only_its_objects_and_reads_only_its_config()
-> Result<()> {
    tiercel_cluster::telemetry::init("warn");
    let c = Cluster::builder().start().await?;
    let o = Origin::start("127.0.0.1:0".parse()?).await?;
    let pair = rcgen::generate_simple_self_signed(vec!["a.test".to_string()])?;
    let tls = serde_json::json!({"cert": pair.cert.pem(), "key": pair.signing_key.serialize_pem()});
    for (name, host) in [("site-a", "a.test"), ("site-b", "b.test")] {
        let out = {
            let dir = tempfile::tempdir()?;
            let f = dir.path().join("s.json");
            let mut doc = serde_json::json!({"hosts": [host], "origins": [o.url()]});
            if name == "site-a" {
                doc["tls"] = tls.clone();
            }
            std::fs::write(&f, doc.to_string())?;
            tiercelctl(
                &c,
                &["services", "put", name, "--file", &f.display().to_string()],
            )?
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let e = Edge::start(&c, &o, "edge-tenant", None).await?;
    let deadline = tokio::time::Instant::now() + T;
    while e.node.engine.sites().services.len() < 2 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "services never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The same path and the same tag on both sites.
    let pq = "/t?tags=shared&cc=max-age%3D600";
    for host in ["a.test", "b.test"] {
        warm(&e, &o, host, pq).await?;
    }
    let out = tiercelctl(
        &c,
        &[
            "--json",
            "tokens",
            "create",
            "--name",
            "ci-a",
            "--scope",
            "purge",
            "--service",
            "site-a",
        ],
    )?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let token = created["token"].as_str().context("token")?.to_owned();
    c.wait_token_everywhere(&token, T).await?;
    let as_a = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tiercelctl"))
            .args(["--server", &c.url(0), "--token", &token])
            .args(args)
            .output()
    };
    // An admin's purge of another site is not in this token's audit trail.
    let out = tiercelctl(&c, &["purge", "--service", "site-b", "--tag", "other"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another service, or none named: 403, nothing purged.
    for args in [
        &["purge", "--service", "site-b", "--tag", "shared"][..],
        &["purge", "--tag", "shared"][..],
        &["services", "get", "site-b"][..],
    ] {
        let out = as_a(args)?;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("403") || err.contains("may not") || err.contains("limited"),
            "{args:?}: {err}"
        );
    }
    let out = as_a(&["--json", "services", "list"])?;
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "site-a");
    // It reads the definition, never the private key.
    assert_eq!(listed[0]["doc"]["tls"]["key"], "(redacted)");
    assert_eq!(listed[0]["doc"]["tls"]["cert"], tls["cert"]);
    // Its own service's tag, and even b's host named under its own service: only a's object
    // goes.
    let out = as_a(&[
        "purge",
        "--service",
        "site-a",
        "--tag",
        "shared",
        "--host",
        "b.test",
        "--wait",
        "--wait-timeout",
        "20s",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!e.get("a.test", pq).await?.hit(), "site-a's object purged");
    let out = as_a(&["--json", "purges", "list"])?;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let purges = list.as_array().context("a list of purges")?;
    assert_eq!(purges.len(), 1, "{list}");
    assert_eq!(purges[0]["purge"]["service"], "site-a");
    assert!(
        e.get("b.test", pq).await?.hit(),
        "site-b's object untouched"
    );
    e.node.shutdown().await;
    Ok(())
}
