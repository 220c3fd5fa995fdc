//! Cache-key integrity end to end: what is stored under a key is exactly what the origin was
//! asked for with that key's target and authority. Each vector is sent as raw bytes (a client
//! library would clean it up), and the test asserts both what the origin received and what a
//! later plain request gets.

mod support;

use support::{Edge, raw, raw_status};
use tiercel_testbed::origin::{ECHO_HEADER, RecordedRequest};

fn origin_saw(e: &Edge, path_prefix: &str) -> Vec<RecordedRequest> {
    e.origin
        .requests()
        .into_iter()
        .filter(|r| r.target().starts_with(path_prefix))
        .collect()
}

fn host_of(r: &RecordedRequest) -> String {
    r.headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host_the_origin_is_asked_for() {
    let e = Edge::start(&[]).await;
    let pq = "/abs/x?cc=max-age%3D60";
    // The report's vector: the target names victim.example, the Host line evil.example.
    let out = raw(
        e.addr(),
        format!("GET http://victim.example{pq} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&out), 200, "{out}");
    let seen = origin_saw(&e, "/abs/x");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        host_of(&seen[0]),
        "victim.example",
        "the target's authority replaces Host"
    );
    assert_eq!(seen[0].target(), pq);
    // A plain request for victim.example is a hit on what victim.example's URL returned...
    let hit = e.get_with(pq, &[("host", "victim.example")]).await;
    assert!(hit.is_hit(), "{}", hit.header("cache-status"));
    // ...and evil.example's key was never filled by it.
    let other = e.get_with(pq, &[("host", "evil.example")]).await;
    assert!(!other.is_hit(), "{}", other.header("cache-status"));
    let seen = origin_saw(&e, "/abs/x");
    assert_eq!(seen.len(), 2);
    assert_eq!(host_of(&seen[1]), "evil.example");
    e.shutdown().await;
}

#[tokio::test]
async fn the_origin_is_asked_for_the_canonical_target_the_key_names() {
    let e = Edge::start(&[]).await;
    // (raw target, what the origin must be asked for)
    let vectors: &[(&str, &str)] = &[
        ("/img/%2e%2e/dot?cc=max-age%3D60", "/dot?cc=max-age%3D60"),
        ("/img/%2E%2e/dot2?cc=max-age%3D60", "/dot2?cc=max-age%3D60"),
        (
            "/img/./a/../dot3?cc=max-age%3D60",
            "/img/dot3?cc=max-age%3D60",
        ),
        (
            "/slash//es///x?cc=max-age%3D60",
            "/slash/es/x?cc=max-age%3D60",
        ),
        ("/back\\..\\bs?cc=max-age%3D60", "/bs?cc=max-age%3D60"),
        (
            "/case/%7euser/%2f?cc=max-age%3D60",
            "/case/~user/%2F?cc=max-age%3D60",
        ),
        ("/enc/%41%42?cc=max-age%3D60", "/enc/AB?cc=max-age%3D60"),
        ("/stray/%zz?cc=max-age%3D60", "/stray/%25zz?cc=max-age%3D60"),
    ];
    for (sent, canonical) in vectors {
        let out = raw(
            e.addr(),
            format!("GET {sent} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(raw_status(&out), 200, "{sent}: {out}");
        let path = canonical.split('?').next().unwrap_or_default();
        let seen = origin_saw(&e, path);
        assert_eq!(seen.len(), 1, "{sent}");
        assert_eq!(seen[0].target(), *canonical, "{sent}");
        // The plain, canonical request is a hit on it: one origin request in all.
        let plain = e.get_with(canonical, &[("host", "site.example")]).await;
        assert!(plain.is_hit(), "{sent}: {}", plain.header("cache-status"));
        assert_eq!(origin_saw(&e, path).len(), 1, "{sent}");
    }
    // A target that has no canonical form at all is refused, never sent as `/`.
    let before = e.origin.total_hits();
    let out = raw(
        e.addr(),
        b"GET * HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&out), 400, "{out}");
    // Nor are targets that are not origin-form or a valid absolute-form: authority-form
    // (CONNECT's alone), userinfo, a scheme that is not HTTP, port 0. Each gets 400 with
    // nothing forwarded.
    for target in [
        "victim.example:80",
        "http://user:pw@victim.example/x",
        "ftp://victim.example/x",
        "http://victim.example:0/x",
    ] {
        let out = raw(
            e.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(raw_status(&out), 400, "{target}: {out}");
    }
    assert_eq!(
        e.origin.total_hits(),
        before,
        "nothing refused was forwarded"
    );
    // An absolute-form target with an empty path names `/` (RFC 9110 §4.2.3).
    let out = raw(
        e.addr(),
        b"GET http://root.example HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&out), 200, "{out}");
    let seen: Vec<_> = e
        .origin
        .requests()
        .into_iter()
        .filter(|r| r.headers.get("host").is_some_and(|h| h == "root.example"))
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target(), "/");
    let before = e.origin.total_hits();
    // Nor is a Host whose name holds a colon: one parser reads port `b.example:80`, another
    // host `a:b.example`.
    let out = raw(
        e.addr(),
        b"GET /x HTTP/1.1\r\nHost: a:b.example:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&out), 400, "{out}");
    assert_eq!(e.origin.total_hits(), before);
    e.shutdown().await;
}

#[tokio::test]
async fn unkeyed_request_fields_cannot_shape_what_others_are_served() {
    let e = Edge::start(&[]).await;
    let fields = [
        ("x-forwarded-host", "evil.example"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
        ("x-forwarded-scheme", "nothttps"),
        ("forwarded", "for=203.0.113.9;host=evil.example;proto=https"),
    ];
    for (name, value) in fields {
        let pq = format!("/unkeyed/{name}?cc=max-age%3D60&echo={name}");
        // The attacker's request is the first one: it starts the fill.
        let first = e.get_with(&pq, &[(name, value)]).await;
        assert_eq!(first.status, 200);
        assert!(!first.is_hit());
        let seen = origin_saw(&e, &format!("/unkeyed/{name}?"));
        assert_eq!(seen.len(), 1, "{name}");
        let reached = seen[0]
            .headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.contains(value)));
        assert!(!reached, "{name}: {value} reached the origin");
        // Everyone after gets what the origin made without it.
        let later = e.get(&pq).await;
        assert!(later.is_hit(), "{name}: {}", later.header("cache-status"));
        let echoed = later.header(ECHO_HEADER);
        assert!(!echoed.contains(value), "{name}: served {echoed}");
        assert_eq!(later.body, first.body);
    }
    // Our own Forwarded element is there, the client's is not.
    let seen = origin_saw(&e, "/unkeyed/forwarded?");
    let fwd = seen[0]
        .headers
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(fwd.starts_with("for=127.0.0.1;proto=http"), "{fwd}");
    assert!(!fwd.contains("evil"), "{fwd}");
    e.shutdown().await;
}
