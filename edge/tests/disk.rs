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
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cfg = disk_config(&origin.url(), dir.path(), &["--memory-cache", "8MiB"]);
    let small = "/d/small?cc=max-age%3D600&size=1000";
    let large = "/d/large?cc=max-age%3D600&size=3500000";
    let get = |addr: std::net::SocketAddr, pq: &'static str| async move {
        let req = Request::get(format!("http://{addr}{pq}"))
            .header("host", "cdn.example")
            .body(Full::default())
            .unwrap();
        send(&h1_client(), req).await
    };

    let n = node::start(Role::Edge, &cfg).await.unwrap();
    let addr = n.listen.unwrap();
    assert_eq!(get(addr, small).await.body, expected_body(small, 1000));
    assert_eq!(get(addr, large).await.body, expected_body(large, 3_500_000));
    assert!(get(addr, large).await.is_hit());
    n.shutdown().await;

    let n = node::start(Role::Edge, &cfg).await.unwrap();
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

/// Every occurrence of `needle` in the files under `dir`, as (file, offset).
fn find_in_files(dir: &std::path::Path, needle: &[u8]) -> Vec<(std::path::PathBuf, usize)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            found.extend(
                bytes
                    .windows(needle.len())
                    .enumerate()
                    .filter(|(_, w)| *w == needle)
                    .map(|(i, _)| (path.clone(), i)),
            );
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_damaged_on_disk_is_never_served_and_is_fetched_again() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let cfg = disk_config(&origin.url(), dir.path(), &[]);
    let large = "/dmg/large?cc=max-age%3D600&size=3500000";
    let small = "/dmg/small?cc=max-age%3D600&size=1000";
    let get = |addr: std::net::SocketAddr, pq: &'static str| async move {
        let req = Request::get(format!("http://{addr}{pq}"))
            .header("host", "cdn.example")
            .body(Full::default())
            .unwrap();
        send(&h1_client(), req).await
    };
    let want = expected_body(large, 3_500_000);

    let n = node::start(Role::Edge, &cfg).await.unwrap();
    assert_eq!(get(n.listen.unwrap(), large).await.body, want);
    assert_eq!(get(n.listen.unwrap(), small).await.status, 200);
    n.shutdown().await;

    // Flip one byte inside the first chunk's stored bytes (the body's first 64 bytes occur once
    // in it: the demo origin's blocks differ in their first 8 bytes). foyer's entry checksum or
    // the chunk's own blake3 (`storage/entry.rs`, tested byte by byte there) catches it.
    let hits = find_in_files(dir.path(), &want[..64]);
    assert!(!hits.is_empty(), "the chunk is in the disk tier's files");
    for (file, offset) in &hits {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[offset + 40] ^= 0x01;
        std::fs::write(file, bytes).unwrap();
    }

    let n = node::start(Role::Edge, &cfg).await.unwrap();
    let addr = n.listen.unwrap();
    let again = get(addr, large).await;
    assert_eq!(again.status, 200);
    assert!(again.body == want, "the damaged byte was served");
    assert_eq!(origin.hits(large), 2, "fetched again");
    let s = get(addr, small).await;
    assert!(
        s.is_hit(),
        "undamaged neighbours stay: {}",
        s.cache_status()
    );
    assert!(get(addr, large).await.is_hit(), "stored again");
    assert_eq!(origin.hits(large), 2);
    n.shutdown().await;
    origin.shutdown().await;
}
