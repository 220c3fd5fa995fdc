//! Two real `tiercel-shield` processes behind an edge: one is killed with SIGKILL under a steady
//! load of cold requests, and the edge's clients see no failure past one second (measured);
//! when the shield comes back, its keys return to it.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tiercel_cluster::config::{NodeConfig, Role};
use tiercel_edge::node;
use tiercel_testbed::origin::Origin;

const WAIT: Duration = Duration::from_secs(20);

struct Shield {
    child: Child,
    addr: String,
}

impl Drop for Shield {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

async fn spawn_shield(addr: &str, name: &str, origin: &str) -> Shield {
    let child = Command::new(env!("CARGO_BIN_EXE_tiercel-shield"))
        .args(["--listen", addr, "--origin", origin, "--name", name])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tiercel-shield starts");
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the shield listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Shield {
        child,
        addr: addr.to_owned(),
    }
}

/// GET through the edge with the site's host; `(status, cache-status)`, or `None` when the
/// exchange itself failed.
async fn get(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: String,
) -> Option<(u16, String)> {
    let req = Request::get(url)
        .header("host", "site.example")
        .body(Full::default())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let cache_status = resp
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    resp.into_body().collect().await.ok()?;
    Some((status, cache_status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shield_killed_under_load_fails_no_request_after_a_second_and_gets_its_keys_back() {
    let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addrs = [free_addr(), free_addr()];
    let mut shields = [
        Some(spawn_shield(&addrs[0], "shield-0", &origin.url()).await),
        Some(spawn_shield(&addrs[1], "shield-1", &origin.url()).await),
    ];
    let mut cfg = NodeConfig::defaults(Role::Edge);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.shields = shields
        .iter()
        .flatten()
        .map(|s| format!("http://{}", s.addr))
        .collect();
    cfg.origin_fallback = false;
    let edge = node::start(Role::Edge, &cfg).await.expect("edge starts");
    let base = format!("http://{}", edge.listen.unwrap());

    // Eight clients ask for cold objects without pause for 3 s; shield-0 dies at 1 s.
    let started = Instant::now();
    let outcomes = Arc::new(outcome_log::Log::default());
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let base = base.clone();
        let outcomes = outcomes.clone();
        workers.spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http();
            let mut n = 0;
            while started.elapsed() < Duration::from_secs(3) {
                let url = format!("{base}/load/{w}/{n}?size=2000&cc=max-age%3D60");
                let ok = matches!(get(&client, url).await, Some((200, _)));
                outcomes.push(started.elapsed(), ok);
                n += 1;
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = started.elapsed();
    if let Some(mut s) = shields[0].take() {
        s.child.kill().unwrap(); // SIGKILL: no goodbye, connections reset
        s.child.wait().unwrap();
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let log = outcomes.take();
    let total = log.len();
    let failures: Vec<Duration> = log.iter().filter(|(_, ok)| !ok).map(|(t, _)| *t).collect();
    let window = failures
        .iter()
        .map(|t| t.saturating_sub(killed_at))
        .max()
        .unwrap_or_default();
    eprintln!(
        "{total} requests, {} failed, last failure {window:?} after the kill",
        failures.len()
    );
    assert!(total > 100, "the load ran ({total} requests)");
    assert!(
        window <= Duration::from_secs(1),
        "a request failed {window:?} after the shield died"
    );

    // shield-0 returns on the same address: once probed, keys that rank it first go back.
    shields[0] = Some(spawn_shield(&addrs[0], "shield-0", &origin.url()).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut via_returned = 0;
    for i in 0..40 {
        let (status, cs) = get(&client, format!("{base}/back/{i}?size=10&cc=max-age%3D60"))
            .await
            .expect("answered");
        assert_eq!(status, 200);
        if cs.starts_with("shield-0;") {
            via_returned += 1;
        }
    }
    assert!(
        via_returned > 5,
        "{via_returned} of 40 keys went back to shield-0"
    );
    edge.shutdown().await;
    origin.shutdown().await;
}

/// A tiny append-only log shared by the workers (std only).
mod outcome_log {
    use std::sync::Mutex;
    use std::time::Duration;

    #[derive(Default)]
    pub struct Log(Mutex<Vec<(Duration, bool)>>);

    impl Log {
        pub fn push(&self, at: Duration, ok: bool) {
            if let Ok(mut v) = self.0.lock() {
                v.push((at, ok));
            }
        }

        pub fn take(&self) -> Vec<(Duration, bool)> {
            self.0
                .lock()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default()
        }
    }
}
