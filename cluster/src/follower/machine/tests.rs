use std::time::{Duration, Instant};

use super::*;
use crate::purge::wire::PurgeRequest;
use crate::purge::{ObjectRef, PurgeVerdict};

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timing() -> Timing {
    Timing {
        persist_interval: 200 * MS,
        report_interval: 1000 * MS,
        report_min_gap: 50 * MS,
        report_retry: 250 * MS,
        backoff: Backoff {
            min: 100 * MS,
            max: 5000 * MS,
        },
        max_purge_lag: 10_000 * MS,
        max_rules: 1_000,
    }
}

fn service(name: &str, version: u64) -> ServiceRecord {
    ServiceRecord {
        name: name.into(),
        version,
        changed: None,
        doc: serde_json::json!({ "hosts": [format!("{name}.example")] }),
    }
}

fn url_purge(id: &str, urls: &[&str], soft: bool) -> LogPayload {
    LogPayload::Purge {
        id: id.into(),
        purge: PurgeRequest {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            soft,
            ..Default::default()
        },
    }
}

fn tag_purge(id: &str, tag: &str) -> LogPayload {
    LogPayload::Purge {
        id: id.into(),
        purge: PurgeRequest {
            tags: vec![tag.into()],
            ..Default::default()
        },
    }
}

fn entry(index: u64, payload: LogPayload) -> Input {
    Input::Log(LogEvent::Entry { index, payload })
}

fn hb(commit_index: u64) -> Input {
    Input::Log(LogEvent::Heartbeat { commit_index })
}

fn connect(server: usize, from: u64, delay_ms: u64) -> Action {
    Action::Connect {
        server,
        from,
        delay: ms(delay_ms),
    }
}

fn report(applied_index: u64) -> Action {
    Action::Report { applied_index }
}

fn reported(applied: u64) -> Input {
    Input::Reported { applied, ok: true }
}

fn persisted(applied: u64, took_ms: u64) -> Input {
    Input::Persisted {
        applied,
        ok: true,
        took: ms(took_ms),
    }
}

fn url_purged(key: &str, soft: bool) -> Action {
    Action::UrlPurged {
        key: key.into(),
        soft,
    }
}

/// Runs `steps` of (milliseconds since start, input, expected actions) and checks each.
struct Run {
    m: FollowerMachine,
    t0: Instant,
}

