//! TLS on the purge-service: members serve the API and dial each other over TLS verified by a
//! CA file; `tiercelctl --ca-file` and an edge's follower (`purge_ca_file`) verify the server,
//! and refuse one they do not trust; a SIGHUP reloads the certificate without a restart.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use rustls::pki_types::ServerName;
use support::{ADMIN, Cluster, Pki};
use tiercel_cluster::config::{NodeArgs, NodeConfig, Role};
use tiercel_edge::node;
use tiercel_testbed::origin::Origin;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const T: Duration = Duration::from_secs(15);

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the real `tiercelctl` with `TIERCEL_TOKEN_FILE` and no other `TIERCEL_*`.
async fn ctl(args: &[&str], token_file: &Path) -> Result<Out> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tiercelctl"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TIERCEL_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("TIERCEL_TOKEN_FILE", token_file)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let o = tokio::time::timeout(Duration::from_secs(40), cmd.output())
        .await
        .context("tiercelctl hung")??;
    Ok(Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    })
}

/// The DER of the certificate `addr` serves, read with a client that trusts `ca`.
async fn served_cert(addr: &str, ca: &Path) -> Result<Vec<u8>> {
    let mut cfg = tiercel_cluster::tls::client_config(Some(ca))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let (_, conn) = tls.get_ref();
    let certs = conn.peer_certificates().context("a certificate")?;
    Ok(certs[0].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_between_members_for_tiercelctl_and_for_edges() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::issue(dir.path(), "purge")?;
    let stranger = Pki::issue(dir.path(), "stranger")?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{ADMIN}\n"))?;
    let c = Cluster::builder().tls(pki.clone()).start().await?;
    let leader = c.wait_leader(T).await?;
    let follower = (leader + 1) % 3;
    assert!(c.url(follower).starts_with("https://"));
    let ca = pki.ca.to_str().unwrap_or_default();

    // tiercelctl verifies the server with --ca-file; a write on a follower reaches the leader
    // over the members' TLS.
    let url = c.url(follower);
    let out = ctl(
        &["--server", &url, "--ca-file", ca, "purge", "--tag", "t1"],
        &token_file,
    )
    .await?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("purge "), "{}", out.stdout);
    // A CA that did not sign the server's certificate: refused, exit 1, one line.
    let other = stranger.ca.to_str().unwrap_or_default();
    let out = ctl(
        &["--server", &url, "--ca-file", other, "purge", "--tag", "t2"],
        &token_file,
    )
    .await?;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("certificate"), "{}", out.stderr);
    // No CA file: the system's roots do not know the test CA either.
    let out = ctl(&["--server", &url, "purge", "--tag", "t3"], &token_file).await?;
    assert_eq!(out.code, 1, "{}", out.stderr);
    // Plain HTTP to a TLS listener gets nothing useful.
    let plain = format!("http://{}", c.nodes[follower].addr);
    let out = ctl(&["--server", &plain, "purge", "--tag", "t4"], &token_file).await?;
    assert_eq!(out.code, 1, "{}", out.stderr);

    // An edge follows over TLS with purge_ca_file and its token from a file, and reports: the
    // purge's --wait completes with the edge counted. With a CA that does not know the
    // servers, it never hears them (and so revalidates everything it serves).
    let origin = Origin::start("127.0.0.1:0".parse()?).await?;
    let edge_cfg = |name: &str, ca: &str| -> Result<NodeConfig> {
        let mut argv = vec![
            "tiercel-edge".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--origin".into(),
            origin.url(),
            "--name".into(),
            name.into(),
            "--purge-token-file".into(),
            token_file.display().to_string(),
            "--purge-ca-file".into(),
            ca.to_string(),
        ];
        for i in 0..3 {
            argv.push("--purge-service".into());
            argv.push(c.url(i));
        }
        Ok(NodeConfig::load(
            Role::Edge,
            &Args::try_parse_from(argv)?.node,
            std::iter::empty(),
        )?)
    };
    let fooled = node::start(Role::Edge, &edge_cfg("edge-stranger", other)?).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fooled_state = fooled.purge_state.clone().context("following")?;
    assert!(
        fooled_state.lagging(),
        "an edge followed a server its CA does not know"
    );
    assert_eq!(fooled_state.applied_index(), 0);
    fooled.shutdown().await;
    let edge = node::start(Role::Edge, &edge_cfg("edge-tls", ca)?).await?;
    let state = edge.purge_state.clone().context("following")?;
    let deadline = tokio::time::Instant::now() + T;
    while state.lagging() {
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow!("the edge never heard the purge-service over TLS"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = ctl(
        &[
            "--server",
            &url,
            "--ca-file",
            ca,
            "purge",
            "--tag",
            "t5",
            "--wait",
        ],
        &token_file,
    )
    .await?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("applied by 1/1 live nodes"),
        "{}",
        out.stdout
    );

    // SIGHUP reloads the certificate: new handshakes get the new one, nothing restarts.
    let addr = c.nodes[follower].addr.clone();
    let before = served_cert(&addr, &pki.ca).await?;
    // Same CA, new key and certificate, written over the files the member was started with.
    let ca_pem = std::fs::read_to_string(&pki.ca)?;
    let renewed = pki.reissue(dir.path(), "renewed")?;
    std::fs::copy(&renewed.cert, &pki.cert)?;
    std::fs::copy(&renewed.key, &pki.key)?;
    let pid = c.nodes[follower].pid().context("running")?;
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    assert!(hup.success());
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let now = served_cert(&addr, &pki.ca).await?;
        if now != before {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow!("the certificate was not reloaded on SIGHUP"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&pki.ca)?, ca_pem);
    // Still the same process, still serving.
    assert_eq!(c.nodes[follower].pid(), Some(pid));
    let out = ctl(
        &["--server", &url, "--ca-file", ca, "purge", "--tag", "t6"],
        &token_file,
    )
    .await?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    edge.shutdown().await;
    Ok(())
}
