//! RFC 9111 behaviour end to end: a real edge, a real origin that counts requests.
//! Each test asserts on origin counts, bytes and header fields.

mod support;

use std::time::Duration;

use http::Method;
use support::*;
use tiercel_testbed::origin::{Spec, expected_body, expected_variant_body};

async fn settle() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_hits_then_revalidation_updates_stored_headers() {
    let e = Edge::start(&[]).await;
    let path = "/c/reval";
    let pq = "/c/reval?cc=max-age%3D1&etag=v1&size=2000";
    let miss = e.get(pq).await;
    assert_eq!(miss.body, expected_body(pq, 2000));
    let hit = e.get(pq).await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert!(
        hit.cache_status().contains("ttl="),
        "{}",
        hit.cache_status()
    );
    assert_eq!(e.origin.hits(pq), 1);

    settle().await;
    e.origin.set(path, Spec::new().with("h", "X-Generation:2"));
    let reval = e.get(pq).await;
    assert_eq!(reval.status, 200);
    assert_eq!(
        reval.body,
        expected_body(pq, 2000),
        "body kept from storage"
    );
    assert_eq!(
        e.origin.conditional_hits(pq),
        1,
        "revalidated with a conditional request"
    );
    assert!(
        reval.cache_status().contains("fwd=stale"),
        "{}",
        reval.cache_status()
    );
    assert!(
        reval.cache_status().contains("fwd-status=304"),
        "{}",
        reval.cache_status()
    );
    assert_eq!(
        reval.header("x-generation"),
        "2",
        "304 updated the stored header fields"
    );
    let again = e.get(pq).await;
    assert!(again.is_hit());
    assert_eq!(again.header("x-generation"), "2");
    assert_eq!(e.origin.hits(pq), 2);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_no_store_and_set_cookie_are_never_stored() {
    let e = Edge::start(&[]).await;
    for pq in [
        "/c/ns?cc=no-store",
        "/c/pr?cc=private%2C%20max-age%3D60",
        "/c/sc?cc=max-age%3D60&set_cookie=1",
        "/c/plain?size=10",
        "/c/err?status=500",
    ] {
        let a = e.get(pq).await;
        let b = e.get(pq).await;
        assert!(!a.is_hit() && !b.is_hit(), "{pq}: {}", b.cache_status());
        assert_eq!(
            e.origin.hits(pq),
            2,
            "{pq} must reach the origin every time"
        );
    }
    // Qualified private: stored, minus the named field.
    let pq = "/c/prf?cc=private%3D%22x-user%22%2C%20max-age%3D60&h=X-User:alice";
    let a = e.get(pq).await;
    assert_eq!(
        a.header("x-user"),
        "alice",
        "the first client gets the whole response"
    );
    let b = e.get(pq).await;
    assert!(b.is_hit());
    assert_eq!(b.header("x-user"), "", "private field not stored");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_needs_public_or_s_maxage() {
    let e = Edge::start(&[]).await;
    let auth = [("authorization", "Bearer x")];
    let plain = "/c/auth?cc=max-age%3D60";
    e.get_with(plain, &auth).await;
    e.get_with(plain, &auth).await;
    assert_eq!(e.origin.hits(plain), 2);
    for pq in [
        "/c/authp?cc=public%2C%20max-age%3D60",
        "/c/auths?cc=s-maxage%3D60",
    ] {
        e.get_with(pq, &auth).await;
        let r = e.get_with(pq, &auth).await;
        assert!(r.is_hit(), "{pq}: {}", r.cache_status());
        assert_eq!(e.origin.hits(pq), 1);
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_keeps_variants_side_by_side() {
    let e = Edge::start(&[]).await;
    let pq = "/c/vary?cc=max-age%3D60&vary=Accept-Encoding&size=300";
    let gz = e.get_with(pq, &[("accept-encoding", "gzip")]).await;
    let br = e.get_with(pq, &[("accept-encoding", "br")]).await;
    assert_eq!(gz.body, expected_variant_body(pq, 300, "gzip"));
    assert_eq!(br.body, expected_variant_body(pq, 300, "br"));
    assert_ne!(gz.body, br.body);
    assert!(
        br.cache_status().contains("fwd=vary-miss"),
        "{}",
        br.cache_status()
    );
    let gz2 = e.get_with(pq, &[("accept-encoding", "gzip")]).await;
    let br2 = e.get_with(pq, &[("accept-encoding", "br")]).await;
    assert!(gz2.is_hit() && br2.is_hit());
    assert_eq!(gz2.body, gz.body);
    assert_eq!(br2.body, br.body);
    let none = e.get(pq).await;
    assert_eq!(none.body, expected_variant_body(pq, 300, ""));
    assert_eq!(e.origin.hits(pq), 3);

    let star = "/c/star?cc=max-age%3D60&vary=*";
    e.get(star).await;
    let s2 = e.get(star).await;
    assert!(!s2.is_hit());
    assert_eq!(e.origin.hits(star), 2, "Vary: * is never served from cache");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_conditionals_and_head_are_answered_from_cache() {
    let e = Edge::start(&[]).await;
    let pq = "/c/cond?cc=max-age%3D60&etag=abc&lm=3600&size=500";
    let full = e.get(pq).await;
    let etag = full.header("etag").to_string();
    let lm = full.header("last-modified").to_string();
    assert_eq!(etag, "\"abc\"");

    let inm = e.get_with(pq, &[("if-none-match", "\"abc\"")]).await;
    assert_eq!(inm.status, 304);
    assert!(inm.body.is_empty());
    assert_eq!(inm.header("etag"), "\"abc\"");
    assert!(inm.is_hit());
    let ims = e.get_with(pq, &[("if-modified-since", lm.as_str())]).await;
    assert_eq!(ims.status, 304);
    let other = e.get_with(pq, &[("if-none-match", "\"zzz\"")]).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body.len(), 500);
    let failed = e.get_with(pq, &[("if-match", "\"zzz\"")]).await;
    assert_eq!(failed.status, 412);

    let head = e.request(Method::HEAD, pq, &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), "500");
    assert!(head.is_hit());

    let range = e.get_with(pq, &[("range", "bytes=10-19")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.header("content-range"), "bytes 10-19/500");
    assert_eq!(range.body, expected_body(pq, 500).slice(10..20));
    assert_eq!(
        e.origin.hits(pq),
        1,
        "all of the above from one origin fetch"
    );

    // A HEAD miss fills with GET, so the next GET is a hit.
    let hpq = "/c/headfill?cc=max-age%3D60&size=123";
    let h = e.request(Method::HEAD, hpq, &[], b"").await;
    assert_eq!(h.header("content-length"), "123");
    // The HEAD answer leaves before its GET fill has finished storing.
    for _ in 0..250 {
        if e.node.engine.fills_in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let g = e.get(hpq).await;
    assert!(g.is_hit());
    assert_eq!(g.body, expected_body(hpq, 123));
    let seen = e.origin.requests();
    assert!(
        seen.iter()
            .filter(|r| r.target() == hpq)
            .all(|r| r.method == Method::GET)
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_pass_through_and_invalidate() {
    let e = Edge::start(&[]).await;
    let pq = "/c/inv?cc=max-age%3D60";
    e.get(pq).await;
    assert!(e.get(pq).await.is_hit());
    let post = e
        .request(
            Method::POST,
            pq,
            &[("content-type", "text/plain")],
            b"hello",
        )
        .await;
    assert_eq!(post.status, 200);
    assert!(
        post.cache_status().contains("fwd=method"),
        "{}",
        post.cache_status()
    );
    let seen = e.origin.requests();
    let p = seen.iter().find(|r| r.method == Method::POST).unwrap();
    assert_eq!(&p.body[..], b"hello");
    let after = e.get(pq).await;
    assert!(!after.is_hit(), "POST invalidated the stored response");
    assert_eq!(e.origin.hits(pq), 3);

    // A failed unsafe request invalidates nothing.
    let keep = "/c/keep?cc=max-age%3D60&status=200";
    e.get(keep).await;
    e.origin.set("/c/keep", Spec::new().with("status", "500"));
    e.request(Method::DELETE, keep, &[], b"").await;
    e.origin.clear("/c/keep");
    assert!(e.get(keep).await.is_hit());
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_fields_take_precedence_and_are_not_forwarded() {
    let e = Edge::start(&[]).await;
    for pq in [
        "/c/cdncc?cc=no-store&cdncc=max-age%3D60",
        "/c/sc2?cc=no-store&sc=max-age%3D60",
    ] {
        let a = e.get(pq).await;
        assert_eq!(a.header("cdn-cache-control"), "");
        assert_eq!(a.header("surrogate-control"), "");
        assert_eq!(
            a.header("cache-control"),
            "no-store",
            "Cache-Control is for downstream caches"
        );
        let b = e.get(pq).await;
        assert!(b.is_hit(), "{pq}: {}", b.cache_status());
        assert_eq!(e.origin.hits(pq), 1);
    }
    // And the other way round: CDN-Cache-Control: no-store beats a cacheable Cache-Control.
    let pq = "/c/cdnns?cc=max-age%3D60&cdncc=no-store";
    e.get(pq).await;
    e.get(pq).await;
    assert_eq!(e.origin.hits(pq), 2);
    e.shutdown().await;
}

/// RFC 9211 §2: every upstream cache's member survives, whether it sent one line or several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_cache_status_line_is_kept_before_ours() {
    let e = Edge::start(&[]).await;
    let pq = "/c/chain?cc=max-age%3D60&h=Cache-Status:OriginCache%3B%20hit&h=Cache-Status:ShieldCache%3B%20fwd%3Duri-miss";
    for hit in [false, true] {
        let r = e.get(pq).await;
        let all = r.header("cache-status");
        assert!(
            all.starts_with("OriginCache; hit, ShieldCache; fwd=uri-miss, "),
            "{all}"
        );
        assert_eq!(r.headers.get_all("cache-status").iter().count(), 1);
        assert_eq!(r.is_hit(), hit, "{all}");
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_background() {
    let e = Edge::start(&[]).await;
    let pq = "/c/swr?cc=max-age%3D1%2C%20stale-while-revalidate%3D30&etag=s";
    e.get(pq).await;
    settle().await;
    // The revalidation's 304 makes the object fresh for a minute, whatever the machine's load.
    e.origin.set(
        "/c/swr",
        Spec::new().with("cc", "max-age=60, stale-while-revalidate=30"),
    );
    let stale = e.get(pq).await;
    assert!(stale.is_hit(), "{}", stale.cache_status());
    assert!(
        stale.cache_status().contains("stale-while-revalidate"),
        "{}",
        stale.cache_status()
    );
    for _ in 0..250 {
        if e.origin.hits(pq) == 2 && e.node.engine.fills_in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.origin.hits(pq), 2, "background revalidation happened");
    let fresh = e.get(pq).await;
    assert!(fresh.is_hit());
    assert!(
        !fresh.cache_status().contains("stale"),
        "{}",
        fresh.cache_status()
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_and_must_revalidate_on_origin_failure() {
    let e = Edge::start(&[]).await;
    let sie = "/c/sie?cc=max-age%3D1%2C%20stale-if-error%3D60&size=100";
    let mr = "/c/mr?cc=max-age%3D1%2C%20must-revalidate&size=100";
    e.get(sie).await;
    e.get(mr).await;
    settle().await;
    for path in ["/c/sie", "/c/mr"] {
        e.origin.set(path, Spec::new().with("status", "503"));
    }
    let s = e.get(sie).await;
    assert_eq!(s.status, 200, "stale served on a 503");
    assert_eq!(s.body, expected_body(sie, 100));
    assert!(
        s.cache_status().contains("stale-if-error"),
        "{}",
        s.cache_status()
    );
    let m = e.get(mr).await;
    assert_eq!(m.status, 503, "must-revalidate: the error goes through");
    for path in ["/c/sie", "/c/mr"] {
        e.origin.set(path, Spec::new().with("fail", "close"));
    }
    assert_eq!(e.get(sie).await.status, 200);
    assert_eq!(e.get(mr).await.status, 502);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_directives() {
    let e = Edge::start(&[]).await;
    let miss = e
        .get_with(
            "/c/oic?cc=max-age%3D60",
            &[("cache-control", "only-if-cached")],
        )
        .await;
    assert_eq!(miss.status, 504);
    assert_eq!(e.origin.hits("/c/oic?cc=max-age%3D60"), 0);

    let pq = "/c/rd?cc=max-age%3D60&etag=r";
    e.get(pq).await;
    let oic = e.get_with(pq, &[("cache-control", "only-if-cached")]).await;
    assert!(oic.is_hit());
    let nc = e.get_with(pq, &[("cache-control", "no-cache")]).await;
    assert_eq!(nc.status, 200);
    assert!(
        nc.cache_status().contains("fwd=request"),
        "{}",
        nc.cache_status()
    );
    assert_eq!(e.origin.conditional_hits(pq), 1);
    let pragma = e.get_with(pq, &[("pragma", "no-cache")]).await;
    assert!(!pragma.is_hit());
    assert_eq!(e.origin.conditional_hits(pq), 2);
    let ma0 = e.get_with(pq, &[("cache-control", "max-age=0")]).await;
    assert!(!ma0.is_hit());
    let mf = e.get_with(pq, &[("cache-control", "min-fresh=120")]).await;
    assert!(!mf.is_hit(), "min-fresh beyond the remaining lifetime");
    assert!(
        e.get_with(pq, &[("cache-control", "min-fresh=10")])
            .await
            .is_hit()
    );

    let short = "/c/ms?cc=max-age%3D1";
    e.get(short).await;
    settle().await;
    let ms = e
        .get_with(short, &[("cache-control", "max-stale=60")])
        .await;
    assert!(
        ms.is_hit(),
        "max-stale accepts the stale response: {}",
        ms.cache_status()
    );
    assert_eq!(e.origin.hits(short), 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_sources_and_age() {
    let e = Edge::start(&[]).await;
    // Heuristic: Last-Modified 10 h ago, no explicit freshness → 10% = 1 h.
    let heur = "/c/heur?lm=36000";
    e.get(heur).await;
    assert!(e.get(heur).await.is_hit());
    let exp = "/c/exp?expires=60";
    let first = e.get(exp).await;
    let second = e.get(exp).await;
    assert!(
        second.is_hit(),
        "{:?} / {}",
        first.headers,
        second.cache_status()
    );
    let expired = "/c/expired?expires=-10&etag=x";
    e.get(expired).await;
    assert!(!e.get(expired).await.is_hit());
    // Age from upstream is carried and grows.
    let aged = "/c/aged?cc=max-age%3D600&age=100";
    e.get(aged).await;
    let r = e.get(aged).await;
    let age: u64 = r.header("age").parse().unwrap();
    assert!(age >= 100, "age {age}");
    e.shutdown().await;
}

/// RFC 9110 §5.6.7, RFC 9111 §5.1, RFC 9213 §2.1 end to end: every HTTP-date format makes an
/// `Expires` count, a list-valued `Age` counts by its first member, and a `CDN-Cache-Control`
/// that is not a valid dictionary (a directive of the wrong type) is ignored as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_formats_age_lists_and_invalid_targeted_fields() {
    let e = Edge::start(&[]).await;
    // 2037 is less than 50 years ahead, so `37` is 2037 (RFC 9110 §5.6.7).
    for (name, expires) in [
        ("imf", "Thu,%2031%20Dec%202037%2023:59:59%20GMT"),
        ("rfc850", "Thursday,%2031-Dec-37%2023:59:59%20GMT"),
        ("asctime", "Thu%20Dec%2031%2023:59:59%202037"),
    ] {
        let pq = format!("/c/date-{name}?h=Expires:{expires}");
        e.get(&pq).await;
        let r = e.get(&pq).await;
        assert!(r.is_hit(), "{name}: {}", r.cache_status());
        assert_eq!(e.origin.hits(&pq), 1, "{name}");
    }
    // A Last-Modified in either obsolete format gives heuristic freshness (RFC 9111 §4.2.2).
    for (name, modified) in [
        ("rfc850", "Sunday,%2006-Nov-94%2008:49:37%20GMT"),
        ("asctime", "Sun%20Nov%20%206%2008:49:37%201994"),
    ] {
        let pq = format!("/c/lm-{name}?h=Last-Modified:{modified}");
        e.get(&pq).await;
        let r = e.get(&pq).await;
        assert!(r.is_hit(), "{name}: {}", r.cache_status());
        assert_eq!(e.origin.hits(&pq), 1, "{name}");
    }
    // Age: 50, 70 is an Age of 50: ten seconds of a max-age=60 are left.
    let aged = "/c/age-list?cc=max-age%3D60&h=Age:50,%2070";
    e.get(aged).await;
    let r = e.get(aged).await;
    assert!(r.is_hit(), "{}", r.cache_status());
    let ttl: i64 = r
        .cache_status()
        .split(';')
        .find_map(|p| p.trim().strip_prefix("ttl=").map(str::to_string))
        .and_then(|t| t.parse().ok())
        .unwrap_or(i64::MAX);
    assert!(ttl <= 10, "ttl {ttl}: {}", r.cache_status());
    // max-age="10" is a String, not an Integer: the field is void and Cache-Control rules.
    let void = "/c/cdncc-void?cc=no-store&cdncc=max-age%3D%2210%22";
    e.get(void).await;
    e.get(void).await;
    assert_eq!(e.origin.hits(void), 2, "no-store applied");
    let void_ok = "/c/cdncc-void-ok?cc=max-age%3D60&cdncc=no-store,%20max-age%3D%2210%22";
    e.get(void_ok).await;
    assert!(e.get(void_ok).await.is_hit(), "max-age=60 applied");
    e.shutdown().await;
}

/// RFC 9110 §15.2: interim (1xx) responses from the origin are not the response. The edge reads
/// past them to the final one, which is what it serves and stores; a 103's Link fields never
/// end up in the stored object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_from_the_origin_are_read_past_and_never_stored() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        count.fetch_add(1, Ordering::SeqCst);
                        let reply = b"HTTP/1.1 100 Continue\r\n\r\n\
                            HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
                            HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello";
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let cfg = config_from_flags(&["--listen", "127.0.0.1:0", "--origin", &origin]);
    let n = tiercel_edge::node::start(tiercel_cluster::config::Role::Edge, &cfg)
        .await
        .unwrap();
    let client = h1_client();
    let url = format!("http://{}/interim", n.listen.unwrap());
    for hit in [false, true] {
        let r = send(
            &client,
            http::Request::get(&url)
                .body(http_body_util::Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"hello");
        assert_eq!(
            r.header("link"),
            "",
            "a 103's fields are not the response's"
        );
        assert_eq!(r.is_hit(), hit, "{}", r.cache_status());
    }
    assert_eq!(served.load(Ordering::SeqCst), 1);
    n.shutdown().await;
}
