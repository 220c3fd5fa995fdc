//! An `https://` origin: certificates verified against `origin_ca_file` (or Mozilla's roots,
//! which do not know a self-signed origin: 502), SNI from the origin's name. The TLS origin here
//! is another Tiercel node serving a freshly made certificate for `localhost`.

mod support;

use std::time::Duration;

use support::{Edge, config_from_flags};
use tiercel_cluster::config::Role;
use tiercel_edge::node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_origin_is_verified_against_the_configured_ca() {
    // A TLS "origin": a node with a certificate for localhost, in front of the demo origin.
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("origin.pem");
    let key = dir.path().join("origin-key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let inner = Edge::start_cfg(&[], |c| {
        c.cert = Some(cert.clone());
        c.key = Some(key.clone());
        c.name = "tls-origin".into();
    })
    .await;
    let https = format!("https://localhost:{}", inner.tls_addr().port());

    // Trusting the origin's certificate: served.
    let mut cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", &https]);
    cfg.origin_ca_file = Some(cert.clone());
    let trusting = node::start(Role::Edge, &cfg).await.unwrap();
    let url = format!(
        "http://{}/over-tls?size=100&cc=max-age%3D60",
        trusting.listen.unwrap()
    );
    let r = support::send(
        &inner.client,
        http::Request::get(url)
            .body(http_body_util::Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 100);
    assert!(
        r.header("cache-status").contains("tls-origin"),
        "{}",
        r.header("cache-status")
    );

    // Mozilla's roots do not know it: 502, and the origin never saw the request.
    let cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", &https]);
    let default_roots = node::start(Role::Edge, &cfg).await.unwrap();
    let url = format!(
        "http://{}/untrusted?size=100",
        default_roots.listen.unwrap()
    );
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        support::send(
            &inner.client,
            http::Request::get(url)
                .body(http_body_util::Full::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(inner.origin.hits_prefix("/untrusted"), 0);

    // A CA file that does not exist is a start-up error naming it.
    let mut cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", &https]);
    cfg.origin_ca_file = Some(dir.path().join("missing.pem"));
    let Err(err) = node::start(Role::Edge, &cfg).await else {
        panic!("started without its CA file");
    };
    assert!(err.to_string().contains("missing.pem"), "{err}");
    trusting.shutdown().await;
    default_roots.shutdown().await;
    inner.shutdown().await;
}
