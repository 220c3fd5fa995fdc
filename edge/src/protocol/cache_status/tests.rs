use super::*;

fn cs(cache: &str) -> CacheStatus<'_> {
    CacheStatus::new(cache)
}

#[test]
fn members() {
    let cases: Vec<(CacheStatus<'_>, &str)> = vec![
        (cs("tiercel-edge"), "tiercel-edge"),
        (
            CacheStatus {
                hit: true,
                ..cs("tiercel-edge")
            },
            "tiercel-edge; hit",
        ),
        (
            CacheStatus {
                hit: true,
                ttl: Some(3581),
                ..cs("tiercel-edge")
            },
            "tiercel-edge; hit; ttl=3581",
        ),
        (
            CacheStatus {
                hit: true,
                ttl: Some(-412),
                ..cs("tiercel-edge")
            },
            "tiercel-edge; hit; ttl=-412",
        ),
        (
            CacheStatus {
                fwd: Some(FwdReason::UriMiss),
                fwd_status: Some(200),
                stored: true,
                ..cs("tiercel-edge")
            },
            "tiercel-edge; fwd=uri-miss; fwd-status=200; stored",
        ),
        (
            CacheStatus {
                fwd: Some(FwdReason::Stale),
                fwd_status: Some(304),
                ttl: Some(60),
                stored: true,
                collapsed: true,
                ..cs("tiercel-edge")
            },
            "tiercel-edge; fwd=stale; fwd-status=304; ttl=60; stored; collapsed",
        ),
        (
            CacheStatus {
                fwd: Some(FwdReason::Miss),
                collapsed: true,
                ..cs("tiercel-edge")
            },
            "tiercel-edge; fwd=miss; collapsed",
        ),
        // hit and fwd are exclusive: hit wins and drops the forward-only parameters.
        (
            CacheStatus {
                hit: true,
                fwd: Some(FwdReason::Stale),
                fwd_status: Some(200),
                stored: true,
                collapsed: true,
                ..cs("c")
            },
            "c; hit",
        ),
        // Forward-only parameters without fwd are dropped.
        (
            CacheStatus {
                fwd_status: Some(200),
                stored: true,
                collapsed: true,
                ..cs("c")
            },
            "c",
        ),
        // ttl is clamped to the sf-integer range.
        (
            CacheStatus {
                hit: true,
                ttl: Some(i64::MAX),
                ..cs("c")
            },
            "c; hit; ttl=999999999999999",
        ),
        (
            CacheStatus {
                hit: true,
                ttl: Some(i64::MIN),
                ..cs("c")
            },
            "c; hit; ttl=-999999999999999",
        ),
        (
            CacheStatus {
                hit: true,
                ttl: Some(0),
                ..cs("c")
            },
            "c; hit; ttl=0",
        ),
        // key is always a string; detail a token when possible.
        (
            CacheStatus {
                hit: true,
                key: Some("example.com/a?b=\"c\"\\"),
                ..cs("c")
            },
            "c; hit; key=\"example.com/a?b=\\\"c\\\"\\\\\"",
        ),
        (
            CacheStatus {
                fwd: Some(FwdReason::Bypass),
                detail: Some("no-store"),
                ..cs("c")
            },
            "c; fwd=bypass; detail=no-store",
        ),
        (
            CacheStatus {
                fwd: Some(FwdReason::Request),
                detail: Some("origin error 502"),
                ..cs("c")
            },
            "c; fwd=request; detail=\"origin error 502\"",
        ),
        (
            CacheStatus {
                fwd: Some(FwdReason::Method),
                detail: Some(""),
                ..cs("c")
            },
            "c; fwd=method; detail=\"\"",
        ),
        // Cache names: sf-token when valid, else sf-string with escapes.
        (cs("ExampleCache"), "ExampleCache"),
        (cs("*star"), "*star"),
        (
            cs("cache-3.example.com:8080/x"),
            "cache-3.example.com:8080/x",
        ),
        (cs("CDN Company Here"), "\"CDN Company Here\""),
        (cs("3cache"), "\"3cache\""),
        (cs("-cache"), "\"-cache\""),
        (cs(""), "\"\""),
        (cs("a\"b"), "\"a\\\"b\""),
        (cs("a\\b"), "\"a\\\\b\""),
        (cs("a,b"), "\"a,b\""),
        (cs("a;b"), "\"a;b\""),
        (cs("caf\u{e9}"), "\"caf?\""),
        (cs("tab\there"), "\"tab?here\""),
        (cs("192.0.2.1"), "\"192.0.2.1\""),
    ];
    for (status, want) in &cases {
        assert_eq!(status.to_member(), *want, "{status:?}");
        assert!(HeaderValue::from_str(want).is_ok());
    }
}

