//! The real binary on one worker thread (`--worker-threads 1`, the current-thread scheduler):
//! everything that leans on other tasks making progress — coalesced waiters, streaming fills,
//! the disk tier's blocking I/O, graceful shutdown — still works when there is no second
//! thread to run them.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::Full;
use support::*;
use tiercel_testbed::origin::{Origin, expected_body};
use tokio::io::AsyncBufReadExt;

/// The edge binary with `flags`, its banner line, once it accepts connections.
async fn spawn_edge(flags: &[&str]) -> (Child, String) {
    let mut child = edge_binary()
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the edge binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let stdout = tokio::process::ChildStdout::from_std(stdout).expect("async stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let banner = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the edge prints its banner in time")
        .expect("stdout reads")
        .expect("a banner line");
    // Keep reading: a closed pipe would fail the node's later prints.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, banner)
}

fn stop(mut child: Child) {
    tiercel_cluster::signal::terminate(child.id()).expect("SIGTERM is sent");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            assert!(status.success(), "clean exit on SIGTERM: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "exits within the grace period");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

async fn get(addr: SocketAddr, pq: &str, h2: bool) -> Resp {
    // The key is the same either way: h2 carries the authority, h1 the same text in Host.
    let req = Request::get(format!("http://{addr}{pq}"))
        .body(Full::default())
        .expect("a valid request");
    if h2 {
        send(&h2c_client(), req).await
    } else {
        send(&h1_client(), req).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_thread_coalesces_streams_and_recovers_the_disk_tier() {
    init_logs();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = origin.url();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().to_str().unwrap().to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let addr: SocketAddr = listen.parse().unwrap();
    let flags = [
        "--worker-threads",
        "1",
        "--listen",
        listen.as_str(),
        "--origin",
        url.as_str(),
        "--disk-cache",
        disk.as_str(),
        "--disk-cache-size",
        "64MiB",
        "--memory-cache",
        "8MiB",
    ];

    let (edge, banner) = spawn_edge(&flags).await;
    assert!(banner.ends_with(", 1 worker thread"), "{banner}");

    // 40 clients (h1 and h2c) on a cold object the origin is slow to answer: one fetch.
    let slow = "/w/slow?cc=max-age%3D600&size=300000&delay_ms=300";
    let clients: Vec<_> = (0..40)
        .map(|i| tokio::spawn(async move { get(addr, slow, i % 2 == 0).await }))
        .collect();
    for c in clients {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, expected_body(slow, 300_000));
    }
    assert_eq!(origin.hits(slow), 1, "the misses coalesced");

    // A multi-chunk object goes to the disk tier and is a hit from memory next.
    let large = "/w/large?cc=max-age%3D600&size=3500000";
    assert_eq!(
        get(addr, large, false).await.body,
        expected_body(large, 3_500_000)
    );
    assert!(get(addr, large, true).await.is_hit());
    stop(edge);

    // After a restart on one thread again, both come back from disk.
    let (edge, _) = spawn_edge(&flags).await;
    for pq in [slow, large] {
        let r = get(addr, pq, false).await;
        assert!(r.is_hit(), "{pq}: {}", r.cache_status());
    }
    assert_eq!(
        get(addr, large, false).await.body,
        expected_body(large, 3_500_000)
    );
    assert_eq!(origin.hits(slow), 1);
    assert_eq!(origin.hits(large), 1);
    stop(edge);
    origin.shutdown().await;
}

#[test]
fn worker_threads_out_of_range_is_a_config_error() {
    let out = edge_binary()
        .args(["--worker-threads", "5000", "--origin", "http://127.0.0.1:9"])
        .output()
        .expect("the edge binary runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "tiercel-edge: config error: worker_threads (from --worker-threads): must be at most 1024 (0 = one per core), got 5000"
    );
}
