use super::*;
use http::HeaderValue;

const D0: &str = "Sat, 01 Jan 2022 00:00:00 GMT";
const D1: &str = "Sun, 02 Jan 2022 00:00:00 GMT";
const D2: &str = "Mon, 03 Jan 2022 00:00:00 GMT";
/// D1 in the obsolete RFC 850 and asctime formats, which recipients must accept.
const D1_RFC850: &str = "Sunday, 02-Jan-22 00:00:00 GMT";
const D1_ASCTIME: &str = "Sun Jan  2 00:00:00 2022";

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in fields {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

/// The stored response most cases use: strong ETag "v1", Last-Modified D1, Date D2.
const STORED: &[(&str, &str)] = &[("etag", "\"v1\""), ("last-modified", D1), ("date", D2)];

use Precondition::{NotModified as NM, PreconditionFailed as PF, Proceed as GO};

struct Case {
    name: &'static str,
    method: Method,
    req: &'static [(&'static str, &'static str)],
    status: u16,
    resp: &'static [(&'static str, &'static str)],
    want: Precondition,
}

fn case(
    name: &'static str,
    method: Method,
    req: &'static [(&'static str, &'static str)],
    want: Precondition,
) -> Case {
    Case {
        name,
        method,
        req,
        status: 200,
        resp: STORED,
        want,
    }
}

#[test]
fn rfc9110_section_13_2_2_table() {
    let g = Method::GET;
    let cases = vec![
        case("no conditions", g.clone(), &[], GO),
        // Step 1: If-Match, strong comparison.
        case("if-match equal", g.clone(), &[("if-match", "\"v1\"")], GO),
        case("if-match other", g.clone(), &[("if-match", "\"v2\"")], PF),
        case(
            "if-match in list",
            g.clone(),
            &[("if-match", "\"v0\", \"v1\"")],
            GO,
        ),
        case(
            "if-match weak never matches",
            g.clone(),
            &[("if-match", "W/\"v1\"")],
            PF,
        ),
        case("if-match star", g.clone(), &[("if-match", "*")], GO),
        case(
            "if-match garbage fails",
            g.clone(),
            &[("if-match", "v1")],
            PF,
        ),
        case("if-match empty fails", g.clone(), &[("if-match", "")], PF),
        case(
            "if-match on put",
            Method::PUT,
            &[("if-match", "\"v2\"")],
            PF,
        ),
        case(
            "if-match on delete ok",
            Method::DELETE,
            &[("if-match", "\"v1\"")],
            GO,
        ),
        // Step 2: If-Unmodified-Since, only without If-Match.
        case("ius equal", g.clone(), &[("if-unmodified-since", D1)], GO),
        case("ius later", g.clone(), &[("if-unmodified-since", D2)], GO),
        case("ius earlier", g.clone(), &[("if-unmodified-since", D0)], PF),
        case(
            "ius earlier on post",
            Method::POST,
            &[("if-unmodified-since", D0)],
            PF,
        ),
        case(
            "ius invalid ignored",
            g.clone(),
            &[("if-unmodified-since", "yesterday")],
            GO,
        ),
        case(
            "ius list of dates ignored",
            g.clone(),
            &[(
                "if-unmodified-since",
                "Sat, 01 Jan 2022 00:00:00 GMT, Sat, 01 Jan 2022 00:00:00 GMT",
            )],
            GO,
        ),
        case(
            "ius two lines ignored",
            g.clone(),
            &[("if-unmodified-since", D0), ("if-unmodified-since", D0)],
            GO,
        ),
        case(
            "ius ignored with if-match",
            g.clone(),
            &[("if-match", "\"v1\""), ("if-unmodified-since", D0)],
            GO,
        ),
        case(
            "if-match failure wins over ius",
            g.clone(),
            &[("if-match", "\"v2\""), ("if-unmodified-since", D2)],
            PF,
        ),
        // Step 3: If-None-Match, weak comparison.
        case("inm equal", g.clone(), &[("if-none-match", "\"v1\"")], NM),
        case(
            "inm weak equal",
            g.clone(),
            &[("if-none-match", "W/\"v1\"")],
            NM,
        ),
        case("inm other", g.clone(), &[("if-none-match", "\"v2\"")], GO),
        case(
            "inm in list",
            g.clone(),
            &[("if-none-match", "\"a\", W/\"v1\"")],
            NM,
        ),
        case(
            "inm second line",
            g.clone(),
            &[("if-none-match", "\"a\""), ("if-none-match", "\"v1\"")],
            NM,
        ),
        case("inm star", g.clone(), &[("if-none-match", "*")], NM),
        case("inm head", Method::HEAD, &[("if-none-match", "\"v1\"")], NM),
        case("inm post", Method::POST, &[("if-none-match", "\"v1\"")], PF),
        case("inm put star", Method::PUT, &[("if-none-match", "*")], PF),
        case(
            "inm post no match",
            Method::POST,
            &[("if-none-match", "\"v2\"")],
            GO,
        ),
        case("inm garbage", g.clone(), &[("if-none-match", "v1")], GO),
        case(
            "inm half garbage",
            g.clone(),
            &[("if-none-match", "\"v1\", v1")],
            GO,
        ),
        case(
            "inm comma inside quotes",
            g.clone(),
            &[("if-none-match", "\"v1,v2\"")],
            GO,
        ),
        case(
            "if-match ok then inm",
            g.clone(),
            &[("if-match", "\"v1\""), ("if-none-match", "\"v1\"")],
            NM,
        ),
        case(
            "if-match fail before inm",
            g.clone(),
            &[("if-match", "\"v2\""), ("if-none-match", "\"v1\"")],
            PF,
        ),
        case(
            "ius fail before inm",
            g.clone(),
            &[("if-unmodified-since", D0), ("if-none-match", "\"v1\"")],
            PF,
        ),
        // Step 4: If-Modified-Since, GET/HEAD only, only without If-None-Match.
        case("ims equal", g.clone(), &[("if-modified-since", D1)], NM),
        case("ims later", g.clone(), &[("if-modified-since", D2)], NM),
        case("ims earlier", g.clone(), &[("if-modified-since", D0)], GO),
        case(
            "ims rfc850",
            g.clone(),
            &[("if-modified-since", D1_RFC850)],
            NM,
        ),
        case(
            "ims asctime",
            g.clone(),
            &[("if-modified-since", D1_ASCTIME)],
            NM,
        ),
        case("ims head", Method::HEAD, &[("if-modified-since", D1)], NM),
        case(
            "ims post ignored",
            Method::POST,
            &[("if-modified-since", D2)],
            GO,
        ),
        case(
            "ims invalid",
            g.clone(),
            &[("if-modified-since", "not a date")],
            GO,
        ),
        case(
            "ims two lines",
            g.clone(),
            &[("if-modified-since", D1), ("if-modified-since", D1)],
            GO,
        ),
        case(
            "ims ignored when inm does not match",
            g.clone(),
            &[("if-none-match", "\"v2\""), ("if-modified-since", D2)],
            GO,
        ),
        case(
            "inm match regardless of ims",
            g.clone(),
            &[("if-none-match", "\"v1\""), ("if-modified-since", D0)],
            NM,
        ),
        case(
            "ims ignored when inm garbage",
            g.clone(),
            &[("if-none-match", "nope"), ("if-modified-since", D2)],
            GO,
        ),
        // §13.2.1: methods and statuses for which preconditions are ignored.
        case(
            "options ignored",
            Method::OPTIONS,
            &[("if-match", "\"v2\"")],
            GO,
        ),
        case(
            "trace ignored",
            Method::TRACE,
            &[("if-none-match", "*")],
            GO,
        ),
        case(
            "connect ignored",
            Method::CONNECT,
            &[("if-match", "\"v2\"")],
            GO,
        ),
        Case {
            status: 404,
            ..case(
                "404 ignores if-match",
                g.clone(),
                &[("if-match", "\"v2\"")],
                GO,
            )
        },
        Case {
            status: 500,
            ..case("500 ignores inm", g.clone(), &[("if-none-match", "*")], GO)
        },
        Case {
            status: 301,
            ..case(
                "301 ignores ims",
                g.clone(),
                &[("if-modified-since", D2)],
                GO,
            )
        },
        Case {
            status: 206,
            ..case(
                "206 honours inm",
                g.clone(),
                &[("if-none-match", "\"v1\"")],
                NM,
            )
        },
        Case {
            status: 412,
            ..case(
                "412 honours if-match",
                g.clone(),
                &[("if-match", "\"v2\"")],
                PF,
            )
        },
        // Responses without, or with odd, validators.
        Case {
            resp: &[("last-modified", D1)],
            ..case(
                "if-match without etag",
                g.clone(),
                &[("if-match", "\"v1\"")],
                PF,
            )
        },
        Case {
            resp: &[],
            ..case(
                "if-match star without etag",
                g.clone(),
                &[("if-match", "*")],
                GO,
            )
        },
        Case {
            resp: &[("etag", "\"v1\"")],
            ..case(
                "ius without last-modified",
                g.clone(),
                &[("if-unmodified-since", D0)],
                GO,
            )
        },
        Case {
            resp: &[("date", D2)],
            ..case(
                "ims falls back to date",
                g.clone(),
                &[("if-modified-since", D2)],
                NM,
            )
        },
        Case {
            resp: &[("date", D2)],
            ..case(
                "ims before date",
                g.clone(),
                &[("if-modified-since", D1)],
                GO,
            )
        },
        Case {
            resp: &[],
            ..case(
                "ims without any date",
                g.clone(),
                &[("if-modified-since", D2)],
                GO,
            )
        },
        Case {
            resp: &[("last-modified", "garbage"), ("date", D2)],
            ..case(
                "ims invalid last-modified uses date",
                g.clone(),
                &[("if-modified-since", D2)],
                NM,
            )
        },
        Case {
            resp: &[("etag", "W/\"v1\"")],
            ..case(
                "if-match against weak etag",
                g.clone(),
                &[("if-match", "\"v1\"")],
                PF,
            )
        },
        Case {
            resp: &[("etag", "W/\"v1\"")],
            ..case(
                "inm against weak etag",
                g.clone(),
                &[("if-none-match", "\"v1\"")],
                NM,
            )
        },
        Case {
            resp: &[("etag", "\"v1\""), ("etag", "\"v2\"")],
            ..case(
                "two etags: no validator",
                g.clone(),
                &[("if-none-match", "\"v1\"")],
                GO,
            )
        },
        Case {
            resp: &[("etag", "\"v1\""), ("etag", "\"v2\"")],
            ..case(
                "two etags: star still matches",
                g.clone(),
                &[("if-none-match", "*")],
                NM,
            )
        },
        Case {
            resp: &[("etag", "v1")],
            ..case(
                "invalid etag: no validator",
                g.clone(),
                &[("if-none-match", "\"v1\"")],
                GO,
            )
        },
    ];
    assert!(cases.len() >= 60);
    for c in cases {
        let got = evaluate_preconditions(
            &c.method,
            &headers(c.req),
            StatusCode::from_u16(c.status).unwrap(),
            &headers(c.resp),
        );
        assert_eq!(got, c.want, "case {:?}", c.name);
    }
}

#[test]
fn not_modified_keeps_only_listed_fields() {
    let full = headers(&[
        ("content-type", "text/html"),
        ("content-length", "1234"),
        ("content-encoding", "gzip"),
        ("content-location", "/a.html"),
        ("date", D2),
        ("etag", "\"v1\""),
        ("vary", "accept-encoding"),
        ("vary", "accept-language"),
        ("cache-control", "max-age=60"),
        ("expires", D2),
        ("last-modified", D1),
        ("set-cookie", "a=b"),
        ("accept-ranges", "bytes"),
        ("age", "5"),
        ("via", "1.1 shield"),
        ("cache-status", "tiercel-shield; hit"),
        ("x-custom", "1"),
    ]);
    let got = not_modified_headers(&full);
    let mut names: Vec<_> = got.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "age",
            "cache-control",
            "cache-status",
            "content-location",
            "date",
            "etag",
            "expires",
            "last-modified",
            "vary",
            "via"
        ]
    );
    let vary: Vec<_> = got.get_all(header::VARY).iter().collect();
    assert_eq!(vary, ["accept-encoding", "accept-language"]);
    assert_eq!(got.get(header::ETAG).unwrap(), "\"v1\"");
    assert_eq!(got.len(), 11);
}

#[test]
fn not_modified_of_empty_is_empty() {
    assert!(not_modified_headers(&HeaderMap::new()).is_empty());
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_conditions(
        inm in "[ -~]{0,40}",
        im in "[ -~]{0,40}",
        ims in "[ -~]{0,40}",
        etag in "[ -~]{0,20}",
    ) {
        let req = headers(&[("if-none-match", &inm), ("if-match", &im), ("if-modified-since", &ims)]);
        let resp = headers(&[("etag", &etag), ("last-modified", D1)]);
        let _ = evaluate_preconditions(&Method::GET, &req, StatusCode::OK, &resp);
    }
}
