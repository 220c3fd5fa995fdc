//! End-to-end runs against the real demo origin on an ephemeral loopback port.

use std::time::Duration;

use tiercel_testbed::origin::Origin;
use tokio::task::LocalSet;

use super::*;

/// Short windows: long enough for hundreds of exchanges on loopback, short enough for CI.
fn quick(protocol: Protocol, connections: usize, streams: usize) -> LoadConfig {
    LoadConfig {
        protocol,
        connections,
        streams,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(400),
        timeout: Duration::from_secs(2),
        ..LoadConfig::default()
    }
}

async fn run(origin: &Origin, path: &str, config: LoadConfig) -> LoadReport {
    let target = Target::new(&format!("{}{path}", origin.url()), &[]).unwrap();
    let local = LocalSet::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        local.run_until(run_local(target, config)),
    )
    .await
    .expect("run finished in time")
    .expect("run started")
}

async fn origin() -> Origin {
    Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn h1_counts_requests_bytes_and_latency() {
    let origin = origin().await;
    let config = LoadConfig {
        expected_len: Some(1024),
        tags: [("server".to_owned(), "origin".to_owned())].into(),
        ..quick(Protocol::H1, 4, 1)
    };
    let r = run(&origin, "/a?size=1024", config).await;
    assert!(r.requests > 50, "{r}");
    assert_eq!(r.errors, 0, "{r}");
    assert_eq!(r.bytes, r.requests * 1024);
    assert_eq!(r.connects, 0, "keep-alive held: {r}");
    assert_eq!(r.tags["server"], "origin");
    let (p50, p99) = (r.latency_us.p50.unwrap(), r.latency_us.p99.unwrap());
    assert!(p50 > 0.0 && p50 <= p99);
    assert!(p99 <= r.latency_us.max);
    assert!((r.duration_s - 0.4).abs() < 1e-9);
    // Every counted or warm-up exchange reached the origin; the last in-flight ones past the
    // window (at most one per connection) are not counted anywhere.
    let seen = origin.hits("/a?size=1024");
    let counted = r.requests + r.warmup_requests;
    assert!(
        seen >= counted && seen <= counted + 4,
        "{seen} vs {counted}"
    );
    assert!(r.client_cpu_percent.is_some());
    assert_eq!(r.server_cpu_percent, None);
}

#[tokio::test]
async fn h2_multiplexes_streams_on_few_connections() {
    let origin = origin().await;
    let config = LoadConfig {
        expected_len: Some(65_536),
        watch_pids: vec![std::process::id()],
        ..quick(Protocol::H2, 2, 8)
    };
    let r = run(&origin, "/b?size=65536", config).await;
    assert!(r.requests > 50, "{r}");
    assert_eq!(r.errors, 0, "{r}");
    assert_eq!(r.bytes, r.requests * 65_536);
    assert_eq!(r.protocol, Protocol::H2);
    assert_eq!((r.connections, r.streams), (2, 8));
    // The origin saw HTTP/2 requests.
    let versions: Vec<_> = origin.requests().iter().map(|q| q.version).collect();
    assert!(
        versions.iter().all(|v| *v == http::Version::HTTP_2),
        "{versions:?}"
    );
    // Watching our own pid: the server share is measured (it is this process).
    assert!(r.server_cpu_percent.is_some_and(|p| p > 0.0), "{r}");
}

#[tokio::test]
async fn non_2xx_is_an_error_and_keeps_the_connection() {
    let origin = origin().await;
    let r = run(&origin, "/c?status=503&size=10", quick(Protocol::H1, 2, 1)).await;
    assert_eq!(r.requests, 0, "{r}");
    assert!(r.errors > 20, "{r}");
    assert_eq!(r.error_kinds.keys().collect::<Vec<_>>(), ["status"]);
    assert_eq!(r.connects, 0, "{r}");
}

#[tokio::test]
async fn wrong_length_is_an_error() {
    let origin = origin().await;
    let config = LoadConfig {
        expected_len: Some(1000),
        ..quick(Protocol::H2, 1, 4)
    };
    let r = run(&origin, "/d?size=1024", config).await;
    assert_eq!(r.requests, 0, "{r}");
    assert_eq!(r.error_kinds.keys().collect::<Vec<_>>(), ["length"], "{r}");
}

#[tokio::test]
async fn slow_answers_time_out() {
    let origin = origin().await;
    let config = LoadConfig {
        timeout: Duration::from_millis(50),
        ..quick(Protocol::H1, 2, 1)
    };
    let r = run(&origin, "/e?delay_ms=300", config).await;
    assert_eq!(r.requests, 0, "{r}");
    assert!(r.error_kinds.get("timeout").is_some_and(|n| *n >= 4), "{r}");
    assert_eq!(r.error_kinds.len(), 1, "{r}");
    // A timed-out HTTP/1.1 connection is out of sync: it is replaced.
    assert!(r.connects >= 4, "{r}");
}

#[tokio::test]
async fn broken_bodies_and_closed_connections_are_errors() {
    let origin = origin().await;
    let r = run(
        &origin,
        "/f?size=100000&fail=midbody",
        quick(Protocol::H1, 2, 1),
    )
    .await;
    assert_eq!(r.requests, 0, "{r}");
    assert!(r.error_kinds.get("body").is_some_and(|n| *n > 5), "{r}");
    let r = run(&origin, "/g?fail=close", quick(Protocol::H1, 2, 1)).await;
    assert_eq!(r.requests, 0, "{r}");
    assert!(r.error_kinds.get("send").is_some_and(|n| *n > 5), "{r}");
    assert!(r.connects > 5, "{r}");
}

#[tokio::test]
async fn a_dead_server_gives_connect_errors() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = Target::new(&format!("http://127.0.0.1:{port}/"), &[]).unwrap();
    let local = LocalSet::new();
    let r = local
        .run_until(run_local(target, quick(Protocol::H2, 2, 4)))
        .await
        .unwrap();
    assert_eq!(r.requests, 0);
    assert!(r.error_kinds.get("connect").is_some_and(|n| *n > 10), "{r}");
}

#[test]
fn validate_refuses_impossible_runs() {
    let bad = [
        LoadConfig {
            connections: 0,
            ..LoadConfig::default()
        },
        LoadConfig {
            streams: 0,
            ..LoadConfig::default()
        },
        LoadConfig {
            streams: 4,
            ..LoadConfig::default()
        },
        LoadConfig {
            duration: Duration::ZERO,
            ..LoadConfig::default()
        },
        LoadConfig {
            timeout: Duration::ZERO,
            ..LoadConfig::default()
        },
        LoadConfig {
            protocol: Protocol::H2,
            h2_max_frame: 1000,
            ..LoadConfig::default()
        },
        LoadConfig {
            protocol: Protocol::H2,
            h2_stream_window: u32::MAX,
            ..LoadConfig::default()
        },
    ];
    for config in bad {
        assert!(
            matches!(config.validate(), Err(LoadError::Config(_))),
            "{config:?}"
        );
    }
    assert!(LoadConfig::default().validate().is_ok());
    assert!(
        LoadConfig {
            protocol: Protocol::H2,
            streams: 32,
            ..LoadConfig::default()
        }
        .validate()
        .is_ok()
    );
}
