//! Services on a real edge: host routing to each service's own origins, one cache per service,
//! 421 for unknown hosts, origin pools (sharing and failover), access rules, rate limits,
//! header and key rules, and each host's own certificate by SNI. Real origins on loopback.

mod support;

use std::time::Duration;

use http::{Method, Request};
use http_body_util::Full;
use rustls::pki_types::pem::PemObject;
use support::*;
use tiercel_cluster::config::{NodeConfig, Role};
use tiercel_edge::node;
use tiercel_testbed::origin::{Origin, expected_body};

async fn origin() -> Origin {
    Origin::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

/// `[[services]]` tables from TOML text (each `[[services]]` block).
fn services(text: &str) -> Vec<toml::Table> {
    #[derive(serde::Deserialize)]
    struct File {
        services: Vec<toml::Table>,
    }
    toml::from_str::<File>(text)
        .expect("services TOML")
        .services
}

/// GET `pq` on the edge with `Host: host`.
async fn get_host(e: &Edge, host: &str, pq: &str) -> Resp {
    e.send(
        Request::get(e.url(pq))
            .header("host", host)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_route_by_host_to_their_own_origins_and_cache_apart() {
    let (a, b) = (origin().await, origin().await);
    let table = services(&format!(
        r#"
        [[services]]
        name = "site-a"
        hosts = ["a.test", "*.a.test"]
        origins = ["{}"]
        [[services]]
        name = "site-b"
        hosts = ["b.test"]
        origins = ["{}"]
        "#,
        a.url(),
        b.url()
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    let pq = "/same/path?size=300&cc=max-age%3D60";
    for host in ["a.test", "img.a.test", "b.test", "other.test"] {
        let r = get_host(&e, host, pq).await;
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.body, expected_body(pq, 300));
        assert!(!r.is_hit(), "{host}: {}", r.cache_status());
    }
    // a.test and img.a.test are two URLs of one service: two fetches from its origin.
    assert_eq!(a.hits(pq), 2);
    assert_eq!(b.hits(pq), 1);
    // A host no service claims goes to the node's --origin.
    assert_eq!(e.origin.hits(pq), 1);
    // Each is now a hit on its own entry.
    for host in ["a.test", "b.test", "other.test"] {
        let r = get_host(&e, host, pq).await;
        assert!(r.is_hit(), "{host}: {}", r.cache_status());
    }
    assert_eq!((a.hits(pq), b.hits(pq), e.origin.hits(pq)), (2, 1, 1));
    // The origin is asked with the client's host.
    let asked = a.requests();
    assert!(asked.iter().any(|r| r.headers["host"] == "img.a.test"));
    let text = e.node.metrics_text();
    assert!(
        text.contains("tiercel_site_requests_total{site=\"site-a\"} 3"),
        "{text}"
    );
    e.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// An edge with services only: no --origin.
async fn services_only(table: Vec<toml::Table>) -> node::RunningNode {
    let mut cfg: NodeConfig = config_from_flags(&["--listen", "127.0.0.1:0"]);
    cfg.services = table;
    node::start(Role::Edge, &cfg).await.expect("edge starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_no_service_claims_gets_421_when_there_is_no_default_origin() {
    init_logs();
    let a = origin().await;
    let n = services_only(services(&format!(
        "[[services]]\nname = \"a\"\nhosts = [\"a.test\"]\norigins = [\"{}\"]\n",
        a.url()
    )))
    .await;
    let client = h1_client();
    let ask = |host: &'static str| {
        Request::get(format!("http://{}/x?size=10", n.listen.unwrap()))
            .header("host", host)
            .body(Full::default())
            .unwrap()
    };
    let r = send(&client, ask("nobody.test")).await;
    assert_eq!(r.status, 421);
    assert!(String::from_utf8_lossy(&r.body).contains("misdirected"));
    assert_eq!(a.total_hits(), 0);
    let r = send(&client, ask("a.test")).await;
    assert_eq!(r.status, 200);
    assert_eq!(a.hits("/x?size=10"), 1);
    n.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_two_shares_the_load_and_with_one_killed_every_request_succeeds() {
    let (o1, o2) = (origin().await, origin().await);
    let table = services(&format!(
        "[[services]]\nname = \"pool\"\nhosts = [\"p.test\"]\norigins = [\"{}\", \"{}\"]\n",
        o1.url(),
        o2.url()
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    for i in 0..20 {
        let r = get_host(&e, "p.test", &format!("/p/{i}?size=100")).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        (o1.hits_prefix("/p/"), o2.hits_prefix("/p/")),
        (10, 10),
        "round robin"
    );
    let o2_url = o2.url();
    o2.shutdown().await;
    for i in 20..60 {
        let r = get_host(&e, "p.test", &format!("/p/{i}?size=100")).await;
        assert_eq!(r.status, 200, "request {i} with one origin down");
    }
    assert_eq!(o1.hits_prefix("/p/"), 50);
    let text = e.node.metrics_text();
    assert!(
        text.contains(&format!(
            "tiercel_upstream_up{{site=\"pool\",member=\"{}\"}} 0",
            o2_url
        )),
        "{text}"
    );
    e.shutdown().await;
    o1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_origin_down_the_pool_answers_502_at_once_or_stale_if_error() {
    let o = origin().await;
    let url = o.url();
    let table = services(&format!(
        "[[services]]\nname = \"dead\"\nhosts = [\"d.test\"]\norigins = [\"{url}\"]\n"
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    let kept = "/kept?size=10&cc=max-age%3D1%2C%20stale-if-error%3D60";
    assert_eq!(get_host(&e, "d.test", kept).await.status, 200);
    o.shutdown().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get_host(&e, "d.test", "/x").await;
    assert_eq!(r.status, 502);
    // The member is out of the pool now: the next miss does not even try it.
    let text = e.node.metrics_text();
    assert!(
        text.contains(&format!(
            "tiercel_upstream_up{{site=\"dead\",member=\"{url}\"}} 0"
        )),
        "{text}"
    );
    let r = get_host(&e, "d.test", "/y").await;
    assert_eq!(r.status, 502);
    // A stale object that allows it is served instead of the error.
    let r = get_host(&e, "d.test", kept).await;
    assert_eq!(r.status, 200, "{}", r.cache_status());
    assert_eq!(r.body, expected_body(kept, 10));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_refuse_addresses_and_methods_and_the_rate_limit_answers_429() {
    let o = origin().await;
    let table = services(&format!(
        r#"
        [[services]]
        name = "closed"
        hosts = ["closed.test"]
        origins = ["{0}"]
        access = {{ deny = ["127.0.0.0/8"] }}
        [[services]]
        name = "getonly"
        hosts = ["get.test"]
        origins = ["{0}"]
        access = {{ allow = ["127.0.0.1/32", "::1"], methods = ["GET", "HEAD"] }}
        [[services]]
        name = "slow"
        hosts = ["rate.test"]
        origins = ["{0}"]
        rate_limit = {{ per_ip = "2/s", burst = 3 }}
        "#,
        o.url()
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    let r = get_host(&e, "closed.test", "/c").await;
    assert_eq!(r.status, 403);
    let r = get_host(&e, "get.test", "/g?size=10").await;
    assert_eq!(r.status, 200);
    let post = Request::builder()
        .method(Method::POST)
        .uri(e.url("/g"))
        .header("host", "get.test")
        .body(Full::from("x"))
        .unwrap();
    let r = e.send(post).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), "GET, HEAD");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = get_host(&e, "rate.test", "/r?size=10&cc=max-age%3D60").await;
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            let wait: u64 = r.header("retry-after").parse().unwrap();
            assert!((1..=2).contains(&wait), "{wait}");
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    // Nothing refused reached the origin.
    assert_eq!(o.hits("/c"), 0);
    assert_eq!(o.hits("/g"), 0);
    let text = e.node.metrics_text();
    for want in [
        "tiercel_site_denied_total{site=\"closed\"} 1",
        "tiercel_site_method_refused_total{site=\"getonly\"} 1",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    let limited = text
        .lines()
        .find_map(|l| l.strip_prefix("tiercel_site_rate_limited_total{site=\"slow\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(limited.is_some_and(|n| n >= 1), "{text}");
    e.shutdown().await;
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_key_rules_shape_requests_responses_and_keys() {
    let o = origin().await;
    let table = services(&format!(
        r#"
        [[services]]
        name = "tidy"
        hosts = ["t.test"]
        origins = ["{}"]
        key = {{ query = {{ allow = ["v"] }}, headers = ["x-device"] }}
        request_headers = {{ set = {{ x-site = "tidy" }}, remove = ["cookie"] }}
        response_headers = {{ set = {{ x-served-by = "tiercel" }}, remove = ["server", "x-powered-by"] }}
        "#,
        o.url()
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    let pq = |extra: &str| {
        format!("/k?size=50&cc=max-age%3D60&h=Server%3AApache&h=X-Powered-By%3APHP{extra}")
    };
    let ask = |pq: String, device: &'static str| {
        Request::get(e.url(&pq))
            .header("host", "t.test")
            .header("cookie", "session=1")
            .header("x-device", device)
            .body(Full::default())
            .unwrap()
    };
    let r = e.send(ask(pq("&utm=1"), "phone")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), "");
    assert_eq!(r.header("x-powered-by"), "");
    assert_eq!(r.header("x-served-by"), "tiercel");
    let seen = o.requests().pop().unwrap();
    assert_eq!(seen.headers["x-site"], "tidy");
    assert!(!seen.headers.contains_key("cookie"));
    // `utm` is not in the key: another value is the same object; `v` is.
    let r = e.send(ask(pq("&utm=2"), "phone")).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(r.header("server"), "", "rules apply to hits too");
    let r = e.send(ask(pq("&utm=1&v=2"), "phone")).await;
    assert!(!r.is_hit());
    // So is X-Device.
    let r = e.send(ask(pq("&utm=1"), "tablet")).await;
    assert!(!r.is_hit(), "{}", r.cache_status());
    assert_eq!(o.hits_prefix("/k"), 3);
    e.shutdown().await;
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_service_in_the_file_is_refused_naming_its_key() {
    let mut cfg: NodeConfig =
        config_from_flags(&["--listen", "127.0.0.1:0", "--origin", "http://127.0.0.1:9"]);
    cfg.services = services(
        "[[services]]\nname = \"a\"\nhosts = [\"a.test\"]\norigins = [{ url = \"http://x\", weight = 0 }]\n",
    );
    let err = node::start(Role::Edge, &cfg).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "config error: services[0].origins[0].weight: must be between 1 and 1000, got 0"
    );
}

/// A CA and a leaf certificate it signed for `names`: (CA PEM, leaf PEM, leaf key PEM).
fn ca_and_leaf(ca_name: &str, names: &[&str]) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// curl's verdict on `https://host:port/pq` resolved to loopback and verified against `ca`:
/// the status code, or curl's exit code when it failed.
async fn curl(host: &str, port: u16, ca: &std::path::Path, pq: &str) -> Result<String, i32> {
    curl_with_host(host, port, ca, pq, None).await
}

/// [`curl`], sending `host_header` as Host when given (the connection's SNI stays `host`).
async fn curl_with_host(
    host: &str,
    port: u16,
    ca: &std::path::Path,
    pq: &str,
    host_header: Option<&str>,
) -> Result<String, i32> {
    let mut cmd = tokio::process::Command::new("curl");
    if let Some(h) = host_header {
        cmd.args(["-H", &format!("Host: {h}")]);
    }
    let out = cmd
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://{host}:{port}{pq}"))
        .output()
        .await
        .expect("curl runs");
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        code => Err(code.unwrap_or(-1)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_is_served_its_own_services_certificate_by_sni_over_tcp_and_quic() {
    let o = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cas = Vec::new();
    let mut text = String::new();
    for (svc, hosts) in [("a", ["a.test", "*.a.test"]), ("b", ["b.test", "b2.test"])] {
        let (ca, cert, key) = ca_and_leaf(&format!("CA {svc}"), &hosts);
        let path = |f: &str| dir.path().join(format!("{svc}-{f}.pem"));
        std::fs::write(path("ca"), ca).unwrap();
        std::fs::write(path("cert"), cert).unwrap();
        std::fs::write(path("key"), key).unwrap();
        cas.push(path("ca"));
        text += &format!(
            "[[services]]\nname = \"{svc}\"\nhosts = [\"{}\", \"{}\"]\norigins = [\"{}\"]\ntls = {{ cert = \"{}\", key = \"{}\" }}\n",
            hosts[0],
            hosts[1],
            o.url(),
            path("cert").display(),
            path("key").display()
        );
    }
    let e = Edge::start_cfg(&[], |c| c.services = services(&text)).await;
    let port = e.tls_addr().port();
    let pq = "/tls?size=10";
    for (host, ca) in [
        ("a.test", &cas[0]),
        ("img.a.test", &cas[0]),
        ("b2.test", &cas[1]),
    ] {
        assert_eq!(
            curl(host, port, ca, pq).await.as_deref(),
            Ok("200"),
            "{host}"
        );
    }
    // Each host gets its own certificate, not the other service's nor the node's.
    assert_eq!(curl("a.test", port, &cas[1], pq).await, Err(60));
    assert_eq!(curl("b.test", port, &cas[0], pq).await, Err(60));
    assert_eq!(curl("localhost", port, &cas[0], pq).await, Err(60));

    // A connection set up for a.test (SNI, and a's certificate) carries a.test's hosts only:
    // b.test's Host through it is 421, img.a.test's is served.
    let fronted = |host: &'static str| {
        let ca = cas[0].clone();
        async move { curl_with_host("a.test", port, &ca, pq, Some(host)).await }
    };
    assert_eq!(fronted("b.test").await.as_deref(), Ok("421"));
    assert_eq!(fronted("img.a.test").await.as_deref(), Ok("200"));
    // HTTP/3 picks by SNI the same way.
    let ca_der = rustls::pki_types::CertificateDer::from_pem_file(&cas[0]).unwrap();
    let tls = tls_config(&ca_der, &[b"h3"]);
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    let quic = e.node.quic_listen.unwrap();
    let conn = tokio::time::timeout(WAIT, endpoint.connect(quic, "a.test").unwrap())
        .await
        .unwrap()
        .expect("a.test's certificate verifies against CA a over QUIC");
    conn.close(0u32.into(), b"done");
    let refused = tokio::time::timeout(WAIT, endpoint.connect(quic, "b.test").unwrap())
        .await
        .unwrap();
    let err = refused.expect_err("b.test is not served a certificate CA a signed");
    assert!(
        err.to_string().to_ascii_lowercase().contains("certificate"),
        "{err}"
    );
    e.shutdown().await;
    o.shutdown().await;
}

/// Decodes a body in `coding` (br, zstd, gzip) with an independent reader.
async fn decoded(coding: &str, body: &[u8]) -> Vec<u8> {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match coding {
        "br" => BrotliDecoder::new(body).read_to_end(&mut out).await,
        "zstd" => ZstdDecoder::new(body).read_to_end(&mut out).await,
        "gzip" => GzipDecoder::new(body).read_to_end(&mut out).await,
        other => panic!("coding {other:?}"),
    }
    .expect("decodes");
    out
}

async fn get_ae(e: &Edge, host: &str, pq: &str, ae: Option<&str>, extra: &[(&str, &str)]) -> Resp {
    let mut b = Request::get(e.url(pq)).header("host", host);
    if let Some(ae) = ae {
        b = b.header("accept-encoding", ae);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    e.send(b.body(Full::default()).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_compressed_per_client_from_one_origin_fetch_and_stored_encoded() {
    let o = origin().await;
    let table = services(&format!(
        "[[services]]\nname = \"z\"\nhosts = [\"z.test\"]\norigins = [\"{}\"]\ncompress = {{ min_size = 1000 }}\n",
        o.url()
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    let pq = "/page.html?size=20000&cc=max-age%3D60&etag=v1&h=Content-Type%3Atext%2Fhtml";
    let identity = expected_body(pq, 20000);
    for (ae, coding) in [
        (Some("gzip, deflate, br"), "br"),
        (Some("zstd, gzip;q=0.5"), "zstd"),
        (Some("gzip"), "gzip"),
        (Some("br;q=0.2, gzip;q=0.9"), "gzip"),
    ] {
        let r = get_ae(&e, "z.test", pq, ae, &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), coding, "{ae:?}");
        assert!(
            r.header("vary")
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        assert_eq!(r.header("etag"), format!("\"v1-{coding}\""));
        assert_eq!(decoded(coding, &r.body).await, identity, "{coding}");
    }
    // No Accept-Encoding, or nothing we make: identity, with Vary all the same.
    for ae in [None, Some("deflate")] {
        let r = get_ae(&e, "z.test", pq, ae, &[]).await;
        assert_eq!(r.header("content-encoding"), "");
        assert!(
            r.header("vary")
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        assert_eq!(r.body, identity);
    }
    // A client revalidating its br copy gets 304 naming that copy; asking for gzip with the
    // br copy's tag, it gets the gzip body.
    let r = get_ae(
        &e,
        "z.test",
        pq,
        Some("br"),
        &[("if-none-match", "\"v1-br\"")],
    )
    .await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), "\"v1-br\"");
    assert!(
        r.header("vary")
            .to_ascii_lowercase()
            .contains("accept-encoding")
    );
    let r = get_ae(
        &e,
        "z.test",
        pq,
        Some("gzip"),
        &[("if-none-match", "\"v1-br\"")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), "gzip");
    // A range is served from the identity form.
    let r = get_ae(&e, "z.test", pq, Some("br"), &[("range", "bytes=10-19")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), "");
    assert_eq!(r.body, identity.slice(10..20));
    // One origin fetch for every coding.
    assert_eq!(o.hits(pq), 1);
    // The second client of a coding gets the stored encoded form, with its length.
    let r = get_ae(&e, "z.test", pq, Some("br"), &[]).await;
    assert_eq!(r.header("content-length"), r.body.len().to_string());
    assert_eq!(decoded("br", &r.body).await, identity);
    let text = e.node.metrics_text();
    assert!(
        metric(&text, "tiercel_encoded_hits_total").is_some_and(|v| v != "0"),
        "{text}"
    );
    // Small bodies and other types are left alone.
    let small = "/s.txt?size=100&cc=max-age%3D60&h=Content-Type%3Atext%2Fplain";
    assert_eq!(
        get_ae(&e, "z.test", small, Some("br"), &[])
            .await
            .header("content-encoding"),
        ""
    );
    let png = "/i.png?size=5000&cc=max-age%3D60&h=Content-Type%3Aimage%2Fpng";
    let r = get_ae(&e, "z.test", png, Some("br"), &[]).await;
    assert_eq!(r.header("content-encoding"), "");
    assert!(
        !r.header("vary")
            .to_ascii_lowercase()
            .contains("accept-encoding")
    );
    e.shutdown().await;
    o.shutdown().await;
}

/// A real origin on loopback that only ever answers gzip.
async fn gzip_only_origin(
    body: Vec<u8>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use async_compression::tokio::bufread::GzipEncoder;
    use tokio::io::AsyncReadExt;
    let mut gz = Vec::new();
    GzipEncoder::new(&body[..])
        .read_to_end(&mut gz)
        .await
        .unwrap();
    let gz = bytes::Bytes::from(gz);
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (gz, counter) = (gz.clone(), counter.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let resp = http::Response::builder()
                        .header("content-type", "application/json")
                        .header("content-encoding", "gzip")
                        .header("cache-control", "max-age=60")
                        .body(Full::new(gz.clone()))
                        .unwrap();
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_only_origin_is_decoded_for_clients_that_cannot_read_gzip() {
    let json: Vec<u8> = format!("{{\"items\":[{}]}}", "\"x\",".repeat(3000)).into_bytes();
    let (addr, hits) = gzip_only_origin(json.clone()).await;
    let table = services(&format!(
        "[[services]]\nname = \"g\"\nhosts = [\"g.test\"]\norigins = [\"http://{addr}\"]\ncompress = {{}}\n"
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    let pq = "/api.json";
    // Kept as gzip for a client that reads it.
    let r = get_ae(&e, "g.test", pq, Some("gzip"), &[]).await;
    assert_eq!(r.header("content-encoding"), "gzip");
    assert_eq!(decoded("gzip", &r.body).await, json);
    // Decoded for one that reads nothing, re-encoded for one that reads only br.
    let r = get_ae(&e, "g.test", pq, None, &[]).await;
    assert_eq!(r.header("content-encoding"), "");
    assert_eq!(r.body, json);
    assert_eq!(r.header("etag"), "", "the origin sent none");
    let r = get_ae(&e, "g.test", pq, Some("br"), &[]).await;
    assert_eq!(r.header("content-encoding"), "br");
    assert!(
        r.body.len() < json.len() / 10,
        "{} of {}",
        r.body.len(),
        json.len()
    );
    assert_eq!(decoded("br", &r.body).await, json);
    assert_eq!(hits.load(std::sync::atomic::Ordering::Relaxed), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_ttl_gives_a_default_freshness_and_caps_the_origins() {
    let o = origin().await;
    let table = services(&format!(
        r#"
        [[services]]
        name = "ttl"
        hosts = ["ttl.test"]
        origins = ["{0}"]
        ttl = {{ default = "2s", max = "2s" }}
        [[services]]
        name = "plain"
        hosts = ["plain.test"]
        origins = ["{0}"]
        "#,
        o.url()
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    // No freshness from the origin: uncached without a ttl, fresh with one (up to the cap).
    let bare = "/bare?size=10";
    for _ in 0..2 {
        get_host(&e, "plain.test", bare).await;
        get_host(&e, "ttl.test", bare).await;
    }
    assert_eq!(o.hits(bare), 3, "plain twice, ttl.test once");
    // A day of max-age is capped at two seconds. (Not one: the origin's Date has whole
    // seconds, so an object's age starts anywhere up to a second, and a busy machine takes
    // a while between requests.)
    let long = "/long?size=10&cc=max-age%3D86400";
    get_host(&e, "ttl.test", long).await;
    assert!(get_host(&e, "ttl.test", long).await.is_hit());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!get_host(&e, "ttl.test", long).await.is_hit());
    assert_eq!(o.hits(long), 2);
    e.shutdown().await;
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_decides_access_only_from_a_trusted_forwarder() {
    let o = origin().await;
    let text = format!(
        "[[services]]\nname = \"x\"\nhosts = [\"x.test\"]\norigins = [\"{}\"]\naccess = {{ deny = [\"203.0.113.0/24\"] }}\n",
        o.url()
    );
    let ask = |e: &Edge, xff: &str| {
        Request::get(e.url("/x?size=10"))
            .header("host", "x.test")
            .header("x-forwarded-for", xff)
            .body(Full::default())
            .unwrap()
    };
    // Not trusted (the default): the header is the client's own claim, ignored.
    let e = Edge::start_cfg(&[], |c| {
        c.services = services(&text);
        c.trusted_forwarders.clear();
    })
    .await;
    assert_eq!(e.send(ask(&e, "203.0.113.9")).await.status, 200);
    e.shutdown().await;
    // From a trusted forwarder, the address it appended is the client's.
    let e = Edge::start_cfg(&[], |c| {
        c.services = services(&text);
        c.trusted_forwarders = vec!["127.0.0.1/32".into()];
    })
    .await;
    assert_eq!(e.send(ask(&e, "203.0.113.9")).await.status, 403);
    assert_eq!(
        e.send(ask(&e, "203.0.113.9, 198.51.100.1")).await.status,
        200
    );
    e.shutdown().await;
    o.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_failing_its_health_check_leaves_the_pool_and_comes_back() {
    let (o1, o2) = (origin().await, origin().await);
    let table = services(&format!(
        "[[services]]\nname = \"hc\"\nhosts = [\"hc.test\"]\norigins = [\"{}\", \"{}\"]\nhealth_check = {{ path = \"/hc\", interval = \"100ms\", timeout = \"100ms\" }}\n",
        o1.url(),
        o2.url()
    ));
    let e = Edge::start_cfg(&[], |c| c.services = table).await;
    let mut n = 0;
    let mut round = async |count: usize| {
        let before = (o1.hits_prefix("/p/"), o2.hits_prefix("/p/"));
        for _ in 0..count {
            n += 1;
            let r = get_host(&e, "hc.test", &format!("/p/{n}?size=10")).await;
            assert_eq!(r.status, 200);
        }
        (
            o1.hits_prefix("/p/") - before.0,
            o2.hits_prefix("/p/") - before.1,
        )
    };
    assert_eq!(round(10).await, (5, 5));
    o2.set(
        "/hc",
        tiercel_testbed::origin::Spec::new().with("status", "503"),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        round(10).await,
        (10, 0),
        "o2 fails its checks: out of the pool"
    );
    o2.clear("/hc");
    // Back once a check passes (after the back-off of its failures, checked every 100 ms).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, to_o2) = round(4).await;
        if to_o2 > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "o2 never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(o2.hits("/hc") >= 3);
    e.shutdown().await;
    o1.shutdown().await;
    o2.shutdown().await;
}