impl Run {
    fn new(state: FollowerState, servers: usize, persistent: bool) -> (Self, Vec<Action>) {
        let t0 = Instant::now();
        let mut m = FollowerMachine::new(state, servers, persistent, timing());
        let first = m.start(t0);
        (Run { m, t0 }, first)
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn steps(&mut self, steps: Vec<(u64, Input, Vec<Action>)>) {
        for (i, (ms, input, want)) in steps.into_iter().enumerate() {
            let shown = format!("{input:?}");
            let got = self.m.handle(self.at(ms), input);
            assert_eq!(got, want, "step {i} at {ms} ms: {shown}");
        }
    }
}

#[test]
fn start_connects_from_the_next_index_and_reports() {
    let (_, first) = Run::new(FollowerState::default(), 2, false);
    assert_eq!(first, vec![connect(0, 1, 0), report(0)]);

    let mut state = FollowerState {
        applied: 41,
        ..Default::default()
    };
    state.services.insert("b".into(), service("b", 2));
    state.services.insert("a".into(), service("a", 7));
    let (_, first) = Run::new(state, 1, true);
    assert_eq!(
        first,
        vec![
            Action::ServicesChanged(vec![service("a", 7), service("b", 2)]),
            connect(0, 42, 0),
            report(41),
        ]
    );
}

#[test]
fn entries_apply_once_in_order_and_reports_coalesce() {
    let (mut r, _) = Run::new(FollowerState::default(), 1, false);
    r.steps(vec![
        // A report (of 0) is in flight: applying does not start another.
        (
            1,
            entry(3, url_purge("3", &["http://h/a", "https://H:443/b"], false)),
            vec![url_purged("h/a", false), url_purged("h/b", false)],
        ),
        (2, entry(5, tag_purge("5", "t")), vec![]),
        // Replays after a reconnect are ignored.
        (3, entry(3, url_purge("3", &["http://h/a"], false)), vec![]),
        (4, entry(5, url_purge("5", &["http://h/z"], false)), vec![]),
        // The report finishes: the changed index goes out once the minimum gap has passed.
        (5, reported(0), vec![]),
        (49, Input::Tick, vec![]),
        (50, Input::Tick, vec![report(5)]),
        (
            51,
            entry(6, url_purge("6", &["http://h/c"], true)),
            vec![url_purged("h/c", true)],
        ),
        (52, reported(5), vec![]),
        (60, entry(7, tag_purge("7", "t")), vec![]),
        // 6 and 7 go out together.
        (100, Input::Tick, vec![report(7)]),
        (101, reported(7), vec![]),
        // Nothing new: the periodic report comes a second after the last one.
        (500, Input::Tick, vec![]),
        (1100, Input::Tick, vec![report(7)]),
    ]);
    assert_eq!(r.m.state().applied, 7);
    let obj = |url, stored_index| ObjectRef {
        service: "",
        url,
        host: "h",
        tags: &[],
        stored_index,
    };
    assert_eq!(
        r.m.state().index.check(&obj("h/a", 2)),
        PurgeVerdict::HardPurged
    );
    assert_eq!(r.m.state().index.check(&obj("h/a", 3)), PurgeVerdict::Valid);
    assert_eq!(
        r.m.state().index.check(&obj("h/c", 5)),
        PurgeVerdict::SoftPurged
    );
    assert_eq!(r.m.state().index.check(&obj("h/z", 0)), PurgeVerdict::Valid);
}

#[test]
fn a_batch_is_one_index_applied_in_order_with_one_services_notice() {
    let (mut r, _) = Run::new(FollowerState::default(), 1, false);
    let batch = LogPayload::Batch {
        items: vec![
            url_purge("9.0", &["http://h/1"], false),
            LogPayload::ServicePut {
                service: service("s", 1),
            },
            url_purge("9.2", &["http://h/2"], true),
            LogPayload::ServicePut {
                service: service("t", 1),
            },
            LogPayload::ServiceDelete {
                name: "s".into(),
                version: 2,
            },
        ],
    };
    r.steps(vec![
        (
            1,
            entry(9, batch.clone()),
            vec![
                url_purged("h/1", false),
                url_purged("h/2", true),
                Action::ServicesChanged(vec![service("t", 1)]),
            ],
        ),
        (2, entry(9, batch), vec![]),
        // Deleting an unknown service changes nothing.
        (
            3,
            entry(
                10,
                LogPayload::ServiceDelete {
                    name: "nope".into(),
                    version: 1,
                },
            ),
            vec![],
        ),
        (
            4,
            entry(
                11,
                LogPayload::ServicePut {
                    service: service("t", 2),
                },
            ),
            vec![Action::ServicesChanged(vec![service("t", 2)])],
        ),
    ]);
    assert_eq!(r.m.state().applied, 11);
}

#[test]
fn heartbeats_only_move_forward() {
    let (mut r, _) = Run::new(FollowerState::default(), 1, false);
    r.steps(vec![
        (1, hb(4), vec![]),
        (2, reported(0), vec![]),
        (50, Input::Tick, vec![report(4)]),
        (51, hb(2), vec![]),
        (52, entry(3, tag_purge("3", "old")), vec![]),
        (53, reported(4), vec![]),
    ]);
    assert_eq!(r.m.state().applied, 4);
    assert_eq!(r.m.state().index.len(), 0, "entry 3 was already covered");
}

#[test]
fn reset_soft_purges_everything_older_and_replaces_services() {
    let mut state = FollowerState {
        applied: 5,
        ..Default::default()
    };
    state.services.insert("old".into(), service("old", 1));
    let (mut r, _) = Run::new(state, 1, false);
    let reset = |snapshot_index, services| {
        Input::Log(LogEvent::Reset {
            snapshot_index,
            services,
        })
    };
    r.steps(vec![
        (
            1,
            reset(100, vec![service("new", 3)]),
            vec![
                Action::SoftPurgedAll {
                    snapshot_index: 100,
                },
                Action::ServicesChanged(vec![service("new", 3)]),
            ],
        ),
        // A stale reset (at or before what we applied) is ignored.
        (2, reset(100, vec![]), vec![]),
        (3, reset(50, vec![]), vec![]),
        (4, entry(100, tag_purge("100", "x")), vec![]),
        (5, entry(101, tag_purge("101", "x")), vec![]),
    ]);
    let st = r.m.state();
    assert_eq!(st.applied, 101);
    let obj = |stored_index| ObjectRef {
        service: "",
        url: "h/a",
        host: "h",
        tags: &[],
        stored_index,
    };
    assert_eq!(st.index.check(&obj(99)), PurgeVerdict::SoftPurged);
    assert_eq!(st.index.check(&obj(100)), PurgeVerdict::Valid);
}

#[test]
fn failures_rotate_servers_with_growing_jittered_backoff() {
    let (mut r, _) = Run::new(FollowerState::default(), 3, false);
    let fail = |jitter| Input::StreamFailed { jitter };
    r.steps(vec![
        (1, fail(0.0), vec![connect(1, 1, 50)]),
        (2, fail(1.0), vec![connect(2, 1, 200)]),
        (3, fail(0.0), vec![connect(0, 1, 200)]),
        (4, fail(0.5), vec![connect(1, 1, 600)]),
        // A heard event resets the backoff; the next failure resumes from `applied + 1`.
        (5, entry(7, tag_purge("7", "t")), vec![]),
        (6, fail(1.0), vec![connect(2, 8, 100)]),
    ]);
    for _ in 0..20 {
        r.m.handle(r.at(7), Input::StreamFailed { jitter: 1.0 });
    }
    let last = r.m.handle(r.at(8), Input::StreamFailed { jitter: 1.0 });
    assert_eq!(last, vec![connect(2, 8, 5000)]);
}

#[test]
fn persistence_is_debounced_and_reports_only_claim_durable_indices() {
    let (mut r, first) = Run::new(FollowerState::default(), 1, true);
    assert_eq!(first, vec![connect(0, 1, 0), report(0)]);
    r.steps(vec![
        (1, reported(0), vec![]),
        // Leading edge: the first change is written at once; the report waits for the disk.
        (
            10,
            entry(1, tag_purge("1", "a")),
            vec![Action::Persist { applied: 1 }],
        ),
        // Changes while a write is in flight wait for it.
        (11, entry(2, tag_purge("2", "a")), vec![]),
        (12, hb(3), vec![]),
        // Done: 1 is durable and reported; the rest waits for the debounce interval.
        (20, persisted(1, 5), vec![]),
        (50, Input::Tick, vec![report(1)]),
        (51, reported(1), vec![]),
        (219, Input::Tick, vec![]),
        (220, Input::Tick, vec![Action::Persist { applied: 3 }]),
        // A slow write (100 ms) spaces the next one 4 x 100 ms apart.
        (320, persisted(3, 100), vec![report(3)]),
        (321, reported(3), vec![]),
        (330, entry(4, tag_purge("4", "b")), vec![]),
        (719, Input::Tick, vec![]),
        (720, Input::Tick, vec![Action::Persist { applied: 4 }]),
        // A failed write is retried after the interval and nothing new is reported.
        (
            730,
            Input::Persisted {
                applied: 4,
                ok: false,
                took: MS,
            },
            vec![],
        ),
        (929, Input::Tick, vec![]),
        (930, Input::Tick, vec![Action::Persist { applied: 4 }]),
        (940, persisted(4, 1), vec![report(4)]),
    ]);
    assert_eq!(r.m.durable_index(), 4);
}

#[test]
fn failed_reports_are_retried_after_the_retry_delay() {
    let (mut r, _) = Run::new(FollowerState::default(), 1, false);
    r.steps(vec![
        (
            1,
            Input::Reported {
                applied: 0,
                ok: false,
            },
            vec![],
        ),
        (2, entry(1, tag_purge("1", "a")), vec![]),
        (249, Input::Tick, vec![]),
        (250, Input::Tick, vec![report(1)]),
        (260, reported(1), vec![]),
    ]);
}

#[test]
fn next_wakeup_follows_the_pending_work() {
    let (mut r, _) = Run::new(FollowerState::default(), 1, true);
    // Report in flight, nothing dirty: nothing to wake for.
    assert_eq!(r.m.next_wakeup(), None);
    r.m.handle(r.at(0), reported(0));
    assert_eq!(r.m.next_wakeup(), Some(r.at(1000)));
    r.m.handle(r.at(10), entry(1, tag_purge("1", "a")));
    r.m.handle(r.at(11), entry(2, tag_purge("2", "a")));
    // Persist of 1 in flight: still only the periodic report.
    assert_eq!(r.m.next_wakeup(), Some(r.at(1000)));
    r.m.handle(r.at(20), persisted(1, 1));
    // 1 is durable: reported once the minimum gap since the last report (at 0) has passed.
    assert_eq!(r.m.next_wakeup(), Some(r.at(50)));
    assert_eq!(r.m.handle(r.at(50), Input::Tick), vec![report(1)]);
    // Report of 1 in flight, 2 dirty until 220 ms.
    assert_eq!(r.m.next_wakeup(), Some(r.at(220)));
    // A failed report retries after 250 ms; the persist still comes first.
    r.m.handle(
        r.at(60),
        Input::Reported {
            applied: 1,
            ok: false,
        },
    );
    assert_eq!(r.m.next_wakeup(), Some(r.at(220)));
    assert_eq!(
        r.m.handle(r.at(220), Input::Tick),
        vec![Action::Persist { applied: 2 }]
    );
    assert_eq!(r.m.next_wakeup(), Some(r.at(300)));
}

#[test]
fn lagging_until_heard_and_after_max_purge_lag_of_silence() {
    let (mut r, _) = Run::new(FollowerState::default(), 1, false);
    assert!(r.m.lagging(r.at(0)), "never heard");
    r.m.handle(r.at(100), hb(0));
    assert!(!r.m.lagging(r.at(100)));
    assert!(!r.m.lagging(r.at(10_100)));
    assert!(r.m.lagging(r.at(10_101)));
    // Failures are not hearing; an undecodable stream never clears the lag.
    r.m.handle(r.at(10_200), Input::StreamFailed { jitter: 0.0 });
    assert!(r.m.lagging(r.at(10_200)));
    r.m.handle(r.at(10_300), hb(0));
    assert!(!r.m.lagging(r.at(10_300)));
    assert_eq!(r.m.last_heard(), Some(r.at(10_300)));
}

#[test]
fn pruning_forgets_old_rules_and_persists_the_smaller_index() {
    let (mut r, _) = Run::new(FollowerState::default(), 1, true);
    r.steps(vec![
        (1, reported(0), vec![]),
        (
            10,
            entry(3, tag_purge("3", "a")),
            vec![Action::Persist { applied: 3 }],
        ),
        (11, entry(6, tag_purge("6", "b")), vec![]),
        (20, persisted(3, 1), vec![]),
        (
            220,
            Input::Tick,
            vec![Action::Persist { applied: 6 }, report(3)],
        ),
        (221, reported(3), vec![]),
        (230, persisted(6, 1), vec![]),
        (270, Input::Tick, vec![report(6)]),
        (271, reported(6), vec![]),
        // Nothing at or below 2: nothing changes, nothing to write.
        (500, Input::Prune { below: 2 }, vec![]),
        (
            501,
            Input::Prune { below: 3 },
            vec![Action::Persist { applied: 6 }],
        ),
    ]);
    assert_eq!(r.m.state().index.len(), 1);
    // A cut above the applied index prunes no further than it.
    r.m.handle(r.at(510), persisted(6, 1));
    r.m.handle(r.at(800), Input::Prune { below: 100 });
    assert!(r.m.state().index.is_empty());
}

#[test]
fn a_full_rule_index_folds_its_oldest_quarter_into_one_rule() {
    let mut t = timing();
    t.max_rules = 8;
    let mut m = FollowerMachine::new(FollowerState::default(), 1, false, t);
    let t0 = Instant::now();
    m.start(t0);
    let mut folded = Vec::new();
    for i in 1..=9u64 {
        let url = format!("https://h/{i}");
        for a in m.handle(t0, entry(i, url_purge(&i.to_string(), &[&url], false))) {
            if let Action::RulesFolded { at_or_below, kept } = a {
                folded.push((at_or_below, kept));
            }
        }
    }
    // The ninth pattern overflows 8: down to 6 patterns, rules 1..=3 folded into `all`.
    assert_eq!(folded, vec![(3, 7)]);
    let obj = |url: &'static str, stored_index| ObjectRef {
        service: "",
        url,
        host: "h",
        tags: &[],
        stored_index,
    };
    // Objects older than the fold are purged whatever their URL (over-invalidation, safe) ...
    assert_eq!(
        m.state().index.check(&obj("h/other", 2)),
        PurgeVerdict::HardPurged
    );
    // ... newer ones keep their exact verdicts.
    assert_eq!(
        m.state().index.check(&obj("h/other", 3)),
        PurgeVerdict::Valid
    );
    assert_eq!(
        m.state().index.check(&obj("h/7", 5)),
        PurgeVerdict::HardPurged
    );
    assert_eq!(m.state().index.check(&obj("h/7", 7)), PurgeVerdict::Valid);
}

#[test]
fn implausible_indexes_are_named_and_never_applied() {
    use crate::follower::{MAX_PLAUSIBLE_INDEX, implausible_index};
    let huge = LogEvent::Heartbeat {
        commit_index: u64::MAX,
    };
    assert_eq!(implausible_index(&huge), Some(u64::MAX));
    let edge = LogEvent::Heartbeat {
        commit_index: MAX_PLAUSIBLE_INDEX,
    };
    assert_eq!(implausible_index(&edge), None);
    let reset = LogEvent::Reset {
        snapshot_index: MAX_PLAUSIBLE_INDEX + 1,
        services: vec![],
    };
    assert_eq!(implausible_index(&reset), Some(MAX_PLAUSIBLE_INDEX + 1));
    // Fed to the machine anyway, it changes nothing.
    let mut m = FollowerMachine::new(FollowerState::default(), 2, false, timing());
    let now = Instant::now();
    m.start(now);
    m.handle(now, Input::Log(huge));
    assert_eq!(m.state().applied, 0);
    let out = m.handle(now, Input::StreamFailed { jitter: 0.0 });
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Connect { from: 1, .. })),
        "{out:?}"
    );
}
