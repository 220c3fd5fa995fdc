//! The disk tier: objects survive a restart on the same directory, and large objects are
//! stored in chunks that come back from disk intact.

mod support;

use http::Request;
use http_body_util::Full;
use support::*;
use tiercel_cluster::config::Role;
use tiercel_edge::node;
use tiercel_testbed::origin::{Origin, expected_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_directory_recovers_the_cache() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().to_str().unwrap().to_string();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = origin.url();
    let flags = [
        "--listen",
        "127.0.0.1:0",
        "--origin",
        url.as_str(),
        "--disk-cache",
        disk.as_str(),
        "--disk-cache-size",
        "64MiB",
        "--memory-cache",
        "8MiB",
    ];
    let small = "/d/small?cc=max-age%3D600&size=1000";
    let large = "/d/large?cc=max-age%3D600&size=3500000";
    let get = |addr: std::net::SocketAddr, pq: &'static str| async move {
        let req = Request::get(format!("http://{addr}{pq}"))
            .header("host", "cdn.example")
            .body(Full::default())
            .unwrap();
        send(&h1_client(), req).await
    };

    let n = node::start(Role::Edge, &config_from_flags(&flags))
        .await
        .unwrap();
    let addr = n.listen.unwrap();
    assert_eq!(get(addr, small).await.body, expected_body(small, 1000));
    assert_eq!(get(addr, large).await.body, expected_body(large, 3_500_000));
    assert!(get(addr, large).await.is_hit());
    n.shutdown().await;

    let n = node::start(Role::Edge, &config_from_flags(&flags))
        .await
        .unwrap();
    let addr = n.listen.unwrap();
    let s = get(addr, small).await;
    let l = get(addr, large).await;
    assert!(
        s.is_hit() && l.is_hit(),
        "{} / {}",
        s.cache_status(),
        l.cache_status()
    );
    assert_eq!(s.body, expected_body(small, 1000));
    assert_eq!(l.body, expected_body(large, 3_500_000));
    assert_eq!(origin.hits(small), 1);
    assert_eq!(origin.hits(large), 1);
    n.shutdown().await;
    origin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_larger_than_memory_come_back_from_disk() {
    let e = Edge::start_with_disk(&["--memory-cache", "4MiB"]).await;
    let pqs: Vec<String> = (0..6)
        .map(|i| format!("/d/m{i}?cc=max-age%3D600&size=2000000"))
        .collect();
    for pq in &pqs {
        assert_eq!(e.get(pq).await.body, expected_body(pq, 2_000_000));
    }
    for pq in &pqs {
        let r = e.get(pq).await;
        assert!(r.is_hit(), "{pq}: {}", r.cache_status());
        assert_eq!(r.body, expected_body(pq, 2_000_000));
        assert_eq!(e.origin.hits(pq), 1);
    }
    e.shutdown().await;
}
