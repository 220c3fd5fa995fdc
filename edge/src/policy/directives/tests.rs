use super::*;
use crate::policy::config::CDN_CACHE_CONTROL;
use crate::policy::testutil::{headers, s};
use proptest::prelude::*;

type Rd = ResponseDirectives;

/// `t!(name: [response headers] => source, |d| expected fields)`: one row of the response table.
macro_rules! t {
    ($name:ident: [$($h:expr),* $(,)?] => $src:expr, |$d:ident| $body:block) => {
        #[test]
        fn $name() {
            let h = headers(&[$($h),*]);
            let (got, src) = effective_response_directives(&h, &PolicyConfig::default());
            #[allow(unused_mut)]
            let mut $d = Rd::default();
            $body
            assert_eq!(got, $d, "directives");
            assert_eq!(src, $src, "source");
        }
    };
}

const CC: DirectiveSource = DirectiveSource::CacheControl;
fn cdn() -> DirectiveSource {
    DirectiveSource::Targeted(CDN_CACHE_CONTROL)
}
fn sc() -> DirectiveSource {
    DirectiveSource::Targeted(SURROGATE_CONTROL)
}
fn fields(f: &[&str]) -> FieldScope {
    FieldScope::Fields(f.iter().map(|s| s.to_string()).collect())
}

