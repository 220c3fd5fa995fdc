//! The shield tier, in-process: edges pick a shield per key by rendezvous hashing, shields fill
//! from the origin and coalesce, a dead shield's keys fail over to the next shield without a
//! failed request, http and https objects stay apart across tiers, an edge pointed at itself
//! answers 508, and with no shield up the origin stands in when allowed. A service's misses go
//! through the shield to the service's own origin pool.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::Request;
use http_body_util::Full;
use tiercel_cluster::config::{NodeArgs, NodeConfig, Role};
use tiercel_edge::node::{self, RunningNode};
use tiercel_testbed::origin::{Origin, expected_body};

use support::{Resp, WAIT, h1_client, send, tls_client};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

fn config(role: Role, flags: &[&str]) -> NodeConfig {
    let mut argv = vec!["tiercel"];
    argv.extend_from_slice(flags);
    let args = Args::try_parse_from(argv).expect("flags parse");
    NodeConfig::load(role, &args.node, std::iter::empty()).expect("config loads")
}

struct Tier {
    origin: Origin,
    shields: Vec<RunningNode>,
    edges: Vec<RunningNode>,
}

impl Tier {
    /// `shields` shields in front of a fresh origin, `edges` edges in front of them (no origin
    /// fallback unless `fallback`).
    async fn start(edges: usize, shields: usize, fallback: bool) -> Tier {
        Tier::start_with(edges, shields, fallback, "h2").await
    }

    /// Like [`Tier::start`], edges speaking `protocol` to the shields.
    async fn start_with(edges: usize, shields: usize, fallback: bool, protocol: &str) -> Tier {
        support::init_logs();
        let origin = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let url = origin.url();
        let mut shield_nodes = Vec::new();
        for i in 0..shields {
            let name = format!("shield-{i}");
            let cfg = config(
                Role::Shield,
                &["--listen", "127.0.0.1:0", "--origin", &url, "--name", &name],
            );
            shield_nodes.push(
                node::start(Role::Shield, &cfg)
                    .await
                    .expect("shield starts"),
            );
        }
        let list: Vec<String> = shield_nodes
            .iter()
            .map(|s| format!("http://{}", s.listen.unwrap()))
            .collect();
        let list = list.join(",");
        let mut edge_nodes = Vec::new();
        for i in 0..edges {
            let name = format!("edge-{i}");
            let mut flags = vec![
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
                "--shield",
                &list,
                "--name",
                &name,
            ];
            if fallback {
                flags.extend(["--origin", &url]);
            }
            let mut cfg = config(Role::Edge, &flags);
            cfg.shield_protocol = protocol.to_owned();
            edge_nodes.push(node::start(Role::Edge, &cfg).await.expect("edge starts"));
        }
        Tier {
            origin,
            shields: shield_nodes,
            edges: edge_nodes,
        }
    }

    fn edge_url(&self, i: usize, pq: &str) -> String {
        format!("http://{}{pq}", self.edges[i].listen.unwrap())
    }
}

