//! `tiercel-testbed up` brings up a working CDN: the README's first command.
//!
//! Runs the real `tiercel-edge` binary from the workspace target directory, so run it with the
//! workspace (`cargo nextest run --workspace`), which builds every binary first.

use std::path::PathBuf;
use std::time::Duration;

use tiercel_testbed::up::{UpOptions, up};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// target/<profile>/ from target/<profile>/deps/<this test>.
fn target_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf()
}

async fn get(addr: std::net::SocketAddr, pq: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {pq} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_demo_origin_through_a_shield_and_an_edge() {
    let bin_dir = target_bin_dir();
    assert!(
        bin_dir.join("tiercel-edge").exists() && bin_dir.join("tiercel-shield").exists(),
        "{} has no tiercel-edge or tiercel-shield: run the workspace tests (cargo nextest run --workspace)",
        bin_dir.display()
    );
    let data = tempfile::tempdir().unwrap();
    let opts = UpOptions {
        origin: free_addr(),
        edge: free_addr(),
        edge_tls: free_addr(),
        admin: free_addr(),
        shield: free_addr(),
        shield_admin: free_addr(),
        edges: 1,
        shields: 1,
        data_dir: data.path().to_path_buf(),
        bin_dir,
    };
    let running = up(&opts).await.expect("up starts");
    let first = get(opts.edge, "/hello?size=1024&cc=max-age%3D60").await;
    let second = get(opts.edge, "/hello?size=1024&cc=max-age%3D60").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        first.contains("cache-status: tiercel-shield; fwd=uri-miss; fwd-status=200; stored, tiercel-edge; fwd=uri-miss"),
        "{first}"
    );
    assert!(second.contains(", tiercel-edge; hit"), "{second}");
    for dir in ["edge-0", "shield-0"] {
        assert!(
            data.path().join(dir).is_dir(),
            "{dir}: the disk tiers live in the data dir"
        );
    }
    running.down().await;
}

/// The first of two consecutive free ports.
fn free_pair() -> std::net::SocketAddr {
    loop {
        let a = free_addr();
        let next = std::net::SocketAddr::new(a.ip(), a.port().wrapping_add(1));
        if a.port() < u16::MAX && std::net::TcpListener::bind(next).is_ok() {
            return a;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_two_edges_and_two_shields_fetches_each_object_once() {
    let data = tempfile::tempdir().unwrap();
    let opts = UpOptions {
        origin: free_addr(),
        edge: free_pair(),
        edge_tls: free_pair(),
        admin: free_pair(),
        shield: free_pair(),
        shield_admin: free_pair(),
        edges: 2,
        shields: 2,
        data_dir: data.path().to_path_buf(),
        bin_dir: target_bin_dir(),
    };
    let running = up(&opts).await.expect("up starts");
    for i in 0..20 {
        for e in 0..2 {
            let edge = tiercel_testbed::up::nth(opts.edge, e);
            let r = get(edge, &format!("/multi/{i}?size=100&cc=max-age%3D60")).await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
            // The second edge's miss is the shield's hit: one origin fetch per object.
            if e == 1 {
                assert!(r.contains("x-origin-hits: 1\r\n"), "{r}");
                assert!(r.contains("; hit"), "{r}");
            }
        }
    }
    running.down().await;
}
