use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Random bytes whose trace half is 0x11.. and parent half 0x22...
const RANDOM: [u8; 24] = {
    let mut r = [0x11u8; 24];
    let mut i = 16;
    while i < 24 {
        r[i] = 0x22;
        i += 1;
    }
    r
};
const NEW_TRACE: &str = "00-11111111111111111111111111111111-2222222222222222-00";

fn next(incoming: &str) -> String {
    let v = HeaderValue::from_str(incoming).unwrap();
    next_traceparent(Some(&v), RANDOM)
        .to_str()
        .unwrap()
        .to_string()
}

fn continued(flags: &str) -> String {
    format!("00-{TRACE}-2222222222222222-{flags}")
}

#[test]
fn traceparent_validity() {
    let long_future = format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like");
    let cases: Vec<(String, String)> = vec![
        // valid version 00: trace-id and flags kept, parent-id replaced
        (format!("00-{TRACE}-{PARENT}-01"), continued("01")),
        (format!("00-{TRACE}-{PARENT}-00"), continued("00")),
        (format!("00-{TRACE}-{PARENT}-09"), continued("09")),
        (format!(" 00-{TRACE}-{PARENT}-01 "), continued("01")),
        // future versions: parsed by position, only the sampled bit kept
        (format!("cc-{TRACE}-{PARENT}-01"), continued("01")),
        (format!("01-{TRACE}-{PARENT}-03"), continued("01")),
        (format!("fe-{TRACE}-{PARENT}-02"), continued("00")),
        (long_future, continued("01")),
        (format!("cc-{TRACE}-{PARENT}-01x"), NEW_TRACE.into()),
        // version ff is forbidden
        (format!("ff-{TRACE}-{PARENT}-01"), NEW_TRACE.into()),
        // version 00 with extra data
        (format!("00-{TRACE}-{PARENT}-01-extra"), NEW_TRACE.into()),
        (format!("00-{TRACE}-{PARENT}-011"), NEW_TRACE.into()),
        // all-zero ids
        (
            format!("00-{}-{PARENT}-01", "0".repeat(32)),
            NEW_TRACE.into(),
        ),
        (
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            NEW_TRACE.into(),
        ),
        // upper case / non-hex
        (
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            NEW_TRACE.into(),
        ),
        (
            format!("00-{TRACE}-{}-01", PARENT.to_uppercase()),
            NEW_TRACE.into(),
        ),
        (format!("00-{TRACE}-{PARENT}-0A"), NEW_TRACE.into()),
        (format!("0A-{TRACE}-{PARENT}-01"), NEW_TRACE.into()),
        (
            format!("00-{}g-{PARENT}-01", &TRACE[..31]),
            NEW_TRACE.into(),
        ),
        (format!("00-{TRACE}-{PARENT}-0g"), NEW_TRACE.into()),
        // wrong shape
        (format!("00-{TRACE}-{PARENT}"), NEW_TRACE.into()),
        (format!("00_{TRACE}-{PARENT}-01"), NEW_TRACE.into()),
        (format!("00-{TRACE}_{PARENT}-01"), NEW_TRACE.into()),
        (format!("00-{TRACE}-{PARENT}_01"), NEW_TRACE.into()),
        (format!("00-{}-{PARENT}-01", &TRACE[..30]), NEW_TRACE.into()),
        (
            format!("00-{TRACE}0-{}-01", &PARENT[..15]),
            NEW_TRACE.into(),
        ),
        ("".into(), NEW_TRACE.into()),
        ("garbage".into(), NEW_TRACE.into()),
        (format!("0-{TRACE}-{PARENT}-01"), NEW_TRACE.into()),
    ];
    for (incoming, want) in cases {
        assert_eq!(next(&incoming), want, "incoming {incoming:?}");
    }
}

#[test]
fn absent_or_non_ascii_starts_a_new_trace() {
    assert_eq!(next_traceparent(None, RANDOM), NEW_TRACE);
    let v = HeaderValue::from_bytes(b"00-\xff").unwrap();
    assert_eq!(next_traceparent(Some(&v), RANDOM), NEW_TRACE);
}

#[test]
fn zero_random_is_made_valid() {
    let got = next_traceparent(None, [0; 24]);
    assert_eq!(
        got,
        "00-00000000000000000000000000000001-0000000000000001-00"
    );
    let incoming = HeaderValue::from_str(&format!("00-{TRACE}-{PARENT}-01")).unwrap();
    assert_eq!(
        next_traceparent(Some(&incoming), [0; 24]),
        format!("00-{TRACE}-0000000000000001-01")
    );
}

#[test]
fn propagate_keeps_tracestate_only_when_continuing() {
    let valid = format!("00-{TRACE}-{PARENT}-01");
    let cases: Vec<(Vec<String>, bool, String, Vec<&str>)> = vec![
        (
            vec![valid.clone()],
            true,
            continued("01"),
            vec!["a=1", "b=2"],
        ),
        (vec![], false, NEW_TRACE.into(), vec![]),
        (vec!["junk".into()], false, NEW_TRACE.into(), vec![]),
        (
            vec![valid.clone(), valid.clone()],
            false,
            NEW_TRACE.into(),
            vec![],
        ),
    ];
    for (lines, want_continued, want, state) in cases {
        let mut h = HeaderMap::new();
        for l in &lines {
            h.append(TRACEPARENT, HeaderValue::from_str(l).unwrap());
        }
        h.append(TRACESTATE, HeaderValue::from_static("a=1"));
        h.append(TRACESTATE, HeaderValue::from_static("b=2"));
        assert_eq!(propagate_trace(&mut h, RANDOM), want_continued, "{lines:?}");
        let tp: Vec<_> = h.get_all(TRACEPARENT).iter().collect();
        assert_eq!(tp, [want.as_str()], "{lines:?}");
        let ts: Vec<_> = h.get_all(TRACESTATE).iter().collect();
        assert_eq!(ts, state, "{lines:?}");
    }
}

proptest::proptest! {
    #[test]
    fn output_is_always_a_valid_version_00(
        incoming in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
        random: [u8; 24],
    ) {
        let incoming = HeaderValue::from_bytes(&incoming).ok();
        let out = next_traceparent(incoming.as_ref(), random);
        let parsed = parse(out.as_bytes());
        proptest::prop_assert!(parsed.is_some());
        proptest::prop_assert_eq!(out.len(), 55);
        // And feeding it back continues the same trace.
        let again = next_traceparent(Some(&out), random);
        proptest::prop_assert_eq!(&again.as_bytes()[..35], &out.as_bytes()[..35]);
    }

    #[test]
    fn structured_near_misses_never_panic(s in "[0-9a-fA-F-]{50,60}") {
        let _ = parse(s.as_bytes());
    }
}