/// A GET with the site's host name, whichever edge (port) it goes to: every edge then derives
/// the same key, as with real clients of one site.
async fn get(url: String) -> Resp {
    let client = h1_client();
    let req = Request::get(url)
        .header("host", "site.example")
        .body(Full::<Bytes>::default())
        .unwrap();
    send(&client, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_edges_two_shields_fifty_cold_objects_make_fifty_origin_fetches() {
    let t = Arc::new(Tier::start(3, 2, false).await);
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..300 {
        let t = t.clone();
        tasks.spawn(async move {
            let obj = r % 50;
            let pq = format!("/cold/{obj}?size=20000&cc=max-age%3D60&delay_ms=200");
            let resp = get(t.edge_url(r % 3, &pq)).await;
            (pq, resp)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (pq, resp) = done.unwrap();
        assert_eq!(resp.status, 200, "{pq}");
        assert_eq!(resp.body, expected_body(&pq, 20_000), "{pq}");
    }
    assert_eq!(t.origin.hits_prefix("/cold/"), 50);
    // Each key went to one shield, the same from every edge; both shields took some.
    let mut seen = std::collections::HashSet::new();
    for obj in 0..50 {
        let pq = format!("/cold/{obj}?size=20000&cc=max-age%3D60&delay_ms=200");
        let mut names = std::collections::HashSet::new();
        for e in 0..3 {
            let r = get(t.edge_url(e, &pq)).await;
            let status = r.header("cache-status").to_string();
            let shield = status.split(';').next().unwrap_or("").trim().to_string();
            assert!(shield.starts_with("shield-"), "{status}");
            names.insert(shield);
        }
        assert_eq!(names.len(), 1, "{pq}: one shield for every edge");
        seen.extend(names);
    }
    assert_eq!(seen.len(), 2, "both shields hold keys");
    // Edges speak h2 to shields: four multiplexed connections per edge (h2conn::CONNECTIONS),
    // not one per concurrent request.
    for s in &t.shields {
        let text = s.metrics_text();
        let accepted: u64 = support::metric(&text, "tiercel_client_connections_total")
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(accepted <= 12, "{accepted} connections from 3 edges");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shield_that_dies_fails_over_without_a_failed_request() {
    for protocol in ["h2", "http/1.1"] {
        let mut t = Tier::start_with(1, 2, false, protocol).await;
        let mut failed = 0;
        for i in 0..200 {
            if i == 50 {
                // Half the keys were on it: they move to the other shield.
                let dead = t.shields.remove(0);
                dead.shutdown().await;
            }
            let r = get(t.edge_url(0, &format!("/steady/{i}?size=1000&cc=max-age%3D60"))).await;
            if r.status != 200 {
                failed += 1;
            }
        }
        assert_eq!(
            failed, 0,
            "{protocol}: requests failed across the shield's death"
        );
        assert_eq!(t.origin.hits_prefix("/steady/"), 200, "{protocol}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_https_objects_stay_apart_across_tiers() {
    let t = Tier::start(1, 1, false).await;
    let pq = "/scheme?size=100&cc=max-age%3D60";
    let plain = get(t.edge_url(0, pq)).await;
    assert_eq!(plain.status, 200);
    let cert = t.edges[0].certificate.clone().unwrap();
    let tls = tls_client(&cert, false);
    let url = format!(
        "https://localhost:{}{pq}",
        t.edges[0].tls_listen.unwrap().port()
    );
    let req = Request::get(url)
        .header("host", "site.example")
        .body(Full::default())
        .unwrap();
    let secure = send(&tls, req).await;
    assert_eq!(secure.status, 200);
    // The shield keyed each on the scheme the edge saw: two fetches, not one shared object.
    assert_eq!(t.origin.hits(pq), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_is_its_own_shield_answers_508() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let me = format!("http://{listen}");
    let cfg = config(Role::Edge, &["--listen", &listen, "--shield", &me]);
    let edge = node::start(Role::Edge, &cfg).await.unwrap();
    let r = tokio::time::timeout(WAIT, get(format!("{me}/loop")))
        .await
        .expect("no hang");
    assert_eq!(r.status, 508);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_shield_down_the_origin_stands_in_when_allowed() {
    let mut t = Tier::start(1, 1, true).await;
    let shield = format!("http://{}", t.shields[0].listen.unwrap());
    let up = format!("tiercel_shield_up{{shield=\"{shield}\"}}");
    assert!(t.edges[0].metrics_text().contains(&format!("{up} 1")));
    t.shields.remove(0).shutdown().await;
    let r = get(t.edge_url(0, "/fallback?size=10&cc=max-age%3D60")).await;
    assert_eq!(r.status, 200);
    // The failed attempt marked it down.
    assert!(
        t.edges[0].metrics_text().contains(&format!("{up} 0")),
        "{}",
        t.edges[0].metrics_text()
    );
    assert_eq!(t.origin.hits("/fallback?size=10&cc=max-age%3D60"), 1);
    // Without the fallback, the client gets a short 502.
    let mut t = Tier::start(1, 1, false).await;
    t.shields.remove(0).shutdown().await;
    let r = tokio::time::timeout(WAIT, get(t.edge_url(0, "/nofallback")))
        .await
        .unwrap();
    assert_eq!(r.status, 502);
}

#[tokio::test]
async fn a_shield_given_shields_is_refused() {
    let cfg = config(
        Role::Shield,
        &[
            "--listen",
            "127.0.0.1:0",
            "--origin",
            "http://127.0.0.1:9",
            "--shield",
            "http://127.0.0.1:8",
        ],
    );
    let Err(err) = node::start(Role::Shield, &cfg).await else {
        panic!("a shield with shields started");
    };
    assert!(err.to_string().contains("shields"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_fields_tags_and_traces_cross_the_tiers() {
    let t = Tier::start(1, 1, false).await;
    // Not storable for browsers, a minute for the CDN: both tiers store it (RFC 9213).
    let pq = "/targeted?size=100&cc=no-store&cdncc=max-age%3D60&tags=t1,t2";
    let client = h1_client();
    let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let req = Request::get(t.edge_url(0, pq))
        .header("host", "site.example")
        .header("traceparent", trace)
        .body(Full::<Bytes>::default())
        .unwrap();
    let first = send(&client, req).await;
    assert_eq!(first.status, 200);
    let second = get(t.edge_url(0, pq)).await;
    assert!(second.is_hit(), "{}", second.header("cache-status"));
    assert_eq!(t.origin.hits(pq), 1);
    // The edge, facing clients, removes the targeted field and the tags...
    assert!(first.header("cdn-cache-control").is_empty());
    assert!(first.header("surrogate-key").is_empty());
    // ...which the shield passed on to it (a direct look at the shield's answer).
    let shield = format!("http://{}{pq}", t.shields[0].listen.unwrap());
    let direct = get(shield).await;
    assert_eq!(direct.header("surrogate-key"), "t1 t2");
    assert!(direct.header("cdn-cache-control").contains("max-age=60"));
    // The trace went on through both tiers: the origin saw the client's trace id.
    let seen = t.origin.requests();
    let at_origin = seen
        .iter()
        .find(|r| r.target() == pq)
        .and_then(|r| r.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        at_origin.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{at_origin}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_shield_down_the_edge_serves_stale_where_it_may() {
    let mut t = Tier::start(1, 1, false).await;
    let pq = "/stale?size=100&cc=max-age%3D1%2C%20stale-if-error%3D600";
    assert_eq!(get(t.edge_url(0, pq)).await.status, 200);
    t.shields.remove(0).shutdown().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(t.edge_url(0, pq)).await;
    assert_eq!(r.status, 200, "{}", r.header("cache-status"));
    assert!(
        r.cache_status().contains("stale-if-error"),
        "{}",
        r.header("cache-status")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_streams_through_both_tiers_to_twenty_clients_from_one_fetch() {
    let t = Arc::new(Tier::start(1, 1, false).await);
    // 24 MiB, sent slowly enough that every client joins while it is still arriving.
    let size = 24 * 1024 * 1024;
    let pq = format!("/big?size={size}&cc=max-age%3D60&chunk=262144&chunk_ms=5");
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let t = t.clone();
        let pq = pq.clone();
        clients.spawn(async move { get(t.edge_url(0, &pq)).await });
    }
    let want = expected_body(&pq, size);
    while let Some(r) = clients.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body == want, "body differs ({} bytes)", r.body.len());
    }
    assert_eq!(t.origin.hits(&pq), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_is_not_held_to_one_client_connections_fill_cap_at_its_shield() {
    // 300 concurrent cold misses from one edge share its few connections to the shield: the
    // shield must not cap them at 64 per connection as it would a browser's.
    let t = Arc::new(Tier::start(1, 1, false).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let t = t.clone();
        tasks.spawn(async move {
            get(t.edge_url(
                0,
                &format!("/wide/{i}?size=100&cc=max-age%3D60&delay_ms=1500"),
            ))
            .await
            .status
        });
    }
    let mut refused = 0;
    while let Some(status) = tasks.join_next().await {
        if status.unwrap() != 200 {
            refused += 1;
        }
    }
    assert_eq!(refused, 0);
    assert_eq!(t.origin.hits_prefix("/wide/"), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shield_weights_set_their_share_of_keys() {
    let t = Tier::start(0, 2, false).await;
    let a = format!("http://{}#weight=3", t.shields[0].listen.unwrap());
    let b = format!("http://{}", t.shields[1].listen.unwrap());
    let list = format!("{a},{b}");
    let cfg = config(
        Role::Edge,
        &[
            "--listen",
            "127.0.0.1:0",
            "--shield",
            &list,
            "--name",
            "edge-w",
        ],
    );
    let edge = node::start(Role::Edge, &cfg).await.unwrap();
    let mut heavy = 0;
    for i in 0..200 {
        let r = get(format!(
            "http://{}/w/{i}?size=10&cc=max-age%3D60",
            edge.listen.unwrap()
        ))
        .await;
        assert_eq!(r.status, 200);
        if r.header("cache-status").starts_with("shield-0;") {
            heavy += 1;
        }
    }
    // Weight 3 against 1: three quarters of the keys, within sampling noise.
    assert!(
        (130..=170).contains(&heavy),
        "{heavy} of 200 keys on the weight-3 shield"
    );
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_seek_through_both_tiers_asks_the_origin_for_one_chunk() {
    let t = Tier::start(3, 2, false).await;
    let size: usize = 64 * 1024 * 1024;
    let pq = format!("/film?size={size}&ranges=1&etag=v1&cc=max-age%3D600");
    let full = expected_body(&pq, size);
    let client = h1_client();
    let seek = |edge: usize, range: &'static str| {
        let req = Request::get(t.edge_url(edge, &pq))
            .header("host", "site.example")
            .header("range", range)
            .body(Full::<Bytes>::default())
            .unwrap();
        send(&client, req)
    };
    // Three edges seek to the same minute: each asks its shield for one chunk, and the shield
    // that owns the key asks the origin once.
    for edge in 0..3 {
        let r = seek(edge, "bytes=40000000-40000999").await;
        assert_eq!(r.status, 206);
        assert_eq!(r.body, full.slice(40_000_000..40_001_000));
        assert_eq!(
            r.header("content-range"),
            "bytes 40000000-40000999/67108864"
        );
    }
    assert_eq!(t.origin.ranges_asked("/film"), ["bytes=39845888-40894463"]);
    // The edges stored it in part: the same seek again is a hit at the edge.
    let r = seek(1, "bytes=40000000-40000999").await;
    assert!(r.is_hit(), "{}", r.cache_status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_misses_reach_its_pool_through_the_shield() {
    support::init_logs();
    let default = Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (o1, o2) = (
        Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap(),
        Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap(),
    );
    // The same service on both tiers, as the purge log would give them.
    let service = || {
        let mut t = toml::Table::new();
        t.insert("name".into(), "svc".into());
        t.insert("hosts".into(), toml::Value::Array(vec!["svc.test".into()]));
        t.insert(
            "origins".into(),
            toml::Value::Array(vec![o1.url().into(), o2.url().into()]),
        );
        vec![t]
    };
    let mut cfg = config(
        Role::Shield,
        &[
            "--listen",
            "127.0.0.1:0",
            "--origin",
            &default.url(),
            "--name",
            "shield-s",
        ],
    );
    cfg.services = service();
    let shield = node::start(Role::Shield, &cfg)
        .await
        .expect("shield starts");
    let shield_url = format!("http://{}", shield.listen.unwrap());
    let mut cfg = config(
        Role::Edge,
        &[
            "--listen",
            "127.0.0.1:0",
            "--shield",
            &shield_url,
            "--name",
            "edge-s",
        ],
    );
    cfg.services = service();
    let edge = node::start(Role::Edge, &cfg).await.expect("edge starts");
    let client = h1_client();
    let ask = |pq: String| {
        Request::get(format!("http://{}{pq}", edge.listen.unwrap()))
            .header("host", "svc.test")
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    for i in 0..10 {
        let pq = format!("/s/{i}?size=100&cc=max-age%3D60");
        let r = send(&client, ask(pq.clone())).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, expected_body(&pq, 100));
        assert!(send(&client, ask(pq)).await.is_hit());
    }
    // The shield's pool shared the misses; the shield's own --origin saw none of them.
    assert_eq!((o1.hits_prefix("/s/"), o2.hits_prefix("/s/")), (5, 5));
    assert_eq!(default.total_hits(), 0);
    edge.shutdown().await;
    shield.shutdown().await;
}
