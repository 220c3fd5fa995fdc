//! How a node reaches its origin: `origin_protocol` (HTTP/1.1, HTTP/2 picked by ALPN, or HTTP/2
//! only) and `origin_addresses` (several servers behind one name). The origins here are small
//! TLS servers that offer the ALPN protocols a test chooses and record, per request, the HTTP
//! version, the site it named and which server it reached.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use support::{config_from_flags, h1_client, send};
use tiercel_cluster::config::Role;
use tiercel_edge::node;

/// What one test origin saw.
#[derive(Default)]
struct Seen {
    /// (HTTP version, the site the request named: `:authority` on h2, `Host` on h1).
    requests: Mutex<Vec<(http::Version, String)>>,
    connections: AtomicUsize,
}

/// A TLS origin offering `alpn`, certificate `ck`, answering every GET with a cacheable body.
async fn tls_origin(
    ck: &rcgen::CertifiedKey<rcgen::KeyPair>,
    alpn: &[&[u8]],
) -> (SocketAddr, Arc<Seen>) {
    let cert = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                seen.connections.fetch_add(1, Ordering::SeqCst);
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let site = req
                            .uri()
                            .authority()
                            .map(|a| a.to_string())
                            .or_else(|| {
                                req.headers()
                                    .get(http::header::HOST)
                                    .and_then(|h| h.to_str().ok().map(str::to_owned))
                            })
                            .unwrap_or_default();
                        seen.requests.lock().push((req.version(), site));
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .header("cache-control", "max-age=60")
                                    .body(Full::new(Bytes::from_static(b"from the origin")))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn cert_for(names: &[&str]) -> (rcgen::CertifiedKey<rcgen::KeyPair>, tempfile::TempDir) {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ck.cert.pem()).unwrap();
    (ck, dir)
}

/// An edge in front of `origin`, with `tweak` applied to its configuration.
async fn edge(
    origin: &str,
    ca: &std::path::Path,
    tweak: impl FnOnce(&mut tiercel_cluster::config::NodeConfig),
) -> node::RunningNode {
    support::init_logs();
    let mut cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", origin]);
    cfg.origin_ca_file = Some(ca.to_path_buf());
    tweak(&mut cfg);
    node::start(Role::Edge, &cfg).await.expect("edge starts")
}

/// GETs `path` for site `host` through the edge at `addr`.
async fn get(addr: SocketAddr, host: &str, path: String) -> support::Resp {
    send(
        &h1_client(),
        Request::get(format!("http://{addr}{path}"))
            .header("host", host)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_speaks_h2_to_an_origin_that_picks_it_and_names_the_site() {
    let (ck, dir) = cert_for(&["localhost"]);
    let (addr, seen) = tls_origin(&ck, &[b"h2", b"http/1.1"]).await;
    let origin = format!("https://localhost:{}", addr.port());
    let node = edge(&origin, &dir.path().join("ca.pem"), |c| {
        c.origin_protocol = "auto".into();
    })
    .await;
    let listen = node.listen.unwrap();
    let gets = (0..20).map(|i| get(listen, "www.site.test", format!("/o/{i}")));
    for r in futures_util::future::join_all(gets).await {
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"from the origin");
    }
    let requests = seen.requests.lock().clone();
    assert_eq!(requests.len(), 20);
    for (version, site) in &requests {
        assert_eq!(*version, http::Version::HTTP_2);
        assert_eq!(site, "www.site.test", ":authority names the site");
    }
    // Twenty concurrent misses share the few multiplexed connections.
    let conns = seen.connections.load(Ordering::SeqCst);
    assert!((1..=4).contains(&conns), "{conns} connections");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_http1_when_the_origin_declines_h2_and_h2_only_fails() {
    let (ck, dir) = cert_for(&["localhost"]);
    let (addr, seen) = tls_origin(&ck, &[b"http/1.1"]).await;
    let origin = format!("https://localhost:{}", addr.port());
    let ca = dir.path().join("ca.pem");

    let auto = edge(&origin, &ca, |c| c.origin_protocol = "auto".into()).await;
    for i in 0..5 {
        let r = get(auto.listen.unwrap(), "www.site.test", format!("/a/{i}")).await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(&r.body[..], b"from the origin");
    }
    let requests = seen.requests.lock().clone();
    assert_eq!(requests.len(), 5, "the declined offer lost no request");
    for (version, site) in &requests {
        assert_eq!(*version, http::Version::HTTP_11);
        assert_eq!(site, "www.site.test", "Host names the site");
    }

    let strict = edge(&origin, &ca, |c| c.origin_protocol = "h2".into()).await;
    let r = get(strict.listen.unwrap(), "www.site.test", "/strict".into()).await;
    assert_eq!(r.status, 502, "h2 only, and the origin does not speak it");
    assert_eq!(seen.requests.lock().len(), 5);
    auto.shutdown().await;
    strict.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_addresses_spread_connections_and_skip_a_dead_one() {
    let (ck, dir) = cert_for(&["origin.test"]);
    let (a, seen_a) = tls_origin(&ck, &[b"http/1.1"]).await;
    let (b, seen_b) = tls_origin(&ck, &[b"http/1.1"]).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // The name is never resolved: it names the origin in SNI and in the certificate check.
    let node = edge("https://origin.test", &dir.path().join("ca.pem"), |c| {
        c.origin_addresses = vec![a.to_string(), dead.to_string(), b.to_string()];
    })
    .await;
    // Concurrent misses need several connections; each takes the list one step further on.
    let gets = (0..30).map(|i| get(node.listen.unwrap(), "www.site.test", format!("/s/{i}")));
    for r in futures_util::future::join_all(gets).await {
        assert_eq!(r.status, 200);
    }
    let (na, nb) = (seen_a.requests.lock().len(), seen_b.requests.lock().len());
    assert_eq!(na + nb, 30);
    assert!(
        seen_a.connections.load(Ordering::SeqCst) > 0
            && seen_b.connections.load(Ordering::SeqCst) > 0,
        "both servers got connections ({na} and {nb} requests)"
    );
    node.shutdown().await;
}

#[test]
fn origin_addresses_are_checked_with_the_config() {
    let load = |origin: &str, addrs: &[&str]| {
        let mut cfg = config_from_flags(&["--origin", origin]);
        cfg.origin_addresses = addrs.iter().map(|s| s.to_string()).collect();
        cfg.validate().map_err(|e| e.to_string())
    };
    assert!(load("https://origin.test", &["192.0.2.1", "[2001:db8::1]:443"]).is_ok());
    let e = load("https://origin.test", &["not-an-ip"]).unwrap_err();
    assert!(e.contains("origin_addresses[0]"), "{e}");
    let e = load("https://192.0.2.9", &["192.0.2.1"]).unwrap_err();
    assert!(
        e.contains("origin_addresses") && e.contains("host name"),
        "{e}"
    );
    let e = load("https://origin.test:8443", &["192.0.2.1:9000"]).unwrap_err();
    assert!(
        e.contains("origin_addresses[0]") && e.contains("8443"),
        "{e}"
    );
    let mut cfg = config_from_flags(&["--origin", "http://o.test"]);
    cfg.origin_protocol = "h3".into();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("origin_protocol"), "{e}");
}