// --- Cache-Control syntax (RFC 9111 §5.2, RFC 9110 §5.6) ---
t!(cc_absent: [] => CC, |d| {});
t!(cc_empty: [("cache-control", "")] => CC, |d| {});
t!(cc_max_age: [("cache-control", "max-age=60")] => CC, |d| { d.max_age = Some(s(60)); });
t!(cc_case_insensitive: [("cache-control", "MAX-AGE=60, Public")] => CC, |d| {
    d.max_age = Some(s(60)); d.public = true;
});
t!(cc_quoted_max_age: [("cache-control", "max-age=\"60\"")] => CC, |d| { d.max_age = Some(s(60)); });
t!(cc_multiple_lines: [("cache-control", "public"), ("cache-control", "max-age=5, must-revalidate")] => CC, |d| {
    d.public = true; d.max_age = Some(s(5)); d.must_revalidate = true;
});
t!(cc_ows_and_empty_elements: [("cache-control", " ,  max-age=5 ,, no-transform , ")] => CC, |d| {
    d.max_age = Some(s(5)); d.no_transform = true;
});
t!(cc_ows_around_equals: [("cache-control", "max-age = 7")] => CC, |d| { d.max_age = Some(s(7)); });
t!(cc_max_age_invalid: [("cache-control", "max-age=abc")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_max_age_negative: [("cache-control", "max-age=-1")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_max_age_decimal: [("cache-control", "max-age=1.5")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_max_age_no_value: [("cache-control", "max-age")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_max_age_empty_value: [("cache-control", "max-age=")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_max_age_trailing_junk: [("cache-control", "max-age=6 0")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_max_age_overflow_saturates: [("cache-control", "max-age=99999999999999999999")] => CC, |d| {
    d.max_age = Some(s(1 << 31));
});
t!(cc_max_age_duplicate_same: [("cache-control", "max-age=60, max-age=60")] => CC, |d| {
    d.max_age = Some(s(60));
});
t!(cc_max_age_duplicate_conflict: [("cache-control", "max-age=60"), ("cache-control", "max-age=30")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_max_age_conflict_then_valid: [("cache-control", "max-age=60, max-age=x, max-age=60")] => CC, |d| {
    d.max_age = Some(s(0)); d.invalid_freshness = true;
});
t!(cc_s_maxage: [("cache-control", "s-maxage=120, max-age=10")] => CC, |d| {
    d.s_maxage = Some(s(120)); d.max_age = Some(s(10));
});
t!(cc_s_maxage_invalid_keeps_max_age: [("cache-control", "s-maxage=x, max-age=10")] => CC, |d| {
    d.s_maxage = Some(s(0)); d.max_age = Some(s(10)); d.invalid_freshness = true;
});
t!(cc_no_store: [("cache-control", "no-store")] => CC, |d| { d.no_store = true; });
t!(cc_no_cache_unqualified: [("cache-control", "no-cache")] => CC, |d| { d.no_cache = FieldScope::All; });
t!(cc_no_cache_quoted_list: [("cache-control", "no-cache=\"Set-Cookie, X-Foo\"")] => CC, |d| {
    d.no_cache = fields(&["set-cookie", "x-foo"]);
});
t!(cc_no_cache_token_arg: [("cache-control", "no-cache=set-cookie")] => CC, |d| {
    d.no_cache = fields(&["set-cookie"]);
});
t!(cc_no_cache_empty_arg_is_all: [("cache-control", "no-cache=\"\"")] => CC, |d| {
    d.no_cache = FieldScope::All;
});
t!(cc_no_cache_fields_union: [("cache-control", "no-cache=\"a\", no-cache=\"b, a\"")] => CC, |d| {
    d.no_cache = fields(&["a", "b"]);
});
t!(cc_no_cache_unqualified_absorbs: [("cache-control", "no-cache=\"a\", no-cache")] => CC, |d| {
    d.no_cache = FieldScope::All;
});
t!(cc_no_cache_unterminated_quote: [("cache-control", "no-cache=\"a, max-age=5")] => CC, |d| {
    d.no_cache = FieldScope::All;
});
t!(cc_private_unqualified: [("cache-control", "private")] => CC, |d| { d.private = FieldScope::All; });
t!(cc_private_qualified: [("cache-control", "private=\"x-user\"")] => CC, |d| {
    d.private = fields(&["x-user"]);
});
t!(cc_all_booleans: [("cache-control", "public, must-revalidate, proxy-revalidate, must-understand, no-transform, immutable")] => CC, |d| {
    d.public = true; d.must_revalidate = true; d.proxy_revalidate = true;
    d.must_understand = true; d.no_transform = true; d.immutable = true;
});
t!(cc_stale_extensions: [("cache-control", "stale-while-revalidate=30, stale-if-error=600")] => CC, |d| {
    d.stale_while_revalidate = Some(s(30)); d.stale_if_error = Some(s(600));
});
t!(cc_stale_invalid_ignored: [("cache-control", "stale-while-revalidate=x, stale-if-error")] => CC, |d| {});
t!(cc_stale_conflict_dropped: [("cache-control", "stale-while-revalidate=30, stale-while-revalidate=60")] => CC, |d| {});
t!(cc_stale_duplicate_same_kept: [("cache-control", "stale-if-error=60, stale-if-error=60")] => CC, |d| {
    d.stale_if_error = Some(s(60));
});
t!(cc_unknown_ignored: [("cache-control", "foo, bar=\"baz, qux\", community=\"UCI\", max-age=1")] => CC, |d| {
    d.max_age = Some(s(1));
});
t!(cc_garbage_element_ignored: [("cache-control", "@@@, max-age=2")] => CC, |d| { d.max_age = Some(s(2)); });

// --- Targeted fields (RFC 9213) ---
t!(cdn_governs: [("cache-control", "no-store"), ("cdn-cache-control", "max-age=600")] => cdn(), |d| {
    d.max_age = Some(s(600));
});
t!(cdn_unknown_member_still_governs: [("cache-control", "no-store"), ("cdn-cache-control", "none")] => cdn(), |d| {});
t!(cdn_invalid_falls_back: [("cache-control", "max-age=5"), ("cdn-cache-control", "max-age=60,")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(cdn_uppercase_key_invalid: [("cache-control", "max-age=5"), ("cdn-cache-control", "Max-Age=60")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(cdn_empty_falls_back: [("cache-control", "max-age=5"), ("cdn-cache-control", "")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(cdn_multiple_lines_combine: [("cdn-cache-control", "max-age=60"), ("cdn-cache-control", "must-revalidate")] => cdn(), |d| {
    d.max_age = Some(s(60)); d.must_revalidate = true;
});
t!(cdn_duplicate_last_wins: [("cdn-cache-control", "max-age=60, max-age=30")] => cdn(), |d| {
    d.max_age = Some(s(30));
});
t!(cdn_parameters_ignored: [("cdn-cache-control", "max-age=60;foo=1, public;x")] => cdn(), |d| {
    d.max_age = Some(s(60)); d.public = true;
});
t!(cdn_boolean_false_absent: [("cdn-cache-control", "no-store=?0, max-age=9")] => cdn(), |d| {
    d.max_age = Some(s(9));
});
// A directive of RFC 9111 with a value of the wrong type makes the whole field invalid: it is
// ignored, and Cache-Control governs (RFC 9213 §2.1).
t!(cdn_decimal_max_age_invalidates_the_field: [("cache-control", "max-age=5"), ("cdn-cache-control", "max-age=1.5")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(cdn_string_max_age_invalidates_the_field: [("cache-control", "max-age=5"), ("cdn-cache-control", "max-age=\"60\"")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(cdn_negative_max_age_invalidates_the_field: [("cache-control", "max-age=5"), ("cdn-cache-control", "max-age=-5")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(cdn_valued_boolean_directive_invalidates_the_field: [("cache-control", "max-age=5"), ("cdn-cache-control", "no-store=1, max-age=60")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(cdn_bad_type_falls_to_the_next_target: [("surrogate-control", "max-age=7"), ("cdn-cache-control", "s-maxage=\"60\"")] => sc(), |d| {
    d.max_age = Some(s(7));
});
t!(cdn_extension_of_any_type_is_fine: [("cdn-cache-control", "max-age=60, x-mine=\"a\", y=1.5")] => cdn(), |d| {
    d.max_age = Some(s(60));
});
t!(cdn_private_string: [("cdn-cache-control", "private=\"set-cookie\"")] => cdn(), |d| {
    d.private = fields(&["set-cookie"]);
});
t!(cdn_no_cache_inner_list: [("cdn-cache-control", "no-cache=(\"a\" b)")] => cdn(), |d| {
    d.no_cache = fields(&["a", "b"]);
});
t!(cdn_stale_directives: [("cdn-cache-control", "max-age=10, stale-while-revalidate=5, stale-if-error=50")] => cdn(), |d| {
    d.max_age = Some(s(10)); d.stale_while_revalidate = Some(s(5)); d.stale_if_error = Some(s(50));
});
t!(cdn_beats_surrogate: [("surrogate-control", "max-age=1"), ("cdn-cache-control", "max-age=2")] => cdn(), |d| {
    d.max_age = Some(s(2));
});
t!(invalid_cdn_then_surrogate: [("surrogate-control", "max-age=1"), ("cdn-cache-control", "max-age=(")] => sc(), |d| {
    d.max_age = Some(s(1));
});

// --- Surrogate-Control (Edge Architecture 1.0) ---
t!(sc_governs: [("cache-control", "private"), ("surrogate-control", "max-age=300")] => sc(), |d| {
    d.max_age = Some(s(300));
});
t!(sc_plus_window: [("surrogate-control", "max-age=30+60")] => sc(), |d| {
    d.max_age = Some(s(30)); d.stale_if_error = Some(s(60));
});
t!(sc_plus_window_explicit_sie_wins: [("surrogate-control", "max-age=30+60, stale-if-error=5")] => sc(), |d| {
    d.max_age = Some(s(30)); d.stale_if_error = Some(s(5));
});
t!(sc_no_store_remote: [("surrogate-control", "no-store-remote")] => sc(), |d| { d.no_store = true; });
t!(sc_content_only_does_not_govern: [("cache-control", "max-age=5"), ("surrogate-control", "content=\"ESI/1.0\"")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(sc_content_and_max_age: [("surrogate-control", "content=\"ESI/1.0\", max-age=60")] => sc(), |d| {
    d.max_age = Some(s(60));
});
t!(sc_device_targeted_skipped: [("cache-control", "max-age=5"), ("surrogate-control", "max-age=60;abc")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(sc_device_targeted_mixed: [("surrogate-control", "max-age=60;abc, max-age=10")] => sc(), |d| {
    d.max_age = Some(s(10));
});
t!(sc_empty_falls_back: [("cache-control", "max-age=5"), ("surrogate-control", " , ")] => CC, |d| {
    d.max_age = Some(s(5));
});
t!(sc_cc_syntax: [("surrogate-control", "Max-Age=60, stale-while-revalidate=10")] => sc(), |d| {
    d.max_age = Some(s(60)); d.stale_while_revalidate = Some(s(10));
});

#[test]
fn targeted_fields_not_on_list_do_not_govern() {
    let cfg = PolicyConfig {
        targeted_fields: vec![],
        ..Default::default()
    };
    let h = headers(&[
        ("cache-control", "max-age=1"),
        ("cdn-cache-control", "max-age=2"),
    ]);
    let (d, src) = effective_response_directives(&h, &cfg);
    assert_eq!(src, DirectiveSource::CacheControl);
    assert_eq!(d.max_age, Some(s(1)));
}

#[test]
fn custom_targeted_field_order() {
    let custom = HeaderName::from_static("tiercel-cache-control");
    let cfg = PolicyConfig {
        targeted_fields: vec![custom.clone(), CDN_CACHE_CONTROL],
        ..Default::default()
    };
    let h = headers(&[
        ("cdn-cache-control", "max-age=2"),
        ("tiercel-cache-control", "max-age=3"),
    ]);
    let (d, src) = effective_response_directives(&h, &cfg);
    assert_eq!(src, DirectiveSource::Targeted(custom));
    assert_eq!(d.max_age, Some(s(3)));
}

// --- Request directives (RFC 9111 §5.2.1) ---
#[test]
fn request_table() {
    let r = RequestDirectives::default;
    let cases: Vec<(&[(&str, &str)], RequestDirectives)> = vec![
        (&[], r()),
        (
            &[("cache-control", "max-age=0")],
            RequestDirectives {
                max_age: Some(s(0)),
                ..r()
            },
        ),
        (&[("cache-control", "max-age=x")], r()),
        (
            &[("cache-control", "max-age=60, max-age=10")],
            RequestDirectives {
                max_age: Some(s(10)),
                ..r()
            },
        ),
        (
            &[("cache-control", "max-stale")],
            RequestDirectives {
                max_stale: Some(MaxStale::Any),
                ..r()
            },
        ),
        (
            &[("cache-control", "max-stale=30")],
            RequestDirectives {
                max_stale: Some(MaxStale::Limit(s(30))),
                ..r()
            },
        ),
        (
            &[("cache-control", "max-stale=\"30\"")],
            RequestDirectives {
                max_stale: Some(MaxStale::Limit(s(30))),
                ..r()
            },
        ),
        (
            &[("cache-control", "max-stale, max-stale=30")],
            RequestDirectives {
                max_stale: Some(MaxStale::Limit(s(30))),
                ..r()
            },
        ),
        (
            &[("cache-control", "max-stale=40, max-stale=30")],
            RequestDirectives {
                max_stale: Some(MaxStale::Limit(s(30))),
                ..r()
            },
        ),
        (&[("cache-control", "max-stale=abc")], r()),
        (
            &[("cache-control", "min-fresh=5, min-fresh=10")],
            RequestDirectives {
                min_fresh: Some(s(10)),
                ..r()
            },
        ),
        (
            &[("cache-control", "No-Cache")],
            RequestDirectives {
                no_cache: true,
                ..r()
            },
        ),
        (
            &[("cache-control", "no-store")],
            RequestDirectives {
                no_store: true,
                ..r()
            },
        ),
        (
            &[("cache-control", "only-if-cached")],
            RequestDirectives {
                only_if_cached: true,
                ..r()
            },
        ),
        (
            &[("cache-control", "stale-if-error=300")],
            RequestDirectives {
                stale_if_error: Some(s(300)),
                ..r()
            },
        ),
        (
            &[("pragma", "no-cache")],
            RequestDirectives {
                no_cache: true,
                ..r()
            },
        ),
        (
            &[("pragma", "foo, NO-CACHE")],
            RequestDirectives {
                no_cache: true,
                ..r()
            },
        ),
        (
            &[("pragma", "no-cache"), ("cache-control", "max-age=5")],
            RequestDirectives {
                max_age: Some(s(5)),
                ..r()
            },
        ),
        (&[("pragma", "no-cache"), ("cache-control", "")], r()),
        (&[("pragma", "no-cachex")], r()),
        (
            &[
                ("cache-control", "max-age=5"),
                ("cache-control", "min-fresh=1, no-cache"),
            ],
            RequestDirectives {
                max_age: Some(s(5)),
                min_fresh: Some(s(1)),
                no_cache: true,
                ..r()
            },
        ),
    ];
    for (h, want) in cases {
        assert_eq!(RequestDirectives::parse(&headers(h)), want, "headers {h:?}");
    }
}

// --- Properties ---
fn directive() -> impl Strategy<Value = (String, Option<u64>)> {
    (
        prop_oneof![
            Just("max-age"),
            Just("s-maxage"),
            Just("stale-while-revalidate"),
            Just("stale-if-error"),
            Just("public"),
            Just("no-store"),
            Just("must-revalidate"),
            Just("immutable"),
        ],
        proptest::option::of(0u64..1_000_000),
    )
        .prop_map(|(n, v)| {
            let boolean = matches!(n, "public" | "no-store" | "must-revalidate" | "immutable");
            (
                n.to_string(),
                if boolean { None } else { Some(v.unwrap_or(0)) },
            )
        })
}

proptest! {
    #[test]
    fn cache_control_never_panics(v in "[ -~]{0,60}") {
        let h = headers(&[("cache-control", &v), ("cdn-cache-control", &v), ("surrogate-control", &v), ("pragma", &v)]);
        let _ = effective_response_directives(&h, &PolicyConfig::default());
        let _ = RequestDirectives::parse(&h);
    }

    #[test]
    fn format_then_parse_roundtrips(ds in proptest::collection::vec(directive(), 0..6), quote in any::<bool>()) {
        // Keep the first occurrence of each name so the expectation is unambiguous.
        let mut uniq: Vec<(String, Option<u64>)> = Vec::new();
        for d in ds {
            if !uniq.iter().any(|(n, _)| *n == d.0) { uniq.push(d); }
        }
        let text = uniq.iter().map(|(n, v)| match v {
            Some(v) if quote => format!("{n}=\"{v}\""),
            Some(v) => format!("{n}={v}"),
            None => n.clone(),
        }).collect::<Vec<_>>().join(", ");
        let h = headers(&[("cache-control", &text)]);
        let (d, _) = effective_response_directives(&h, &PolicyConfig::default());
        let get = |name: &str| uniq.iter().find(|(n, _)| n == name).map(|(_, v)| s(v.unwrap_or(0)));
        prop_assert_eq!(d.max_age, get("max-age"));
        prop_assert_eq!(d.s_maxage, get("s-maxage"));
        prop_assert_eq!(d.stale_while_revalidate, get("stale-while-revalidate"));
        prop_assert_eq!(d.stale_if_error, get("stale-if-error"));
        prop_assert_eq!(d.public, get("public").is_some());
        prop_assert_eq!(d.no_store, get("no-store").is_some());
        prop_assert_eq!(d.must_revalidate, get("must-revalidate").is_some());
        prop_assert_eq!(d.immutable, get("immutable").is_some());
        prop_assert!(!d.invalid_freshness);

        // The same directives as a CDN-Cache-Control dictionary parse the same way; quoted
        // delta-seconds are of the wrong type there, which voids the whole field.
        let h = headers(&[("cdn-cache-control", &text)]);
        let (d2, source) = effective_response_directives(&h, &PolicyConfig::default());
        let quoted_delta = quote && uniq.iter().any(|(_, v)| v.is_some());
        if quoted_delta {
            prop_assert_eq!(source, DirectiveSource::CacheControl);
        } else if !uniq.is_empty() {
            prop_assert_eq!(d2, d);
        }
    }
}