#[test]
fn every_fwd_reason_token() {
    let all = [
        (FwdReason::Bypass, "bypass"),
        (FwdReason::Method, "method"),
        (FwdReason::UriMiss, "uri-miss"),
        (FwdReason::VaryMiss, "vary-miss"),
        (FwdReason::Miss, "miss"),
        (FwdReason::Request, "request"),
        (FwdReason::Stale, "stale"),
        (FwdReason::Partial, "partial"),
    ];
    for (reason, token) in all {
        assert_eq!(reason.as_str(), token);
        let member = CacheStatus {
            fwd: Some(reason),
            ..cs("e")
        }
        .to_member();
        assert_eq!(member, format!("e; fwd={token}"));
    }
}

#[test]
fn appending_keeps_upstream_first() {
    let ours = CacheStatus {
        fwd: Some(FwdReason::Miss),
        stored: true,
        ..cs("tiercel-edge")
    };
    let cases: Vec<(Option<&str>, &str)> = vec![
        (None, "tiercel-edge; fwd=miss; stored"),
        (Some(""), "tiercel-edge; fwd=miss; stored"),
        (Some("   "), "tiercel-edge; fwd=miss; stored"),
        (
            Some("tiercel-shield; hit"),
            "tiercel-shield; hit, tiercel-edge; fwd=miss; stored",
        ),
        (
            Some("OriginCache; hit; ttl=1100, \"CDN\"; fwd=uri-miss"),
            "OriginCache; hit; ttl=1100, \"CDN\"; fwd=uri-miss, tiercel-edge; fwd=miss; stored",
        ),
        // Malformed upstream values are kept verbatim.
        (
            Some("HIT from squid (3.1)"),
            "HIT from squid (3.1), tiercel-edge; fwd=miss; stored",
        ),
        (
            Some(" trailing, "),
            "trailing,, tiercel-edge; fwd=miss; stored",
        ),
    ];
    for (existing, want) in cases {
        let existing = existing.map(|e| HeaderValue::from_str(e).unwrap());
        let got = append_cache_status(existing.as_ref(), &ours);
        assert_eq!(got, want, "existing {existing:?}");
    }
}

#[test]
fn appending_folds_several_lines_in_order() {
    let lines = [
        HeaderValue::from_static("ReverseProxyCache; hit"),
        HeaderValue::from_static("ForwardProxyCache; fwd=uri-miss; collapsed; stored"),
    ];
    let got = append_cache_status_lines(
        &lines,
        &CacheStatus {
            hit: true,
            ..cs("e")
        },
    );
    assert_eq!(
        got,
        "ReverseProxyCache; hit, ForwardProxyCache; fwd=uri-miss; collapsed; stored, e; hit"
    );
}

#[test]
fn obs_text_upstream_is_kept_byte_for_byte() {
    let upstream = HeaderValue::from_bytes(b"caf\xe9; hit").unwrap();
    let got = append_cache_status(Some(&upstream), &cs("e"));
    assert_eq!(got.as_bytes(), b"caf\xe9; hit, e");
}

proptest::proptest! {
    #[test]
    fn any_name_serialises_to_a_valid_field(name in ".{0,30}", detail in ".{0,30}", key in ".{0,30}") {
        let status = CacheStatus {
            fwd: Some(FwdReason::Miss),
            detail: Some(&detail),
            key: Some(&key),
            ..cs(&name)
        };
        let member = status.to_member();
        proptest::prop_assert!(member.bytes().all(|b| (0x20..0x7f).contains(&b)));
        proptest::prop_assert!(HeaderValue::from_str(&member).is_ok());
    }
}
